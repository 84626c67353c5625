"""SimCC decoding, flip-test fusion and back-projection: the only decode in the project."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rtmw.errors import InputError


def check_simcc(
    simcc_x: np.ndarray, simcc_y: np.ndarray, input_size: tuple[int, int], split_ratio: float
) -> None:
    expected = (int(input_size[0] * split_ratio), int(input_size[1] * split_ratio))
    if simcc_x.ndim != 3 or simcc_y.ndim != 3 or simcc_x.shape[:2] != simcc_y.shape[:2]:
        raise InputError(
            f"simcc outputs must be (N, K, Wx) and (N, K, Wy), got {simcc_x.shape} and "
            f"{simcc_y.shape}"
        )
    if (simcc_x.shape[2], simcc_y.shape[2]) != expected:
        raise InputError(
            f"simcc lengths {simcc_x.shape[2]}/{simcc_y.shape[2]} do not match input size "
            f"{input_size[0]}x{input_size[1]} at split ratio {split_ratio} (expected {expected})"
        )


def decode_simcc(
    simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Argmax decode of raw logits: keypoints (N,K,2) in crop pixels, scores (N,K).

    Score is min(max_x, max_y) of the raw logits, as mmpose computes it; keypoints whose
    score is ≤ 0 are marked invalid with coordinates −1.
    """
    x_idx = np.argmax(simcc_x, axis=2)
    y_idx = np.argmax(simcc_y, axis=2)
    max_x = np.take_along_axis(simcc_x, x_idx[..., None], axis=2)[..., 0]
    max_y = np.take_along_axis(simcc_y, y_idx[..., None], axis=2)[..., 0]
    scores = np.minimum(max_x, max_y).astype(np.float32)
    keypoints = np.stack([x_idx, y_idx], axis=-1).astype(np.float32) / np.float32(split_ratio)
    keypoints[scores <= 0] = -1.0
    return keypoints, scores


def flip_simcc_x(simcc_x: np.ndarray, flip_indices: Sequence[int]) -> np.ndarray:
    """Map simcc_x of a horizontally flipped crop back to the unflipped frame."""
    return simcc_x[:, list(flip_indices), ::-1]


def fuse_flip(
    simcc_x: np.ndarray,
    simcc_y: np.ndarray,
    flipped_x: np.ndarray,
    flipped_y: np.ndarray,
    flip_indices: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Average raw logits of the original and the flipped crop (mmpose, no shift)."""
    index = list(flip_indices)
    fused_x = (simcc_x + flip_simcc_x(flipped_x, index)) * 0.5
    fused_y = (simcc_y + flipped_y[:, index]) * 0.5
    return fused_x, fused_y


def crop_to_image(
    keypoints: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    input_size: tuple[int, int],
) -> np.ndarray:
    """kp / input_size · scale + center − scale / 2, per person.

    Applied to every keypoint, the −1 markers included, exactly as mmpose does (its
    evaluation scores those coordinates too); validity is carried by ``scores > 0``.
    """
    size = np.asarray(input_size, dtype=np.float64)
    scale = np.asarray(scales, dtype=np.float64)[:, None, :]
    center = np.asarray(centers, dtype=np.float64)[:, None, :]
    out = keypoints / size * scale + center - scale * 0.5
    return out.astype(np.float32)
