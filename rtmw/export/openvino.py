"""``openvino-fp32`` / ``openvino-fp16``: OpenVINO IR converted from the shared ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtmw.export.context import ExportContext
from rtmw.export.onnx import standard_io
from rtmw.export.registry import TargetOutput, register_target
from rtmw.runtimes._imports import import_backend


def _openvino_ir(ctx: ExportContext, stage: Path, fp16: bool) -> TargetOutput:
    ov: Any = import_backend("openvino", "openvino")
    model = ov.convert_model(str(ctx.onnx_fp32()))
    # save_model compresses weights to FP16 unless told not to: FP32 must say so
    ov.save_model(model, str(stage / "model.xml"), compress_to_fp16=fp16)
    return TargetOutput(
        files=["model.xml", "model.bin"],
        io=standard_io("model.xml"),
        tools={"openvino": str(ov.get_version())},
        options={"compress_to_fp16": fp16, "source_opset": ctx.opset},
    )


@register_target(
    "openvino-fp32",
    format="openvino",
    precision="fp32",
    requires=("openvino",),
    description="OpenVINO IR, FP32 weights",
)
def target_openvino_fp32(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _openvino_ir(ctx, stage, fp16=False)


@register_target(
    "openvino-fp16",
    format="openvino",
    precision="fp16",
    requires=("openvino",),
    description="OpenVINO IR, FP16-compressed weights (GPU/NPU run FP16; CPU decompresses)",
)
def target_openvino_fp16(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _openvino_ir(ctx, stage, fp16=True)
