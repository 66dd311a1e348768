"""Bad inputs get one-line errors naming the problem and the fix, a non-zero exit, no partial files."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from featherface_mobile.checkpoint import load_model
from featherface_mobile.errors import FeatherfaceError


def run_cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "featherface_mobile.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_truncated_checkpoint(tmp_path, retinaface_weights, wider):
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(retinaface_weights.read_bytes()[:100_000])
    proc = run_cli("detect", "--weights", bad, next((wider / "images").iterdir()))
    assert_one_line_error(proc, "truncated", "truncated.pth")


def test_checkpoint_of_another_architecture_names_the_closest_model(tmp_path, v1_weights):
    with pytest.raises(FeatherfaceError, match="use --model featherface-v1") as e:
        load_model(v1_weights, "retinaface-mnet025")
    assert "\n" not in str(e.value)


def test_checkpoint_matching_no_model(tmp_path, wider):
    p = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3), "decoder.bias": torch.zeros(3)}, p)
    proc = run_cli("detect", "--weights", p, next((wider / "images").iterdir()))
    assert_one_line_error(proc, "matches no registered model", "closest is")


def test_module_prefix_is_stripped(tmp_path, retinaface_weights):
    sd = torch.load(retinaface_weights, map_location="cpu", weights_only=True)
    p = tmp_path / "dp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, p)
    assert load_model(p).model_name == "retinaface-mnet025"


def test_pickled_objects_need_explicit_opt_in(tmp_path, retinaface_weights):
    p = tmp_path / "pickled.pth"
    torch.save({"state_dict": torch.load(retinaface_weights, map_location="cpu", weights_only=True), "args": Path("x")}, p)
    with pytest.raises(FeatherfaceError, match="--trust-checkpoint"):
        load_model(p)
    assert load_model(p, trust=True).model_name == "retinaface-mnet025"


def test_non_image_file(tmp_path, retinaface_weights):
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("this is not a picture")
    out = tmp_path / "out.json"
    proc = run_cli("detect", "--weights", retinaface_weights, not_image, "--json", out)
    assert_one_line_error(proc, "cannot read image", "notes.jpg")
    assert not out.exists()


def test_missing_paths(tmp_path, retinaface_weights, wider):
    img = next((wider / "images").iterdir())
    assert_one_line_error(run_cli("detect", "--weights", tmp_path / "nope.pth", img), "checkpoint not found")
    assert_one_line_error(run_cli("detect", "--weights", retinaface_weights, tmp_path / "nope.jpg"), "image not found")
