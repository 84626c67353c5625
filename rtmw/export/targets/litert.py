"""LiteRT (TensorFlow Lite) targets from the torch model: ``litert-fp32``, ``-fp16``, ``-int8``.

LiteRT is what Android and embedded-Linux apps run (XNNPACK on CPUs, GPU and NPU
delegates). These targets start from the torch model, not the shared ONNX: litert-torch
(torch.export → StableHLO → TFLite) is the converter Google maintains, and the policy's
module paths carry over to it unchanged.

* ``litert-fp32``: the converted model, one fixed batch (``ExportOptions.fixed_batch``):
  litert-torch cannot trace a symbolic batch through the SimCC head's reshapes.
* ``litert-fp16``: FP16 weights (ai-edge-quantizer's float casting, dequantised at load
  on CPUs, run in FP16 by the GPU delegate), with the same FP32 islands as ONNX FP16:
  the GAU's weights stay FP32 (ScaleNorm has none).
* ``litert-int8``: PT2E post-training quantisation (per-channel symmetric INT8 weights,
  histogram-calibrated INT8 activations) on our calibration crops, with the shared
  policy's blocks left unannotated, so they stay float. Measured on the demo model
  (12 held-out crops, argmax agreement with FP32 over both axes): PT2E with head-fp32
  41.9 %, with head-neck-fp32 78.3 %; ai-edge-quantizer's static W8A8 on the FP32
  .tflite with the head excluded by scope regex 22.5 % / 23.2 %, because the
  classifiers' outputs carry the signature's names, so the exclusion misses them and
  the outputs come out INT8. So INT8 is PT2E. The INT8 model's input is INT8 too (the
  quantiser folds the first quantise into the input); the runtime quantises the float
  crops with the model's own scale and zero point, as the folded op would.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from rtmw.errors import RtmwError
from rtmw.export.context import ExportContext
from rtmw.export.pt2e import fixed_batch_sample, quantise_with_policy
from rtmw.export.quant_policy import AXIS_PER_TENSOR, int8_verification_inputs, policy_record
from rtmw.export.registry import TargetOutput, register_target
from rtmw.models.inference import torch_export_flags
from rtmw.optional import import_backend

logger = logging.getLogger(__name__)

EXTRA = "litert"
REQUIRES = ("litert_torch", "ai_edge_litert")
SIGNATURE = "serving_default"
# module paths whose weights stay FP32 in litert-fp16: the GAU (onnx_step.FP32_ISLANDS)
FP16_ISLANDS = ("head.gau",)


def _turn_down_logging() -> None:
    """LiteRT's C++ log to warnings, litert-torch's progress printing off (our bar says it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import_backend("litert_torch", EXTRA).config.show_progress = False


@contextlib.contextmanager
def _quietly(what: str) -> Iterator[None]:
    """ai-edge-quantizer prints its statistics and bars; they go to the debug log."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        yield
    logger.debug("%s: %s", what, captured.getvalue().strip())


def _versions(*packages: str) -> dict[str, str]:
    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "absent"
    return found


def _output(ctx: ExportContext, packages: tuple[str, ...], **options: Any) -> TargetOutput:
    """The one ``model.tflite`` every LiteRT target writes, its I/O and what made it."""
    return TargetOutput(
        files=["model.tflite"],
        io={"file": "model.tflite", "input": "args_0", "signature": SIGNATURE,
            "batch": ctx.options.fixed_batch},
        tools=_versions(*packages),
        options={"converter": "litert-torch", "batch": ctx.options.fixed_batch, **options},
    )  # fmt: skip


def _write_fp32(ctx: ExportContext, path: Path) -> Path:
    _turn_down_logging()
    litert_torch: Any = import_backend("litert_torch", EXTRA)
    with torch_export_flags():
        edge = litert_torch.convert(ctx.model.eval(), (fixed_batch_sample(ctx),))
    edge.export(str(path))
    return path


def fp32_tflite(ctx: ExportContext) -> Path:
    """The FP32 .tflite of this run, converted once and shared by fp32 and fp16."""
    return ctx.once(f"litert-fp32-b{ctx.options.fixed_batch}", lambda p: _write_fp32(ctx, p),
                    "model_fp32.tflite")  # fmt: skip


def scope_regex(module_path: str) -> str:
    """'head.gau' → a regex over litert-torch's tensor names ('…RTMWHead_head/…_gau;…')."""
    segments = [s for s in module_path.split(".") if s]
    body = "/".join(rf"[^/;]*_{re.escape(s)}" for s in segments)
    return rf".*(^|/){body}(/|;|$).*"


@register_target(
    "litert-fp32",
    format="litert",
    precision="fp32",
    requires=REQUIRES,
    extra=EXTRA,
    description="LiteRT (TFLite) FP32, fixed batch; XNNPACK on CPUs, GPU delegate where present",
)
def target_litert_fp32(ctx: ExportContext, stage: Path) -> TargetOutput:
    (stage / "model.tflite").write_bytes(fp32_tflite(ctx).read_bytes())
    return _output(ctx, ("litert-torch", "ai-edge-litert"))


@register_target(
    "litert-fp16",
    format="litert",
    precision="fp16",
    requires=(*REQUIRES, "ai_edge_quantizer"),
    extra=EXTRA,
    description="LiteRT FP16 weights, FP32 islands (GAU) as ONNX FP16; GPU delegate runs FP16",
)
def target_litert_fp16(ctx: ExportContext, stage: Path) -> TargetOutput:
    aeq: Any = import_backend("ai_edge_quantizer", EXTRA)
    names: Any = import_backend("ai_edge_quantizer.qtyping", EXTRA)
    algorithms: Any = import_backend("ai_edge_quantizer.algorithm_manager", EXTRA)
    ops = names.TFLOperationName
    cast = algorithms.AlgorithmName.FLOAT_CASTING
    quantizer = aeq.Quantizer(str(fp32_tflite(ctx)))
    for op in (ops.FULLY_CONNECTED, ops.CONV_2D, ops.DEPTHWISE_CONV_2D):
        quantizer.add_weight_only_config(".*", op, 16, algorithm_key=cast)
    for island in FP16_ISLANDS:
        quantizer.update_quantization_recipe(
            scope_regex(island), ops.ALL_SUPPORTED,
            algorithm_key=algorithms.AlgorithmName.NO_QUANTIZE,
        )  # fmt: skip
    with _quietly("ai-edge-quantizer"):
        quantizer.quantize().export_model(str(stage / "model.tflite"), overwrite=True)
    fp16 = [n for n, dtype in _weight_dtypes(stage / "model.tflite").items() if dtype == "float16"]
    island_fp16 = [n for n in fp16 if _island(n)]
    if island_fp16 or not fp16:
        raise RtmwError(
            f"litert-fp16: {len(island_fp16)} GAU weights became FP16 and {len(fp16)} weights "
            "FP16 in all: the FP32 islands were not kept"
        )
    return _output(
        ctx, ("litert-torch", "ai-edge-litert", "ai-edge-quantizer"),
        weights="float16 (ai-edge-quantizer float casting)",
        fp32_islands=list(FP16_ISLANDS),
        fp16_weight_tensors=len(fp16),
    )  # fmt: skip


def _island(tensor_name: str) -> bool:
    return any(re.match(scope_regex(island), tensor_name) for island in FP16_ISLANDS)


def _weight_dtypes(model_file: Path) -> dict[str, str]:
    """Constant tensors (weights) of a .tflite by name → dtype name."""
    interpreter: Any = import_backend("ai_edge_litert.interpreter", EXTRA)
    reader = interpreter.Interpreter(
        model_path=str(model_file),
        experimental_op_resolver_type=interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    found = {}
    for detail in reader.get_tensor_details():
        if detail["dtype"] in (np.float16, np.float32) and len(detail["shape"]) >= 2:
            dtype = np.dtype(detail["dtype"]).name
            found[detail["name"]] = dtype
    return found


@register_target(
    "litert-int8",
    format="litert",
    precision="int8",
    requires=(*REQUIRES, "torchao"),
    extra=EXTRA,
    description="LiteRT INT8 (PT2E, our calibration crops), the shared policy's blocks float",
    verify_inputs=int8_verification_inputs,
    int8_axes=(AXIS_PER_TENSOR,),
)
def target_litert_int8(ctx: ExportContext, stage: Path) -> TargetOutput:
    _turn_down_logging()
    litert_torch: Any = import_backend("litert_torch", EXTRA)
    pt2e: Any = import_backend("litert_torch.quantize.pt2e_quantizer", EXTRA)
    qconfig: Any = import_backend("litert_torch.quantize.quant_config", EXTRA)
    with torch_export_flags():
        done = quantise_with_policy(
            ctx, "litert-int8", pt2e.PT2EQuantizer,
            pt2e.get_symmetric_quantization_config(is_per_channel=ctx.options.int8_per_channel),
            extra=EXTRA, fold_quantize=False,
        )  # fmt: skip
        edge = litert_torch.convert(
            done.graph, (fixed_batch_sample(ctx),),
            quant_config=qconfig.QuantConfig(pt2e_quantizer=done.quantizer),
        )  # fmt: skip
    edge.export(str(stage / "model.tflite"))
    return _output(
        ctx, ("litert-torch", "ai-edge-litert", "torchao"),
        quantiser="PT2E (torchao), per-channel symmetric weights, histogram activations",
        calibration_crops=done.calibration_crops,
        float_modules=done.float_modules,
        float_nodes=done.float_nodes,
        input="int8: the runtime quantises crops with the model's scale and zero point",
        **policy_record(ctx.options),
    )  # fmt: skip
