"""The end-to-end demo: the embedded demo model through every step of the product.

synthetic data → export to every target this machine can build → calibration set →
INT8 targets → benchmark all artifacts on a held-out synthetic split → gate the FP16
and INT8 artifacts against FP32 → results/demo/ (JSON, Markdown, plots, images).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import click

from rtmw.cli._common import one_line_errors, setup_logging

logger = logging.getLogger(__name__)

DEMO_TARGETS = (
    "onnx", "onnx-fp16", "ort-int8",
    "openvino-fp32", "openvino-fp16", "openvino-bf16", "openvino-int8",
    "ncnn-fp32", "ncnn-fp16", "ncnn-int8",
    "trt-fp16", "trt-int8",
    "torch",
)  # fmt: skip
TRAIN_SEED, VAL_SEED = 101, 202  # not the training run's seeds: held-out figures
# the narrow demo model (width 0.125) loses too much with its neck in INT8 (docs/gates.md)
DEMO_INT8_POLICY = "head-neck-fp32"


def _step(title: str) -> float:
    click.secho(f"== {title}", bold=True)
    return time.perf_counter()


def run_demo(
    out: Path,
    *,
    val_images: int = 60,
    calib_images: int = 120,
    calib_n: int = 128,
    batches: tuple[int, ...] = (1, 8),
    seconds: float = 1.0,
    calib_seed: int = 0,
) -> int:
    from rtmw.bench.gate import gate, junit_xml, load_budgets, markdown
    from rtmw.bench.report import load_results
    from rtmw.bench.run import BenchSettings, bench
    from rtmw.bench.timing import TimingPlan
    from rtmw.calib import build_calibration_set, save_calibration_set
    from rtmw.data.synthetic import make_dataset
    from rtmw.export import export, get_target
    from rtmw.export import unavailable_reason
    from rtmw.host import cpu_fingerprint, describe
    from rtmw.models import DEMO_NAME, demo_checkpoint

    start = time.perf_counter()
    click.echo(f"CPU: {describe(cpu_fingerprint())}")
    checkpoint = demo_checkpoint()
    data_root = out / "data"
    _step(f"synthetic data: {calib_images} calibration images, {val_images} validation images")
    train = make_dataset(data_root, calib_images, TRAIN_SEED, split="train")
    val = make_dataset(data_root, val_images, VAL_SEED, split="val")

    _step(f"calibration set: {calib_n} person crops from the training split (seed {calib_seed})")
    calib = build_calibration_set(
        train.image_dir, input_size=(192, 256), ann_file=train.ann_file, n=calib_n, seed=calib_seed
    )
    calib_path = save_calibration_set(calib, out / "calib.npz")

    # targets this host cannot run at all (bf16 without native bf16) are left out, saying why
    targets: list[str] = []
    not_here: list[str] = []
    for name in DEMO_TARGETS:
        reason = unavailable_reason(get_target(name))
        if reason is None:
            targets.append(name)
        else:
            not_here.append(f"{name}: {reason}")
    _step(f"export {DEMO_NAME} to {len(targets)} targets (INT8: {DEMO_INT8_POLICY})")
    for line in not_here:
        click.echo(f"  not on this CPU: {line}")
    artifacts = out / "artifacts"
    made = export(checkpoint, targets, artifacts, overwrite=True, progress=True,
                  calib=calib_path, int8_policy=DEMO_INT8_POLICY)  # fmt: skip
    for result in made:
        click.echo("  " + result.line())
    paths: list[str | Path] = [r.path for r in made if r.path is not None]
    # a target this machine should build that did not is a failure of the demo; TensorRT
    # without TensorRT (onnx-only, exit 3) and missing extras (skipped) are not
    export_failed = [r for r in made if r.status == "failed"]

    _step(f"benchmark {len(paths)} artifacts (batch {batches}), accuracy on {val_images} images")
    settings = BenchSettings(
        batches=batches,
        threads=None,
        plan=TimingPlan(warmup_s=0.5, seconds=seconds, repeats=3),
        image_dir=str(val.image_dir),
        ann_file=str(val.ann_file),
        reference=str(artifacts / "onnx"),
        draw=3,
    )
    run = bench(paths, settings, out, name="demo")

    _step("gate FP16 and INT8 artifacts against FP32 (onnx)")
    loaded = load_results(out / "results.json")
    verdict = gate(loaded, loaded, load_budgets())
    text = markdown(verdict)
    (out / "gate.md").write_text(text)
    (out / "gate.junit.xml").write_text(junit_xml(verdict))
    (out / "gate.json").write_text(
        json.dumps(
            {"passed": verdict.passed, "hosts": verdict.hosts, "calib_seed": calib_seed,
             "checks": [asdict(c) for c in verdict.checks]},
            indent=1,
        )
        + "\n"
    )  # fmt: skip
    click.echo(text)
    ok = [e for e in run["entries"] if e["status"] == "ok"]
    bench_failed = [e for e in run["entries"] if e["status"] != "ok"]
    failures = [f"{r.target} (export {r.status}: {r.reason})" for r in export_failed] + [
        f"{e['name']} (bench {e['status']}: {e.get('reason', '')})" for e in bench_failed
    ]
    counted = len(made) + len(not_here)
    summary = f"{len(ok)} ok, {len(failures)} failed"
    if not_here:
        summary += f", {len(not_here)} not on this CPU"
    click.echo(
        f"done in {(time.perf_counter() - start) / 60:.1f} min: {summary} of {counted} targets"
        + (": " + "; ".join(failures) if failures else "")
        + f"; table {out / 'results.md'}, plots and images in {out}"
    )
    if failures:
        return 2
    return 0 if verdict.passed else 1


@click.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Example:\n\n\b\n  rtmw-demo --out results/demo",
)
@click.option("--out", default="results/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--val-images", default=60, show_default=True)
@click.option("--seconds", default=1.0, show_default=True, help="Timing seconds per repeat.")
@click.option(
    "--calib-seed", default=0, show_default=True, help="Seed of the calibration-set sampling."
)
@click.option("-v", "--verbose", count=True)
@one_line_errors
def main(out: str, val_images: int, seconds: float, calib_seed: int, verbose: int) -> None:
    """Run the whole product on the embedded demo model and synthetic data."""
    setup_logging(verbose)
    status = run_demo(Path(out), val_images=val_images, seconds=seconds, calib_seed=calib_seed)
    # the demo succeeded when every target it should build was built and benchmarked; the
    # gate's verdict is one of its results, not its exit status
    click.echo(f"gate verdict: {'PASS' if status == 0 else 'FAIL (see gate.md)'}")
    if status == 2:
        click.echo("demo FAILED: a target this machine should build did not build or run")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
