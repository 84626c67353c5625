"""Accuracy-regression gates: a quantised artifact against its own FP32 reference.

Budgets (``gates.toml``): AP drop per part in AP points, decoded-keypoint error p95 per
part in image pixels (from the bench's fidelity figures, judged only over at least
``px_min_keypoints`` keypoints), optionally a minimum speed ratio. Results measured on
different ISA classes (rtmw.host) are not compared unless ``allow_cross_host``.
Every check fails closed: a missing part, a missing metric, a NaN, or a reference
from another model, input size, dataset, box source or flip setting is a failure
with its reason, never a pass. AP deltas come with an interval from paired
half-sample resampling over images; a budget applies to the point estimate or to the
interval's pessimistic bound (``apply_to``).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from rtmw.bench.entry import BenchEntry, ResultsDocument, as_document, as_entry
from rtmw.errors import CrossHost, GateConfigError, NothingToGate
from rtmw.keypoints import PARTS
from rtmw.schemas import VerificationMode

DEFAULT_BUDGETS_FILE = Path(__file__).with_name("gates.toml")
APPLY_TO = ("point", "interval")


@dataclass(frozen=True)
class Budget:
    ap_drop: dict[str, float]  # AP points
    px_p95: dict[str, float]  # image pixels
    min_speed_ratio: float | None
    apply_to: str
    confidence: float
    resamples: int
    px_min_keypoints: int = 100
    # RTMW3D: millimetres a part's root-aligned MPJPE / PA-MPJPE may grow over the
    # reference's; None where the budgets file has no 3D tables (3D entries then fail)
    mpjpe_rise: dict[str, float] | None = None
    pa_mpjpe_rise: dict[str, float] | None = None


BUDGET_KEYS = {"ap_drop", "px_p95", "min_speed_ratio", "apply_to", "confidence", "resamples",
               "px_min_keypoints", "mpjpe_rise", "pa_mpjpe_rise"}  # fmt: skip
PART_TABLES = ("ap_drop", "px_p95")
PART_TABLES_3D = ("mpjpe_rise", "pa_mpjpe_rise")  # optional; complete when present


@dataclass
class Check:
    candidate: str
    part: str
    metric: str  # "ap_drop" | "px_p95" | "speed_ratio" | "compatibility" | "status"
    value: float | None
    budget: float | None
    passed: bool
    detail: str = ""
    # an AP drop's confidence interval in drop terms (best, worst), where one was computed
    interval: tuple[float, float] | None = None


@dataclass
class GateResult:
    checks: list[Check] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)  # where reference and candidate ran

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)


def load_budgets(path: str | Path | None = None) -> dict[str, Any]:
    from rtmw.schemas import read_toml

    path = Path(path) if path is not None else DEFAULT_BUDGETS_FILE
    data = read_toml(path, "budgets", GateConfigError)
    _check_keys(data, path)
    return data


def _check_keys(data: dict[str, Any], path: Path) -> None:
    """Unknown tables, keys or parts are refused: a typo must never loosen a budget."""
    from rtmw.schemas import GATES

    problems = GATES.problems(data)
    if problems.wrong_tag:
        raise GateConfigError(f"{path}: unknown budgets schema {problems.found_tag!r}")
    if problems.missing:
        raise GateConfigError(f"{path}: needs a [defaults] table")
    if problems.unknown:
        raise GateConfigError(f"{path}: unknown table(s) {sorted(problems.unknown)}")
    layers = [("defaults", data["defaults"])]
    for group in ("precision", "target"):
        if not isinstance(data.get(group, {}), dict):
            raise GateConfigError(f"{path}: [{group}] must be a table of tables")
        layers += [(f"{group}.{k}", v) for k, v in data.get(group, {}).items()]
    from rtmw.runtimes.precision import PRECISIONS

    unknown_precisions = set(data.get("precision", {})) - set(PRECISIONS)
    if unknown_precisions:
        raise GateConfigError(f"{path}: unknown precision table(s) {sorted(unknown_precisions)}")
    for name, layer in layers:
        if not isinstance(layer, dict):
            raise GateConfigError(f"{path}: [{name}] must be a table")
        unknown = set(layer) - BUDGET_KEYS
        if unknown:
            hint = " (px_p99 is now px_p95)" if "px_p99" in unknown else ""
            raise GateConfigError(f"{path}: [{name}] has unknown key(s) {sorted(unknown)}{hint}")
        for table in (*PART_TABLES, *PART_TABLES_3D):
            if table in layer:
                bad = set(layer[table]) - set(PARTS)
                if bad:
                    raise GateConfigError(
                        f"{path}: [{name}] {table} has unknown part(s) {sorted(bad)}"
                    )


def budget_for(budgets: dict[str, Any], target: str, precision: str) -> Budget:
    """defaults ← precision.<p> ← target.<t>, table by table."""
    merged: dict[str, Any] = {}
    layers = [
        budgets.get("defaults", {}),
        budgets.get("precision", {}).get(precision, {}),
        budgets.get("target", {}).get(target, {}),
    ]
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    for key in PART_TABLES:
        table = merged.get(key, {})
        missing = [p for p in PARTS if p not in table]
        if missing:
            raise GateConfigError(f"budget {key} for {target} lacks parts: {', '.join(missing)}")
    for key in PART_TABLES_3D:
        table = merged.get(key)
        missing = [p for p in PARTS if table is not None and p not in table]
        if missing:
            raise GateConfigError(f"budget {key} for {target} lacks parts: {', '.join(missing)}")
    try:
        return _budget(merged)
    except (TypeError, ValueError) as exc:
        raise GateConfigError(
            f"budget for {target}: every budget must be a number ({exc})"
        ) from None


def _budget(merged: dict[str, Any]) -> Budget:
    apply_to = str(merged.get("apply_to", "point"))
    if apply_to not in APPLY_TO:
        raise GateConfigError(f"apply_to must be one of {APPLY_TO}, got {apply_to!r}")
    ratio = merged.get("min_speed_ratio")
    three_d = {
        key: {p: float(merged[key][p]) for p in PARTS} if key in merged else None
        for key in PART_TABLES_3D
    }
    return Budget(
        ap_drop={p: float(merged["ap_drop"][p]) for p in PARTS},
        px_p95={p: float(merged["px_p95"][p]) for p in PARTS},
        min_speed_ratio=None if ratio is None else float(ratio),
        apply_to=apply_to,
        confidence=float(merged.get("confidence", 0.95)),
        resamples=int(merged.get("resamples", 200)),
        px_min_keypoints=int(merged.get("px_min_keypoints", 100)),
        mpjpe_rise=three_d["mpjpe_rise"],
        pa_mpjpe_rise=three_d["pa_mpjpe_rise"],
    )


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and math.isfinite(float(value))


def _compatibility(ref_run: ResultsDocument, cand_run: ResultsDocument, ref: BenchEntry,
                   cand: BenchEntry) -> list[str]:  # fmt: skip
    """Reasons the two cannot be compared; empty when they can."""
    reasons = []
    if ref.get("model") != cand.get("model"):
        reasons.append(f"reference model {ref.get('model')} ≠ candidate {cand.get('model')}")
    if ref.get("source_sha256") and cand.get("source_sha256") != ref.get("source_sha256"):
        reasons.append("reference and candidate come from different checkpoints")
    if ref.get("input_size") != cand.get("input_size"):
        reasons.append(f"input size {ref.get('input_size')} ≠ {cand.get('input_size')}")
    ref_data = ref_run.settings.get("data") or {}
    cand_data = cand_run.settings.get("data") or {}
    if not ref_data or not cand_data:
        reasons.append("a run has no accuracy data")
    else:
        for key in ("ann_sha256", "box_source", "image_ids"):
            if ref_data.get(key) != cand_data.get(key):
                reasons.append(f"evaluated on different data ({key} differs)")
    if ref_run.settings.get("flip") != cand_run.settings.get("flip"):
        reasons.append("flip test differs between the runs")
    return reasons


def _load_predictions(run: ResultsDocument, entry: BenchEntry) -> Path | None:
    rel = entry.get("predictions")
    if not rel or run.path is None:
        return None
    path = Path(run.path).parent / rel
    return path if path.is_file() else None


def _intervals(
    ref_run: ResultsDocument, cand_run: ResultsDocument, ref: BenchEntry,
    cand: BenchEntry, budget: Budget,
) -> tuple[dict[str, tuple[float, float]] | None, str]:  # fmt: skip
    from rtmw.data.evaluation import resampled_ap_deltas

    data = ref_run.settings.get("data") or {}
    ann = data.get("ann_file")
    ref_pred, cand_pred = _load_predictions(ref_run, ref), _load_predictions(cand_run, cand)
    if not ann or not Path(ann).is_file():
        return None, f"annotation file {ann!r} not available for resampling"
    if ref_pred is None or cand_pred is None:
        return None, "predictions of a run are missing (bench output incomplete)"
    deltas = resampled_ap_deltas(
        ann, cand_pred, ref_pred, data["image_ids"], resamples=budget.resamples
    )
    alpha = (1 - budget.confidence) / 2
    intervals = {}
    for part, values in deltas.items():
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            continue
        # centre the half-sample spread on the full-sample delta
        offset = float(np.median(finite))
        lo, hi = np.quantile(finite - offset, [alpha, 1 - alpha])
        intervals[part] = (float(lo), float(hi))
    return intervals, ""


def gate_entry(
    ref_run: ResultsDocument, cand_run: ResultsDocument, ref: BenchEntry,
    cand: BenchEntry, budgets: dict[str, Any],
) -> list[Check]:  # fmt: skip
    ref_run, cand_run = as_document(ref_run), as_document(cand_run)
    ref, cand = as_entry(ref), as_entry(cand)
    name = cand.name
    if not cand.ok:
        reason = f"candidate {cand.status}: {cand.reason}"
        return [Check(name, "all", "status", None, None, False, reason)]
    unjudged = [who for who, entry in (("candidate", cand), ("reference", ref))
                if entry.latency_only]  # fmt: skip
    if unjudged:
        reason = (f"{' and '.join(unjudged)} {VerificationMode.LATENCY_ONLY}: weights not "
                  "judged, nothing to gate")  # fmt: skip
        return [Check(name, "all", "verification", None, None, False, reason)]
    budget = budget_for(budgets, cand.route, cand.get("precision", ""))
    reasons = _compatibility(ref_run, cand_run, ref, cand)
    if reasons:
        return [Check(name, "all", "compatibility", None, None, False, "; ".join(reasons))]
    checks: list[Check] = []
    fid_parts = (cand.fidelity or {}).get("parts") or {}
    intervals: dict[str, tuple[float, float]] | None = None
    interval_note = ""
    if budget.apply_to == "interval" or budget.resamples > 0:
        intervals, interval_note = _intervals(ref_run, cand_run, ref, cand, budget)
    for part in PARTS:
        ref_ap = (ref.part(part) or {}).get("ap")
        cand_ap = (cand.part(part) or {}).get("ap")
        limit = budget.ap_drop[part]
        if not (_finite(ref_ap) and _finite(cand_ap)):
            checks.append(Check(name, part, "ap_drop", None, limit, False,
                                "AP missing or NaN in a run"))  # fmt: skip
        else:
            drop = 100.0 * (float(ref_ap) - float(cand_ap))
            detail = ""
            judged = drop
            span: tuple[float, float] | None = None
            if intervals is not None and part in intervals:
                lo, hi = intervals[part]
                # delta = cand − ref; its interval in drop terms is [−(δ+hi), −(δ+lo)]
                worst = drop - 100.0 * lo
                best = drop - 100.0 * hi
                detail = f"{budget.confidence:.0%} interval of drop [{best:.2f}, {worst:.2f}]"
                span = (best, worst)
                if budget.apply_to == "interval":
                    judged = worst
            if budget.apply_to == "interval" and not detail:
                checks.append(Check(name, part, "ap_drop", drop, limit, False,
                                    f"no interval: {interval_note}"))  # fmt: skip
            else:
                checks.append(Check(name, part, "ap_drop", judged, limit, judged <= limit, detail,
                                    interval=span))  # fmt: skip
        checks.append(_px_check(name, part, fid_parts.get(part) or {}, budget))
    checks.extend(_checks_3d(name, ref, cand, budget))
    if budget.min_speed_ratio is not None:
        ref_speed = _best_speed(ref)
        cand_speed = _best_speed(cand)
        if ref_speed is None or cand_speed is None:
            checks.append(Check(name, "all", "speed_ratio", None, budget.min_speed_ratio, False,
                                "end-to-end speed missing in a run"))  # fmt: skip
        else:
            ratio = cand_speed / ref_speed
            checks.append(Check(name, "all", "speed_ratio", ratio, budget.min_speed_ratio,
                                ratio >= budget.min_speed_ratio))  # fmt: skip
    return checks


def _checks_3d(name: str, ref: BenchEntry, cand: BenchEntry, budget: Budget) -> list[Check]:
    """MPJPE and PA-MPJPE rise per part (mm) when the reference was scored in 3D."""
    ref_3d = (ref.accuracy or {}).get("3d")
    if ref_3d is None:
        return []
    cand_3d = (cand.accuracy or {}).get("3d")
    checks = []
    for metric, key, limits in (
        ("mpjpe_rise", "mpjpe_mm", budget.mpjpe_rise),
        ("pa_mpjpe_rise", "pa_mpjpe_mm", budget.pa_mpjpe_rise),
    ):
        if limits is None:
            reason = f"the reference has 3D figures but the budgets no {metric}"
            checks.append(Check(name, "all", metric, None, None, False, reason))
            continue
        for part in PARTS:
            ref_mm = (ref_3d.get(key) or {}).get(part)
            cand_mm = ((cand_3d or {}).get(key) or {}).get(part)
            if not (_finite(ref_mm) and _finite(cand_mm)):
                checks.append(Check(name, part, metric, None, limits[part], False,
                                    "3D error missing or NaN in a run"))  # fmt: skip
                continue
            rise = float(cand_mm) - float(ref_mm)
            detail = f"{float(cand_mm):.1f} mm vs reference {float(ref_mm):.1f} mm"
            checks.append(Check(name, part, metric, rise, limits[part], rise <= limits[part],
                                detail))  # fmt: skip
    return checks


def _px_check(name: str, part: str, fidelity: dict[str, Any], budget: Budget) -> Check:
    """Keypoint error p95 against its budget, over enough keypoints to be stable."""
    limit = budget.px_p95[part]
    px = fidelity.get("px_p95")
    count = int(fidelity.get("keypoints") or 0)
    if not _finite(px):
        return Check(name, part, "px_p95", None, limit, False,
                     "no keypoint-error p95 (bench with --reference, this rtmw)")  # fmt: skip
    if count < budget.px_min_keypoints:
        detail = (
            f"only {count} keypoints judged (< px_min_keypoints {budget.px_min_keypoints}): "
            "too few for a stable figure; add images"
        )
        return Check(name, part, "px_p95", float(px), limit, False, detail)
    judged = float(px)
    detail = f"n={count}"
    interval = fidelity.get("px_p95_interval")
    if interval and all(_finite(v) for v in interval):
        detail += f", 95% interval [{interval[0]:.2f}, {interval[1]:.2f}]"
        if budget.apply_to == "interval":
            judged = float(interval[1])
    return Check(name, part, "px_p95", judged, limit, judged <= limit, detail)


def check_same_host(ref_run: ResultsDocument, cand_run: ResultsDocument) -> str | None:
    """Why two runs' figures are not comparable across hosts, or None."""
    from rtmw.host import same_isa_class

    ref_cpu = as_document(ref_run).environment.get("cpu", {})
    cand_cpu = as_document(cand_run).environment.get("cpu", {})
    if same_isa_class(ref_cpu, cand_cpu):
        return None
    return (
        f"reference measured on ISA class {ref_cpu.get('isa_class', 'unrecorded')}, candidate "
        f"on {cand_cpu.get('isa_class', 'unrecorded')}: verdicts may change with the CPU; "
        "rerun both on one host, or pass --allow-cross-host"
    )


def _best_speed(entry: BenchEntry) -> float | None:
    speeds = [entry.persons_per_s(batch) for batch in entry.frame_batches]
    finite = [float(s) for s in speeds if _finite(s)]
    return max(finite) if finite else None


def pick_reference(run: ResultsDocument) -> BenchEntry:
    """The FP32 entry of a run: onnx preferred, then any ok FP32 artifact."""
    run = as_document(run)
    fp32 = [e for e in run.entries if e.precision == "fp32" and e.ok and e.task == "pose"]
    if not fp32:
        raise GateConfigError(f"{run.path}: no FP32 entry with status ok to use as reference")
    fp32.sort(key=lambda e: (e.target != "onnx", e.name))
    return fp32[0]


def gate(
    ref_run: ResultsDocument,
    cand_run: ResultsDocument,
    budgets: dict[str, Any],
    *,
    reference_entry: str | None = None,
    candidates: list[str] | None = None,
    allow_cross_host: bool = False,
) -> GateResult:
    ref_run, cand_run = as_document(ref_run), as_document(cand_run)
    cross = check_same_host(ref_run, cand_run)
    if cross is not None and not allow_cross_host:
        raise CrossHost(cross)
    if reference_entry is not None:
        found = ref_run.entry(reference_entry)
        if found is None:
            raise GateConfigError(f"no entry {reference_entry!r} in {ref_run.path}")
        ref = found
    else:
        ref = pick_reference(ref_run)
    if candidates:
        entries = [e for e in cand_run.entries if e.name in candidates]
        missing = set(candidates) - {e.name for e in entries}
        if missing:
            raise GateConfigError(f"no entries {sorted(missing)} in {cand_run.path}")
    else:
        entries = [e for e in cand_run.entries
                   if e.precision != "fp32" and e is not ref and e.task == "pose"]  # fmt: skip
    if not entries:
        raise NothingToGate("nothing to gate: no candidate entries (non-FP32) in the run")
    from rtmw.host import describe

    result = GateResult()
    for run, role in ((ref_run, "reference"), (cand_run, "candidate")):
        cpu = run.environment.get("cpu", {})
        result.hosts.append(f"{role}: {describe(cpu) if 'isa_class' in cpu else 'unrecorded'}")
    if cross is not None:
        result.hosts.append(f"cross-host comparison allowed: {cross.split(':')[0]}")
    for entry in entries:
        result.checks.extend(gate_entry(ref_run, cand_run, ref, entry, budgets))
    return result


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def markdown(result: GateResult) -> str:
    verdict = "PASS" if result.passed else "FAIL"
    from rtmw.markdown import table

    rows = [
        [c.candidate, c.part, c.metric, _fmt(c.value), _fmt(c.budget),
         "pass" if c.passed else "**FAIL**", c.detail]
        for c in result.checks
    ]  # fmt: skip
    header = ["Candidate", "Part", "Metric", "Value", "Budget", "Result", "Detail"]
    lines = [
        f"### rtmw accuracy gate: {verdict}",
        "",
        *(f"- {host}" for host in result.hosts),
        "",
        *table(header, rows),
    ]
    lines.append("")
    lines.append(
        "ap_drop: AP points lost against the FP32 reference (positive = worse); px_p95: "
        "decoded-keypoint error p95 against the reference, image pixels, over the keypoints "
        "the reference places right (labelled, keypoint OKS ≥ 0.5), n of them, with a "
        "bootstrap interval over images."
    )
    return "\n".join(lines) + "\n"


def junit_xml(result: GateResult) -> str:
    suites = ET.Element("testsuites", name="rtmw-gate")
    by_candidate: dict[str, list[Check]] = {}
    for check in result.checks:
        by_candidate.setdefault(check.candidate, []).append(check)
    for candidate, checks in by_candidate.items():
        failures = sum(not c.passed for c in checks)
        suite = ET.SubElement(
            suites, "testsuite", name=candidate, tests=str(len(checks)), failures=str(failures)
        )
        for c in checks:
            case = ET.SubElement(
                suite, "testcase", classname=f"rtmw.gate.{candidate}", name=f"{c.part}.{c.metric}"
            )
            if not c.passed:
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=f"{c.metric} {_fmt(c.value)} vs budget {_fmt(c.budget)} {c.detail}",
                )
                failure.text = c.detail
    return ET.tostring(suites, encoding="unicode", xml_declaration=True)


def write_step_summary(text: str) -> Path | None:
    """Append to $GITHUB_STEP_SUMMARY when running under GitHub Actions."""
    import os

    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a") as handle:
        handle.write(text)
    return path


_METRIC_WORDS = {
    "ap_drop": ("loses", "AP", "budget {budget:.2f} AP points"),
    "px_p95": ("has a keypoint error p95 of", "px", "budget {budget:.1f} px"),
    "mpjpe_rise": ("adds", "mm MPJPE", "budget {budget:.1f} mm"),
    "pa_mpjpe_rise": ("adds", "mm PA-MPJPE", "budget {budget:.1f} mm"),
    "speed_ratio": ("runs at", "× the reference's speed", "floor {budget:.2f}×"),
}


def explain_check(check: Check) -> str:
    """One failed (or passed) check in words: 'ncnn-fp16 loses 0.24 foot AP (budget 0.20
    AP points)'; checks that could not be judged say why."""
    words = _METRIC_WORDS.get(check.metric)
    if words is None or check.value is None or check.budget is None:
        what = f"{check.metric} ({check.part})" if check.part != "all" else check.metric
        return f"{check.candidate}: {what} could not be judged — {check.detail or 'no figure'}"
    verb, unit, budget = words
    part = "" if check.part == "all" else f"{check.part} "
    figure = (f"{check.value:.2f} {part}{unit}" if check.metric == "ap_drop"
              else f"{check.value:.2f} {unit}" + (f" ({check.part})" if part else ""))  # fmt: skip
    detail = f"; {check.detail}" if check.detail else ""
    return f"{check.candidate} {verb} {figure} ({budget.format(budget=check.budget)}{detail})"


def verdicts_by_candidate(result: GateResult | None) -> dict[str, str]:
    """candidate → 'PASS' or 'FAIL (n)': the gate column of the compact table."""
    if result is None:
        return {}
    verdicts: dict[str, str] = {}
    for name in sorted({c.candidate for c in result.checks}):
        failed = sum(not c.passed for c in result.checks if c.candidate == name)
        verdicts[name] = "PASS" if not failed else f"FAIL ({failed})"
    return verdicts
