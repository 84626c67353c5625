"""SimCC training targets and the KL-divergence loss, with mmpose's RTMW conventions.

Codec (``SimCCLabel``): split ratio 2, Gaussian label smoothing with sigma (4.9, 5.66)
for (x, y), un-normalised (peak 1), centred on round(coordinate × ratio); a keypoint
whose 3-sigma window falls off the SimCC axis gets weight 0. Loss (``KLDiscretLoss``):
log-softmax of the logits (beta 1) against softmax(label × 10), mean over bins,
weighted per keypoint, the face keypoints (23–90) at half weight, summed over
instances and divided by the number of keypoints.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

SIMCC_SIGMA = (4.9, 5.66)
LABEL_BETA = 10.0
FACE_MASK = tuple(range(23, 91))
FACE_MASK_WEIGHT = 0.5
HANDS = tuple(range(91, 133))


def simcc_targets(
    keypoints: np.ndarray,
    weights: np.ndarray,
    input_size: tuple[int, int],
    *,
    split_ratio: float = 2.0,
    sigma: tuple[float, float] = SIMCC_SIGMA,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, K, 2) crop-pixel keypoints and (N, K) weights → target_x, target_y, weights."""
    width, height = input_size
    wx, wy = round(width * split_ratio), round(height * split_ratio)
    mu = np.around(keypoints * split_ratio)
    radius = np.asarray(sigma) * 3
    low = mu - radius
    high = mu + radius + 1
    inside = (low[..., 0] < wx) & (low[..., 1] < wy) & (high[..., 0] >= 0) & (high[..., 1] >= 0)
    weights = np.where(inside & (weights >= 0.5), weights, 0.0).astype(np.float32)
    xs = np.arange(wx, dtype=np.float32)
    ys = np.arange(wy, dtype=np.float32)
    target_x = np.exp(-((xs - mu[..., :1]) ** 2) / (2 * sigma[0] ** 2)).astype(np.float32)
    target_y = np.exp(-((ys - mu[..., 1:2]) ** 2) / (2 * sigma[1] ** 2)).astype(np.float32)
    target_x *= (weights > 0)[..., None]
    target_y *= (weights > 0)[..., None]
    return target_x, target_y, weights


def kl_simcc_loss(
    pred_x: Tensor,
    pred_y: Tensor,
    target_x: Tensor,
    target_y: Tensor,
    weights: Tensor,
    *,
    label_beta: float = LABEL_BETA,
    face_weight: float = FACE_MASK_WEIGHT,
    hand_weight: float = 1.0,
) -> Tensor:
    """KLDiscretLoss(beta=1, label_softmax=True, label_beta=10, mask=face, mask_weight=0.5).

    ``hand_weight`` (not mmpose's: 1 there) scales the 42 hand keypoints' terms: the demo
    model's hands lag every other part, and their OKS sigmas are the tightest.
    """
    _, num_keypoints, _ = pred_x.shape
    part_weight = torch.ones(num_keypoints, dtype=pred_x.dtype, device=pred_x.device)
    if num_keypoints > FACE_MASK[-1]:
        part_weight[list(FACE_MASK)] = face_weight
    if num_keypoints > HANDS[-1]:
        part_weight[list(HANDS)] = hand_weight
    total = pred_x.new_zeros(())
    for pred, target in ((pred_x, target_x), (pred_y, target_y)):
        log_p = F.log_softmax(pred, dim=-1)
        label = F.softmax(target * label_beta, dim=-1)
        kl = F.kl_div(log_p, label, reduction="none").mean(dim=-1)
        total = total + (kl * weights * part_weight).sum()
    return total / num_keypoints


# RTMW3D (mmpose projects/rtmpose3d): SimCC3DLabel targets and KLDiscretLoss2, as the
# project's configs use them: sigma (6, 6.93, 6), un-normalised, z relative to the hips'
# mean and mapped from [−z_range, z_range] onto [0, depth_size]; the loss applies
# beta 10 to the logits and label softmax (beta 10), no face mask, sums per keypoint
# and divides by the number of keypoints. The configs' BoneLoss is computed on argmax
# coordinates and so gives no gradient: it is not part of the training objective here.
SIMCC3D_SIGMA = (6.0, 6.93, 6.0)
LOGIT_BETA_3D = 10.0


def depth_labels(
    keypoints_3d: np.ndarray, root_index: tuple[int, ...], z_range: float, depth_size: int
) -> np.ndarray:
    """(N, K, 3) camera-frame metres → (N, K) z in the codec's depth pixels."""
    root_z = keypoints_3d[..., list(root_index), 2].mean(-1, keepdims=True)
    relative = keypoints_3d[..., 2] - root_z
    labels: np.ndarray = (relative / z_range + 1.0) * (depth_size / 2)
    return labels


def simcc3d_targets(
    keypoints: np.ndarray,
    depth_px: np.ndarray,
    weights: np.ndarray,
    input_size: tuple[int, int],
    depth_size: int,
    *,
    split_ratio: float = 2.0,
    sigma: tuple[float, float, float] = SIMCC3D_SIGMA,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N,K,2) crop pixels, (N,K) depth pixels, (N,K) weights → target x, y, z, weights.

    A keypoint whose 3-sigma window falls off any of the three axes gets weight 0, as
    SimCC3DLabel does.
    """
    width, height = input_size
    bins = tuple(round(n * split_ratio) for n in (width, height, depth_size))
    points = np.concatenate([keypoints, depth_px[..., None]], axis=-1)
    mu = np.around(points * split_ratio)
    radius = np.asarray(sigma) * 3
    low, high = mu - radius, mu + radius + 1
    inside = np.all(low < np.asarray(bins), axis=-1) & np.all(high >= 0, axis=-1)
    weights = np.where(inside & (weights >= 0.5), weights, 0.0).astype(np.float32)
    targets = []
    for axis, size in enumerate(bins):
        grid = np.arange(size, dtype=np.float32)
        gauss = np.exp(-((grid - mu[..., axis : axis + 1]) ** 2) / (2 * sigma[axis] ** 2))
        targets.append((gauss * (weights > 0)[..., None]).astype(np.float32))
    return targets[0], targets[1], targets[2], weights


def kl_simcc3d_loss(
    preds: tuple[Tensor, Tensor, Tensor],
    targets: tuple[Tensor, Tensor, Tensor],
    weights: Tensor,
    weights_z: Tensor,
    *,
    logit_beta: float = LOGIT_BETA_3D,
    label_beta: float = LABEL_BETA,
) -> Tensor:
    """KLDiscretLoss2(beta=10, label_softmax=True): x and y weighted by the keypoint
    weights, z by the depth weights (0 for instances without 3D labels)."""
    num_keypoints = preds[0].shape[1]
    total = preds[0].new_zeros(())
    for pred, target, weight in zip(preds, targets, (weights, weights, weights_z), strict=True):
        log_p = F.log_softmax(pred * logit_beta, dim=-1)
        label = F.softmax(target * label_beta, dim=-1)
        kl = F.kl_div(log_p, label, reduction="none").mean(dim=-1)
        total = total + (kl * weight).sum()
    return total / num_keypoints
