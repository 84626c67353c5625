"""An evaluation set: annotated images and the person boxes a pose model is run on.

The boxes come from the ground truth or from a detector file, chosen once here, so that
training validation, the benchmark, the gates and calibration all see the same boxes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rtmw.boxes import box_iou as pairwise_box_iou
from rtmw.data.wholebody import WholeBodyAnnotations, load_annotations, load_detections
from rtmw.errors import DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoxedImage:
    """One image with the person boxes the pose model is run on."""

    image_id: int
    path: Path
    boxes_xyxy: np.ndarray  # (N, 4)
    box_scores: np.ndarray  # (N,)
    size: tuple[int, int] | None = None  # (width, height) the annotation file states


@dataclass(frozen=True)
class EvalSet:
    """Images, their annotation file and where the boxes come from ('gt' or 'detector')."""

    ann_file: Path
    annotations: WholeBodyAnnotations
    items: list[BoxedImage]
    box_source: str

    @property
    def num_instances(self) -> int:
        return sum(len(item.boxes_xyxy) for item in self.items)


def load_eval_set(
    image_dir: str | Path,
    ann_file: str | Path,
    det_file: str | Path | None = None,
    *,
    limit: int | None = None,
) -> EvalSet:
    """Boxes per image: detector boxes when ``det_file`` is given, else ground truth.

    Ground-truth boxes skip crowd annotations and persons without a labelled keypoint,
    as mmpose's COCO-WholeBody dataset does.
    """
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DataError(f"image folder not found: {image_dir}")
    from rtmw.data.h3wb import as_coco

    ann_file = as_coco(ann_file, image_dir)  # an H3WB release file, converted once
    anns = load_annotations(ann_file)
    image_ids = sorted(anns.images)
    if limit is not None:
        image_ids = image_ids[:limit]
    items: list[BoxedImage] = []
    if det_file is not None:
        dets = load_detections(det_file)
        outside = 0
        for image_id in image_ids:
            width, height = anns.images[image_id].width, anns.images[image_id].height
            listed = dets.get(image_id, [])
            # a detector's box entirely off the frame (mmdet does not clip to the frame)
            # cannot hold a person: dropped, and counted
            found = [d for d in listed if d.bbox_xyxy[2] > 0 and d.bbox_xyxy[3] > 0
                     and d.bbox_xyxy[0] < width and d.bbox_xyxy[1] < height]  # fmt: skip
            outside += len(listed) - len(found)
            if found:
                items.append(
                    BoxedImage(
                        image_id,
                        image_dir / anns.images[image_id].file_name,
                        np.stack([d.bbox_xyxy for d in found]).astype(np.float32),
                        np.array([d.score for d in found], np.float32),
                        (anns.images[image_id].width, anns.images[image_id].height),
                    )
                )
        if outside:
            logger.info("%s: %d detection(s) entirely outside their image dropped", det_file,
                        outside)  # fmt: skip
    else:
        by_image: dict[int, list[np.ndarray]] = {}
        for person in anns.persons:
            labelled = (person.keypoints[:, 2] > 0).any() or person.has_3d
            if person.iscrowd or not labelled:
                continue
            by_image.setdefault(person.image_id, []).append(person.bbox_xyxy)
        wanted = set(image_ids)
        for image_id in image_ids:
            boxes = by_image.get(image_id)
            if boxes and image_id in wanted:
                items.append(
                    BoxedImage(
                        image_id,
                        image_dir / anns.images[image_id].file_name,
                        np.stack(boxes).astype(np.float32),
                        np.ones(len(boxes), np.float32),
                        (anns.images[image_id].width, anns.images[image_id].height),
                    )
                )
    if not items:
        raise DataError(f"{ann_file}: no images with person boxes to evaluate")
    missing = [item.path for item in items if not item.path.is_file()]
    if missing:
        raise DataError(f"{len(missing)} annotated images missing, first: {missing[0]}")
    return EvalSet(Path(ann_file), anns, items, "detector" if det_file is not None else "gt")


def read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"could not read image {path}")
    return image


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each of ``others`` (M, 4): how predicted boxes are matched
    to ground-truth persons (one row of rtmw.boxes.box_iou)."""
    row: np.ndarray = pairwise_box_iou(np.asarray(box)[None, :], np.asarray(others))[0]
    return row


def split_annotations(
    ann_file: str | Path, out_dir: str | Path, names: tuple[str, ...] = ("search", "confirm")
) -> list[Path]:
    """Split an annotation file by image into ``len(names)`` disjoint files (images dealt
    in turn by sorted id, each with its own annotations): a held-out set one choice is made
    on and another it is confirmed on, without copying images."""
    import json

    from rtmw.data.wholebody import _read_json

    data = _read_json(ann_file, "annotation file")
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise DataError(
            f"{ann_file}: not a COCO annotation file (needs 'images' and 'annotations')"
        )
    images = sorted(data["images"], key=lambda image: int(image["id"]))
    if len(images) < 2 * len(names):
        raise DataError(
            f"{ann_file}: {len(images)} images cannot be split {len(names)} ways (need "
            f"at least {2 * len(names)})"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, name in enumerate(names):
        chosen = images[index :: len(names)]
        ids = {int(image["id"]) for image in chosen}
        kept = [a for a in data["annotations"] if int(a["image_id"]) in ids]
        part = {**data, "images": chosen, "annotations": kept}
        path = out / f"{Path(ann_file).stem}.{name}.json"
        path.write_text(json.dumps(part))
        paths.append(path)
    return paths
