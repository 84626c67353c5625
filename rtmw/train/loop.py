"""Train or fine-tune an RTMW model on COCO-WholeBody-format data.

Optimiser and schedule follow mmpose's RTMW configs: AdamW (weight decay 0.05, none on
norms and biases), gradient clipping at 35, linear warm-up, then a cosine decay to 5%
of the base rate over the second half of training. Checkpoints are written in
mmpose's layout, so every other rtmw command (and mmpose itself) takes them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from rtmw.data.evalset import EvalSet, load_eval_set
from rtmw.errors import DataError
from rtmw.harness import run_accuracy
from rtmw.models import RTMW, RTMWConfig, get_config, load_checkpoint, save_checkpoint
from rtmw.models.inference import TorchInference
from rtmw.train.augment import AugmentConfig
from rtmw.train.dataset import WholeBodyTrainSet
from rtmw.train.targets import kl_simcc_loss

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; saved beside its checkpoint."""

    model: str  # zoo name of the architecture (ignored when init names a checkpoint)
    image_dir: str
    ann_file: str
    out_dir: str
    init: str | None = None  # checkpoint to fine-tune from
    val_image_dir: str | None = None
    val_ann_file: str | None = None
    val_images: int | None = 100
    iters: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_iters: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 35.0
    val_every: int = 500
    seed: int = 21
    threads: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def check(self) -> None:
        """Refuse settings that would crash mid-run or train nothing (e.g. 0 iterations)."""
        from rtmw.errors import UsageError

        positive = {"iters": self.iters, "batch": self.batch_size, "lr": self.lr,
                    "val-every": self.val_every}  # fmt: skip
        bad = [f"--{name} {value}" for name, value in positive.items() if not value > 0]
        if self.warmup_iters < 0 or self.weight_decay < 0 or not 0 <= self.min_lr_ratio <= 1:
            bad.append("--warmup/weight decay/min lr ratio out of range")
        if self.threads is not None and self.threads < 1:
            bad.append(f"--threads {self.threads}")
        if self.val_images is not None and self.val_images < 1:
            bad.append(f"--val-count {self.val_images}")
        if bad:
            raise UsageError(f"invalid training settings: {', '.join(bad)} (must be positive)")


def init_head_like_mmpose(head: nn.Module) -> None:
    """RTMWHead's default_init_cfg: Conv2d N(0, 0.001), BatchNorm 1/0, Linear N(0, 0.01).

    PyTorch's default init gives SimCC logits in the hundreds at step 0; training from
    scratch then spends its first iterations shrinking them.
    """
    for module in head.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=0.001)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, flat, then cosine to min_lr_ratio over the second half."""
    if step < cfg.warmup_iters:
        return cfg.lr * (1e-3 + (1 - 1e-3) * step / cfg.warmup_iters)
    half = cfg.iters // 2
    if step < half:
        return cfg.lr
    progress = (step - half) / max(cfg.iters - half, 1)
    low = cfg.lr * cfg.min_lr_ratio
    return low + (cfg.lr - low) * 0.5 * (1 + math.cos(math.pi * progress))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on norm scales and biases (mmpose's norm/bias_decay_mult=0)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _batches(loader: DataLoader[Any], dataset: WholeBodyTrainSet) -> Iterator[Any]:
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        yield from loader
        epoch += 1


@dataclass
class TrainResult:
    checkpoint: Path
    history: list[dict[str, Any]]
    config: RTMWConfig
    seconds: float
    final_ap: dict[str, float] | None


def validate(model: RTMW, eval_set: EvalSet, *, flip: bool) -> dict[str, float]:
    infer = TorchInference(model)  # the export reference's adapter: IEEE f32, eval mode
    try:
        run = run_accuracy(infer, model.config.input_size, eval_set, flip=flip)
    finally:
        infer.restore()
    return {part: metrics.ap for part, metrics in run.evaluation.parts.items()}


def train(cfg: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Run one training job; returns the final checkpoint and the learning curve."""
    cfg.check()
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.init:
        model, config = load_checkpoint(cfg.init)
        logger.info("fine-tuning %s from %s", config.name, cfg.init)
    else:
        config = get_config(cfg.model)
        model = RTMW(config)
        init_head_like_mmpose(model.head)
    # channels-last makes oneDNN's depthwise-convolution backward ~4× faster on CPU
    model = model.to(memory_format=torch.channels_last).train()  # type: ignore[call-overload]
    dataset = WholeBodyTrainSet(
        cfg.image_dir, cfg.ann_file, config.input_size, cfg.augment, seed=cfg.seed
    )
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True, generator=generator
    )
    if len(loader) == 0:
        raise DataError(
            f"batch size {cfg.batch_size} exceeds the {len(dataset)} training instances"
        )
    eval_set = None
    if cfg.val_ann_file and cfg.val_image_dir:
        eval_set = load_eval_set(cfg.val_image_dir, cfg.val_ann_file, limit=cfg.val_images)
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=cfg.lr)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    running: list[float] = []
    start = time.perf_counter()
    batches = _batches(loader, dataset)
    bar = tqdm(range(cfg.iters), desc=f"train {config.name}", disable=not progress, unit="it")
    for step in bar:
        lr = learning_rate(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        inputs, target_x, target_y, weights = next(batches)
        pred_x, pred_y = model(inputs.contiguous(memory_format=torch.channels_last))
        # mmpose sums the loss over the batch; per instance keeps lr batch-independent
        # (AdamW's update is invariant to the loss scale, clipping is not)
        loss = kl_simcc_loss(pred_x, pred_y, target_x, target_y, weights) / len(inputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        running.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(running[-20:]):.4f}", lr=f"{lr:.2e}")
        done = step + 1
        validate_now = eval_set is not None and (done % cfg.val_every == 0 or done == cfg.iters)
        if done % 50 == 0 or done == cfg.iters or validate_now:
            history.append(
                {
                    "iter": done,
                    "loss": float(np.mean(running[-50:])),
                    "lr": lr,
                    "seconds": time.perf_counter() - start,
                }
            )
        if validate_now and eval_set is not None:
            ap = validate(model, eval_set, flip=False)
            history[-1]["val_ap"] = ap
            logger.info("iter %d: whole-body AP %.3f (no flip)", done, ap["wholebody"])
            # a run stopped early still leaves its latest validated weights behind
            save_checkpoint(
                model.to(memory_format=torch.contiguous_format),
                out_dir / f"{config.name}_last.pth",
                meta={"iter": done, "seed": cfg.seed},
            )
            model = model.to(memory_format=torch.channels_last)
    seconds = time.perf_counter() - start
    model = model.to(memory_format=torch.contiguous_format).eval()
    final_ap = validate(model, eval_set, flip=True) if eval_set is not None else None
    checkpoint = save_checkpoint(
        model,
        out_dir / f"{config.name}.pth",
        meta={
            "iter": cfg.iters,
            "seed": cfg.seed,
            "experiment_name": f"rtmw-train_{config.name}",
        },
    )
    record = {
        "train_config": _jsonable(asdict(cfg)),
        "model": config.name,
        "seconds": seconds,
        "history": history,
        "final_ap_flip": final_ap,
        "torch": torch.__version__,
    }
    (out_dir / "train_log.json").write_text(json.dumps(record, indent=2) + "\n")
    return TrainResult(checkpoint, history, config, seconds, final_ap)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
