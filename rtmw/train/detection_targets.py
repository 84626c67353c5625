"""RTMDet's training targets and losses (mmdet 3.x ``RTMDetHead.loss_by_feat``), in torch.

Assignment is mmdet's ``DynamicSoftLabelAssigner`` (topk 13, iou_weight 3.0,
soft_center_radius 3.0): a prior is a candidate for a ground-truth box when its point
lies inside the box; its cost is a soft-label classification cost (BCE against the IoU
of its predicted box, scaled by |IoU − score|²) + 3·(−log IoU) + 10^(centre distance in
strides − 3) (rtmw also rules out a box's priors that lie outside it); each box
takes its dynamic k (the sum of its 13 best IoUs, at least 1) cheapest candidates,
and a prior claimed twice goes to its cheapest box.

Losses: QualityFocalLoss (β 2) on sigmoid scores whose positive targets are those IoUs,
and GIoU (weight 2.0) on the positives' decoded boxes weighted by the same IoUs; both
normalised by the IoUs' sum, as mmdet does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from rtmw.models.rtmdet import STRIDES

TOPK = 13
IOU_WEIGHT = 3.0
SOFT_CENTER_RADIUS = 3.0
QFL_BETA = 2.0
GIOU_WEIGHT = 2.0
_INF = 1e8


def flat_priors(input_size: tuple[int, int], device: torch.device | None = None) -> Tensor:
    """Every level's prior points and stride, (P, 3) x, y, stride, in output order."""
    width, height = input_size
    rows = []
    for stride in STRIDES:
        ys, xs = torch.meshgrid(torch.arange(height // stride, dtype=torch.float32) * stride,
                                torch.arange(width // stride, dtype=torch.float32) * stride,
                                indexing="ij")  # fmt: skip
        rows.append(torch.stack([xs.reshape(-1), ys.reshape(-1),
                                 torch.full((xs.numel(),), float(stride))], dim=1))  # fmt: skip
    return torch.cat(rows).to(device)


def flatten_outputs(outputs: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    """Head outputs (3 class maps, 3 distance maps) → (N, P, C) logits, (N, P, 4) distances."""
    levels = len(outputs) // 2
    cls = torch.cat([o.flatten(2).transpose(1, 2) for o in outputs[:levels]], dim=1)
    reg = torch.cat([o.flatten(2).transpose(1, 2) for o in outputs[levels:]], dim=1)
    return cls, reg


def distance_to_box(points: Tensor, distances: Tensor) -> Tensor:
    return torch.cat([points - distances[..., :2], points + distances[..., 2:]], dim=-1)


def box_iou(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """Pairwise IoU (len a, len b) of xyxy boxes; degenerate boxes have IoU 0."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=eps)


def giou_loss(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """1 − GIoU per aligned pair (mmdet's GIoULoss)."""
    area_p = (pred[:, 2] - pred[:, 0]).clamp(min=0) * (pred[:, 3] - pred[:, 1]).clamp(min=0)
    area_t = (target[:, 2] - target[:, 0]) * (target[:, 3] - target[:, 1])
    lt = torch.maximum(pred[:, :2], target[:, :2])
    rb = torch.minimum(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = (area_p + area_t - inter).clamp(min=eps)
    iou = inter / union
    enclose = (torch.maximum(pred[:, 2:], target[:, 2:])
               - torch.minimum(pred[:, :2], target[:, :2])).clamp(min=0).prod(-1)  # fmt: skip
    return 1 - (iou - (enclose - union) / enclose.clamp(min=eps))


@dataclass
class Assignment:
    """Per prior of one image: the ground-truth index (−1 background) and the IoU target."""

    gt_index: Tensor  # (P,) int64
    quality: Tensor  # (P,) float32, 0 for background


@torch.no_grad()
def assign(
    priors: Tensor, logits: Tensor, pred_boxes: Tensor, gt_boxes: Tensor, gt_labels: Tensor
) -> Assignment:
    """DynamicSoftLabelAssigner for one image (see the module docstring)."""
    num_priors = len(priors)
    gt_index = torch.full((num_priors,), -1, dtype=torch.int64)
    quality = torch.zeros(num_priors)
    if len(gt_boxes) == 0:
        return Assignment(gt_index, quality)
    points, strides = priors[:, :2], priors[:, 2]
    inside = ((points[:, None, 0] > gt_boxes[None, :, 0])
              & (points[:, None, 1] > gt_boxes[None, :, 1])
              & (points[:, None, 0] < gt_boxes[None, :, 2])
              & (points[:, None, 1] < gt_boxes[None, :, 3]))  # fmt: skip
    valid = inside.any(dim=1)
    if not bool(valid.any()):
        return Assignment(gt_index, quality)
    v_points, v_strides = points[valid], strides[valid]
    ious = box_iou(pred_boxes[valid], gt_boxes)  # (V, G)
    centres = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    distance = (v_points[:, None, :] - centres[None]).pow(2).sum(-1).sqrt() / v_strides[:, None]
    centre_cost = torch.pow(10.0, distance - SOFT_CENTER_RADIUS)
    iou_cost = -torch.log(ious + 1e-7) * IOU_WEIGHT
    scores = logits[valid]  # (V, C)
    onehot = F.one_hot(gt_labels, scores.shape[1]).float()  # (G, C)
    soft = onehot[None] * ious[..., None]  # (V, G, C)
    expanded = scores[:, None, :].expand_as(soft)
    scale = soft - expanded.sigmoid()
    cls_cost = (F.binary_cross_entropy_with_logits(expanded, soft, reduction="none")
                * scale.abs().pow(2)).sum(-1)  # fmt: skip
    cost = cls_cost + iou_cost + centre_cost
    # a prior outside a box never takes it (the centre prior alone would merely make it dear)
    cost[~inside[valid]] += _INF
    # dynamic k: the rounded-down sum of each box's best IoUs, at least one prior
    k = min(TOPK, len(ious))
    dynamic_k = ious.topk(k, dim=0).values.sum(0).int().clamp(min=1)
    matching = torch.zeros_like(cost, dtype=torch.bool)
    for g in range(len(gt_boxes)):
        chosen = cost[:, g].topk(int(dynamic_k[g]), largest=False).indices
        matching[chosen, g] = True
    claimed_twice = matching.sum(1) > 1
    if bool(claimed_twice.any()):
        cheapest = cost[claimed_twice].argmin(1)
        matching[claimed_twice] = False
        matching[claimed_twice, cheapest] = True
    foreground = matching.any(1)
    matched = matching[foreground].float().argmax(1)
    valid_index = valid.nonzero().squeeze(1)
    gt_index[valid_index[foreground]] = matched
    quality[valid_index[foreground]] = ious[foreground, matched]
    return Assignment(gt_index, quality)


def rtmdet_loss(
    outputs: tuple[Tensor, ...],
    priors: Tensor,
    gt_boxes: list[Tensor],
    gt_labels: list[Tensor],
) -> tuple[Tensor, dict[str, float]]:
    """QFL + 2·GIoU over a batch, normalised by the sum of the positives' IoU targets."""
    logits, distances = flatten_outputs(outputs)
    pred_boxes = distance_to_box(priors[None, :, :2], distances)
    cls_targets = torch.zeros_like(logits)
    pos_pred, pos_target, pos_weight = [], [], []
    for image, (boxes, labels) in enumerate(zip(gt_boxes, gt_labels, strict=True)):
        found = assign(priors, logits[image].detach(), pred_boxes[image].detach(), boxes, labels)
        positive = found.gt_index >= 0
        if bool(positive.any()):
            index = positive.nonzero().squeeze(1)
            matched = found.gt_index[index]
            cls_targets[image, index, labels[matched]] = found.quality[index]
            pos_pred.append(pred_boxes[image, index])
            pos_target.append(boxes[matched])
            pos_weight.append(found.quality[index])
    weight = torch.cat(pos_weight) if pos_weight else torch.zeros(0)
    normaliser = weight.sum().clamp(min=1.0)
    sigmoid = logits.sigmoid()
    # quality focal loss: |target − σ|^β scales the BCE, so easy negatives fade out
    focal = (F.binary_cross_entropy_with_logits(logits, cls_targets, reduction="none")
             * (cls_targets - sigmoid).abs().pow(QFL_BETA))  # fmt: skip
    loss_cls = focal.sum() / normaliser
    if pos_pred:
        loss_box = (giou_loss(torch.cat(pos_pred), torch.cat(pos_target)) * weight).sum()
        loss_box = GIOU_WEIGHT * loss_box / normaliser
    else:
        loss_box = distances.sum() * 0.0
    total = loss_cls + loss_box
    return total, {"cls": float(loss_cls.detach()), "box": float(loss_box.detach()),
                   "positives": float(len(weight))}  # fmt: skip
