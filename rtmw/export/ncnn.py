"""``ncnn-fp32`` / ``ncnn-fp16``: ncnn param/bin through pnnx (TorchScript trace).

pnnx stores weights in FP16 by default (max |Δ| 0.75 instead of 0.007 on RTMW): the
FP32 target passes ``fp16=False``. ncnn networks are batch-1; the runtime loops.
FP16 storage/arithmetic is an ARM matter (x86 ncnn computes in FP32 regardless); the
options used are recorded in the manifest.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path
from typing import Any

from rtmw.export.context import ExportContext
from rtmw.export.registry import TargetOutput, register_target
from rtmw.runtimes._imports import import_backend


def _ncnn_model(ctx: ExportContext, stage: Path, fp16: bool) -> TargetOutput:
    import torch

    pnnx: Any = import_backend("pnnx", "ncnn")
    ncnn: Any = import_backend("ncnn", "ncnn")
    work = ctx.scratch / ("ncnn_fp16" if fp16 else "ncnn_fp32")
    work.mkdir(exist_ok=True)
    width, height = ctx.config.input_size
    dummy = torch.zeros(1, 3, height, width)
    log = io.StringIO()
    cwd = Path.cwd()
    try:
        os.chdir(work)  # pnnx writes helper files beside the working directory too
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), torch.no_grad():
            pnnx.export(ctx.model.eval(), str(work / "model.pt"), (dummy,), fp16=fp16)
    finally:
        os.chdir(cwd)
    for name in ("model.ncnn.param", "model.ncnn.bin"):
        if not (work / name).is_file():
            raise RuntimeError(f"pnnx produced no {name}: {log.getvalue()[-300:]}")
        shutil.copyfile(work / name, stage / name)
    return TargetOutput(
        files=["model.ncnn.param", "model.ncnn.bin"],
        io={
            "param": "model.ncnn.param",
            "bin": "model.ncnn.bin",
            "ncnn_input": "in0",
            "ncnn_outputs": ["out0", "out1"],
            "input": "in0",
            "batch": 1,
        },
        tools={
            "pnnx": str(getattr(pnnx, "__version__", "unknown")),
            "ncnn": str(getattr(ncnn, "__version__", "unknown")),
        },
        options={
            "weights_fp16": fp16,
            "fp16_arithmetic": fp16,
            "batching": "runtime loops over crops",
        },
    )


@register_target(
    "ncnn-fp32",
    format="ncnn",
    precision="fp32",
    requires=("pnnx", "ncnn"),
    description="ncnn param/bin via pnnx, FP32 weights",
)
def target_ncnn_fp32(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _ncnn_model(ctx, stage, fp16=False)


@register_target(
    "ncnn-fp16",
    format="ncnn",
    precision="fp16",
    requires=("pnnx", "ncnn"),
    description="ncnn with FP16 weights and FP16 storage/arithmetic options (ARM)",
)
def target_ncnn_fp16(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _ncnn_model(ctx, stage, fp16=True)
