"""The learning curve of a training run as a PNG (loss and validation AP per iteration)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtmw.errors import MissingDependency


def plot_learning_curve(history: list[dict[str, Any]], path: str | Path, title: str) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency(
            "matplotlib is needed for plots: pip install 'rtmw[plot]'"
        ) from None
    iters = [h["iter"] for h in history]
    fig, loss_ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    loss_ax.plot(iters, [h["loss"] for h in history], color="tab:gray", label="train loss")
    loss_ax.set_xlabel("iteration")
    boxes = [h for h in history if "val_box_ap" in h]
    loss_ax.set_ylabel("QFL + 2·GIoU loss" if boxes else "KL loss per instance")
    loss_ax.set_yscale("log")
    val = [h for h in history if "val_ap" in h]
    if boxes:  # a detector run: person box AP and AP50
        ap_ax = loss_ax.twinx()
        for key, colour in (("ap", "black"), ("ap50", "tab:blue"), ("ap75", "tab:green")):
            ap_ax.plot([h["iter"] for h in boxes], [h["val_box_ap"][key] for h in boxes],
                       marker="o", color=colour, label=f"val box {key.upper()}")  # fmt: skip
        ap_ax.set_ylabel("validation person box AP")
        ap_ax.set_ylim(0, 1)
        ap_ax.legend(loc="center right", fontsize=8)
    if val:
        ap_ax = loss_ax.twinx()
        for part, colour in (
            ("wholebody", "black"),
            ("body", "tab:blue"),
            ("foot", "tab:green"),
            ("face", "tab:orange"),
            ("lefthand", "tab:red"),
            ("righthand", "tab:purple"),
        ):
            ap_ax.plot(
                [h["iter"] for h in val],
                [h["val_ap"][part] for h in val],
                marker="o",
                color=colour,
                label=f"val AP {part}",
                linewidth=2 if part == "wholebody" else 1,
            )
        ap_ax.set_ylabel("validation AP (GT boxes, no flip)")
        ap_ax.set_ylim(0, 1)
        ap_ax.legend(loc="center right", fontsize=8)
    loss_ax.legend(loc="upper right", fontsize=8)
    loss_ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
