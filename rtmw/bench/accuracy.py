"""Accuracy of one artifact on COCO-WholeBody data, and its fidelity to an FP32 reference.

AP/AR come from the shared evaluator on the shared pipeline. Fidelity compares the
decoded keypoints of candidate and reference on the same boxes, part by part, in image
pixels; that is what a user sees move when a model is quantised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rtmw.data.evaluation import WholeBodyEvaluation, evaluate_wholebody
from rtmw.data.predict import EvalSet, predict
from rtmw.data.wholebody import PART_SLICES, PARTS
from rtmw.pipeline.topdown import InferFn, PoseResult, TopDown


@dataclass
class AccuracyRun:
    evaluation: WholeBodyEvaluation
    predictions: dict[int, PoseResult]
    results: list[dict[str, Any]]  # COCO-WholeBody results before rescoring (for gates)

    def to_dict(self) -> dict[str, Any]:
        return self.evaluation.to_dict()


def run_accuracy(
    infer: InferFn,
    input_size: tuple[int, int],
    eval_set: EvalSet,
    *,
    flip: bool = True,
    max_batch: int | None = None,
    progress: bool = False,
) -> AccuracyRun:
    pose = TopDown(infer, input_size, flip_test=flip, max_batch=max_batch)
    results, raw = predict(pose, eval_set.items, progress=progress, desc="evaluate")
    evaluation = evaluate_wholebody(
        eval_set.ann_file,
        results,
        box_source=eval_set.box_source,
        image_ids=[item.image_id for item in eval_set.items],
    )
    return AccuracyRun(evaluation, raw, results)


def keypoint_errors(
    candidate: dict[int, PoseResult], reference: dict[int, PoseResult]
) -> dict[str, np.ndarray]:
    """Per-part pixel distances between candidate and reference keypoints (same boxes).

    Keypoints the reference itself marks invalid (score ≤ 0) are left out.
    """
    per_part: dict[str, list[np.ndarray]] = {part: [] for part in PARTS}
    for image_id, ref in reference.items():
        cand = candidate.get(image_id)
        if cand is None or len(cand) != len(ref):
            raise ValueError(f"image {image_id}: candidate and reference saw different boxes")
        distance = np.linalg.norm(cand.keypoints - ref.keypoints, axis=-1)
        valid = ref.scores > 0
        for part in per_part:
            part_slice = PART_SLICES[part]
            per_part[part].append(distance[:, part_slice][valid[:, part_slice]])
    return {
        part: np.concatenate(values) if values else np.zeros(0) for part, values in per_part.items()
    }


def fidelity(
    candidate: AccuracyRun, reference: AccuracyRun, *, reference_name: str
) -> dict[str, Any]:
    """Keypoint error p50/p99 (px) and AP/AR deltas per part against a reference run."""
    errors = keypoint_errors(candidate.predictions, reference.predictions)
    parts: dict[str, Any] = {}
    for part, values in errors.items():
        cand = candidate.evaluation.parts[part]
        ref = reference.evaluation.parts[part]
        parts[part] = {
            "px_p50": float(np.percentile(values, 50)) if len(values) else None,
            "px_p99": float(np.percentile(values, 99)) if len(values) else None,
            "keypoints": len(values),
            "ap_delta": cand.ap - ref.ap,
            "ar_delta": cand.ar - ref.ar,
        }
    return {"reference": reference_name, "parts": parts}
