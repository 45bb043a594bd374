"""The shape annotations of vos_jax are checked, not decoration: tests/conftest.py installs
jaxtyping's import hook with a runtime checker on every vos_jax module, so a call that breaks an
annotation raises here. These tests fail if that check is ever silently off."""

import jax.numpy as jnp
import pytest
from jaxtyping import TypeCheckError

from vos_jax.losses import soft_iou_loss
from vos_jax.ops.matching import global_matching

QUERY = jnp.zeros((1, 4, 5, 3))  # [B, H, W, D]
REFERENCE = jnp.zeros((1, 6, 3))  # [B, N, D]
LABELS = jnp.zeros((1, 6), jnp.int32)  # [B, N]


def test_calls_that_match_the_annotations_pass():
    assert soft_iou_loss(jnp.ones((2, 5)), jnp.ones((2, 5))).shape == (2,)
    assert soft_iou_loss(jnp.ones((2, 3, 1, 5)), jnp.ones((2, 1, 3, 5))).shape == (2, 3, 3)
    assert global_matching(QUERY, REFERENCE, LABELS, 2).shape == (1, 4, 5, 2)


def test_a_wrong_shape_or_dtype_raises():
    with pytest.raises(TypeCheckError):  # N: 5 vs 4
        soft_iou_loss(jnp.ones((2, 5)), jnp.ones((2, 4)))
    with pytest.raises(TypeCheckError):  # Float expected
        soft_iou_loss(jnp.ones((2, 5), jnp.int32), jnp.ones((2, 5)))
    with pytest.raises(TypeCheckError):  # D: 3 vs 4; a jitted function is checked when traced
        global_matching(QUERY, jnp.zeros((1, 6, 4)), LABELS, 2)
    with pytest.raises(TypeCheckError):  # labels must be integers
        global_matching(QUERY, REFERENCE, LABELS.astype(jnp.float32), 2)
