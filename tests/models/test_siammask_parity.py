"""SiamMask with the official weights imported reproduces the official code (foolwood/SiamMask,
experiments/siammask_sharp `Custom`).

The fixture (`SIAMMASK_PARITY_FIXTURE`, default ../shared/fixtures/siammask_parity.npz; read its
`about`) holds a state-dict manifest + salt (../shared/fixtures/official_weights.py regenerates the
weights), calibrated BatchNorm statistics (`override:`), scale factors of the refine module's
weights (`scale:`), real DAVIS template and search crops (NCHW, BGR 0..255) and what the official
model computes from them: template features, RPN scores and boxes, the mask branch's correlation,
the 3969-channel mask head at 3 positions and the refined masks there.
"""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.shared_data import official_state_dict, shared_path
from vos_jax.convert.siammask import import_siammask
from vos_jax.models.siammask import SiamMask

# Every output within 1e-4 of the fixture's largest magnitude (the bound; measured: at
# most 1.2e-5, the template features).
RELATIVE = 1e-4


def fixture_path() -> Path:
    if os.environ.get("SIAMMASK_PARITY_FIXTURE"):
        return Path(os.environ["SIAMMASK_PARITY_FIXTURE"])
    return shared_path("fixtures/siammask_parity.npz")


def stand_in_state_dict(*fixtures) -> dict:
    """The official run's weights: the first fixture's manifest, salt and overrides, then each
    fixture's `scale:<name>` factors applied (in float32) in order."""
    state_dict = official_state_dict(fixtures[0])
    for data in fixtures:
        for key in data:
            if key.startswith("scale:"):
                name = key.removeprefix("scale:")
                assert name in state_dict, f"scale of an unknown entry {name}"
                state_dict[name] = (state_dict[name] * np.float32(data[key])).astype(np.float32)
    return state_dict


@pytest.fixture(scope="module")
def official():
    data = dict(np.load(fixture_path()))
    variant, overrides, variables = import_siammask(stand_in_state_dict(data))
    return data, SiamMask.variant(variant, **overrides), variables


def nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


def close(name, got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    error = np.max(np.abs(got - want)) / np.max(np.abs(want))
    assert error <= RELATIVE, f"{name}: {error:.2e} of the largest magnitude"


def test_outputs_match_the_official_code(official):
    data, model, variables = official
    template = jnp.asarray(nhwc(data["template"]))
    search = jnp.asarray(nhwc(data["search"]))
    zf = jax.jit(lambda z: model.apply(variables, z, method=SiamMask.template))(template)
    out = jax.jit(lambda zf, x: model.apply(variables, zf, x, method=SiamMask.track))(zf, search)
    close("template features", zf, nhwc(data["zf"]))
    close("cls", out.cls, nhwc(data["cls"]))
    close("loc", out.loc, nhwc(data["loc"]))
    close("mask correlation", out.corr, nhwc(data["corr_feature"]))

    positions = np.asarray(data["positions"])  # (row, col)
    head = model.apply(variables, out.corr, method=SiamMask.mask_head)
    close("mask head", np.asarray(head)[0, positions[:, 0], positions[:, 1]], data["mask_head_at"])

    n = len(positions)
    skips = jax.tree.map(lambda a: jnp.repeat(a, n, 0), out.skips)
    refined = model.apply(
        variables, skips, jnp.repeat(out.corr, n, 0), positions, method=SiamMask.refine
    )
    close("refined masks", np.asarray(refined).reshape(n, 1, -1), data["refined"])


def test_shapes_follow_the_official_geometry(official):
    """Template 127 -> 7x7 features, search 255 -> 25x25 maps, stride 8; the refine skips at
    125 / 63 / 31 (conv1 unpadded, layer2's first block unpadded)."""
    _, model, variables = official
    z = jax.ShapeDtypeStruct((2, 127, 127, 3), jnp.float32)
    x = jax.ShapeDtypeStruct((2, 255, 255, 3), jnp.float32)
    out, head, refined = jax.eval_shape(lambda z, x: model.apply(variables, z, x), z, x)
    assert out.cls.shape == (2, 25, 25, 10) and out.loc.shape == (2, 25, 25, 20)
    assert out.corr.shape == (2, 25, 25, 256) and head.shape == (2, 25, 25, 3969)
    assert [s.shape[1:] for s in out.skips] == [(125, 125, 64), (63, 63, 256), (31, 31, 512)]
    assert refined.shape == (2, 127, 127)
