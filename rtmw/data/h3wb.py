"""H3WB (Human3.6M 3D WholeBody) annotations, read as released, as COCO-WholeBody-3D.

Two releases are read unchanged:

- the official JSON files (``RGBto3D_train.json``, ``2Dto3D_train.json``, ...): one
  record per sample id with ``image_path``, ``bbox`` {x_min, y_min, x_max, y_max},
  ``keypoints_3d`` {joint: {x, y, z}} in millimetres and, in the 2D→3D files,
  ``keypoints_2d`` {joint: {x, y}}. They carry no camera: mmpose's default focal length
  and the image centre are used to place predictions, as mmpose does;
- mmpose's ``h3wb_train.npz`` (``train_data`` subject → action → camera → ``pose_2d``,
  ``camera_3d`` in mm, ``frame_id``; ``metadata`` cameras with K; ``bbox`` per frame),
  with images under ``<image_root>/original/<S>/Images/<action>.<camera>/frame_<f>.jpg``.
  It is a pickled object array: numpy's loader unpickles it (``allow_pickle``), so only
  point rtmw at an npz file from a source you trust.

Either becomes one COCO-WholeBody-format file with the 3D fields rtmw reads
(``keypoints_3d`` in metres, ``camera_param``, ``root_z``, ``keypoints_3d_visible``),
written once into a cache folder keyed by the source file's sha256, so that every tool
(the evaluator, training, the bench) reads it like any other annotation file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rtmw.errors import DataError
from rtmw.hashing import sha256_file
from rtmw.keypoints import NUM_KEYPOINTS, PART_FIELDS, PART_SLICES

logger = logging.getLogger(__name__)

# H3WB keeps Human3.6M's four cameras in this order (mmpose's H36MWholeBodyDataset)
CAMERAS = ("54138969", "55011271", "58860488", "60457274")


def cache_dir() -> Path:
    explicit = os.environ.get("RTMW_CACHE")
    if explicit:
        return Path(explicit) / "h3wb"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "rtmw" / "h3wb"


def is_h3wb_json(data: Any) -> bool:
    """A mapping of sample ids to records with ``keypoints_3d`` and a box or 2D points."""
    if not isinstance(data, Mapping) or not data or "annotations" in data:
        return False
    first = next(iter(data.values()))
    return (
        isinstance(first, Mapping)
        and "keypoints_3d" in first
        and ("bbox" in first or "keypoints_2d" in first)
    )


def _points(record: Mapping[str, Any], key: str, axes: str, where: str) -> np.ndarray:
    joints = record.get(key)
    if not isinstance(joints, Mapping) or len(joints) != NUM_KEYPOINTS:
        raise DataError(f"{where}: {key} must name {NUM_KEYPOINTS} joints")
    try:
        return np.array([[float(joints[str(j)][a]) for a in axes] for j in range(NUM_KEYPOINTS)])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: malformed {key} ({exc!r})") from None


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image file's header; Human3.6M's 1000×1000 if absent."""
    if path.is_file():
        try:
            from PIL import Image

            with Image.open(path) as image:
                return int(image.size[0]), int(image.size[1])
        except (ImportError, OSError):
            pass
    return 1000, 1000


def _annotation(
    ann_id: int, image_id: int, box: np.ndarray, points_3d_m: np.ndarray,
    points_2d: np.ndarray | None, camera: dict[str, list[float]] | None,
) -> dict[str, Any]:  # fmt: skip
    x1, y1, x2, y2 = (float(v) for v in box)
    keypoints = np.zeros((NUM_KEYPOINTS, 3))
    if points_2d is not None:
        keypoints[:, :2] = points_2d
        keypoints[:, 2] = 2.0
    fields = {
        PART_FIELDS[part]: keypoints[PART_SLICES[part]].reshape(-1).round(3).tolist()
        for part in PART_FIELDS
    }
    ann: dict[str, Any] = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [x1, y1, x2 - x1, y2 - y1],
        "area": float((x2 - x1) * (y2 - y1)),
        "num_keypoints": int(np.sum(keypoints[:17, 2] > 0)),
        **fields,
        "face_valid": points_2d is not None,
        "lefthand_valid": points_2d is not None,
        "righthand_valid": points_2d is not None,
        "foot_valid": points_2d is not None,
        "keypoints_3d": points_3d_m.reshape(-1).round(6).tolist(),
        "keypoints_3d_visible": [1] * NUM_KEYPOINTS,
    }
    if camera is not None:
        ann["camera_param"] = camera
    return ann


def from_json(data: Mapping[str, Any], image_root: Path, where: str) -> dict[str, Any]:
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index, (sample_id, record) in enumerate(data.items()):
        here = f"{where}: sample {sample_id}"
        points_3d = _points(record, "keypoints_3d", "xyz", here) / 1000.0
        points_2d = (
            _points(record, "keypoints_2d", "xy", here) if "keypoints_2d" in record else None
        )
        file_name = str(record.get("image_path", f"{sample_id}.jpg"))
        box_record = record.get("bbox")
        if isinstance(box_record, Mapping):
            box = np.array([float(box_record[k]) for k in ("x_min", "y_min", "x_max", "y_max")])
        elif points_2d is not None:
            box = np.concatenate([points_2d.min(0), points_2d.max(0)])
        else:
            raise DataError(f"{here}: needs a bbox or keypoints_2d")
        width, height = _image_size(image_root / file_name)
        images.append({"id": index + 1, "file_name": file_name, "width": width, "height": height,
                       "h3wb_id": str(sample_id)})  # fmt: skip
        annotations.append(_annotation(index + 1, index + 1, box, points_3d, points_2d, None))
    return _coco(images, annotations, where)


def from_npz(path: Path, image_root: Path, subjects: tuple[str, ...] | None) -> dict[str, Any]:
    """mmpose's H3WB npz: every (subject, action, camera, frame) as one image."""
    try:
        data = np.load(path, allow_pickle=True)
        train, cameras, boxes = (data[k].item() for k in ("train_data", "metadata", "bbox"))
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not mmpose's H3WB npz ({exc})") from None
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for subject in sorted(train):
        if subjects is not None and subject not in subjects:
            continue
        for action in sorted(train[subject]):
            frames = train[subject][action]["frame_id"]
            for cam in CAMERAS:
                if cam not in train[subject][action]:
                    continue
                record = train[subject][action][cam]
                intrinsics = np.asarray(cameras[subject][cam]["K"])[0]
                camera = {
                    "f": [float(intrinsics[0, 0]) * 1000, float(intrinsics[1, 1]) * 1000],
                    "c": [float(intrinsics[0, 2]) * 1000, float(intrinsics[1, 2]) * 1000],
                }
                for i, frame in enumerate(frames):
                    box = boxes[(subject, action, cam, frame)]
                    file_name = f"original/{subject}/Images/{action}.{cam}/frame_{frame}.jpg"
                    image_id = len(images) + 1
                    width, height = _image_size(image_root / file_name)
                    images.append({"id": image_id, "file_name": file_name, "width": width,
                                   "height": height})  # fmt: skip
                    annotations.append(_annotation(
                        image_id, image_id,
                        np.array([box["x_min"], box["y_min"], box["x_max"], box["y_max"]]),
                        np.asarray(record["camera_3d"][i], np.float64) / 1000.0,
                        np.asarray(record["pose_2d"][i], np.float64), camera,
                    ))  # fmt: skip
    if not annotations:
        raise DataError(f"{path}: no samples (subjects {subjects or 'all'})")
    return _coco(images, annotations, str(path))


def _coco(
    images: list[dict[str, Any]], annotations: list[dict[str, Any]], where: str
) -> dict[str, Any]:
    return {
        "info": {"description": f"H3WB converted by rtmw from {where}", "version": "1.0"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }


def sniff(path: Path) -> str | None:
    """'npz' or 'json' when ``path`` is an H3WB release file, else None."""
    if path.suffix == ".npz":
        return "npz"
    if path.suffix != ".json" or not path.is_file():
        return None
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip()
    if not head.startswith(b"{") or b'"images"' in head or b'"annotations"' in head:
        return None
    return "json" if b"keypoints_3d" in head or b"keypoints_2d" in head else None


def as_coco(path: str | Path, image_root: str | Path | None = None) -> Path:
    """The COCO-WholeBody-3D file of an H3WB release file (converted once, cached); any
    other file is returned as it is."""
    path = Path(path)
    kind = sniff(path)
    if kind is None:
        return path
    root = Path(image_root) if image_root is not None else path.parent
    digest = sha256_file(path)[:16]
    out = cache_dir() / f"{path.stem}-{digest}.json"
    if out.is_file():
        return out
    logger.info("converting H3WB %s to COCO-WholeBody-3D (%s)", path, out)
    if kind == "npz":
        coco = from_npz(path, root, None)
    else:
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from None
        if not is_h3wb_json(data):
            raise DataError(f"{path}: neither COCO-WholeBody nor an H3WB annotation file")
        coco = from_json(data, root, str(path))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    partial.write_text(json.dumps(coco))
    partial.replace(out)
    return out


def to_h3wb_json(coco: Mapping[str, Any]) -> dict[str, Any]:
    """A COCO-WholeBody-3D file in H3WB's JSON release format (mm), e.g. to hand rtmw's
    synthetic 3D data to H3WB tools, and to test this loader on the real format."""
    from rtmw.data.wholebody import keypoints_from_annotation

    files = {image["id"]: image["file_name"] for image in coco["images"]}
    out: dict[str, Any] = {}
    for index, ann in enumerate(a for a in coco["annotations"] if "keypoints_3d" in a):
        metres = np.asarray(ann["keypoints_3d"], np.float64).reshape(NUM_KEYPOINTS, 3)
        points = metres * 1000
        kpts = keypoints_from_annotation(ann)
        camera = ann.get("camera_param")
        if camera is not None:  # H3WB labels every keypoint: project the unlabelled ones
            projected = metres[:, :2] / metres[:, 2:] * np.asarray(camera["f"]) + camera["c"]
            kpts[:, :2] = np.where(kpts[:, 2:] > 0, kpts[:, :2], projected)
        x, y, w, h = ann["bbox"]
        out[str(index)] = {
            "image_path": files[ann["image_id"]],
            "bbox": {"x_min": x, "y_min": y, "x_max": x + w, "y_max": y + h},
            "keypoints_2d": {str(j): {"x": float(kpts[j, 0]), "y": float(kpts[j, 1])}
                             for j in range(NUM_KEYPOINTS)},
            "keypoints_3d": {str(j): {"x": float(p[0]), "y": float(p[1]), "z": float(p[2])}
                             for j, p in enumerate(points)},
        }  # fmt: skip
    return out
