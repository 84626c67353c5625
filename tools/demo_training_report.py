"""results/demo-training/: the demo model's learning curve, figures and reproduction command.

Reads a finished ``rtmw-train`` run folder (train_log.json, learning_curve.png) and writes
README.md, curve.json and learning_curve.png under --out.

    .venv/bin/python tools/demo_training_report.py runs/demo-wide --out results/demo-training
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import click

from rtmw.keypoints import PARTS

TARGETS = {"wholebody": 0.5, "lefthand": 0.3, "righthand": 0.3, "face": 0.5}


def _command(cfg: dict, synthetic: int) -> str:
    aug = cfg["augment"]
    args = [
        "rtmw-train",
        "--model",
        cfg["model"],
        "--synthetic",
        str(synthetic),
        "--iters",
        str(cfg["iters"]),
        "--batch-size",
        str(cfg["batch_size"]),
        "--lr",
        f"{cfg['lr']:g}",
        "--warmup",
        str(cfg["warmup_iters"]),
        "--val-every",
        str(cfg["val_every"]),
        "--rotate-factor",
        f"{aug['rotate_factor']:g}",
        "--dropout-prob",
        f"{aug['dropout_prob']:g}",
        "--seed",
        str(cfg["seed"]),
        "--threads",
        str(cfg["threads"]),
        "--save-every",
        str(cfg["save_every"]),
        "--out",
        "runs/demo-wide",
    ]
    return shlex.join(args)


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--synthetic", default=3000, show_default=True, help="--synthetic of the run.")
@click.option("--checkpoint-name", required=True, help="The shipped weights' file name.")
@click.option("--out", default="results/demo-training", show_default=True)
def main(run_dir: str, synthetic: int, checkpoint_name: str, out: str) -> None:
    run = Path(run_dir)
    log = json.loads((run / "train_log.json").read_text())
    cfg = log["train_config"]
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(run / "learning_curve.png", target / "learning_curve.png")
    shutil.copy(run / "train_log.json", target / "train_log.json")
    curve = [
        {k: h[k] for k in ("iter", "loss", "lr", "seconds", "val_ap") if k in h}
        for h in log["history"]
    ]
    (target / "curve.json").write_text(
        json.dumps({"history": curve, "final_ap_flip": log["final_ap_flip"]}, indent=1) + "\n"
    )
    final = log["final_ap_flip"]
    n_val = min(cfg["val_images"] or 10**9, max(synthetic // 20, 10))
    validations = [h for h in curve if "val_ap" in h]
    header = "| iteration | minutes | loss | " + " | ".join(PARTS) + " |"
    rows = [header, "|" + "---|" * (3 + len(PARTS))]
    for h in validations:
        rows.append(
            f"| {h['iter']} | {h['seconds'] / 60:.0f} | {h['loss']:.4f} | "
            + " | ".join(f"{100 * h['val_ap'][p]:.1f}" for p in PARTS)
            + " |"
        )
    rows.append(
        "| **final, flip** | | | " + " | ".join(f"**{100 * final[p]:.1f}**" for p in PARTS) + " |"
    )
    targets = "\n".join(
        f"- {part}: {100 * final[part]:.1f} against a target of {100 * goal:.0f} — "
        + ("reached" if final[part] >= goal else "not reached")
        for part, goal in TARGETS.items()
    )
    text = f"""# The demo model's training: {log["model"]}

Shipped as `rtmw/models/weights/{checkpoint_name}` (the zoo pins its sha256). Trained with
`rtmw-train` from a fixed seed on {cfg["threads"]} thread(s) of a 2-core AMD EPYC (Zen 4),
with checkpoint/resume every {cfg["save_every"]} iterations, in
**{log["seconds"] / 60:.0f} minutes** (torch {log["torch"]}).

Reproduce (the synthetic data is generated from the seed; a killed run continues with
`--resume`):

```bash
{_command(cfg, synthetic)}
```

Validation: the first {n_val} held-out synthetic images (seed + 2), GT boxes; during
training without flip, at the end with flip (as published models are scored). AP in %:

{chr(10).join(rows)}

Targets of issue 20 (held-out synthetic, GT boxes, flip):

{targets}

![learning curve](learning_curve.png)

Hands stay far below the other parts, and their curve is still rising at the end (the
whole-body figure too): longer training is the next lever, not the generator alone (the
synthetic generator v2 already draws hands at 0.095–0.125 of the figure's height, with
varied finger poses and occlusion). `curve.json` holds every logged point (loss,
learning rate, seconds, validation AP); `train_log.json` is the run's own record.
"""
    (target / "README.md").write_text(text)
    click.echo(text)


if __name__ == "__main__":
    main()
