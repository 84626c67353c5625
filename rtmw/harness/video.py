"""What a frame loop's output is worth against a video's ground truth.

- Per-part COCO-WholeBody AP over the video's frames (each frame one image; the loop's
  persons as instances, rescored and OKS-NMS'd as mmpose does, by :mod:`rtmw.data.evaluation`).
- Tracking: MOTA, IDF1, ID switches, misses and false positives from ``motmetrics``
  (py-motmetrics, the MOTChallenge definitions): per frame each true person against each
  track by the OKS of the 17 body keypoints labelled in the ground truth (COCO's sigmas, the
  annotation's area), distance 1 − OKS, pairs below OKS 0.5 impossible; motmetrics does the
  matching with its ID continuity. (Boxes would judge the wrong thing: a truncated or
  occluded person's visible-pixel box and the box of its keypoints differ by design.)
- Temporal stability over the persons motmetrics matched: the acceleration error (the
  mean distance between predicted and true second differences, x[t+1] − 2x[t] + x[t−1], of
  every keypoint labelled in three consecutive frames: px/frame², as HMR-style video work
  reports it) and jitter (the mean frame-to-frame displacement of predicted keypoints whose
  true position did not move at all, labelled in both frames: px/frame).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtmw.data.evaluation import evaluate_wholebody, instance_result, oks
from rtmw.data.wholebody import SIGMAS, keypoints_from_annotation
from rtmw.errors import DataError
from rtmw.optional import import_backend
from rtmw.pipeline.frames import FrameResult

MATCH_OKS = 0.5
BODY = slice(0, 17)


@dataclass(frozen=True)
class TruePerson:
    track_id: int
    box: np.ndarray  # (4,) xyxy
    keypoints: np.ndarray  # (133, 2)
    labelled: np.ndarray  # (133,) bool
    area: float


@dataclass
class VideoTruth:
    ann_file: Path
    fps: float
    frames: dict[int, list[TruePerson]]  # frame index → persons
    num_frames: int


def load_video_truth(ann_file: str | Path) -> VideoTruth:
    """A video's COCO-WholeBody annotations with ``track_id`` and images with ``frame_id``."""
    path = Path(ann_file)
    try:
        coco = json.loads(path.read_text())
        images = {
            int(im["id"]): int(im.get("frame_id", int(im["id"]) - 1)) for im in coco["images"]
        }
        frames: dict[int, list[TruePerson]] = {index: [] for index in images.values()}
        for ann in coco["annotations"]:
            if "track_id" not in ann:
                raise DataError(f"{path}: annotation {ann.get('id')} has no track_id (not a video)")
            triples = keypoints_from_annotation(ann, f"{path} annotation {ann.get('id')}")
            x, y, w, h = (float(v) for v in ann["bbox"])
            frames[images[int(ann["image_id"])]].append(
                TruePerson(
                    int(ann["track_id"]),
                    np.array([x, y, x + w, y + h]),
                    triples[:, :2],
                    triples[:, 2] > 0,
                    float(ann.get("area") or w * h),
                )
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a video annotation file ({exc})") from None
    fps = float(coco.get("info", {}).get("fps", 30.0))
    return VideoTruth(path, fps, frames, len(images))


def wholebody_ap(
    truth: VideoTruth, results: Sequence[FrameResult], *, smoothed: bool
) -> dict[str, float]:
    instances = []
    for result in results:
        points = result.keypoints if smoothed else result.raw_keypoints
        for row in range(len(result)):
            box = result.boxes[row]
            area = float((box[2] - box[0]) * (box[3] - box[1]))
            instances.append(
                instance_result(
                    result.index + 1, points[row], result.scores[row], bbox_score=1.0, area=area
                )
            )
    evaluation = evaluate_wholebody(truth.ann_file, instances, box_source="detector")
    return {part: metrics.ap for part, metrics in evaluation.parts.items()}


def _accumulate(truth: VideoTruth, results: Sequence[FrameResult]) -> Any:
    motmetrics = import_backend("motmetrics", "video")
    accumulator = motmetrics.MOTAccumulator(auto_id=False)
    for result in results:
        persons = truth.frames.get(result.index, [])
        distance = np.full((len(persons), len(result)), np.nan)
        for row, person in enumerate(persons):
            for col in range(len(result)):
                similarity = oks(
                    person.keypoints[BODY],
                    result.raw_keypoints[col][BODY],
                    person.area,
                    SIGMAS[BODY],
                    person.labelled[BODY],
                )
                if similarity >= MATCH_OKS:
                    distance[row, col] = 1.0 - similarity
        accumulator.update(
            [p.track_id for p in persons], result.track_ids.tolist(), distance, frameid=result.index
        )
    return accumulator


def tracking_metrics(accumulator: Any) -> dict[str, float]:
    motmetrics = import_backend("motmetrics", "video")
    names = [
        "idf1",
        "idp",
        "idr",
        "mota",
        "num_switches",
        "num_misses",
        "num_false_positives",
        "num_objects",
        "mostly_tracked",
        "num_unique_objects",
    ]
    summary = motmetrics.metrics.create().compute(accumulator, metrics=names, name="video")
    return {name: float(summary[name].iloc[0]) for name in names}


def _matches(accumulator: Any) -> dict[int, dict[int, int]]:
    """frame → true track ID → hypothesis track ID, from motmetrics' MATCH/SWITCH events."""
    events = accumulator.mot_events
    paired = events[events["Type"].isin(["MATCH", "SWITCH", "TRANSFER", "ASCEND", "MIGRATE"])]
    found: dict[int, dict[int, int]] = {}
    for (frame, _), row in paired.iterrows():
        found.setdefault(int(frame), {})[int(row["OId"])] = int(row["HId"])
    return found


def stability(
    truth: VideoTruth,
    results: Sequence[FrameResult],
    matches: dict[int, dict[int, int]],
    *,
    smoothed: bool,
) -> dict[str, float | int]:
    """Acceleration error (px/frame²) and jitter on still keypoints (px/frame)."""
    by_frame = {r.index: r for r in results}

    def predicted(frame: int, true_id: int) -> np.ndarray | None:
        hyp = matches.get(frame, {}).get(true_id)
        result = by_frame.get(frame)
        if hyp is None or result is None:
            return None
        row = int(np.flatnonzero(result.track_ids == hyp)[0])
        points = result.keypoints if smoothed else result.raw_keypoints
        return np.asarray(points[row], np.float64)

    def true(frame: int, true_id: int) -> TruePerson | None:
        return next((p for p in truth.frames.get(frame, []) if p.track_id == true_id), None)

    accel: list[np.ndarray] = []
    jitter: list[np.ndarray] = []
    for frame in sorted(by_frame):
        for true_id in matches.get(frame, {}):
            now, before = true(frame, true_id), true(frame - 1, true_id)
            p_now, p_before = predicted(frame, true_id), predicted(frame - 1, true_id)
            if now is None or before is None or p_now is None or p_before is None:
                continue
            still = (
                now.labelled
                & before.labelled
                & (np.linalg.norm(now.keypoints - before.keypoints, axis=1) < 1e-6)
            )
            jitter.append(np.linalg.norm(p_now - p_before, axis=1)[still])
            after, p_after = true(frame + 1, true_id), predicted(frame + 1, true_id)
            if after is None or p_after is None:
                continue
            labelled = now.labelled & before.labelled & after.labelled
            true_acc = after.keypoints - 2 * now.keypoints + before.keypoints
            pred_acc = p_after - 2 * p_now + p_before
            accel.append(np.linalg.norm(pred_acc - true_acc, axis=1)[labelled])
    accel_all = np.concatenate(accel) if accel else np.zeros(0)
    jitter_all = np.concatenate(jitter) if jitter else np.zeros(0)
    return {
        "accel_error_px": float(accel_all.mean()) if accel_all.size else float("nan"),
        "accel_keypoints": int(accel_all.size),
        "jitter_px": float(jitter_all.mean()) if jitter_all.size else float("nan"),
        "jitter_keypoints": int(jitter_all.size),
    }


def score_video(truth: VideoTruth, results: Sequence[FrameResult]) -> dict[str, Any]:
    """Every figure of one run: AP per part, tracking, stability raw and smoothed."""
    if not results:
        raise DataError("the frame loop produced no frame to score")
    accumulator = _accumulate(truth, results)
    matches = _matches(accumulator)
    record: dict[str, Any] = {
        "ap": wholebody_ap(truth, results, smoothed=False),
        "tracking": tracking_metrics(accumulator),
        "stability": stability(truth, results, matches, smoothed=False),
    }
    if any(not np.array_equal(r.keypoints, r.raw_keypoints) for r in results):
        record["ap_smoothed"] = wholebody_ap(truth, results, smoothed=True)
        record["stability_smoothed"] = stability(truth, results, matches, smoothed=True)
    return record


def stage_summary(results: Sequence[FrameResult], wall_s: float) -> dict[str, Any]:
    """Per-stage p50/p99 (ms), frame latency p50/p99, frames/s over the run's wall time."""
    stages = {}
    for stage in results[0].timings:
        values = np.array([r.timings[stage] for r in results])
        stages[stage] = {
            "p50": float(np.percentile(values, 50)),
            "p99": float(np.percentile(values, 99)),
            "mean": float(values.mean()),
        }
    latency = np.array([r.latency_ms for r in results])
    return {
        "frames": len(results),
        "frames_per_s": len(results) / wall_s if wall_s > 0 else float("nan"),
        "latency_ms": {
            "p50": float(np.percentile(latency, 50)),
            "p99": float(np.percentile(latency, 99)),
        },
        "stages_ms": stages,
        "detections": int(sum(r.detected for r in results)),
        "persons_per_frame": float(np.mean([len(r) for r in results])),
        "max_persons": int(max(len(r) for r in results)),
    }
