"""`featherface bench`: a thin click wrapper over `featherface_mobile.bench.benchmark` and, with
`--device android`, `featherface_mobile.device_bench.device_benchmark`."""
from __future__ import annotations

from pathlib import Path

import click

from .errors import FeatherfaceError


def _threads(value: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: give thread counts as a comma list, e.g. 1,2") from None
    if not out or min(out) < 1:
        raise click.BadParameter(f"{value!r}: thread counts must be >= 1, e.g. 1,2")
    return out


@click.command("bench")
@click.argument("artefacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--threads", default="1,2", show_default=True, help="comma list of thread counts")
@click.option("--size", type=int, default=640, show_default=True, help="input size for checkpoints (exported artefacts use their own)")
@click.option("--warmup", type=int, default=5, show_default=True, help="untimed runs per contender")
@click.option("--runs", type=int, default=50, show_default=True, help="timed runs per contender")
@click.option("--image", type=click.Path(path_type=Path, dir_okay=False), help="image for pre/postprocessing (default: a held-out WIDER image)")
@click.option("--json", "json_out", type=click.Path(path_type=Path), help="write every row as JSON")
@click.option("--plot", type=click.Path(path_type=Path), help="write a bar chart PNG")
@click.option("--profile", is_flag=True, help="also print the top ops: onnxruntime's profiler (.onnx), op mix and MAC share (.tflite)")
@click.option("--no-progress", is_flag=True, help="no progress bar")
@click.option("--device", type=click.Choice(["android"]), help="also run on the attached phone over adb (ARTEFACT: a `featherface package` bundle)")
@click.option("--serial", help="--device: adb serial of the phone (adb -s), when several are attached")
@click.option("--delegate", type=click.Choice(["xnnpack", "gpu", "nnapi"]), default="xnnpack", show_default=True, help="--device: LiteRT delegate on the phone")
@click.option("--runner", type=click.Choice(["auto", "app", "benchmark_model"]), default="auto", show_default=True,
              help="--device: the demo app's BenchmarkActivity or /data/local/tmp/benchmark_model (auto: the app when installed)")
def bench(artefacts, threads, size, warmup, runs, image, json_out, plot, profile, no_progress, device, serial, delegate, runner) -> None:
    """Latency (load, first, median/p90/min, FPS), peak RSS and end-to-end time of each artefact.

    Each artefact x thread count runs in its own process; contenders run interleaved (A B A B ...).
    With --device android, ARTEFACT is a bundle: its tflite model runs on the phone and on this machine.
    """
    from . import bench as b

    try:
        if device:
            _bench_on_device(artefacts, threads=_threads(threads), warmup=warmup, runs=runs, image=image, json_out=json_out,
                             plot=plot, profile=profile, progress=not no_progress, serial=serial, delegate=delegate, runner=runner)
            return
        results = b.benchmark(artefacts, threads=_threads(threads), size=size, warmup=warmup, runs=runs,
                              image=image, progress=not no_progress)
        click.echo(b.format_table(results))
        m = b.machine_description()
        click.echo(f"machine: {m['cpu']}, {m['usable_cores']} cores; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
        if json_out:
            b.write_json(results, json_out, warmup=warmup)
            click.echo(f"wrote {json_out}")
        if plot:
            b.plot_results(results, plot)
            click.echo(f"wrote {plot}")
        if profile:
            for p in dict.fromkeys(artefacts):
                click.echo(b.profile_report(p, threads=max(_threads(threads))))
    except FeatherfaceError as e:
        raise click.ClickException(str(e)) from None


def _bench_on_device(artefacts, *, threads, warmup, runs, image, json_out, plot, profile, progress, serial, delegate, runner) -> None:
    from . import device_bench as d
    from .bench import machine_description
    from .io import write_json

    if len(artefacts) != 1:
        raise FeatherfaceError(f"--device android takes one bundle, got {len(artefacts)} arguments: "
                               "featherface bench --device android bundle.zip")
    if plot or profile:
        raise FeatherfaceError("--plot and --profile are for host runs only: drop them with --device android")
    run = d.device_benchmark(artefacts[0], serial=serial, delegate=delegate, threads=threads, warmup=warmup, runs=runs,
                             runner=runner, image=image, progress=progress, log=click.echo)
    click.echo(d.format_comparison(run.host, run.device))
    m = machine_description()
    click.echo(f"host: {m['cpu']}, {m['usable_cores']} cores; device {run.serial} via {run.runner}")
    if json_out:
        write_json(json_out, {"machine": m, **run.as_dict()})
        click.echo(f"wrote {json_out}")
