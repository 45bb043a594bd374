"""The model families, in one explicit dict: name -> model class, variants, loss, inference pair.

No string registries or importlib: adding a family means adding a line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vos_jax.inference.feelvos import feelvos_propagator
from vos_jax.models import feelvos
from vos_jax.training.feelvos_loss import feelvos_loss


@dataclass(frozen=True)
class Family:
    model: type  # a Flax Linen module class, built as model(**kwargs)
    variants: dict[str, dict]  # named constructor kwargs ("tiny", "paper", ...)
    propagator: Callable  # (model, variables, max_objects, **options) -> engine.Propagator
    loss: Callable  # (model, params, batch_stats, batch, key, step, **options) -> (loss, aux)
    sampling: str  # the training samples the loss takes (data.pipeline.SAMPLINGS)


FAMILIES = {
    "feelvos": Family(
        feelvos.Feelvos, feelvos.VARIANTS, feelvos_propagator, feelvos_loss, sampling="triplet"
    ),
}


def build_model(family: str, variant: str, **overrides):
    """`family`'s `variant` model with constructor overrides; -> (model, kwargs used)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")
    variants = FAMILIES[family].variants
    if variant not in variants:
        raise ValueError(f"unknown {family} variant {variant!r}; known: {', '.join(variants)}")
    kwargs = {**variants[variant], **overrides}
    return FAMILIES[family].model(**kwargs), kwargs
