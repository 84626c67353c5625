"""The one-shot gate as a Python call: export → (calibrated) INT8 → bench → gate.

``rtmw-bench gate CHECKPOINT --targets …`` is a thin wrapper over :func:`one_shot_gate`;
a Python user gets the same verdict without click:

    from rtmw.workflows import one_shot_gate
    run = one_shot_gate("rtmw-m.pth", ["ort-int8"], out="results/gate", calib="calib.npz",
                        image_dir="val2017", ann_file="coco_wholebody_val_v1.0.json")
    assert run.result.passed, run.markdown
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtmw.bench.entry import as_document
from rtmw.bench.gate import Check, GateResult, gate, load_budgets, markdown
from rtmw.bench.report import load_results
from rtmw.bench.run import BenchSettings, bench
from rtmw.bench.timing import TimingPlan
from rtmw.calib.calibset import CalibrationSet
from rtmw.errors import InputError, NothingToGate, RtmwError
from rtmw.export import ExportResult, expand_targets, export
from rtmw.schemas import Status

logger = logging.getLogger(__name__)
Say = Callable[[str], None]

# the one-shot gate judges accuracy; speed is measured briefly (batch 1) for the record
GATE_TIMING = TimingPlan(warmup_s=0.2, seconds=0.5, repeats=1)


@dataclass
class GateRun:
    """The verdict, and where its evidence lies."""

    result: GateResult
    exports: list[ExportResult] = field(default_factory=list)
    results_file: Path | None = None

    @property
    def markdown(self) -> str:
        return markdown(self.result)


def gate_results(
    reference: str | Path | dict[str, Any],
    candidate: str | Path | dict[str, Any],
    *,
    budgets: str | Path | dict[str, Any] | None = None,
    reference_entry: str | None = None,
    candidates: Sequence[str] | None = None,
    allow_cross_host: bool = False,
    extra_checks: Sequence[Check] = (),
) -> GateResult:
    """Gate two results files (or loaded runs); ``extra_checks`` join the verdict (failed
    exports, in the one-shot form), and count even when nothing else could be gated."""
    table = budgets if isinstance(budgets, dict) else load_budgets(budgets)
    ref = as_document(reference) if isinstance(reference, dict) else load_results(reference)
    cand = as_document(candidate) if isinstance(candidate, dict) else load_results(candidate)
    try:
        result = gate(ref, cand, table, reference_entry=reference_entry,
                      candidates=list(candidates) if candidates else None,
                      allow_cross_host=allow_cross_host)  # fmt: skip
    except NothingToGate:
        if not extra_checks:
            raise
        result = GateResult()  # every requested target failed to export
    result.checks.extend(extra_checks)
    return result


def export_failures(made: Sequence[ExportResult], *, allow_onnx_only: bool) -> list[Check]:
    """A requested target that did not export is a failed check: the gate fails closed
    instead of judging only what happened to build. A TensorRT target built as its ONNX
    stand-in is not the engine that would ship: not gated unless explicitly accepted."""
    failures = [
        Check(r.target, "all", "export", None, None, False, f"export {r.status}: {r.reason}")
        for r in made
        if r.status not in (Status.OK, Status.ONNX_ONLY)
    ]
    if not allow_onnx_only:
        failures += [
            Check(r.target, "all", "export", None, None, False,
                  "not gated: only its ONNX stand-in was built (TensorRT absent); build the "
                  "engine on the target, or pass --allow-onnx-only to gate the stand-in")
            for r in made
            if r.status == Status.ONNX_ONLY
        ]  # fmt: skip
    return failures


def export_for_bench(
    inputs: Sequence[str | Path], targets: str | Sequence[str], out: Path, *, progress: bool = True
) -> list[Path]:
    """``rtmw-bench CHECKPOINT --targets ...``: export the one checkpoint given to every
    target (over what ``out`` held) and return the folders that exported, to bench next."""
    if len(inputs) != 1 or not Path(inputs[0]).is_file():
        raise InputError("--targets needs exactly one checkpoint file as input")
    made = export(inputs[0], expand_targets(targets), out, overwrite=True, progress=progress)
    return [r.path for r in made if r.path is not None and r.status == Status.OK]


def one_shot_gate(
    checkpoint: str | Path,
    targets: str | Sequence[str],
    *,
    out: str | Path,
    image_dir: str | Path,
    ann_file: str | Path,
    det_file: str | Path | None = None,
    limit: int | None = None,
    calib: str | Path | CalibrationSet | None = None,
    int8_policy: str = "head-fp32",
    budgets: str | Path | dict[str, Any] | None = None,
    allow_onnx_only: bool = False,
    allow_cross_host: bool = False,
    reference_entry: str | None = None,
    candidates: Sequence[str] | None = None,
    say: Say = logger.info,
) -> GateRun:
    """Export the FP32 reference (onnx) and ``targets``, bench them all with fidelity on
    the given data, and gate every target against the reference."""
    table = budgets if isinstance(budgets, dict) else load_budgets(budgets)  # before any work
    work = Path(out)
    names = ["onnx", *[t for t in expand_targets(targets) if t != "onnx"]]
    made = export(checkpoint, names, work / "artifacts", overwrite=True, progress=True,
                  calib=calib, int8_policy=int8_policy)  # fmt: skip
    for result in made:
        say(result.line())
    if not any(r.target == "onnx" and r.status == Status.OK for r in made):
        raise RtmwError("the FP32 reference (onnx) could not be exported; nothing to gate against")
    gated = [r.path for r in made if r.path is not None
             and (r.status == Status.OK or allow_onnx_only)]  # fmt: skip
    settings = BenchSettings(
        batches=(1,), plan=GATE_TIMING, image_dir=str(image_dir), ann_file=str(ann_file),
        det_file=None if det_file is None else str(det_file), limit=limit,
        reference=str(work / "artifacts" / "onnx"), draw=0,
    )  # fmt: skip
    bench(list(gated), settings, work / "bench", name="gate")
    results_file = work / "bench" / "results.json"
    failures = export_failures(made, allow_onnx_only=allow_onnx_only)
    verdict = gate_results(
        results_file, results_file, budgets=table, allow_cross_host=allow_cross_host,
        reference_entry=reference_entry, candidates=candidates, extra_checks=failures,
    )  # fmt: skip
    return GateRun(verdict, made, results_file)
