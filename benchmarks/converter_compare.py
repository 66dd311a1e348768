"""Converter choice for TFLite: onnx2tf (PyTorch -> ONNX -> TFLite) against litert-torch (PyTorch -> TFLite).

Each converter's float32 and full-INT8 artefacts of the shared checkpoints are measured the same
way: the project's verify gate against PyTorch (max abs error, decoded-face F1), WIDER AP on the
held-out eval split (`evaluate`), file size, conversion seconds, and which ops stayed float.

The two converters need different environments (onnx2tf pins TensorFlow 2.19 and numpy 1.26;
litert-torch brings numpy 2 and ai-edge-litert 2.3), so each environment runs one command that
writes a JSON, and `merge` joins them:

  # a venv with litert-torch (and featherface_mobile importable)
  python benchmarks/converter_compare.py litert --json runs/bench/converter_compare/litert.json
  # the project venv (tflite extra): onnx2tf artefacts, exported unless already in --artefacts
  python benchmarks/converter_compare.py onnx2tf --artefacts runs/bench/exports --json runs/bench/converter_compare/onnx2tf.json
  python benchmarks/converter_compare.py merge runs/bench/converter_compare/*.json

Writes benchmarks/results/converter_compare.{md,json} (merge).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import torch

from featherface_mobile.checkpoint import load_model
from featherface_mobile.evaluate import evaluate
from featherface_mobile.export import ExportOptions, verify
from featherface_mobile.io import atomic_path, write_json
from featherface_mobile.errors import run_script
from featherface_mobile.paths import require_wider_val
from featherface_mobile.runtime import load_runner
from featherface_mobile.splits import split_images

MODELS = ("retinaface-mnet025", "featherface-v1")
RESULTS = Path(__file__).resolve().parent / "results"
SUBSETS = ("easy", "medium", "hard")
QUANT_OPS = {"QUANTIZE", "DEQUANTIZE"}


@dataclass
class Row:
    model: str
    converter: str  # "pytorch" (reference), "onnx2tf" or "litert-torch"
    precision: str
    recipe: str = ""
    file: str | None = None
    kb: int | None = None
    convert_s: float | None = None
    convert_s_source: str = "measured in this run"
    max_abs: dict[str, float] = field(default_factory=dict)
    verify_f1: float | None = None
    verify_passed: bool | None = None
    gate: str = ""
    ap: dict[str, float] = field(default_factory=dict)
    ops: dict = field(default_factory=dict)
    error: str | None = None


# --- measuring one artefact ------------------------------------------------------------------

def tflite_ops(path: Path) -> dict:
    """Op counts of a .tflite, and the compute ops (not QUANTIZE/DEQUANTIZE) that run in float32."""
    from featherface_mobile.export import tflite_graph

    schema = tflite_graph.schema()
    model = tflite_graph.read(Path(path).read_bytes())
    graph, types = model.subgraphs[0], tflite_graph.op_types(model)
    counts: dict[str, int] = {}
    float_ops: dict[str, int] = {}
    for op in graph.operators:
        name = types[op.opcodeIndex]
        counts[name] = counts.get(name, 0) + 1
        if name not in QUANT_OPS and graph.tensors[op.outputs[0]].type == schema.TensorType.FLOAT32:
            float_ops[name] = float_ops.get(name, 0) + 1
    return {"total": sum(counts.values()), "counts": counts, "float_compute_ops": float_ops}


def measure(row: Row, path: Path, weights: Path | None, size: int, data: Path, verify_images: int) -> Row:
    """Fill `row` with the verify gate's figures, eval-split AP, size and op summary of `path`."""
    net = load_model(weights, row.model)
    runner = load_runner(path, threads=1)
    report = verify(path, reference_model=net, runner=runner, images=verify_images)
    row.file, row.kb = str(path), round(path.stat().st_size / 1024)
    row.max_abs = {k: v.max_abs for k, v in report.outputs.items()}
    row.verify_f1, row.verify_passed, row.gate = report.f1, report.passed, report.gate
    row.ap = evaluate(runner, data, size=size, images=split_images("eval", data), progress=False).ap
    row.ops = tflite_ops(path)
    print(f"  {row.converter} {row.precision} {path.name}: {report.summary()}\n  AP {row.ap}", flush=True)
    return row


def reference_row(model: str, size: int, data: Path) -> Row:
    runner = load_runner(None, model=model)
    ap = evaluate(runner, data, size=size, images=split_images("eval", data), progress=False).ap
    return Row(model, "pytorch", "fp32", recipe="eager float32 (reference)", ap=ap, convert_s_source="")


# --- litert-torch ----------------------------------------------------------------------------

def channel_last_model(net: torch.nn.Module) -> torch.nn.Module:
    """The export copy (deformable convs in gather form) taking NHWC input, as the TFLite runner feeds it."""
    import litert_torch

    from featherface_mobile.export.common import export_copy

    return litert_torch.to_channel_last_io(export_copy(net), args=[0]).eval()


def calibration_nhwc(net: torch.nn.Module, size: int) -> np.ndarray:
    """The onnx2tf INT8 path's calibration inputs: train-split images, runtime preprocessing, NHWC."""
    from featherface_mobile.export.tflite_format import calibration_batches

    return calibration_batches(net, ExportOptions(size=size, int8=True))


def float_only(quantizer_class: type) -> type:
    """`quantizer_class` whose annotations skip integer tensors.

    The gather form of the deformable convs computes its sampling indices in int32; litert-torch's
    mul/add/cat annotators observe those too, and the histogram observer fails on them
    ("histogram_cpu" not implemented for 'Int'). Index math is exact and must stay integer anyway.
    """
    def is_float(node) -> bool:
        val = getattr(node, "meta", {}).get("val")
        return isinstance(val, torch.Tensor) and val.dtype.is_floating_point

    class FloatOnly(quantizer_class):
        def annotate(self, model):
            model = super().annotate(model)
            for node in model.graph.nodes:
                ann = node.meta.get("quantization_annotation")
                if ann is None:
                    continue
                if not is_float(node):
                    ann.output_qspec = None
                ann.input_qspec_map = {arg: spec for arg, spec in ann.input_qspec_map.items() if is_float(arg)}
            return model

    return FloatOnly


def litert_convert(net: torch.nn.Module, size: int, precision: str, calib: np.ndarray | None) -> bytes:
    """float32: litert_torch.convert. int8: PT2E (litert-torch's quantizer: per-channel symmetric int8
    weights, int8 activations from histogram observers over `calib`), then convert with its QuantConfig."""
    import litert_torch

    model = channel_last_model(net)
    sample = (torch.zeros(1, size, size, 3),)
    if precision == "fp32":
        return litert_torch.convert(model, sample).model_content()
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = float_only(pq.PT2EQuantizer)().set_global(pq.get_symmetric_quantization_config(is_per_channel=True))
    graph = prepare_pt2e(torch.export.export(model, sample).module(), quantizer)
    with torch.no_grad():
        for x in calib:
            graph(torch.from_numpy(np.ascontiguousarray(x[None])))
    graph = move_exported_model_to_eval(convert_pt2e(graph, fold_quantize=False))
    return litert_torch.convert(graph, sample, quant_config=QuantConfig(pt2e_quantizer=quantizer)).model_content()


def write_litert_artefact(net, model_bytes: bytes, path: Path, size: int, precision: str, recipe: str) -> None:
    from featherface_mobile.export.common import artefact_metadata
    from featherface_mobile.export.tflite_format import embed_metadata

    meta = artefact_metadata(net, size, precision, "tflite", "NHWC", getattr(net, "weights_path", None))
    meta.update(input_dtype="float32", converter=f"litert-torch {importlib_metadata.version('litert-torch')}", recipe=recipe)
    with atomic_path(path) as tmp:
        tmp.write_bytes(embed_metadata(model_bytes, meta))


def run_litert(a, save) -> None:
    for model in a.models:
        for precision, recipe in (("fp32", "litert_torch.convert"),
                                  ("int8", "PT2E PT2EQuantizer per-channel, HistogramObserver, calibrated on the onnx2tf INT8 images; integer index tensors not observed"),
                                  ("int8-prep", "prepare_for_int8 (BN fold, equalization, bias correction) + the same PT2E")):
            if precision not in a.precisions:
                continue
            row = Row(model, "litert-torch", "int8" if precision.startswith("int8") else "fp32", recipe=recipe)
            path = a.out / f"{model}_{a.size}_{precision}_litert.tflite"
            try:
                net = load_model(None, model)
                calib = calibration_nhwc(net, a.size) if precision != "fp32" else None
                t0 = time.perf_counter()
                if precision == "int8-prep":
                    from featherface_mobile.quant import prepare_for_int8

                    batches = [torch.from_numpy(x.transpose(2, 0, 1)[None].copy()) for x in calib[:32]]
                    prepared = prepare_for_int8(net, batches)
                    for attr in ("config", "model_name", "weights_path"):
                        setattr(prepared, attr, getattr(net, attr, None))
                    model_bytes = litert_convert(prepared, a.size, "int8", calib)
                else:
                    model_bytes = litert_convert(net, a.size, row.precision, calib)
                row.convert_s = round(time.perf_counter() - t0, 1)
                write_litert_artefact(net, model_bytes, path, a.size, row.precision, recipe)
                measure(row, path, None, a.size, a.data, a.verify_images)
            except Exception as e:  # a converter failure is a result here: record it and go on
                row.error = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
                print(f"  {model} {precision}: FAILED {row.error}", flush=True)
            save(row)


# --- onnx2tf (the project's export pipeline) -------------------------------------------------

def logged_export_seconds(table: Path | None, model: str, precision: str) -> float | None:
    """Export seconds that benchmarks/export_report.py logged for a reused artefact."""
    if table is None or not table.is_file():
        return None
    for r in json.loads(table.read_text())["rows"]:
        if r["model"] == model and r["format"] == "tflite" and r["precision"] == precision:
            return r.get("export_s")
    return None


def run_onnx2tf(a, save) -> None:
    from featherface_mobile.export import export
    from featherface_mobile.export.pipeline import artefact_name

    for model in a.models:
        if a.reference:
            ref = reference_row(model, a.size, a.data)
            print(f"  pytorch {model}: AP {ref.ap}", flush=True)
            save(ref)
        for precision in [p for p in a.precisions if p in ("fp32", "int8")]:
            opts = ExportOptions(size=a.size, int8=precision == "int8")
            path = a.artefacts / artefact_name(model, a.size, ".tflite", precision, opts)
            row = Row(model, "onnx2tf", precision,
                      recipe="onnx2tf 1.29 float32" if precision == "fp32" else
                      "prepare_for_int8 + onnx2tf + TFLiteConverter full-integer, MSE-clipped ranges")
            try:
                if path.is_file() and path.with_name(path.name + ".verify.json").is_file():
                    row.convert_s = logged_export_seconds(a.export_table, model, precision)
                    row.convert_s_source = f"reused artefact; seconds logged in {a.export_table}" if row.convert_s else "reused artefact"
                else:
                    t0 = time.perf_counter()
                    res = export(None, model=model, formats=["tflite"], options=opts, out=a.artefacts, keep_failed=True,
                                 skip_verify=True, log=lambda *_: None)
                    row.convert_s = round(time.perf_counter() - t0, 1)
                    path = (res.artefacts or res.failed)[0].path
                measure(row, path, None, a.size, a.data, a.verify_images)
            except Exception as e:
                row.error = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
                print(f"  {model} {precision}: FAILED {row.error}", flush=True)
            save(row)


# --- merge -----------------------------------------------------------------------------------

def environment() -> dict:
    names = ("torch", "numpy", "litert-torch", "ai-edge-litert", "torchao", "onnx2tf", "tensorflow", "onnx")
    env = {}
    for n in names:
        try:
            env[n] = importlib_metadata.version(n)
        except importlib_metadata.PackageNotFoundError:
            pass
    return env


def fmt_err(d: dict) -> str:
    return f"{max(d.values()):.1e}" if d else ""


def markdown(runs: list[dict]) -> str:
    size = runs[0]["size"]
    lines = [f"Input {size}x{size}. max abs err: largest |artefact - PyTorch| over loc/conf/landms on "
             f"{runs[0]['verify_images']} held-out images (verify gate); verify F1: decoded faces at score 0.5, IoU 0.5; "
             "AP: WIDER easy/medium/hard on the eval split of wider_val_416 (41 images, none used for calibration). "
             "float ops (INT8 rows): compute ops whose output is float32 (QUANTIZE/DEQUANTIZE not counted).", ""]
    for r in runs:
        lines.append(f"- `{r['command']}`: " + ", ".join(f"{k} {v}" for k, v in r["environment"].items()))
    lines += ["", "| model | converter | precision | KB | convert s | max abs err | verify F1 | verify | AP easy | AP medium | AP hard | float ops / total |",
              "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    rows = [dict(r) for run in runs for r in run["rows"]]
    order = {m: i for i, m in enumerate(MODELS)}
    rows.sort(key=lambda r: (order.get(r["model"], 9), r["precision"], {"pytorch": 0, "onnx2tf": 1}.get(r["converter"], 2)))
    for r in rows:
        label = r["converter"] + (" (prepare_for_int8)" if r["converter"] == "litert-torch" and r["recipe"].startswith("prepare") else "")
        if r["error"]:
            lines.append(f"| {r['model']} | {label} | {r['precision']} | | | | | FAILED: {r['error']} | | | | |")
            continue
        ap = r["ap"]
        ops = r["ops"]
        float_ops = sum(ops.get("float_compute_ops", {}).values()) if ops else None
        f1 = "" if r["verify_f1"] is None else f"{r['verify_f1']:.3f}"
        op_share = "" if float_ops is None or r["precision"] != "int8" else f"{float_ops} / {ops['total']}"
        verdict = "" if r["verify_passed"] is None else ("PASS" if r["verify_passed"] else "FAIL")
        secs = "" if r["convert_s"] is None else f"{r['convert_s']:.1f}" + ("*" if "reused" in r["convert_s_source"] else "")
        lines.append(
            f"| {r['model']} | {label} | {r['precision']} | {r['kb'] or ''} | {secs} | {fmt_err(r['max_abs'])} "
            f"| {f1} | {verdict} | {ap['easy']:.4f} | {ap['medium']:.4f} | {ap['hard']:.4f} | {op_share} |")
    lines += ["", "\\* reused artefact: seconds as logged by the export that made it (benchmarks/results/export_table.json).", "",
              "Recipes:"]
    seen = set()
    for r in rows:
        key = (r["converter"], r["precision"], r["recipe"])
        if r["recipe"] and key not in seen:
            seen.add(key)
            lines.append(f"- {r['converter']} {r['precision']}: {r['recipe']}")
    float_detail = [(r["model"], r["converter"], r["recipe"], r["ops"]["float_compute_ops"]) for r in rows
                    if r["precision"] == "int8" and r.get("ops") and r["ops"].get("float_compute_ops")]
    if float_detail:
        lines += ["", "Float32 compute ops left in the INT8 models:"]
        lines += [f"- {m} {c} ({rec.split(',')[0]}): {json.dumps(f)}" for m, c, rec, f in float_detail]
    return "\n".join(lines) + "\n"


def merge(paths: list[Path]) -> None:
    runs = [json.loads(p.read_text()) for p in paths]
    RESULTS.mkdir(exist_ok=True)
    write_json(RESULTS / "converter_compare.json", {"runs": runs})
    text = markdown(runs)
    with atomic_path(RESULTS / "converter_compare.md") as tmp:
        tmp.write_text(text)
    print(text)


def main() -> None:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    for name, default_prec in (("litert", "fp32,int8,int8-prep"), ("onnx2tf", "fp32,int8")):
        p = sub.add_parser(name, help=f"convert/measure the {name} artefacts; write --json")
        p.add_argument("--size", type=int, default=640)
        p.add_argument("--models", default=",".join(MODELS))
        p.add_argument("--precisions", default=default_prec)
        p.add_argument("--verify-images", type=int, default=8)
        p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
        p.add_argument("--json", type=Path, required=True)
        if name == "litert":
            p.add_argument("--out", type=Path, default=Path("runs/bench/converter_compare"))
        else:
            p.add_argument("--artefacts", type=Path, default=Path("runs/bench/exports"),
                           help="reuse <model>_<size>_<precision>.tflite with .verify.json from here; export the missing ones")
            p.add_argument("--export-table", type=Path, default=RESULTS / "export_table.json",
                           help="export seconds of reused artefacts")
            p.add_argument("--no-reference", dest="reference", action="store_false", help="skip the PyTorch AP row")
    m = sub.add_parser("merge", help="join the JSONs into benchmarks/results/converter_compare.{md,json}")
    m.add_argument("inputs", type=Path, nargs="+")
    a = ap.parse_args()
    if a.command == "merge":
        merge(a.inputs)
        return
    torch.set_num_threads(a.threads)
    a.data = require_wider_val()
    a.models = [x for x in a.models.split(",") if x]
    a.precisions = [x for x in a.precisions.split(",") if x]
    record = {"command": "python benchmarks/converter_compare.py " + " ".join(sys.argv[1:]), "size": a.size,
              "verify_images": a.verify_images, "environment": environment(), "rows": []}

    def save(row: Row) -> None:  # after every row, so an interrupted run keeps what it measured
        record["rows"].append(dataclasses.asdict(row))
        write_json(a.json, record)

    (run_litert if a.command == "litert" else run_onnx2tf)(a, save)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    run_script(main)
