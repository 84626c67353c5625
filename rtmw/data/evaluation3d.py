"""3D whole-body error per part: MPJPE after root alignment, PA-MPJPE, H3WB's local views.

A prediction is placed in the camera frame as mmpose's ``TopdownPoseEstimator3D``
places it: the 2D keypoints (image pixels) back-projected through the annotation's
pinhole camera at the ground-truth root depth plus the predicted root-relative z. It is
compared with the ground truth's ``keypoints_3d`` after subtracting each one's root
(the hips' mean, H3WB's pelvis). PA-MPJPE first aligns the prediction to the ground
truth with the similarity transform (scale, rotation, translation) that fits the whole
body best (Procrustes), which takes global scale and orientation errors out. H3WB's
benchmark also aligns the face at the nose and each hand at its wrist; those figures are
reported as ``local``. Everything is in millimetres.

Ground-truth persons are matched to predicted boxes by IoU ≥ 0.5 (one to one, best
first); every labelled keypoint of a matched person counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtmw.data.evalset import box_iou
from rtmw.data.wholebody import ROOT_INDEX, PersonAnnotation
from rtmw.keypoints import PART_SLICES, PARTS

# mmpose's default camera when an annotation has none (TopdownPoseEstimator3D)
DEFAULT_FOCAL = (1145.04940459, 1143.78109572)
# H3WB's local alignments: the face at the nose, each hand at its own root (the wrist)
LOCAL_ROOTS = {"face": 0, "lefthand": PART_SLICES["lefthand"].start,
               "righthand": PART_SLICES["righthand"].start}  # fmt: skip


@dataclass
class Matched3D:
    """One ground-truth person and the prediction of its box."""

    gt: np.ndarray  # (133, 3) metres
    pred: np.ndarray  # (133, 3) metres, camera frame
    valid: np.ndarray  # (133,) bool


@dataclass
class Evaluation3D:
    """Per-part errors (mm): root-aligned MPJPE, PA-MPJPE and H3WB's local alignments."""

    mpjpe: dict[str, float]
    pa_mpjpe: dict[str, float]
    local: dict[str, float]
    persons: int
    keypoints: dict[str, int]
    root_index: tuple[int, ...] = ROOT_INDEX
    per_person: list[float] = field(default_factory=list)  # whole-body MPJPE of each

    def to_dict(self) -> dict[str, Any]:
        return {
            "mpjpe_mm": self.mpjpe,
            "pa_mpjpe_mm": self.pa_mpjpe,
            "local_mpjpe_mm": self.local,
            "persons": self.persons,
            "keypoints": self.keypoints,
            "root": list(self.root_index),
            "alignment": "root (mean of hips); PA: similarity Procrustes over the whole body",
        }


def camera_frame(
    keypoints_px: np.ndarray, depth: np.ndarray, person: PersonAnnotation, image_size: Sequence[int]
) -> np.ndarray:
    """A person's predicted keypoints in the camera frame (metres), mmpose's way."""
    camera = person.camera or {}
    focal = np.asarray(camera.get("f", DEFAULT_FOCAL), np.float64)
    principal = np.asarray(camera.get("c", (image_size[0] / 2, image_size[1] / 2)), np.float64)
    assert person.keypoints_3d is not None
    root_z = (
        person.root_z
        if person.root_z is not None
        else float(person.keypoints_3d[list(ROOT_INDEX), 2].mean())
    )
    z = depth.astype(np.float64) + root_z
    xy = (keypoints_px.astype(np.float64) - principal) / focal * z[:, None]
    result: np.ndarray = np.concatenate([xy, z[:, None]], axis=1)
    return result


def procrustes(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` moved by the similarity transform that best fits it onto ``gt``."""
    mu_p, mu_g = pred.mean(0), gt.mean(0)
    p, g = pred - mu_p, gt - mu_g
    norm_p = float((p**2).sum())
    if norm_p <= 0:
        return np.broadcast_to(mu_g, pred.shape).copy()
    u, s, vt = np.linalg.svd(p.T @ g)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    rotation = u @ fix @ vt
    scale = float((s * np.diag(fix)).sum()) / norm_p
    aligned: np.ndarray = scale * p @ rotation + mu_g
    return aligned


def _root(points: np.ndarray, root_index: Sequence[int]) -> np.ndarray:
    root: np.ndarray = points[list(root_index)].mean(0)
    return root


def evaluate_matched(
    matched: Iterable[Matched3D], root_index: tuple[int, ...] = ROOT_INDEX
) -> Evaluation3D:
    """Mean per-keypoint errors over every valid keypoint of every matched person."""
    errors: dict[str, list[np.ndarray]] = {"mpjpe": [], "pa": []}
    local: dict[str, list[np.ndarray]] = {part: [] for part in LOCAL_ROOTS}
    masks: list[np.ndarray] = []
    per_person: list[float] = []
    for item in matched:
        if not item.valid.any():
            continue
        gt = item.gt - _root(item.gt, root_index)
        pred = item.pred - _root(item.pred, root_index)
        error = np.linalg.norm(pred - gt, axis=1)
        aligned = procrustes(item.pred[item.valid], item.gt[item.valid])
        pa = np.full(len(gt), np.nan)
        pa[item.valid] = np.linalg.norm(aligned - item.gt[item.valid], axis=1)
        errors["mpjpe"].append(np.where(item.valid, error, np.nan))
        errors["pa"].append(pa)
        for part, root in LOCAL_ROOTS.items():
            part_slice = PART_SLICES[part]
            offset = (pred[part_slice] - pred[root]) - (gt[part_slice] - gt[root])
            local[part].append(np.where(item.valid[part_slice], np.linalg.norm(offset, axis=1),
                                        np.nan))  # fmt: skip
        masks.append(item.valid)
        per_person.append(float(np.nanmean(np.where(item.valid, error, np.nan))) * 1000)
    if not masks:
        nan = {part: float("nan") for part in PARTS}
        return Evaluation3D(nan, dict(nan), {p: float("nan") for p in LOCAL_ROOTS}, 0,
                            dict.fromkeys(PARTS, 0), root_index)  # fmt: skip
    stacked = {kind: np.stack(values) for kind, values in errors.items()}
    valid = np.stack(masks)
    summary: dict[str, dict[str, float]] = {"mpjpe": {}, "pa": {}}
    counts: dict[str, int] = {}
    for part in PARTS:
        part_slice = PART_SLICES.get(part, slice(0, valid.shape[1]))
        counts[part] = int(valid[:, part_slice].sum())
        for kind in summary:
            values = stacked[kind][:, part_slice]
            summary[kind][part] = float(np.nanmean(values)) * 1000 if counts[part] else float("nan")
    local_mm = {}
    for part, parts in local.items():
        joined = np.concatenate(parts)
        local_mm[part] = (
            float(np.nanmean(joined)) * 1000 if np.isfinite(joined).any() else float("nan")
        )
    return Evaluation3D(summary["mpjpe"], summary["pa"], local_mm, len(masks), counts,
                        root_index, per_person)  # fmt: skip


def match_persons(
    persons: Sequence[PersonAnnotation],
    boxes_xyxy: np.ndarray,
    keypoints_px: np.ndarray,
    depth: np.ndarray,
    image_size: Sequence[int],
) -> list[Matched3D]:
    """Ground-truth 3D persons of one image paired with predicted boxes (IoU ≥ 0.5)."""
    candidates = [p for p in persons if p.keypoints_3d is not None and not p.iscrowd]
    if not candidates or not len(boxes_xyxy):
        return []
    taken: set[int] = set()
    matched = []
    gt_boxes = np.stack([p.bbox_xyxy for p in candidates]).astype(np.float64)
    pairs: list[tuple[float, int, int]] = []
    for index, box in enumerate(np.asarray(boxes_xyxy, np.float64)):
        iou = box_iou(box, gt_boxes)
        pairs.extend((float(iou[g]), index, g) for g in range(len(candidates)) if iou[g] >= 0.5)
    used_boxes: set[int] = set()
    for _, index, g in sorted(pairs, reverse=True):
        if index in used_boxes or g in taken:
            continue
        used_boxes.add(index)
        taken.add(g)
        person = candidates[g]
        assert person.keypoints_3d is not None
        pred = camera_frame(keypoints_px[index], depth[index], person, image_size)
        matched.append(Matched3D(person.keypoints_3d, pred, person.mask_3d))
    return matched
