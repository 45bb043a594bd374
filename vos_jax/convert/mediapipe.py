"""Import MediaPipe's segmentation models into the portrait family: the hair model
(`hair_segmentation.tflite`, the published model of Google's mobile real-time video
segmentation) into `models.portrait.HairNet` variables (here), the selfie models into
`models.selfie.SelfieNet` (convert/selfie.py); `import_graph` tells them apart.

The mapping follows the graph's dataflow, not the order of its operators or tensor names: from
the input tensor, each block is recognised by what consumes what (a max pooling with argmax on
the block's input: a downsampling block; a 1x1 conv then PReLU then a transposed conv: an
upsampling block; then a 3x3 or 5x5 depthwise or a (dilated) 3x3 conv: regular / wide /
dilated), its residual ADD must join its main path and its shortcut, an unpooling must use the
argmax of the encoder block of that size, a concatenation the output of that block. The blocks
found give the architecture (`HairNet` widths, kinds, dilations); every constant of the graph
must be used once. Anything else is refused with the operator it stopped at.

Layouts: CONV_2D kernels [out, h, w, in] -> HWIO; DEPTHWISE_CONV_2D [1, h, w, C] -> [h, w, 1, C];
PRELU [1, 1, C] -> [C]; `Convolution2DTransposeBias` [out, h, w, in] -> [h, w, out, in].
"""

from __future__ import annotations

import os
from pathlib import Path

from vos_jax.convert.selfie import import_selfie
from vos_jax.convert.tflite import (
    Graph,
    GraphError,
    Walker,
    read_graph,
    read_graph_from_wheel,
)
from vos_jax.models.portrait import VARIANTS, Block, HairNet, build

HAIR_MEMBER = "hair_segmentation.tflite"
CONVENTIONS = (
    "TFLite's: SAME padding as TensorFlow (0 before, 1 after at stride 2), inputs RGB (+ the "
    "previous mask) in 0..1, max-pooling argmax in column-major window order, first maximum on "
    "ties (the model follows all of them)"
)


def _block(w: Walker, x: int, name: str, pools: dict, skips: dict) -> tuple[Block, int]:
    """The block reading `x` -> (its Block, its output tensor); fills pools / skips by size."""
    pool = [op for op in w.graph.consumers(x) if op.kind == "MaxPoolingWithArgmax2D"]
    reduce = w.consumer(x, "CONV_2D", then="PRELU")
    if pool:
        kind = "down"
        w.conv(reduce, f"{name}_reduce", 2, 2, "VALID")
        shortcut, pools[w.size(pool[0].outputs[0])] = pool[0].outputs
    else:
        w.conv(reduce, f"{name}_reduce", 1)
        shortcut = x
    y = w.prelu(reduce.outputs[0], f"{name}_reduce_act")
    mid = w.width(y)
    dilation = 1
    nxt = w.graph.consumers(y)
    if len(nxt) != 1:
        w.fail(y, "one operator reading the squeezed feature")
    nxt = nxt[0]
    if nxt.kind == "Convolution2DTransposeBias" and not pool:
        kind = "up"
        y = w.prelu(w.transpose(nxt, f"{name}_upsample", 3), f"{name}_upsample_act")
    elif nxt.kind == "DEPTHWISE_CONV_2D":
        k = w.depthwise(nxt, f"{name}_depthwise0")
        kind = "down" if pool else {3: "regular", 5: "wide"}.get(k)
        if kind is None or (pool and k != 3):
            w.fail(nxt, "a 3x3 or 5x5 depthwise conv")
        point = w.consumer(nxt.outputs[0], "CONV_2D")
        w.conv(point, f"{name}_pointwise", 1)
        y = w.prelu(point.outputs[0], f"{name}_pointwise_act")
        if kind in ("down", "regular"):
            second = w.consumer(y, "DEPTHWISE_CONV_2D")
            if w.depthwise(second, f"{name}_depthwise1") != 3:
                w.fail(second, "a 3x3 depthwise conv")
            y = w.prelu(second.outputs[0], f"{name}_depthwise_act")
    elif nxt.kind == "CONV_2D" and not pool:
        kind = "dilated"
        dilation = w.conv(nxt, f"{name}_conv", 3)
        y = w.prelu(nxt.outputs[0], f"{name}_conv_act")
    else:
        w.fail(nxt, "a transposed conv, a depthwise conv or a 3x3 conv")
    expand = w.consumer(y, "CONV_2D")
    w.conv(expand, f"{name}_expand", 1)
    out = w.width(expand.outputs[0])
    if kind == "up":
        project = w.consumer(x, "CONV_2D", then="MaxUnpooling2D")
        w.conv(project, f"{name}_project", 1)
        unpool = w.consumer(project.outputs[0], "MaxUnpooling2D")
        if unpool.inputs[1] != pools.get(w.size(x)):
            w.fail(unpool, f"the argmax of the encoder's {w.size(x)}x{w.size(x)} pooling")
        shortcut = unpool.outputs[0]
    elif w.width(shortcut) != out:
        project = w.consumer(shortcut, "CONV_2D", then="ADD")
        w.conv(project, f"{name}_project", 1)
        shortcut = project.outputs[0]
    add = w.consumer(expand.outputs[0], "ADD")
    if set(add.inputs) != {expand.outputs[0], shortcut}:
        w.fail(add, "the sum of the block's main path and its shortcut")
    y = w.prelu(add.outputs[0], f"{name}_out_act")
    if kind == "down":
        skips[w.size(y)] = y
    concat = False
    joins = [op for op in w.graph.consumers(y) if op.kind == "CONCATENATION" and op.inputs[0] == y]
    if joins and kind == "up":
        if joins[0].inputs[1:] != (skips.get(w.size(y)),):
            w.fail(joins[0], f"the encoder's {w.size(y)}x{w.size(y)} output as the second input")
        concat, y = True, joins[0].outputs[0]
    # `out` only where it differs from the input width (as HAIR_VARIANTS; down / up: always).
    keep = kind in ("down", "up") or out != w.width(x)
    block = Block(kind, mid, out if keep else None, dilation, concat)
    return block, y


def import_hair(graph: Graph) -> tuple[dict, dict]:
    """The hair graph -> (HairNet constructor kwargs, variables); GraphError naming the operator
    where it is not that graph."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise GraphError(f"{graph.source}: one input and one output expected")
    shape = graph.tensors[graph.inputs[0]].shape
    if len(shape) != 4:
        raise GraphError(f"{graph.source}: an NHWC image input expected, got shape {shape}")
    w = Walker(graph, "hair segmentation")
    x = graph.inputs[0]
    stem = []
    for i in range(2):
        conv = w.consumer(x, "CONV_2D")
        w.conv(conv, f"stem{i}", 2, 2, "VALID")
        x = w.prelu(conv.outputs[0], f"stem{i}_act")
        stem.append(w.width(x))
    encoder, decoder, pools, skips = [], [], {}, {}
    while not any(op.kind == "Convolution2DTransposeBias" for op in graph.consumers(x)):
        blocks = decoder if decoder or _starts_up(graph, x) else encoder
        block, x = _block(w, x, f"{'decoder' if blocks is decoder else 'encoder'}{len(blocks)}",
                          pools, skips)  # fmt: skip
        blocks.append(block)
        if len(encoder) + len(decoder) > 200:
            w.fail(x, "the end of the network within 200 blocks")
    head0 = w.consumer(x, "Convolution2DTransposeBias")
    x = w.prelu(w.transpose(head0, "head0", 2), "head_act")
    head1 = w.consumer(x, "Convolution2DTransposeBias")
    x = w.transpose(head1, "head1", 2)
    if x != graph.outputs[0]:
        w.fail(head1, "the graph's output")
    kwargs = dict(
        stem=tuple(stem), encoder=tuple(encoder), decoder=tuple(decoder),
        head=w.width(head0.outputs[0]), classes=w.width(x), in_channels=shape[-1],
    )  # fmt: skip
    return kwargs, w.variables(HairNet(**kwargs), shape)


def _starts_up(graph: Graph, x: int) -> bool:
    """Whether the block reading `x` is an upsampling one (1x1 conv, PReLU, transposed conv)."""
    for conv in graph.consumers(x):
        if conv.kind != "CONV_2D":
            continue
        for act in graph.consumers(conv.outputs[0]):
            if act.kind == "PRELU" and any(
                op.kind == "Convolution2DTransposeBias" for op in graph.consumers(act.outputs[0])
            ):
                return True
    return False


MEMBERS = {  # --model: the file in a mediapipe wheel
    "hair": HAIR_MEMBER,
    "selfie": "selfie_segmentation.tflite",
    "selfie_landscape": "selfie_segmentation_landscape.tflite",
}


def import_graph(graph: Graph) -> tuple[dict, dict]:
    """A MediaPipe segmentation graph -> (portrait model kwargs with `arch`, variables): the hair
    graph (it pools with argmax) or a selfie graph (hard-swish); else GraphError."""
    kinds = {op.kind for op in graph.ops}
    if "MaxPoolingWithArgmax2D" in kinds:
        kwargs, variables = import_hair(graph)
        return {"arch": "hair", **kwargs}, variables
    if "HARD_SWISH" in kinds:
        kwargs, variables = import_selfie(graph)
        return {"arch": "selfie", **kwargs}, variables
    raise GraphError(
        f"{graph.source}: not a MediaPipe hair or selfie segmentation graph (operators: "
        f"{', '.join(sorted(kinds))})"
    )


def variant_of(kwargs: dict) -> tuple[str, dict]:
    """-> (the portrait variant of that architecture, the kwargs that differ from it); ("paper",
    {}) for the hair model, ("selfie", {}) for either selfie model."""
    variant = {"hair": "paper", "selfie": "selfie"}[kwargs["arch"]]
    published = build(**VARIANTS[variant])
    overrides = {k: v for k, v in kwargs.items() if k != "arch" and getattr(published, k) != v}
    for key in ("encoder", "decoder", "blocks"):  # JSON: blocks as lists
        if key in overrides:
            overrides[key] = [list(b) for b in overrides[key]]
    return variant, overrides


def _read(tflite, wheel, model: str) -> Graph:
    """The graph of a model file, or of the `model` file inside a mediapipe wheel."""
    if (tflite is None) == (wheel is None):
        raise ValueError("convert mediapipe: give exactly one of --tflite FILE and --wheel FILE")
    if model not in MEMBERS:
        raise ValueError(
            f"convert mediapipe: --model expected one of {list(MEMBERS)}, got {model!r}"
        )
    return read_graph(tflite) if tflite else read_graph_from_wheel(wheel, MEMBERS[model])


def load(tflite=None, wheel=None, model: str = "hair") -> tuple[dict, dict]:
    """(kwargs with `arch`, variables) of a hair or selfie model file or wheel member."""
    return import_graph(_read(tflite, wheel, model))


def load_hair(tflite=None, wheel=None) -> tuple[dict, dict]:
    """(HairNet kwargs, variables) of the hair model (a file or a wheel's); another graph is
    refused."""
    return import_hair(_read(tflite, wheel, "hair"))


def convert(out: str | os.PathLike, tflite: str = "", wheel: str = "", model: str = "hair") -> Path:
    """`vos-jax convert mediapipe`: a hair or selfie model file (or one in a mediapipe wheel) ->
    a vos-jax `portrait` checkpoint folder at `out` (refused if it exists)."""
    from vos_jax.io.published import save_model

    if Path(out).exists():
        raise FileExistsError(f"{out}: already exists; choose a new checkpoint folder")
    kwargs, variables = load(tflite or None, wheel or None, model)
    variant, overrides = variant_of(kwargs)
    what = {
        "paper": "hair segmentation model: RGB + previous mask, logits (background, hair)",
        "selfie": "selfie segmentation model: RGB, a person logit (sigmoid: probability)",
    }[variant]
    card = (
        f"# portrait ({variant})\n\nImported from MediaPipe's {what}, {tflite or wheel} "
        "(Apache-2.0), by `vos-jax convert mediapipe`.\n"
    )
    return save_model(out, "portrait", variant, variables, overrides, card=card)
