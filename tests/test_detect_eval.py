"""Detection on real images and the WIDER evaluator (hand-computed case and both real checkpoints)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from featherface_mobile.detect import detect, read_image
from featherface_mobile.evaluate import average_precision, evaluate, iou_matrix
from featherface_mobile.processing import letterbox, nms, prior_boxes
from featherface_mobile.runtime import load_runner


def test_priors_layout_level_by_level_row_major_two_sizes():
    p = prior_boxes(64, 64)
    assert p.shape == ((8 * 8 + 4 * 4 + 2 * 2) * 2, 4)
    np.testing.assert_allclose(p[0], [4 / 64, 4 / 64, 16 / 64, 16 / 64])
    np.testing.assert_allclose(p[1], [4 / 64, 4 / 64, 32 / 64, 32 / 64])
    np.testing.assert_allclose(p[2], [12 / 64, 4 / 64, 16 / 64, 16 / 64])  # next column, same row
    np.testing.assert_allclose(p[128], [8 / 64, 8 / 64, 64 / 64, 64 / 64])  # first prior of stride 16


def test_letterbox_inverse_maps_back_to_the_image():
    img = np.zeros((300, 500, 3), np.uint8)
    canvas, lb = letterbox(img, 320)
    assert canvas.shape == (320, 320, 3) and lb.pad_x == 0 and lb.pad_y == (320 - 192) // 2
    pts = np.array([[lb.pad_x + 10 * lb.scale_x, lb.pad_y + 20 * lb.scale_y]], np.float32)
    np.testing.assert_allclose(lb.to_image(pts), [[10, 20]], atol=1e-4)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert nms(boxes, np.array([0.9, 0.95, 0.5], np.float32), 0.4).tolist() == [1, 2]


@pytest.mark.parametrize("which", ["retinaface", "v1"])
def test_detects_the_faces_of_a_real_image(which, retinaface_weights, v1_weights, wider):
    runner = load_runner(retinaface_weights if which == "retinaface" else v1_weights)
    gt = json.loads((wider / "gt.json").read_text())["1_Handshaking_Handshaking_1_457.jpg"]
    det = detect(runner, read_image(wider / "images" / "1_Handshaking_Handshaking_1_457.jpg"), size=416)
    assert len(det.faces) >= 1
    big = max(gt["boxes_416_xyxy"], key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    assert iou_matrix(det.faces.boxes.astype(float), np.array([big], float)).max() > 0.5
    assert det.faces.scores.min() > 0.5 and det.faces.landmarks.shape == (len(det.faces), 10)


def test_evaluator_on_a_hand_computed_case():
    # Image with 3 faces: A (kept), B (kept), C (outside the subset: ignored).
    gts = {"img": {"boxes_416_xyxy": [[0, 0, 9, 9], [20, 20, 29, 29], [40, 40, 49, 49]], "keep_easy": [0, 1]}}
    preds = {"img": np.array([
        [0, 0, 9, 9, 0.9],      # matches A: TP
        [40, 40, 49, 49, 0.8],  # matches ignored C: neither TP nor FP
        [60, 60, 69, 69, 0.7],  # matches nothing: FP
        [20, 20, 29, 29, 0.6],  # matches B: TP
    ])}
    ap, precision, recall = average_precision(preds, gts, "easy")
    # Ranked TP, (ignored), FP, TP -> recall 0.5 at precision 1, recall 1 at precision 2/3.
    assert ap == pytest.approx(0.5 * 1 + 0.5 * (2 / 3), abs=1e-9)
    assert recall.max() == pytest.approx(1.0)


@pytest.mark.parametrize("which,expected", [
    ("retinaface", {"easy": 0.7352, "medium": 0.6259, "hard": 0.3560}),
    ("v1", {"easy": 0.7785, "medium": 0.6719, "hard": 0.3703}),
])
def test_ap_of_shared_checkpoints_on_wider_val_416(which, expected, retinaface_weights, v1_weights, wider):
    # The values README records (featherface eval --weights ... on all 123 images at 416).
    res = evaluate(load_runner(retinaface_weights if which == "retinaface" else v1_weights), wider, progress=False)
    assert res.images == 123 and res.size == 416
    for subset, value in expected.items():
        assert res.ap[subset] == pytest.approx(value, abs=5e-4)


def test_cli_detect_writes_json_and_drawn_images(tmp_path, retinaface_weights, wider):
    img = wider / "images" / "1_Handshaking_Handshaking_1_457.jpg"
    proc = subprocess.run([sys.executable, "-m", "featherface_mobile.cli", "detect", str(img), "--weights",
                           str(retinaface_weights), "--json", str(tmp_path / "d.json"), "--save-dir", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    faces = json.loads((tmp_path / "d.json").read_text())["images"][str(img)]["faces"]
    assert faces and set(faces[0]) == {"box", "score", "landmarks"} and len(faces[0]["landmarks"]) == 10
    assert (tmp_path / "1_Handshaking_Handshaking_1_457_faces.jpg").stat().st_size > 10_000


def test_cli_detect_without_model_detects_the_architecture(v1_weights, wider):
    img = wider / "images" / "1_Handshaking_Handshaking_1_457.jpg"
    proc = subprocess.run([sys.executable, "-m", "featherface_mobile.cli", "detect", str(img), "--weights", str(v1_weights)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "1 faces" in proc.stdout


def test_cli_eval_writes_table_json_and_plot(tmp_path, retinaface_weights):
    proc = subprocess.run([sys.executable, "-m", "featherface_mobile.cli", "eval", "--weights", str(retinaface_weights),
                           "--split", "eval", "--json", str(tmp_path / "ap.json"), "--plot", str(tmp_path / "pr.png")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "test scale 416x416" in proc.stdout
    ap = json.loads((tmp_path / "ap.json").read_text())["ap"]
    assert 0.5 < ap["easy"] <= 1 and (tmp_path / "pr.png").stat().st_size > 5_000
