"""`featherface quantize`: the INT8 error report and quantization-aware training (thin click layer)."""
from __future__ import annotations

from pathlib import Path

import click


@click.group("quantize")
def quantize() -> None:
    """INT8 tools: per-layer error report, quantization-aware training."""


@quantize.command("report")
@click.argument("artefact", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="checkpoint for the PyTorch comparison of the outputs (default: the model's shared weights)")
@click.option("--images", default=8, show_default=True, help="calibration images to measure on")
@click.option("--image-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="folder of images (default: the train split of wider_val_416)")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PNG of the worst tensors (default: ARTEFACT.int8_report.png)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the full report as JSON")
@click.option("--top", default=15, show_default=True, help="rows printed")
def report_cmd(artefact: Path, weights: Path | None, images: int, image_dir: Path | None, plot: Path | None,
               json_path: Path | None, top: int) -> None:
    """SQNR of every INT8 tensor of ARTEFACT vs its float twin (its own INT8 step, and accumulated), worst
    own SQNR first, and per-output error."""
    from .report import int8_report

    plot = plot or artefact.with_name(artefact.name + ".int8_report.png")
    rep = int8_report(artefact, weights, images=images, image_dir=image_dir, plot=plot, json_path=json_path)
    click.echo(rep.table(top))
    click.echo(f"plot: {plot}")


@quantize.command("qat")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="float checkpoint to start from (default: the model's shared weights)")
@click.option("--model", default=None, help="model name (default: detected from the checkpoint)")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="wider_val_416-style folder (images/ + gt.json); its train split is used")
@click.option("--epochs", default=1, show_default=True)
@click.option("--steps", default=None, type=int, help="stop after this many steps (overrides --epochs)")
@click.option("--size", default=640, show_default=True, help="training input size")
@click.option("--lr", default=1e-5, show_default=True)
@click.option("--distill", default=1.0, show_default=True, help="weight of distillation from the float model (0: off)")
@click.option("--labels/--no-labels", default=True, show_default=True,
              help="multibox loss on the data's boxes; --no-labels: distillation only (any images)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("exports"), show_default=True)
@click.option("--format", "formats", multiple=True, default=("tflite",), show_default=True,
              help="INT8 artefacts to export from the trained weights (repeatable; none: --format '')")
@click.option("--export-size", default=None, type=int,
              help="INT8 export size (default: --size; learned ranges are carried only into exports at --size)")
@click.option("--int8-float", "int8_float", multiple=True, metavar="GROUP",
              help="op group kept float32 in training (no fake quantization) and in the INT8 exports, as "
                   "`featherface export --int8-float` (repeatable)")
def qat_cmd(weights, model, data, epochs, steps, size, lr, distill, labels, out, formats, export_size,
            int8_float) -> None:
    """Quantization-aware training (PT2E), then INT8 export of the trained weights."""
    from .qat import quantization_aware_training

    res = quantization_aware_training(weights, model=model, data=data, epochs=epochs, steps=steps, size=size, lr=lr,
                                      distill=distill, labels=labels, out=out, formats=tuple(f for f in formats if f),
                                      export_size=export_size or size, int8_float=int8_float, log=click.echo)
    click.echo(f"weights: {res.weights}")
    click.echo(f"learned ranges: {res.ranges}")
    for a in res.artefacts:
        click.echo(f"{a.path}  {'PASS' if a.passed else 'FAIL'}" + (f"  F1 {a.verify.f1:.3f}" if a.verify else ""))
