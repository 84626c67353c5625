"""``rtmw-bench``: latency and COCO-WholeBody accuracy for artifacts, into ``results/``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rtmw.cli._common import INT8_POLICY_CHOICES, one_line_errors, setup_logging

if TYPE_CHECKING:
    from rtmw.bench.gate import Check

logger = logging.getLogger(__name__)


class DefaultRunGroup(click.Group):
    """``rtmw-bench ARTIFACT...`` means ``rtmw-bench run ARTIFACT...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultRunGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Benchmark artifacts (default command: run), re-render reports, gate regressions."""


def _batches(value: str) -> tuple[int, ...]:
    try:
        batches = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"comma-separated integers expected, got {value!r}") from None
    if not batches or min(batches) < 1:
        raise click.BadParameter("batch sizes must be positive")
    return batches


@main.command(
    "run",
    epilog=(
        "Examples:\n\n\b\n"
        "  rtmw-bench artifacts/ --batch 1,8 --out results/cpu-rtmw-m\n"
        "  rtmw-bench artifacts/onnx artifacts/openvino-fp16 --data val2017/ \\\n"
        "      --ann coco_wholebody_val_v1.0.json \\\n"
        "      --dets COCO_val2017_detections_AP_H_56_person.json \\\n"
        "      --reference artifacts/onnx --out results/val\n"
        "  rtmw-bench rtmw-m.pth --targets onnx,openvino-fp16 --out results/quick\n\n"
        "Exit codes: 0 every artifact ok or skipped; 1 one failed; 2 usage; 4 device absent."
    ),
)
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda", "jetson", "arm"]),
    default="cpu",
    show_default=True,
)
@click.option("--batch", "batch", default="1,8", show_default=True, help="Batch sizes.")
@click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="Threads per runtime (pinned)."
)
@click.option(
    "--warmup", type=click.FloatRange(min=0), default=1.0, show_default=True,
    help="Warm-up seconds.",
)  # fmt: skip
@click.option(
    "--seconds", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True,
    help="Seconds per repeat.",
)  # fmt: skip
@click.option(
    "--iters",
    type=click.IntRange(min=1),
    default=None,
    help="Iterations per repeat (overrides --seconds).",
)
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--data", "image_dir", type=click.Path(file_okay=False), help="Image folder.")
@click.option("--ann", "ann_file", type=click.Path(dir_okay=False), help="COCO-WholeBody JSON.")
@click.option("--dets", "det_file", type=click.Path(dir_okay=False), help="Person detections.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Evaluate the first N images only."
)
@click.option("--flip/--no-flip", default=True, show_default=True, help="Flip test.")
@click.option("--reference", type=click.Path(file_okay=False), help="FP32 artifact for fidelity.")
@click.option("--targets", default="", help="With a checkpoint: export these targets first.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="results/NAME")
@click.option("--quiet", is_flag=True)
@click.option("-v", "--verbose", count=True)
@one_line_errors
def run_command(
    inputs: tuple[str, ...],
    device: str,
    batch: str,
    threads: int | None,
    warmup: float,
    seconds: float,
    iters: int | None,
    repeats: int,
    image_dir: str | None,
    ann_file: str | None,
    det_file: str | None,
    limit: int | None,
    flip: bool,
    reference: str | None,
    targets: str,
    out: str,
    quiet: bool,
    verbose: int,
) -> None:
    """Measure latency, end-to-end speed and per-part AP of ARTIFACTS (folders)."""
    setup_logging(verbose)
    from rtmw.bench.run import BenchSettings, bench
    from rtmw.bench.timing import TimingPlan

    paths: list[str | Path] = list(inputs)
    if targets:
        paths = _export_first(inputs, targets, Path(out) / "artifacts")
    settings = BenchSettings(
        device=device,
        batches=_batches(batch),
        threads=threads,
        plan=TimingPlan(
            warmup_s=warmup, seconds=None if iters else seconds, iters=iters, repeats=repeats
        ),
        flip=flip,
        image_dir=image_dir,
        ann_file=ann_file,
        det_file=det_file,
        limit=limit,
        reference=reference,
    )
    results = bench(paths, settings, out, progress=not quiet)
    _summary(results)
    click.echo(f"results: {Path(out) / 'results.json'} (+ results.md, plots)")
    if any(e["status"] == "failed" for e in results["entries"]):
        raise SystemExit(1)


def _export_first(inputs: tuple[str, ...], targets: str, out: Path) -> list[str | Path]:
    from rtmw.errors import InputError
    from rtmw.export import expand_targets, export

    if len(inputs) != 1 or not Path(inputs[0]).is_file():
        raise InputError("--targets needs exactly one checkpoint file as input")
    made = export(inputs[0], expand_targets(targets), out, overwrite=True, progress=True)
    return [r.path for r in made if r.path is not None and r.status == "ok"]


def _summary(results: dict[str, Any]) -> None:
    from rtmw.cli._common import status_summary

    for entry in results["entries"]:
        line = f"{entry['name']:<16} {entry['status']}"
        if entry["status"] != "ok":
            line += f": {entry.get('reason', '')}"
        else:
            best = max(entry["e2e"].values(), key=lambda f: f["persons_per_s"])
            line += f"  {best['persons_per_s']:.1f} persons/s e2e"
            ap = (entry.get("accuracy") or {}).get("parts", {}).get("wholebody", {}).get("ap")
            if ap is not None:
                line += f"  whole-body AP {100 * ap:.1f}"
        click.echo(line)
    rows = [(e["name"], e["status"], e.get("reason", "")) for e in results["entries"]]
    click.echo(f"bench: {status_summary(rows)}")


@main.command(
    "report",
    epilog=(
        "Example:\n\n\b\n"
        "  rtmw-bench report results/cpu/results.json results/jetson/results.json \\\n"
        "      --out results/compare"
    ),
)
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), help="Folder for results.md and plots.")
@one_line_errors
def report_command(files: tuple[str, ...], out: str | None) -> None:
    """Re-render one or more results files; several are compared side by side."""
    from rtmw.bench.report import load_results, markdown, render

    loaded = [load_results(f) for f in files]
    if out:
        for path in render(loaded, Path(out)):
            click.echo(f"wrote {path}")
    else:
        click.echo(markdown(loaded), nl=False)


@main.command(
    "gate",
    epilog=(
        "Examples:\n\n\b\n"
        "  rtmw-bench gate --reference results/fp32/results.json \\\n"
        "      --candidate results/int8/results.json --junit gate.xml\n"
        "  rtmw-bench gate rtmw-m.pth --targets ort-int8,openvino-int8 --calib calib.npz \\\n"
        "      --data val2017/ --ann coco_wholebody_val_v1.0.json --out results/gate\n\n"
        "Exit codes: 0 every check passed; 1 a check failed (or failed closed); 2 usage,\n"
        "a budgets file with unknown keys, or runs from different ISA classes."
    ),
)
@click.argument("checkpoint", required=False, type=click.Path(dir_okay=False))
@click.option("--reference", "reference", type=click.Path(), help="Reference results.json.")
@click.option("--candidate", "candidate", type=click.Path(), help="Candidate results.json.")
@click.option("--reference-entry", default=None, help="Reference artifact name in its run.")
@click.option("--entries", default="", help="Candidate artifact names (default: non-FP32).")
@click.option("--budgets", type=click.Path(dir_okay=False), help="gates.toml (default: built in).")
@click.option("--junit", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@click.option("--markdown", "markdown_out", type=click.Path(dir_okay=False), help="Write Markdown.")
@click.option("--targets", default="", help="One-shot form: targets to export and gate.")
@click.option("--calib", type=click.Path(dir_okay=False), help="One-shot form: calibration set.")
@click.option(
    "--int8-policy",
    type=click.Choice(INT8_POLICY_CHOICES),
    default="head-fp32",
    show_default=True,
    help="One-shot form: which layers INT8 targets keep in float (rtmw-export --help).",
)
@click.option("--data", "image_dir", type=click.Path(file_okay=False))
@click.option("--ann", "ann_file", type=click.Path(dir_okay=False))
@click.option("--dets", "det_file", type=click.Path(dir_okay=False))
@click.option("--limit", type=click.IntRange(min=1), default=None)
@click.option("--out", type=click.Path(file_okay=False), help="One-shot form: work folder.")
@click.option(
    "--allow-onnx-only",
    is_flag=True,
    help="One-shot form: gate a TensorRT target's ONNX stand-in (run in onnxruntime) when "
    "TensorRT is absent; by default such a target fails as not gated.",
)
@click.option(
    "--allow-cross-host",
    is_flag=True,
    help="Compare results measured on different ISA classes (refused by default, exit 2).",
)
@click.option("-v", "--verbose", count=True)
@one_line_errors
def gate_command(
    checkpoint: str | None,
    reference: str | None,
    candidate: str | None,
    reference_entry: str | None,
    entries: str,
    budgets: str | None,
    junit: str | None,
    markdown_out: str | None,
    targets: str,
    calib: str | None,
    int8_policy: str,
    image_dir: str | None,
    ann_file: str | None,
    det_file: str | None,
    limit: int | None,
    out: str | None,
    allow_onnx_only: bool,
    allow_cross_host: bool,
    verbose: int,
) -> None:
    """Fail when a quantised artifact loses more than its budget on any body part."""
    setup_logging(verbose)
    from rtmw.bench.gate import (
        GateResult,
        NothingToGate,
        gate,
        junit_xml,
        load_budgets,
        markdown,
        write_step_summary,
    )
    from rtmw.bench.report import load_results

    budget_table = load_budgets(budgets)
    export_failures: list[Check] = []
    if checkpoint is not None:
        if reference or candidate:
            raise click.UsageError("give a CHECKPOINT or --reference/--candidate, not both")
        if not (targets and image_dir and ann_file and out):
            raise click.UsageError("the one-shot form needs --targets, --data, --ann and --out")
        run_path, export_failures = _one_shot(
            checkpoint, targets, calib, int8_policy, image_dir, ann_file, det_file, limit, out,
            allow_onnx_only=allow_onnx_only,
        )  # fmt: skip
        reference = candidate = str(run_path)
    if not reference or not candidate:
        raise click.UsageError("give --reference and --candidate results files")
    try:
        result = gate(
            load_results(reference),
            load_results(candidate),
            budget_table,
            reference_entry=reference_entry,
            candidates=[e for e in entries.split(",") if e] or None,
            allow_cross_host=allow_cross_host,
        )
    except NothingToGate:
        if not export_failures:
            raise
        result = GateResult()  # every requested target failed to export
    result.checks.extend(export_failures)
    text = markdown(result)
    click.echo(text, nl=False)
    if markdown_out:
        Path(markdown_out).write_text(text)
    if junit:
        Path(junit).write_text(junit_xml(result))
    write_step_summary(text)
    raise SystemExit(0 if result.passed else 1)


def _one_shot(
    checkpoint: str,
    targets: str,
    calib: str | None,
    int8_policy: str,
    image_dir: str,
    ann_file: str,
    det_file: str | None,
    limit: int | None,
    out: str,
    *,
    allow_onnx_only: bool = False,
) -> tuple[Path, list[Check]]:
    """Export the FP32 reference and the targets, bench them all with fidelity.

    A requested target that did not export comes back as a failed check: the gate
    fails closed instead of judging only what happened to build.
    """
    from rtmw.bench.gate import Check
    from rtmw.bench.run import BenchSettings, bench
    from rtmw.bench.timing import TimingPlan
    from rtmw.export import expand_targets, export

    work = Path(out)
    names = ["onnx", *[t for t in expand_targets(targets) if t != "onnx"]]
    made = export(checkpoint, names, work / "artifacts", overwrite=True, progress=True,
                  calib=calib, int8_policy=int8_policy)  # fmt: skip
    for result in made:
        click.echo(result.line())
    reference = work / "artifacts" / "onnx"
    if not any(r.target == "onnx" and r.status == "ok" for r in made):
        from rtmw.errors import RtmwError

        raise RtmwError("the FP32 reference (onnx) could not be exported; nothing to gate against")
    # a TensorRT target built as its ONNX stand-in is not the engine that would ship: it is
    # not gated (and fails the gate) unless the caller accepts the stand-in explicitly
    stand_ins = [r for r in made if r.status == "onnx-only"]
    gated = [r for r in made if r.path is not None and (r.status == "ok" or allow_onnx_only)]
    paths: list[str | Path] = [r.path for r in gated if r.path is not None]
    settings = BenchSettings(
        batches=(1,),
        plan=TimingPlan(warmup_s=0.2, seconds=0.5, repeats=1),
        image_dir=image_dir,
        ann_file=ann_file,
        det_file=det_file,
        limit=limit,
        reference=str(reference),
        draw=0,
    )
    bench(paths, settings, work / "bench", name="gate")
    failures = [
        Check(r.target, "all", "export", None, None, False, f"export {r.status}: {r.reason}")
        for r in made
        if r.status not in ("ok", "onnx-only")
    ]
    if not allow_onnx_only:
        failures += [
            Check(r.target, "all", "export", None, None, False,
                  "not gated: only its ONNX stand-in was built (TensorRT absent); build the "
                  "engine on the target, or pass --allow-onnx-only to gate the stand-in")
            for r in stand_ins
        ]  # fmt: skip
    return work / "bench" / "results.json", failures
