"""Reproduce the README speed + accuracy tables in one run.

Exports every registered model to ONNX and TFLite fp32/fp16/int8 at each size (the registry's trained
weights where they exist: shared checkpoints, packaged V2s; a seeded untrained stand-in otherwise:
speed only, AP "untrained"), benchmarks them
interleaved beside their PyTorch checkpoint and the MediaPipe BlazeFace peers, measures the
machine's peak on one large convolution in each runtime, adds MACs and WIDER AP, and writes
benchmarks/results/{bench_results.json, README_tables.md, bench_<size>.png}.

Full run:  python benchmarks/run_all.py            (quiet machine; see docs/benchmarks.md)
Smoke run: python benchmarks/run_all.py --quick    (one model, 320 only, few runs; writes results/quick/)
Exports first (untimed, can share the machine): python benchmarks/run_all.py --exports-only
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
import warnings
from pathlib import Path

import torch

from featherface_mobile import bench as B
from featherface_mobile.io import write_json
from featherface_mobile.models import get_spec, list_models
from featherface_mobile.models.standin import untrained_standin
from featherface_mobile.paths import resolve_weights_ref, shared_dir, wider_val_dir

VARIANTS = (("onnx", {}), ("tflite", {}), ("tflite", {"fp16": True}), ("tflite", {"int8": True}))
RESULTS = Path(__file__).resolve().parent / "results"


def log(msg: str) -> None:
    print(msg, flush=True)


def checkpoints(models: list[str], out: Path) -> dict[str, tuple[Path, bool]]:
    """model -> (checkpoint, trained?). Untrained: the seeded stand-in of models/standin.py."""
    found = {}
    for name in models:
        ref = get_spec(name).default_weights
        trained = resolve_weights_ref(ref) if ref else None
        if trained is not None:
            found[name] = (trained, True)
            continue
        path = out / "checkpoints" / f"{name}_standin_seed0.pth"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(untrained_standin(name).state_dict(), path)
        found[name] = (path, False)
    return found


def export_all(name: str, weights: Path, size: int, out: Path) -> list[dict]:
    """Artefacts of one model at one size (reused when already exported). INT8 kept even if it fails its gate."""
    from featherface_mobile.export import ExportOptions
    from featherface_mobile.export.pipeline import export_or_reuse

    arts = []
    for fmt, opts in VARIANTS:
        options = ExportOptions(size=size, **opts)
        t0 = time.perf_counter()
        try:
            path, verify = export_or_reuse(weights, name, fmt, options, out / "exports")
        except Exception as e:  # one failed conversion must not end an hour-long run; it is reported instead
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            log(f"  export {name} {fmt} {options.precision} {size}: FAILED ({msg})")
            arts.append({"path": None, "format": fmt, "precision": options.precision, "error": msg})
            continue
        if time.perf_counter() - t0 > 1:
            log(f"  exported {path.name} in {time.perf_counter() - t0:.0f}s")
        arts.append({"path": path, "format": fmt, "precision": options.precision,
                     "verify_passed": verify.get("passed") if verify else None})
    return arts


def evaluate_ap(path: Path, size: int) -> dict:
    from featherface_mobile.evaluate import evaluate
    from featherface_mobile.runtime import load_runner
    from featherface_mobile.splits import split_images

    data = wider_val_dir()
    torch.set_num_threads(2)
    kwargs = {"threads": 2} if path.suffix in (".onnx", ".tflite") else {}
    return evaluate(load_runner(path, **kwargs), data, size=size, images=split_images("eval", data), progress=False).ap


def peak_for(r: B.BenchResult, peaks: dict) -> float | None:
    key = {"pytorch": "torchscript", "onnxruntime": "onnx"}.get(r.runtime, "int8" if r.precision == "int8" else "fp32")
    return peaks.get((key, r.threads))


def fmt_ap(ap) -> str:
    if ap is None:
        return "n/a"
    if isinstance(ap, str):
        return ap
    return " / ".join(f"{ap[s]:.3f}" for s in ("easy", "medium", "hard"))


def main() -> None:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: defaults become retinaface-mnet025, 320 only, 1 warm-up, 5 runs (explicit options still win)")
    ap.add_argument("--models", help="comma list (default: every registered model)")
    ap.add_argument("--sizes", help="comma list (default: 640,320)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--warmup", type=int, help="untimed runs per row (default: 5)")
    ap.add_argument("--runs", type=int, help="timed runs per row (default: 50)")
    ap.add_argument("--no-eval", action="store_true", help="skip the WIDER AP column")
    ap.add_argument("--exports-only", action="store_true", help="export (or reuse) every artefact, then stop")
    ap.add_argument("--render", type=Path, help="re-write the tables and plots from a bench_results.json, measuring nothing")
    ap.add_argument("--profile", action="store_true", help="add onnxruntime per-op profiles and TFLite op mixes")
    ap.add_argument("--work", type=Path, default=Path("runs/bench"), help="exports and checkpoints (reused between runs)")
    ap.add_argument("--results", type=Path, help="where tables, JSON and plots go (default: benchmarks/results, --quick: results/quick)")
    a = ap.parse_args()
    defaults = {"models": "retinaface-mnet025", "sizes": "320", "warmup": 1, "runs": 5} if a.quick else \
        {"models": None, "sizes": "640,320", "warmup": 5, "runs": 50}
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.render:
        return render(a)
    models = a.models.split(",") if a.models else list_models()
    sizes = [int(s) for s in a.sizes.split(",")]
    threads = tuple(int(t) for t in a.threads.split(","))
    results_dir = a.results or (RESULTS / "quick" if a.quick else RESULTS)
    command = "python benchmarks/run_all.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    machine = B.machine_description()
    started = time.perf_counter()
    log(f"command: {command.strip()}")
    log(f"machine: {machine['cpu']}, {machine['usable_cores']} usable cores, {machine['os']}; "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items()))

    # 1. checkpoints and exports
    ckpts = checkpoints(models, a.work)
    artefacts: dict[tuple[str, int], list[dict]] = {}
    for name, (weights, trained) in ckpts.items():
        for size in sizes:
            log(f"export {name} {size} ({'trained' if trained else 'untrained stand-in'})")
            artefacts[name, size] = [{"path": weights, "format": "pytorch", "precision": "fp32", "verify_passed": True}] + \
                export_all(name, weights, size, a.work)
    peaks_paths = B.peak_conv_artefacts(a.work / "peak")
    peers = sorted((shared_dir() / "peers" / "mediapipe_blazeface").glob("*.tflite")) if shared_dir() else []
    log(f"exports ready after {time.perf_counter() - started:.0f}s")
    if a.exports_only:
        return

    # 2. benchmark: the peak convs first, then one interleaved group per (size, threads)
    rows: list[B.BenchResult] = []
    peaks = {}
    for r in B.benchmark(peaks_paths, threads=threads, warmup=min(a.warmup, 3), runs=max(a.runs // 5, 3)):
        key = "torchscript" if r.runtime == "pytorch" else "onnx" if r.runtime == "onnxruntime" else r.precision
        peaks[key, r.threads] = r.gmacs_per_s
        r.notes.append("peak")
        rows.append(r)
    meta: dict[str, dict] = {}
    for size in sizes:
        for t in threads:
            group, paths = [], []
            for name in models:
                for art in artefacts[name, size]:
                    if art["path"] is None:
                        continue
                    paths.append(art["path"])
                    group.append((name, art))
            log(f"benchmark {size}x{size}, {t} thread(s): {len(paths)} artefacts + {len(peers)} peers, interleaved")
            res = B.benchmark(paths + peers, threads=(t,), size=size, warmup=a.warmup, runs=a.runs)
            for r, (name, art) in zip(res, group):
                trained = ckpts[name][1]
                r.notes += [] if trained else ["untrained (seeded stand-in): speed only"]
                if art["verify_passed"] is False:
                    r.notes.append("failed the export accuracy gate (kept for speed)")
                meta[(r.artefact, r.input_size)] = {"model": name, "trained": trained, "format": art["format"], "size": size}
            for r in res[len(group):]:
                r.notes.append(f"peer, benchmarked in the {size}x{size} group")
            rows += res

    # 3. accuracy: each trained artefact once, on the held-out eval split, at its own size
    ap_cache: dict[str, object] = {}
    for r in rows:
        m = row_meta(meta, r)
        if r.kind == "peer":
            r.ap = None
            continue
        if m is None:
            continue
        key = f"{r.artefact}@{r.input_size}"
        if key not in ap_cache:
            if not m["trained"]:
                ap_cache[key] = "untrained"
            elif a.no_eval or wider_val_dir() is None:
                ap_cache[key] = "not evaluated"
            else:
                log(f"eval {Path(r.artefact).name} at {r.input_size}")
                ap_cache[key] = evaluate_ap(Path(r.artefact), r.input_size)
        r.ap = ap_cache[key] if isinstance(ap_cache[key], dict) else None
        if isinstance(ap_cache[key], str):
            r.notes.append(f"AP {ap_cache[key]}")

    # 4. ratios, MAC breakdowns, profiles
    ratios = compute_ratios(rows, meta)
    macs = {f"{n}@{s}": vars(B.model_macs(n, s)) | {"total": B.model_macs(n, s).total} for n in models for s in sizes}
    profiles = []
    results_dir.mkdir(parents=True, exist_ok=True)
    write_json(results_dir / "bench_results.partial.json", {"command": command.strip(), "machine": machine,
                                                            "results": [r.as_dict() for r in rows]})
    if a.profile:
        for name in models:
            for art in artefacts[name, max(sizes)]:
                if art["path"] is not None and (art["format"] == "onnx" or art["precision"] == "int8"):
                    try:
                        profiles.append(B.profile_report(art["path"], threads=max(threads)))
                    except Exception as e:  # a profile is commentary: it must not lose the measured tables
                        profiles.append(f"{Path(art['path']).name}: profile failed ({str(e).splitlines()[0][:160]})")
    elapsed = time.perf_counter() - started
    results_dir.mkdir(parents=True, exist_ok=True)
    write_json(results_dir / "bench_results.json", {
        "command": command.strip(), "machine": machine, "elapsed_s": round(elapsed), "warmup": a.warmup, "runs": a.runs,
        "peaks_gmacs": {f"{k[0]} t{k[1]}": v for k, v in peaks.items()}, "macs": macs, "ratios": ratios,
        "profiles": profiles, "export_failures": [f"{n} {art['format']} {art['precision']} {s}: {art['error']}"
                                                  for (n, s), arts in artefacts.items() for art in arts if art["path"] is None],
        "results": [r.as_dict() for r in rows]})
    for size in sizes:
        subset = [r for r in rows if (row_meta(meta, r) or {}).get("size") == size or
                  (r.kind == "peer" and f"{size}x{size} group" in " ".join(r.notes))]
        B.plot_results(subset, results_dir / f"bench_{size}.png",
                       title=f"median latency at {size}x{size} (peers at their own size); {machine['cpu']}")
    failures = [f"{n} {art['format']} {art['precision']} {s}: {art['error']}"
                for (n, s), arts in artefacts.items() for art in arts if art["path"] is None]
    tables = markdown(rows, meta, peaks, ratios, macs, profiles, command.strip(), machine, a, elapsed, sizes, threads)
    if failures:
        tables += "\n### Exports that failed (no rows)\n\n" + "\n".join(f"- {f}" for f in failures) + "\n"
    (results_dir / "README_tables.md").write_text(tables)
    print(tables)
    log(f"wrote {results_dir}/README_tables.md, bench_results.json, bench_<size>.png in {elapsed / 60:.1f} min")


def render(a) -> None:
    """Tables and plots of a finished run from its bench_results.json (e.g. after a fix to the tables)."""
    import json

    data = json.loads(a.render.read_text())
    rows = [B.BenchResult(**d) for d in data["results"]]
    meta = {(r.artefact, r.input_size): {"model": r.model, "trained": "untrained" not in " ".join(r.notes),
                                         "format": r.runtime, "size": r.input_size}
            for r in rows if r.kind == "detector"}
    peaks = {}
    for r in rows:
        if "peak" in r.notes:
            peaks["torchscript" if r.runtime == "pytorch" else "onnx" if r.runtime == "onnxruntime" else r.precision,
                  r.threads] = r.gmacs_per_s
    sizes = sorted({m["size"] for m in meta.values()}, reverse=True)
    threads = tuple(sorted({r.threads for r in rows}))
    for k, v in {"warmup": data["warmup"], "runs": data["runs"]}.items():
        setattr(a, k, v)
    results_dir = a.results or a.render.parent
    tables = markdown(rows, meta, peaks, compute_ratios(rows, meta), data["macs"], data["profiles"], data["command"],
                      data["machine"], a, data["elapsed_s"], sizes, threads)
    if data.get("export_failures"):
        tables += "\n### Exports that failed (no rows)\n\n" + "\n".join(f"- {f}" for f in data["export_failures"]) + "\n"
    (results_dir / "README_tables.md").write_text(tables)
    data["ratios"] = compute_ratios(rows, meta)
    write_json(a.render, data)
    print(tables)


def row_meta(meta: dict, r: B.BenchResult) -> dict | None:
    """A result row's model/format/size facts: rows are keyed by (artefact, input size), since one
    checkpoint is benchmarked at several sizes."""
    return meta.get((r.artefact, r.input_size))


def compute_ratios(rows: list[B.BenchResult], meta: dict) -> list[dict]:
    """Per model, size and threads: speed-up of each artefact over PyTorch eager and over onnxruntime (same run)."""
    out = []
    by_key: dict[tuple, dict[str, B.BenchResult]] = {}
    for r in rows:
        m = row_meta(meta, r)
        if m is None or r.kind != "detector":
            continue
        variant = "pytorch" if r.runtime == "pytorch" else "onnx" if r.runtime == "onnxruntime" else f"tflite-{r.precision}"
        by_key.setdefault((m["model"], m["size"], r.threads), {})[variant] = r
    for (model, size, t), v in by_key.items():
        for name, r in v.items():
            entry = {"model": model, "size": size, "threads": t, "artefact": name, "median_ms": r.median_ms}
            if "pytorch" in v:
                entry["vs_pytorch"] = v["pytorch"].median_ms / r.median_ms
            if "onnx" in v:
                entry["vs_onnx"] = v["onnx"].median_ms / r.median_ms
            out.append(entry)
    return out


def markdown(rows, meta, peaks, ratios, macs, profiles, command, machine, a, elapsed, sizes, threads) -> str:
    v = machine["versions"]
    L = [f"Produced by `{command}` in {elapsed / 60:.0f} min on {machine['cpu']} ({machine['usable_cores']} usable cores), "
         f"{machine['os']}; torch {v['torch']}, onnxruntime {v['onnxruntime']}, ai-edge-litert {v['ai-edge-litert']}. "
         f"{a.warmup} warm-up + {a.runs} timed runs per row; each artefact x thread count in its own process, "
         "all rows of a table section interleaved in chunks of 5 runs (A B C ... A B C ...).",
         "",
         "Columns: *model* = the runtime call alone; *e2e* = letterbox + normalise a real 416x416 WIDER image, model, "
         "decode + NMS (`featherface_mobile.processing`); *first* = the first call after load; *RSS* = peak resident "
         "memory of the worker process (it imports torch, about 230 MB of baseline), with the rise over that "
         "baseline in brackets; *GMAC/s* = counted MACs / model median; *% peak* = that over the same runtime's "
         "speed on one 256->256 3x3 convolution at 80x80 (same threads; INT8 rows against the INT8 conv). "
         "AP = easy / medium / hard on the 41 held-out images of wider_val_416 (`splits.json`, eval split) at the row's input size.",
         "",
         "Core ML is not in these tables: there is no Core ML runtime on Linux (the MIL evaluator used for "
         "verification here is a correctness tool, not a runtime).", ""]
    for size in sizes:
        for t in threads:
            sel = [r for r in rows if (row_meta(meta, r) or {}).get("size") == size and r.threads == t and r.kind == "detector"]
            if not sel:
                continue
            L += [f"### {size}x{size}, {t} thread{'s' if t > 1 else ''}", "",
                  "| model | runtime | precision | model ms (median / p90 / min) | FPS | e2e ms (pre + model + post) | "
                  "load ms | first ms | RSS MB | GMAC/s | % peak | AP easy / medium / hard | notes |",
                  "|---|---|---|---|---:|---|---:|---:|---|---:|---:|---|---|"]
            for r in sel:
                pk = peak_for(r, peaks)
                L.append(f"| {r.model} | {r.runtime} | {r.precision} | {r.median_ms:.2f} / {r.p90_ms:.2f} / {r.min_ms:.2f} | "
                         f"{r.fps:.0f} | {r.e2e_median_ms:.1f} ({r.pre_median_ms:.1f} + {r.median_ms:.1f} + {r.post_median_ms:.1f}) | "
                         f"{r.load_ms:.0f} | {r.first_ms:.1f} | {r.peak_rss_mb:.0f} (+{r.rss_over_baseline_mb:.0f}) | "
                         f"{r.gmacs_per_s:.1f} | {100 * r.gmacs_per_s / pk if pk else float('nan'):.0f}% | "
                         f"{fmt_ap(r.ap) if r.ap else ('untrained' if 'untrained' in ' '.join(r.notes) else 'n/a')} | "
                         f"{'; '.join(n for n in r.notes if not n.startswith('AP ') and not n.startswith('untrained'))} |")
            L.append("")
    # targets
    L += ["### Speed-up ratios (same run, model-only medians)", "",
          "| model | size | threads | TFLite INT8 vs PyTorch eager | TFLite INT8 vs onnxruntime FP32 | ONNX vs PyTorch | TFLite FP32 vs onnxruntime | TFLite FP16 vs onnxruntime |",
          "|---|---:|---:|---:|---:|---:|---:|---:|"]
    index = {(q["model"], q["size"], q["threads"], q["artefact"]): q for q in ratios}
    keys = sorted({(q["model"], q["size"], q["threads"]) for q in ratios}, key=lambda k: (k[0], -k[1], k[2]))

    def cell(k, art, field):
        q = index.get((*k, art))
        return f"{q[field]:.2f}x" if q and field in q else "n/a"

    for k in keys:
        L.append(f"| {k[0]} | {k[1]} | {k[2]} | {cell(k, 'tflite-int8', 'vs_pytorch')} | {cell(k, 'tflite-int8', 'vs_onnx')} | "
                 f"{cell(k, 'onnx', 'vs_pytorch')} | {cell(k, 'tflite-fp32', 'vs_onnx')} | {cell(k, 'tflite-fp16', 'vs_onnx')} |")
    L += ["", "Targets (TFLite INT8, 640x640, 2 threads): >= 10x PyTorch eager FP32 and >= 2.5x onnxruntime FP32.", ""]
    rows_by = {}
    for r in rows:
        m = row_meta(meta, r)
        if m and r.kind == "detector":
            variant = "pytorch" if r.runtime == "pytorch" else "onnx" if r.runtime == "onnxruntime" else f"tflite-{r.precision}"
            rows_by[m["model"], m["size"], r.threads, variant] = r
    target_keys = [k for k in keys if k[1] == 640 and k[2] == 2 and (*k, "tflite-int8") in index]
    if not target_keys:
        L.append("- not measured in this run (it needs 640 in --sizes and 2 in --threads)")
    for k in target_keys:
        q = index[(*k, "tflite-int8")]
        a_ok = q.get("vs_pytorch", 0) >= 10
        b_ok = q.get("vs_onnx", 0) >= 2.5
        L.append(f"- {k[0]}: {q.get('vs_pytorch', float('nan')):.2f}x vs PyTorch ({'met' if a_ok else 'NOT met'}), "
                 f"{q.get('vs_onnx', float('nan')):.2f}x vs onnxruntime ({'met' if b_ok else 'NOT met'})")
        if not (a_ok and b_ok):
            facts = []
            for variant in ("tflite-int8", "onnx", "pytorch"):
                r = rows_by.get((*k, variant))
                pk = peak_for(r, peaks) if r else None
                if r and pk:
                    facts.append(f"{variant} {r.gmacs_per_s:.0f} GMAC/s = {100 * r.gmacs_per_s / pk:.0f}% of its runtime's conv peak "
                                 f"({pk:.0f} GMAC/s)")
            i8, f32 = peaks.get(("int8", 2)), peaks.get(("onnx", 2))
            ceiling = f"; the INT8 conv peak is {i8 / f32:.1f}x onnxruntime's FP32 conv peak on this CPU" if i8 and f32 else ""
            L.append("  - where it stands: " + "; ".join(facts) + ceiling + " (per-op detail: the profiles below, `--profile`)")
    L.append("")
    # peers
    L += ["### Peers: MediaPipe BlazeFace (LiteRT, XNNPACK), at their own input sizes", "",
          "Latency per input megapixel = model median / (input pixels / 1e6). BlazeFace detects near (short range, "
          "128x128) or within a few metres (full range, 192x192); FeatherFace/RetinaFace rows take the whole 640x640 or 320x320 image. "
          "BlazeFace e2e uses the same letterbox and a plain SSD decode + NMS.", "",
          "| contender | input | threads | model ms | ms per MP | e2e ms | GMAC | GMAC/s | vs fastest of ours (same group) |",
          "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for size in sizes:
        for t in threads:
            ours = [r for r in rows if (m := row_meta(meta, r)) and m["size"] == size and r.threads == t and m["trained"]]
            peer_rows = [r for r in rows if r.kind == "peer" and r.threads == t and f"{size}x{size} group" in " ".join(r.notes)]
            if not peer_rows:
                continue
            best = min(ours, key=lambda r: r.median_ms) if ours else None
            for r in ([best] if best else []) + peer_rows:
                rel = f"{r.median_ms / best.median_ms:.2f}x the time" if best and r is not best else "fastest trained artefact"
                L.append(f"| {r.label} | {r.input_size}x{r.input_size} | {t} | {r.median_ms:.2f} | "
                         f"{r.median_ms / r.megapixels:.1f} | {r.e2e_median_ms:.1f} | {(r.macs or 0) / 1e9:.3f} | "
                         f"{r.gmacs_per_s or float('nan'):.1f} | {rel} |")
    L.append("")
    # peaks and MACs
    L += ["### This machine's peak: one 256->256 3x3 convolution at 80x80 (3.775 GMAC)", "",
          "| runtime | threads | median ms | GMAC/s |", "|---|---:|---:|---:|"]
    for r in rows:
        if "peak" in r.notes:
            L.append(f"| {r.runtime} {r.precision} ({Path(r.artefact).suffix[1:]}) | {r.threads} | {r.median_ms:.2f} | {r.gmacs_per_s:.1f} |")
    L += ["", "### Model size and arithmetic (batch 1; MACs from forward hooks on Conv2d, Linear and the deformable conv)", "",
          "| model | params | input | GMAC total | conv | linear | deformable matmul | deformable sampling (5 per sample) |",
          "|---|---:|---|---:|---:|---:|---:|---:|"]
    for key, m in macs.items():
        name, size = key.split("@")
        L.append(f"| {name} | {m['params']:,} | {size}x{size} | {m['total'] / 1e9:.3f} | {m['conv'] / 1e9:.3f} | "
                 f"{m['linear'] / 1e9:.4f} | {m['deform_matmul'] / 1e9:.3f} | {m['deform_sampling'] / 1e9:.3f} |")
    L += ["", "Not counted: activations, pooling, elementwise adds/multiplies (attention, BiFPN weights), softmax.", ""]
    if profiles:
        L += ["### Per-op profiles (largest input size, most threads)", "", "```"] + profiles + ["```", ""]
    return "\n".join(L)


if __name__ == "__main__":
    main()
