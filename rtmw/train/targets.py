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
) -> Tensor:
    """KLDiscretLoss(beta=1, label_softmax=True, label_beta=10, mask=face, mask_weight=0.5)."""
    _, num_keypoints, _ = pred_x.shape
    part_weight = torch.ones(num_keypoints, dtype=pred_x.dtype, device=pred_x.device)
    if num_keypoints > FACE_MASK[-1]:
        part_weight[list(FACE_MASK)] = face_weight
    total = pred_x.new_zeros(())
    for pred, target in ((pred_x, target_x), (pred_y, target_y)):
        log_p = F.log_softmax(pred, dim=-1)
        label = F.softmax(target * label_beta, dim=-1)
        kl = F.kl_div(log_p, label, reduction="none").mean(dim=-1)
        total = total + (kl * weights * part_weight).sum()
    return total / num_keypoints
