"""Export: one registry of formats (exporter + runner + accepted options), verification, packaging."""
from . import onnx_format, tflite_format, coreml_format  # noqa: F401  (register the formats)
from .formats import ExportOptions, FormatSpec, get_format, list_formats
from .pipeline import ExportResult, export
from .verify import VerifyReport, verify

__all__ = ["ExportOptions", "ExportResult", "FormatSpec", "VerifyReport", "export", "get_format", "list_formats", "verify"]
