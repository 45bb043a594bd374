"""RVOS with the official weights imported reproduces the official code (imatge-upc/rvos).

The fixture (`RVOS_PARITY_FIXTURE`, default ../shared/fixtures/rvos_parity.npz; read its `about`)
holds a state-dict manifest + salt (../shared/fixtures/official_weights.py regenerates the exact
weights), calibrated BatchNorm statistics, two real DAVIS frames, first-frame masks of 3 slots,
the 4 encoder skips and the official one-shot and zero-shot outputs of both frames (the second
frame goes through the temporal recurrence).
"""

import os
from pathlib import Path

import jax
import numpy as np
import pytest

from tests.shared_data import official_state_dict, shared_path
from vos_jax.convert.rvos import import_rvos, split_combined
from vos_jax.families.rvos import rollout
from vos_jax.models.rvos import Rvos

SLOTS = 3
# Outputs (sigmoid probabilities) must match within 1e-4 (the bound; measured 2.3e-6).
# The skips are compared too. The deep ones carry float32 rounding: on these stand-in weights
# our own float32 and float64 layer4 differ by 2.5e-3 (magnitude 15), and the fixture (PyTorch,
# float32) is 1.5e-3 from our float64 skip5, so any float32 implementation lands ~1e-3 away.
SKIP_ATOL = {5: 5e-3, 4: 2e-3, 3: 1e-4, 2: 1e-4}


def _fixture_path() -> Path:
    if os.environ.get("RVOS_PARITY_FIXTURE"):
        return Path(os.environ["RVOS_PARITY_FIXTURE"])
    return shared_path("fixtures/rvos_parity.npz")


@pytest.fixture(scope="module")
def fixture():
    data = dict(np.load(_fixture_path()))
    state_dict = official_state_dict(data)
    frames = np.transpose(data["frames"], (0, 2, 3, 1))  # [T, H, W, 3], already normalised
    height, width = frames.shape[1:3]

    def slots_last(key):  # [1, O, H*W] -> [1, H, W, O]
        return data[key].reshape(1, -1, height, width).transpose(0, 2, 3, 1)

    outputs = {k: slots_last(k) for k in data if k.startswith(("oneshot_", "zeroshot_"))}
    return dict(
        state_dict=state_dict,
        frames=frames,
        init_masks=slots_last("init_masks"),
        outputs=outputs,
        skips={n: data[f"encoder_skip{n}"].transpose(0, 2, 3, 1) for n in (5, 4, 3, 2)},
    )


def _imported(fixture, mode):
    encoder, decoder = split_combined(fixture["state_dict"], f"decoder_{mode}.")
    variant, overrides, variables = import_rvos(encoder, decoder)
    return Rvos.variant(variant, **overrides), variant, overrides, variables


@pytest.mark.parametrize("mode", ["oneshot", "zeroshot"])
def test_outputs_match_the_official_code(fixture, mode):
    model, variant, overrides, variables = _imported(fixture, mode)
    assert variant == "paper" and overrides == dict(hidden=128, one_shot=mode == "oneshot")
    frames = fixture["frames"][None]  # [1, T, H, W, 3], normalised: skip our normalisation
    first = fixture["init_masks"] if mode == "oneshot" else None
    probs = rollout(model, variables, frames, first, SLOTS, normalised=True)  # [1, T, H, W, O]
    for t in range(frames.shape[1]):
        want = fixture["outputs"][f"{mode}_frame{t}"]
        got = np.asarray(probs[:, t])
        print(mode, t, "max abs difference", np.abs(got - want).max())
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0, err_msg=f"{mode} frame {t}")
    if mode == "oneshot":  # frame 1 really depends on frame 0 (temporal state, previous masks)
        alone = rollout(model, variables, frames[:, 1:], first, SLOTS, normalised=True)
        assert np.abs(np.asarray(alone[:, 0] - probs[:, 1])).max() > 1e-3


def test_encoder_skips_match_the_official_code(fixture):
    model, _, _, variables = _imported(fixture, "oneshot")
    frame = fixture["frames"][:1]
    skips = jax.jit(lambda v, x: model.apply(v, x, method=lambda m, x: m.encoder(x)))(
        variables, frame
    )
    for n, got in zip((5, 4, 3, 2), skips, strict=True):
        want = fixture["skips"][n]
        assert got.shape == want.shape
        np.testing.assert_allclose(np.asarray(got), want, atol=SKIP_ATOL[n], rtol=0, err_msg=f"{n}")
