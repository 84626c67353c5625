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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import default_collate
from tqdm import tqdm

from rtmw.data.evalset import EvalSet, load_eval_set
from rtmw.errors import DataError
from rtmw.harness import run_accuracy
from rtmw.models import (
    RTMW,
    RTMWConfig,
    get_config,
    model_from_contents,
    read_checkpoint,
    save_checkpoint,
)
from rtmw.models.checkpoint import lift_to_3d
from rtmw.models.inference import TorchInference
from rtmw.pipeline import DepthCodec
from rtmw.train.augment import AugmentConfig
from rtmw.train.dataset import WholeBodyTrainSet
from rtmw.train.targets import kl_simcc3d_loss, kl_simcc_loss

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
    hand_weight: float = 1.0  # loss weight of the hand keypoints (mmpose: 1)
    val_every: int = 500
    seed: int = 21
    threads: int | None = None
    save_every: int = 100  # iterations between resume states
    stop_after: int | None = None  # iterations this invocation runs (None: to the end)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def check(self) -> None:
        """Refuse settings that would crash mid-run or train nothing (e.g. 0 iterations)."""
        from rtmw.errors import UsageError

        positive = {"iters": self.iters, "batch": self.batch_size, "lr": self.lr,
                    "val-every": self.val_every, "save-every": self.save_every}  # fmt: skip
        bad = [f"--{name} {value}" for name, value in positive.items() if not value > 0]
        if self.warmup_iters < 0 or self.weight_decay < 0 or not 0 <= self.min_lr_ratio <= 1:
            bad.append("--warmup/weight decay/min lr ratio out of range")
        if not self.hand_weight > 0:
            bad.append(f"--hand-weight {self.hand_weight}")
        if self.threads is not None and self.threads < 1:
            bad.append(f"--threads {self.threads}")
        if self.stop_after is not None and self.stop_after < 1:
            bad.append(f"--stop-after {self.stop_after}")
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


def batch_indices(step: int, num_instances: int, cfg: TrainConfig) -> tuple[int, np.ndarray]:
    """(epoch, instance indices) of training step ``step``: a pure function of the seed.

    Each epoch is a seeded permutation cut into full batches, so a resumed run draws
    exactly the batches (and, through the epoch, the augmentations) it would have drawn.
    """
    per_epoch = num_instances // cfg.batch_size
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng((cfg.seed, epoch)).permutation(num_instances)
    return epoch, order[position * cfg.batch_size : (position + 1) * cfg.batch_size]


@dataclass
class TrainResult:
    checkpoint: Path
    history: list[dict[str, Any]]
    config: RTMWConfig
    seconds: float
    final_ap: dict[str, float] | None


def validate(model: RTMW, eval_set: EvalSet, *, flip: bool) -> dict[str, float]:
    """Six-part AP; a 3D model adds root-aligned MPJPE per part (mm) as ``mpjpe_<part>``."""
    infer = TorchInference(model)  # the export reference's adapter: IEEE f32, eval mode
    config = model.config
    depth = DepthCodec.from_dict(config.depth_record)
    try:
        run = run_accuracy(infer, config.input_size, eval_set, flip=flip, depth=depth)
    finally:
        infer.restore()
    scores = {part: metrics.ap for part, metrics in run.evaluation.parts.items()}
    if run.evaluation_3d is not None:
        scores.update({f"mpjpe_{p}": v for p, v in run.evaluation_3d.mpjpe.items()})
    return scores


RESUME_FILE = "resume.pt"
# settings a resumed run may change without changing what it learns
_RESUMABLE_CHANGES = frozenset({"threads", "save_every", "stop_after"})


@dataclass
class _RunState:
    """What a resumed run needs besides the weights and the optimiser's moments."""

    step: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    running: list[float] = field(default_factory=list)


def _save_resume(
    path: Path, cfg: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
    state: _RunState,
) -> None:  # fmt: skip
    """Written to a temp file then renamed: a run killed mid-save keeps its previous state."""
    partial = path.with_suffix(".partial")
    torch.save(
        {
            "config": _jsonable(asdict(cfg)),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "state": asdict(state),
            "torch_rng": torch.get_rng_state(),
        },
        partial,
    )
    partial.replace(path)


def _load_resume(
    path: Path, cfg: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer
) -> _RunState:
    from rtmw.errors import UsageError

    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
        before, now = saved["config"], _jsonable(asdict(cfg))
    except Exception as exc:  # any unreadable file gets one line
        raise UsageError(f"cannot resume from {path}: {exc}") from None
    changed = sorted(k for k in set(before) | set(now)
                     if before.get(k) != now.get(k) and k not in _RESUMABLE_CHANGES)  # fmt: skip
    if changed:
        details = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise UsageError(
            f"cannot resume {path}: the run was started with other settings ({details})"
        )
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["torch_rng"])
    state = _RunState(**saved["state"])
    logger.info("resuming at iteration %d of %d (%s)", state.step, cfg.iters, path)
    return state


def _build_model(cfg: TrainConfig) -> tuple[RTMW, RTMWConfig]:
    target = get_config(cfg.model)
    contents = read_checkpoint(cfg.init) if cfg.init else None
    if contents is not None and target.is_3d and "head.cls_z.weight" not in contents.state_dict:
        model, config = lift_to_3d(contents, target)
    elif contents is not None:
        model, config = model_from_contents(contents)
        logger.info("fine-tuning %s from %s", config.name, cfg.init)
    else:
        config = get_config(cfg.model)
        model = RTMW(config)
        init_head_like_mmpose(model.head)
    # channels-last makes oneDNN's depthwise-convolution backward ~4× faster on CPU
    return _in_layout(model, torch.channels_last).train(), config


def _train_step(
    model: RTMW, optimizer: torch.optim.Optimizer, dataset: WholeBodyTrainSet,
    step: int, cfg: TrainConfig,
) -> float:  # fmt: skip
    lr = learning_rate(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    epoch, indices = batch_indices(step, len(dataset), cfg)
    dataset.set_epoch(epoch)
    batch = default_collate([dataset[int(i)] for i in indices])
    inputs = batch[0]
    preds = model(inputs.contiguous(memory_format=torch.channels_last))
    # mmpose sums the loss over the batch; per instance keeps lr batch-independent
    # (AdamW's update is invariant to the loss scale, clipping is not)
    if dataset.depth is not None:
        _, tx, ty, tz, weights, weights_z = batch
        loss = kl_simcc3d_loss(preds, (tx, ty, tz), weights, weights_z) / len(inputs)
    else:
        _, target_x, target_y, weights = batch
        loss = kl_simcc_loss(
            preds[0], preds[1], target_x, target_y, weights, hand_weight=cfg.hand_weight
        ) / len(inputs)
    if not torch.isfinite(loss):
        raise DataError(f"training loss is not finite at iteration {step + 1}: {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    return float(loss.item())


def _in_layout(model: RTMW, layout: torch.memory_format) -> RTMW:
    return model.to(memory_format=layout)  # type: ignore[call-overload,no-any-return]


def _save_last(model: RTMW, path: Path, step: int, cfg: TrainConfig) -> None:
    """A run stopped early still leaves its latest validated weights behind."""
    save_checkpoint(
        _in_layout(model, torch.contiguous_format), path, meta={"iter": step, "seed": cfg.seed}
    )
    _in_layout(model, torch.channels_last)


def train(cfg: TrainConfig, *, progress: bool = True, resume: bool = False) -> TrainResult:
    """Run one training job; returns the final checkpoint and the learning curve.

    With ``resume``, a run folder's ``resume.pt`` (written every ``save_every``
    iterations) continues the run where it stopped, bit for bit the same schedule.
    A run stopped by ``stop_after`` returns with ``final_ap`` None and no final file.
    """
    cfg.check()
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model, config = _build_model(cfg)
    depth = DepthCodec.from_dict(config.depth_record)
    dataset = WholeBodyTrainSet(
        cfg.image_dir,
        cfg.ann_file,
        config.input_size,
        cfg.augment,
        seed=cfg.seed,
        depth=depth,
        sigma=(*config.simcc_sigma, config.simcc_sigma_z),
    )
    if len(dataset) < cfg.batch_size:
        raise DataError(
            f"batch size {cfg.batch_size} exceeds the {len(dataset)} training instances"
        )
    eval_set = None
    if cfg.val_ann_file and cfg.val_image_dir:
        eval_set = load_eval_set(cfg.val_image_dir, cfg.val_ann_file, limit=cfg.val_images)
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=cfg.lr)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    resume_path = out_dir / RESUME_FILE
    state = _RunState()
    if resume and resume_path.is_file():
        state = _load_resume(resume_path, cfg, model, optimizer)
    started = time.perf_counter() - state.seconds
    last = cfg.iters if cfg.stop_after is None else min(cfg.iters, state.step + cfg.stop_after)
    bar = tqdm(range(state.step, last), desc=f"train {config.name}", disable=not progress,
               unit="it", initial=state.step, total=cfg.iters)  # fmt: skip
    for step in bar:
        state.running = [*state.running[-49:], _train_step(model, optimizer, dataset, step, cfg)]
        bar.set_postfix(loss=f"{np.mean(state.running[-20:]):.4f}")
        done = state.step = step + 1
        validate_now = eval_set is not None and (done % cfg.val_every == 0 or done == cfg.iters)
        if done % 50 == 0 or done == cfg.iters or validate_now:
            state.history.append({"iter": done, "loss": float(np.mean(state.running)),
                                  "lr": learning_rate(step, cfg),
                                  "seconds": time.perf_counter() - started})  # fmt: skip
        if validate_now and eval_set is not None:
            ap = validate(model, eval_set, flip=False)
            state.history[-1]["val_ap"] = ap
            logger.info("iter %d: whole-body AP %.3f (no flip)%s", done, ap["wholebody"],
                        f", MPJPE {ap['mpjpe_wholebody']:.1f} mm" if "mpjpe_wholebody" in ap
                        else "")  # fmt: skip
            _save_last(model, out_dir / f"{config.name}_last.pth", done, cfg)
        if done % cfg.save_every == 0 or done == last:
            state.seconds = time.perf_counter() - started
            _save_resume(resume_path, cfg, model, optimizer, state)
    state.seconds = time.perf_counter() - started
    if state.step < cfg.iters:
        logger.info("stopped at iteration %d of %d; continue with --resume", state.step, cfg.iters)
        return TrainResult(resume_path, state.history, config, state.seconds, None)
    model = _in_layout(model, torch.contiguous_format).eval()
    final_ap = validate(model, eval_set, flip=True) if eval_set is not None else None
    checkpoint = save_checkpoint(
        model,
        out_dir / f"{config.name}.pth",
        meta={"iter": cfg.iters, "seed": cfg.seed, "experiment_name": f"rtmw-train_{config.name}"},
    )
    record = {
        "train_config": _jsonable(asdict(cfg)),
        "model": config.name,
        "seconds": state.seconds,
        "history": state.history,
        "final_ap_flip": final_ap,
        "torch": torch.__version__,
    }
    (out_dir / "train_log.json").write_text(json.dumps(record, indent=2) + "\n")
    return TrainResult(checkpoint, state.history, config, state.seconds, final_ap)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
