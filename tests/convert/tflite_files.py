"""A minimal valid TFLite model written with the `tflite` package's flatbuffer builders: one ADD
of two [1, 8, 8, 3] float32 inputs. Not a segmentation model: for converters' refusals."""

import flatbuffers
import tflite


def _ints(builder, start, values):
    start(builder, len(values))
    for v in reversed(values):
        builder.PrependInt32(v)
    return builder.EndVector()


def add_model() -> bytes:
    b = flatbuffers.Builder(1024)
    tensors = []
    for name in ("a", "b", "sum"):
        label = b.CreateString(name)
        shape = _ints(b, tflite.TensorStartShapeVector, [1, 8, 8, 3])
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, tflite.TensorType.FLOAT32)
        tflite.TensorAddBuffer(b, 0)
        tflite.TensorAddName(b, label)
        tensors.append(tflite.TensorEnd(b))
    tflite.SubGraphStartTensorsVector(b, len(tensors))
    for t in reversed(tensors):
        b.PrependUOffsetTRelative(t)
    tensor_vector = b.EndVector()
    inputs = _ints(b, tflite.OperatorStartInputsVector, [0, 1])
    outputs = _ints(b, tflite.OperatorStartOutputsVector, [2])
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, inputs)
    tflite.OperatorAddOutputs(b, outputs)
    op = tflite.OperatorEnd(b)
    tflite.SubGraphStartOperatorsVector(b, 1)
    b.PrependUOffsetTRelative(op)
    ops = b.EndVector()
    graph_inputs = _ints(b, tflite.SubGraphStartInputsVector, [0, 1])
    graph_outputs = _ints(b, tflite.SubGraphStartOutputsVector, [2])
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensor_vector)
    tflite.SubGraphAddInputs(b, graph_inputs)
    tflite.SubGraphAddOutputs(b, graph_outputs)
    tflite.SubGraphAddOperators(b, ops)
    graph = tflite.SubGraphEnd(b)
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.ADD)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, tflite.BuiltinOperator.ADD)
    tflite.OperatorCodeAddVersion(b, 1)
    code = tflite.OperatorCodeEnd(b)
    tflite.BufferStart(b)
    empty = tflite.BufferEnd(b)
    tflite.ModelStartSubgraphsVector(b, 1)
    b.PrependUOffsetTRelative(graph)
    graphs = b.EndVector()
    tflite.ModelStartOperatorCodesVector(b, 1)
    b.PrependUOffsetTRelative(code)
    codes = b.EndVector()
    tflite.ModelStartBuffersVector(b, 1)
    b.PrependUOffsetTRelative(empty)
    buffers = b.EndVector()
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, graphs)
    tflite.ModelAddBuffers(b, buffers)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())
