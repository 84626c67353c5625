"""The demo's frame-loop stage: a 4-person synthetic video through detector + tracker + pose.

Side by side in one run, on the same video and machine: rtmlib's way (synchronous, the
detector every N frames, IoU tracking, one crop per pose call) against rtmw's loop (the
same detector schedule, every track's crop in one batch; and streamed: decode and the
scheduled detections ahead on a reader thread, drawing and writing behind on a writer
thread), for the FP32 routes (onnx detector + onnx pose) and the best INT8 routes (the
fastest INT8 detector artifact of the detector stage and the fastest INT8 pose artifact
that passed the gate). Then rtmw's streamed FP32 loop with detection every 1, 2, 5 and 10
frames: what each N saves per frame and costs in AP, IDs and steadiness. Writes
OUT/frames.md, OUT/frames.json, the input video under OUT/frames/input/, and per route
OUT/frames/routes/<route>/annotated.mp4 and frames.jsonl (one annotated frame as a PNG).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rtmw.bench.entry import ResultsDocument
from rtmw.bench.frames import (
    FrameRoute,
    frame_bench,
    frame_budgets,
    gate_frames,
    gate_markdown,
    markdown,
    slug,
)
from rtmw.bench.gate import GateResult, load_budgets, verdicts_by_candidate
from rtmw.bench.summary import best_e2e
from rtmw.data.synthetic_video import render_video
from rtmw.pipeline.frames import FrameSettings
from rtmw.pipeline.smoothing import OneEuroSettings

Say = Callable[[str], None]

VIDEO_FRAMES, VIDEO_PERSONS, VIDEO_SEED = 120, 4, 31
DEMO_DET_EVERY = 5
SWEEP = (1, 2, 5, 10)
MODES = {
    "rtmlib-style": (False, False),
    "rtmw batched": (True, False),
    "rtmw streamed": (True, True),
}


def best_int8_pose(run: ResultsDocument, verdict: GateResult) -> str | None:
    """The fastest INT8 pose artifact that passed the gate (its name in the run)."""
    verdicts = verdicts_by_candidate(verdict)
    passed = [
        e
        for e in run.entries
        if e.ok and e.task == "pose" and e.precision == "int8" and verdicts.get(e.name) == "PASS"
    ]
    if not passed:
        return None
    return max(passed, key=lambda e: best_e2e(e)[1] or 0.0).name


def best_int8_detector(run: ResultsDocument) -> str | None:
    entries = [e for e in run.entries if e.ok and e.precision == "int8" and e.frames_per_s]
    return max(entries, key=lambda e: e.frames_per_s or 0.0).name if entries else None


def demo_routes(detectors: dict[str, Path], poses: dict[str, Path]) -> list[FrameRoute]:
    """Each precision's routes in the three loop modes (keypoints only), the FP32 batched and
    streamed loops again writing the annotated video, then the det-every-N sweep."""
    routes = []
    for label, (det, pose) in {
        "FP32": (detectors["fp32"], poses["fp32"]),
        "INT8": (detectors.get("int8"), poses.get("int8")),
    }.items():
        if det is None or pose is None:
            continue
        for mode, (batched, stream) in MODES.items():
            settings = FrameSettings(
                det_every=DEMO_DET_EVERY, batched=batched, smoothing=OneEuroSettings()
            )
            name = f"{label} {mode} ({det.name} + {pose.name})"
            routes.append(FrameRoute(name, det, pose, settings, stream, draw=False))
    base = next(r for r in routes if r.name.startswith("FP32 rtmw streamed"))
    # the same loops also drawing, encoding the annotated video and writing JSON lines: the
    # writer thread competes for the cores, so whether streaming pays changes with it
    batched_route = next(r for r in routes if r.name.startswith("FP32 rtmw batched"))
    routes.append(replace(batched_route, name="FP32 rtmw batched + annotated video", draw=True))
    routes.append(replace(base, name="FP32 rtmw streamed + annotated video", draw=True))
    for n in SWEEP:
        if n != DEMO_DET_EVERY:
            routes.append(
                replace(
                    base,
                    name=f"FP32 rtmw streamed, det every {n}",
                    settings=replace(base.settings, det_every=n),
                )
            )
    return routes


def _sweep_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    sweep = sorted(
        (
            r
            for r in rows
            if r["route"].startswith("FP32 rtmw streamed")
            and not r.get("draw")
            and "annotated video" not in r["route"]
        ),
        key=lambda r: r["settings"]["det_every"],
    )
    lines = []
    for row in sweep:
        detect = row["stages_ms"]["detect"]["mean"]
        lines.append(
            f"| {row['settings']['det_every']} | {row['detections']} | {detect:.1f} | "
            f"{row['frames_per_s']:.1f} | {100 * row['ap']['body']:.1f} | "
            f"{100 * row['ap']['wholebody']:.1f} | "
            f"{row['tracking']['num_switches']:.0f} | {row['tracking']['idf1']:.3f} |"
        )
    return [
        "| det every N | detector runs | detect ms/frame | frames/s | AP body | AP wb | "
        "ID switches | IDF1 |",
        "|---|---|---|---|---|---|---|---|",
        *lines,
    ]


def run_frames_stage(
    out: Path, detectors: dict[str, Path], poses: dict[str, Path], *, say: Say
) -> tuple[list[dict[str, Any]], GateResult]:
    """Render the video, run every route, write frames.md/json; the [frames] gate's verdict."""
    folder = out / "frames"
    say(
        f"== frame loop: a {VIDEO_PERSONS}-person synthetic video ({VIDEO_FRAMES} frames), "
        "detector + tracker + pose, rtmlib's one-crop loop vs rtmw's batched and streamed "
        "loops, then detection every 1/2/5/10 frames"
    )
    video = render_video(
        folder / "input", frames=VIDEO_FRAMES, persons=VIDEO_PERSONS, seed=VIDEO_SEED
    )
    routes = demo_routes(detectors, poses)
    rows, _ = frame_bench(routes, video.video, folder, ann_file=video.ann_file, say=say)
    verdict = gate_frames(rows, frame_budgets(load_budgets()))
    drawn = next(r for r in routes if r.draw)
    sample = _sample_frame(
        folder / "routes" / slug(drawn.name) / "annotated.mp4",
        folder / "annotated-frame-60.png",
        60,
    )
    (out / "frames.md").write_text(
        frames_markdown(rows, verdict, None if sample is None else (drawn.name, sample.name))
    )
    (out / "frames.json").write_text((folder / "frames.json").read_text())
    return rows, verdict


def frames_markdown(
    rows: Sequence[dict[str, Any]], verdict: GateResult, sample: tuple[str, str] | None
) -> str:
    """frames.md: the table, what its columns mean, the det-every-N sweep, the gate."""
    text = (
        markdown(rows, title="The frame loop on a 4-person synthetic video")
        + "\nOne run, one machine, one video (640×480, 30 fps, "
        f"{VIDEO_FRAMES} frames: walking, waving, turning, entering, leaving, occluding each "
        "other; a camera pan and zoom with motion blur). Stage columns: mean ms per frame "
        "(detect: amortised over the frames it did not run on; draw, only in the two '+ "
        "annotated video' rows: drawing the skeletons "
        "and IDs, encoding the annotated video and writing the JSON line). Latency: a frame's "
        "work from its decode to its keypoints, queue waits excluded. No flip test. AP: "
        "COCO-WholeBody over the video's frames, raw keypoints; jitter: mean px/frame of "
        "predicted keypoints whose true position did not move; accel: acceleration error "
        "px/frame²; both without → with One-Euro smoothing. ID switches, IDF1: motmetrics.\n\n"
        "rtmlib-style: synchronous, one crop per pose call (rtmlib's PoseTracker); rtmw "
        "batched: every track in one pose call; rtmw streamed: the batched loop with decode "
        "and scheduled detections on a reader thread and drawing on a writer thread.\n\n"
        "## Detection every N frames (rtmw streamed, FP32)\n\n"
        + "\n".join(_sweep_lines(rows))
        + "\n"
    )
    text += "\n## [frames] budgets (rtmw/bench/gates.toml)\n\n" + gate_markdown(verdict)
    if sample is not None:
        text += f"\n![frame 60 of {sample[0]}](frames/{sample[1]})\n"
    return text


def _sample_frame(video: Path, image: Path, index: int) -> Path | None:
    """One annotated frame as a PNG for the report (the videos stay out of git)."""
    from rtmw.pipeline.draw import save_image
    from rtmw.pipeline.video import open_source

    for number, frame in enumerate(open_source(video)):
        if number == index:
            return save_image(image, frame)
    return None


def frames_summary(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The demo's closing lines: each precision's rtmlib-style loop vs rtmw's faster loop."""
    by_name = {r["route"].split(" (")[0]: r for r in rows}
    lines = []
    for label in ("FP32", "INT8"):
        old = by_name.get(f"{label} rtmlib-style")
        loops = [by_name.get(f"{label} rtmw batched"), by_name.get(f"{label} rtmw streamed")]
        found = [r for r in loops if r is not None]
        if old is None or not found:
            continue
        new = max(found, key=lambda r: r["frames_per_s"])
        mode = "streamed" if new["stream"] else "batched"
        lines.append(
            f"frame loop {label}: rtmw {mode} {new['frames_per_s']:.1f} frames/s vs "
            f"rtmlib-style one-crop {old['frames_per_s']:.1f} "
            f"({new['frames_per_s'] / old['frames_per_s']:.2f}×), whole-body AP "
            f"{100 * new['ap']['wholebody']:.1f}, ID switches "
            f"{new['tracking']['num_switches']:.0f}, jitter {new['stability']['jitter_px']:.1f} → "
            f"{new['stability_smoothed']['jitter_px']:.1f} px smoothed (frames.md)"
        )
    return lines
