"""The format registry: name -> exporter, runner that loads the artefact back, options accepted.

Unsupported option combinations are rejected by `check_options` before any work starts.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from torch import nn

from featherface_mobile.errors import FeatherfaceError, require
from featherface_mobile.runtime import register_runner

# Options a user can set; each format declares the subset it accepts.
OPTION_NAMES = ("int8", "fp16", "dynamic", "with_postprocess", "calib", "native_deform", "image_input", "int8_ranges",
                "int8_float", "int8_rounding")


@dataclass(frozen=True)
class ExportOptions:
    size: int = 640
    int8: bool = False
    fp16: bool = False
    dynamic: bool = False  # ONNX: dynamic batch and spatial size
    with_postprocess: bool = False  # ONNX: decoding + NMS inside the graph
    calib: Path | None = None  # calibration images for INT8 (default: shared WIDER train split)
    calib_images: int = 100
    native_deform: bool = False  # ONNX: DeformConv (opset 19) instead of the portable gather form
    image_input: bool = False  # Core ML: ImageType input with the BGR mean baked in
    max_faces: int = 100  # ONNX --with-postprocess: fixed number of output faces
    int8_ranges: Path | None = None  # INT8: activation ranges learned by QAT (quant/learned.py) instead of calibration
    int8_float: tuple[str, ...] = ()  # INT8: op groups kept float32 (quant/float_ops.py, e.g. "heads")
    int8_rounding: str = "nearest"  # INT8 weights: "nearest" (+ bias correction) or "adaround" (quant/adaround.py)

    def set_options(self) -> set[str]:
        """Names of the non-default options that a format must accept."""
        defaults = ExportOptions()
        return {n for n in OPTION_NAMES if getattr(self, n) != getattr(defaults, n)}

    @property
    def precision(self) -> str:
        return "int8" if self.int8 else "fp16" if self.fp16 else "fp32"


Exporter = Callable[[nn.Module, ExportOptions, Path, dict], dict]


@dataclass(frozen=True)
class FormatSpec:
    name: str
    suffix: str
    exporter: Exporter  # writes the artefact to the given path; returns format-specific facts
    runner: Callable  # (path, **kw) -> Runner
    options: frozenset[str]
    extra: str  # pip extra that provides the dependencies
    modules: tuple[str, ...]  # importable modules the exporter needs
    default_precision: str = "fp32"
    fp32_max_abs: float = 1e-3  # verify gate for float32 artefacts
    notes: str = ""
    exclusive: tuple[frozenset[str], ...] = field(default_factory=lambda: (frozenset({"int8", "fp16"}),))
    # Checks that depend on the options (e.g. a runtime able to verify what they produce); raise FeatherfaceError.
    option_checks: tuple[Callable[[ExportOptions], None], ...] = ()

    def precision(self, opts: ExportOptions) -> str:
        return opts.precision if (opts.int8 or opts.fp16) else self.default_precision

    def check_dependencies(self, opts: ExportOptions | None = None) -> None:
        for m in self.modules:
            require(m, self.extra)
        for check in self.option_checks if opts is not None else ():
            check(opts)


_FORMATS: dict[str, FormatSpec] = {}


def register_format(spec: FormatSpec) -> FormatSpec:
    _FORMATS[spec.name] = spec
    register_runner(spec.suffix)(spec.runner)
    return spec


def list_formats() -> list[str]:
    return list(_FORMATS)


def get_format(name: str) -> FormatSpec:
    try:
        return _FORMATS[name]
    except KeyError:
        raise FeatherfaceError(f"unknown format {name!r}; choose from: {', '.join(_FORMATS)}") from None


def check_options(spec: FormatSpec, opts: ExportOptions) -> None:
    """Reject options the format does not accept, or combinations that contradict, in one line."""
    if opts.size % 32 or opts.size <= 0:
        raise FeatherfaceError(f"--size {opts.size} is not a positive multiple of 32; use e.g. 320, 416 or 640")
    unsupported = sorted(opts.set_options() - spec.options)
    if unsupported:
        flags = ", ".join("--" + u.replace("_", "-") for u in unsupported)
        ok = ", ".join("--" + o.replace("_", "-") for o in sorted(spec.options)) or "none"
        raise FeatherfaceError(f"{flags} not supported for format {spec.name} (it accepts: {ok})")
    if opts.int8_ranges is not None:
        if not opts.int8:
            raise FeatherfaceError("--int8-ranges sets INT8 activation ranges; add --int8")
        from featherface_mobile.quant.learned import load_for_size

        load_for_size(opts.int8_ranges, opts.size)
    if opts.int8_float:
        if not opts.int8:
            raise FeatherfaceError("--int8-float keeps some ops float in an INT8 export; add --int8")
        from featherface_mobile.quant.float_ops import get_float_group

        for name in opts.int8_float:
            get_float_group(name)
    if opts.int8_rounding != "nearest":
        from featherface_mobile.quant.ptq import ROUNDINGS

        if not opts.int8:
            raise FeatherfaceError("--int8-rounding chooses how INT8 weights are rounded; add --int8")
        if opts.int8_rounding not in ROUNDINGS:
            raise FeatherfaceError(f"unknown --int8-rounding {opts.int8_rounding!r}; choose from: {', '.join(ROUNDINGS)}")
        if opts.int8_ranges is not None:
            raise FeatherfaceError("--int8-rounding applies to calibrated exports; QAT weights (--int8-ranges) are already trained for INT8")
    for group in spec.exclusive:
        both = sorted(group & opts.set_options())
        if len(both) > 1:
            raise FeatherfaceError(f"{' and '.join('--' + b for b in both)} cannot be combined; export them one at a time")


def with_options(opts: ExportOptions, **changes) -> ExportOptions:
    return dataclasses.replace(opts, **changes)
