"""Quantization: INT8 preparation (BN folding, equalization), calibration, error reports, QAT hooks."""
from .ptq import prepare_for_int8

__all__ = ["prepare_for_int8"]
