"""OpenVINO IR converted from the shared ONNX: ``openvino-fp32``, ``-fp16``, ``-bf16``.

``openvino-bf16`` is the FP32 IR with the SimCC head marked to stay in f32; its
manifest precision makes the runtime run it under a bf16 hint, which only CPUs with
native bf16 (AVX512_BF16, AMX) are allowed to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rtmw.errors import RtmwError
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


# the SimCC head's token projections (ScaleNorm + Linear), the GAU and the classifiers:
# the same blocks the INT8 policy keeps in float, and for the same reason
BF16_KEPT_F32 = ("/head/mlp/", "/head/mlp2/", "/head/gau/", "/head/cls_x/", "/head/cls_y/")
# the IR attribute that OpenVINO reads as "keep this node's precision" (DisableFP16Compression,
# serialised as "precise"); the CPU plugin then leaves the node in f32 under a bf16 hint
PRECISE_ATTRIBUTE = "precise"


def no_native_bf16() -> str | None:
    from rtmw.host import cpu_fingerprint

    host = cpu_fingerprint()
    if host["native"]["bf16"]:
        return None
    return (
        f"this CPU ({host['isa_class']}) has no native bf16 (needs AVX512_BF16 or AMX): "
        "a bf16 artifact could be neither verified nor run here"
    )


def mark_precise(xml: Path, prefixes: tuple[str, ...]) -> int:
    """Add the ``precise`` runtime attribute to every IR layer named under ``prefixes``."""
    import xml.etree.ElementTree as ET

    tree = ET.parse(xml)
    marked = 0
    for layer in tree.getroot().iter("layer"):
        if not layer.get("name", "").startswith(prefixes) or layer.get("type") == "Const":
            continue
        rt_info = layer.find("rt_info")
        if rt_info is None:
            rt_info = ET.Element("rt_info")
            layer.insert(0 if layer.find("data") is None else 1, rt_info)
        ET.SubElement(rt_info, "attribute", name=PRECISE_ATTRIBUTE, version="0")
        marked += 1
    tree.write(xml, encoding="utf-8", xml_declaration=True)
    return marked


@register_target(
    "openvino-bf16",
    format="openvino",
    precision="bf16",
    requires=("openvino",),
    description="OpenVINO IR run in bf16 on CPUs with AVX512_BF16/AMX; SimCC head kept f32",
    unavailable=no_native_bf16,
)
def target_openvino_bf16(ctx: ExportContext, stage: Path) -> TargetOutput:
    ov: Any = import_backend("openvino", "openvino")
    output = _openvino_ir(ctx, stage, fp16=False)
    marked = mark_precise(stage / "model.xml", BF16_KEPT_F32)
    reread = ov.Core().read_model(str(stage / "model.xml"))
    kept = sum(
        any("precision" in key.lower() or "fp16" in key.lower() for key in op.get_rt_info())
        for op in reread.get_ops()
    )
    if marked == 0 or kept < marked:
        raise RtmwError(
            f"openvino-bf16: OpenVINO {ov.get_version()} kept {kept} of {marked} f32 marks on "
            "the SimCC head; the head would run in bf16"
        )
    output.options.update(
        {
            "execution": "bf16 (INFERENCE_PRECISION_HINT), marked nodes f32",
            "kept_f32_patterns": list(BF16_KEPT_F32),
            "f32_marked_layers": marked,
            "f32_mark": f"IR rt_info attribute {PRECISE_ATTRIBUTE!r}",
        }
    )
    return output
