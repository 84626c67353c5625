"""The compact table: the columns a reader wants first — which route is fastest at equal
accuracy, and did it pass — one row per artifact, fastest first. The full table stays in
results.md below it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rtmw.bench.entry import BenchEntry, ResultsDocument, as_document, as_entry
from rtmw.bench.gate import GateResult, verdicts_by_candidate

PART_COLUMNS = ("body", "foot", "face", "lefthand", "righthand", "wholebody")
PART_LABELS = {"lefthand": "l-hand", "righthand": "r-hand", "wholebody": "whole"}
COMPACT_HEADER = [
    "Route", "Precision", "persons/s", "× baseline", "Size MB", "AP whole-body",
    "Worst part Δ AP", "Gate",
]  # fmt: skip


def best_e2e(entry: BenchEntry) -> tuple[str | None, float | None]:
    """(batch, persons/s) of the row's fastest end-to-end figure."""
    if not entry.frame_batches:
        return None, None
    batch = max(entry.frame_batches, key=lambda b: entry.persons_per_s(b) or 0.0)
    return str(batch), entry.persons_per_s(batch)


def worst_part(entry: BenchEntry) -> tuple[str, float] | None:
    """The part that lost the most AP against the reference (AP points, negative = lost)."""
    parts = (entry.fidelity or {}).get("parts") or {}
    deltas = [(p, 100.0 * float(f["ap_delta"])) for p, f in parts.items()
              if p != "wholebody" and (f or {}).get("ap_delta") is not None]  # fmt: skip
    return min(deltas, key=lambda item: item[1]) if deltas else None


def ap_points(entry: Mapping[str, Any], part: str) -> float | None:
    """A row's AP for ``part`` in points (0–100), None where it has none."""
    value = as_entry(entry).ap(part)
    return None if value is None else 100.0 * value


def reference_entry(results: ResultsDocument) -> BenchEntry | None:
    """The row the run's fidelity figures were measured against (``--reference``)."""
    results = as_document(results)
    return results.entry(results.reference) if results.reference else None


def compact_rows(results: ResultsDocument, gate: GateResult | None = None) -> list[list[str]]:
    verdicts = verdicts_by_candidate(gate)
    results = as_document(results)
    reference = reference_entry(results)
    rows: list[tuple[float, list[str]]] = []
    for entry in results.entries:
        if entry.task == "detect":  # detectors have a table of their own (results.md)
            continue
        name = entry.route
        if not entry.ok:
            rows.append((-1.0, [name, entry.get("precision", "–"),
                                f"{entry.status}: {entry.reason}",
                                "–", "–", "–", "–", "–"]))  # fmt: skip
            continue
        batch, speed = best_e2e(entry)
        ratio = entry.speedup(batch) if batch else None
        worst = worst_part(entry)
        is_reference = entry is reference
        worst_text = ("reference" if is_reference and worst is not None and worst[1] == 0
                      else f"{worst[1]:+.2f} {PART_LABELS.get(worst[0], worst[0])}"
                      if worst is not None else "–")  # fmt: skip
        ap = ap_points(entry, "wholebody")
        rows.append((speed or 0.0, [
            name, entry.get("precision", "–"),
            f"{speed:.1f} (batch {batch})" if speed is not None else "–",
            f"{ratio:.2f}×" if ratio is not None else "–",
            f"{entry.size_mb:.1f}" if entry.size_mb is not None else "–",
            f"{ap:.1f}" if ap is not None else
            (str(entry.verification) if entry.latency_only else "–"),
            worst_text,
            verdicts.get(entry.name, "reference" if is_reference else "–"),
        ]))  # fmt: skip
    rows.sort(key=lambda item: -item[0])
    return [row for _, row in rows]


def compact_markdown(
    results: ResultsDocument, gate: GateResult | None = None, *, with_notes: bool = True
) -> str:
    from rtmw.markdown import table

    lines = table(COMPACT_HEADER, compact_rows(results, gate))
    if with_notes:
        lines += ["", compact_note(results)]
    return "\n".join(lines) + "\n"


def compact_note(results: ResultsDocument) -> str:
    """What the compact table's columns mean, with this run's baseline figure."""
    baseline = as_document(results).baseline or {}
    return (
        "persons/s: one multi-person frame end to end (crop, inference with flip test, "
        "decode) at the row's best batch; × baseline: over "
        + (f"{baseline['description']} ({baseline['persons_per_s']:.1f} persons/s)"
           if baseline else "the baseline (not measured in this run)")
        + "; worst part Δ AP: the part (of body, foot, face, hands) that lost the most AP "
        "against the FP32 reference; gate: the accuracy gate's verdict (docs/gates.md)."
    )  # fmt: skip


def fastest_passing(results: ResultsDocument, gate: GateResult) -> str | None:
    """'fastest route that passed the gate: …' in words, or None when none passed."""
    verdicts = verdicts_by_candidate(gate)
    results = as_document(results)
    passed = [e for e in results.entries
              if e.ok and e.task == "pose" and verdicts.get(e.name) == "PASS"]  # fmt: skip
    if not passed:
        return None
    best = max(passed, key=lambda e: best_e2e(e)[1] or 0.0)
    batch, speed = best_e2e(best)
    if speed is None:
        return None
    ratio = best.speedup(batch) if batch else None
    reference = reference_entry(results)
    ap = ap_points(best, "wholebody")
    ref_ap = ap_points(reference, "wholebody") if reference else None
    return (
        f"fastest route that passed the gate: {best.route} "
        f"({best.precision}), {speed:.1f} persons/s end to end"
        + (f", {ratio:.2f}× the one-crop onnxruntime FP32 baseline" if ratio else "")
        + (f"; whole-body AP {ap:.1f} vs {ref_ap:.1f} in FP32" if ap is not None
           and ref_ap is not None else "")
    )  # fmt: skip


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


DETECTOR_HEADER = [
    "Detector", "Precision", "Model", "model ms (1 frame)", "frame ms p50",
    "letterbox / infer / decode ms", "frames/s", "Size MB", "box AP", "AP50",
    "detections (--dets)",
]  # fmt: skip
DETECTOR_NOTE = (
    "Person detector rows: one frame end to end is mmdet's letterbox, the model and the "
    "decode (score_thr 0.001, NMS 0.65, 300 boxes), before any pose crop; box AP is COCO's "
    "person box AP on the evaluation images (the detections file scores the pose model "
    "with detector boxes through --dets)."
)


def detector_rows(results_list: Sequence[ResultsDocument]) -> list[list[str]]:
    """Person detector rows: what a frame costs before any pose crop, and its box AP."""
    rows = []
    for results in results_list:
        for entry in as_document(results).entries:
            if entry.task != "detect" or not entry.ok:
                continue
            frame = entry.get("detect_frame") or {}
            stages = frame.get("stages_p50_ms") or {}
            one = entry.latency(1) or {}
            det = entry.detection or {}
            rows.append([
                entry.route, entry.precision, str(entry.get("model", "")),
                _num(one.get("p50"), 2), _num((frame.get("e2e") or {}).get("p50"), 2),
                " / ".join(_num(stages.get(k), 2) for k in ("letterbox", "inference", "decode")),
                _num(entry.frames_per_s), _num(entry.size_mb),
                _num(100 * det["ap"]) if "ap" in det else "–",
                _num(100 * det["ap50"]) if "ap50" in det else "–",
                str(det.get("detections", "–")),
            ])  # fmt: skip
    return rows
