"""`package()`: artefacts + manifest.json (metadata, hashes, verify reports, AP) + golden vectors, in one zip."""
from __future__ import annotations

import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import featherface_mobile
from featherface_mobile.errors import FeatherfaceError
from featherface_mobile.io import atomic_path
from featherface_mobile.paths import wider_val_dir
from featherface_mobile.runtime import load_runner

from .common import sha256


@dataclass
class PackageResult:
    path: Path
    manifest: dict


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _arcfiles(path: Path):
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            yield p, f"{path.name}/{p.relative_to(path).as_posix()}"
    else:
        yield path, path.name


def package(
    artefacts: list[str | Path],
    out: str | Path,
    *,
    evaluate_ap: bool = True,
    golden_images: int = 3,
    progress: bool = True,
) -> PackageResult:
    """Bundle exported artefacts of one model with their manifest and golden vectors into `out` (.zip)."""
    from featherface_mobile.evaluate import evaluate
    from featherface_mobile.golden import write_golden
    from featherface_mobile.splits import split_images

    paths = [Path(a) for a in artefacts]
    if not paths:
        raise FeatherfaceError("nothing to package; pass one or more exported artefacts")
    for p in paths:
        if not p.exists():
            raise FeatherfaceError(f"artefact not found: {p}; export it first with featherface export")
    runners = [load_runner(p) for p in paths]
    metas = [r.metadata for r in runners]
    models = {m.get("model") for m in metas}
    if len(models) != 1 or None in models:
        raise FeatherfaceError(f"artefacts come from different or unknown models ({sorted(map(str, models))}); package one model at a time")
    first = metas[0]
    records = []
    data = wider_val_dir()
    for path, runner, meta in zip(paths, runners, metas):
        report = path.with_name(path.name + ".verify.json")
        rec = {"file": path.name, "format": meta["format"], "precision": meta["precision"],
               "layout": meta.get("input_layout"), "input_dtype": meta.get("input_dtype", "float32"),
               "input_size": meta["input_size"], "bytes": _size(path), "sha256": sha256(path),
               "verify": json.loads(report.read_text()) if report.is_file() else None}
        if evaluate_ap and data is not None:
            res = evaluate(runner, data, images=split_images("eval", data), progress=progress)
            rec["accuracy"] = {**{k: round(v, 4) for k, v in res.ap.items()}, "split": "eval", "images": res.images, "size": res.size}
        records.append(rec)
    manifest = {
        "format": "featherface-package/1",
        "model": {"name": first["model"], "version": featherface_mobile.__version__, "parameters": first.get("parameters")},
        "input": {"width": first["input_size"][0], "height": first["input_size"][1], "channel_order": "BGR",
                  "mean": first["mean"], "resize": "letterbox"},
        "priors": first["priors"],
        "thresholds": first["thresholds"],
        "outputs": [{"name": "loc", "values": 4}, {"name": "conf", "values": 2, "softmax": True}, {"name": "landms", "values": 10}],
        "artefacts": records,
        "golden": "golden/index.json" if golden_images else None,
    }
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="ff-package-") as tmp, atomic_path(out) as tmp_zip:
        golden_files = write_golden(Path(tmp) / "golden", first["model"], first["input_size"][0], golden_images, runner=runners[0]) if golden_images else []
        with zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("manifest.json", json.dumps(manifest, indent=2))
            for p in paths:
                for src, arc in _arcfiles(p):
                    z.write(src, arc)
            for g in golden_files + ([Path(tmp) / "golden" / "index.json"] if golden_files else []):
                z.write(g, f"golden/{g.name}")
    return PackageResult(out, manifest)


def check_package(path: str | Path) -> list[str]:
    """Problems found re-hashing a package's files against its manifest (empty list = intact)."""
    import hashlib

    problems = []
    with zipfile.ZipFile(path) as z:
        manifest = json.loads(z.read("manifest.json"))
        names = z.namelist()
        for rec in manifest["artefacts"]:
            members = sorted(n for n in names if n == rec["file"] or n.startswith(rec["file"] + "/"))
            h = hashlib.sha256()
            if members == [rec["file"]]:
                h.update(z.read(rec["file"]))
            else:
                for n in members:
                    h.update(n[len(rec["file"]) + 1:].encode())
                    h.update(z.read(n))
            if h.hexdigest() != rec["sha256"]:
                problems.append(f"{rec['file']}: sha256 mismatch")
    return problems
