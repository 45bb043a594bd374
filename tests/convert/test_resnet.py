"""The torchvision ResNet importer (vos_jax/convert/resnet.py) and `vos-jax convert resnet`.

Parity: the fixture (`RESNET_PARITY_FIXTURE`, default ../shared/fixtures/resnet_parity.npz; read
its `about`) holds a torchvision state-dict manifest + salt (../shared/fixtures/official_weights.py
regenerates the weights), BatchNorm statistics calibrated on its image, a real DAVIS frame
(ImageNet-normalised, NCHW) and torchvision's c2..c5 (layer1..layer4) at output strides 32, 16
and 8, computed in float64. The other tests build a small ResNet-18 state dict in torchvision's
layout here, so they need no shared data.
"""

import os
import sys
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.shared_data import official_state_dict, shared_path
from vos_jax.cli import main
from vos_jax.convert.resnet import architecture, import_resnet
from vos_jax.convert.state_dict import StateDictMismatch
from vos_jax.io.published import read_model
from vos_jax.models.backbones import RESNETS, ResNet

TAPS = {"c2": "layer1", "c3": "layer2", "c4": "layer3", "c5": "layer4"}
# Worst error / max |reference| over c2..c5. The reference is float64 stored as float32, so
# float64 can only be as close as that rounding; float32 accumulates rounding over 101 layers.
RELATIVE_TOLERANCE = {"float64": 1e-6, "float32": 2e-3}


def _fixture_path() -> Path:
    if os.environ.get("RESNET_PARITY_FIXTURE"):
        return Path(os.environ["RESNET_PARITY_FIXTURE"])
    return shared_path("fixtures/resnet_parity.npz")


@pytest.fixture(scope="module")
def parity():
    data = dict(np.load(_fixture_path()))
    state_dict = official_state_dict(data)
    image = np.transpose(data["image"], (0, 2, 3, 1))  # [1, H, W, 3], already normalised
    references = {k: v.transpose(0, 2, 3, 1) for k, v in data.items() if k.startswith("os")}
    return dict(arch=str(data["arch"]), state_dict=state_dict, image=image, refs=references)


@pytest.fixture(scope="module")
def imported(parity):
    return import_resnet(parity["state_dict"])


def _relative_errors(model, variables, image, refs, output_stride):
    """{c<k>: max |ours - torchvision| / max |torchvision|} for one output stride."""
    taps = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, image)
    errors = {}
    for name, tap in TAPS.items():
        want, got = refs[f"os{output_stride}/{name}"], np.asarray(taps[tap], np.float64)
        assert got.shape == want.shape, f"{name}: {got.shape} vs {want.shape}"
        assert taps[tap].dtype == model.dtype  # float64 really computed in float64
        errors[name] = float(np.abs(got - want).max() / np.abs(want).max())
    return errors


@pytest.mark.parametrize("output_stride", [32, 16, 8])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_taps_match_torchvision(parity, imported, output_stride, dtype):
    arch, variables = imported
    assert arch == parity["arch"]
    with jax.enable_x64(dtype == "float64"):
        model = ResNet.from_name(arch, output_stride=output_stride, dtype=jnp.dtype(dtype))
        variables = jax.tree.map(lambda v: jnp.asarray(v, dtype), variables)
        image = jnp.asarray(parity["image"], dtype)
        errors = _relative_errors(model, variables, image, parity["refs"], output_stride)
    print(f"{dtype} os{output_stride} relative errors", errors)
    assert max(errors.values()) <= RELATIVE_TOLERANCE[dtype], errors


def test_classifier_and_dataparallel_prefix(parity, imported):
    state_dict = {f"module.{k}": v for k, v in parity["state_dict"].items()}
    assert "module.fc.weight" in state_dict  # the fixture's classifier, ignored
    arch, variables = import_resnet(state_dict)
    assert arch == imported[0]
    got = variables["params"]["layer3_5"]["conv2"]["kernel"]  # [kh, kw, I, O] from [O, I, kh, kw]
    want = parity["state_dict"]["layer3.5.conv2.weight"].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(np.asarray(got), want)
    got = variables["batch_stats"]["layer2_0"]["downsample_bn"]["var"]
    want = parity["state_dict"]["layer2.0.downsample.1.running_var"]
    np.testing.assert_array_equal(np.asarray(got), want)


# ------------------------------------------------ small state dicts in torchvision's layout


def torchvision_manifest(arch: str) -> dict[str, tuple[int, ...]]:
    """{name: shape} of torchvision's `resnet<depth>().state_dict()`, written from its layout
    (BasicBlock / Bottleneck with expansion 4, downsample where stride or width changes)."""
    spec = RESNETS[arch]
    expansion = 4 if spec["bottleneck"] else 1
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def batch_norm(name, channels):
        for entry in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{entry}"] = (channels,)
        shapes[f"{name}.num_batches_tracked"] = ()

    batch_norm("bn1", 64)
    inplanes = 64
    for s, blocks in enumerate(spec["stage_sizes"], start=1):
        planes = 64 * 2 ** (s - 1)
        for b in range(blocks):
            block = f"layer{s}.{b}"
            if spec["bottleneck"]:
                convs = [(planes, inplanes, 1), (planes, planes, 3), (planes * 4, planes, 1)]
            else:
                convs = [(planes, inplanes, 3), (planes, planes, 3)]
            for i, (out, in_, k) in enumerate(convs, start=1):
                shapes[f"{block}.conv{i}.weight"] = (out, in_, k, k)
                batch_norm(f"{block}.bn{i}", out)
            if b == 0 and (s > 1 or inplanes != planes * expansion):
                shapes[f"{block}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
                batch_norm(f"{block}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    shapes["fc.weight"], shapes["fc.bias"] = (1000, inplanes), (1000,)
    return shapes


def random_resnet18() -> dict[str, np.ndarray]:
    """A torchvision ResNet-18 state dict of random values (seed 0)."""
    rng = np.random.default_rng(0)
    return {
        name: (rng.standard_normal(shape) * 0.1).astype(np.int64 if "num_batches" in name else "f4")
        for name, shape in torchvision_manifest("resnet18").items()
    }


@pytest.fixture(scope="module")
def resnet18():
    return random_resnet18()


@pytest.mark.parametrize("arch", list(RESNETS))
def test_architecture_is_read_off_the_names(arch):
    names_only = {name: np.empty(0) for name in torchvision_manifest(arch)}
    assert architecture(names_only) == arch


def test_basic_block_resnet_imports_every_entry(resnet18):
    arch, variables = import_resnet(resnet18)
    assert arch == "resnet18"
    kernel = variables["params"]["layer4_1"]["conv2"]["kernel"]
    np.testing.assert_array_equal(
        np.asarray(kernel), resnet18["layer4.1.conv2.weight"].transpose(2, 3, 1, 0)
    )
    count = sum(np.size(v) for v in jax.tree.leaves(variables["params"]))
    assert count == sum(np.size(v) for k, v in resnet18.items() if _is_param(k))


def _is_param(name: str) -> bool:
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    return not name.startswith("fc.") and not name.endswith(statistics)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda sd: sd.pop("layer2.1.conv2.weight"), "missing entry 'layer2.1.conv2.weight'"),
        (lambda sd: sd.pop("layer3.0.bn1.running_var"), "missing entry 'layer3.0.bn1.running_var'"),
        (lambda sd: sd.update({"layer1.0.conv9.weight": np.zeros(3)}), "layer1.0.conv9.weight"),
        (lambda sd: sd.update({"layer1.1.bn2.bias": np.zeros(7, "f4")}), "layer1.1.bn2.bias"),
        (lambda sd: sd.update({"conv1.weight": np.zeros((64, 4, 7, 7), "f4")}), "'conv1.weight'"),
        (lambda sd: sd.pop("layer2.0.downsample.0.weight"), "'layer2.0.downsample.0.weight'"),
        (lambda sd: [sd.pop(k) for k in list(sd) if k.startswith("layer4.1.")], r"\(2, 2, 2, 1\)"),
    ],
    ids=[
        "missing",
        "missing-stat",
        "extra",
        "bias-shape",
        "kernel-shape",
        "no-downsample",
        "depth",
    ],
)
def test_mismatches_fail_naming_the_parameter(resnet18, change, message):
    state_dict = dict(resnet18)
    change(state_dict)
    with pytest.raises(StateDictMismatch, match=message):
        import_resnet(state_dict)


# ------------------------------------------------------------------------- the command


def _convert(tmp_path, state_dict, out="backbone"):
    np.savez(tmp_path / "resnet.npz", **state_dict)
    argv = ["convert", "resnet", "--torch", str(tmp_path / "resnet.npz")]
    return main([*argv, "--out", str(tmp_path / out)])


def test_convert_command_writes_a_backbone_checkpoint(resnet18, tmp_path, capsys):
    assert _convert(tmp_path, resnet18) == 0, capsys.readouterr().err
    meta, variables = read_model(tmp_path / "backbone")
    assert (meta["family"], meta["variant"], meta["kwargs"]) == ("backbone", "resnet18", {})
    assert "model.init_checkpoint" in (tmp_path / "backbone" / "README.md").read_text()
    _, want = import_resnet(resnet18)
    for path, leaf in jax.tree_util.tree_leaves_with_path(want):
        got = variables
        for key in path:
            got = got[key.key]
        np.testing.assert_array_equal(np.asarray(got), np.asarray(leaf), err_msg=str(path))


def test_convert_command_refuses_an_existing_out(resnet18, tmp_path, capsys):
    (tmp_path / "backbone").mkdir()
    (tmp_path / "backbone" / "keep.txt").write_text("mine")
    assert _convert(tmp_path, resnet18) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "backbone").iterdir()] == ["keep.txt"]
    assert (tmp_path / "backbone" / "keep.txt").read_text() == "mine"


def test_convert_command_reports_mismatches_and_missing_files(resnet18, tmp_path, capsys):
    bad = {**resnet18, "layer1.1.bn2.bias": np.zeros(7, "f4")}
    assert _convert(tmp_path, bad) == 2
    assert "layer1.1.bn2.bias" in capsys.readouterr().err
    assert not (tmp_path / "backbone").exists()
    missing = ["--torch", str(tmp_path / "none.pth"), "--out", str(tmp_path / "b2")]
    assert main(["convert", "resnet", *missing]) == 2
    assert "none.pth" in capsys.readouterr().err
    assert main(["convert", "resnet", "--out", str(tmp_path / "b3")]) == 2  # --torch required
    assert "--torch" in capsys.readouterr().err


def test_pytorch_file_is_read_with_torch_load(resnet18, tmp_path, monkeypatch, capsys):
    """A .pth without the [torch] extra installed: a stand-in `torch` records the call
    (weights_only, CPU) and hands back tensors."""
    calls = []

    class Tensor(np.ndarray):
        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return np.asarray(self)

    def load(path, map_location=None, weights_only=False):
        calls.append((Path(path).name, map_location, weights_only))
        return {k: np.asarray(v).view(Tensor) for k, v in resnet18.items()}

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(load=load))
    (tmp_path / "resnet18.pth").write_bytes(b"")
    argv = ["convert", "resnet", "--torch", str(tmp_path / "resnet18.pth")]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert calls == [("resnet18.pth", "cpu", True)]
    assert read_model(tmp_path / "out")[0]["variant"] == "resnet18"
