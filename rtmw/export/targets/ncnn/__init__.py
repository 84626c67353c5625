"""ncnn targets: ``ncnn-fp32`` / ``ncnn-fp16`` / ``ncnn-int8``, param/bin through pnnx.

pnnx traces the torch model (TorchScript); ``ncnn-int8`` rewrites its FP32 model in
ncnn's INT8 format (:mod:`.int8_format`, ncnn's own tools are in no package).

pnnx stores weights in FP16 by default (max |Δ| 0.75 instead of 0.007 on RTMW): the
FP32 target passes ``fp16=False``. ncnn networks are batch-1; the runtime loops.
FP16 storage/arithmetic is an ARM matter (x86 ncnn computes in FP32 regardless); the
options used are recorded in the manifest.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from rtmw.export.context import ExportContext
from rtmw.export.quant_policy import (
    ACTIVATION_PERCENTILE,
    calibration_crops,
    int8_verification_inputs,
    policy_patterns,
    policy_record,
)
from rtmw.export.registry import TargetOutput, register_target
from rtmw.export.targets.ncnn.int8_format import quantise_model
from rtmw.logs import native_output_to
from rtmw.optional import import_backend


def pnnx_export(ctx: ExportContext, fp16: bool) -> Path:
    """Run pnnx once per precision; returns its folder (model.ncnn.*, model.pnnx.*)."""
    return ctx.once(f"pnnx-fp16={fp16}", lambda work: _run_pnnx(ctx, work, fp16), f"ncnn_{fp16}")


def _run_pnnx(ctx: ExportContext, work: Path, fp16: bool) -> Path:
    import torch

    pnnx: Any = import_backend("pnnx", "ncnn")
    work.mkdir(exist_ok=True)
    width, height = ctx.config.input_size
    dummy = torch.zeros(1, 3, height, width)
    log = work / "pnnx.log"
    cwd = Path.cwd()
    try:
        os.chdir(work)  # pnnx writes helper files beside the working directory too
        with native_output_to(log), torch.no_grad():
            pnnx.export(ctx.model.eval(), str(work / "model.pt"), (dummy,), fp16=fp16)
    finally:
        os.chdir(cwd)
    for name in ("model.ncnn.param", "model.ncnn.bin", "model.pnnx.param", "model.pnnx.bin"):
        if not (work / name).is_file():
            tail = log.read_text(errors="replace")[-300:] if log.is_file() else ""
            raise RuntimeError(f"pnnx produced no {name}: {tail}")
    return work


NCNN_IO = {
    "param": "model.ncnn.param",
    "bin": "model.ncnn.bin",
    "ncnn_input": "in0",
    "input": "in0",
    "batch": 1,
}


def _ncnn_tools() -> dict[str, str]:
    pnnx: Any = import_backend("pnnx", "ncnn")
    ncnn: Any = import_backend("ncnn", "ncnn")
    return {
        "pnnx": str(getattr(pnnx, "__version__", "unknown")),
        "ncnn": str(getattr(ncnn, "__version__", "unknown")),
    }


def _ncnn_model(ctx: ExportContext, stage: Path, fp16: bool) -> TargetOutput:
    work = pnnx_export(ctx, fp16)
    for name in ("model.ncnn.param", "model.ncnn.bin"):
        shutil.copyfile(work / name, stage / name)
    return TargetOutput(
        files=["model.ncnn.param", "model.ncnn.bin"],
        io=dict(NCNN_IO),
        tools=_ncnn_tools(),
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
    extra="ncnn",
    description="ncnn param/bin via pnnx, FP32 weights",
)
def target_ncnn_fp32(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _ncnn_model(ctx, stage, fp16=False)


@register_target(
    "ncnn-fp16",
    format="ncnn",
    precision="fp16",
    requires=("pnnx", "ncnn"),
    extra="ncnn",
    description="ncnn with FP16 weights and FP16 storage/arithmetic options (ARM)",
)
def target_ncnn_fp16(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _ncnn_model(ctx, stage, fp16=True)


@register_target(
    "ncnn-int8",
    format="ncnn",
    precision="int8",
    requires=("pnnx", "ncnn"),
    extra="ncnn",
    description="ncnn INT8 (its int8 weight format and kernels), table from our calibration set",
    verify_inputs=int8_verification_inputs,
)
def target_ncnn_int8(ctx: ExportContext, stage: Path) -> TargetOutput:
    crops = calibration_crops(ctx)
    patterns = policy_patterns(ctx.options)
    work = pnnx_export(ctx, fp16=False)
    details = quantise_model(
        work / "model.ncnn.param", work / "model.ncnn.bin",
        work / "model.pnnx.param", work / "model.pnnx.bin",
        crops, patterns, stage, progress=ctx.options.progress,
    )  # fmt: skip
    return TargetOutput(
        files=["model.ncnn.param", "model.ncnn.bin", "model.ncnn.table"],
        io=dict(NCNN_IO),
        tools=_ncnn_tools(),
        options={
            **details,
            "quantizer": "rtmw ncnn INT8 writer (ncnn2table/ncnn2int8 are in no package)",
            "activations": "int8 symmetric, per tensor (ncnn's only form)",
            "weights": "int8 symmetric, per output channel",
            "calibration": f"percentile {ACTIVATION_PERCENTILE} of |input|, ncnn FP32 run",
            **policy_record(ctx.options),
            "weights_fp16": False,
            "fp16_arithmetic": False,
            "batching": "runtime loops over crops",
        },
    )
