"""Importers of published weights (PyTorch state dicts as NumPy arrays), with explicit name maps."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Converter:
    """An importer of published weights (`vos-jax convert NAME`): a family's official weights
    (its `converter`) or a pretrained backbone (`backbone_converters`).

    `convert(out, **options) -> Path` writes a published checkpoint folder; `options` is the
    options dataclass of its arguments (each field a `--flag`; fields without a default are
    required); `conventions` states what the imported weights assume that differs from JAX's
    defaults (padding, pooling rounding, upsampling corners), which the model follows; `name`:
    the subcommand, where it is not the family's name (`vos-jax convert mediapipe` writes a
    `portrait` model)."""

    convert: Callable[..., Any]
    options: type
    conventions: str
    name: str | None = None


def backbone_converters() -> dict[str, Converter]:
    """Importers not tied to a model family: pretrained backbones that a family's
    `model.init_checkpoint` takes. A function, so importing the package does not import the
    models."""
    from vos_jax.convert import resnet

    return {"resnet": Converter(resnet.convert, resnet.ImportOptions, resnet.CONVENTIONS)}
