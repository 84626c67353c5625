"""The end-to-end demo: the embedded demo model through every step of the product.

synthetic data → calibration set → export to every target this machine can build
(INT8 included) → benchmark all artifacts on a held-out synthetic split → gate the FP16
and INT8 artifacts against FP32 → the person detector: the demo detector exported, timed
per frame and scored (box AP), and the pose model scored on its boxes against ground-truth
boxes (detector.md) → the frame loop on a synthetic video: rtmlib's one-crop loop vs rtmw's
batched and streamed loops in FP32 and the best INT8, and detection every 1/2/5/10 frames
(frames.md) → results/demo/ (JSON, Markdown, plots, images).
With ``three_d`` the same on the RTMW3D demo model and synthetic 3D figures: the bench
adds MPJPE/PA-MPJPE per part and the gate their budgets (results/demo-3d/).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rtmw.bench.entry import ResultsDocument
from rtmw.bench.gate import GateResult, explain_check, junit_xml, markdown
from rtmw.bench.report import render
from rtmw.bench.run import BenchSettings, bench
from rtmw.bench.summary import compact_markdown, fastest_passing
from rtmw.bench.timing import TimingPlan
from rtmw.calib import build_calibration_set, save_calibration_set
from rtmw.data.synthetic import make_dataset
from rtmw.export import ExportResult, export, export_options, get_target, unavailable_reason
from rtmw.host import cpu_fingerprint, describe
from rtmw.keypoints import PARTS
from rtmw.models import DEMO_3D_NAME, DEMO_NAME, demo_checkpoint
from rtmw.schemas import Status
from rtmw.workflows.demo_policies import (
    demo_int8_label,
    demo_int8_settings,
    int8_targets_here,
    run_policy_search,
)
from rtmw.workflows.detector_demo import run_detector_stage
from rtmw.workflows.frames_demo import (
    best_int8_detector,
    best_int8_pose,
    frames_summary,
    run_frames_stage,
)
from rtmw.workflows.gate import gate_results

logger = logging.getLogger(__name__)
Say = Callable[[str], None]

DEMO_TARGETS = (
    "onnx", "onnx-fp16", "ort-int8",
    "openvino-fp32", "openvino-fp16", "openvino-bf16", "openvino-int8",
    "ncnn-fp32", "ncnn-fp16", "ncnn-int8",
    "litert-fp32", "litert-fp16", "litert-int8",  # skipped (exit 3) without rtmw[litert]
    "executorch-fp32", "executorch-int8",  # and without rtmw[executorch]
    "trt-fp16", "trt-int8",
    "torch",
)  # fmt: skip
# `make demo`: what shows the product in minutes — the FP32 reference, the INT8 route of
# each x86 CPU runtime family, one FP16 (ncnn's: activations in fp16 storage, f32
# arithmetic on x86, as its adapter reads back), and
# bf16 where the CPU has it natively. LiteRT and ExecuTorch (phone runtimes, the slowest
# INT8 exports: 45 and 80 s), the other FP16 routes, TensorRT's ONNX and torch are in
# `make demo-full` (rtmw-demo --all).
QUICK_TARGETS = (
    "onnx", "ort-int8", "openvino-int8", "ncnn-int8", "ncnn-fp16", "openvino-bf16",
)  # fmt: skip
TRAIN_SEED, VAL_SEED = 101, 202  # not the training run's seeds: held-out figures
# INT8 policies: each target's, as `rtmw-demo --search-int8` chose them on held-out images
# of their own (rtmw/workflows/demo_int8_policies.json, results/policy-search/): the
# fastest policy that keeps every part within the default budgets


@dataclass(frozen=True)
class DemoSettings:
    # 200: on 60 one keypoint crossing an OKS threshold moves a part's AP by ~0.35, more
    # than the FP16 budget (0.2) allows
    val_images: int = 200
    calib_images: int = 120
    calib_n: int = 128
    batches: tuple[int, ...] = (1, 8)
    # timing seconds per repeat; None: 0.5 for the quick set (it must fit in minutes), 1.0
    # for --all
    seconds: float | None = None
    calib_seed: int = 0
    # the RTMW3D demo: the 3D demo model on synthetic 3D figures (MPJPE per part, 3D gate)
    three_d: bool = False
    # every target (DEMO_TARGETS) instead of the quick representative set (QUICK_TARGETS)
    full: bool = False

    @property
    def model(self) -> str:
        return DEMO_3D_NAME if self.three_d else DEMO_NAME

    @property
    def timing_seconds(self) -> float:
        return self.seconds if self.seconds is not None else (1.0 if self.full else 0.5)

    @property
    def targets(self) -> tuple[str, ...]:
        return DEMO_TARGETS if self.full else QUICK_TARGETS


def targets_for_this_host(say: Say, wanted: tuple[str, ...] = DEMO_TARGETS) -> list[str]:
    """The demo's targets this host can run; those it cannot (bf16 without native bf16)
    are left out, saying why."""
    targets = []
    for name in wanted:
        reason = unavailable_reason(get_target(name))
        if reason is None:
            targets.append(name)
        else:
            say(f"  not on this CPU: {name}: {reason}")
    return targets


def _write_gate(out: Path, verdict: GateResult, calib_seed: int) -> str:
    text = markdown(verdict)
    (out / "gate.md").write_text(text)
    (out / "gate.junit.xml").write_text(junit_xml(verdict))
    record = {"passed": verdict.passed, "hosts": verdict.hosts, "calib_seed": calib_seed,
              "checks": [asdict(c) for c in verdict.checks]}  # fmt: skip
    (out / "gate.json").write_text(json.dumps(record, indent=1) + "\n")
    return text


def _failures(made: list[ExportResult], run: ResultsDocument) -> list[str]:
    """A target this machine should build that did not is a failure of the demo; TensorRT
    without TensorRT (onnx-only, exit 3) and missing extras (skipped) are not."""
    return [f"{r.target} (export {r.status}: {r.reason})" for r in made
            if r.status == Status.FAILED] + [
        f"{e.name} (bench {e.status}: {e.reason})" for e in run.entries if not e.ok
    ]  # fmt: skip


def run_demo(out: Path, settings: DemoSettings = DemoSettings(), *, say: Say = print) -> int:
    """0: every target built and ran and the gate passed; 1: the gate failed; 2: a target
    this machine should build did not build or run."""
    start = time.perf_counter()
    say(f"CPU: {describe(cpu_fingerprint())}")
    kind = "3D " if settings.three_d else ""
    say(f"== synthetic {kind}data: {settings.calib_images} calibration images, "
        f"{settings.val_images} validation images")  # fmt: skip
    depth = settings.three_d
    train = make_dataset(out / "data", settings.calib_images, TRAIN_SEED, split="train",
                         depth=depth)  # fmt: skip
    val = make_dataset(out / "data", settings.val_images, VAL_SEED, split="val", depth=depth)

    say(f"== calibration set: {settings.calib_n} person crops from the training split "
        f"(seed {settings.calib_seed})")  # fmt: skip
    calib = build_calibration_set(train.image_dir, input_size=(192, 256), ann_file=train.ann_file,
                                  n=settings.calib_n, seed=settings.calib_seed)  # fmt: skip
    calib_path = save_calibration_set(calib, out / "calib.npz")

    targets = targets_for_this_host(say, settings.targets)
    checkpoint = demo_checkpoint(settings.model)
    int8 = [t for t in targets if get_target(t).precision == "int8"]
    say(f"== export {settings.model} to {len(targets)} targets (INT8 policies, searched: "
        + "; ".join(f"{t}: {demo_int8_label(checkpoint, t)}" for t in int8) + ")")  # fmt: skip
    artifacts = out / "artifacts"
    by_policy: dict[str, list[str]] = {}
    for target in targets:
        chosen = demo_int8_settings(checkpoint, target, say) if target in int8 else {}
        by_policy.setdefault(json.dumps(chosen, sort_keys=True), []).append(target)
    made = [
        result
        for chosen, group in by_policy.items()
        for result in export(checkpoint, group, artifacts, overwrite=True, progress=True,
                             calib=calib_path, options=export_options(**json.loads(chosen)))
    ]  # fmt: skip
    made.sort(key=lambda r: targets.index(r.target) if r.target in targets else len(targets))
    for result in made:
        say("  " + result.line())
    paths = [r.path for r in made if r.path is not None]

    say(f"== benchmark {len(paths)} artifacts (batch {settings.batches}), accuracy on "
        f"{settings.val_images} images")  # fmt: skip
    bench_settings = BenchSettings(
        batches=settings.batches, threads=None,
        plan=TimingPlan(warmup_s=0.5, seconds=settings.timing_seconds, repeats=3),
        image_dir=str(val.image_dir), ann_file=str(val.ann_file),
        reference=str(artifacts / "onnx"), draw=3,
        isolate=True,  # each row's speed and peak RSS from a process of its own
    )  # fmt: skip
    run = bench(list(paths), bench_settings, out, name="demo-3d" if depth else "demo")

    say("== gate FP16 and INT8 artifacts against FP32 (onnx)")
    verdict = gate_results(out / "results.json", out / "results.json")
    gate_text = _write_gate(out, verdict, settings.calib_seed)
    report = out / "index.html"
    render([run], out, verdict)  # results.md and index.html again, with the gate's verdicts
    failures = _failures(made, run)
    detector_lines: list[str] = []
    reference = run.entry("onnx")
    if not depth and reference is not None and reference.ok:
        gt_ap = {part: reference.ap(part) or 0.0 for part in PARTS}
        det_made, det_run, record = run_detector_stage(
            out, train, val, artifacts / "onnx", gt_ap, bench_settings, full=settings.full,
            calib_seed=settings.calib_seed, say=say,
        )  # fmt: skip
        failures += [f"detector {f}" for f in _failures(det_made, det_run)]
        detector_lines = detector_summary(record)
        det_folder = out / "detector" / "artifacts"
        int8_det, int8_pose = best_int8_detector(det_run), best_int8_pose(run, verdict)
        detectors = {
            "fp32": det_folder / "onnx",
            **({"int8": det_folder / int8_det} if int8_det else {}),
        }
        poses = {
            "fp32": artifacts / "onnx",
            **({"int8": artifacts / int8_pose} if int8_pose else {}),
        }
        frame_rows, _ = run_frames_stage(out, detectors, poses, say=say)
        detector_lines += frames_summary(frame_rows)
    not_here = len(settings.targets) - len(targets)
    summary = plain_summary(
        run, verdict, failures=failures, not_here=not_here,
        minutes=(time.perf_counter() - start) / 60, full=settings.full,
    )  # fmt: skip
    logger.info("gate:\n%s", gate_text)
    say("")
    say(compact_markdown(run, verdict, with_notes=False).rstrip())
    say("")
    for line in [*detector_lines, *summary]:
        say(line)
    say(f"report: {report} (open it in a browser); table {out / 'results.md'}; "
        f"gate {out / 'gate.md'}")  # fmt: skip
    if failures:
        return 2
    return 0 if verdict.passed else 1


def search_demo_policies(
    out: Path, *, images: int = 200, seconds: float = 900.0, targets: list[str] | None = None,
    say: Say = print,
) -> int:  # fmt: skip
    """``rtmw-demo --search-int8``: every INT8 target's policy searched on the demo model
    (the demo's calibration set, a held-out synthetic set of its own); 0 when every
    searched target found one, 1 otherwise."""
    from rtmw.workflows.demo_policies import SEARCH_SEED

    settings = DemoSettings()
    say(f"CPU: {describe(cpu_fingerprint())}")
    train = make_dataset(out / "data", settings.calib_images, TRAIN_SEED, split="train")
    held_out = make_dataset(out / "data", images, SEARCH_SEED, split="search")
    calib = build_calibration_set(train.image_dir, input_size=(192, 256), ann_file=train.ann_file,
                                  n=settings.calib_n, seed=settings.calib_seed)  # fmt: skip
    calib_path = save_calibration_set(calib, out / "calib.npz")
    wanted = targets or int8_targets_here(say)
    results = run_policy_search(out, calib_path, held_out, seconds=seconds, targets=wanted,
                                say=say)  # fmt: skip
    say(f"summary: {out / 'summary.md'}; chosen policies: {out / 'chosen.json'}")
    return 0 if len(results) == len(wanted) and all(r.chosen for r in results) else 1


def detector_summary(record: dict[str, Any]) -> list[str]:
    """One line per detector artifact: its box AP and what its boxes cost the pose."""
    gt = record["gt_boxes"]["wholebody"]
    lines = []
    for name, parts in record["detector_boxes"].items():
        box = record["box_ap"].get(name) or {}
        lines.append(
            f"person detector {name}: box AP {100 * box.get('ap', 0):.1f} (AP50 "
            f"{100 * box.get('ap50', 0):.1f}); pose whole-body AP on its boxes "
            f"{100 * parts['wholebody']:.1f} vs {100 * gt:.1f} on ground-truth boxes "
            "(detector.md)"
        )
    return lines


def plain_summary(
    run: ResultsDocument, verdict: GateResult, *, failures: list[str], not_here: int,
    minutes: float, full: bool,
) -> list[str]:  # fmt: skip
    """The demo's last lines: what ran, what passed, what failed and why, in words."""
    entries = [e for e in run.entries if e.ok]
    lines = [
        f"done in {minutes:.1f} min: {len(entries)} artifacts exported, verified against torch "
        f"and benchmarked" + (f"; {not_here} target(s) not on this CPU" if not_here else "")
    ]
    fastest = fastest_passing(run, verdict)
    if fastest is not None:
        lines.append(fastest)
    failed_checks = [c for c in verdict.checks if not c.passed]
    candidates = sorted({c.candidate for c in verdict.checks})
    if not failed_checks:
        lines.append(
            f"gate: PASS — all {len(verdict.checks)} checks of {len(candidates)} FP16/bf16/INT8 "
            "artifacts are within their budgets against FP32 (docs/gates.md)"
        )
    else:
        caught = sorted({c.candidate for c in failed_checks})
        lines.append(
            f"gate: the gate caught {len(failed_checks)} regression(s) in "
            f"{', '.join(caught)} — this is the gate doing its job; those artifacts should not "
            "ship under the default budgets:"
        )
        lines.extend(f"  - {explain_check(c)}" for c in failed_checks)
    if failures:
        lines.append("FAILED: a target this machine should build did not build or run: "
                     + "; ".join(failures))  # fmt: skip
    else:
        lines.append(
            "exit status 0: the demo ran end to end (the gate's verdict is one of its results; "
            "`rtmw-bench gate` exits 1 on a failed check)"
        )
    if not full:
        lines.append("this was the quick set; `make demo-full` (rtmw-demo --all) runs every "
                     "target, LiteRT and ExecuTorch included (~18 min)")  # fmt: skip
    return lines
