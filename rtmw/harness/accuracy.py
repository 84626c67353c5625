"""The one evaluation harness: predict, six-part evaluation and fidelity.

Training validation, the benchmark, the gates and INT8 accuracy control all score a
model this one way: the same boxes (see :mod:`rtmw.data.evalset`), the shared pipeline
(:class:`rtmw.pipeline.TopDown`), the COCO-WholeBody evaluator, and the same keypoint
similarity. Fidelity compares the decoded keypoints of a candidate and a reference on
the same boxes, part by part, in image pixels; that is what a user sees move when a
model is quantised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from rtmw.data.evalset import BoxedImage, EvalSet, box_iou, read_image
from rtmw.data.evaluation import (
    WholeBodyEvaluation,
    evaluate_wholebody,
    instance_result,
    keypoint_similarity,
)
from rtmw.data.evaluation3d import Evaluation3D, evaluate_matched, match_persons
from rtmw.errors import DataError
from rtmw.keypoints import PART_SLICES, PARTS
from rtmw.pipeline import DEFAULT_MAX_BATCH, DepthCodec, InferFn, PoseResult, TopDown


@dataclass
class AccuracyRun:
    evaluation: WholeBodyEvaluation
    predictions: dict[int, PoseResult]
    results: list[dict[str, Any]]  # COCO-WholeBody results before rescoring (for gates)
    # a 3D model on data with 3D ground truth: MPJPE/PA-MPJPE per part
    evaluation_3d: Evaluation3D | None = None

    def to_dict(self) -> dict[str, Any]:
        data = self.evaluation.to_dict()
        if self.evaluation_3d is not None:
            data["3d"] = self.evaluation_3d.to_dict()
        return data


def predict(
    pose: TopDown, items: Iterable[BoxedImage], *, progress: bool = False, desc: str = "predict"
) -> tuple[list[dict[str, Any]], dict[int, PoseResult]]:
    """COCO-WholeBody results (before rescoring) and the raw pose result per image."""
    results: list[dict[str, Any]] = []
    raw: dict[int, PoseResult] = {}
    for item in tqdm(list(items), desc=desc, unit="img", disable=not progress, leave=False):
        image = read_image(item.path)
        if item.size is not None and (image.shape[1], image.shape[0]) != item.size:
            # another image under the same name scores AP 0 without a word otherwise
            raise DataError(
                f"{item.path} is {image.shape[1]}x{image.shape[0]} but the annotation file says "
                f"{item.size[0]}x{item.size[1]}: wrong image folder or annotation file?"
            )
        out = pose(image, item.boxes_xyxy)
        raw[item.image_id] = out
        areas = out.areas
        for i in range(len(out)):
            results.append(
                instance_result(
                    item.image_id,
                    out.keypoints[i],
                    out.scores[i],
                    bbox_score=float(item.box_scores[i]),
                    area=float(areas[i]),
                )
            )
    return results, raw


def score(eval_set: EvalSet, results: list[dict[str, Any]]) -> WholeBodyEvaluation:
    """Six-part AP/AR of results (before rescoring) made on every image of ``eval_set``,
    however they were made (one process, or shards merged in image order)."""
    return evaluate_wholebody(
        eval_set.ann_file,
        results,
        box_source=eval_set.box_source,
        image_ids=[item.image_id for item in eval_set.items],
    )


def evaluate(pose: TopDown, eval_set: EvalSet, *, progress: bool = False) -> AccuracyRun:
    """Six-part AP/AR of a pose pipeline on an evaluation set, with its raw predictions;
    a 3D pipeline on data with 3D ground truth adds MPJPE/PA-MPJPE per part."""
    results, raw = predict(pose, eval_set.items, progress=progress, desc="evaluate")
    three_d = score_3d(eval_set, raw) if pose.depth is not None else None
    return AccuracyRun(score(eval_set, results), raw, results, three_d)


def has_3d(eval_set: EvalSet) -> bool:
    return any(p.has_3d for p in eval_set.annotations.persons)


def score_3d(eval_set: EvalSet, predictions: dict[int, PoseResult]) -> Evaluation3D | None:
    """3D error per part of a 3D model's predictions (None when the data has no 3D)."""
    if not has_3d(eval_set):
        return None
    matched = []
    persons_by_image = eval_set.annotations.persons_by_image()
    for item in eval_set.items:
        out = predictions.get(item.image_id)
        if out is None or out.depth is None:
            continue
        record = eval_set.annotations.images[item.image_id]
        matched.extend(
            match_persons(
                persons_by_image.get(item.image_id, []),
                item.boxes_xyxy,
                out.keypoints,
                out.depth,
                (record.width, record.height),
            )
        )
    return evaluate_matched(matched)


def evaluate_pose(
    pose: TopDown, eval_set: EvalSet, *, progress: bool = False
) -> tuple[WholeBodyEvaluation, dict[int, PoseResult]]:
    """:func:`evaluate` as (evaluation, predictions)."""
    run = evaluate(pose, eval_set, progress=progress)
    return run.evaluation, run.predictions


def run_accuracy(
    infer: InferFn,
    input_size: tuple[int, int],
    eval_set: EvalSet,
    *,
    flip: bool = True,
    max_batch: int | None = DEFAULT_MAX_BATCH,
    progress: bool = False,
    depth: DepthCodec | None = None,
) -> AccuracyRun:
    """:func:`evaluate` of ``infer`` behind the shared pipeline."""
    pose = TopDown(infer, input_size, flip_test=flip, max_batch=max_batch, depth=depth)
    return evaluate(pose, eval_set, progress=progress)


def crop_similarity(
    reference: np.ndarray, candidate: np.ndarray, input_size: tuple[int, int] = (192, 256)
) -> float:
    """Mean OKS of candidate keypoints against reference ones, in crop pixels.

    The metric of accuracy-controlled quantisation, where there is no ground truth: the
    evaluator's keypoint similarity with COCO-WholeBody sigmas, the FP32 model's keypoints
    as ground truth, the person inside the padded (w, h) crop as area.
    """
    area = input_size[0] * input_size[1] / 1.25**2
    return float(np.mean(keypoint_similarity(reference, candidate, area)))


def keypoint_errors_per_image(
    candidate: dict[int, PoseResult],
    reference: dict[int, PoseResult],
    mask: dict[int, np.ndarray] | None = None,
) -> dict[str, list[np.ndarray]]:
    """Per part, one array of pixel distances per image (same boxes, same image order).

    Keypoints the reference itself marks invalid (score ≤ 0) are left out, and so is
    every keypoint ``mask`` (per image, (N, 133) bool) leaves out. Kept per image so that
    intervals can resample images, the unit that is really independent.
    """
    per_part: dict[str, list[np.ndarray]] = {part: [] for part in PARTS}
    for image_id, ref in reference.items():
        cand = candidate.get(image_id)
        if cand is None or len(cand) != len(ref):
            raise ValueError(f"image {image_id}: candidate and reference saw different boxes")
        distance = np.linalg.norm(cand.keypoints - ref.keypoints, axis=-1)
        valid = ref.scores > 0
        if mask is not None:
            valid &= mask[image_id]
        for part in per_part:
            part_slice = PART_SLICES[part]
            per_part[part].append(distance[:, part_slice][valid[:, part_slice]])
    return per_part


def _flat(per_image: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(per_image) if per_image else np.zeros(0)


# the keypoint-error statistic the gate judges: p99 of a few hundred keypoints is the
# 4th-worst point and flips with one mode jump; p95 keeps 5 % of them above it
PX_QUANTILE = 95.0
PX_RESAMPLES = 200


def quantile_interval(
    per_image: list[np.ndarray],
    quantile: float = PX_QUANTILE,
    *,
    confidence: float = 0.95,
    resamples: int = PX_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Bootstrap interval (images drawn with replacement) of a keypoint-error quantile."""
    if not any(len(v) for v in per_image):
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(per_image), len(per_image))
        sample = np.concatenate([per_image[i] for i in drawn])
        if sample.size:
            values.append(float(np.percentile(sample, quantile)))
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(values, [alpha, 1 - alpha])
    return float(lo), float(hi)


def reference_correct(
    reference: dict[int, PoseResult], eval_set: EvalSet, *, min_keypoint_oks: float = 0.5
) -> dict[int, np.ndarray]:
    """Per image, (N, 133): keypoints the reference places right.

    A keypoint counts when its box matches a ground-truth person (IoU ≥ 0.5), the
    ground truth labels it, and the reference's own keypoint similarity to it (the
    per-keypoint OKS term, sigmas and area as the evaluator uses) is ≥
    ``min_keypoint_oks``. Fidelity is measured there because elsewhere the reference
    is already lost (occluded or ambiguous points jump between modes on any change),
    and tails measured there say nothing about what quantisation did.
    """
    persons: dict[int, list[Any]] = {}
    for person in eval_set.annotations.persons:
        if not person.iscrowd:
            persons.setdefault(person.image_id, []).append(person)
    masks: dict[int, np.ndarray] = {}
    for item in eval_set.items:
        ref = reference[item.image_id]
        mask = np.zeros(ref.scores.shape, bool)
        candidates = persons.get(item.image_id, [])
        if candidates:
            gt_boxes = np.stack([p.bbox_xyxy for p in candidates])
            for index, box in enumerate(item.boxes_xyxy):
                iou = box_iou(np.asarray(box, np.float64), gt_boxes)
                best = int(iou.argmax())
                if iou[best] < 0.5:
                    continue
                gt = candidates[best]
                similarity = keypoint_similarity(gt.keypoints[:, :2], ref.keypoints[index], gt.area)
                mask[index] = (gt.keypoints[:, 2] > 0) & (similarity >= min_keypoint_oks)
        masks[item.image_id] = mask
    return masks


def _percentiles(values: np.ndarray) -> tuple[float | None, float | None]:
    if not len(values):
        return None, None
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def fidelity(
    candidate: AccuracyRun,
    reference: AccuracyRun,
    *,
    reference_name: str,
    eval_set: EvalSet | None = None,
) -> dict[str, Any]:
    """Keypoint error p50/p95/p99 (px) and AP/AR deltas per part against a reference run.

    ``px_p50``/``px_p95``/``px_p99`` cover the keypoints the reference places right (see
    ``reference_correct``; all keypoints when no ``eval_set`` is given), with a
    bootstrap interval over images for p95 (the statistic the gate judges);
    ``px_p99_all`` covers every keypoint, for the record.
    """
    all_per_image = keypoint_errors_per_image(candidate.predictions, reference.predictions)
    every = {part: _flat(values) for part, values in all_per_image.items()}
    per_image = all_per_image
    if eval_set is not None:
        mask = reference_correct(reference.predictions, eval_set)
        per_image = keypoint_errors_per_image(candidate.predictions, reference.predictions, mask)
    parts: dict[str, Any] = {}
    for part in PARTS:
        cand = candidate.evaluation.parts[part]
        ref = reference.evaluation.parts[part]
        judged = _flat(per_image[part])
        p50, p99 = _percentiles(judged)
        parts[part] = {
            "px_p50": p50,
            "px_p95": float(np.percentile(judged, PX_QUANTILE)) if judged.size else None,
            "px_p95_interval": quantile_interval(per_image[part]),
            "px_p99": p99,
            "keypoints": len(judged),
            "px_p99_all": _percentiles(every[part])[1],
            "keypoints_all": len(every[part]),
            "ap_delta": cand.ap - ref.ap,
            "ar_delta": cand.ar - ref.ar,
        }
    scope = "reference-correct keypoints" if eval_set is not None else "all keypoints"
    return {"reference": reference_name, "px_scope": scope, "parts": parts}
