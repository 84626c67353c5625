"""``rtmw-bench``: latency and COCO-WholeBody accuracy for artifacts, into ``results/``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rtmw.cli._common import (
    data_options,
    exit_code_epilog,
    int8_policy_option,
    log_run_in,
    verbosity,
    vocab_option,
)
from rtmw.errors import ExitCode
from rtmw.schemas import Status

if TYPE_CHECKING:
    from rtmw.bench.entry import ResultsDocument
    from rtmw.bench.run import BenchSettings

logger = logging.getLogger(__name__)


def _device_choices() -> tuple[str, ...]:
    from rtmw.bench.environment import RUNTIME_DEVICE

    return tuple(RUNTIME_DEVICE)


DEVICE_CHOICES = _device_choices()


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


def remote_options(func: Any) -> Any:
    """--remote and how to reach, check and (optionally) provision the host."""
    options = [
        click.option("--remote", metavar="USER@HOST[:PORT]", default=None,
                     help="Run the benchmark on this host over SSH (key-based)."),
        click.option("--ssh-key", type=click.Path(dir_okay=False), default=None,
                     help="Private key for --remote (default: ssh's own)."),
        click.option("--known-hosts", type=click.Path(dir_okay=False), default=None,
                     help="known_hosts file (default: ssh's own; new hosts are trusted on "
                     "first use, changed keys refused)."),
        click.option("--remote-python", default=None,
                     help="The host's Python with rtmw (default: the venv --install makes)."),
        click.option("--remote-dir", default=None,
                     help="Folder on the host for artifacts, data, runs and the venv "
                     "[default: ~/.cache/rtmw-remote]."),
        click.option("--install", "remote_install", is_flag=True,
                     help="Build this rtmw as a wheel and install it in a venv on the host."),
        click.option("--install-extras", default=None,
                     help="Extras to install there, comma-separated [default: the "
                     "artifacts' runtimes, plus eval with --ann]."),
        click.option("--install-requirement", multiple=True,
                     help="Installed first on the host, e.g. 'torch==2.13.0'; repeatable."),
        click.option("--pip-arg", multiple=True,
                     help="Extra pip argument on the host, e.g. --index-url=URL; repeatable."),
        click.option("--system-site-packages", is_flag=True,
                     help="The host's venv sees its system packages (Jetson: JetPack's torch "
                     "and TensorRT)."),
        click.option("--remote-timeout", type=click.FloatRange(min=1), default=3600.0,
                     show_default=True, help="Seconds the remote benchmark may run."),
        click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
                     help="Retries when ssh itself fails (refused, unreachable, dropped)."),
        click.option("--allow-version-mismatch", is_flag=True,
                     help="Run even when the host's rtmw is another version or source."),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


@main.command(
    "run",
    epilog=(
        "Examples:\n\n\b\n"
        "  rtmw-bench artifacts/ --batch 1,8 --out results/cpu-rtmw-m\n"
        "  rtmw-bench artifacts/onnx artifacts/openvino-fp16 --images val2017/ \\\n"
        "      --ann coco_wholebody_val_v1.0.json \\\n"
        "      --dets COCO_val2017_detections_AP_H_56_person.json \\\n"
        "      --reference artifacts/onnx --out results/val\n"
        "  rtmw-bench rtmw-m.pth --targets onnx,openvino-fp16 --out results/quick\n"
        "  # on a Jetson over SSH, installing this rtmw there first\n"
        "  rtmw-bench artifacts/trt-fp16 --device jetson --remote nvidia@orin.local \\\n"
        "      --install --system-site-packages --out results/orin"
        + exit_code_epilog(
            "an artifact failed to open, run or evaluate, here or on the remote host (its "
            "row says why)"
        )
    ),
)
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--device",
    type=click.Choice(list(DEVICE_CHOICES)),
    default="cpu",
    show_default=True,
    help="cpu/arm/cuda/jetson record their device profile; the others are the devices the "
    "runtime adapters declare (OpenVINO gpu/npu, ncnn vulkan, LiteRT gpu, onnxruntime's EPs).",
)
@vocab_option("batch", default="1,8", show_default=True, help="Batch sizes, comma-separated.")
@vocab_option(
    "threads", type=click.IntRange(min=1), default=None, help="Threads per runtime (pinned)."
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
@click.option(
    "--stream",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Also feed N frames through the overlapped (asynchronous) streaming pipeline.",
)
@click.option(
    "--runtime-option",
    "runtime_option",
    multiple=True,
    metavar="RUNTIME.KEY=VALUE",
    help="A runtime's tuning knob, e.g. openvino.performance_hint=THROUGHPUT; repeatable "
    "(each runtime's knobs: rtmw.runtimes.<adapter>.OPTIONS).",
)
@click.option(
    "--flip-in-batch/--flip-separate",
    default=True,
    show_default=True,
    help="Mirrored crops in the same inference call as the originals, or a second call.",
)
@data_options
@click.option("--flip/--no-flip", default=True, show_default=True, help="Flip test.")
@click.option("--reference", type=click.Path(file_okay=False), help="FP32 artifact for fidelity.")
@click.option(
    "--accuracy-only", is_flag=True,
    help="Score accuracy only, no timed call: for an emulator or simulator (--device htp on "
    "x86, simulator), whose timings are not the device's speed.",
)  # fmt: skip
@vocab_option("targets", default="", help="With a checkpoint: export these targets first.")
@vocab_option("out", required=True, type=click.Path(file_okay=False), help="results/NAME")
@remote_options
@verbosity
def run_command(
    inputs: tuple[str, ...],
    device: str,
    batch: str,
    threads: int | None,
    warmup: float,
    seconds: float,
    iters: int | None,
    repeats: int,
    stream: int,
    runtime_option: tuple[str, ...],
    flip_in_batch: bool,
    image_dir: str | None,
    ann_file: str | None,
    det_file: str | None,
    limit: int | None,
    flip: bool,
    reference: str | None,
    accuracy_only: bool,
    targets: str,
    out: str,
    quiet: bool,
    **remote: Any,
) -> None:
    """Measure latency, end-to-end speed and per-part AP of ARTIFACTS (folders), here or
    (--remote) on another host over SSH."""
    from rtmw.bench.run import BenchSettings, bench
    from rtmw.bench.timing import TimingPlan

    paths: list[str | Path] = list(inputs)
    log_run_in(out, "rtmw-bench")
    if targets:
        from rtmw.workflows.gate import export_for_bench

        paths = list(export_for_bench(inputs, targets, Path(out) / "artifacts", progress=not quiet))
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
        stream=stream,
        runtime_options=_runtime_options(runtime_option),
        flip_in_batch=flip_in_batch,
        accuracy_only=accuracy_only,
    )
    if accuracy_only and not ann_file:
        raise click.UsageError("--accuracy-only needs --images and --ann (there is nothing else)")
    if remote["remote"]:
        results = _bench_remote(paths, settings, remote, Path(out), quiet)
        _finish(results, out, f"ran on {remote['remote']}")
        return
    _finish(bench(paths, settings, out, progress=not quiet), out, "+ results.md, plots")


def _finish(results: ResultsDocument, out: str, where: str) -> None:
    """One line per row, where the results are; exit 1 when a row failed."""
    _summary(results)
    click.echo(f"results: {Path(out) / 'results.json'} ({where})")
    if any(e.status == Status.FAILED for e in results.entries):
        raise SystemExit(ExitCode.FAILED)


def _bench_remote(
    paths: list[str | Path],
    bench_settings: BenchSettings,
    remote: dict[str, Any],
    out: Path,
    quiet: bool,
) -> ResultsDocument:
    from rtmw.bench.run import find_artifacts
    from rtmw.workflows.remote import RemoteSettings, SshOptions, SshTarget, remote_bench

    extras = remote["install_extras"]
    settings = RemoteSettings(
        target=SshTarget.parse(remote["remote"]),
        ssh=SshOptions(
            identity=Path(remote["ssh_key"]) if remote["ssh_key"] else None,
            known_hosts=Path(remote["known_hosts"]) if remote["known_hosts"] else None,
            retries=remote["retries"],
        ),
        python=remote["remote_python"],
        remote_dir=remote["remote_dir"],
        install=remote["remote_install"],
        install_extras=None if extras is None else tuple(e for e in extras.split(",") if e),
        install_requirements=tuple(remote["install_requirement"]),
        pip_args=tuple(remote["pip_arg"]),
        system_site_packages=remote["system_site_packages"],
        timeout_s=remote["remote_timeout"],
        allow_version_mismatch=remote["allow_version_mismatch"],
    )
    say = (lambda line: None) if quiet else (lambda line: click.echo(line, err=True))
    return remote_bench(
        find_artifacts(paths), bench_settings, settings, out, say=say, progress=not quiet,
        quiet=quiet,
    )  # fmt: skip


def _runtime_options(values: tuple[str, ...]) -> dict[str, dict[str, str]]:
    options: dict[str, dict[str, str]] = {}
    for value in values:
        key, sep, setting = value.partition("=")
        runtime, dot, name = key.partition(".")
        if not (sep and dot and runtime and name):
            raise click.BadParameter(
                f"RUNTIME.KEY=VALUE expected, got {value!r}", param_hint="--runtime-option"
            )
        options.setdefault(runtime, {})[name] = setting
    return options


def _summary(results: ResultsDocument) -> None:
    from rtmw.cli._common import status_summary

    for entry in results.entries:
        line = f"{entry.name:<16} {entry.status}"
        if not entry.ok:
            line += f": {entry.reason}"
        elif entry.task == "detect":
            fps = entry.frames_per_s
            line += f"  {fps:.1f} frames/s (detector, one frame e2e)" if fps else "  (detector)"
            if entry.detection:
                line += f"  person box AP {100 * entry.detection['ap']:.1f}"
        else:
            best = entry.best_persons_per_s()
            line += f"  {best:.1f} persons/s e2e" if best is not None else ""
            ap = entry.ap("wholebody")
            if ap is not None:
                line += f"  whole-body AP {100 * ap:.1f}"
        click.echo(line)
    rows = [(e.name, str(e.status), e.reason) for e in results.entries]
    click.echo(f"bench: {status_summary(rows)}")


@main.command(
    "report",
    epilog=(
        "Example:\n\n\b\n"
        "  rtmw-bench report results/cpu/results.json results/jetson/results.json \\\n"
        "      --out results/compare" + exit_code_epilog()
    ),
)
@click.argument("files", nargs=-1, required=True, type=click.Path())
@vocab_option("out", type=click.Path(file_okay=False), help="Folder for results.md and plots.")
@verbosity
def report_command(files: tuple[str, ...], out: str | None, quiet: bool) -> None:
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
        "      --images val2017/ --ann coco_wholebody_val_v1.0.json --out results/gate"
        + exit_code_epilog(
            "a check failed (or failed closed); 2 also for a budgets file "
            "with unknown keys, or runs from different ISA classes"
        )
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
@vocab_option("targets", default="", help="One-shot form: targets to export and gate.")
@vocab_option("calib", type=click.Path(dir_okay=False), help="One-shot form: calibration set.")
@int8_policy_option
@data_options
@vocab_option("out", type=click.Path(file_okay=False), help="One-shot form: work folder.")
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
@verbosity
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
    quiet: bool,
) -> None:
    """Fail when a quantised artifact loses more than its budget on any body part."""
    from rtmw.bench.gate import junit_xml, load_budgets, markdown, write_step_summary
    from rtmw.workflows.gate import gate_results, one_shot_gate

    budget_table = load_budgets(budgets)
    candidates = [e for e in entries.split(",") if e] or None
    if checkpoint is not None:
        if reference or candidate:
            raise click.UsageError("give a CHECKPOINT or --reference/--candidate, not both")
        if not (targets and image_dir and ann_file and out):
            raise click.UsageError("the one-shot form needs --targets, --images, --ann and --out")
        log_run_in(out, "rtmw-bench-gate")
        result = one_shot_gate(
            checkpoint, targets, out=out, image_dir=image_dir, ann_file=ann_file,
            det_file=det_file, limit=limit, calib=calib, int8_policy=int8_policy,
            budgets=budget_table, allow_onnx_only=allow_onnx_only,
            allow_cross_host=allow_cross_host, reference_entry=reference_entry,
            candidates=candidates, say=click.echo,
        ).result  # fmt: skip
    elif not reference or not candidate:
        raise click.UsageError("give --reference and --candidate results files")
    else:
        result = gate_results(
            reference, candidate, budgets=budget_table, reference_entry=reference_entry,
            candidates=candidates, allow_cross_host=allow_cross_host,
        )  # fmt: skip
    text = markdown(result)
    click.echo(text, nl=False)
    if markdown_out:
        Path(markdown_out).write_text(text)
    if junit:
        Path(junit).write_text(junit_xml(result))
    write_step_summary(text)
    raise SystemExit(ExitCode.OK if result.passed else ExitCode.FAILED)


@main.command(
    "baseline",
    epilog=(
        "Example:\n\n\b\n  rtmw-bench baseline --out results --threads 2"
        + exit_code_epilog("an export or a benchmark run failed")
    ),
)
@click.option(
    "--models",
    default="rtmw-m-256x192,rtmw-l-256x192,rtmw-l-384x288",
    show_default=True,
    help="Zoo configurations (random init, exported latency-only).",
)
@vocab_option("batch", default="1,8", show_default=True, help="Batch sizes, comma-separated.")
@vocab_option(
    "threads", type=click.IntRange(min=1), default=None,
    help="Threads for every runtime (default: every usable core).",
)  # fmt: skip
@click.option("--stream", type=click.IntRange(min=0), default=16, show_default=True, metavar="N")
@vocab_option(
    "out", default="results", show_default=True, type=click.Path(file_okay=False),
    help="Results root: cpu-<model>/ per model and cpu-published/ comparing them.",
)  # fmt: skip
@verbosity
def baseline_command(
    models: str, batch: str, threads: int | None, stream: int, out: str, quiet: bool
) -> None:
    """Latency of the published configurations on every CPU target of this host."""
    from rtmw.workflows.baseline import BaselineSettings, bench_published

    log_run_in(out, "rtmw-bench-baseline")
    settings = BaselineSettings(batches=_batches(batch), threads=threads, stream_frames=stream)
    names = [m.strip() for m in models.split(",") if m.strip()]
    files = bench_published(Path(out), settings, models=names, say=click.echo)
    for path in files:
        click.echo(f"results: {path}")
    click.echo(f"comparison: {Path(out) / 'cpu-published' / 'results.md'}")


@main.command(
    "policy-shapes",
    epilog=(
        "Example:\n\n\b\n"
        "  rtmw-bench policy-shapes --policies results/policy-search/chosen.json \\\n"
        "      --models rtmw-m-256x192,rtmw-l-256x192 --out results/policy-shapes"
        + exit_code_epilog("an export or a benchmark run failed")
    ),
)
@click.option(
    "--policies", type=click.Path(dir_okay=False, exists=True), default=None,
    help="A search's chosen.json (default: the demo's shipped demo_int8_policies.json).",
)  # fmt: skip
@click.option(
    "--models", default="rtmw-m-256x192,rtmw-l-256x192", show_default=True,
    help="Zoo configurations (random init, exported latency-only).",
)  # fmt: skip
@vocab_option("batch", default="1,8", show_default=True, help="Batch sizes, comma-separated.")
@vocab_option(
    "out", default="results/policy-shapes", show_default=True, type=click.Path(file_okay=False),
    help="Results folder (README.md, shapes.json, one bench run per model).",
)  # fmt: skip
@verbosity
def policy_shapes_command(
    policies: str | None, models: str, batch: str, out: str, quiet: bool
) -> None:
    """Speed of each INT8 target's searched policy shape against head-fp32 on the published
    configurations (random init, latency only)."""
    from rtmw.workflows.demo_policies import POLICIES_FILE
    from rtmw.workflows.policy_shapes import bench_policy_shapes, load_policies

    log_run_in(out, "rtmw-bench-policy-shapes")
    chosen = load_policies(Path(policies) if policies else POLICIES_FILE)
    names = [m.strip() for m in models.split(",") if m.strip()]
    rows = bench_policy_shapes(chosen, Path(out), models=names, batches=_batches(batch),
                               say=click.echo)  # fmt: skip
    click.echo(f"results: {Path(out) / 'README.md'}")
    if any(r.status != "ok" for r in rows):
        raise SystemExit(ExitCode.FAILED)


@main.command(
    "arm-lane",
    epilog=(
        "Examples:\n\n\b\n"
        "  rtmw-bench arm-lane prepare lane/            # x86: export, torch reference outputs\n"
        "  rtmw-bench arm-lane run lane/ --label x86\n"
        "  QEMU_CPU=cortex-a53 tools/arm_lane.sh python .arm -m rtmw.cli.bench \\\n"
        "      arm-lane run lane/ --label armv8.0-a53\n"
        "  rtmw-bench arm-lane report lane/ --label armv8.0-a53 --out results/arm-lane"
        + exit_code_epilog("a verdict on ARM differs from x86's and nothing recorded explains it")
    ),
)
@click.argument("step", type=click.Choice(["prepare", "run", "report"]))
@click.argument("lane", type=click.Path(file_okay=False))
@click.option("--label", "labels", multiple=True, help="run: this host's name; report: the "
              "hosts to set beside x86 (repeatable).")  # fmt: skip
@click.option("--targets", default=None, help="prepare: comma list (default: every lane target).")
@click.option("--images", default=None, type=click.IntRange(1, 200),
              help="prepare: held-out synthetic images (default: 12).")  # fmt: skip
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="report: folder for README.md (default: LANE).")  # fmt: skip
@verbosity
def arm_lane_command(
    step: str, lane: str, labels: tuple[str, ...], targets: str | None, images: int | None,
    out: str | None, quiet: bool,
) -> None:  # fmt: skip
    """The aarch64 lane: the demo model's verdicts on emulated ARM cores next to x86's
    (tools/arm_lane.sh sets up the arm64 Python)."""
    from rtmw.workflows import arm_lane

    say = (lambda _: None) if quiet else click.echo
    folder = Path(lane)
    if step == "prepare":
        chosen = [t.strip() for t in targets.split(",")] if targets else arm_lane.LANE_TARGETS
        arm_lane.prepare(folder, targets=chosen, images=images or arm_lane.LANE_IMAGES, say=say)
        return
    if step == "run":
        if len(labels) != 1:
            raise click.UsageError("run takes one --label (this host's name)")
        click.echo(f"lane run: {arm_lane.run(folder, labels[0], say=say)}")
        return
    text = arm_lane.report(folder, labels)
    destination = Path(out) if out else folder
    destination.mkdir(parents=True, exist_ok=True)
    (destination / "README.md").write_text(text)
    click.echo(f"report: {destination / 'README.md'}")
    if arm_lane.unexplained_differences(text):
        raise SystemExit(ExitCode.FAILED)


@main.command(
    "fleet",
    epilog=(
        "Examples:\n\n\b\n"
        "  # a Ray cluster whose nodes advertise their class, e.g. on an Orin:\n"
        "  #   ray start --address=HEAD:6379 --resources='{\"jetson-orin\": 1}'\n"
        "  rtmw-bench fleet fleet.toml --out results/fleet\n"
        "  rtmw-bench fleet fleet.toml --address 10.0.0.5:6379 --out results/fleet\n\n"
        "The fleet file's format: docs/remote.md (example: docs/fleet.example.toml)."
        + exit_code_epilog("a job failed on its node, timed out, or a class's rtmw differs")
    ),
)
@click.argument("fleet_file", type=click.Path(dir_okay=False))
@click.option("--address", default=None, help="Ray cluster address (overrides [cluster]).")
@vocab_option("out", required=True, type=click.Path(file_okay=False), help="results/NAME")
@verbosity
def fleet_command(fleet_file: str, address: str | None, out: str, quiet: bool) -> None:
    """Benchmark (and shard large evaluations of) artifacts across a Ray cluster's device
    classes; one merged report."""
    from dataclasses import replace

    from rtmw.cli._common import status_summary
    from rtmw.workflows.fleet import FleetSpec, fleet_failed, run_fleet

    spec = FleetSpec.load(fleet_file)
    if address:
        spec = replace(spec, address=address)
    run = run_fleet(spec, Path(out), say=click.echo if not quiet else (lambda _: None),
                    progress=not quiet)  # fmt: skip
    rows = []
    for document in run.documents:
        entry = document["entries"][0]
        rows.append((document["name"], entry["status"], entry.get("reason", "")))
        line = f"{document['name']:<28} {entry['status']}"
        if entry["status"] != "ok":
            line += f": {entry.get('reason', '')}"
        else:
            node = (document.get("fleet") or {}).get("node", {})
            line += f"  on {node.get('node_ip')} ({node.get('cpu', {}).get('isa_class')})"
            ap = (entry.get("accuracy") or {}).get("parts", {}).get("wholebody", {}).get("ap")
            if ap is not None:
                shards = entry["accuracy_sharding"]["shards"]
                line += f"  whole-body AP {100 * ap:.1f} ({shards} shards)"
        click.echo(line)
    click.echo(f"fleet: {status_summary(rows)}")
    click.echo(f"results: {Path(out) / 'results.md'}, {Path(out) / 'fleet.json'}")
    if fleet_failed(run):
        raise SystemExit(ExitCode.FAILED)


def _list(value: str, kind: type = str) -> list:  # type: ignore[type-arg]
    items = [kind(v.strip()) for v in value.split(",") if v.strip()]
    if not items:
        raise click.BadParameter("a comma-separated list expected")
    return items


LOOP_MODES = {"one-crop": (False, False), "batched": (True, False), "streamed": (True, True)}


@main.command(
    "frames",
    epilog=(
        "Examples:\n\n\b\n"
        "  rtmw-bench frames --synthetic 120 --det DET/onnx,DET/openvino-int8 \\\n"
        "      --pose POSE/onnx,POSE/openvino-int8 --modes one-crop,streamed --out results/frames\n"
        "  rtmw-bench frames video.mp4 --ann video_wholebody.json --det DET --pose POSE \\\n"
        "      --det-every 1,2,5,10 --gate --out results/frames"
        + exit_code_epilog("a [frames] budget failed (or failed closed) with --gate")
    ),
)
@click.argument("video", required=False)
@click.option("--det", "detectors", required=True,
              help="Detector artifact folders, comma-separated.")  # fmt: skip
@click.option("--pose", "poses", required=True, help="Pose artifact folders, comma-separated.")
@vocab_option(
    "ann_file",
    type=click.Path(dir_okay=False),
    help="The video's COCO-WholeBody annotations with track_id (AP, IDs, jitter).",
)
@click.option(
    "--synthetic",
    type=click.IntRange(min=1),
    default=None,
    help="Render a synthetic video of N frames with ground truth and use it.",
)
@click.option(
    "--persons",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Persons in the synthetic video.",
)
@click.option("--det-every", default="5", show_default=True, help="Values of N, comma-separated.")
@click.option(
    "--modes",
    default="one-crop,batched,streamed",
    show_default=True,
    help="Loop modes: one-crop (rtmlib's way), batched, streamed.",
)
@click.option("--gate", is_flag=True, help="Judge every row by the [frames] budgets.")
@click.option("--budgets", type=click.Path(dir_okay=False), help="gates.toml (default: built in).")
@vocab_option("out", required=True, type=click.Path(file_okay=False), help="Results folder.")
@vocab_option("threads", type=click.IntRange(min=1), default=None, help="Threads per runtime.")
@verbosity
def frames_command(
    video: str | None, detectors: str, poses: str, ann_file: str | None, synthetic: int | None,
    persons: int, det_every: str, modes: str, gate: bool, budgets: str | None, out: str,
    threads: int | None, quiet: bool,
) -> None:  # fmt: skip
    """What a frame costs: detector × pose × loop mode, per stage, with AP, IDs and jitter."""
    from rtmw.bench.frames import FrameRoute, frame_bench, gate_markdown
    from rtmw.pipeline.frames import FrameSettings
    from rtmw.pipeline.smoothing import OneEuroSettings

    folder = Path(out)
    if (video is None) == (synthetic is None):
        raise click.UsageError("give a VIDEO or --synthetic N")
    log_run_in(folder, "rtmw-bench-frames")
    if synthetic is not None:
        from rtmw.data.synthetic_video import render_video

        made = render_video(folder / "video", frames=synthetic, persons=persons,
                            progress=not quiet)  # fmt: skip
        video, ann_file = str(made.video), str(made.ann_file)
    unknown = [m for m in _list(modes) if m not in LOOP_MODES]
    if unknown:
        raise click.BadParameter(f"unknown mode(s) {unknown}; known: {', '.join(LOOP_MODES)}")
    routes = []
    for det in _list(detectors):
        for pose in _list(poses):
            for mode in _list(modes):
                for n in _list(det_every, int):
                    batched, stream = LOOP_MODES[mode]
                    settings = FrameSettings(det_every=n, batched=batched,
                                             smoothing=OneEuroSettings())  # fmt: skip
                    name = f"{Path(det).name} + {Path(pose).name} {mode} det/{n}"
                    routes.append(FrameRoute(name, Path(det), Path(pose), settings, stream))
    assert video is not None
    _, verdict = frame_bench(routes, video, folder, ann_file=ann_file, budgets_file=budgets,
                                gate=gate, threads=threads,
                                say=(lambda _: None) if quiet else click.echo)  # fmt: skip
    click.echo((folder / "frames.md").read_text(), nl=False)
    if verdict is not None:
        text = gate_markdown(verdict)
        (folder / "frames-gate.md").write_text(text)
        click.echo(text, nl=False)
        raise SystemExit(ExitCode.OK if verdict.passed else ExitCode.FAILED)


if __name__ == "__main__":
    main()
