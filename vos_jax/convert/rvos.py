"""Import the official RVOS weights (imatge-upc/rvos, PyTorch) into `models.rvos.Rvos` variables.

The official code saves `encoder.pt` (`FeatureExtractor`: `base.*` a torchvision ResNet,
`sk5..sk2` skip convs, `bn5..bn2`) and `decoder.pt` (`RSISMask` one-shot or `RSIS` zero-shot:
`clstm_list.{i}.Gates`, `conv_out`), possibly with DataParallel's `module.` prefix. The
architecture (ResNet depth, hidden width, one-shot or zero-shot) is read off the shapes.
Name map:
    base.<torchvision ResNet>           encoder/base/<backbones.ResNet>  (convert.state_dict)
    sk{n}.weight/bias, bn{n}.*          encoder/sk{n}, encoder/bn{n}      (n = 5, 4, 3, 2)
    clstm_list.{i}.Gates.weight/bias    decoder/cell{i}/gates
    conv_out.weight/bias                decoder/conv_out
Not imported, on purpose: `base.fc.*` (the ImageNet classifier, unused by RVOS) and `fc_stop.*`
(a stop branch of older decoders that the official evaluation deletes too).
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
from vos_jax.models.rvos import Rvos

_BACKBONES = {  # (blocks per stage, bottleneck) -> (backbone, variant)
    ((3, 4, 23, 3), True): ("resnet101", "paper"),
    ((3, 4, 6, 3), True): ("resnet50", "resnet50"),
    ((3, 4, 6, 3), False): ("resnet34", "resnet34"),
}


def architecture(encoder: Mapping[str, np.ndarray], decoder: Mapping[str, np.ndarray]):
    """-> (variant, constructor overrides) of the model the official state dicts describe."""
    stages = blocks_per_stage(encoder, "base.")
    bottleneck = "base.layer1.0.conv3.weight" in encoder
    if (stages, bottleneck) not in _BACKBONES:
        raise StateDictMismatch(
            f"encoder: a ResNet with blocks {stages} (bottleneck={bottleneck}) is not one of "
            "RVOS's backbones (ResNet-34/50/101)"
        )
    if "sk5.weight" not in encoder or "clstm_list.0.Gates.weight" not in decoder:
        raise StateDictMismatch("not an RVOS encoder/decoder pair (no sk5 / clstm_list.0.Gates)")
    _, variant = _BACKBONES[(stages, bottleneck)]
    hidden = int(encoder["sk5.weight"].shape[0])
    gates_in = int(decoder["clstm_list.0.Gates.weight"].shape[1])
    if gates_in not in (3 * hidden, 3 * hidden + 1):
        raise StateDictMismatch(
            f"decoder: clstm_list.0.Gates takes {gates_in} channels; with hidden {hidden} expected "
            f"{3 * hidden} (zero-shot) or {3 * hidden + 1} (one-shot)"
        )
    return variant, dict(hidden=hidden, one_shot=gates_in == 3 * hidden + 1)


def import_rvos(
    encoder: Mapping[str, np.ndarray], decoder: Mapping[str, np.ndarray]
) -> tuple[str, dict, dict]:
    """Official encoder and decoder state dicts -> (variant, overrides, variables) for
    `Rvos.variant(variant, **overrides)`. Every entry is used (or one of the documented
    non-model entries) and every variable set, with matching shapes; else StateDictMismatch."""
    encoder, decoder = strip_prefix(encoder), strip_prefix(decoder)
    variant, overrides = architecture(encoder, decoder)
    model = Rvos.variant(variant, **overrides)
    frame = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.uint8)
    expected = jax.eval_shape(lambda f: model.init(jax.random.key(0), f, num_objects=1), frame)

    merged = {f"encoder.{k}": v for k, v in encoder.items()}
    merged.update({f"decoder.{k}": v for k, v in decoder.items()})
    ignore = [k for k in merged if k.startswith(("encoder.base.fc.", "decoder.fc_stop"))]
    importer = Importer(merged, ignore)
    stages = blocks_per_stage(encoder, "base.")
    bottleneck = "base.layer1.0.conv3.weight" in encoder
    torchvision_resnet(importer, "encoder.base.", ("encoder", "base"), stages, bottleneck)
    for n in (5, 4, 3, 2):
        importer.conv(f"encoder.sk{n}", ("encoder", f"sk{n}"))
        importer.batch_norm(f"encoder.bn{n}", ("encoder", f"bn{n}"))
    for i in range(4):
        importer.conv(f"decoder.clstm_list.{i}.Gates", ("decoder", f"cell{i}", "gates"))
    importer.conv("decoder.conv_out", ("decoder", "conv_out"))
    return variant, overrides, importer.finish(expected)


def split_combined(
    state_dict: Mapping[str, np.ndarray], decoder_prefix: str = "decoder."
) -> tuple[dict, dict]:
    """One mapping with both parts (`encoder.*`, `<decoder_prefix>*`) -> (encoder, decoder)."""
    encoder = strip_prefix(state_dict, "encoder.")
    decoder = strip_prefix(state_dict, decoder_prefix)
    if not encoder or not decoder:
        raise StateDictMismatch(
            f"expected entries under 'encoder.' and {decoder_prefix!r}; found prefixes "
            f"{sorted({k.split('.')[0] for k in state_dict})}"
        )
    return encoder, decoder


def read_official(path: str | os.PathLike, decoder_prefix: str = "decoder.") -> tuple[dict, dict]:
    """(encoder, decoder) state dicts from the official layout, a folder with `encoder.pt` and
    `decoder.pt`, or from one file holding both (`encoder.*`, `<decoder_prefix>*`)."""
    path = Path(path)
    if path.is_dir():
        return read_state_dict(path / "encoder.pt"), read_state_dict(path / "decoder.pt")
    return split_combined(read_state_dict(path), decoder_prefix)


def convert(
    checkpoint: str | os.PathLike, out: str | os.PathLike, decoder_prefix: str = "decoder."
) -> Path:
    """`vos-jax convert rvos`: official weights -> a published vos-jax checkpoint folder at `out`
    (refused if it exists)."""
    from vos_jax.io.published import save_model

    if Path(out).exists():
        raise FileExistsError(f"{out}: already exists; choose a new checkpoint folder")
    encoder, decoder = read_official(checkpoint, decoder_prefix)
    variant, overrides, variables = import_rvos(encoder, decoder)
    mode = "one-shot" if overrides["one_shot"] else "zero-shot"
    card = (
        f"# rvos ({variant}, {mode})\n\nImported from the official RVOS weights {checkpoint} "
        "(imatge-upc/rvos) by `vos-jax convert rvos`.\n"
    )
    return save_model(out, "rvos", variant, variables, overrides, card=card)
