"""Shared cases of the model tests: sizes, random variables without a compiled init, and the tiny
FEELVOS (initialised once, with an rbg key: XLA:CPU compiles random-number generation slowly;
its encoder variables double as the tiny ResNet's)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vos_jax.models.feelvos import (
    VARIANTS,
    Feelvos,
)

B, H, W = 2, 62, 90  # stride-4 grid: ceil(62 / 4) = 16, ceil(90 / 4) = 23
h, w = 16, 23
TINY = VARIANTS["tiny"]


def count_params(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def abstract_init(model, *args, **kwargs):
    return jax.eval_shape(lambda: model.init(jax.random.key(0), *args, **kwargs))


def numpy_variables(model, x, seed=0):
    """Random variables without compiling an init (fast on CPU): He-normal kernels, BN running
    variance near 1, small random biases / means / scales."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = jax.tree_util.keystr(path)
        if "kernel" in name:
            fan_in = int(np.prod(leaf.shape[:-1]))
            return rng.normal(0, np.sqrt(2.0 / fan_in), leaf.shape).astype(np.float32)
        if "'var'" in name or "'scale'" in name:
            return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
        return rng.normal(0, 0.1, leaf.shape).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fill, abstract_init(model, x))


def uniform(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(size=shape), jnp.float32)


def normal(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def make_tiny():
    model = Feelvos.variant("tiny")
    frames = jnp.round(uniform((B, H, W, 3), seed=1) * 255) / 255  # exact as uint8
    key = jax.random.key(0, impl="unsafe_rbg")
    variables = jax.jit(lambda k, x: model.init(k, x, num_objects=2))(key, frames)
    return model, variables, frames


def make_tiny_features(tiny):
    model, variables, frames = tiny
    features = jax.jit(lambda v, x: model.apply(v, x, method=Feelvos.features))
    return features(variables, frames)


def make_segment(tiny):
    """Jitted `Feelvos.segment` in eval (False) and train (True) mode, shared by the tests."""
    model, _, _ = tiny

    def run(variables, feats, g, loc, p, valid, train):
        out, _ = model.apply(
            variables, feats, g, loc, p, valid, train, method=Feelvos.segment,
            mutable=["batch_stats"],
        )  # fmt: skip
        return out

    fn = jax.jit(run, static_argnames="train")
    return {train: functools.partial(fn, train=train) for train in (False, True)}


def random_maps(num_objects, seed=0):
    return [uniform((B, h, w, num_objects), seed + i) for i in range(3)]
