"""`featherface bench --device android`: the report parser on what the app really writes, and the
one-line errors when adb or a device is missing.

The parser reads android_demo/detector-core/src/test/resources/benchmark_example.json, which
BenchmarkReportExampleTest (JUnit, run by run-tests.sh) keeps equal to `BenchmarkReport.toJson()`.
No phone is attached here, so the push / run / pull path is not exercised end to end.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from featherface_mobile.bench import BenchResult
from featherface_mobile.cli import main
from featherface_mobile.device_bench import (DEVICE_MODEL_DIR, REPORT_FORMAT, AdbDevice, format_comparison, parse_devices,
                                             parse_report, read_bundle, select_device)
from featherface_mobile.errors import FeatherfaceError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "android_demo" / "detector-core" / "src" / "test" / "resources" / "benchmark_example.json"


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A bundle zip laid out like `featherface package` writes it (manifest + tflite files)."""
    manifest = {"format": "featherface-package/1", "model": {"name": "retinaface-mnet025"},
                "artefacts": [{"file": "m_fp32.tflite", "format": "tflite", "precision": "fp32"},
                              {"file": "m_int8.tflite", "format": "tflite", "precision": "int8"},
                              {"file": "m.onnx", "format": "onnx", "precision": "fp32"}]}
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr("m_fp32.tflite", b"TFL3")
        z.writestr("m_int8.tflite", b"TFL3")
        z.writestr("m.onnx", b"onnx")
        z.writestr("golden/index.json", "{}")
    return path


def _one_line_error(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected a one-line error, got:\n{output}"
    assert lines[0].startswith("Error: ")
    return lines[0]


# ------------------------------------------------------------------ the app's report


def test_parses_the_report_the_kotlin_code_writes():
    text = EXAMPLE.read_text()
    assert text.endswith("}\n") and text.count("\n") == 1  # Benchmark.publish: one JSON line + newline
    r = parse_report(text, source=EXAMPLE.name)
    assert r.format == REPORT_FORMAT and r.runner == "app"
    assert r.device == "Google Pixel 7 (Google Tensor G2)" and r.android == "14 (API 34)"
    assert (r.model, r.artefact) == ("retinaface-mnet025", "mobilenet0.25_Final_int8.tflite")
    assert (r.delegate, r.delegate_used, r.fell_back) == ("gpu", "cpu", True)
    assert (r.threads, r.warmup, r.runs, r.faces) == (4, 10, 10, 1)
    assert isinstance(r.threads, int) and isinstance(r.median_ms, float)
    assert r.min_ms <= r.median_ms <= r.p90_ms <= r.max_ms
    assert (r.median_ms, r.p90_ms, r.mean_ms, r.min_ms, r.max_ms) == (12.0, 14.03, 12.55, 11.7, 15.2)
    assert r.fps == pytest.approx(1000 / r.median_ms, abs=1e-3)
    assert r.end_to_end_median_ms > r.median_ms and r.end_to_end_fps == pytest.approx(1000 / r.end_to_end_median_ms, abs=1e-3)
    assert r.note.endswith('rejected op "DEQUANTIZE"')  # the escaped quotes came through
    assert r.model_dir == DEVICE_MODEL_DIR  # the Kotlin example's path is where the host pushes


def test_every_json_key_of_the_report_is_read():
    keys = set(json.loads(EXAMPLE.read_text()))
    assert keys == set(parse_report(EXAMPLE.read_text()).as_dict()) - {"runner", "serial"}


def test_report_of_another_format_is_refused():
    data = json.loads(EXAMPLE.read_text())
    data["format"] = "featherface-android-benchmark/0"
    with pytest.raises(FeatherfaceError, match="install the app built from this checkout"):
        parse_report(json.dumps(data))


def test_format_comparison_sets_device_rows_beside_host_rows():
    device = parse_report(EXAMPLE.read_text())
    host = BenchResult(artefact="/tmp/x/mobilenet0.25_Final_int8.tflite", label="retinaface-mnet025 litert int8 640",
                       kind="detector", runtime="litert", precision="int8", model="retinaface-mnet025", input_size=640,
                       threads=4, runs=10, load_ms=30.0, first_ms=25.0, median_ms=8.5, p90_ms=9.0, min_ms=8.1, fps=117.6,
                       e2e_median_ms=12.5, e2e_p90_ms=13.0, pre_median_ms=2.0, post_median_ms=2.0, peak_rss_mb=200.0,
                       rss_over_baseline_mb=20.0)
    table = format_comparison([host], [device]).splitlines()
    assert table[2].startswith("| host | mobilenet0.25_Final_int8.tflite | litert cpu | 4 | 8.50 |")
    assert table[3].startswith("| Google Pixel 7 (Google Tensor G2), Android 14 (API 34) | mobilenet0.25_Final_int8.tflite | "
                               "app gpu -> cpu (fell back) | 4 | 12.00 | 14.03 | 11.70 | 83.3 | 16.95 | 59.0 | 1 |")
    assert table[4].startswith("note: Google Pixel 7 (Google Tensor G2): image: benchmark.jpg")


# ------------------------------------------------------------------ bundle and device selection


def test_read_bundle_takes_the_tflite_artefact_the_app_takes(bundle, tmp_path):
    b = read_bundle(bundle, tmp_path / "out")
    assert b.artefact.name == "m_int8.tflite" and b.model == "retinaface-mnet025"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m_fp32.tflite", "m_int8.tflite", "manifest.json"]


@pytest.mark.parametrize("devices, serial, message", [
    ([], None, "no Android device attached"),
    ([AdbDevice("R5CT1", "unauthorized")], None, "device R5CT1 is unauthorized: unlock it"),
    ([AdbDevice("R5CT1", "offline")], None, "device R5CT1 is offline"),
    ([AdbDevice("a", "device"), AdbDevice("b", "device")], None, "2 devices attached (a, b): pick one with --serial"),
    ([AdbDevice("a", "device")], "b", "device b is not attached"),
])
def test_device_selection_errors_name_the_fix(devices, serial, message):
    with pytest.raises(FeatherfaceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        select_device(devices, serial)


def test_device_selection_picks_the_ready_one():
    assert select_device([AdbDevice("a", "unauthorized"), AdbDevice("b", "device")], "b").serial == "b"


# ------------------------------------------------------------------ the command without adb / without a phone


def test_bench_device_without_adb_says_how_to_install_it(bundle, tmp_path, monkeypatch):
    empty = tmp_path / "empty_path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    res = CliRunner().invoke(main, ["bench", "--device", "android", str(bundle), "--no-progress"])
    assert res.exit_code != 0
    assert _one_line_error(res.output) == "Error: adb not found: apt-get install -y adb"


@pytest.fixture
def adb_server(monkeypatch):
    """adb on a private server port, stopped afterwards (no server left behind, none reused)."""
    adb = shutil.which("adb")
    if adb is None:
        pytest.skip("adb not installed (apt-get install -y adb)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))
    yield adb
    subprocess.run([adb, "kill-server"], capture_output=True, timeout=30)


def test_bench_device_with_no_phone_says_none_is_attached(adb_server, bundle):
    listed = subprocess.run([adb_server, "devices"], capture_output=True, text=True, timeout=60)
    devices = parse_devices(listed.stdout)
    if devices:
        pytest.skip(f"a device is attached here ({devices[0].serial}); this test needs none")
    assert listed.stdout.strip().endswith("List of devices attached")  # the real `adb devices` answer
    res = CliRunner().invoke(main, ["bench", "--device", "android", str(bundle), "--no-progress"])
    assert res.exit_code != 0
    assert "no Android device attached" in _one_line_error(res.output)
