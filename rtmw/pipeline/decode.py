"""SimCC decoding (2D and RTMW3D depth), flip-test fusion and back-projection: the only
decode in the project."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rtmw.errors import InputError
from rtmw.outputs import SIMCC_X, ModelOutputs


def check_simcc(
    simcc_x: np.ndarray,
    simcc_y: np.ndarray,
    input_size: tuple[int, int],
    split_ratio: float,
    simcc_z: np.ndarray | None = None,
    depth_size: int | None = None,
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
    if (simcc_z is None) != (depth_size is None):
        raise InputError(
            "a 3D model gives three simcc outputs and a 2D model two; got "
            f"{2 if simcc_z is None else 3} for a {'2D' if depth_size is None else '3D'} model"
        )
    if simcc_z is not None and depth_size is not None:
        depth_bins = int(depth_size * split_ratio)
        if simcc_z.shape != (*simcc_x.shape[:2], depth_bins):
            raise InputError(
                f"simcc_z must be (N, K, {depth_bins}) for depth size {depth_size}, got "
                f"{simcc_z.shape}"
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


def decode_depth(
    simcc_z: np.ndarray,
    scores: np.ndarray,
    *,
    split_ratio: float,
    depth_size: int,
    z_range: float,
) -> np.ndarray:
    """Root-relative depth (N,K) in the codec's metric (metres), as RTMW3D decodes it.

    mmpose's SimCC3DLabel: the argmax bin, −1 where the keypoint's score is ≤ 0, divided
    by the split ratio, then mapped from [0, depth_size] to [−z_range, z_range].
    """
    z_loc = np.argmax(simcc_z, axis=2).astype(np.float32)
    z_loc[scores <= 0] = -1.0
    z_loc /= np.float32(split_ratio)
    depth: np.ndarray = ((z_loc / np.float32(depth_size / 2) - 1.0) * np.float32(z_range)).astype(
        np.float32
    )
    return depth


def camera_keypoints(
    keypoints: np.ndarray,
    depth: np.ndarray,
    root_z: np.ndarray,
    focal: np.ndarray,
    principal: np.ndarray,
) -> np.ndarray:
    """Image-pixel keypoints (N,K,2) and root-relative depth (N,K) → camera-frame metres
    (N,K,3) through a pinhole camera at the root's distance ``root_z`` (N,), as mmpose's
    TopdownPoseEstimator3D places them: Z = z + root_z, (X, Y) = (uv − c) / f · Z."""
    z = depth.astype(np.float64) + np.asarray(root_z, np.float64).reshape(-1, 1)
    f = np.asarray(focal, np.float64).reshape(-1, 1, 2)
    c = np.asarray(principal, np.float64).reshape(-1, 1, 2)
    xy = (keypoints.astype(np.float64) - c) / f * z[..., None]
    return np.concatenate([xy, z[..., None]], axis=-1)


def flip_simcc_x(simcc_x: np.ndarray, flip_indices: Sequence[int]) -> np.ndarray:
    """Map simcc_x of a horizontally flipped crop back to the unflipped frame."""
    return simcc_x[:, list(flip_indices), ::-1]


def fuse_flip(
    outputs: ModelOutputs,
    flipped: ModelOutputs,
    flip_indices: Sequence[int],
) -> ModelOutputs:
    """Average raw logits of the original and the flipped crop (mmpose, no shift).

    simcc_x is mirrored and its keypoints swapped left/right; simcc_y and a 3D model's
    simcc_z only swap keypoints (a horizontal mirror changes neither height nor depth).
    """
    index = list(flip_indices)
    if outputs.names != flipped.names:
        raise InputError(f"flipped outputs {flipped.names} differ from {outputs.names}")

    def back(name: str) -> np.ndarray:
        if name == SIMCC_X:
            return flip_simcc_x(flipped[name], index)
        return flipped[name][:, index]

    return ModelOutputs((name, (outputs[name] + back(name)) * 0.5) for name in outputs)


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
