"""`model.init_checkpoint`: a converted backbone lands in each family's backbone subtree, a
published model's params (all or by prefix) replace the initial ones, a workdir gives its last
exported model, mismatches fail naming the variable; a fresh train.py run starts from it."""

from __future__ import annotations

import re

import flax
import jax
import numpy as np
import pytest

from vos_jax import families
from vos_jax.config_files import load_config
from vos_jax.io.published import read_model, save_model
from vos_jax.training import init_checkpoint
from vos_jax.training.init_checkpoint import InitCheckpointError, graft, load, resolve
from vos_jax.training.loop import train


def _variables(family: str, seed: int = 0):
    model, _ = families.build_model(family, "tiny")
    frames = np.zeros((1, 33, 33, 3), np.uint8)
    objects = 3 if family == "feelvos" else 2
    return model.init(jax.random.key(seed), frames, num_objects=objects)


def _flat(tree):
    return flax.traverse_util.flatten_dict(flax.core.unfreeze(tree), sep="/")


def _plus_one(tree):
    return jax.tree.map(lambda x: np.asarray(x) + 1.0, tree)


@pytest.mark.parametrize("family,backbone", [("feelvos", "encoder"), ("rvos", "encoder/base")])
def test_a_converted_backbone_goes_to_the_backbone_subtree(tmp_path, family, backbone):
    fresh = _variables(family)
    subtree = lambda tree: _subtree(tree, backbone)
    converted = {
        "params": _plus_one(subtree(fresh["params"])),
        "batch_stats": _plus_one(subtree(fresh["batch_stats"])),
    }
    folder = save_model(tmp_path / "resnet", "backbone", "resnet50", converted)
    params, stats = load(folder, fresh["params"], fresh["batch_stats"])
    assert set(params) == {f"{backbone}/{k}" for k in _flat(converted["params"])}
    assert set(stats) == {f"{backbone}/{k}" for k in _flat(converted["batch_stats"])}
    merged = graft(jax.device_put(fresh["params"]), params)
    for name, value in _flat(merged).items():
        before = np.asarray(_flat(fresh["params"])[name])
        moved = before + 1.0 if name.startswith(backbone + "/") else before
        np.testing.assert_array_equal(np.asarray(value), moved, err_msg=name)


def test_a_converted_resnet50_starts_siammask_s_truncated_backbone(tmp_path, caplog):
    """SiamMask's ResNet-50 stops at layer3 and has 3x3 shortcuts in layer2-3: a torchvision
    ResNet-50 (as `vos-jax convert resnet` writes it) fills it, layer4 left out, each 1x1
    shortcut kernel at the centre of the 3x3 one (zeros around)."""
    from vos_jax.families import siammask
    from vos_jax.models.backbones import ResNet

    resnet = ResNet((1, 1, 1, 1), width=8, bottleneck=True)
    converted = resnet.init(jax.random.key(1), np.zeros((1, 32, 32, 3), np.float32))
    folder = save_model(tmp_path / "resnet", "backbone", "resnet50", converted)
    model, _ = families.build_model("siammask", "tiny")
    fresh = siammask.init_variables(model, jax.random.key(0), {})
    with caplog.at_level("WARNING"):
        params, stats = load(folder, fresh["params"], fresh["batch_stats"])
    assert "not in this model, not loaded: layer4_0" in caplog.text
    source = _flat(converted["params"])
    assert set(params) == {f"backbone/{k}" for k in source if not k.startswith("layer4")}
    assert set(stats) == {
        f"backbone/{k}" for k in _flat(converted["batch_stats"]) if not k.startswith("layer4")
    }
    shortcut = params["backbone/layer2_0/downsample_conv/kernel"]
    assert shortcut.shape == (3, 3, 32, 64)
    np.testing.assert_array_equal(shortcut[1, 1], source["layer2_0/downsample_conv/kernel"][0, 0])
    assert not np.any(shortcut[0]) and not np.any(shortcut[:, 2])
    np.testing.assert_array_equal(
        params["backbone/layer3_0/conv2/kernel"], source["layer3_0/conv2/kernel"]
    )


def _subtree(tree, path):
    for key in path.split("/"):
        tree = tree[key]
    return tree


def test_a_published_model_by_prefix_and_a_workdir_by_its_last_export(tmp_path):
    fresh = _variables("feelvos")
    trained = {"params": _plus_one(fresh["params"]), "batch_stats": fresh["batch_stats"]}
    for step in (3, 10):  # a train.py workdir with two exports: the last one is used
        save_model(tmp_path / "run" / "models" / f"step_{step}", "feelvos", "tiny", trained)
    assert resolve(tmp_path / "run") == tmp_path / "run" / "models" / "step_10"
    params, _ = load(tmp_path / "run", fresh["params"], fresh["batch_stats"], "head, embedding")
    assert params and all(n.startswith(("head/", "embedding/")) for n in params)
    everything, _ = load(tmp_path / "run", fresh["params"], fresh["batch_stats"])
    assert set(everything) == set(_flat(fresh["params"]))


def test_mismatches_name_the_variable(tmp_path):
    fresh = _variables("feelvos")
    with pytest.raises(InitCheckpointError, match="neither a vos-jax model folder"):
        resolve(tmp_path)
    wrong = _plus_one(fresh["params"])
    wrong["head"]["logit"]["kernel"] = np.zeros((1, 1, 7, 1), np.float32)
    folder = save_model(tmp_path / "m", "feelvos", "tiny", {"params": wrong})
    with pytest.raises(InitCheckpointError, match=r"head/logit/kernel.*\(1, 1, 7, 1\)"):
        load(folder, fresh["params"], fresh["batch_stats"])
    with pytest.raises(InitCheckpointError, match="no params .* under 'decoder/nothing'"):
        load(folder, fresh["params"], fresh["batch_stats"], "decoder/nothing")
    other = save_model(tmp_path / "b", "backbone", "x", {"params": {"conv9": np.zeros(3)}})
    with pytest.raises(InitCheckpointError, match="matches no subtree"):
        load(other, fresh["params"], fresh["batch_stats"])


def test_a_fresh_run_starts_from_it_and_logs_what_it_loaded(tmp_path, caplog):
    config = load_config("feelvos_synthetic.py:runlocal")
    config.synthetic.cache_dir = str(tmp_path / "data")
    config.total_steps = 0  # exports the initial state: what init_checkpoint made of it
    source = {"params": _plus_one(_variables("feelvos", seed=5)["params"])}
    source["batch_stats"] = _variables("feelvos")["batch_stats"]
    save_model(tmp_path / "source", "feelvos", "tiny", source)
    config.model.update(init_checkpoint=str(tmp_path / "source"), init_prefixes="head")
    with caplog.at_level("WARNING", logger=init_checkpoint.__name__):
        summary = train(config, tmp_path / "run")
    loaded = re.search(r"loaded (\d+) of \d+ params .*; initialised: (.*)", caplog.text)
    assert loaded and int(loaded[1]) > 0 and "encoder (" in loaded[2] and "head" not in loaded[2]
    _, exported = read_model(summary["model"])
    got, want = _flat(exported["params"]), _flat(source["params"])
    for name in got:
        same = np.array_equal(got[name], want[name])
        assert same == name.startswith("head/"), name
