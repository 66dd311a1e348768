"""Quantization: INT8 preparation (BN folding, equalization, bias correction), range setting,
per-layer error reports, QAT hooks (torchao PT2E)."""
from .ptq import prepare_for_int8
from .report import Int8Report, int8_report

__all__ = ["prepare_for_int8", "int8_report", "Int8Report"]
