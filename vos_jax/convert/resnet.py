"""Import a torchvision ResNet (18/34/50/101/152) state dict into `models.backbones.ResNet`.

`vos-jax convert resnet --torch resnet101.pth --out DIR` writes the ImageNet-pretrained DeepLab
backbone that FEELVOS and RVOS start from (`model.init_checkpoint`). `backbones.ResNet` copies
torchvision's layout, so the name map is one-to-one (`convert.state_dict.torchvision_resnet`):
    conv1, bn1                              conv1, bn1
    layer{s}.{b}.conv{i}, .bn{i}            layer{s}_{b}/conv{i}, /bn{i}
    layer{s}.0.downsample.0, .1             layer{s}_0/downsample_conv, /downsample_bn
The depth is read off the shapes (blocks per stage, and whether blocks have a third conv). Not
imported, on purpose: `fc.*` (the ImageNet classifier; a backbone has none). Dilation changes no
shape, so one converted backbone serves output strides 32, 16 and 8 (torchvision's
`replace_stride_with_dilation` [F, F, T] and [F, T, T]).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from vos_jax.convert.state_dict import (
    Importer,
    StateDictMismatch,
    blocks_per_stage,
    read_state_dict,
    strip_prefix,
    torchvision_resnet,
)
from vos_jax.models.backbones import RESNETS, ResNet

CLASSIFIER = ("fc.weight", "fc.bias")  # ImageNet head: in the state dict, not in a backbone
CONVENTIONS = (
    "torchvision's: RGB input normalised with the ImageNet mean/std, symmetric conv padding, "
    "-inf padded 3x3/2 max-pooling, stride on the bottleneck's 3x3 conv (v1.5), BatchNorm "
    "eps 1e-5 (the backbone follows all of them); any output stride (8/16/32) loads the weights"
)
_ARCHS = {(spec["stage_sizes"], spec["bottleneck"]): name for name, spec in RESNETS.items()}


@dataclasses.dataclass(frozen=True)
class ImportOptions:
    """Arguments of `vos-jax convert resnet` (each a `--flag`; the CLI builds the parser)."""

    torch: str = dataclasses.field(
        metadata={"help": "torchvision ResNet state dict (.pth/.pt via torch, or .npz)"}
    )


def architecture(state_dict: Mapping[str, np.ndarray]) -> str:
    """The `RESNETS` name of the torchvision ResNet whose entries (no prefix) `state_dict` has.
    Bottleneck if any block has a third conv, so a missing `layer1.0.conv3.weight` is reported
    as missing rather than read as a BasicBlock ResNet."""
    stages = blocks_per_stage(state_dict, "")
    bottleneck = any(
        name.startswith("layer") and (".conv3." in name or ".bn3." in name) for name in state_dict
    )
    if (stages, bottleneck) not in _ARCHS:
        raise StateDictMismatch(
            f"state dict: a ResNet with blocks per stage {stages} (bottleneck={bottleneck}) is "
            f"not a torchvision ResNet ({', '.join(RESNETS)})"
        )
    return _ARCHS[(stages, bottleneck)]


def expected_variables(arch: str):
    """Shapes and dtypes of `ResNet.from_name(arch)`'s variables (params, batch_stats), without
    computing them; the output stride and frame size change none of them."""
    model = ResNet.from_name(arch)
    frame = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)  # [B, H, W, 3], normalised
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x), frame)


def import_resnet(state_dict: Mapping[str, np.ndarray]) -> tuple[str, dict]:
    """A torchvision ResNet state dict -> (arch, variables of `ResNet.from_name(arch)`). Every
    entry but the classifier is used, every variable set, shapes match; else StateDictMismatch
    naming the entry or variable."""
    state_dict = strip_prefix(state_dict)
    arch = architecture(state_dict)
    spec = RESNETS[arch]
    importer = Importer(state_dict, ignore=CLASSIFIER)
    torchvision_resnet(importer, "", (), spec["stage_sizes"], spec["bottleneck"])
    return arch, importer.finish(expected_variables(arch))


def model_card(arch: str, source: str | os.PathLike) -> str:
    return (
        f"# backbone ({arch})\n\n"
        f"A torchvision {arch} imported from {source} by `vos-jax convert resnet`, as the "
        "variables (params, batch_stats) of `vos_jax.models.backbones.ResNet.from_name"
        f"({arch!r})` without the ImageNet classifier (`fc`). It is not a segmentation model: "
        "name this folder as `model.init_checkpoint` of a model with a "
        f"{arch} backbone (FEELVOS, RVOS) to start training from it. Dilation changes no shape, "
        "so the weights serve output strides 32, 16 and 8.\n"
    )


def convert(torch: str | os.PathLike, out: str | os.PathLike) -> Path:
    """`vos-jax convert resnet`: a torchvision state dict file -> a published checkpoint folder
    at `out` (family "backbone", variant the arch). `out` is refused if it exists, before
    anything is read."""
    from vos_jax.io.published import save_model

    if Path(out).exists():
        raise FileExistsError(f"{out}: already exists; choose a new checkpoint folder")
    arch, variables = import_resnet(read_state_dict(torch))
    return save_model(
        out,
        family="backbone",
        variant=arch,
        variables=variables,
        kwargs={},
        card=model_card(arch, torch),
    )
