"""Boxes → normalised NCHW crops, exactly as mmpose's top-down test pipeline makes them.

GetBBoxCenterScale (padding 1.25) → aspect fixed to the model's w/h → TopdownAffine
(bilinear, no rotation at test time) → BGR→RGB → (x − mean) / std. Every runtime and
the calibration sets take their input from here, so a crop is the same everywhere.

The warp is OpenCV 4.x's fixed-point bilinear ``warpAffine`` (what mmpose and most
deployed C++ pipelines compute), rebuilt here and applied with ``cv2.remap`` on a
16-bit map, so the crop's pixels do not change with the OpenCV release the install
resolves: OpenCV 5's ``warpAffine`` gives other pixels (about a third of a crop's
pixels differ by up to 3 grey levels). ``tests/data/warp_opencv410.npz`` pins it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rtmw.errors import InputError

MEAN_RGB = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD_RGB = np.array([58.395, 57.12, 57.375], dtype=np.float32)
BBOX_PADDING = 1.25
# OpenCV 4.x warpAffine's fixed-point constants (imgproc: INTER_BITS, AB_BITS)
INTER_BITS = 5
INTER_TAB_SIZE = 1 << INTER_BITS
AB_BITS = 10
AB_SCALE = 1 << AB_BITS
ROUND_DELTA = AB_SCALE // INTER_TAB_SIZE // 2


def check_image(image: object) -> np.ndarray:
    """Accept only what the models were trained on: uint8 BGR, (H, W, 3)."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(f"image must be uint8 BGR (H, W, 3), got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"image must be uint8 BGR (H, W, 3), got shape {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"image is too small: {image.shape}")
    return image


def check_boxes(boxes: object, image_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """(N, 4) finite xyxy boxes with positive size, each overlapping the image.

    A box partly outside the image is normal (a truncated person); one entirely
    outside it, or degenerate, is a caller's bug and is refused.
    """
    try:
        array = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(
            f"boxes must be numbers, (N, 4) xyxy; got {type(boxes).__name__}"
        ) from None
    if array.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if array.ndim == 1 and array.shape[0] == 4:
        array = array[None]
    if array.ndim != 2 or array.shape[1] < 4:
        raise InputError(f"boxes must be (N, 4) xyxy, got shape {array.shape}")
    array = array[:, :4]
    if not np.all(np.isfinite(array)):
        raise InputError("boxes contain NaN or infinite values")
    bad = np.flatnonzero((array[:, 2] <= array[:, 0]) | (array[:, 3] <= array[:, 1]))
    if bad.size:
        raise InputError(f"box {bad[0]} has no area (need x2 > x1, y2 > y1): {array[bad[0]]}")
    if image_shape is not None:
        height, width = image_shape[:2]
        outside = np.flatnonzero(
            (array[:, 2] <= 0)
            | (array[:, 3] <= 0)
            | (array[:, 0] >= width)
            | (array[:, 1] >= height)
        )
        if outside.size:
            raise InputError(
                f"box {outside[0]} {array[outside[0]].round(1).tolist()} lies entirely outside "
                f"the {width}x{height} image"
            )
    return array


def boxes_to_center_scale(
    boxes_xyxy: np.ndarray, aspect_ratio: float, padding: float = BBOX_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """Centers (N,2) and scales (N,2) in pixels, padded and widened/heightened to w/h."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    center = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    scale = (boxes[:, 2:] - boxes[:, :2]) * padding
    w, h = scale[:, 0], scale[:, 1]
    too_wide = w > h * aspect_ratio
    fixed = np.where(
        too_wide[:, None],
        np.stack([w, w / aspect_ratio], axis=1),
        np.stack([h * aspect_ratio, h], axis=1),
    )
    return center, fixed


def warp_matrices(center: np.ndarray, scale: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """(N, 2, 3) affine maps from image pixels to crop pixels (no rotation).

    x_crop = (x − cx) · W / sw + W / 2; with the aspect already fixed the same
    factor holds for y, which is what mmpose's three-point construction yields.
    """
    width, height = input_size
    factor = width / scale[:, 0]
    mats = np.zeros((len(center), 2, 3), dtype=np.float64)
    mats[:, 0, 0] = factor
    mats[:, 1, 1] = factor
    mats[:, 0, 2] = width * 0.5 - factor * center[:, 0]
    mats[:, 1, 2] = height * 0.5 - factor * center[:, 1]
    return mats


def _inverse_like_opencv4(mat: np.ndarray) -> np.ndarray:
    """The crop→image map, inverted in OpenCV 4.x warpAffine's operation order (doubles)."""
    m = [float(v) for v in np.asarray(mat, np.float64).reshape(6)]
    det = m[0] * m[4] - m[1] * m[3]
    det = 1.0 / det if det != 0 else 0.0
    a11, a22 = m[4] * det, m[0] * det
    m[0] = a11
    m[1] *= -det
    m[3] *= -det
    m[4] = a22
    b1 = -m[0] * m[2] - m[1] * m[5]
    b2 = -m[3] * m[2] - m[4] * m[5]
    m[2], m[5] = b1, b2
    return np.array(m, np.float64)


def fixed_point_maps(mat: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV 4.x's bilinear warpAffine as remap tables: (H, W, 2) int16 source pixels and
    (H, W) uint16 indices into the 32×32 interpolation table, rounded exactly as it does."""
    width, height = size
    m = _inverse_like_opencv4(mat)
    xs = np.arange(width, dtype=np.float64)
    ys = np.arange(height, dtype=np.float64)
    # cvRound is round-half-to-even, as np.rint; products first, as the C++ evaluates them
    adelta = np.rint(m[0] * xs * AB_SCALE).astype(np.int64)
    bdelta = np.rint(m[3] * xs * AB_SCALE).astype(np.int64)
    x0 = np.rint((m[1] * ys + m[2]) * AB_SCALE).astype(np.int64) + ROUND_DELTA
    y0 = np.rint((m[4] * ys + m[5]) * AB_SCALE).astype(np.int64) + ROUND_DELTA
    x = (x0[:, None] + adelta[None, :]) >> (AB_BITS - INTER_BITS)
    y = (y0[:, None] + bdelta[None, :]) >> (AB_BITS - INTER_BITS)
    xy = np.empty((height, width, 2), np.int16)
    xy[..., 0] = np.clip(x >> INTER_BITS, -32768, 32767)
    xy[..., 1] = np.clip(y >> INTER_BITS, -32768, 32767)
    alpha = ((y & (INTER_TAB_SIZE - 1)) * INTER_TAB_SIZE + (x & (INTER_TAB_SIZE - 1))).astype(
        np.uint16
    )
    return xy, alpha


def warp_crop(image: np.ndarray, mat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One bilinear crop, pixel-identical to OpenCV 4.x ``warpAffine`` on any OpenCV ≥ 4.8."""
    xy, alpha = fixed_point_maps(mat, size)
    crop: np.ndarray = cv2.remap(
        image, xy, alpha, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return crop


def normalize_crops(crops_bgr: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 BGR → (N, 3, H, W) float32 RGB, mean/std normalised."""
    rgb = crops_bgr[..., ::-1].astype(np.float32)
    rgb -= MEAN_RGB
    rgb /= STD_RGB
    return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))


@dataclass
class CropBatch:
    """Model input plus what is needed to map predictions back to the image."""

    inputs: np.ndarray  # (N, 3, H, W) float32
    centers: np.ndarray  # (N, 2)
    scales: np.ndarray  # (N, 2)
    input_size: tuple[int, int]  # (W, H)

    def __len__(self) -> int:
        return len(self.inputs)


def crop_persons(
    image: np.ndarray, boxes_xyxy: np.ndarray, input_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp every person box of one image: uint8 crops (N,H,W,3), centers, scales."""
    image = check_image(image)
    boxes = check_boxes(boxes_xyxy, image.shape)
    width, height = input_size
    center, scale = boxes_to_center_scale(boxes, width / height)
    mats = warp_matrices(center, scale, input_size)
    crops = np.empty((len(boxes), height, width, 3), dtype=np.uint8)
    for i, mat in enumerate(mats):
        crops[i] = warp_crop(image, mat, (width, height))
    return crops, center, scale


def preprocess(image: np.ndarray, boxes_xyxy: np.ndarray, input_size: tuple[int, int]) -> CropBatch:
    """The single top-down pre-processing of the project."""
    crops, center, scale = crop_persons(image, boxes_xyxy, input_size)
    return CropBatch(normalize_crops(crops), center, scale, input_size)
