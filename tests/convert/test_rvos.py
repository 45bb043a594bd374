"""The RVOS weight importer (vos_jax/convert): every official entry used, every variable set,
loud failures otherwise; `vos-jax convert rvos` writes a loadable checkpoint. The official state
dict is the parity fixture's (its manifest + official_weights.py: the real names and shapes)."""

import numpy as np
import pytest

from tests.models.test_rvos_parity import _fixture_path
from tests.shared_data import official_weights_module
from vos_jax.cli import main
from vos_jax.convert.rvos import import_rvos, split_combined
from vos_jax.convert.state_dict import StateDictMismatch
from vos_jax.families import load_model


@pytest.fixture(scope="module")
def official():
    data = np.load(_fixture_path())
    state_dict = official_weights_module().make_state_dict(str(data["manifest"]), str(data["salt"]))
    return split_combined(state_dict, "decoder_oneshot.")


def test_architecture_is_read_off_the_shapes(official):
    encoder, decoder = official
    variant, overrides, variables = import_rvos(encoder, decoder)
    assert (variant, overrides) == ("paper", dict(hidden=128, one_shot=True))
    kernel = variables["params"]["decoder"]["cell0"]["gates"]["kernel"]
    torch_weight = decoder["clstm_list.0.Gates.weight"]  # [O, I, kh, kw] -> [kh, kw, I, O]
    np.testing.assert_array_equal(np.asarray(kernel), torch_weight.transpose(2, 3, 1, 0))
    bn = encoder["base.layer3.7.bn2.running_var"]
    got = variables["batch_stats"]["encoder"]["base"]["layer3_7"]["bn2"]["var"]
    np.testing.assert_array_equal(np.asarray(got), bn)


def test_dataparallel_prefix_is_accepted(official):
    encoder, decoder = official
    prefixed = {f"module.{k}": v for k, v in encoder.items()}
    _, _, a = import_rvos(prefixed, decoder)
    _, _, b = import_rvos(encoder, decoder)
    np.testing.assert_array_equal(
        np.asarray(a["params"]["encoder"]["sk5"]["kernel"]),
        np.asarray(b["params"]["encoder"]["sk5"]["kernel"]),
    )


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda e, d: e.pop("base.layer2.1.conv2.weight"), "missing entry 'encoder.base.layer2"),
        (lambda e, d: d.update(extra_head=np.zeros(3)), "1 unused entries"),
        (lambda e, d: e.update({"sk4.bias": np.zeros(7, np.float32)}), "encoder/sk4/bias"),
        (lambda e, d: d.update({"clstm_list.0.Gates.weight": np.zeros((512, 300, 3, 3))}), "300"),
        (lambda e, d: e.pop("base.layer3.22.conv1.weight"), "missing entry"),
    ],
)
def test_mismatches_fail_loudly(official, change, message):
    encoder, decoder = (dict(part) for part in official)
    change(encoder, decoder)
    with pytest.raises(StateDictMismatch, match=message):
        import_rvos(encoder, decoder)


def test_unknown_backbone_is_refused(official):
    encoder, decoder = (dict(part) for part in official)
    for k in [k for k in encoder if k.startswith("base.layer3.2") and k[14:15] == "."]:
        del encoder[k]  # blocks 20, 21, 22 of layer3 gone: 3-4-20-3 is no torchvision ResNet
    with pytest.raises(StateDictMismatch, match="not one of"):
        import_rvos(encoder, decoder)


def test_convert_command_writes_a_loadable_checkpoint(official, tmp_path, capsys):
    encoder, decoder = official
    combined = {f"encoder.{k}": v for k, v in encoder.items()}
    combined.update({f"decoder.{k}": v for k, v in decoder.items()})
    np.savez(tmp_path / "rvos.npz", **combined)
    out = tmp_path / "ckpt"
    argv = ["convert", "rvos", "--checkpoint", str(tmp_path / "rvos.npz"), "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    _, model, variables, meta = load_model(out)
    assert meta["family"] == "rvos" and meta["variant"] == "paper"
    assert model.one_shot and model.hidden == 128 and model.backbone == "resnet101"
    _, _, want = import_rvos(encoder, decoder)
    np.testing.assert_array_equal(
        np.asarray(variables["params"]["decoder"]["conv_out"]["kernel"]),
        np.asarray(want["params"]["decoder"]["conv_out"]["kernel"]),
    )
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err  # never overwritten
    bad = ["convert", "rvos", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(out) + "2"]
    assert main(bad) == 2 and "none.pt" in capsys.readouterr().err


def test_official_folder_of_pytorch_files(official, tmp_path):
    torch = pytest.importorskip("torch", reason="reading .pt files needs the [torch] extra")
    from vos_jax.convert.rvos import read_official

    encoder, decoder = official
    folder = tmp_path / "official"
    folder.mkdir()
    for name, part in (("encoder", encoder), ("decoder", decoder)):
        torch.save(
            {k: torch.from_numpy(np.array(v)) for k, v in part.items()}, folder / f"{name}.pt"
        )
    got_encoder, got_decoder = read_official(folder)
    assert set(got_encoder) == set(encoder) and set(got_decoder) == set(decoder)
    np.testing.assert_array_equal(got_encoder["sk5.weight"], encoder["sk5.weight"])


def test_pytorch_files_are_read_with_torch_load(official, tmp_path, monkeypatch):
    """The .pt path without the [torch] extra installed: a stand-in `torch` module records the
    call (weights_only, CPU) and hands back tensors; the official folder layout is read."""
    import sys
    import types

    from vos_jax.convert.rvos import read_official

    class Tensor:
        def __init__(self, array):
            self.array = array

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.array

    encoder, decoder = official
    files = {"encoder.pt": encoder, "decoder.pt": decoder}
    calls = []

    def load(path, map_location=None, weights_only=False):
        calls.append((path.name, map_location, weights_only))
        return {k: Tensor(v) for k, v in files[path.name].items()}

    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(load=load))
    folder = tmp_path / "official"
    folder.mkdir()
    for name in files:
        (folder / name).write_bytes(b"")
    got_encoder, got_decoder = read_official(folder)
    assert calls == [("encoder.pt", "cpu", True), ("decoder.pt", "cpu", True)]
    assert set(got_encoder) == set(encoder) and set(got_decoder) == set(decoder)
    monkeypatch.setitem(sys.modules, "torch", None)  # torch missing: a clear message
    with pytest.raises(ValueError, match=r"vos-jax\[torch\]"):
        read_official(folder)
