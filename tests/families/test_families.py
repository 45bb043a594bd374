"""The families package: every family satisfies the `Family` protocol, models build by variant,
and published checkpoints round-trip through `save_model` / `load_model`."""

import dataclasses

import jax
import numpy as np
import pytest

from tests.conftest import SIZE
from vos_jax import families
from vos_jax.families import FAMILIES, Family, build_model, load_model, save_model
from vos_jax.families.options import defaults


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_satisfies_the_protocol(name):
    family = FAMILIES[name]
    assert isinstance(family, Family)
    for group in (family.ModelOptions, family.LossOptions, family.InferenceOptions):
        assert dataclasses.is_dataclass(group) and group.__dataclass_params__.frozen
        assert isinstance(defaults(group), dict)
    assert {"tiny", "paper"} <= set(family.VARIANTS)
    assert families.get(name) is family


def test_unknown_family_and_variant_are_named():
    with pytest.raises(ValueError, match="unknown model family 'nope'"):
        families.get("nope")
    with pytest.raises(ValueError, match="unknown feelvos variant 'huge'"):
        build_model("feelvos", "huge")
    model, kwargs = build_model("rvos", "tiny", one_shot=False)
    assert not model.one_shot and kwargs["hidden"] == 16


def test_published_checkpoint_round_trip(tiny, tmp_path):
    model, variables = tiny
    path = save_model(tmp_path / "ckpt", "feelvos", "tiny", variables, metrics={"J&F": 0.5})
    family, loaded, restored, meta = load_model(path)
    assert (
        family is FAMILIES["feelvos"]
        and meta["family"] == "feelvos"
        and meta["metrics"] == {"J&F": 0.5}
    )
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    frames = np.zeros((1, *SIZE, 3), np.uint8)
    apply = jax.jit(lambda m, v: m.apply(v, frames, num_objects=2)[0], static_argnums=0)
    np.testing.assert_array_equal(apply(loaded, restored), apply(model, variables))
    with pytest.raises(FileExistsError):
        save_model(path, "feelvos", "tiny", variables)
    with pytest.raises(FileNotFoundError, match="not a vos-jax checkpoint"):
        load_model(tmp_path / "nothing")
    with pytest.raises(ValueError, match="unknown feelvos variant"):
        save_model(tmp_path / "bad", "feelvos", "huge", variables)
    assert not (tmp_path / "bad").exists()  # validated before anything is written
