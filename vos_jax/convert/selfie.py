"""Import MediaPipe's selfie segmentation models (`selfie_segmentation.tflite`, 256x256, and
`selfie_segmentation_landscape.tflite`, 144x256; float16 weights) into `models.selfie.SelfieNet`
variables, following the graph's dataflow as the hair importer does (convert/mediapipe.py): the
stem, each bottleneck (expansion, activation kind, depthwise kernel and stride, squeeze-excite,
residual sum), the LR-ASPP head, each decoder level (resize to the skip's size, the gated sum
with that skip, the residual depthwise refinement) and the transposed-conv output are recognised
by what reads what; their widths give the architecture. Global pooling is AVERAGE_POOL_2D over
the whole map (square model) or MEAN over H and W (landscape model).
"""

from __future__ import annotations

import numpy as np

from vos_jax.convert.tflite import Graph, GraphError, Op, Walker
from vos_jax.models.selfie import Bneck, SelfieNet

POOLS = ("AVERAGE_POOL_2D", "MEAN")
ACTS = {"RELU": "relu", "HARD_SWISH": "hswish"}


def _global_pool(w: Walker, tensor: int) -> Op:
    pool = w.consumer(tensor, POOLS)
    shape = w.graph.tensors[tensor].shape
    if pool.kind == "AVERAGE_POOL_2D":
        ok = pool.options.get("filter") == tuple(shape[1:3])
    else:
        axes = w.graph.constant(pool.inputs[1])
        ok = axes is not None and sorted(np.asarray(axes).ravel().tolist()) == [1, 2]
        w.used.add(pool.inputs[1])
    if not ok:
        w.fail(pool, "a mean over the whole feature map")
    return pool


def _gate(w: Walker, tensor: int, name: str) -> tuple[int, int]:
    """Squeeze-excite of `tensor`'s global mean -> (sigmoid gate tensor, squeeze width)."""
    pool = _global_pool(w, tensor)
    squeeze = w.consumer(pool.outputs[0], "CONV_2D")
    w.conv(squeeze, f"{name}_squeeze", 1)
    relu = w.consumer(squeeze.outputs[0], "RELU")
    excite = w.consumer(relu.outputs[0], "CONV_2D")
    w.conv(excite, f"{name}_excite", 1)
    return w.consumer(excite.outputs[0], "LOGISTIC").outputs[0], w.width(squeeze.outputs[0])


def _join(w: Walker, kind: str, a: int, b: int) -> int:
    """The output of the one `kind` (ADD / MUL) op whose inputs are exactly a and b."""
    return w.consumer(a, kind, where=lambda op: set(op.inputs) == {a, b}).outputs[0]


def _bneck(w: Walker, y: int, name: str) -> tuple[Bneck, int]:
    expand = w.consumer(y, "CONV_2D", then=tuple(ACTS))
    w.conv(expand, f"{name}_expand", 1)
    act = w.consumer(expand.outputs[0], tuple(ACTS))
    depthwise = w.consumer(act.outputs[0], "DEPTHWISE_CONV_2D")
    stride = depthwise.options.get("stride", (1, 1))[0]
    kernel = w.depthwise(depthwise, f"{name}_depthwise", stride)
    h = w.consumer(depthwise.outputs[0], act.kind).outputs[0]
    squeeze = 0
    if any(op.kind in POOLS for op in w.graph.consumers(h)):
        gate, squeeze = _gate(w, h, f"{name}_se")
        h = _join(w, "MUL", h, gate)
    project = w.consumer(h, "CONV_2D")
    w.conv(project, f"{name}_project", 1)
    out = project.outputs[0]
    residual = [op for op in w.graph.consumers(out) if op.kind == "ADD" and set(op.inputs) == {
        out, y}]  # fmt: skip
    if residual:
        out = residual[0].outputs[0]
    block = Bneck(w.width(expand.outputs[0]), w.width(out), kernel, stride, squeeze, ACTS[act.kind])
    return block, out


def import_selfie(graph: Graph) -> tuple[dict, dict]:
    """A selfie graph -> (SelfieNet constructor kwargs, variables); GraphError naming the
    operator where it is not that graph."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise GraphError(f"{graph.source}: one input and one output expected")
    shape = graph.tensors[graph.inputs[0]].shape
    w = Walker(graph, "selfie segmentation")
    stem = w.consumer(graph.inputs[0], "CONV_2D")
    w.conv(stem, "stem", 3, 2)
    y = w.consumer(stem.outputs[0], "HARD_SWISH").outputs[0]
    skips = {w.graph.tensors[y].shape[1:3]: y}
    blocks = []
    while not any(op.kind in POOLS for op in graph.consumers(y)):  # the LR-ASPP pools y
        block, y = _bneck(w, y, f"block{len(blocks)}")
        blocks.append(block)
        skips[w.graph.tensors[y].shape[1:3]] = y
        if len(blocks) > 100:
            w.fail(y, "the LR-ASPP head within 100 blocks")
    branch = w.consumer(y, "CONV_2D", then="RELU")
    w.conv(branch, "aspp_conv", 1)
    relu = w.consumer(branch.outputs[0], "RELU").outputs[0]
    gate_conv = w.consumer(_global_pool(w, y).outputs[0], "CONV_2D")
    w.conv(gate_conv, "aspp_gate", 1)
    gate = w.consumer(gate_conv.outputs[0], "LOGISTIC").outputs[0]
    y = _join(w, "MUL", relu, gate)
    level = 0
    while any(op.kind == "RESIZE_BILINEAR" for op in graph.consumers(y)):
        resize = w.consumer(y, "RESIZE_BILINEAR")
        size = tuple(np.asarray(w.graph.constant(resize.inputs[1])).tolist())
        w.used.add(resize.inputs[1])
        skip = skips.get(size)
        if skip is None:
            w.fail(resize, f"a resize to an encoder feature's size, not {size}")
        name = f"decoder{level}"
        project = w.consumer(resize.outputs[0], "CONV_2D")
        w.conv(project, f"{name}_project", 1)
        up = project.outputs[0]
        gate, _ = _gate(w, _join(w, "ADD", skip, up), f"{name}_se")
        y = _join(w, "ADD", _join(w, "MUL", skip, gate), up)
        conv = w.consumer(y, "CONV_2D")
        w.conv(conv, f"{name}_conv", 1)
        r = w.consumer(conv.outputs[0], "RELU").outputs[0]
        depthwise = w.consumer(r, "DEPTHWISE_CONV_2D")
        w.depthwise(depthwise, f"{name}_depthwise")
        y = _join(w, "ADD", r, w.consumer(depthwise.outputs[0], "RELU").outputs[0])
        level += 1
    head = w.consumer(y, "Convolution2DTransposeBias")
    logits = w.transpose(head, "head", 2)
    sigmoid = w.consumer(logits, "LOGISTIC")
    if sigmoid.outputs[0] != graph.outputs[0]:
        w.fail(sigmoid, "the graph's output")
    kwargs = dict(stem=w.width(stem.outputs[0]), blocks=tuple(blocks),
                  aspp=w.width(branch.outputs[0]), classes=w.width(logits),
                  in_channels=shape[-1])  # fmt: skip
    return kwargs, w.variables(SelfieNet(**kwargs), shape)
