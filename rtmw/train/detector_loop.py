"""Train an RTMDet person detector on COCO-format boxes (the demo detector's recipe).

The recipe follows mmdet's RTMDet configs where a 2-core CPU allows: AdamW (weight decay
0.05, none on norms and biases), linear warm-up then cosine decay (rtmw's schedule, shared
with pose training), DynamicSoftLabelAssigner + QualityFocalLoss + GIoU
(:mod:`rtmw.train.detection_targets`), mmdet's head initialisation (N(0, 0.01) convs, class
bias for a 1% prior). Augmentation is the single-image part of mmdet's pipeline: a random
resize of the letterboxed frame (ratio 0.5–1.5), a random crop/placement on the 114-grey
canvas, horizontal flip and an HSV jitter (mosaic and mix-up are left out: a synthetic
frame already holds several people). Validation is person box AP with the export path's
own letterbox and decode (:mod:`rtmw.harness.detection`). Checkpoints are mmdet's layout.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from rtmw.data.evalset import read_image
from rtmw.errors import DataError
from rtmw.models.checkpoint import read_checkpoint
from rtmw.models.detector_checkpoint import save_detector_checkpoint
from rtmw.models.rtmdet import MEAN_BGR, PAD_VALUE, STD_BGR, RTMDet, RTMDetConfig
from rtmw.pipeline.detect import DetectorSpec, rescale_size
from rtmw.train.detection_targets import flat_priors, rtmdet_loss
from rtmw.train.loop import (
    RESUME_FILE,
    TrainConfig,
    _jsonable,
    _load_resume,
    _RunState,
    _save_resume,
    batch_indices,
    learning_rate,
    parameter_groups,
)

logger = logging.getLogger(__name__)

RESIZE_RATIO = (0.5, 1.5)  # of the letterbox scale (mmdet's RandomResize, narrowed)
PLAIN_LETTERBOX_PROB = 0.25  # samples fed exactly as at test time
FLIP_PROB = 0.5
HSV_GAIN = (5, 30, 30)  # hue (OpenCV units), saturation, value: mmdet's YOLOXHSVRandomAug
MIN_BOX_PX = 2.0  # a box cropped thinner than this is dropped
MIN_KEPT_FRACTION = 0.25  # … and one with less of its area left than this


@dataclass(frozen=True)
class BoxImage:
    path: Path
    boxes: np.ndarray  # (M, 4) xyxy in image pixels


def load_box_annotations(image_dir: str | Path, ann_file: str | Path) -> list[BoxImage]:
    """Every image of a COCO-format file with its non-crowd person boxes (images without
    a person stay: they teach the background)."""
    try:
        coco = json.loads(Path(ann_file).read_text())
        images = {int(i["id"]): i["file_name"] for i in coco["images"]}
        boxes: dict[int, list[list[float]]] = {i: [] for i in images}
        for ann in coco["annotations"]:
            x, y, w, h = (float(v) for v in ann["bbox"])
            if ann.get("iscrowd", 0) or w < 1 or h < 1 or ann.get("category_id", 1) != 1:
                continue
            boxes[int(ann["image_id"])].append([x, y, x + w, y + h])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{ann_file}: not a readable COCO annotation file ({exc})") from None
    root = Path(image_dir)
    found = [BoxImage(root / name, np.asarray(boxes[i], np.float32).reshape(-1, 4))
             for i, name in sorted(images.items())]  # fmt: skip
    if not any(len(b.boxes) for b in found):
        raise DataError(f"{ann_file}: no person box to train a detector on")
    return found


def _normalise(canvas: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR → (3, H, W) float32 as the inference letterbox normalises."""
    mean = np.asarray(MEAN_BGR, np.float32)
    std = np.asarray(STD_BGR, np.float32)
    return np.ascontiguousarray(((canvas.astype(np.float32) - mean) / std).transpose(2, 0, 1))


def _hsv_jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gains = rng.uniform(-1, 1, 3) * np.asarray(HSV_GAIN)
    hsv = cv2.cvtColor(image, cv2.COLOR_BGR2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + int(gains[0])) % 180
    hsv[..., 1:] = np.clip(hsv[..., 1:] + gains[1:].astype(np.int16), 0, 255)
    result: np.ndarray = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
    return result


def augment_frame(
    image: np.ndarray, boxes: np.ndarray, size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One training sample: the canvas (H, W, 3) uint8 and its boxes in canvas pixels."""
    net_w, net_h = size
    height, width = image.shape[:2]
    _, _, factor = rescale_size(width, height, size)
    plain = rng.random() < PLAIN_LETTERBOX_PROB
    if not plain:
        factor *= rng.uniform(*RESIZE_RATIO)
    new_w, new_h = max(1, int(width * factor + 0.5)), max(1, int(height * factor + 0.5))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if plain:
        ox = oy = 0
    else:  # a random placement: a crop when larger than the canvas, an offset when smaller
        ox = int(rng.integers(min(0, net_w - new_w), max(0, net_w - new_w) + 1))
        oy = int(rng.integers(min(0, net_h - new_h), max(0, net_h - new_h) + 1))
    canvas = np.full((net_h, net_w, 3), int(PAD_VALUE), np.uint8)
    x0, y0 = max(ox, 0), max(oy, 0)
    x1, y1 = min(ox + new_w, net_w), min(oy + new_h, net_h)
    canvas[y0:y1, x0:x1] = resized[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    scale = np.asarray([new_w / width, new_h / height] * 2, np.float32)
    placed = boxes * scale + np.asarray([ox, oy] * 2, np.float32)
    clipped = placed.copy()
    clipped[:, 0::2] = np.clip(clipped[:, 0::2], x0, x1)
    clipped[:, 1::2] = np.clip(clipped[:, 1::2], y0, y1)

    def area(b: np.ndarray) -> np.ndarray:
        result: np.ndarray = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(
            b[:, 3] - b[:, 1], 0, None
        )
        return result

    keep = ((clipped[:, 2] - clipped[:, 0] >= MIN_BOX_PX)
            & (clipped[:, 3] - clipped[:, 1] >= MIN_BOX_PX)
            & (area(clipped) >= MIN_KEPT_FRACTION * np.maximum(area(placed), 1e-6)))  # fmt: skip
    clipped = clipped[keep]
    if rng.random() < FLIP_PROB:
        canvas = canvas[:, ::-1]
        clipped = np.stack([net_w - clipped[:, 2], clipped[:, 1], net_w - clipped[:, 0],
                            clipped[:, 3]], axis=1).reshape(-1, 4)  # fmt: skip
    canvas = _hsv_jitter(np.ascontiguousarray(canvas), rng)
    return canvas, clipped.astype(np.float32)


class DetectionTrainSet:
    """Augmented (input, boxes) samples of whole frames; decoded images kept in memory."""

    def __init__(
        self, image_dir: str | Path, ann_file: str | Path, input_size: tuple[int, int],
        *, seed: int = 0,
    ) -> None:  # fmt: skip
        self.items = load_box_annotations(image_dir, ann_file)
        self.input_size = input_size
        self.seed = seed
        self.epoch = 0
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = self._cache.get(index)
        if image is None:
            image = self._cache[index] = read_image(self.items[index].path)
        rng = np.random.default_rng((self.seed, self.epoch, index))
        canvas, boxes = augment_frame(image, self.items[index].boxes, self.input_size, rng)
        return torch.from_numpy(_normalise(canvas)), torch.from_numpy(boxes)


def init_head_like_mmdet(model: RTMDet) -> None:
    """RTMDetSepBNHead.init_weights: convs N(0, 0.01), norms 1/0, class bias for p = 0.01."""
    head = model.bbox_head
    for module in head.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    prior_bias = -math.log((1 - 0.01) / 0.01)
    for conv in head.rtm_cls:
        assert isinstance(conv, nn.Conv2d) and conv.bias is not None
        nn.init.constant_(conv.bias, prior_bias)


def validate_detector(model: RTMDet, image_dir: str | Path, ann_file: str | Path,
                      limit: int | None) -> dict[str, float]:  # fmt: skip
    """Person box AP of the model in eval mode, through the inference letterbox and decode."""
    from rtmw.harness.detection import person_boxes_ap
    from rtmw.models.inference import TorchInference

    coco = json.loads(Path(ann_file).read_text())
    images = {int(i["id"]): Path(image_dir) / i["file_name"] for i in coco["images"]}
    if limit:
        images = dict(sorted(images.items())[:limit])
    config = model.config
    spec = DetectorSpec.from_record(config.detector_record, config.input_size)
    infer = TorchInference(model)
    try:
        box_ap, _ = person_boxes_ap(infer, spec, ann_file, images)
    finally:
        infer.restore()
    return {"ap": box_ap.ap, "ap50": box_ap.ap50, "ap75": box_ap.ap75, "ar100": box_ap.ar100}


@dataclass
class DetectorTrainResult:
    checkpoint: Path
    history: list[dict[str, Any]]
    config: RTMDetConfig
    seconds: float
    final_ap: dict[str, float] | None


def _build(cfg: TrainConfig, config: RTMDetConfig) -> RTMDet:
    if cfg.init:
        from rtmw.models.detector_checkpoint import detector_from_contents

        model, _ = detector_from_contents(read_checkpoint(cfg.init))
        logger.info("fine-tuning %s from %s", config.name, cfg.init)
    else:
        model = RTMDet(config)
        init_head_like_mmdet(model)
    # channels-last makes oneDNN's depthwise-convolution backward much faster on CPU
    return _in_layout(model, torch.channels_last).train()


def _in_layout(model: RTMDet, layout: torch.memory_format) -> RTMDet:
    return model.to(memory_format=layout)  # type: ignore[call-overload,no-any-return]


def _step(model: RTMDet, optimizer: torch.optim.Optimizer, dataset: DetectionTrainSet,
          priors: Tensor, step: int, cfg: TrainConfig) -> float:  # fmt: skip
    lr = learning_rate(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    epoch, indices = batch_indices(step, len(dataset), cfg)
    dataset.set_epoch(epoch)
    samples = [dataset[int(i)] for i in indices]
    inputs = torch.stack([s[0] for s in samples]).contiguous(memory_format=torch.channels_last)
    boxes = [s[1] for s in samples]
    labels = [torch.zeros(len(b), dtype=torch.int64) for b in boxes]  # person: class 0
    loss, _ = rtmdet_loss(model(inputs), priors, boxes, labels)
    if not torch.isfinite(loss):
        raise DataError(f"training loss is not finite at iteration {step + 1}: {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return float(loss.item())


def train_detector(
    cfg: TrainConfig, config: RTMDetConfig, *, progress: bool = True, resume: bool = False
) -> DetectorTrainResult:
    """One detector training job (``rtmw-train --model rtmdet-…``); resumable like pose runs."""
    cfg.check()
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model = _build(cfg, config)
    dataset = DetectionTrainSet(cfg.image_dir, cfg.ann_file, config.input_size, seed=cfg.seed)
    if len(dataset) < cfg.batch_size:
        raise DataError(f"batch size {cfg.batch_size} exceeds the {len(dataset)} training images")
    priors = flat_priors(config.input_size)
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=cfg.lr)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    resume_path = out_dir / RESUME_FILE
    state = _RunState()
    if resume and resume_path.is_file():
        state = _load_resume(resume_path, cfg, model, optimizer)
    validating = bool(cfg.val_ann_file and cfg.val_image_dir)
    started = time.perf_counter() - state.seconds
    last = cfg.iters if cfg.stop_after is None else min(cfg.iters, state.step + cfg.stop_after)
    bar = tqdm(range(state.step, last), desc=f"train {config.name}", disable=not progress,
               unit="it", initial=state.step, total=cfg.iters)  # fmt: skip
    for step in bar:
        state.running = [*state.running[-49:], _step(model, optimizer, dataset, priors, step, cfg)]
        bar.set_postfix(loss=f"{np.mean(state.running[-20:]):.4f}")
        done = state.step = step + 1
        validate_now = validating and (done % cfg.val_every == 0 or done == cfg.iters)
        if done % 50 == 0 or done == cfg.iters or validate_now:
            state.history.append({"iter": done, "loss": float(np.mean(state.running)),
                                  "lr": learning_rate(step, cfg),
                                  "seconds": time.perf_counter() - started})  # fmt: skip
        if validate_now:
            ap = validate_detector(model, cfg.val_image_dir or "", cfg.val_ann_file or "",
                                   cfg.val_images)  # fmt: skip
            state.history[-1]["val_box_ap"] = ap
            logger.info("iter %d: person box AP %.3f, AP50 %.3f", done, ap["ap"], ap["ap50"])
            save_detector_checkpoint(model, out_dir / f"{config.name}_last.pth",
                                     meta={"iter": done, "seed": cfg.seed})  # fmt: skip
            model.train()
        if done % cfg.save_every == 0 or done == last:
            state.seconds = time.perf_counter() - started
            _save_resume(resume_path, cfg, model, optimizer, state)
    state.seconds = time.perf_counter() - started
    if state.step < cfg.iters:
        logger.info("stopped at iteration %d of %d; continue with --resume", state.step, cfg.iters)
        return DetectorTrainResult(resume_path, state.history, config, state.seconds, None)
    model = _in_layout(model, torch.contiguous_format).eval()
    final_ap = (validate_detector(model, cfg.val_image_dir or "", cfg.val_ann_file or "",
                                  cfg.val_images) if validating else None)  # fmt: skip
    checkpoint = save_detector_checkpoint(
        model, out_dir / f"{config.name}.pth",
        meta={"iter": cfg.iters, "seed": cfg.seed, "experiment_name": f"rtmw-train_{config.name}"},
    )  # fmt: skip
    record = {"train_config": _jsonable(asdict(cfg)), "model": config.name,
              "seconds": state.seconds, "history": state.history, "final_box_ap": final_ap,
              "torch": torch.__version__}  # fmt: skip
    (out_dir / "train_log.json").write_text(json.dumps(record, indent=2) + "\n")
    return DetectorTrainResult(checkpoint, state.history, config, state.seconds, final_ap)
