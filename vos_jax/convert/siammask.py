"""Import the official SiamMask weights (foolwood/SiamMask, PyTorch; `SiamMask_DAVIS.pth`,
`SiamMask_VOT.pth`) into `models.siammask.SiamMask` variables.

The published files hold the state dict of the "sharp" `Custom` model, plain or under a
`state_dict` key (training checkpoints), possibly with DataParallel's `module.` prefix
(`read_state_dict` and `strip_prefix` take care of both). Name map:
    features.features.<custom ResNet-50>     backbone/<models.siammask.SiamResNet>
    features.downsample.downsample.0 / .1    adjust_conv / adjust_bn
    rpn_model.{cls,loc}, mask_model.mask:    cls, loc, mask (DepthCorr):
        conv_kernel.0 / .1, conv_search.0 / .1   conv_kernel / bn_kernel, conv_search / bn_search
        head.0 / .1 / .3                         head_conv / head_bn / head_out
    refine_model.{v0,v1,v2,h0,h1,h2}.{0,2}   refine_module/{name}_{0,1}
    refine_model.deconv [K, 32, 15, 15]      refine_module/deconv_kernel [15, 15, K, 32]
    refine_model.post{0,1,2}                 refine_module/post{0,1,2}
The widths (backbone width, adjust, heads, mask size) are read off the shapes.
"""

from __future__ import annotations

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
from vos_jax.models.siammask import SiamMask

CONVENTIONS = (
    "the official code's: BGR inputs 0..255 without normalisation, an unpadded conv1, 3x3 "
    "shortcuts, PyTorch's floor-index nearest upsampling in the refine module (the model follows "
    "all of them)"
)


def architecture(state_dict: Mapping[str, np.ndarray]) -> tuple[str, dict]:
    """-> (variant, constructor overrides) of the model the official state dict describes."""
    if "features.features.conv1.weight" not in state_dict or "refine_model.deconv.weight" not in (
        state_dict
    ):
        raise StateDictMismatch(
            "not a SiamMask sharp model: no features.features.conv1 / refine_model.deconv "
            f"(top-level names: {sorted({k.split('.')[0] for k in state_dict})})"
        )
    stages = blocks_per_stage(state_dict, "features.features.")
    if stages[3]:
        raise StateDictMismatch("features.features.layer4 present: SiamMask's backbone stops at 3")
    overrides = dict(
        stage_sizes=stages[:3],
        width=int(state_dict["features.features.conv1.weight"].shape[0]),
        adjust=int(state_dict["features.downsample.downsample.0.weight"].shape[0]),
        hidden=int(state_dict["rpn_model.cls.head.0.weight"].shape[0]),
        anchors=int(state_dict["rpn_model.cls.head.3.weight"].shape[0]) // 2,
        mask_size=int(round(np.sqrt(state_dict["mask_model.mask.head.3.weight"].shape[0]))),
    )
    paper = SiamMask()
    same = all(getattr(paper, k) == v for k, v in overrides.items())
    return ("paper", {}) if same else ("paper", overrides)


def _depth_corr(importer: Importer, prefix: str, path: tuple[str, ...]) -> None:
    for part, conv, bn in (("conv_kernel", "conv_kernel", "bn_kernel"),
                           ("conv_search", "conv_search", "bn_search")):  # fmt: skip
        importer.conv(f"{prefix}.{part}.0", (*path, conv), bias=False)
        importer.batch_norm(f"{prefix}.{part}.1", (*path, bn))
    importer.conv(f"{prefix}.head.0", (*path, "head_conv"), bias=False)
    importer.batch_norm(f"{prefix}.head.1", (*path, "head_bn"))
    importer.conv(f"{prefix}.head.3", (*path, "head_out"))


def import_siammask(state_dict: Mapping[str, np.ndarray]) -> tuple[str, dict, dict]:
    """Official state dict -> (variant, overrides, variables) for `SiamMask.variant(variant,
    **overrides)`. Every entry is used and every variable set with its shape; else
    StateDictMismatch naming the entry."""
    state_dict = strip_prefix(state_dict)
    variant, overrides = architecture(state_dict)
    model = SiamMask.variant(variant, **overrides)
    z = jax.ShapeDtypeStruct((1, 127, 127, 3), jnp.float32)
    x = jax.ShapeDtypeStruct((1, 255, 255, 3), jnp.float32)
    expected = jax.eval_shape(lambda z, x: model.init(jax.random.key(0), z, x), z, x)

    importer = Importer(state_dict)
    stages = blocks_per_stage(state_dict, "features.features.")[:3]
    torchvision_resnet(importer, "features.features.", ("backbone",), stages, bottleneck=True)
    importer.conv("features.downsample.downsample.0", ("adjust_conv",), bias=False)
    importer.batch_norm("features.downsample.downsample.1", ("adjust_bn",))
    _depth_corr(importer, "rpn_model.cls", ("cls",))
    _depth_corr(importer, "rpn_model.loc", ("loc",))
    _depth_corr(importer, "mask_model.mask", ("mask",))
    refine = ("refine_module",)
    for name in ("v0", "v1", "v2", "h0", "h1", "h2"):
        importer.conv(f"refine_model.{name}.0", (*refine, f"{name}_0"))
        importer.conv(f"refine_model.{name}.2", (*refine, f"{name}_1"))
    for name in ("post0", "post1", "post2"):
        importer.conv(f"refine_model.{name}", (*refine, name))
    deconv = importer.take("refine_model.deconv.weight")  # [in, out, kh, kw]
    importer.set(
        ("params", *refine, "deconv_kernel"),
        "refine_model.deconv.weight",
        np.transpose(deconv, (2, 3, 0, 1)),
    )
    importer.set(("params", *refine, "deconv_bias"), "refine_model.deconv.bias")
    return variant, overrides, importer.finish(expected)


def convert(torch: str | os.PathLike, out: str | os.PathLike) -> Path:
    """`vos-jax convert siammask`: official weights -> a published vos-jax checkpoint folder at
    `out` (refused if it exists)."""
    from vos_jax.io.published import save_model

    if Path(out).exists():
        raise FileExistsError(f"{out}: already exists; choose a new checkpoint folder")
    variant, overrides, variables = import_siammask(read_state_dict(torch))
    card = (
        f"# siammask ({variant})\n\nImported from the official SiamMask weights {torch} "
        "(foolwood/SiamMask, experiments/siammask_sharp) by `vos-jax convert siammask`.\n"
    )
    return save_model(out, "siammask", variant, variables, overrides, card=card)
