"""``torch``: the source checkpoint itself as an artifact: the FP32 reference for benches."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from rtmw.export.context import ExportContext
from rtmw.export.registry import TargetOutput, register_target


@register_target(
    "torch",
    format="torch",
    precision="fp32",
    requires=("torch",),
    description="the mmpose checkpoint, run by PyTorch: the reference every target is compared to",
)
def target_torch(ctx: ExportContext, stage: Path) -> TargetOutput:
    shutil.copyfile(ctx.checkpoint.path, stage / "model.pth")
    return TargetOutput(
        files=["model.pth"],
        io={"file": "model.pth", "input": "input", "batch": "dynamic"},
        tools={"torch": str(torch.__version__)},
    )
