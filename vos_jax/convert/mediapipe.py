"""Import MediaPipe's hair segmentation model (`hair_segmentation.tflite`, the published model of
Google's mobile real-time video segmentation) into `models.portrait.HairNet` variables.

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

import jax
import jax.numpy as jnp
import numpy as np

from vos_jax.convert.tflite import Graph, GraphError, Op, read_graph, read_graph_from_wheel
from vos_jax.models.portrait import Block, HairNet

HAIR_MEMBER = "hair_segmentation.tflite"
CONVENTIONS = (
    "TFLite's: SAME padding as TensorFlow (0 before, 1 after at stride 2), inputs RGB (+ the "
    "previous mask) in 0..1, max-pooling argmax in column-major window order, first maximum on "
    "ties (the model follows all of them)"
)


class _Walker:
    """Follows the graph from a tensor, collecting variables and the constants used."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.params: dict = {}
        self.used: set[int] = set()

    def fail(self, at, expected: str):
        where = (
            at.describe(self.graph)
            if isinstance(at, Op)
            else f"tensor {self.graph.tensors[at].name}"
        )
        raise GraphError(f"{self.graph.source}: not the hair segmentation graph at {where}: "
                         f"expected {expected}")  # fmt: skip

    def consumer(self, tensor: int, kind: str, then: str | None = None) -> Op:
        """The one op of `kind` reading `tensor` (whose output, with `then`, feeds a `then`)."""
        found = [
            op for op in self.graph.consumers(tensor)
            if op.kind == kind and (then is None or any(
                c.kind == then for c in self.graph.consumers(op.outputs[0])))
        ]  # fmt: skip
        if len(found) != 1:
            what = f"one {kind}" + (f" feeding a {then}" if then else "")
            self.fail(tensor, f"{what} reading it, found {len(found)}")
        return found[0]

    def weight(self, op: Op, slot: int) -> np.ndarray:
        tensor = op.inputs[slot]
        data = self.graph.constant(tensor)
        if data is None:
            self.fail(op, f"a constant input {slot}")
        self.used.add(tensor)
        return np.asarray(data, np.float32)

    def conv(self, op: Op, name: str, kernel: int, stride: int = 1, padding: str = "SAME"):
        """A CONV_2D -> `name` {kernel, bias}; checks size, stride, padding. -> dilation."""
        o = op.options
        w = self.weight(op, 1)
        if (
            op.kind != "CONV_2D"
            or w.shape[1:3] != (kernel, kernel)
            or o.get("stride") != (stride, stride)
            or o.get("activation", 0) != 0
        ):
            self.fail(op, f"a {kernel}x{kernel} stride-{stride} CONV_2D without fused activation")
        if kernel > 1 and o.get("padding") != padding:
            self.fail(op, f"{padding} padding")
        self.params[name] = {"kernel": w.transpose(1, 2, 3, 0), "bias": self.weight(op, 2)}
        return o.get("dilation", (1, 1))[0]

    def depthwise(self, op: Op, name: str) -> int:
        o = op.options
        w = self.weight(op, 1)
        if (
            o.get("stride") != (1, 1)
            or o.get("dilation", (1, 1)) != (1, 1)
            or o.get("depth_multiplier", 1) != 1
            or o.get("padding") != "SAME"
            or o.get("activation", 0)
        ):
            self.fail(op, "a stride-1, undilated, SAME depthwise conv")
        self.params[name] = {"kernel": w.transpose(1, 2, 0, 3), "bias": self.weight(op, 2)}
        return w.shape[1]

    def prelu(self, tensor: int, name: str) -> int:
        op = self.consumer(tensor, "PRELU")
        self.params[name] = {"alpha": self.weight(op, 1).reshape(-1)}
        return op.outputs[0]

    def transpose(self, op: Op, name: str, kernel: int):
        w = self.weight(op, 1)
        if w.shape[1:3] != (kernel, kernel) or op.options.get("stride") != (2, 2):
            self.fail(op, f"a {kernel}x{kernel} stride-2 transposed conv")
        self.params[f"{name}_kernel"] = w.transpose(1, 2, 0, 3)
        self.params[f"{name}_bias"] = self.weight(op, 2)
        return op.outputs[0]

    def width(self, tensor: int) -> int:
        return self.graph.tensors[tensor].shape[-1]

    def size(self, tensor: int) -> int:
        return self.graph.tensors[tensor].shape[1]


def _block(w: _Walker, x: int, name: str, pools: dict, skips: dict) -> tuple[Block, int]:
    """The block reading `x` -> (its Block, its output tensor); fills pools / skips by size."""
    pool = [op for op in w.graph.consumers(x) if op.kind == "MaxPoolingWithArgmax2D"]
    if pool:
        kind = "down"
        reduce = w.consumer(x, "CONV_2D", then="PRELU")
        w.conv(reduce, f"{name}_reduce", 2, 2, "VALID")
        shortcut, pools[w.size(pool[0].outputs[0])] = pool[0].outputs
    else:
        reduce = w.consumer(x, "CONV_2D", then="PRELU")
        w.conv(reduce, f"{name}_reduce", 1)
        shortcut = x
    y = w.prelu(reduce.outputs[0], f"{name}_reduce_act")
    mid = w.width(y)
    dilation = 1
    nxt = [op for op in w.graph.consumers(y)]
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
    # `out` only where it is not the input's width (as models.portrait.VARIANTS; down / up: always).
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
    w = _Walker(graph)
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
    read = {i for op in graph.ops for i in op.inputs}
    unused = [t.name for i, t in enumerate(graph.tensors)
              if t.data is not None and i in read and i not in w.used]  # fmt: skip
    if unused:
        raise GraphError(f"{graph.source}: constants the hair graph does not use: {unused[:5]}")
    kwargs = dict(
        stem=tuple(stem), encoder=tuple(encoder), decoder=tuple(decoder),
        head=w.width(head0.outputs[0]), classes=w.width(x), in_channels=shape[-1],
    )  # fmt: skip
    model = HairNet(**kwargs)
    sample = jax.ShapeDtypeStruct(shape, jnp.float32)
    expected = jax.eval_shape(lambda s: model.init(jax.random.key(0), s), sample)["params"]
    params = _nest(w.params, expected, graph.source)
    return kwargs, {"params": params}


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


def _nest(found: dict, expected: dict, source: str) -> dict:
    """`found` ({module name: leaf or {param: array}}) checked against HairNet's variables."""
    out = {}
    for name, leaf in expected.items():
        got = found.get(name)
        if isinstance(leaf, dict):
            if not isinstance(got, dict):
                raise GraphError(f"{source}: nothing in the graph for {name}")
            out[name] = _nest(got, leaf, f"{source}: {name}")
            continue
        if got is None or tuple(got.shape) != tuple(leaf.shape):
            shape = None if got is None else got.shape
            raise GraphError(f"{source}: {name} has shape {shape}, the model wants {leaf.shape}")
        out[name] = jnp.asarray(got, jnp.float32)
    extra = set(found) - set(expected)
    if extra:
        raise GraphError(f"{source}: graph parts the model has no place for: {sorted(extra)[:5]}")
    return out


def variant_of(kwargs: dict) -> tuple[str, dict]:
    """-> ("paper", {}) for the published graph, else ("paper", the differing kwargs)."""
    paper = HairNet.variant("paper")
    overrides = {k: v for k, v in kwargs.items() if getattr(paper, k) != v}
    for key in ("encoder", "decoder"):  # JSON: blocks as lists
        if key in overrides:
            overrides[key] = [list(b) for b in overrides[key]]
    return "paper", overrides


def load_hair(tflite: str | os.PathLike | None = None, wheel: str | os.PathLike | None = None):
    """(kwargs, variables) of a hair model file, or of the one inside a mediapipe wheel."""
    if (tflite is None) == (wheel is None):
        raise ValueError("convert mediapipe: give exactly one of --tflite FILE and --wheel FILE")
    graph = read_graph(tflite) if tflite else read_graph_from_wheel(wheel, HAIR_MEMBER)
    return import_hair(graph)


def convert(out: str | os.PathLike, tflite: str = "", wheel: str = "") -> Path:
    """`vos-jax convert mediapipe`: a hair model file (or the one in a mediapipe wheel) -> a
    vos-jax `portrait` checkpoint folder at `out` (refused if it exists)."""
    from vos_jax.io.published import save_model

    if Path(out).exists():
        raise FileExistsError(f"{out}: already exists; choose a new checkpoint folder")
    kwargs, variables = load_hair(tflite or None, wheel or None)
    variant, overrides = variant_of(kwargs)
    card = (
        f"# portrait ({variant})\n\nImported from MediaPipe's hair segmentation model "
        f"{tflite or wheel} (Apache-2.0) by `vos-jax convert mediapipe`: RGB + previous mask, "
        "512x512, logits (background, hair).\n"
    )
    return save_model(out, "portrait", variant, variables, overrides, card=card)
