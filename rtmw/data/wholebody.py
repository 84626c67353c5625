"""Loaders for COCO-WholeBody v1.0 annotation and person-detection files.

The keypoint metadata (names, parts, sigmas, flip pairs, skeleton) lives in
:mod:`rtmw.keypoints` and is re-exported here for the loaders' users.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rtmw.errors import DataError
from rtmw.keypoints import (
    FLIP_INDICES,
    FLIP_PAIRS,
    KEYPOINT_NAMES,
    NUM_KEYPOINTS,
    PART_FIELDS,
    PART_SLICES,
    PARTS,
    SIGMAS,
    SKELETON,
    part_of,
)

__all__ = [
    "FLIP_INDICES",
    "FLIP_PAIRS",
    "KEYPOINT_NAMES",
    "NUM_KEYPOINTS",
    "PARTS",
    "PART_FIELDS",
    "PART_SLICES",
    "SIGMAS",
    "SKELETON",
    "Detection",
    "ImageRecord",
    "PersonAnnotation",
    "WholeBodyAnnotations",
    "keypoints_from_annotation",
    "load_annotations",
    "load_detections",
    "part_of",
    "split_keypoints",
]  # fmt: skip


@dataclass
class PersonAnnotation:
    """One COCO-WholeBody person: keypoints (133,3 with visibility), box, area."""

    id: int
    image_id: int
    bbox_xywh: np.ndarray  # (4,)
    area: float
    keypoints: np.ndarray  # (133, 3): x, y, v
    iscrowd: bool
    part_valid: dict[str, bool]
    # 3D ground truth (RTMW3D data: H3WB, synthetic 3D): camera-frame metres (133, 3),
    # the pinhole camera {"f": [fx, fy], "c": [cx, cy]} and the root's depth (metres)
    keypoints_3d: np.ndarray | None = None
    camera: dict[str, list[float]] | None = None
    root_z: float | None = None
    # which 3D keypoints are labelled (H3WB: all); None: the 2D labels say (v > 0)
    valid_3d: np.ndarray | None = None

    @property
    def mask_3d(self) -> np.ndarray:
        mask: np.ndarray = self.valid_3d if self.valid_3d is not None else self.keypoints[:, 2] > 0
        return mask

    @property
    def has_3d(self) -> bool:
        return self.keypoints_3d is not None

    @property
    def bbox_xyxy(self) -> np.ndarray:
        x, y, w, h = self.bbox_xywh
        return np.array([x, y, x + w, y + h], dtype=np.float32)


@dataclass
class ImageRecord:
    id: int
    file_name: str
    width: int
    height: int


@dataclass
class WholeBodyAnnotations:
    images: dict[int, ImageRecord]
    persons: list[PersonAnnotation]
    path: Path | None = None

    def persons_by_image(self) -> dict[int, list[PersonAnnotation]]:
        """One pass over the persons: a scan per image is quadratic on COCO/H3WB val."""
        index: dict[int, list[PersonAnnotation]] = {}
        for person in self.persons:
            index.setdefault(person.image_id, []).append(person)
        return index


def _read_json(path: str | Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{what} {path} is not valid JSON ({exc})") from None


def keypoints_from_annotation(ann: Mapping[str, Any], where: str = "annotation") -> np.ndarray:
    """(133, 3) array from the five per-part fields of one annotation."""
    parts = []
    for part, field_name in PART_FIELDS.items():
        values = ann.get(field_name)
        expected = 3 * (PART_SLICES[part].stop - PART_SLICES[part].start)
        if values is None or len(values) != expected:
            got = "missing" if values is None else f"{len(values)} values"
            raise DataError(f"{where}: {field_name} must hold {expected} values, got {got}")
        parts.append(np.asarray(values, dtype=np.float64).reshape(-1, 3))
    return np.concatenate(parts, axis=0)


ROOT_INDEX = (11, 12)  # the hips: RTMW3D's and H3WB's root (pelvis)


def _three_d(
    ann: Mapping[str, Any], where: str
) -> tuple[np.ndarray | None, dict[str, list[float]] | None, float | None]:
    """The optional 3D fields of an annotation: ``keypoints_3d`` (133 × [X, Y, Z] metres,
    camera frame), ``camera_param`` ({"f", "c"}) and ``root_z`` (default: the hips' depth)."""
    values = ann.get("keypoints_3d")
    if values is None:
        return None, None, None
    try:
        points = np.asarray(values, dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
    except (TypeError, ValueError):
        raise DataError(f"{where}: keypoints_3d must hold {NUM_KEYPOINTS * 3} numbers") from None
    if not np.isfinite(points).all():
        raise DataError(f"{where}: keypoints_3d holds NaN or Inf")
    camera = ann.get("camera_param")
    parsed = None
    if camera is not None:
        try:
            parsed = {key: [float(v) for v in camera[key]][:2] for key in ("f", "c")}
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{where}: camera_param needs f and c, two numbers each") from None
    root_z = ann.get("root_z")
    root = float(root_z) if root_z is not None else float(points[list(ROOT_INDEX), 2].mean())
    return points, parsed, root


def load_annotations(path: str | Path) -> WholeBodyAnnotations:
    """Read a COCO-WholeBody v1.0 annotation file (person category only); 3D fields
    (``keypoints_3d``, ``camera_param``, ``root_z``) are read when present."""
    data = _read_json(path, "annotation file")
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise DataError(f"{path}: not a COCO annotation file (needs 'images' and 'annotations')")
    images = {}
    for img in data["images"]:
        try:
            images[int(img["id"])] = ImageRecord(
                int(img["id"]), str(img["file_name"]), int(img["width"]), int(img["height"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: malformed image entry ({exc!r})") from None
    persons = []
    if not isinstance(data["images"], list) or not isinstance(data["annotations"], list):
        raise DataError(f"{path}: 'images' and 'annotations' must be lists")
    for ann in data["annotations"]:
        if not isinstance(ann, dict):
            raise DataError(f"{path}: an annotation is not an object ({type(ann).__name__})")
        try:
            category = int(ann.get("category_id", 1))
        except (TypeError, ValueError):
            where = f"{path}: annotation {ann.get('id')}"
            raise DataError(f"{where}: category_id is not an integer") from None
        if category != 1:
            continue
        where = f"{path}: annotation {ann.get('id')}"
        try:
            bbox = np.asarray(ann["bbox"], dtype=np.float32)
            area = float(ann["area"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: needs bbox and area ({exc!r})") from None
        if bbox.shape != (4,):
            raise DataError(f"{where}: bbox must be [x, y, w, h]")
        for key in ("id", "image_id"):
            try:
                int(ann[key])
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{where}: needs an integer {key!r}") from None
        if int(ann["image_id"]) not in images:
            raise DataError(f"{where}: refers to unknown image_id {ann['image_id']}")
        valid = {
            "face": bool(ann.get("face_valid", True)),
            "lefthand": bool(ann.get("lefthand_valid", True)),
            "righthand": bool(ann.get("righthand_valid", True)),
            "foot": bool(ann.get("foot_valid", True)),
        }
        keypoints_3d, camera, root_z = _three_d(ann, where)
        visible_3d = ann.get("keypoints_3d_visible")
        valid_3d = (
            np.asarray(visible_3d, dtype=np.float64).reshape(-1) > 0
            if visible_3d is not None and keypoints_3d is not None
            else None
        )
        if valid_3d is not None and valid_3d.shape != (NUM_KEYPOINTS,):
            raise DataError(f"{where}: keypoints_3d_visible must hold {NUM_KEYPOINTS} flags")
        persons.append(
            PersonAnnotation(
                id=int(ann["id"]),
                image_id=int(ann["image_id"]),
                bbox_xywh=bbox,
                area=area,
                keypoints=keypoints_from_annotation(ann, where),
                iscrowd=bool(ann.get("iscrowd", 0)),
                part_valid=valid,
                keypoints_3d=keypoints_3d,
                camera=camera,
                root_z=root_z,
                valid_3d=valid_3d,
            )
        )
    return WholeBodyAnnotations(images, persons, Path(path))


@dataclass
class Detection:
    image_id: int
    bbox_xyxy: np.ndarray
    score: float


def load_detections(
    path: str | Path, *, min_score: float = 0.0, category_id: int = 1
) -> dict[int, list[Detection]]:
    """Person detections in COCO result format ({image_id, category_id, bbox xywh, score}).

    mmpose's published numbers use all person boxes of
    ``COCO_val2017_detections_AP_H_56_person.json`` (no score threshold).
    """
    data = _read_json(path, "detection file")
    if not isinstance(data, list):
        raise DataError(f"{path}: detection results must be a JSON list")
    out: dict[int, list[Detection]] = {}
    for i, det in enumerate(data):
        try:
            if int(det.get("category_id", category_id)) != category_id:
                continue
            x, y, w, h = (float(v) for v in det["bbox"])
            score = float(det["score"])
            image_id = int(det["image_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: detection {i} malformed ({exc!r})") from None
        if score < min_score or w <= 0 or h <= 0:
            continue
        box = np.array([x, y, x + w, y + h], dtype=np.float32)
        out.setdefault(image_id, []).append(Detection(image_id, box, score))
    return out


def split_keypoints(keypoints: np.ndarray) -> dict[str, list[float]]:
    """(133, 3) → the five per-part flat lists of the COCO-WholeBody result format."""
    if keypoints.shape != (NUM_KEYPOINTS, 3):
        raise DataError(f"keypoints must be (133, 3), got {keypoints.shape}")
    return {
        field_name: keypoints[PART_SLICES[part]].reshape(-1).astype(float).tolist()
        for part, field_name in PART_FIELDS.items()
    }
