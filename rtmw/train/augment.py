"""Top-down training augmentations, following mmpose's RTMW stage-1 pipeline.

GetBBoxCenterScale (padding 1.25) → RandomFlip (pairs swapped) → RandomHalfBody
(prob 0.3, padding 1.5, upper body preferred 0.7) → RandomBBoxTransform (shift 0.16
at prob 0.3, scale jitter, rotation at prob 0.6) → affine warp → photometric jitter,
blur and one coarse dropout hole. Everything happens in one affine matrix per sample,
so the keypoints go through exactly the warp the pixels do.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rtmw.keypoints import FLIP_INDICES
from rtmw.pipeline.preprocess import boxes_to_center_scale, warp_crop

LOWER_BODY_IDS = np.arange(11, 23)  # hips, knees, ankles and feet (coco_wholebody 'lower')
UPPER_BODY_IDS = np.setdiff1d(np.arange(133), LOWER_BODY_IDS)


@dataclass(frozen=True)
class AugmentConfig:
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_total: int = 9
    half_body_min_upper: int = 2
    half_body_min_lower: int = 3
    half_body_padding: float = 1.5
    upper_prioritized_prob: float = 0.7
    shift_factor: float = 0.16
    shift_prob: float = 0.3
    scale_range: tuple[float, float] = (0.75, 1.25)
    rotate_factor: float = 30.0
    rotate_prob: float = 0.6
    photometric_prob: float = 0.8
    blur_prob: float = 0.1
    dropout_prob: float = 0.5
    dropout_range: tuple[float, float] = (0.2, 0.4)


NO_AUGMENT = AugmentConfig(
    flip_prob=0.0,
    half_body_prob=0.0,
    shift_prob=0.0,
    scale_range=(1.0, 1.0),
    rotate_prob=0.0,
    photometric_prob=0.0,
    blur_prob=0.0,
    dropout_prob=0.0,
)


def rotated_warp(
    center: np.ndarray, scale_w: float, angle_deg: float, input_size: tuple[int, int]
) -> np.ndarray:
    """2×3 map image → crop: centre to the crop's centre, scale_w pixels to its width, rotated."""
    width, height = input_size
    factor = width / scale_w
    theta = np.deg2rad(angle_deg)
    cos, sin = np.cos(theta) * factor, np.sin(theta) * factor
    linear = np.array([[cos, sin], [-sin, cos]])
    offset = np.array([width * 0.5, height * 0.5]) - linear @ center
    return np.concatenate([linear, offset[:, None]], axis=1)


def _half_body_box(
    keypoints: np.ndarray, visible: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator
) -> np.ndarray | None:
    if visible.sum() < cfg.half_body_min_total or rng.random() > cfg.half_body_prob:
        return None
    upper = UPPER_BODY_IDS[visible[UPPER_BODY_IDS]]
    lower = LOWER_BODY_IDS[visible[LOWER_BODY_IDS]]
    prefer_upper = rng.random() < cfg.upper_prioritized_prob
    if len(upper) < cfg.half_body_min_upper and len(lower) < cfg.half_body_min_lower:
        return None
    if len(lower) < cfg.half_body_min_lower:
        ids = upper
    elif len(upper) < cfg.half_body_min_upper:
        ids = lower
    else:
        ids = upper if prefer_upper else lower
    points = keypoints[ids]
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def sample_warp(
    bbox_xyxy: np.ndarray,
    keypoints: np.ndarray,
    visible: np.ndarray,
    input_size: tuple[int, int],
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, bool]:
    """A random image→crop affine for one person, and whether it mirrors."""
    aspect = input_size[0] / input_size[1]
    half = _half_body_box(keypoints, visible, cfg, rng)
    if half is not None:
        center, scale = boxes_to_center_scale(half[None], aspect, cfg.half_body_padding)
    else:
        center, scale = boxes_to_center_scale(bbox_xyxy[None], aspect)
    c, s = center[0], float(scale[0, 0])
    if rng.random() < cfg.shift_prob:
        c = c + rng.uniform(-1, 1, 2) * cfg.shift_factor * scale[0]
    s *= rng.uniform(*cfg.scale_range)
    angle = 0.0
    if rng.random() < cfg.rotate_prob:
        limit = 2 * cfg.rotate_factor
        angle = float(np.clip(rng.normal() * cfg.rotate_factor, -limit, limit))
    mat = rotated_warp(c, s, angle, input_size)
    flip = bool(rng.random() < cfg.flip_prob)
    if flip:
        mirror = np.array([[-1.0, 0.0, input_size[0] - 1.0], [0.0, 1.0, 0.0]])
        mat = mirror[:, :2] @ mat + mirror[:, 2:] * np.array([[0.0, 0.0, 1.0]])
    return mat, flip


def photometric(crop: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Brightness/contrast/saturation jitter, occasional blur, one dropout hole (uint8 BGR)."""
    out = crop
    if rng.random() < cfg.photometric_prob:
        img = out.astype(np.float32)
        img = img * rng.uniform(0.7, 1.3) + rng.uniform(-32, 32)
        gray = img.mean(axis=2, keepdims=True)
        img = gray + (img - gray) * rng.uniform(0.6, 1.4)
        out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < cfg.blur_prob:
        out = cv2.GaussianBlur(out, (5, 5), 0) if rng.random() < 0.5 else cv2.medianBlur(out, 3)
    if rng.random() < cfg.dropout_prob:
        height, width = out.shape[:2]
        hole_h = int(height * rng.uniform(*cfg.dropout_range))
        hole_w = int(width * rng.uniform(*cfg.dropout_range))
        y = int(rng.integers(0, height - hole_h + 1))
        x = int(rng.integers(0, width - hole_w + 1))
        out = out.copy()
        out[y : y + hole_h, x : x + hole_w] = rng.integers(0, 256, 3, dtype=np.uint8)
    return out


def augment_person(
    image: np.ndarray,
    bbox_xyxy: np.ndarray,
    keypoints_xyv: np.ndarray,
    input_size: tuple[int, int],
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 BGR crop (H,W,3), crop-pixel keypoints (K,2) and visibility weights (K,)."""
    crop, points, weights, _ = augment_person_ordered(
        image, bbox_xyxy, keypoints_xyv, input_size, cfg, rng
    )
    return crop, points, weights


def augment_person_ordered(
    image: np.ndarray,
    bbox_xyxy: np.ndarray,
    keypoints_xyv: np.ndarray,
    input_size: tuple[int, int],
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`augment_person` plus the keypoint order it returns (the flip's left/right
    swap, or identity), so per-keypoint values such as depth follow their keypoints."""
    keypoints = keypoints_xyv[:, :2].astype(np.float64)
    visible = keypoints_xyv[:, 2] > 0
    mat, flip = sample_warp(bbox_xyxy, keypoints, visible, input_size, cfg, rng)
    width, height = input_size
    # the inference warp (OpenCV 4.x fixed point on any OpenCV), rotation and flip included
    crop = warp_crop(image, mat, (width, height))
    crop = photometric(crop, cfg, rng)
    points = keypoints @ mat[:, :2].T + mat[:, 2]
    weights = visible.astype(np.float32)
    order = np.asarray(FLIP_INDICES) if flip else np.arange(len(points))
    return crop, points[order].astype(np.float32), weights[order], order
