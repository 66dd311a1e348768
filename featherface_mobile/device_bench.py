"""On-device latency from the host: push a packaged model to an Android phone over adb, run the demo
app's benchmark mode (or LiteRT's `benchmark_model`), pull its report and set it beside host rows.

The app's report is the one line of JSON that `BenchmarkReport.toJson()` writes
(android_demo/detector-core, format `featherface-android-benchmark/1`); its checked-in example,
kept equal to the Kotlin output by a JUnit test, is what the parser here is tested on.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

from .errors import FeatherfaceError

APP_PACKAGE = "dev.featherface.demo"
APP_ACTIVITY = f"{APP_PACKAGE}/.BenchmarkActivity"
# The app's external files dir: adb can write it without root and the app reads it without a permission.
APP_FILES = f"/sdcard/Android/data/{APP_PACKAGE}/files"
DEVICE_MODEL_DIR = f"{APP_FILES}/model"  # passed to BenchmarkActivity as the model_dir extra
REPORT_PATH = f"{APP_FILES}/benchmark.json"
BENCHMARK_MODEL = "/data/local/tmp/benchmark_model"
BENCHMARK_MODEL_DIR = "/data/local/tmp/featherface"
REPORT_FORMAT = "featherface-android-benchmark/1"
# Host names of the delegates -> the app's `delegate` extra and benchmark_model's flag.
DELEGATES = {"xnnpack": ("cpu", "--use_xnnpack=true"), "gpu": ("gpu", "--use_gpu=true"), "nnapi": ("nnapi", "--use_nnapi=true")}
RUNNERS = ("auto", "app", "benchmark_model")
# The order the app picks a bundle's tflite artefact in (DetectorConfig.artefactFor).
PRECISION_PREFERENCE = ("int8", "fp16", "float16", "fp32", "float32")

Log = Callable[[str], None]


# ---------------------------------------------------------------- the report


@dataclass
class DeviceReport:
    """One on-device run. Field names are the JSON keys of `featherface-android-benchmark/1`; times in ms.

    Runs of LiteRT's `benchmark_model` fill what it prints (no end-to-end figures, no faces, and a
    median only from versions that print one).
    """

    format: str
    device: str
    android: str
    model: str | None
    artefact: str
    delegate: str
    delegate_used: str
    threads: int
    warmup: int
    runs: int
    median_ms: float | None
    p90_ms: float | None
    mean_ms: float
    min_ms: float
    max_ms: float
    fps: float
    end_to_end_median_ms: float | None = None
    end_to_end_p90_ms: float | None = None
    end_to_end_fps: float | None = None
    faces: int | None = None
    note: str | None = None
    runner: str = "app"  # not in the JSON: which on-device tool measured
    serial: str | None = None  # not in the JSON: adb serial of the device

    @property
    def fell_back(self) -> bool:
        """The requested delegate could not run the model and the app ran it on the CPU."""
        return self.delegate_used != self.delegate

    @property
    def model_dir(self) -> str | None:
        """The pushed model folder the app read (its `model: DIR` note), None for the APK's assets."""
        for part in (self.note or "").split("; "):
            if part.startswith("model: "):
                return part[len("model: "):]
        return None

    def as_dict(self) -> dict:
        return asdict(self)


_REQUIRED = ("format", "device", "android", "model", "artefact", "delegate", "delegate_used", "threads", "warmup",
             "runs", "median_ms", "p90_ms", "mean_ms", "min_ms", "max_ms", "fps")
_INTS = {"threads", "warmup", "runs", "faces"}
_JSON_KEYS = tuple(f.name for f in fields(DeviceReport) if f.name not in ("runner", "serial"))


def parse_report(text: str, *, source: str = "benchmark.json") -> DeviceReport:
    """The app's report (one JSON line) as a DeviceReport; its `{"error": ...}` form raises, with the reason."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise FeatherfaceError(f"{source} is not JSON ({e}); pull it again or read adb logcat -s FeatherFaceBench") from None
    if not isinstance(data, dict):
        raise FeatherfaceError(f"{source} holds a JSON {type(data).__name__}, not a benchmark report object")
    if data.get("format") != REPORT_FORMAT:
        raise FeatherfaceError(f"{source} has format {data.get('format')!r}, this featherface reads {REPORT_FORMAT!r}: "
                               "install the app built from this checkout")
    if "error" in data:
        raise FeatherfaceError(f"the app's benchmark failed on {data.get('device', 'the device')} "
                               f"({data.get('delegate')}, {data.get('threads')} threads): {data['error']}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise FeatherfaceError(f"{source} lacks {', '.join(missing)}: install the app built from this checkout")
    values = {}
    for k in _JSON_KEYS:
        v = data.get(k)
        values[k] = v if v is None or isinstance(v, str) else int(v) if k in _INTS else float(v)
    return DeviceReport(**values, runner="app")


_TIMINGS = re.compile(r"Inference timings in us: Init: ([\d.]+), First inference: ([\d.]+), "
                      r"Warmup \(avg\): ([\d.eE+-]+|nan), Inference \(avg\): ([\d.eE+-]+)")


def parse_benchmark_model_output(text: str, *, device: str, android: str, artefact: str, delegate: str,
                                 threads: int, warmup: int) -> DeviceReport:
    """LiteRT `benchmark_model`'s printout as a DeviceReport (its last `count=` line: the timed runs, in us)."""
    if not _TIMINGS.search(text):
        raise FeatherfaceError(f"benchmark_model did not finish on {device}: {_last_line(text)}")
    stats = [ln for ln in text.splitlines() if re.search(r"\bcount=\d+", ln)]
    timed = dict(re.findall(r"(\w+)=([\d.eE+-]+)", stats[-1])) if stats else {}
    mean_us = float(timed.get("avg", _TIMINGS.search(text).group(4)))
    median_us = float(timed["median"]) if "median" in timed else None
    note = None if median_us is not None else "this benchmark_model prints no median: fps from the mean"
    return DeviceReport(
        format=REPORT_FORMAT, device=device, android=android, model=None, artefact=artefact, delegate=delegate,
        delegate_used=delegate, threads=threads, warmup=warmup, runs=int(timed.get("count", 0)),
        median_ms=median_us / 1e3 if median_us is not None else None, p90_ms=None, mean_ms=mean_us / 1e3,
        min_ms=float(timed.get("min", "nan")) / 1e3, max_ms=float(timed.get("max", "nan")) / 1e3,
        fps=1e6 / (median_us if median_us is not None else mean_us), note=note,
        runner="benchmark_model")


# ---------------------------------------------------------------- adb


@dataclass
class AdbDevice:
    serial: str
    state: str  # "device" when usable; "unauthorized", "offline", "no permissions ...", ...


def find_adb() -> str:
    adb = shutil.which("adb")
    if adb is None:
        raise FeatherfaceError("adb not found: apt-get install -y adb")
    return adb


def parse_devices(text: str) -> list[AdbDevice]:
    """The devices listed by `adb devices` (serial TAB state), daemon start-up chatter skipped."""
    out = []
    for line in text.splitlines():
        if "\t" not in line or line.startswith("*"):
            continue
        serial, state = line.split("\t", 1)
        out.append(AdbDevice(serial.strip(), state.strip()))
    return out


def list_devices(adb: str, *, timeout: float = 60.0) -> list[AdbDevice]:
    try:
        proc = subprocess.run([adb, "devices"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FeatherfaceError(f"adb devices did not answer in {timeout:.0f} s: run adb kill-server and try again") from None
    if proc.returncode != 0:
        raise FeatherfaceError(f"adb devices failed: {_last_line(proc.stderr or proc.stdout)}; run adb kill-server and try again")
    return parse_devices(proc.stdout)


def select_device(devices: list[AdbDevice], serial: str | None = None) -> AdbDevice:
    """The one device to run on, or a one-line error saying why there is none."""
    if not devices:
        raise FeatherfaceError("no Android device attached (adb devices lists none): connect a phone with USB debugging on")
    if serial is not None:
        match = [d for d in devices if d.serial == serial]
        if not match:
            raise FeatherfaceError(f"device {serial} is not attached (adb devices lists {', '.join(d.serial for d in devices)}): check --serial")
        devices = match
    ready = [d for d in devices if d.state == "device"]
    if not ready:
        d = devices[0]
        if d.state == "unauthorized":
            raise FeatherfaceError(f"device {d.serial} is unauthorized: unlock it, accept the 'Allow USB debugging' prompt and run again")
        if d.state == "offline":
            raise FeatherfaceError(f"device {d.serial} is offline: reconnect the cable (or run adb reconnect) and run again")
        if d.state.startswith("no permissions"):
            raise FeatherfaceError(f"device {d.serial}: no permissions for its USB device; add a udev rule for the phone "
                                   "(or run adb kill-server; sudo adb start-server) and run again")
        raise FeatherfaceError(f"device {d.serial} is {d.state}, not ready: wait for it to boot and run again")
    if len(ready) > 1:
        raise FeatherfaceError(f"{len(ready)} devices attached ({', '.join(d.serial for d in ready)}): pick one with --serial")
    return ready[0]


def _last_line(text: str) -> str:
    return next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), "no output")


@dataclass
class Adb:
    """adb commands on one device; a failure or timeout is a one-line FeatherfaceError."""

    executable: str
    serial: str

    def run(self, *args: str, timeout: float = 120.0) -> str:
        try:
            proc = subprocess.run([self.executable, "-s", self.serial, *args], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise FeatherfaceError(f"adb {args[0]} on {self.serial} did not finish in {timeout:.0f} s: "
                                   "check the device is awake and still connected") from None
        if proc.returncode != 0:
            raise FeatherfaceError(f"adb {' '.join(args[:2])} on {self.serial} failed: {_last_line(proc.stderr or proc.stdout)}")
        return proc.stdout

    def shell(self, *words: str, timeout: float = 120.0) -> str:
        """Run one command line on the device; every word is quoted for the device's shell."""
        return self.run("shell", " ".join(shlex.quote(w) for w in words), timeout=timeout)

    def exists(self, path: str, test: str = "-f") -> bool:
        return "present" in self.run("shell", f"if [ {test} {shlex.quote(path)} ]; then echo present; fi")

    def push(self, local: Path, remote: str) -> None:
        self.run("push", str(local), remote, timeout=600.0)

    def pull(self, remote: str, local: Path) -> None:
        self.run("pull", remote, str(local))

    def describe(self) -> tuple[str, str]:
        """(manufacturer model (SoC), "release (API n)"), as the app writes them."""
        keys = ("ro.product.manufacturer", "ro.product.model", "ro.soc.manufacturer", "ro.soc.model",
                "ro.build.version.release", "ro.build.version.sdk")
        values = [self.shell("getprop", k).strip() for k in keys]
        man, model, soc_man, soc_model, release, sdk = values
        soc = f" ({soc_man} {soc_model})" if soc_model else ""
        return f"{man} {model}{soc}", f"{release} (API {sdk})"


# ---------------------------------------------------------------- the bundle


@dataclass
class Bundle:
    """A `featherface package` zip unpacked: its manifest and the tflite artefact the app would load."""

    manifest: Path
    tflite: list[Path]
    artefact: Path  # the one benchmarked (the app's preference: int8 first)
    model: str | None


def read_bundle(path: str | Path, dest: str | Path) -> Bundle:
    """Unpack manifest.json and the .tflite files of bundle `path` into `dest`."""
    path, dest = Path(path), Path(dest)
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise FeatherfaceError(f"{path}: not a bundle zip ({e}); make one with featherface package MODEL.tflite --out bundle.zip") from None
    with z:
        names = [n for n in z.namelist() if "/" not in n and (n == "manifest.json" or n.endswith(".tflite"))]
        if "manifest.json" not in names:
            raise FeatherfaceError(f"{path}: no manifest.json at the top level; is it a `featherface package` zip?")
        dest.mkdir(parents=True, exist_ok=True)
        for n in names:
            (dest / n).write_bytes(z.read(n))
    manifest = json.loads((dest / "manifest.json").read_text())
    records = [r for r in manifest.get("artefacts", []) if r.get("format") == "tflite" and (dest / r["file"]).is_file()]
    if not records:
        raise FeatherfaceError(f"{path}: no .tflite artefact; export one (featherface export --format tflite) and package it")
    rank = {p: i for i, p in enumerate(PRECISION_PREFERENCE)}
    chosen = min(records, key=lambda r: rank.get(r.get("precision"), len(rank)))
    return Bundle(manifest=dest / "manifest.json", tflite=sorted(dest.glob("*.tflite")), artefact=dest / chosen["file"],
                  model=(manifest.get("model") or {}).get("name"))


# ---------------------------------------------------------------- running


def _run_app(adb: Adb, *, delegate: str, threads: int, warmup: int, runs: int, timeout: float, log: Log) -> DeviceReport:
    app_delegate = DELEGATES[delegate][0]
    adb.shell("rm", "-f", REPORT_PATH)
    log(f"{adb.serial}: BenchmarkActivity, {delegate}, {threads} threads, {warmup} warm-up + {runs} runs")
    out = adb.shell("am", "start", "-W", "-S", "-n", APP_ACTIVITY, "--es", "delegate", app_delegate,
                    "--ei", "threads", str(threads), "--ei", "warmup", str(warmup), "--ei", "runs", str(runs),
                    "--es", "model_dir", DEVICE_MODEL_DIR, "--ez", "finish", "true")
    if "Error" in out:
        raise FeatherfaceError(f"am start {APP_ACTIVITY} failed on {adb.serial}: "
                               f"{next(ln.strip() for ln in out.splitlines() if 'Error' in ln)}")
    deadline = time.monotonic() + timeout
    while not adb.exists(REPORT_PATH):  # Benchmark.publish writes it atomically, at the end
        if time.monotonic() > deadline:
            raise FeatherfaceError(f"no {REPORT_PATH} on {adb.serial} after {timeout:.0f} s: "
                                   "see adb logcat -s FeatherFaceBench (fewer --runs for slow delegates)")
        time.sleep(1.0)
    with tempfile.TemporaryDirectory(prefix="ff-device-") as tmp:
        local = Path(tmp) / "benchmark.json"
        adb.pull(REPORT_PATH, local)
        report = parse_report(local.read_text(), source=f"{adb.serial}:{REPORT_PATH}")
    if report.model_dir != DEVICE_MODEL_DIR:
        raise FeatherfaceError("the installed app measured the model in its APK, not the pushed one (it predates the "
                               "model_dir extra): install the current build, cd android_demo && ./gradlew :app:installRelease")
    report.serial = adb.serial
    return report


def _run_benchmark_model(adb: Adb, remote_model: str, *, delegate: str, threads: int, warmup: int, runs: int,
                         timeout: float, log: Log) -> DeviceReport:
    device, android = adb.describe()
    log(f"{adb.serial}: {BENCHMARK_MODEL}, {delegate}, {threads} threads, {warmup} warm-up + {runs} runs")
    # min_secs 0: exactly `runs` timed runs, as the app and the host do (the tool's default also runs for >= 1 s).
    out = adb.run("shell", " ".join([BENCHMARK_MODEL, f"--graph={shlex.quote(remote_model)}", f"--num_threads={threads}",
                                     f"--warmup_runs={warmup}", "--warmup_min_secs=0", f"--num_runs={runs}", "--min_secs=0",
                                     DELEGATES[delegate][1], "2>&1"]), timeout=timeout)
    report = parse_benchmark_model_output(out, device=device, android=android, artefact=Path(remote_model).name,
                                          delegate=DELEGATES[delegate][0], threads=threads, warmup=warmup)
    report.serial = adb.serial
    return report


@dataclass
class DeviceBenchRun:
    """Device rows (one per thread count) and the host rows of the same artefact."""

    serial: str
    runner: str
    bundle_artefact: str
    device: list[DeviceReport]
    host: list = field(default_factory=list)  # featherface_mobile.bench.BenchResult

    def as_dict(self) -> dict:
        return {"serial": self.serial, "runner": self.runner, "artefact": self.bundle_artefact,
                "device": [d.as_dict() for d in self.device], "host": [h.as_dict() for h in self.host]}


def device_benchmark(
    bundle: str | Path,
    *,
    serial: str | None = None,
    delegate: str = "xnnpack",
    threads: tuple[int, ...] | list[int] = (1, 2),
    warmup: int = 5,
    runs: int = 50,
    runner: str = "auto",
    image: str | Path | None = None,
    host: bool = True,
    timeout: float = 600.0,
    progress: bool = True,
    log: Log = lambda _msg: None,
) -> DeviceBenchRun:
    """Benchmark bundle's tflite artefact on the attached Android device, then (`host`) on this machine.

    `runner` "app" runs the installed demo app's BenchmarkActivity on the pushed model (latency of
    the inference and of the whole pipeline, faces found); "benchmark_model" runs LiteRT's tool at
    /data/local/tmp/benchmark_model (inference only); "auto" takes the app when it is installed.
    `image` (default: the host benchmark's image) is pushed for the app to run on, so both sides
    see the same picture.
    """
    from . import bench

    bundle = Path(bundle)
    if delegate not in DELEGATES:
        raise FeatherfaceError(f"unknown delegate {delegate!r}; use one of {', '.join(DELEGATES)}")
    if runner not in RUNNERS:
        raise FeatherfaceError(f"unknown runner {runner!r}; use one of {', '.join(RUNNERS)}")
    if runs < 1 or warmup < 0 or not threads:
        raise FeatherfaceError("need --runs >= 1, --warmup >= 0 and at least one thread count")
    if not bundle.is_file():
        raise FeatherfaceError(f"bundle not found: {bundle}; make one with featherface package MODEL.tflite --out bundle.zip")
    adb_path = find_adb()
    adb = Adb(adb_path, select_device(list_devices(adb_path), serial).serial)

    with tempfile.TemporaryDirectory(prefix="ff-bundle-") as tmp:
        b = read_bundle(bundle, tmp)
        if runner == "auto":
            if "package:" in adb.run("shell", f"pm path {APP_PACKAGE} || true"):
                runner = "app"
            elif adb.exists(BENCHMARK_MODEL, "-x"):
                runner = "benchmark_model"
            else:
                raise FeatherfaceError(f"{adb.serial} has neither the demo app ({APP_PACKAGE}) nor {BENCHMARK_MODEL}: install the app "
                                       f"(cd android_demo && ./gradlew :app:installRelease) or push LiteRT's benchmark_model there")
        image = image or bench.default_image()
        reports = []
        if runner == "app":
            adb.shell("rm", "-rf", DEVICE_MODEL_DIR)
            adb.shell("mkdir", "-p", DEVICE_MODEL_DIR)
            pushed = [(p, p.name) for p in (b.manifest, *b.tflite)]
            if image and Path(image).suffix.lower() in (".jpg", ".jpeg", ".png"):  # the app looks for benchmark.{jpg,jpeg,png}
                pushed.append((Path(image), f"benchmark{Path(image).suffix.lower()}"))
            for local, name in pushed:
                log(f"{adb.serial}: push {local.name} -> {DEVICE_MODEL_DIR}/{name}")
                adb.push(local, f"{DEVICE_MODEL_DIR}/{name}")
            for t in threads:
                reports.append(_run_app(adb, delegate=delegate, threads=int(t), warmup=warmup, runs=runs, timeout=timeout, log=log))
        else:
            if not adb.exists(BENCHMARK_MODEL, "-x"):
                raise FeatherfaceError(f"{BENCHMARK_MODEL} not found on {adb.serial}: push LiteRT's Android benchmark_model binary "
                                       f"there (adb push benchmark_model {BENCHMARK_MODEL}; adb shell chmod +x {BENCHMARK_MODEL})")
            remote = f"{BENCHMARK_MODEL_DIR}/{b.artefact.name}"
            adb.shell("mkdir", "-p", BENCHMARK_MODEL_DIR)
            log(f"{adb.serial}: push {b.artefact.name} -> {remote}")
            adb.push(b.artefact, remote)
            for t in threads:
                reports.append(_run_benchmark_model(adb, remote, delegate=delegate, threads=int(t), warmup=warmup, runs=runs,
                                                    timeout=timeout, log=log))
        host_rows = (bench.benchmark([b.artefact], threads=tuple(threads), warmup=warmup, runs=runs, image=image, progress=progress)
                     if host else [])
        return DeviceBenchRun(serial=adb.serial, runner=runner, bundle_artefact=b.artefact.name, device=reports, host=host_rows)


# ---------------------------------------------------------------- reporting


def _ms(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def format_comparison(host: list, device: list[DeviceReport]) -> str:
    """One table: host rows (featherface_mobile.bench.BenchResult) and device rows, same columns."""
    head = "| where | artefact | runtime / delegate | threads | median ms | p90 ms | min ms | FPS | e2e median ms | e2e FPS | faces |"
    lines = [head, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in host:
        e2e_fps = 1e3 / r.e2e_median_ms if r.e2e_median_ms else None
        lines.append(f"| host | {Path(r.artefact).name} | {r.runtime} cpu | {r.threads} | {r.median_ms:.2f} | {r.p90_ms:.2f} | "
                     f"{r.min_ms:.2f} | {r.fps:.1f} | {_ms(r.e2e_median_ms)} | {_ms(e2e_fps, 1)} | n/a |")
    for d in device:
        used = d.delegate_used if not d.fell_back else f"{d.delegate} -> {d.delegate_used} (fell back)"
        where = f"{d.device}, Android {d.android}"
        lines.append(f"| {where} | {d.artefact} | {d.runner} {used} | {d.threads} | {_ms(d.median_ms)} | {_ms(d.p90_ms)} | "
                     f"{d.min_ms:.2f} | {d.fps:.1f} | {_ms(d.end_to_end_median_ms)} | {_ms(d.end_to_end_fps, 1)} | "
                     f"{'n/a' if d.faces is None else d.faces} |")
    notes = list(dict.fromkeys(f"{d.device}: {d.note}" for d in device if d.note))
    return "\n".join(lines + [f"note: {n}" for n in notes])
