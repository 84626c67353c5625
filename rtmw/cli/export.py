"""``rtmw-export``: checkpoint → verified artifact folders, one per target."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rtmw.cli._common import (
    exit_code_epilog,
    int8_policy_search_option,
    log_run_in,
    status_summary,
    verbosity,
    vocab_option,
)
from rtmw.errors import ExitCode, RtmwError, UsageError

if TYPE_CHECKING:
    from rtmw.export import ExportResult
    from rtmw.export.context import ExportOptions


@click.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n\b\n"
        "  rtmw-export rtmw-m.pth --target onnx --out artifacts/\n"
        "  rtmw-export rtmw-m.pth --targets onnx,openvino-fp16,ncnn-fp32 --out artifacts/\n"
        "  rtmw-export rtmw-m.pth --targets all --out artifacts/ --overwrite\n"
        "  rtmw-export rtmw-m.pth --targets ort-int8,openvino-int8,trt-int8 \\\n"
        "      --calib calib.npz --sensitivity --out artifacts/\n"
        "  # the fastest policy per INT8 target within every part's budget (held-out data)\n"
        "  rtmw-export rtmw-m.pth --targets ort-int8,openvino-int8 --calib calib.npz \\\n"
        "      --int8-policy auto --eval-images val/ --eval-ann val.json --out artifacts/"
        + exit_code_epilog(
            "a target failed (verification figures printed); 3 also for trt-* without "
            "TensorRT, whose verified ONNX stand-in is written"
        )
    ),
)
@click.argument("checkpoint", required=False, type=click.Path(dir_okay=False))
@click.option("--target", "target", multiple=True, help="A target; repeatable.")
@vocab_option("targets", default="", help="Comma-separated targets, or 'all'.")
@vocab_option(
    "out", type=click.Path(file_okay=False), help="Folder that receives one subfolder per target."
)
@click.option("--opset", default=17, show_default=True, help="ONNX opset for the shared ONNX step.")
@click.option("--no-simplify", is_flag=True, help="Skip onnxsim.")
@click.option("--overwrite", is_flag=True, help="Replace existing artifact folders.")
@vocab_option(
    "calib",
    type=click.Path(dir_okay=False),
    help="Calibration set from rtmw-calib (required by INT8 targets).",
)
@int8_policy_search_option
@click.option(
    "--int8-keep",
    multiple=True,
    metavar="PREFIX",
    help="ONNX node-name prefix kept in float on top of the policy (e.g. /neck/); repeatable.",
)
@click.option(
    "--trt-int8-route",
    type=click.Choice(["qdq", "calibrator"]),
    default="qdq",
    show_default=True,
    help="trt-int8: explicit Q/DQ (TensorRT 10/11) or TensorRT 10's entropy calibrator.",
)
@click.option(
    "--accuracy-control",
    type=float,
    default=None,
    metavar="MAX_DROP",
    help="openvino-int8: NNCF accuracy-controlled PTQ with this max drop of keypoint OKS.",
)
@click.option(
    "--accuracy-control-seconds",
    type=click.FloatRange(min=1),
    default=600,
    show_default=True,
    help="Time budget of --accuracy-control; past it the export fails (never a silent result).",
)
@click.option(
    "--ort-int8-activations",
    type=click.Choice(["u8", "s8"]),
    default="u8",
    show_default=True,
    help="ort-int8: U8S8 (asymmetric activations) or S8S8 (symmetric); speed depends on the ISA.",
)
@click.option(
    "--fixed-batch",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="litert-*, executorch-*: the model's fixed batch (runtimes chunk larger batches).",
)
@click.option(
    "--rknn-platform",
    default="rk3588",
    show_default=True,
    help="rknn-*: the Rockchip SoC to compile for (rk3588, rk3576, rk3568, rk3566, rk3562, …).",
)
@click.option(
    "--latency-only",
    is_flag=True,
    help="For weights that cannot be judged (random-init published configurations): the same "
    "graphs and quantisation, verified for structure only; rtmw-bench then reports latency "
    "and refuses AP, fidelity and gates for them.",
)
@click.option(
    "--sensitivity",
    is_flag=True,
    help="Per-block INT8 sensitivity scan (needs --calib); table printed and saved in --out.",
)
@click.option(
    "--preprocess", type=click.Choice(["mmdet", "yolox"]), default=None,
    help="An imported ONNX detector's normalisation (mmdet: BGR mean/std; yolox: raw 0-255); "
    "read from mmdeploy's pipeline.json beside the file when there is one.",
)  # fmt: skip
@click.option(
    "--input-size", default=None, metavar="WxH",
    help="An imported ONNX detector's input size, when its graph leaves it dynamic.",
)  # fmt: skip
@click.option(
    "--eval-images", type=click.Path(file_okay=False),
    help="--int8-policy auto: held-out images (not the calibration images) to judge on.",
)  # fmt: skip
@click.option(
    "--eval-ann", type=click.Path(dir_okay=False),
    help="--int8-policy auto: their COCO-WholeBody annotations (split: search / confirm).",
)  # fmt: skip
@click.option(
    "--budgets", type=click.Path(dir_okay=False),
    help="--int8-policy auto: a gates.toml of per-part budgets (default: rtmw's).",
)  # fmt: skip
@click.option(
    "--search-seconds", type=click.FloatRange(min=1), default=1800, show_default=True,
    help="--int8-policy auto: time budget per target; the search says when it stops early.",
)  # fmt: skip
@click.option("--list", "list_only", is_flag=True, help="List the targets and exit.")
@verbosity
def main(
    checkpoint: str | None,
    target: tuple[str, ...],
    targets: str,
    out: str | None,
    opset: int,
    no_simplify: bool,
    overwrite: bool,
    calib: str | None,
    int8_policy: str,
    int8_keep: tuple[str, ...],
    trt_int8_route: str,
    accuracy_control: float | None,
    accuracy_control_seconds: float,
    ort_int8_activations: str,
    fixed_batch: int,
    rknn_platform: str,
    latency_only: bool,
    sensitivity: bool,
    preprocess: str | None,
    input_size: str | None,
    eval_images: str | None,
    eval_ann: str | None,
    budgets: str | None,
    search_seconds: float,
    list_only: bool,
    quiet: bool,
) -> None:
    """Export an mmpose RTMW CHECKPOINT to deployable, verified artifacts."""
    from rtmw.export import expand_targets, export, export_options, get_target

    if list_only:
        for name in [*expand_targets("all"), "torch"]:
            spec = get_target(name)
            click.echo(f"{name:<14} {spec.precision:<5} {spec.description}")
        return
    if checkpoint is None or out is None:
        raise click.UsageError("CHECKPOINT and --out are needed (or --list)")
    requested = [*target, *([targets] if targets else [])]
    log_run_in(out, "rtmw-export")
    if checkpoint.lower().endswith(".onnx"):
        _import_onnx_detector(checkpoint, out, requested, preprocess, input_size, overwrite)
        return
    if sensitivity:
        from rtmw.export import sensitivity_scan

        if calib is None:
            raise click.UsageError("--sensitivity needs --calib")
        table_path, table = sensitivity_scan(
            checkpoint, calib, out, progress=not quiet,
            int8_policy="head-fp32" if int8_policy == "auto" else int8_policy,
        )  # fmt: skip
        click.echo(table)
        click.echo(f"sensitivity table: {table_path}")
        if not requested:
            return
    if not requested:
        raise click.UsageError("give --target or --targets (see --list)")
    try:
        expand_targets(requested)  # unknown names are a usage error before any work
    except RtmwError as exc:
        raise UsageError(str(exc)) from None  # one line, exit 2
    search = int8_policy == "auto"
    if search and (calib is None or eval_images is None or eval_ann is None):
        raise click.UsageError("--int8-policy auto needs --calib, --eval-images and --eval-ann")
    options = export_options(
        opset=opset,
        simplify=not no_simplify,
        int8_policy="head-fp32" if search else int8_policy,
        int8_keep=int8_keep,
        accuracy_control=accuracy_control,
        accuracy_control_seconds=accuracy_control_seconds,
        engine={"int8_route": trt_int8_route},
        latency_only=latency_only,
        ort_int8_activations=ort_int8_activations,
        fixed_batch=fixed_batch,
        rknn_platform=rknn_platform,
    )
    names = expand_targets(requested, include_int8=calib is not None)
    searched = [n for n in names if search and get_target(n).precision == "int8"]
    results = []
    rest = [n for n in names if n not in searched]
    if rest:
        results = export(
            checkpoint, rest, out, overwrite=overwrite, progress=not quiet, calib=calib,
            options=options,
        )  # fmt: skip
    for name in searched:
        results.append(_search(checkpoint, name, out, calib, eval_images, eval_ann, budgets,
                               search_seconds, options, overwrite))  # fmt: skip
    for result in results:
        click.echo(result.line())
    click.echo(f"export: {status_summary([(r.target, r.status, r.reason) for r in results])}")
    codes = [r.exit_code for r in results]
    skipped = (ExitCode.OK, ExitCode.MISSING_DEPENDENCY, ExitCode.UNAVAILABLE)
    if any(code not in skipped for code in codes):
        sys.exit(ExitCode.FAILED)
    # this CPU/device lacks what a target needs; a backend is missing
    for missing in (ExitCode.UNAVAILABLE, ExitCode.MISSING_DEPENDENCY):
        if missing in codes:
            sys.exit(missing)


def _search(
    checkpoint: str, target: str, out: str, calib: str | None, images: str | None,
    ann: str | None, budgets: str | None, seconds: float, options: ExportOptions,
    overwrite: bool,
) -> ExportResult:  # fmt: skip
    """One target's policy search, as an export result line (its table beside it)."""
    from rtmw.export import ExportResult
    from rtmw.schemas import Status
    from rtmw.workflows import search_int8_policy

    assert calib is not None and images is not None and ann is not None
    try:
        found = search_int8_policy(
            checkpoint, target, out, calib=calib, image_dir=images, ann_file=ann,
            budgets=budgets, seconds=seconds, overwrite=overwrite,
            base_options=options,
            say=click.echo,
        )  # fmt: skip
    except RtmwError as exc:
        return ExportResult(target, Status.FAILED, reason=str(exc), exit_code=exc.exit_code)
    chosen = found.chosen
    assert chosen is not None and found.artifact is not None
    return ExportResult(
        target, Status.OK, found.artifact, seconds=found.seconds,
        reason=f"policy {chosen.policy}",
        verification=read_verification(found.artifact),
    )  # fmt: skip


def read_verification(folder: Path) -> dict[str, Any] | None:
    from rtmw.artifact import read_artifact

    verification: dict[str, Any] | None = read_artifact(folder).manifest.verification
    return verification


def _import_onnx_detector(
    path: str, out: str, requested: list[str], preprocess: str | None, input_size: str | None,
    overwrite: bool,
) -> None:  # fmt: skip
    """An ONNX file is a detector brought as is: it becomes one onnx artifact, OUT/onnx."""
    from pathlib import Path

    from rtmw.export.imported import import_detector

    if any(name != "onnx" for item in requested for name in item.split(",")):
        raise UsageError(
            f"{path}: an imported ONNX detector becomes the onnx artifact only (targets given: "
            f"{', '.join(requested)}); other targets are built from an mmdet checkpoint"
        )
    size = None
    if input_size:
        try:
            width, height = (int(v) for v in input_size.lower().split("x"))
        except ValueError:
            raise UsageError(f"--input-size {input_size!r}: WIDTHxHEIGHT expected") from None
        size = (width, height)
    folder = import_detector(path, Path(out) / "onnx", preprocess=preprocess, input_size=size,
                             overwrite=overwrite)  # fmt: skip
    from rtmw.artifact import read_artifact

    manifest = read_artifact(folder).manifest
    record = manifest.detector or {}
    click.echo(
        f"onnx  imported  {folder} ({record.get('layout')}, {manifest.input_size[0]}x"
        f"{manifest.input_size[1]}, pre-processing from {record.get('preprocessing_from')}; "
        "checked on frames, no torch reference)"
    )
