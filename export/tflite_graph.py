"""A .tflite flatbuffer as an editable object tree: read it, write it back, and the two facts every
pass over it asks (what type an operator is, whether a tensor is a constant buffer)."""
from __future__ import annotations

from functools import lru_cache


def schema():
    """The generated flatbuffer schema module (LiteRT's, else TensorFlow's copy)."""
    try:
        from ai_edge_litert import schema_py_generated as generated
    except ImportError:
        from tensorflow.lite.python import schema_py_generated as generated
    return generated


def read(model_bytes: bytes):
    """The mutable `ModelT` of .tflite bytes."""
    s = schema()
    return s.ModelT.InitFromObj(s.Model.GetRootAs(model_bytes, 0))


def write(model) -> bytes:
    """.tflite bytes of a `ModelT`."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@lru_cache(maxsize=1)
def _builtin_names() -> dict[int, str]:
    return {v: k for k, v in vars(schema().BuiltinOperator).items() if not k.startswith("_")}


def op_types(model) -> list[str]:
    """The builtin name ("CONV_2D", "QUANTIZE", ...) of each of `model`'s operator codes, by opcode index."""
    names = _builtin_names()
    out = []
    for c in model.operatorCodes:
        code = c.builtinCode or c.deprecatedBuiltinCode  # codes above 127 live only in builtinCode
        out.append(names.get(code, str(code)))
    return out


def is_constant(model, tensor) -> bool:
    """Whether `tensor` holds data in the file (weights, biases, shapes) rather than being computed."""
    data = model.buffers[tensor.buffer].data
    return data is not None and len(data) > 0


def calibrated_activations(model, subgraph: int = 0) -> list[int]:
    """Indices of the computed tensors carrying one calibrated [min, max] (per-tensor activations)."""
    return [i for i, t in enumerate(model.subgraphs[subgraph].tensors)
            if t.quantization is not None and t.quantization.min is not None and len(t.quantization.min) == 1
            and not is_constant(model, t)]
