"""The model families, in one explicit dict: name -> model class, variants, loss, inference pair.

No string registries or importlib: adding a family means adding a line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vos_jax.inference.feelvos import feelvos_propagator
from vos_jax.inference.rvos import rvos_propagator
from vos_jax.models import feelvos, rvos
from vos_jax.training.feelvos_loss import feelvos_loss
from vos_jax.training.rvos_loss import rvos_loss


@dataclass(frozen=True)
class Family:
    model: type  # a Flax Linen module class, built as model(**kwargs)
    variants: dict[str, dict]  # named constructor kwargs ("tiny", "paper", ...)
    propagator: Callable  # (model, variables, max_objects, **options) -> engine.Propagator
    loss: Callable  # (model, params, batch_stats, batch, key, step, **options) -> (loss, aux)
    sampling: str  # the training samples the loss takes (data.pipeline.SAMPLINGS)
    # Defaults of the config's `loss` (the loss's keyword options) and `inference` (the
    # propagator's) groups; a config may change their values, not add keys.
    loss_options: dict = field(default_factory=dict)
    inference_options: dict = field(default_factory=dict)
    # Constructor options a config's `model` group may set beyond family, variant and dtype.
    model_options: dict = field(default_factory=dict)


FAMILIES = {
    "feelvos": Family(
        feelvos.Feelvos,
        feelvos.VARIANTS,
        feelvos_propagator,
        feelvos_loss,
        sampling="triplet",
        # given_frames: frames of a sample with ground truth, 2 for the paper's triplets, 1 to
        # train on the model's own previous predictions over a clip.
        loss_options=dict(
            anneal_steps=100_000, max_per_object=1024, max_displacement=15, given_frames=2
        ),
        inference_options=dict(
            max_objects=10, global_every=1, max_reference_frames=1, max_displacement=15
        ),
    ),
    "rvos": Family(
        rvos.Rvos,
        rvos.VARIANTS,
        rvos_propagator,
        rvos_loss,
        sampling="clip",
        loss_options=dict(given_frames=1),
        # input_height / input_width: the size the model runs at (0: the frames' own).
        inference_options=dict(max_objects=10, input_height=0, input_width=0),
        model_options=dict(one_shot=True),  # False: zero-shot (unsupervised)
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
