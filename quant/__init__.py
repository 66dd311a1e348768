"""Quantization: INT8 preparation (BN folding, equalization, bias correction), range setting,
ONNX QDQ INT8, per-layer error reports, QAT hooks (torchao PT2E)."""
from .onnx_qdq import QdqSettings, quantize_onnx_qdq
from .ptq import prepare_for_int8
from .report import Int8Report, int8_report

__all__ = ["prepare_for_int8", "quantize_onnx_qdq", "QdqSettings", "int8_report", "Int8Report"]
