"""`featherface` command line: thin click wrappers over the library verbs."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from .errors import FeatherfaceError


def _one_line_errors(fn):
    """Turn library errors into a one-line message and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FeatherfaceError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted; no partial files were kept") from None

    return wrapper


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _model_choice():
    from .models import list_models

    return click.Choice(list_models())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="featherface-mobile")
def main() -> None:
    """FeatherFace / RetinaFace face detectors from PyTorch checkpoints to phones."""


@main.command("models")
def models_cmd() -> None:
    """List the registered models and their parameter counts."""
    from .models import get_spec, list_models

    for name in list_models():
        spec = get_spec(name)
        n = sum(p.numel() for p in spec.build().parameters())
        click.echo(f"{name:<24} {n:>9,}  {spec.description}")


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--weights", type=click.Path(path_type=Path), help="checkpoint or exported artefact (default: the model's trained weights)")
@click.option("--model", type=_model_choice(), help="architecture (detected from the checkpoint when omitted)")
@click.option("--size", type=int, help="square input size, a multiple of 32 (default: the artefact's, else 640)")
@click.option("--score", type=float, help="score threshold (default: the model's, 0.5)")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="write detections as JSON")
@click.option("--save-dir", type=click.Path(path_type=Path), help="save images with faces drawn")
@click.option("--trust-checkpoint", is_flag=True, help="allow pickled objects in the checkpoint (weights_only=False)")
@_one_line_errors
def detect(images, weights, model, size, score, json_out, save_dir, trust_checkpoint) -> None:
    """Detect faces: boxes, scores and 5 landmarks per face."""
    from .detect import detect as run_detect, draw_faces, read_image
    from .io import write_json
    from .processing import Thresholds
    from .runtime import load_runner, model_config

    runner = load_runner(weights, model=model, trust=trust_checkpoint)
    cfg = model_config(runner)
    thresholds = Thresholds(score=score if score is not None else cfg.score_threshold, nms_iou=cfg.nms_iou)
    bgr = [read_image(p) for p in images]  # fail on a bad image before any output is written
    results = {}
    for path, img in zip(images, bgr):
        det = run_detect(runner, img, size=size, thresholds=thresholds)
        results[str(path)] = {"input_size": det.input_size, "faces": det.faces.to_list()}
        click.echo(f"{path}: {len(det.faces)} faces")
        for f in det.faces.to_list():
            click.echo(f"  score {f['score']:.3f}  box {f['box']}")
        if save_dir:
            draw_faces(img, det.faces, Path(save_dir) / f"{Path(path).stem}_faces.jpg")
    if json_out:
        write_json(json_out, {"model": runner.metadata.get("model"), "images": results})
        click.echo(f"wrote {json_out}")


@main.command("eval")
@click.option("--weights", type=click.Path(path_type=Path), help="checkpoint or exported artefact")
@click.option("--model", type=_model_choice(), help="architecture (detected from the checkpoint when omitted)")
@click.option("--data", type=click.Path(path_type=Path), help="wider_val_416 folder (default: the shared one)")
@click.option("--size", type=int, help="test scale (default: the images' own 416, or the artefact's fixed size)")
@click.option("--split", type=click.Choice(["all", "eval", "train"]), default="all", show_default=True,
              help="which part of wider_val_416 (see featherface_mobile/splits.json)")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="write AP and PR curves as JSON")
@click.option("--plot", type=click.Path(path_type=Path), help="write the PR curves as a PNG")
@_one_line_errors
def eval_cmd(weights, model, data, size, split, json_out, plot) -> None:
    """WIDER FACE AP (IoU 0.5) on easy/medium/hard of wider_val_416."""
    from .evaluate import evaluate, plot_pr
    from .io import write_json
    from .paths import wider_val_dir
    from .runtime import load_runner
    from .splits import split_images

    data = data or wider_val_dir()
    if data is None:
        raise FeatherfaceError("no evaluation data: pass --data DIR or set FEATHERFACE_SHARED to the shared folder")
    runner = load_runner(weights, model=model)
    result = evaluate(runner, data, size=size, images=split_images(split, data))
    result.artefact = str(weights or runner.metadata.get("model"))
    click.echo(result.table())
    if json_out:
        write_json(json_out, {"artefact": result.artefact, "size": result.size, "images": result.images, "split": split,
                              "ap": result.ap, "curves": result.curves})
        click.echo(f"wrote {json_out}")
    if plot:
        plot_pr(result, plot)
        click.echo(f"wrote {plot}")


@main.command()
@click.option("--out", required=True, type=click.Path(path_type=Path), help="output folder")
@click.option("--model", type=_model_choice(), default="retinaface-mnet025", show_default=True)
@click.option("--size", type=int, default=320, show_default=True)
@click.option("--images", type=int, default=3, show_default=True)
@_one_line_errors
def golden(out, model, size, images) -> None:
    """Write golden vectors (raw outputs + expected faces) for the app decoders' tests."""
    from .golden import write_golden

    for p in write_golden(out, model, size, images):
        click.echo(p)
