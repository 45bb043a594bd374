"""A TFLite flatbuffer as a plain dataflow graph, read with the `tflite` package (the generated
flatbuffer schema; no TensorFlow, no interpreter).

`read_graph(path)`: the first subgraph's operators (kind, input and output tensor ids, options)
and tensors (name, shape, constant data). Weights stored as float16 behind DEQUANTIZE ops (as
MediaPipe's selfie models) are dequantised to float32 and the DEQUANTIZE ops dropped: their
outputs become the constants. A `.whl` (zip) is read through `read_graph_from_wheel`.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}


class GraphError(ValueError):
    """The file is not a TFLite model, or not the graph a converter expects (the message says
    which operator and what was expected)."""


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    data: np.ndarray | None  # constants only


@dataclass
class Op:
    index: int
    kind: str  # the builtin name (CONV_2D, ...) or the custom code (MaxUnpooling2D, ...)
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)

    def describe(self, graph: Graph) -> str:
        name = graph.tensors[self.outputs[0]].name if self.outputs else ""
        return f"op {self.index} {self.kind} ({name})"


@dataclass
class Graph:
    ops: list[Op]
    tensors: list[Tensor]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    source: str = ""

    def consumers(self, tensor: int) -> list[Op]:
        return [op for op in self.ops if tensor in op.inputs]

    def constant(self, tensor: int) -> np.ndarray | None:
        return self.tensors[tensor].data


def _builtin_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def _options(op, kind: str) -> dict:
    """The options the converters check: padding, strides, dilation, fused activation, axis."""
    import tflite

    readers = {
        "CONV_2D": tflite.Conv2DOptions,
        "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
        "AVERAGE_POOL_2D": tflite.Pool2DOptions,
        "MAX_POOL_2D": tflite.Pool2DOptions,
        "CONCATENATION": tflite.ConcatenationOptions,
        "ADD": tflite.AddOptions,
        "MUL": tflite.MulOptions,
    }
    if kind not in readers or op.BuiltinOptions() is None:
        return {}
    table = op.BuiltinOptions()
    options = readers[kind]()
    options.Init(table.Bytes, table.Pos)
    out = {}
    for key, getter in (("padding", "Padding"), ("stride", ("StrideH", "StrideW")),
                        ("dilation", ("DilationHFactor", "DilationWFactor")),
                        ("filter", ("FilterHeight", "FilterWidth")),
                        ("activation", "FusedActivationFunction"), ("axis", "Axis"),
                        ("depth_multiplier", "DepthMultiplier")):  # fmt: skip
        names = getter if isinstance(getter, tuple) else (getter,)
        if all(hasattr(options, n) for n in names):
            values = tuple(int(getattr(options, n)()) for n in names)
            out[key] = values if isinstance(getter, tuple) else values[0]
    if "padding" in out:
        out["padding"] = {0: "SAME", 1: "VALID"}[out["padding"]]
    return out


def _custom_options(op, kind: str) -> dict:
    """`Convolution2DTransposeBias`'s options: int32 padding (0 SAME, 1 VALID), stride w, h."""
    if kind == "Convolution2DTransposeBias" and op.CustomOptionsLength() >= 12:
        padding, stride_w, stride_h = np.frombuffer(op.CustomOptionsAsNumpy().tobytes()[:12], "<i4")
        return {"padding": {0: "SAME", 1: "VALID"}.get(int(padding), "SAME"),
                "stride": (int(stride_h), int(stride_w))}  # fmt: skip
    return {}


def parse(buffer: bytes, source: str = "") -> Graph:
    """The graph of a TFLite flatbuffer held in `buffer` (module docstring)."""
    import tflite

    if len(buffer) < 8 or buffer[4:8] != b"TFL3":
        raise GraphError(f"{source or 'the input'} is not a TFLite model (no TFL3 identifier)")
    model = tflite.Model.GetRootAsModel(buffer, 0)
    if model.SubgraphsLength() < 1:
        raise GraphError(f"{source}: the model has no subgraph")
    sub = model.Subgraphs(0)
    builtin = _builtin_names()
    tensors = []
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        data = None
        buf = model.Buffers(t.Buffer())
        if buf is not None and buf.DataLength() > 0:
            dtype = _DTYPES.get(t.Type())
            if dtype is None:
                raise GraphError(
                    f"{source}: tensor {t.Name().decode()} has unsupported type {t.Type()}"
                )
            data = buf.DataAsNumpy().view(dtype).reshape(tuple(t.ShapeAsNumpy()))
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        tensors.append(Tensor(t.Name().decode(), shape, data))
    ops = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        kind = code.CustomCode().decode() if code.CustomCode() else builtin.get(number, str(number))
        options = _custom_options(op, kind) if code.CustomCode() else _options(op, kind)
        inputs = tuple(int(op.Inputs(j)) for j in range(op.InputsLength()))
        outputs = tuple(int(op.Outputs(j)) for j in range(op.OutputsLength()))
        ops.append(Op(i, kind, inputs, outputs, options))
    kept = []
    for op in ops:  # float16 weights: constants behind DEQUANTIZE
        source_data = tensors[op.inputs[0]].data if op.kind == "DEQUANTIZE" else None
        if source_data is not None:
            tensors[op.outputs[0]].data = source_data.astype(np.float32)
        else:
            kept.append(op)
    inputs = tuple(int(sub.Inputs(j)) for j in range(sub.InputsLength()))
    outputs = tuple(int(sub.Outputs(j)) for j in range(sub.OutputsLength()))
    return Graph(kept, tensors, inputs, outputs, source)


def read_graph(path: str | os.PathLike) -> Graph:
    path = Path(path)
    if not path.is_file():
        raise GraphError(f"{path}: no such file")
    return parse(path.read_bytes(), str(path))


def read_graph_from_wheel(wheel: str | os.PathLike, member: str) -> Graph:
    """The model file whose path in the wheel (a zip) ends with `member`."""
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if n.endswith(member)]
            if not names:
                raise GraphError(f"{wheel}: no {member} inside")
            return parse(archive.read(names[0]), f"{wheel}:{names[0]}")
    except zipfile.BadZipFile as err:
        raise GraphError(f"{wheel} is not a wheel (zip): {err}") from None


def nest(found: dict, expected: dict, source: str) -> dict:
    """`found` ({module name: leaf or {param: array}}) checked against a model's expected
    parameters (a tree of ShapeDtypeStructs): every one present with its shape, nothing extra."""
    out = {}
    for name, leaf in expected.items():
        got = found.get(name)
        if isinstance(leaf, dict):
            if not isinstance(got, dict):
                raise GraphError(f"{source}: nothing in the graph for {name}")
            out[name] = nest(got, leaf, f"{source}: {name}")
            continue
        if got is None or tuple(got.shape) != tuple(leaf.shape):
            shape = None if got is None else got.shape
            raise GraphError(f"{source}: {name} has shape {shape}, the model wants {leaf.shape}")
        out[name] = np.asarray(got, np.float32)
    extra = set(found) - set(expected)
    if extra:
        raise GraphError(f"{source}: graph parts the model has no place for: {sorted(extra)[:5]}")
    return out


class Walker:
    """Follows a graph by its dataflow (which op reads which tensor), collecting the weights of
    the ops it is shown as a converter's variables ({module name: {param: array}}) and the
    constants used; `fail` names the operator where the graph is not the `what` expected."""

    def __init__(self, graph: Graph, what: str):
        self.graph, self.what = graph, what
        self.params: dict = {}
        self.used: set[int] = set()

    def fail(self, at, expected: str):
        graph = self.graph
        where = at.describe(graph) if isinstance(at, Op) else f"tensor {graph.tensors[at].name}"
        message = f"not the {self.what} graph at {where}: expected {expected}"
        raise GraphError(f"{graph.source}: {message}")

    def consumer(self, tensor: int, kind, then=None, where=None) -> Op:
        """The one op of `kind` (a name or a tuple of names) reading `tensor`; with `then`, one
        whose output some op of kind `then` reads; with `where`, one for which where(op) holds."""
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        thens = (then,) if isinstance(then, str) else then
        found = [
            op for op in self.graph.consumers(tensor)
            if op.kind in kinds
            and (then is None or any(c.kind in thens for c in self.graph.consumers(op.outputs[0])))
            and (where is None or where(op))
        ]  # fmt: skip
        if len(found) != 1:
            what = f"one {'/'.join(kinds)}" + (f" feeding a {then}" if then else "")
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

    def depthwise(self, op: Op, name: str, stride: int = 1) -> int:
        """A DEPTHWISE_CONV_2D -> `name` {kernel, bias}; -> its kernel size."""
        o = op.options
        w = self.weight(op, 1)
        if (
            o.get("stride") != (stride, stride)
            or o.get("dilation", (1, 1)) != (1, 1)
            or o.get("depth_multiplier", 1) != 1
            or o.get("padding") != "SAME"
            or o.get("activation", 0)
        ):
            self.fail(op, f"a stride-{stride}, undilated, SAME depthwise conv")
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

    def variables(self, model, shape: tuple[int, ...]) -> dict:
        """The collected weights as `model`'s variables (input `shape`): every constant the graph
        reads must have been used, and every parameter found with its shape (GraphError)."""
        import jax
        import jax.numpy as jnp

        graph = self.graph
        read = {i for op in graph.ops for i in op.inputs}
        unused = [t.name for i, t in enumerate(graph.tensors)
                  if t.data is not None and i in read and i not in self.used]  # fmt: skip
        if unused:
            raise GraphError(f"{graph.source}: constants the {self.what} graph does not use: "
                             f"{unused[:5]}")  # fmt: skip
        sample = jax.ShapeDtypeStruct(shape, jnp.float32)
        expected = jax.eval_shape(lambda s: model.init(jax.random.key(0), s), sample)["params"]
        return {"params": jax.tree.map(jnp.asarray, nest(self.params, expected, graph.source))}

    def width(self, tensor: int) -> int:
        return self.graph.tensors[tensor].shape[-1]

    def size(self, tensor: int) -> int:
        return self.graph.tensors[tensor].shape[1]
