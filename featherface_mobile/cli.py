"""`featherface` command line: thin click wrappers over the library verbs."""
from __future__ import annotations

from pathlib import Path

import click

from .errors import FeatherfaceError
from .quant.float_ops import FLOAT_GROUPS
from .quant.ptq import ROUNDINGS


class _OneLineErrors(click.Group):
    """The CLI root: a library error raised by any command, however deeply nested, becomes a one-line
    message and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FeatherfaceError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted; no partial files were kept") from None


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


def _model_choice():
    from .models import list_models

    return click.Choice(list_models())


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
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
def golden(out, model, size, images) -> None:
    """Write golden vectors (raw outputs + expected faces) for the app decoders' tests."""
    from .golden import write_golden

    for p in write_golden(out, model, size, images):
        click.echo(p)


@main.command()
@click.option("--weights", type=click.Path(path_type=Path), help="trained checkpoint (default: the model's trained weights)")
@click.option("--model", type=_model_choice(), help="architecture (detected from the checkpoint when omitted)")
@click.option("--format", "formats", default="onnx", show_default=True, help="comma-separated: onnx,tflite,coreml")
@click.option("--size", type=int, default=640, show_default=True, help="square input size (multiple of 32)")
@click.option("--int8", is_flag=True, help="INT8: full-integer TFLite and ONNX QDQ (calibrated), Core ML INT8 weights")
@click.option("--fp16", is_flag=True, help="FP16 weights/activations (TFLite; Core ML is FP16 by default)")
@click.option("--dynamic", is_flag=True, help="ONNX: dynamic batch and input size")
@click.option("--with-postprocess", is_flag=True, help="ONNX: decoding and NMS inside the graph")
@click.option("--max-faces", type=int, default=100, show_default=True, help="faces output by --with-postprocess")
@click.option("--native-deform", is_flag=True, help="ONNX: deformable convs as DeformConv (opset 19, onnxruntime >= 1.32)")
@click.option("--image-input", is_flag=True, help="Core ML: image input with the BGR mean baked in")
@click.option("--calib", type=click.Path(path_type=Path), help="INT8 calibration images (default: shared WIDER train split)")
@click.option("--calib-images", type=int, default=100, show_default=True)
@click.option("--int8-ranges", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="INT8 activation ranges learned by `quantize qat` (its .ranges.npz) instead of calibrated ones")
@click.option("--int8-float", "int8_float", multiple=True, type=click.Choice(list(FLOAT_GROUPS)),
              help="INT8: keep this group of ops in float32 (repeatable); " +
                   "; ".join(f"{g.name}: {g.help}" for g in FLOAT_GROUPS.values()))
@click.option("--int8-rounding", type=click.Choice(list(ROUNDINGS)), default="nearest", show_default=True,
              help="INT8 weights (TFLite): " + "; ".join(f"{k}: {v}" for k, v in ROUNDINGS.items()))
@click.option("--out", type=click.Path(path_type=Path), default=Path("exports"), show_default=True)
@click.option("--verify-images", type=int, default=8, show_default=True, help="real images used by the verification gate")
@click.option("--keep-failed", is_flag=True, help="keep artefacts that fail verification")
@click.option("--trust-checkpoint", is_flag=True, help="allow pickled objects in the checkpoint (weights_only=False)")
def export(weights, model, formats, size, int8, fp16, dynamic, with_postprocess, max_faces, native_deform, image_input,
           calib, calib_images, int8_ranges, int8_float, int8_rounding, out, verify_images, keep_failed, trust_checkpoint) -> None:
    """Export a checkpoint to ONNX / TFLite / Core ML; every artefact is verified against PyTorch."""
    import warnings

    from .export import ExportOptions, export as run_export

    warnings.filterwarnings("ignore", category=UserWarning)  # the libraries' tracing noise
    warnings.filterwarnings("always", category=UserWarning, module=r"featherface_mobile\.")  # but ours are shown
    options = ExportOptions(size=size, int8=int8, fp16=fp16, dynamic=dynamic, with_postprocess=with_postprocess,
                            max_faces=max_faces, native_deform=native_deform, image_input=image_input, calib=calib,
                            calib_images=calib_images, int8_ranges=int8_ranges, int8_float=tuple(int8_float),
                            int8_rounding=int8_rounding)
    result = run_export(weights, model=model, formats=_csv(formats), options=options, out=out,
                        verify_images=verify_images, keep_failed=keep_failed, trust=trust_checkpoint, log=click.echo)
    for art in result.artefacts:
        click.echo(f"next: featherface detect --weights {art.path} IMAGE   |   featherface package {art.path} --out bundle.zip")
    if not result.ok:
        raise click.ClickException(f"{len(result.failed)} artefact(s) failed verification: " +
                                   ", ".join(a.path.name for a in result.failed))


@main.command()
@click.argument("artefact", type=click.Path(path_type=Path))
@click.option("--weights", type=click.Path(path_type=Path), help="the checkpoint it was exported from (default: the model's)")
@click.option("--images", type=int, default=8, show_default=True)
@click.option("--image-dir", type=click.Path(path_type=Path), help="real images to verify on (default: shared WIDER eval split)")
@click.option("--json", "json_out", type=click.Path(path_type=Path))
def verify(artefact, weights, images, image_dir, json_out) -> None:
    """Compare an artefact with PyTorch: per-output error and decoded faces (exit 1 on failure)."""
    from .export import verify as run_verify
    from .io import write_json

    report = run_verify(artefact, weights, images=images, image_dir=image_dir)
    click.echo(report.summary())
    if json_out:
        write_json(json_out, report.as_dict())
    if not report.passed:
        raise click.ClickException(f"{artefact} failed verification ({report.gate})")


@main.command()
@click.argument("artefacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="bundle .zip to write")
@click.option("--no-eval", is_flag=True, help="skip the WIDER AP of each artefact")
@click.option("--golden-images", type=int, default=3, show_default=True)
def package(artefacts, out, no_eval, golden_images) -> None:
    """Bundle artefacts with manifest.json (metadata, sha256, verify, AP) and golden vectors."""
    from .export.package import package as run_package

    res = run_package(list(artefacts), out, evaluate_ap=not no_eval, golden_images=golden_images)
    for rec in res.manifest["artefacts"]:
        acc = rec.get("accuracy")
        ap = f"  AP easy/medium/hard {acc['easy']:.3f}/{acc['medium']:.3f}/{acc['hard']:.3f}" if acc else ""
        click.echo(f"{rec['file']}  {rec['bytes'] / 1024:.0f} KB{ap}")
    click.echo(f"wrote {res.path}")


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo_out"), show_default=True)
@click.option("--model", type=_model_choice(), help="a model with trained weights (default: the first found)")
@click.option("--size", type=int, default=640, show_default=True)
def demo(out, model, size) -> None:
    """Detect, export to every format and verify, on the default model."""
    import warnings

    from .demo import run_demo

    warnings.filterwarnings("ignore", category=UserWarning)
    rows = run_demo(out, model=model, size=size, log=click.echo)
    failed = [r.artefact for r in rows if not r.passed]
    if failed:
        raise click.ClickException(f"{len(failed)} artefact(s) failed verification (kept in {out} for inspection): {', '.join(failed)}")


@main.command()
@click.option("--model", required=True, type=_model_choice(), help="architecture to train")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="run folder: last.pt (resumable), best.pth")
@click.option("--teacher", type=click.Path(path_type=Path), help="trained teacher checkpoint to distill from")
@click.option("--teacher-model", type=_model_choice(), help="teacher architecture (detected when omitted)")
@click.option("--init", default="retinaface", show_default=True, help="backbone init: retinaface, imagenet, none or a checkpoint")
@click.option("--data", type=click.Path(path_type=Path), help="wider_val_416 folder (default: the shared one)")
@click.option("--steps", type=int, default=6000, show_default=True)
@click.option("--batch", type=int, default=8, show_default=True)
@click.option("--size", type=int, default=320, show_default=True, help="training crop size")
@click.option("--lr", type=float, default=2e-3, show_default=True)
@click.option("--temperature", type=float, default=4.0, show_default=True, help="distillation temperature")
@click.option("--alpha", type=float, default=0.7, show_default=True, help="weight of distillation vs labels")
@click.option("--eval-every", type=int, default=500, show_default=True, help="steps between eval-split AP checks")
@click.option("--max-minutes", type=float, help="stop (resumably) after this long; rerun to continue")
@click.option("--threads", type=int, help="torch CPU threads")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--restart", is_flag=True, help="ignore an existing last.pt in --out")
def train(model, out, teacher, teacher_model, init, data, steps, batch, size, lr, temperature, alpha, eval_every,
          max_minutes, threads, seed, restart) -> None:
    """Train a model on the WIDER train split, optionally distilled from a teacher (resumable)."""
    import torch

    from .train import TrainConfig, train as run_train

    if threads:
        torch.set_num_threads(threads)
    cfg = TrainConfig(model=model, out=str(out), teacher=str(teacher) if teacher else None, teacher_model=teacher_model,
                      init=init, data=str(data) if data else None, steps=steps, batch=batch, size=size, lr=lr,
                      temperature=temperature, alpha=alpha, eval_every=eval_every, seed=seed)
    state = run_train(cfg, max_minutes=max_minutes, restart=restart, log=click.echo)
    done = "finished" if state.step >= steps else "paused"
    click.echo(f"{done} at step {state.step}/{steps} after {state.seconds / 60:.1f} min; best weights: {out / 'best.pth'}")


def _register_subcommands() -> None:
    """Commands defined beside their library modules (bench, quantize) join the one CLI here."""
    from .bench_cli import bench
    from .quant.cli import quantize

    main.add_command(bench)
    main.add_command(quantize)


_register_subcommands()

if __name__ == "__main__":
    main()
