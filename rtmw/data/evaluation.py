"""COCO-WholeBody evaluation, reproducing mmpose's CocoWholeBodyMetric.

mmpose rescores each instance (box score × mean of its keypoint scores above 0.2),
runs OKS-NMS at 0.9 per image, then six xtcocotools COCOeval runs with
``use_area=True``: body, foot, face, left hand, right hand and whole-body, each with
its slice of the COCO-WholeBody sigmas. mmpose reports the whole-body run only; the
five part runs are returned here too.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtmw.data.wholebody import (
    NUM_KEYPOINTS,
    PART_FIELDS,
    PART_SLICES,
    PARTS,
    SIGMAS,
    split_keypoints,
)
from rtmw.errors import DataError, MissingDependency

logger = logging.getLogger(__name__)

KEYPOINT_SCORE_THR = 0.2
OKS_NMS_THR = 0.9
BOX_SOURCES = ("gt", "detector", "unknown")


@dataclass(frozen=True)
class PartMetrics:
    ap: float
    ap50: float
    ap75: float
    ar: float
    ar50: float


@dataclass(frozen=True)
class WholeBodyEvaluation:
    """Per-part metrics, and the facts needed to compare them with other numbers."""

    parts: dict[str, PartMetrics]
    box_source: str
    num_images: int
    num_instances: int

    def ap(self, part: str) -> float:
        return self.parts[part].ap

    def to_dict(self) -> dict[str, Any]:
        return {
            "box_source": self.box_source,
            "num_images": self.num_images,
            "num_instances": self.num_instances,
            "parts": {part: asdict(m) for part, m in self.parts.items()},
        }

    def table(self) -> str:
        rows = [f"{'part':<10} {'AP':>6} {'AP50':>6} {'AP75':>6} {'AR':>6} {'AR50':>6}"]
        for part, m in self.parts.items():
            rows.append(
                f"{part:<10} {m.ap:6.3f} {m.ap50:6.3f} {m.ap75:6.3f} {m.ar:6.3f} {m.ar50:6.3f}"
            )
        rows.append(f"boxes: {self.box_source}; {self.num_instances} instances")
        return "\n".join(rows)


def instance_result(
    image_id: int,
    keypoints: np.ndarray,
    keypoint_scores: np.ndarray,
    *,
    bbox_score: float,
    area: float,
) -> dict[str, Any]:
    """One prediction in the COCO-WholeBody result format, before rescoring.

    ``bbox_score`` and ``area`` (the padded box area, as mmpose uses) are kept beside
    the standard fields so :func:`rescore_and_nms` can do what mmpose does.
    """
    triples = np.concatenate(
        [np.asarray(keypoints, np.float64), np.asarray(keypoint_scores, np.float64)[:, None]],
        axis=1,
    )
    return {
        "image_id": int(image_id),
        "category_id": 1,
        **split_keypoints(triples),
        "score": float(bbox_score),
        "bbox_score": float(bbox_score),
        "area": float(area),
    }


def result_keypoints(result: Mapping[str, Any]) -> np.ndarray:
    """(133, 3) x, y, score from one result's five part fields."""
    parts = []
    for part, field_name in PART_FIELDS.items():
        values = result.get(field_name)
        expected = 3 * (PART_SLICES[part].stop - PART_SLICES[part].start)
        if values is None or len(values) != expected:
            raise DataError(
                f"result for image {result.get('image_id')}: {field_name} must hold "
                f"{expected} values"
            )
        try:
            array = np.asarray(values, dtype=np.float64).reshape(-1, 3)
        except (TypeError, ValueError):
            raise DataError(
                f"result for image {result.get('image_id')}: {field_name} is not numeric"
            ) from None
        if not np.isfinite(array).all():
            # NaN keypoints would be scored as matches by COCOeval (measured: AP 1.0)
            raise DataError(
                f"result for image {result.get('image_id')}: {field_name} holds NaN or "
                "infinite values; refusing to score them"
            )
        parts.append(array)
    for key in ("score", "bbox_score", "area"):
        value = result.get(key)
        if value is not None and not (
            isinstance(value, (int, float)) and np.isfinite(float(value))
        ):
            raise DataError(f"result for image {result.get('image_id')}: {key} {value!r}")
    return np.concatenate(parts)


def keypoint_similarity(
    gt: np.ndarray,
    dt: np.ndarray,
    area: float,
    sigmas: Sequence[float] | np.ndarray = SIGMAS,
) -> np.ndarray:
    """The per-keypoint OKS term, exp(-d² / 2 s² (2σ)²), for (..., K, 2) keypoints.

    The one place this formula lives: the evaluator, the fidelity mask and the
    accuracy-control metric must agree on what "close" means.
    """
    variances = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    d2 = np.sum((np.asarray(dt, np.float64) - np.asarray(gt, np.float64)) ** 2, axis=-1)
    result: np.ndarray = np.exp(-d2 / variances / (area + np.spacing(1)) / 2)
    return result


def oks(
    gt: np.ndarray,
    dt: np.ndarray,
    area: float,
    sigmas: Sequence[float] | np.ndarray = SIGMAS,
    visible: np.ndarray | None = None,
) -> float:
    """Object keypoint similarity of one detection to one ground truth (COCO formula).

    ``gt`` and ``dt`` are (K, 2); only ``visible`` keypoints (default all) count.
    """
    similarity = keypoint_similarity(gt, dt, area, sigmas)
    mask = np.ones(len(similarity), bool) if visible is None else np.asarray(visible, bool)
    return float(np.mean(similarity[mask])) if mask.any() else 0.0


def _oks_nms(instances: list[dict[str, Any]], threshold: float) -> list[int]:
    """Greedy OKS-NMS, mmpose's (mean area of the pair, all 133 keypoints)."""
    if not instances:
        return []
    scores = np.array([inst["score"] for inst in instances])
    kpts = np.stack([result_keypoints(inst)[:, :2] for inst in instances])
    areas = np.array([inst["area"] for inst in instances])
    variances = (2 * np.asarray(SIGMAS)) ** 2
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        if not order:
            break
        rest = np.array(order)
        d2 = np.sum((kpts[rest] - kpts[i]) ** 2, axis=2)
        mean_area = (areas[i] + areas[rest]) / 2 + np.spacing(1)
        overlap = np.mean(np.exp(-d2 / variances / mean_area[:, None] / 2), axis=1)
        order = [int(j) for j, o in zip(rest, overlap, strict=True) if o <= threshold]
    return keep


def rescore_and_nms(
    results: Iterable[Mapping[str, Any]],
    *,
    keypoint_score_thr: float = KEYPOINT_SCORE_THR,
    nms_thr: float | None = OKS_NMS_THR,
) -> list[dict[str, Any]]:
    """mmpose's 'bbox_keypoint' rescoring then OKS-NMS per image."""
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        inst = dict(result)
        scores = result_keypoints(inst)[:, 2]
        confident = scores[scores > keypoint_score_thr]
        mean_score = float(confident.mean()) if confident.size else 0.0
        inst["score"] = float(inst.get("bbox_score", inst.get("score", 1.0))) * mean_score
        if "area" not in inst:
            xy = result_keypoints(inst)[:, :2]
            inst["area"] = float(np.ptp(xy[:, 0]) * np.ptp(xy[:, 1]))
        by_image[int(inst["image_id"])].append(inst)
    kept: list[dict[str, Any]] = []
    for image_id in sorted(by_image):
        instances = by_image[image_id]
        keep = range(len(instances)) if nms_thr is None else _oks_nms(instances, nms_thr)
        kept.extend(instances[i] for i in keep)
    return kept


def _import_xtcocotools() -> tuple[Any, Any]:
    try:
        from xtcocotools.coco import COCO
        from xtcocotools.cocoeval import COCOeval
    except ImportError as exc:  # also the numpy ABI error of a mismatched binary wheel
        raise MissingDependency(
            f"COCO-WholeBody evaluation needs xtcocotools ({exc}); install it with "
            "`make install` (builds it from source against your numpy)"
        ) from None
    except ValueError as exc:
        raise MissingDependency(
            f"xtcocotools is installed but broken ({exc}); rebuild it from source: pip install "
            "--no-binary xtcocotools --no-build-isolation --force-reinstall xtcocotools"
        ) from None
    return COCO, COCOeval


def _load_results(results: Sequence[Mapping[str, Any]] | str | Path) -> list[dict[str, Any]]:
    if isinstance(results, (str, Path)):
        path = Path(results)
        if not path.is_file():
            raise DataError(f"result file not found: {path}")
        try:
            loaded = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"result file {path} is not valid JSON ({exc})") from None
        if not isinstance(loaded, list):
            raise DataError(f"result file {path} must hold a JSON list")
        return _checked_results(loaded, str(path))
    if isinstance(results, Mapping) or not isinstance(results, Sequence):
        raise DataError(
            f"results must be a list of per-person dicts (COCO results format), "
            f"got {type(results).__name__}"
        )
    return _checked_results(results, "results")


def _checked_results(results: Sequence[Any], where: str) -> list[dict[str, Any]]:
    """Each result a mapping with an integer image_id: the scorer indexes by it."""
    checked = []
    for index, result in enumerate(results):
        if not isinstance(result, Mapping):
            raise DataError(
                f"{where}: result {index} is a {type(result).__name__}, not a per-person dict"
            )
        image_id = result.get("image_id")
        if isinstance(image_id, bool) or not isinstance(image_id, (int, np.integer)):
            raise DataError(f"{where}: result {index} needs an integer image_id (got {image_id!r})")
        checked.append(dict(result))
    return checked


def evaluate_wholebody(
    ann_file: str | Path,
    results: Sequence[Mapping[str, Any]] | str | Path,
    *,
    box_source: str = "unknown",
    rescore: bool | None = None,
    nms_thr: float | None = OKS_NMS_THR,
    image_ids: Sequence[int] | None = None,
) -> WholeBodyEvaluation:
    """Six-part COCO-WholeBody AP/AR.

    ``rescore`` (default: when results carry ``bbox_score``) applies mmpose's instance
    rescoring and OKS-NMS; results without it are taken as final, as written by mmpose.
    ``box_source`` says whether the person boxes were ground truth or detections:
    GT boxes give higher AP than published (detector-box) figures. ``image_ids``
    restricts scoring to a subset of the annotated images (a partial run, a bootstrap
    resample); by default every annotated image counts, predicted or not.
    """
    if box_source not in BOX_SOURCES:
        raise DataError(f"box_source must be one of {BOX_SOURCES}, got {box_source!r}")
    coco_cls, cocoeval_cls = _import_xtcocotools()
    instances = _load_results(results)
    for inst in instances:
        result_keypoints(inst)  # validates the five fields
    if rescore is None:
        rescore = bool(instances) and all("bbox_score" in inst for inst in instances)
    if rescore:
        instances = rescore_and_nms(instances, nms_thr=nms_thr)
    ann_path = Path(ann_file)
    if not ann_path.is_file():
        raise DataError(f"annotation file not found: {ann_path}")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = coco_cls(str(ann_path))
    known_images = set(coco.getImgIds())
    unknown = {int(inst["image_id"]) for inst in instances} - known_images
    if unknown:
        raise DataError(
            f"results name {len(unknown)} image ids absent from {ann_path.name} "
            f"(e.g. {sorted(unknown)[:3]}): wrong annotation file?"
        )
    subset: list[int] | None = None
    if image_ids is not None:
        subset = sorted({int(i) for i in image_ids})
        if not set(subset) <= known_images:
            raise DataError(f"image_ids include ids absent from {ann_path.name}")
        outside = {int(inst["image_id"]) for inst in instances} - set(subset)
        if outside:
            instances = [inst for inst in instances if int(inst["image_id"]) in subset]
    num_images = len({int(inst["image_id"]) for inst in instances})
    if not instances:
        zero = PartMetrics(0.0, 0.0, 0.0, 0.0, 0.0)
        return WholeBodyEvaluation(dict.fromkeys(PARTS, zero), box_source, 0, 0)

    clean = [{k: v for k, v in inst.items() if k not in ("bbox_score",)} for inst in instances]
    sigmas = np.asarray(SIGMAS)
    parts: dict[str, PartMetrics] = {}
    log = io.StringIO()
    with contextlib.redirect_stdout(log), warnings.catch_warnings():
        # xtcocotools looks for per-part '<part>_score' keys first; mmpose writes none either
        warnings.filterwarnings("ignore", message=r".*_score' not found", category=UserWarning)
        detections = coco.loadRes(clean)
        for part in PARTS:
            coco_eval = cocoeval_cls(
                coco, detections, f"keypoints_{part}", sigmas[PART_SLICES[part]], use_area=True
            )
            coco_eval.params.useSegm = None
            if subset is not None:
                coco_eval.params.imgIds = subset
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
            # COCOeval writes -1 where a part has no labelled instance: undefined, not zero
            stats = [math.nan if s < 0 else float(s) for s in coco_eval.stats]
            parts[part] = PartMetrics(stats[0], stats[1], stats[2], stats[5], stats[6])
    logger.debug("xtcocotools output:\n%s", log.getvalue())
    return WholeBodyEvaluation(parts, box_source, num_images, len(instances))


def resampled_ap_deltas(
    ann_file: str | Path,
    candidate: Sequence[Mapping[str, Any]] | str | Path,
    reference: Sequence[Mapping[str, Any]] | str | Path,
    image_ids: Sequence[int],
    *,
    resamples: int = 200,
    fraction: float = 0.5,
    seed: int = 0,
    subsets: Sequence[Sequence[int]] | None = None,
) -> dict[str, np.ndarray]:
    """Per-part AP(candidate) − AP(reference) on random half-samples of the images.

    Both result sets are rescored and matched once (COCOeval.evaluate keeps per-image
    matches); each resample then only re-accumulates over its images, so hundreds of
    resamples cost seconds. Half-samples drawn without replacement have, for mean-like
    statistics, about the variance of the full-sample estimate (balanced half-samples):
    their spread is the uncertainty of the delta. AP is not exactly a mean, so the
    intervals are approximate. Candidate and reference share every resample (paired).
    """
    coco_cls, cocoeval_cls = _import_xtcocotools()
    ids = sorted({int(i) for i in image_ids})
    if len(ids) < 4:
        raise DataError("resampling needs at least 4 images")
    size = max(2, round(len(ids) * fraction))
    rng = np.random.default_rng(seed)
    if subsets is None:
        subsets = [rng.choice(ids, size=size, replace=False).tolist() for _ in range(resamples)]
    resamples = len(subsets)
    sigmas = np.asarray(SIGMAS)
    deltas: dict[str, np.ndarray] = {}
    log = io.StringIO()
    with contextlib.redirect_stdout(log), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*_score' not found", category=UserWarning)
        coco = coco_cls(str(ann_file))
        evaluators = []
        for results in (candidate, reference):
            instances = rescore_and_nms(_load_results(results))
            instances = [
                {k: v for k, v in inst.items() if k != "bbox_score"}
                for inst in instances
                if int(inst["image_id"]) in set(ids)
            ]
            evaluators.append(coco.loadRes(instances) if instances else None)
        for part in PARTS:
            values = np.full(resamples, np.nan)
            runs: list[Any] = []
            for detections in evaluators:
                if detections is None:
                    runs.append(None)
                    continue
                ev = cocoeval_cls(
                    coco, detections, f"keypoints_{part}", sigmas[PART_SLICES[part]], use_area=True
                )
                ev.params.useSegm = None
                ev.params.imgIds = ids
                ev.evaluate()
                runs.append(ev)
            if all(run is not None for run in runs):
                for b, subset in enumerate(subsets):
                    aps = []
                    chosen = set(subset)
                    for run in runs:
                        # accumulate() picks images by position in the evaluated list:
                        # keep the list's order, blank out the images not drawn
                        run.params.imgIds = [i if i in chosen else -1 for i in ids]
                        run.accumulate()
                        run.summarize()
                        aps.append(run.stats[0] if run.stats[0] >= 0 else np.nan)
                    values[b] = aps[0] - aps[1]
            deltas[part] = values
    return deltas


__all__ = [
    "NUM_KEYPOINTS",
    "PartMetrics",
    "WholeBodyEvaluation",
    "evaluate_wholebody",
    "instance_result",
    "oks",
    "resampled_ap_deltas",
    "rescore_and_nms",
    "result_keypoints",
]
