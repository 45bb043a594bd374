"""The model families: the `Family` protocol and the one explicit dict, `FAMILIES`.

A family is a module of this package that composes one model (`models/`) with pure ops (`ops/`)
into everything the generic layers need; `training/`, `data/`, `io/`, `inference/`, the CLI,
`train.py` and `eval.py` receive a `Family` and never name one. No string registries or
importlib: the dict below is the only list.

Adding a family (e.g. `foo`):
1. `vos_jax/models/foo.py`: the Flax module (`init`/`apply`, no state hidden in it) and its
   `VARIANTS` ({"tiny": {...}, "paper": {...}}: constructor kwargs).
2. `vos_jax/families/foo.py`, the module-level names of `Family` below:
   `MODEL`, `VARIANTS`, `SAMPLING` (the training sample: "triplet", "clip" or "static");
   `ModelOptions`, `LossOptions`, `InferenceOptions` (frozen dataclasses of typed fields, range
   checks in `__post_init__` with `options.require`: they become the config groups `model`,
   `loss`, `inference` and the CLI's engine flags); `init_variables(model, key, sample)`;
   `training_sample(sample_config, loss_options)`; `loss(model, params, batch_stats, batch, key,
   step, **loss_options)`; `propagator(model, variables, **inference_options)` returning a
   `propagator.Propagator` whose `step` returns a `propagator.Prediction` (labels come from
   its `probs`; boxes and scores are optional); `converter` (a `vos_jax.convert.Converter`, or
   None).
   Write the recurrence once and use it in both the loss and the propagator.
3. One line in `FAMILIES` below, and `vos_jax/configs/foo_<dataset>.py` built on
   `training.config.base_config("foo")`.
Then `train.py`, `eval.py --checkpoint`, `vos-jax segment` and `vos-jax convert foo` work for it
(tests/families/toy.py is such a family, trained and segmented in tests/families/test_toy.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from vos_jax.convert import Converter
from vos_jax.families import feelvos, portrait, rvos, siammask
from vos_jax.families.propagator import Propagator
from vos_jax.io import published


@runtime_checkable
class Family(Protocol):
    """What a family module provides (its module-level names); see the module docstring."""

    MODEL: type
    VARIANTS: Mapping[str, Mapping[str, Any]]
    SAMPLING: str
    ModelOptions: type
    LossOptions: type
    InferenceOptions: type
    converter: Converter | None
    init_variables: Callable[..., dict]
    training_sample: Callable[..., Any]
    loss: Callable[..., tuple]
    propagator: Callable[..., Propagator]


FAMILIES: dict[str, Family] = {
    "feelvos": feelvos, "rvos": rvos, "siammask": siammask, "portrait": portrait,
}  # fmt: skip


def get(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def build_model(family: str, variant: str, **overrides):
    """`family`'s `variant` model with constructor overrides; -> (model, kwargs used)."""
    variants = get(family).VARIANTS
    if variant not in variants:
        raise ValueError(f"unknown {family} variant {variant!r}; known: {', '.join(variants)}")
    kwargs = {**variants[variant], **overrides}
    return get(family).MODEL(**kwargs), kwargs


def save_model(
    path: str | os.PathLike,
    family: str,
    variant: str,
    variables,
    kwargs: dict | None = None,
    metrics: dict | None = None,
    card: str = "",
    inference: dict | None = None,
):
    """Write a published checkpoint folder (io.published) after checking that `family`'s
    `variant` with constructor `kwargs` builds; refuses to replace an existing folder."""
    build_model(family, variant, **(kwargs or {}))
    return published.save_model(path, family, variant, variables, kwargs, metrics, card, inference)


def load_model(path: str | os.PathLike):
    """-> (family, model, variables, meta) of a published checkpoint folder."""
    meta, variables = published.read_model(path)
    model, _ = build_model(meta["family"], meta["variant"], **meta["kwargs"])
    return get(meta["family"]), model, jax.tree.map(jnp.asarray, variables), meta
