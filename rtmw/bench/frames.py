"""``rtmw-bench frames``: what a frame costs, per detector route × pose route × loop mode.

A route is one detector artifact, one pose artifact and one :class:`FrameSettings` (det
every N, batched or one crop per call, streamed or not, smoothing). Each runs over the
same video with both runtimes opened through the runtime layer (precision contract, no
silent fallback) and records per-stage p50/p99, frame latency p50/p99, frames/s, and
against ground truth (a synthetic video's annotations) per-part AP, ID switches, IDF1,
MOTA, acceleration error and jitter, raw and smoothed. The budgets of the ``[frames]``
table in gates.toml judge each row, failing closed: a figure a budget names but the row
lacks fails.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rtmw.bench.gate import Check, GateResult, load_budgets
from rtmw.errors import GateConfigError, InputError
from rtmw.host import cpu_fingerprint
from rtmw.markdown import table
from rtmw.pipeline.frames import STAGES, FrameLoop, FrameResult, FrameSettings

logger = logging.getLogger(__name__)
Say = Callable[[str], None]

SCHEMA = "rtmw.frames/1"
# [frames] budget keys: what each judges, and whether the figure must stay below or above
FRAME_BUDGETS = {
    "min_frames_per_s": ("frames_per_s", "floor"),
    "max_latency_p99_ms": ("latency_p99_ms", "ceiling"),
    "max_jitter_px": ("jitter_px", "ceiling"),
    "max_accel_error_px": ("accel_error_px", "ceiling"),
    "max_id_switches": ("id_switches", "ceiling"),
    "min_idf1": ("idf1", "floor"),
    "min_wholebody_ap": ("wholebody_ap", "floor"),
}
FRAME_BUDGETS_BY_METRIC = dict(FRAME_BUDGETS.values())


@dataclass(frozen=True)
class FrameRoute:
    name: str
    detector: Path
    pose: Path
    settings: FrameSettings = field(default_factory=FrameSettings)
    stream: bool = False
    flip: bool = False  # real-time loops do not flip-test; an option for accuracy runs
    # draw skeletons and IDs, encode the annotated video and write the JSON lines (the draw
    # stage); off: the loop an application that consumes keypoints runs
    draw: bool = True


def _write_annotated(
    folder: Path, fps: float
) -> tuple[Callable[[Any, FrameResult], None], Callable[[], None]]:
    from rtmw.pipeline.draw import draw_poses
    from rtmw.pipeline.video import JsonLinesSink, VideoSink

    video, lines = VideoSink(folder / "annotated.mp4", fps), JsonLinesSink(folder / "frames.jsonl")

    def draw(frame: Any, result: FrameResult) -> None:
        labels = [f"#{track_id}" for track_id in result.track_ids.tolist()]
        canvas = draw_poses(
            frame, result.keypoints, result.scores, boxes_xyxy=result.boxes, labels=labels
        )
        video.write(canvas)
        lines.write(result.to_record())

    def close() -> None:
        video.close()
        lines.close()

    return draw, close


def run_route(
    route: FrameRoute,
    video: str | Path,
    *,
    truth: Any | None = None,
    write_to: Path | None = None,
    threads: int | None = None,
    fps: float | None = None,
) -> dict[str, Any]:
    """One route over one video: timings, and the figures against ``truth`` when given."""
    from rtmw import runtimes
    from rtmw.bench.run import detector_spec
    from rtmw.pipeline import TopDown
    from rtmw.pipeline.frames import BoxDetector
    from rtmw.pipeline.video import open_source

    source = open_source(video, fps=fps)
    with (
        runtimes.open(route.detector, threads=threads) as detector,
        runtimes.open(route.pose, threads=threads) as pose_runtime,
    ):
        if detector.artifact.manifest.detector is None:
            raise InputError(f"{route.detector}: not a detector artifact")
        if pose_runtime.artifact.manifest.detector is not None:
            raise InputError(f"{route.pose}: a detector artifact where a pose model belongs")
        pose = TopDown(
            pose_runtime.infer,
            pose_runtime.artifact.manifest.input_size,
            flip_test=route.flip,
            depth=pose_runtime.depth,
        )
        boxes = BoxDetector(detector.infer, detector_spec(detector.artifact))
        loop = FrameLoop(boxes, pose, route.settings, fps=source.fps)
        draw, close = (None, None) if write_to is None else _write_annotated(write_to, source.fps)
        started = time.perf_counter()
        try:
            results = list(loop.run(source, stream=route.stream, draw=draw))
        finally:
            if close is not None:
                close()
        wall = time.perf_counter() - started
        contract = {
            "detector": {"target": detector.artifact.manifest.target, **detector.execution},
            "pose": {"target": pose_runtime.artifact.manifest.target, **pose_runtime.execution},
        }
    record: dict[str, Any] = {
        "route": route.name,
        "detector": str(route.detector),
        "pose": str(route.pose),
        "stream": route.stream,
        "draw": route.draw,
        "flip": route.flip,
        "settings": route.settings.describe(),
        "execution": contract,
        "source": source.description,
        "warnings": source.warnings,
    }
    if not results:
        return record | {"frames": 0, "note": "the source gave no frame: nothing to measure"}
    from rtmw.harness.video import score_video, stage_summary

    record |= stage_summary(results, wall)
    if truth is not None:
        record |= score_video(truth, results)
    return record


def slug(name: str) -> str:
    """A route's name as a folder name: 'FP32 rtmw streamed (onnx + onnx)' → 'fp32-rtmw-…'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "route"


def flat_figures(row: dict[str, Any]) -> dict[str, float]:
    """The figures the [frames] budgets name, read from one row (absent when not measured)."""
    figures: dict[str, float] = {}
    if "frames_per_s" in row:
        figures["frames_per_s"] = float(row["frames_per_s"])
        figures["latency_p99_ms"] = float(row["latency_ms"]["p99"])
    stability = row.get("stability_smoothed") or row.get("stability")
    if stability:
        figures["jitter_px"] = float(stability["jitter_px"])
        figures["accel_error_px"] = float(stability["accel_error_px"])
    if "tracking" in row:
        figures["id_switches"] = float(row["tracking"]["num_switches"])
        figures["idf1"] = float(row["tracking"]["idf1"])
    if "ap" in row:
        figures["wholebody_ap"] = float(row["ap"]["wholebody"])
    return figures


def frame_budgets(budgets: dict[str, Any]) -> dict[str, float]:
    table_ = budgets.get("frames", {})
    if not isinstance(table_, dict):
        raise GateConfigError("[frames] must be a table")
    unknown = set(table_) - set(FRAME_BUDGETS)
    if unknown:
        raise GateConfigError(
            f"[frames] has unknown key(s) {sorted(unknown)}; known: {', '.join(FRAME_BUDGETS)}"
        )
    try:
        return {key: float(value) for key, value in table_.items()}
    except (TypeError, ValueError):
        raise GateConfigError("[frames] budgets must be numbers") from None


def gate_frames(rows: Sequence[dict[str, Any]], budgets: dict[str, float]) -> GateResult:
    """Every row against every [frames] budget; a missing or non-finite figure fails."""
    result = GateResult()
    for row in rows:
        figures = flat_figures(row)
        for key, bound in budgets.items():
            metric, kind = FRAME_BUDGETS[key]
            value = figures.get(metric)
            if value is None or not math.isfinite(value):
                result.checks.append(
                    Check(
                        row["route"],
                        "all",
                        metric,
                        None,
                        bound,
                        False,
                        "not measured in this run: fails closed",
                    )
                )
                continue
            passed = value >= bound if kind == "floor" else value <= bound
            result.checks.append(Check(row["route"], "all", metric, value, bound, passed, kind))
    return result


def gate_markdown(verdict: GateResult) -> str:
    """The [frames] verdict: one row per route, one column per budget."""
    metrics = list(dict.fromkeys(c.metric for c in verdict.checks))
    bounds = {c.metric: (c.budget, c.detail) for c in verdict.checks}
    header = ["Route"] + [
        f"{m} {'≥' if FRAME_BUDGETS_BY_METRIC[m] == 'floor' else '≤'} {bounds[m][0]:g}"
        for m in metrics
    ]
    rows = []
    for route in dict.fromkeys(c.candidate for c in verdict.checks):
        cells = {c.metric: c for c in verdict.checks if c.candidate == route}
        rows.append(
            [route]
            + [
                ("–" if cells[m].value is None else f"{cells[m].value:.2f}")
                + ("" if cells[m].passed else " **FAIL**")
                for m in metrics
            ]
        )
    state = "PASS" if verdict.passed else "FAIL"
    note = (
        ""
        if verdict.checks
        else "no [frames] budget judged anything: a gate with nothing to judge fails\n"
    )
    return f"### rtmw frame gate: {state}\n\n" + note + "\n".join(table(header, rows)) + "\n"


def _cell(value: Any, digits: int = 1) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and not math.isfinite(value))
        else f"{value:.{digits}f}"
    )


def markdown(rows: Sequence[dict[str, Any]], *, title: str = "Frame loop") -> str:
    header = [
        "Route",
        "det every",
        "frames/s",
        "latency p50/p99 ms",
        *STAGES,
        "AP body",
        "AP wb",
        "jitter px raw→smooth",
        "accel px raw→smooth",
        "ID sw",
        "IDF1",
    ]
    lines = []
    for row in rows:
        if "stages_ms" not in row:
            continue
        stages = row["stages_ms"]
        smooth = row.get("stability_smoothed", {})
        stab = row.get("stability", {})
        tracking = row.get("tracking", {})
        ap = row.get("ap", {})
        lines.append(
            [
                row["route"],
                str(row["settings"]["det_every"]),
                _cell(row["frames_per_s"]),
                f"{row['latency_ms']['p50']:.1f} / {row['latency_ms']['p99']:.1f}",
                *(_cell(stages[s]["mean"]) for s in STAGES),
                _cell(100 * ap["body"]) if ap else "–",
                _cell(100 * ap["wholebody"]) if ap else "–",
                f"{_cell(stab.get('jitter_px'), 2)} → {_cell(smooth.get('jitter_px'), 2)}",
                f"{_cell(stab.get('accel_error_px'), 2)} → "
                f"{_cell(smooth.get('accel_error_px'), 2)}",
                _cell(tracking.get("num_switches"), 0),
                _cell(tracking.get("idf1"), 3),
            ]
        )
    return f"# {title}\n\n" + "\n".join(table(header, lines)) + "\n"


def frame_bench(
    routes: Sequence[FrameRoute],
    video: str | Path,
    out: Path,
    *,
    ann_file: str | Path | None = None,
    budgets_file: str | Path | None = None,
    gate: bool = False,
    write_video: bool = True,
    threads: int | None = None,
    say: Say = logger.info,
) -> tuple[list[dict[str, Any]], GateResult | None]:
    """Run every route, write OUT/frames.json and frames.md (and the gate's verdict)."""
    from rtmw.harness.video import load_video_truth

    truth = load_video_truth(ann_file) if ann_file is not None else None
    rows: list[dict[str, Any]] = []
    for index, route in enumerate(routes):
        target = out / "routes" / slug(route.name)
        say(f"  frame loop {index + 1}/{len(routes)}: {route.name}")
        row = run_route(
            route,
            video,
            truth=truth,
            threads=threads,
            write_to=target if write_video and route.draw else None,
        )
        rows.append(row)
    verdict = gate_frames(rows, frame_budgets(load_budgets(budgets_file))) if gate else None
    document = {
        "schema": SCHEMA,
        "host": cpu_fingerprint(),
        "video": str(video),
        "ground_truth": None if ann_file is None else str(ann_file),
        "rows": rows,
        **({"gate": [vars(c) for c in verdict.checks]} if verdict else {}),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "frames.json").write_text(json.dumps(document, indent=1, default=float) + "\n")
    (out / "frames.md").write_text(markdown(rows))
    return rows, verdict


def sweep_routes(base: FrameRoute, det_every: Sequence[int]) -> list[FrameRoute]:
    """The same route with detection every N frames for each N."""
    return [
        replace(base, name=f"{base.name} det/{n}", settings=replace(base.settings, det_every=n))
        for n in det_every
    ]


__all__ = ["FRAME_BUDGETS", "FrameRoute", "frame_bench", "gate_frames", "run_route", "sweep_routes"]
