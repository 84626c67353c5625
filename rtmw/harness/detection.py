"""The detector's half of the harness: run any detector inference callable over an
evaluation set's images with the one pre/post-processing (:mod:`rtmw.pipeline.detect`),
score person box AP with COCOeval (iouType ``bbox``), and write the detections in the
COCO results format that ``--dets`` reads, so the pose model can be scored on them.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rtmw.data.evalset import read_image
from rtmw.data.evaluation import _import_xtcocotools
from rtmw.errors import DataError
from rtmw.pipeline import InferFn
from rtmw.pipeline.detect import (
    MMDET_DECODE,
    DecodeSettings,
    Detections,
    DetectorSpec,
    decode_detections,
    letterbox,
)

PERSON_CATEGORY = 1  # COCO's category id of person


@dataclass(frozen=True)
class BoxAP:
    """COCO box AP of the person class (the 12 COCOeval figures' headline ones)."""

    ap: float
    ap50: float
    ap75: float
    ar100: float
    num_images: int
    num_detections: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_images(
    infer: InferFn,
    spec: DetectorSpec,
    images: Iterable[tuple[int, Path]],
    settings: DecodeSettings = MMDET_DECODE,
    *,
    progress: bool = False,
) -> dict[int, Detections]:
    """Person detections per image id, one frame per inference call (mmdet's test batch)."""
    found: dict[int, Detections] = {}
    for image_id, path in tqdm(list(images), desc="detect", unit="img", disable=not progress,
                               leave=False):  # fmt: skip
        tensor, placed = letterbox(read_image(path), spec)
        (found[image_id],) = decode_detections(infer(tensor), spec, [placed], settings)
    return found


def to_coco_results(found: dict[int, Detections]) -> list[dict[str, Any]]:
    """COCO results (image_id, category_id 1, bbox xywh, score), best first per image."""
    results = []
    for image_id, dets in sorted(found.items()):
        for box, score in zip(dets.boxes, dets.scores, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append({"image_id": int(image_id), "category_id": PERSON_CATEGORY,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})  # fmt: skip
    return results


# mmpose's top-down demos hand the pose model person boxes scoring above bbox_thr 0.3
# after a second NMS at nms_thr 0.3 (rtmw.pipeline.detect.person_boxes)
HANDOFF = {"score_thr": 0.3, "nms_thr": 0.3}


def handoff_boxes(found: dict[int, Detections]) -> dict[int, Detections]:
    """What a deployment gives the pose model: :func:`person_boxes`' hand-off, per image
    (the full 0.001-threshold list is for box AP; a pose run on it would crop ~300 boxes
    per frame)."""
    from rtmw.pipeline.detect import nms

    kept: dict[int, Detections] = {}
    for image_id, dets in found.items():
        confident = dets.select(dets.scores > HANDOFF["score_thr"])
        kept[image_id] = confident.select(nms(confident.boxes, confident.scores,
                                              HANDOFF["nms_thr"]))  # fmt: skip
    return kept


def write_detections(found: dict[int, Detections], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_coco_results(found)) + "\n")
    return path


def evaluate_person_boxes(
    ann_file: str | Path, results: list[dict[str, Any]], image_ids: Iterable[int]
) -> BoxAP:
    """Person box AP/AP50/AP75/AR@100 on ``image_ids`` of a COCO-format annotation file."""
    coco_cls, cocoeval_cls = _import_xtcocotools()
    ids = sorted({int(i) for i in image_ids})
    if not ids:
        raise DataError("no images to score boxes on")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = coco_cls(str(ann_file))
        if not results:
            return BoxAP(0.0, 0.0, 0.0, 0.0, len(ids), 0)
        detections = coco.loadRes(results)
        evaluator = cocoeval_cls(coco, detections, "bbox")
        # xtcocotools' compiled box IoU is built against numpy 1 (it fails on numpy 2):
        # the same IoU, in numpy (crowd ground truth: intersection over the detection)
        evaluator.computeIoU = lambda img, cat: _coco_box_ious(evaluator, img, cat)
        evaluator.params.imgIds = ids
        evaluator.params.catIds = [PERSON_CATEGORY]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [max(float(s), 0.0) for s in evaluator.stats]  # -1 (no ground truth) → 0
    return BoxAP(stats[0], stats[1], stats[2], stats[8], len(ids), len(results))


def _coco_box_ious(evaluator: Any, image_id: int, category_id: int) -> Any:
    """COCOeval.computeIoU for iouType 'bbox': detections by score (at most maxDets[-1])
    against ground truth, xywh boxes, as pycocotools' maskUtils.iou computes them."""
    gts = evaluator._gts[image_id, category_id]
    dts = evaluator._dts[image_id, category_id]
    if not gts or not dts:
        return []
    order = np.argsort([-d["score"] for d in dts], kind="mergesort")
    dts = [dts[i] for i in order][: evaluator.params.maxDets[-1]]
    d = np.asarray([x["bbox"] for x in dts], np.float64)
    g = np.asarray([x["bbox"] for x in gts], np.float64)
    crowd = np.asarray([int(x["iscrowd"]) for x in gts], bool)
    x1 = np.maximum(d[:, None, 0], g[None, :, 0])
    y1 = np.maximum(d[:, None, 1], g[None, :, 1])
    x2 = np.minimum(d[:, None, 0] + d[:, None, 2], g[None, :, 0] + g[None, :, 2])
    y2 = np.minimum(d[:, None, 1] + d[:, None, 3], g[None, :, 1] + g[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_d = (d[:, 2] * d[:, 3])[:, None]
    union = np.where(crowd[None, :], area_d, area_d + (g[:, 2] * g[:, 3])[None, :] - inter)
    return inter / np.maximum(union, 1e-12)


def person_boxes_ap(
    infer: InferFn, spec: DetectorSpec, ann_file: str | Path, images: dict[int, Path],
    *, progress: bool = False,
) -> tuple[BoxAP, dict[int, Detections]]:  # fmt: skip
    """Detect on every image and score the boxes: (box AP, detections per image)."""
    found = detect_images(infer, spec, images.items(), progress=progress)
    return evaluate_person_boxes(ann_file, to_coco_results(found), images), found


def frame_batch(spec: DetectorSpec, frames: list[np.ndarray]) -> np.ndarray:
    """Letterboxed frames as one (N,3,H,W) batch (the bench times batches of them)."""
    return np.concatenate([letterbox(frame, spec)[0] for frame in frames])
