"""Checks on the Android sample app that need no Android SDK (Google's Maven is unreachable on CI).

(a) every .kt / .kts file under android_demo/ parses with tree-sitter-kotlin (no ERROR / MISSING nodes);
(b) the pure Kotlin module android_demo/detector-core is compiled with kotlinc and its JUnit tests run
    (run-tests.sh) against golden vectors written here by `featherface_mobile.golden.write_golden`:
    the Kotlin decoder must reproduce the Python faces (count, order, 0.01 px);
(c) scripts/copy-model.sh puts a bundle's manifest and .tflite files where the app reads them.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ANDROID = ROOT / "android_demo"
CORE = ANDROID / "detector-core"
RUN_TESTS = CORE / "run-tests.sh"
KOTLIN_FILES = sorted(p for p in ANDROID.rglob("*.kt*") if p.suffix in (".kt", ".kts") and "build" not in p.relative_to(ANDROID).parts)


def _kotlin_parser():
    try:
        import tree_sitter
        import tree_sitter_kotlin
    except ImportError as e:  # a hard failure: CI must not pass without parsing the Kotlin sources
        pytest.fail(f"{e}; install the test extras: pip install -e '.[test]' (tree-sitter, tree-sitter-kotlin)")
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_kotlin.language()))


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


def _syntax_problems(source: bytes, label: str) -> list[str]:
    problems = []
    for n in _walk(_kotlin_parser().parse(source).root_node):
        if n.type == "ERROR" or n.is_missing:
            what = f"missing {n.type!r}" if n.is_missing else "syntax error"
            snippet = n.text.decode(errors="replace").splitlines()[0][:60] if n.text else ""
            problems.append(f"{label}:{n.start_point[0] + 1}:{n.start_point[1] + 1}: {what} near {snippet!r}")
    return problems


# ---------------------------------------------------------------------------------------------
# (a) syntax


def test_android_demo_has_the_expected_sources():
    names = {p.relative_to(ANDROID).as_posix() for p in KOTLIN_FILES}
    for required in ("settings.gradle.kts", "build.gradle.kts", "app/build.gradle.kts", "detector-core/build.gradle.kts",
                     "detector-core/src/main/kotlin/dev/featherface/core/FaceDecoder.kt",
                     "detector-core/src/test/kotlin/dev/featherface/core/GoldenVectorTest.kt",
                     "app/src/main/kotlin/dev/featherface/demo/MainActivity.kt",
                     "app/src/main/kotlin/dev/featherface/demo/BenchmarkActivity.kt",
                     "app/src/androidTest/kotlin/dev/featherface/demo/BenchmarkTest.kt"):
        assert required in names, f"android_demo/{required} is missing"
    assert os.access(RUN_TESTS, os.X_OK), f"{RUN_TESTS} must be executable"


@pytest.mark.parametrize("path", KOTLIN_FILES, ids=lambda p: p.relative_to(ANDROID).as_posix())
def test_kotlin_file_parses(path: Path):
    problems = _syntax_problems(path.read_bytes(), f"android_demo/{path.relative_to(ANDROID).as_posix()}")
    assert not problems, "tree-sitter-kotlin found syntax errors:\n" + "\n".join(problems)


def test_syntax_check_catches_a_broken_file():
    bad = b"class A {\n    fun f(): Int {\n        return (1 +\n    }\n}\n"
    problems = _syntax_problems(bad, "Broken.kt")
    assert problems and all(p.startswith("Broken.kt:") for p in problems)


def test_detector_core_has_no_android_dependency():
    for p in (CORE / "src").rglob("*.kt"):
        for n, line in enumerate(p.read_text().splitlines(), 1):
            assert not re.match(r"\s*import\s+(android|androidx|org\.tensorflow)\.", line), \
                f"{p.relative_to(ROOT)}:{n}: detector-core must stay pure Kotlin/JVM ({line.strip()})"


# ---------------------------------------------------------------------------------------------
# (b) Kotlin tests against the Python golden vectors


@pytest.mark.skipif(shutil.which("npm") is None and not os.environ.get("KOTLINC"),
                    reason="npm absent: run-tests.sh installs the Kotlin compiler from the npm package kotlin-compiler")
def test_detector_core_kotlin_tests_match_python_golden_vectors(tmp_path: Path):
    from featherface_mobile.paths import shared_dir, wider_val_dir

    try:
        from featherface_mobile.golden import write_golden
    except ImportError as e:  # only tolerated where no golden vectors could be written anyway
        if shared_dir() is not None:
            pytest.fail(f"featherface_mobile.golden.write_golden does not import ({e}); the golden comparison must run where the shared folder exists")
        pytest.skip(f"featherface_mobile.golden.write_golden is not available ({e}) and the shared folder is absent")
    if wider_val_dir() is None:
        pytest.skip("golden vectors need the shared WIDER images (set FEATHERFACE_SHARED or put ../shared beside the checkout)")
    golden = tmp_path / "golden"
    written = write_golden(golden)
    assert written and (golden / "index.json").is_file()

    proc = subprocess.run(["bash", str(RUN_TESTS), str(golden)], capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"run-tests.sh exited {proc.returncode}:\n{out[-6000:]}"
    ran = re.search(r"^OK \((\d+) tests?\)", proc.stdout, re.M)
    assert ran and int(ran.group(1)) >= 10, f"JUnit did not report a passing run:\n{out[-3000:]}"
    summary = re.search(r"golden: (\d+) files, (\d+) faces, max coordinate error (\S+) px", proc.stdout)
    assert summary and int(summary.group(1)) == len(written), f"the golden test did not read every file:\n{out[-3000:]}"
    assert float(summary.group(3)) <= 0.01
    print(summary.group(0), f"({ran.group(1)} JUnit tests)")


def test_run_tests_fails_without_a_golden_dir():
    env = {k: v for k, v in os.environ.items() if k != "FEATHERFACE_GOLDEN_DIR"}
    proc = subprocess.run(["bash", str(RUN_TESTS)], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0 and "GOLDEN_DIR" in proc.stderr


# ---------------------------------------------------------------------------------------------
# Putting a packaged model into the app


def test_copy_model_script_unpacks_manifest_and_tflite(tmp_path: Path):
    import zipfile

    bundle = tmp_path / "bundle.zip"
    with zipfile.ZipFile(bundle, "w") as z:
        z.writestr("manifest.json", '{"format": "featherface-package/1"}')
        z.writestr("m_int8.tflite", b"TFL3")
        z.writestr("golden/index.json", "{}")
    image = tmp_path / "face.jpg"
    image.write_bytes(b"\xff\xd8")
    dest = tmp_path / "assets" / "model"
    script = ANDROID / "scripts" / "copy-model.sh"
    proc = subprocess.run(["bash", str(script), str(bundle), str(image)], capture_output=True, text=True,
                          env={**os.environ, "ASSETS_DIR": str(dest)}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["benchmark.jpg", "m_int8.tflite", "manifest.json"]

    no_model = tmp_path / "empty.zip"
    with zipfile.ZipFile(no_model, "w") as z:
        z.writestr("manifest.json", "{}")
    proc = subprocess.run(["bash", str(script), str(no_model)], capture_output=True, text=True,
                          env={**os.environ, "ASSETS_DIR": str(dest)}, timeout=60)
    assert proc.returncode != 0 and "no .tflite artefact" in proc.stderr
