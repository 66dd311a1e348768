"""`export()`: checkpoint -> artefacts of the requested formats, each verified, written atomically."""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from featherface_mobile.checkpoint import load_model
from featherface_mobile.io import atomic_path, write_json

from .common import artefact_metadata, sha256
from .formats import ExportOptions, check_options, get_format
from .verify import VerifyReport, verify


@dataclass
class Artefact:
    path: Path
    format: str
    precision: str
    bytes: int
    seconds: float
    verify: VerifyReport | None
    facts: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verify is None or self.verify.passed


@dataclass
class ExportResult:
    model: str
    artefacts: list[Artefact]
    failed: list[Artefact]

    @property
    def ok(self) -> bool:
        return not self.failed


def _size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def artefact_name(model: str, size: int, fmt_suffix: str, precision: str, opts: ExportOptions) -> str:
    flags = {"dynamic": opts.dynamic, "nms": opts.with_postprocess, "deformconv": opts.native_deform}
    tags = [model, str(size), precision] + [tag for tag, on in flags.items() if on] + [f"float-{g}" for g in opts.int8_float]
    tags += [opts.int8_rounding] if opts.int8_rounding != "nearest" else []
    return "_".join(tags) + fmt_suffix


def export(
    weights: str | Path | None = None,
    *,
    model: str | None = None,
    formats: list[str] | tuple[str, ...] = ("onnx",),
    options: ExportOptions = ExportOptions(),
    out: str | Path = "exports",
    verify_images: int = 8,
    keep_failed: bool = False,
    skip_verify: bool = False,
    trust: bool = False,
    log=print,
) -> ExportResult:
    """Export a checkpoint to each format, verify every artefact against PyTorch, keep those that pass."""
    specs = [get_format(f) for f in formats]
    for spec in specs:  # every check before any work starts
        check_options(spec, options)
        spec.check_dependencies(options)
    net = load_model(weights, model, trust=trust)
    out = Path(out)
    done, failed = [], []
    for spec in specs:
        precision = spec.precision(options)
        path = out / artefact_name(net.model_name, options.size, spec.suffix, precision, options)
        meta = artefact_metadata(net, options.size, precision, spec.name, "NCHW", getattr(net, "weights_path", None))
        t0 = time.perf_counter()
        with atomic_path(path) as tmp:
            facts = spec.exporter(net, options, tmp, meta) or {}
            seconds = time.perf_counter() - t0
            report = None if skip_verify else verify(tmp, reference_model=net, images=verify_images)
            if report is not None:
                report.artefact = str(path)
        art = Artefact(path, spec.name, precision, _size_of(path), seconds, report, facts)
        log(f"{spec.name:<7} {precision:<5} {path}  {art.bytes / 1024:.0f} KB  export {seconds:.1f}s")
        if report is not None:
            log("  " + report.summary())
            write_json(path.with_name(path.name + ".verify.json"), report.as_dict())
        if art.passed:
            done.append(art)
        else:
            failed.append(art)
            if not keep_failed:
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                path.with_name(path.name + ".verify.json").unlink(missing_ok=True)
                log(f"  deleted {path.name} (failed verification; --keep-failed keeps it)")
    return ExportResult(net.model_name, done, failed)


def export_or_reuse(weights, model: str, fmt: str, options: ExportOptions, out: Path) -> tuple[Path, dict | None]:
    """The artefact of (model, fmt, options) in `out` and its verify report: exported (kept even if it
    fails its gate) unless `out` already holds both. For benchmark scripts."""
    import json

    spec = get_format(fmt)
    path = Path(out) / artefact_name(model, options.size, spec.suffix, spec.precision(options), options)
    report = path.with_name(path.name + ".verify.json")
    if not (path.exists() and report.is_file()):
        export(weights, model=model, formats=[fmt], options=options, out=out, keep_failed=True, log=lambda *_: None)
    return path, json.loads(report.read_text()) if report.is_file() else None


def artefact_record(art: Artefact) -> dict:
    return {"file": art.path.name, "format": art.format, "precision": art.precision, "bytes": art.bytes,
            "sha256": sha256(art.path), "verify": art.verify.as_dict() if art.verify else None}
