"""OpenVINO targets from the shared ONNX: ``openvino-fp32``, ``-fp16``, ``-bf16``, ``-int8``.

``openvino-bf16`` is the FP32 IR with the SimCC head marked to stay in f32; its
manifest precision makes the runtime run it under a bf16 hint, which only CPUs with
native bf16 (AVX512_BF16, AMX) are allowed to do.

``openvino-int8`` is NNCF post-training quantisation of the IR with full bias correction
(the fast variant lost 1.59 vs 0.67 body AP on the demo), the shared policy as NNCF's
ignored scope, optionally accuracy-controlled against the harness's keypoint similarity.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rtmw.errors import AccuracyControlTimeout, RtmwError
from rtmw.export.context import AccuracyControl, ExportContext
from rtmw.export.onnx_step import fp32_onnx, standard_io
from rtmw.export.quant_policy import (
    AXIS_PER_TENSOR,
    calibration_crops,
    holdout_crops,
    int8_verification_inputs,
    policy_patterns,
    policy_record,
    with_output_names,
)
from rtmw.export.registry import TargetOutput, register_target
from rtmw.logs import adopt_logger
from rtmw.optional import import_backend

logger = logging.getLogger(__name__)
# NNCF's accuracy control re-ranks every quantised layer after each revert: on 2 cores it
# ran for many minutes without converging on a tight budget, so it gets a time limit
ACCURACY_CONTROL_SECONDS = 600.0


def _openvino_ir(ctx: ExportContext, stage: Path, fp16: bool) -> TargetOutput:
    ov: Any = import_backend("openvino", "openvino")
    model = ov.convert_model(str(fp32_onnx(ctx)))
    # save_model compresses weights to FP16 unless told not to: FP32 must say so
    ov.save_model(model, str(stage / "model.xml"), compress_to_fp16=fp16)
    return TargetOutput(
        files=["model.xml", "model.bin"],
        io=standard_io("model.xml"),
        tools={"openvino": str(ov.get_version())},
        options={"compress_to_fp16": fp16, "source_opset": ctx.options.opset},
    )


@register_target(
    "openvino-fp32",
    format="openvino",
    precision="fp32",
    requires=("openvino",),
    extra="openvino-runtime",
    description="OpenVINO IR, FP32 weights",
)
def target_openvino_fp32(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _openvino_ir(ctx, stage, fp16=False)


@register_target(
    "openvino-fp16",
    format="openvino",
    precision="fp16",
    requires=("openvino",),
    extra="openvino-runtime",
    description="OpenVINO IR, FP16-compressed weights (GPU/NPU run FP16; CPU decompresses)",
)
def target_openvino_fp16(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _openvino_ir(ctx, stage, fp16=True)


# the SimCC head's token projections (ScaleNorm + Linear), the GAU and the classifiers:
# the same blocks the INT8 policy keeps in float, and for the same reason
BF16_KEPT_F32 = (
    "/head/mlp/", "/head/mlp2/", "/head/gau/", "/head/cls_x/", "/head/cls_y/", "/head/cls_z/",
)  # fmt: skip
# a person detector's prediction convs and what scales them to pixels (exp, × stride):
# box distances reach hundreds of pixels, which bf16's 8 mantissa bits would round by
# pixels; the rest of the network runs in bf16
BF16_KEPT_F32_DETECTOR = ("/bbox_head/rtm_cls", "/bbox_head/rtm_reg", "/bbox_head/Exp",
                          "/bbox_head/Mul")  # fmt: skip
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
    extra="openvino-runtime",
    description="OpenVINO IR run in bf16 on CPUs with AVX512_BF16/AMX; SimCC head kept f32",
    unavailable=no_native_bf16,
)
def target_openvino_bf16(ctx: ExportContext, stage: Path) -> TargetOutput:
    ov: Any = import_backend("openvino", "openvino")
    output = _openvino_ir(ctx, stage, fp16=False)
    kept_f32: tuple[str, ...] = (
        BF16_KEPT_F32_DETECTOR if ctx.config.task == "detect" else BF16_KEPT_F32
    )
    what = "detection head's predictions" if ctx.config.task == "detect" else "SimCC head"
    kept_f32 = with_output_names(fp32_onnx(ctx), kept_f32)
    marked = mark_precise(stage / "model.xml", kept_f32)
    reread = ov.Core().read_model(str(stage / "model.xml"))
    kept = sum(
        any("precision" in key.lower() or "fp16" in key.lower() for key in op.get_rt_info())
        for op in reread.get_ops()
    )
    if marked == 0 or kept < marked:
        raise RtmwError(
            f"openvino-bf16: OpenVINO {ov.get_version()} kept {kept} of {marked} f32 marks on "
            f"the {what}; they would run in bf16"
        )
    output.options.update(
        {
            "execution": "bf16 (INFERENCE_PRECISION_HINT), marked nodes f32",
            "kept_f32_patterns": list(kept_f32),
            "f32_marked_layers": marked,
            "f32_mark": f"IR rt_info attribute {PRECISE_ATTRIBUTE!r}",
        }
    )
    return output


def _ov_ignored_scope(nncf: Any, patterns: Sequence[str]) -> Any:
    """Prefixes ('/head/gau/') and output names ('simcc_x': what OpenVINO calls the node
    computing an output) as NNCF regexes."""
    regexes = [re.escape(p) + ".*" for p in patterns]
    return nncf.IgnoredScope(patterns=regexes, validate=False) if regexes else nncf.IgnoredScope()


@register_target(
    "openvino-int8",
    format="openvino",
    precision="int8",
    requires=("openvino", "nncf"),
    extra="openvino",
    description="OpenVINO IR quantised by NNCF PTQ (optionally accuracy-controlled), head FP32",
    verify_inputs=int8_verification_inputs,
    int8_axes=(AXIS_PER_TENSOR,),
)
def target_openvino_int8(ctx: ExportContext, stage: Path) -> TargetOutput:
    output = _openvino_int8(ctx, stage)
    output.options["float_parts"] = "f32"
    return output


# what stays f32 when an INT8 IR's float parts run in bf16: the SimCC classifiers, whose
# logits over 2× the input's pixels bf16's 8 mantissa bits would round by whole bins
# (openvino-bf16 keeps the whole head f32; here the GAU and token MLPs, the float
# parts' cost, run in bf16); a detector's prediction convs as in openvino-bf16
INT8_BF16_KEPT_F32 = ("/head/cls_x/", "/head/cls_y/", "/head/cls_z/")


@register_target(
    "openvino-int8-bf16",
    format="openvino",
    precision="int8",
    requires=("openvino", "nncf"),
    extra="openvino",
    description="openvino-int8 with its float parts in bf16 (an explicit contract, native bf16 "
    "CPUs only), SimCC classifiers f32",
    unavailable=no_native_bf16,
    verify_inputs=int8_verification_inputs,
    int8_axes=(AXIS_PER_TENSOR,),
)
def target_openvino_int8_bf16(ctx: ExportContext, stage: Path) -> TargetOutput:
    """The float parts' precision as a contract of its own: the runtime sets and reads back
    bf16 (``float_parts``), and the artifact is verified and gated in it, never silently."""
    output = _openvino_int8(ctx, stage)
    kept: tuple[str, ...] = (
        BF16_KEPT_F32_DETECTOR if ctx.config.task == "detect" else INT8_BF16_KEPT_F32
    )
    kept = with_output_names(fp32_onnx(ctx), kept)
    marked = mark_precise(stage / "model.xml", kept)
    if marked == 0:
        raise RtmwError(f"openvino-int8-bf16: no layer under {list(kept)} to keep f32")
    output.options.update(
        {"float_parts": "bf16", "kept_f32_patterns": list(kept), "f32_marked_layers": marked}
    )
    return output


def _openvino_int8(ctx: ExportContext, stage: Path) -> TargetOutput:
    ov: Any = import_backend("openvino", "openvino")
    nncf: Any = import_backend("nncf", "openvino")
    adopt_logger("nncf")  # its records to rtmw's handlers, not its own stdout handler
    crops = calibration_crops(ctx)
    patterns = policy_patterns(ctx.options)
    model = ov.convert_model(str(fp32_onnx(ctx)))
    batches = [crops[i : i + 1] for i in range(len(crops))]
    dataset = nncf.Dataset(batches)
    scope = _ov_ignored_scope(nncf, with_output_names(fp32_onnx(ctx), patterns))
    control = ctx.options.accuracy_control
    options: dict[str, Any] = {
        "quantizer": "nncf.quantize",
        "preset": "mixed (symmetric weights, asymmetric activations)",
        "bias_correction": "full",
        "subset_size": len(batches),
        **policy_record(ctx.options),
    }
    advanced: dict[str, Any] = {}
    if not ctx.options.int8_per_channel:
        params: Any = import_backend("nncf.quantization.advanced_parameters", "openvino")
        advanced["advanced_parameters"] = params.AdvancedQuantizationParameters(
            weights_quantization_params=params.QuantizationParameters(per_channel=False)
        )
    if control is None:
        quantized = nncf.quantize(
            model,
            dataset,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(batches),
            ignored_scope=scope,
            fast_bias_correction=False,
            **advanced,
        )
    else:
        quantized, report = _accuracy_controlled(nncf, model, ctx, dataset, scope, control)
        options.update(report)
    ov.save_model(quantized, str(stage / "model.xml"), compress_to_fp16=False)
    return TargetOutput(
        files=["model.xml", "model.bin"],
        io=standard_io("model.xml"),
        tools={"openvino": str(ov.get_version()), "nncf": str(nncf.__version__)},
        options=options,
    )


def _fp32_reference_keypoints(ctx: ExportContext, holdout: np.ndarray) -> list[np.ndarray]:
    """The FP32 IR's keypoints on the hold-out, run through the OpenVINO runtime adapter
    under the fp32 contract (f32 hint, read back), as every verification runs."""
    from rtmw import runtimes
    from rtmw.pipeline.decode import decode_simcc

    work = ctx.scratch / "accuracy_control_reference"
    work.mkdir(exist_ok=True)
    _openvino_ir(ctx, work, fp16=False)
    with runtimes.open_model(
        work / "model.xml", format="openvino", precision="fp32",
        input_size=ctx.config.input_size, files=("model.bin",),
        outputs=ctx.config.output_names,
    ) as reference:  # fmt: skip
        decoded = []
        for i in range(len(holdout)):
            outputs = reference(holdout[i : i + 1])
            decoded.append(decode_simcc(outputs["simcc_x"], outputs["simcc_y"])[0][0])
        return decoded


def _accuracy_controlled(
    nncf: Any, model: Any, ctx: ExportContext, dataset: Any, scope: Any, control: AccuracyControl
) -> tuple[Any, dict[str, Any]]:
    """NNCF's accuracy-controlled PTQ: revert the most damaging layers until within budget."""
    from rtmw.harness import crop_similarity
    from rtmw.pipeline.decode import decode_simcc

    holdout = holdout_crops(ctx)
    max_drop = control.max_drop
    budget = float(control.seconds or ACCURACY_CONTROL_SECONDS)
    start = time.monotonic()
    ref_kpts = _fp32_reference_keypoints(ctx, holdout)
    validation = nncf.Dataset([(holdout[i : i + 1], i) for i in range(len(holdout))])
    validations = 0

    def validate(compiled: Any, items: Any) -> float:
        nonlocal validations
        elapsed = time.monotonic() - start
        if elapsed > budget:
            raise AccuracyControlTimeout(
                f"NNCF accuracy control passed its {budget:.0f} s budget after {validations} "
                f"validations without reaching a keypoint-OKS drop ≤ {max_drop:g}: allow a "
                "larger drop or more time (--accuracy-control-seconds), or export without "
                "--accuracy-control"
            )
        validations += 1
        logger.info("accuracy control: validation %d at %.0f s", validations, elapsed)
        scores = []
        for crop, index in items:
            out = compiled(crop)  # OpenVINO's own results, by port in the IR's output order
            kpts = decode_simcc(out[0], out[1])[0][0]
            scores.append(crop_similarity(ref_kpts[index], kpts, ctx.config.input_size))
        return float(np.mean(scores))

    quantized = nncf.quantize_with_accuracy_control(
        model,
        calibration_dataset=dataset,
        validation_dataset=validation,
        validation_fn=validate,
        max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE,
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=int(dataset.get_length() or 300),
        fast_bias_correction=False,  # as the plain openvino-int8 path
        ignored_scope=scope,
    )
    return quantized, {
        "accuracy_control": {
            "max_drop": max_drop,
            "metric": "mean keypoint OKS vs FP32 on held-out calibration crops",
            "holdout": len(holdout),
            "validations": validations,
            "seconds": round(time.monotonic() - start, 1),
            "time_budget_s": budget,
        }
    }
