"""`benchmark()` and `featherface bench` on real artefacts: every field filled, files written.

No timing assertions: the numbers depend on the machine; the tests check that they exist, are
positive and are consistent (end to end includes the model call).
"""
from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from featherface_mobile.bench import BenchResult, benchmark, blazeface_anchors, count_macs, plot_results, write_json
from featherface_mobile.cli import main

TIMES = ("load_ms", "first_ms", "median_ms", "p90_ms", "min_ms", "fps", "peak_rss_mb")


@pytest.fixture(scope="module")
def onnx_320(retinaface_weights, tmp_path_factory):
    from featherface_mobile.export import ExportOptions, export

    out = tmp_path_factory.mktemp("bench")
    res = export(retinaface_weights, formats=["onnx"], options=ExportOptions(size=320), out=out, verify_images=1,
                 log=lambda *_: None)
    return res.artefacts[0].path


@pytest.fixture(scope="module")
def rows(onnx_320, retinaface_weights) -> list[BenchResult]:
    return benchmark([onnx_320, retinaface_weights], threads=(1, 2), size=320, warmup=1, runs=4, chunk=2, progress=False)


def test_bench_rows_have_positive_fields_and_e2e_includes_the_model(rows):
    assert [(r.runtime, r.threads) for r in rows] == [("onnxruntime", 1), ("onnxruntime", 2), ("pytorch", 1), ("pytorch", 2)]
    for r in rows:
        assert r.kind == "detector" and r.model == "retinaface-mnet025" and r.input_size == 320
        assert r.runs == 4
        for name in TIMES:
            assert getattr(r, name) > 0, name
        assert r.min_ms <= r.median_ms <= r.p90_ms
        assert r.pre_median_ms > 0 and r.post_median_ms > 0
        assert r.e2e_median_ms >= r.median_ms
        assert r.macs > 0 and r.params == 426_608 and r.gmacs_per_s > 0


def test_bench_writes_json_and_plot(rows, tmp_path):
    j = write_json(rows, tmp_path / "bench.json")
    data = json.loads(j.read_text())
    assert len(data["results"]) == 4 and data["machine"]["versions"]["torch"]
    png = plot_results(rows, tmp_path / "bench.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_cli_json_plot_and_profile(onnx_320, tmp_path):
    res = CliRunner().invoke(main, ["bench", str(onnx_320), "--threads", "1", "--warmup", "0", "--runs", "2", "--no-progress",
                                     "--json", str(tmp_path / "b.json"), "--plot", str(tmp_path / "b.png"), "--profile"])
    assert res.exit_code == 0, res.output
    assert "onnxruntime profile" in res.output and "Conv" in res.output
    row = json.loads((tmp_path / "b.json").read_text())["results"][0]
    assert row["e2e_median_ms"] >= row["median_ms"] > 0
    assert (tmp_path / "b.png").stat().st_size > 0


def test_bench_rejects_a_missing_artefact(tmp_path):
    res = CliRunner().invoke(main, ["bench", str(tmp_path / "nope.onnx")])
    assert res.exit_code == 1 and "artefact not found" in res.output


def test_peer_blazeface_tflite_runs(shared):
    peers = sorted((shared / "peers" / "mediapipe_blazeface").glob("*.tflite"))
    if not peers:
        pytest.skip("no MediaPipe BlazeFace .tflite in the shared peers folder")
    rows = benchmark(peers, threads=(1,), warmup=0, runs=2, progress=False)
    for r in rows:
        assert r.kind == "peer" and r.runtime == "litert" and r.input_size in (128, 192)
        assert r.median_ms > 0 and r.e2e_median_ms >= r.median_ms and r.macs > 0


def test_blazeface_anchor_counts_match_the_model_outputs():
    assert len(blazeface_anchors(128)) == 896 and len(blazeface_anchors(192)) == 2304


def test_mac_counter_counts_the_deformable_sampling():
    from featherface_mobile.models import create_model

    v1 = count_macs(create_model("featherface-v1"), 320)
    assert v1.deform_matmul > 0 and v1.deform_sampling > 0 and v1.total > v1.conv
    rf = count_macs(create_model("retinaface-mnet025"), 640)
    assert rf.deform_sampling == 0 and math.isclose(rf.total / count_macs(create_model("retinaface-mnet025"), 320).total, 4, rel_tol=0.01)


@pytest.mark.skipif(__import__("platform").system() == "Darwin", reason="macOS has a Core ML runtime")
def test_bench_refuses_coreml_without_a_runtime(tmp_path):
    pkg = tmp_path / "model.mlpackage"
    pkg.mkdir()
    res = CliRunner().invoke(main, ["bench", str(pkg)])
    assert res.exit_code == 1 and "no Core ML runtime on Linux" in res.output


def test_tflite_op_profile_times_every_op_of_a_real_model(shared):
    from featherface_mobile.bench import profile_report, tflite_op_macs, tflite_op_profile

    peers = sorted((shared / "peers" / "mediapipe_blazeface").glob("*short_range*.tflite"))
    if not peers:
        pytest.skip("no MediaPipe BlazeFace short-range .tflite in the shared peers folder")
    rows, total = tflite_op_profile(peers[0], threads=1, runs=3, top=100)
    assert total > 0 and sum(r[1] for r in rows) <= len(tflite_op_macs(peers[0]))  # fused PADs are not rows
    assert abs(sum(r[3] for r in rows) - 1) < 1e-6 and abs(sum(r[4] for r in rows) - 1) < 1e-6
    assert any(r[0].startswith("CONV_2D") or r[0].startswith("DEPTHWISE_CONV_2D") for r in rows)
    assert "LiteRT profile" in profile_report(peers[0], threads=1)
