"""Typed family options: a frozen dataclass per group (model, loss, inference), whose fields are
the keys a config group or a command-line flag may set.

Fields are ints, floats, bools, strings, enums (`enum.Enum` subclasses, given by value) or tuples;
`field(metadata={"help": ...})` documents a field (the CLI shows it). A dataclass checks its
ranges in `__post_init__` with `require`, so a bad value fails with the key named, both from a
config (`config.loss.given_frames: ...`) and from Python (`LossOptions(given_frames=0)`).
"""

from __future__ import annotations

import dataclasses
import enum
import numbers
import typing
from collections.abc import Mapping
from typing import Any


class OptionError(ValueError):
    """An option has a bad value; the message starts with the option's name."""


def require(ok: bool, key: str, expected: str, value: Any) -> None:
    if not ok:
        raise OptionError(f"{key}: expected {expected}, got {value!r}")


def frames_after_given(sample, given_frames: int):
    """`sample` (a data.pipeline.SampleConfig), checked to leave frames to predict after the
    `given_frames` that come with ground truth (the check of every recurrent family's loss)."""
    expected = f"< data.num_frames = {sample.num_frames}"
    require(given_frames < sample.num_frames, "given_frames", expected, given_frames)
    return sample


def field_types(cls) -> dict[str, Any]:
    """{field name: its resolved type} of an options dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def defaults(cls) -> dict[str, Any]:
    """{field: default} of an options dataclass, enums by value (what a config group holds)."""
    return to_dict(cls())


def to_dict(options) -> dict[str, Any]:
    """An options instance as plain values (enums by value), for configs and JSON."""
    out = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        out[f.name] = value.value if isinstance(value, enum.Enum) else value
    return out


def _is_kind(kind: Any, value: Any) -> bool:
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return value in {m.value for m in kind} or isinstance(value, kind)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if typing.get_origin(kind) is tuple:
        return isinstance(value, tuple | list)
    return isinstance(value, kind)


def _expected(kind: Any) -> str:
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return f"one of {[m.value for m in kind]}"
    return getattr(kind, "__name__", str(kind))


def build(cls, values: Mapping[str, Any]):
    """An options instance from plain values: unknown keys, wrong kinds and (through the
    dataclass's `__post_init__`) bad ranges raise OptionError naming the key."""
    types = field_types(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in types:
            raise OptionError(f"{key}: unknown option (known: {', '.join(types)})")
        kind = types[key]
        if not _is_kind(kind, value):
            raise OptionError(f"{key}: expected {_expected(kind)}, got {value!r}")
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            value = kind(value)
        elif kind is float:
            value = float(value)
        elif typing.get_origin(kind) is tuple:
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def flag_spec(cls) -> dict[str, tuple[Any, str, bool]]:
    """{field: (argparse type, help, required)} for command-line flags of an options dataclass;
    a field without a default is a required flag."""
    spec = {}
    for f in dataclasses.fields(cls):
        kind = field_types(cls)[f.name]
        parse = str if isinstance(kind, type) and issubclass(kind, enum.Enum) else kind
        parse = _parse_bool if parse is bool else parse
        required = f.default is dataclasses.MISSING
        default = "" if required else f" (default {getattr(f.default, 'value', f.default)})"
        spec[f.name] = (parse, f.metadata.get("help", "") + default, required)
    return spec


def _parse_bool(text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text.lower() in ("true", "1")


class Reduction(enum.Enum):
    """How a loss combines its parts (videos of a batch, frames of a clip): the official
    FEELVOS and RVOS code sum them."""

    SUM = "sum"
    MEAN = "mean"

    def __call__(self, parts):
        return parts.sum() if self is Reduction.SUM else parts.mean()
