"""``rtmw-train``: train an RTMW model, or fine-tune a checkpoint, on COCO-WholeBody data."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from rtmw.cli._common import exit_code_epilog, setup_logging, verbosity, vocab_option

logger = logging.getLogger(__name__)


@click.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n\b\n"
        "  # the embedded demo model, from nothing (synthetic data is generated)\n"
        "  rtmw-train --model rtmw-demo-256x192 --synthetic 3000 --iters 3000 --out runs/demo\n"
        "  # the RTMW3D demo: the 2D demo's weights plus a z classifier, on synthetic 3D figures\n"
        "  rtmw-train --model rtmw3d-demo-wide-256x192 --init rtmw/models/weights/"
        "rtmw-demo-wide_synthetic-5000it-256x192-9148f902.pth --synthetic 3000 --out runs/3d\n"
        "  # fine-tune an official checkpoint on your own COCO-WholeBody-format data\n"
        "  rtmw-train --init rtmw-dw-l-m_simcc-cocktail14_270e-256x192-20231122.pth \\\n"
        "      --images data/train/ --ann data/train.json \\\n"
        "      --val-images data/val/ --val-ann data/val.json --lr 1e-4 --iters 2000 --out runs/ft"
        + exit_code_epilog("training stopped: unreadable data, or a loss that is not finite")
    ),
)
@click.option(
    "--model", default="rtmw-demo-256x192", show_default=True,
    help="Zoo architecture: an RTMW pose model, or an RTMDet person detector (rtmdet-…).",
)  # fmt: skip
@click.option(
    "--init", type=click.Path(dir_okay=False),
    help="Checkpoint to fine-tune from (a 2D RTMW one starts an RTMW3D --model, cls_z new).",
)  # fmt: skip
@vocab_option("image_dir", type=click.Path(file_okay=False), help="Training image folder.")
@vocab_option("ann_file", type=click.Path(dir_okay=False), help="Training COCO-WholeBody JSON.")
@click.option("--val-images", type=click.Path(file_okay=False), help="Validation image folder.")
@click.option("--val-ann", type=click.Path(dir_okay=False), help="Validation annotation JSON.")
@click.option(
    "--synthetic",
    type=int,
    default=None,
    help="Generate N synthetic training images (seed+1) and N/20 validation images (seed+2) "
    "under OUT/data instead of --images/--ann.",
)
@click.option(
    "--val-limit", "--val-count", "val_count", default=100, show_default=True,
    help="Validation images used (the first N, as --limit elsewhere).",
)  # fmt: skip
@click.option("--iters", default=1000, show_default=True)
@vocab_option("batch_size", default=32, show_default=True, help="Training mini-batch size.")
@click.option("--lr", default=1e-3, show_default=True, type=float)
@click.option("--warmup", default=100, show_default=True, help="Warm-up iterations.")
@click.option("--val-every", default=500, show_default=True)
@click.option(
    "--rotate-factor", default=30.0, show_default=True, help="Rotation jitter (deg; pose only)."
)
@click.option(
    "--dropout-prob", default=0.5, show_default=True, help="Coarse dropout prob (pose only)."
)
@click.option(
    "--hand-weight", default=1.0, show_default=True,
    help="Loss weight of the 42 hand keypoints (pose only; mmpose's recipe: 1).",
)  # fmt: skip
@vocab_option("seed", default=21, show_default=True, help="Seed of initialisation and sampling.")
@vocab_option("threads", type=int, default=None, help="torch intra-op threads.")
@vocab_option("out", required=True, type=click.Path(file_okay=False), help="Run folder.")
@click.option(
    "--resume", is_flag=True,
    help="Continue the run in OUT from its resume.pt (same settings; --threads may change).",
)  # fmt: skip
@click.option(
    "--save-every", default=100, show_default=True, help="Iterations between resume states."
)
@click.option("--stop-after", type=int, default=None,
              help="Run at most N iterations now, leaving resume.pt to continue from.")  # fmt: skip
@verbosity
def main(
    model: str,
    init: str | None,
    image_dir: str | None,
    ann_file: str | None,
    val_images: str | None,
    val_ann: str | None,
    synthetic: int | None,
    val_count: int,
    iters: int,
    batch_size: int,
    lr: float,
    warmup: int,
    val_every: int,
    rotate_factor: float,
    dropout_prob: float,
    hand_weight: float,
    seed: int,
    threads: int | None,
    out: str,
    resume: bool,
    save_every: int,
    stop_after: int | None,
    quiet: bool,
) -> None:
    """Train RTMW with mmpose's recipe, or an RTMDet person detector with mmdet's; writes
    OUT/<model>.pth, train_log.json, curve PNG."""
    images, ann = image_dir, ann_file
    from rtmw.models.rtmdet import DETECTOR_ZOO

    detector = DETECTOR_ZOO.get(model)
    if not quiet and logging.getLogger().level > logging.INFO:
        setup_logging(1)  # training reports its validations at INFO
    from rtmw.errors import InputError, MissingDependency
    from rtmw.train import AugmentConfig, TrainConfig, TrainResult, plot_learning_curve, train
    from rtmw.train.detector_loop import DetectorTrainResult, train_detector

    if synthetic is not None:
        if images or ann:
            raise InputError("give either --synthetic or --images/--ann, not both")
        from rtmw.data.synthetic import training_splits
        from rtmw.models import get_config

        # a 3D model trains on 3D figures (root-relative depth known exactly)
        depth = detector is None and get_config(model).is_3d
        train_set, val_set = training_splits(
            Path(out) / "data", synthetic, seed, depth=depth, reuse=resume,
            progress=not quiet,
        )  # fmt: skip
        images, ann = str(train_set.image_dir), str(train_set.ann_file)
        val_images, val_ann = str(val_set.image_dir), str(val_set.ann_file)
    if not images or not ann:
        raise InputError("training data needed: --images and --ann (or --synthetic N)")
    cfg = TrainConfig(
        model=model,
        init=init,
        image_dir=images,
        ann_file=ann,
        val_image_dir=val_images,
        val_ann_file=val_ann,
        val_images=val_count,
        out_dir=out,
        iters=iters,
        batch_size=batch_size,
        lr=lr,
        warmup_iters=warmup,
        val_every=val_every,
        seed=seed,
        threads=threads,
        save_every=save_every,
        stop_after=stop_after,
        hand_weight=hand_weight,
        augment=AugmentConfig(rotate_factor=rotate_factor, dropout_prob=dropout_prob),
    )
    result: TrainResult | DetectorTrainResult
    if detector is not None:
        result = train_detector(cfg, detector, progress=not quiet, resume=resume)
    else:
        result = train(cfg, progress=not quiet, resume=resume)
    if result.final_ap is None and result.history and result.history[-1]["iter"] < iters:
        click.echo(
            f"stopped at iteration {result.history[-1]['iter']} of {iters}: rerun with --resume"
        )
        return
    try:
        curve = plot_learning_curve(
            result.history, Path(out) / "learning_curve.png", f"{result.config.name} training"
        )
        click.echo(f"learning curve: {curve}")
    except MissingDependency as exc:
        logger.warning("%s", exc)
    click.echo(f"checkpoint: {result.checkpoint} ({result.seconds / 60:.1f} min)")
    if result.final_ap is not None:
        label = "person box AP" if detector is not None else "AP (GT boxes, flip)"
        click.echo(
            f"validation {label}: "
            + json.dumps({k: round(v, 3) for k, v in result.final_ap.items()})
        )


if __name__ == "__main__":
    main()
