"""Training and distillation on real WIDER images; the shipped V2 checkpoint on a standard photo."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from featherface_mobile.augment import FaceSample, flip, mosaic
from featherface_mobile.errors import FeatherfaceError
from featherface_mobile.splits import split_images
from featherface_mobile.train import TrainConfig, batch_loss, labelled_faces, make_batch, train

# Eileen Collins' face in scikit-image's astronaut (512x512), as RetinaFace-mnet0.25 finds it at 640.
ASTRONAUT_FACE = np.array([178.0, 58.8, 273.0, 177.5])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = np.prod(np.clip(rb - lt, 0, None))
    return float(inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter))


@pytest.fixture(scope="module")
def faces(wider, retinaface_weights):
    from featherface_mobile.checkpoint import load_model

    teacher = load_model(retinaface_weights)
    return labelled_faces(wider, split_images("train", wider)[:4], teacher, 0.7), teacher


def test_flip_mirrors_boxes_and_swaps_landmark_sides(faces):
    s = next(f for f in faces[0] if f.has_landmarks.any())
    i = int(np.argmax(s.has_landmarks))
    f = flip(s)
    w = s.image.shape[1]
    assert np.array_equal(f.image[:, ::-1], s.image)
    assert np.allclose(f.boxes[i], [w - s.boxes[i, 2], s.boxes[i, 1], w - s.boxes[i, 0], s.boxes[i, 3]])
    left_eye, right_eye = s.landmarks[i, 0:2], s.landmarks[i, 2:4]
    assert left_eye[0] < right_eye[0]  # image-left eye first, as the teacher predicts it
    # After the mirror the point listed first is again the image-left one: the old right eye, mirrored.
    assert np.allclose(f.landmarks[i, 0:2], [w - right_eye[0], right_eye[1]])
    assert f.landmarks[i, 0] < f.landmarks[i, 2]
    assert np.array_equal(flip(f).landmarks, s.landmarks)


def test_mosaic_keeps_every_face_inside_its_tile(faces):
    m = mosaic(faces[0], 320, np.random.default_rng(0))
    assert m.image.shape == (320, 320, 3) and len(m.boxes) > 0
    assert (m.boxes >= 0).all() and (m.boxes <= 320).all()


def test_few_distillation_steps_lower_the_loss_and_move_the_outputs(faces):
    samples, teacher = faces
    cfg = TrainConfig(model="featherface-v2", out="unused", batch=2, size=192, mosaic=0.0)
    from featherface_mobile.paths import shared_dir
    from featherface_mobile.train import _build_student

    torch.manual_seed(0)
    student = _build_student(cfg, shared_dir())  # backbone from the trained RetinaFace body
    x, items = make_batch(samples, cfg, 0, student.config.mean_bgr)
    student.eval()
    with torch.no_grad():
        before_out = [o.clone() for o in student(x)]
    student.train()
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss = batch_loss(student, teacher, x, items, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    student.eval()
    with torch.no_grad():
        after_out = student(x)
    assert losses[-1] < 0.95 * losses[0], losses
    for b, a in zip(before_out, after_out):
        assert (a - b).abs().max() > 1e-3


def test_resume_continues_where_it_stopped(tmp_path, wider):
    cfg = dict(model="featherface-v2", data=str(wider), teacher=None, init="none", steps=4, batch=2, size=128,
               warmup=2, eval_every=0, save_every=1, train_images=3, mosaic=0.5)
    whole = train(TrainConfig(out=str(tmp_path / "whole"), **cfg), progress=False, log=lambda *_: None)
    first = train(TrainConfig(out=str(tmp_path / "parts"), **cfg), stop_at=2, progress=False, log=lambda *_: None)
    assert first.step == 2 and (tmp_path / "parts" / "last.pt").is_file()
    messages = []
    second = train(TrainConfig(out=str(tmp_path / "parts"), **cfg), progress=False, log=messages.append)
    assert "resuming featherface-v2 from step 2" in messages[0]
    assert second.step == 4 and len(second.losses) == 4
    assert np.allclose(second.losses, whole.losses, rtol=1e-4)
    a = torch.load(tmp_path / "whole" / "best.pth", weights_only=True)
    b = torch.load(tmp_path / "parts" / "best.pth", weights_only=True)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    with pytest.raises(FeatherfaceError, match="resume"):
        train(TrainConfig(out=str(tmp_path / "parts"), **{**cfg, "steps": 5}), progress=False, log=lambda *_: None)


@pytest.mark.parametrize("name", ["featherface-v2", "featherface-v2-ultra"])
def test_shipped_checkpoint_loads_strictly_and_finds_the_astronaut(name):
    from featherface_mobile.checkpoint import load_model
    from featherface_mobile.demo import demo_image
    from featherface_mobile.detect import detect
    from featherface_mobile.models import get_spec
    from featherface_mobile.paths import resolve_weights_ref
    from featherface_mobile.runtime import TorchRunner

    path = resolve_weights_ref(get_spec(name).default_weights)
    assert path is not None and path.stat().st_size < 1.5 * 2**20
    model = load_model(None, name)  # strict: every key and shape
    det = detect(TorchRunner(model, metadata={"model": name}), demo_image(), size=640)
    assert len(det.faces) >= 1
    best = det.faces.boxes[int(np.argmax(det.faces.scores))]
    assert det.faces.scores.max() > 0.5 and _iou(best, ASTRONAUT_FACE) > 0.5, det.faces.to_list()


def test_sample_requires_matching_label_shapes():
    s = FaceSample(np.zeros((8, 8, 3), np.uint8), [[0, 0, 4, 4]], [[0] * 10], [True])
    assert s.boxes.shape == (1, 4) and s.landmarks.shape == (1, 10) and s.has_landmarks.shape == (1,)


def test_export_without_weights_uses_the_shipped_v2(tmp_path):
    from click.testing import CliRunner

    from featherface_mobile.cli import main
    from featherface_mobile.demo import default_weights

    assert default_weights()[0] == "featherface-v2"  # `featherface demo` runs the distilled V2
    res = CliRunner().invoke(main, ["export", "--model", "featherface-v2", "--format", "onnx", "--size", "320",
                                    "--verify-images", "2", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output and (tmp_path / "featherface-v2_320_fp32.onnx").is_file()
