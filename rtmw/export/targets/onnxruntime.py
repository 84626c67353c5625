"""onnxruntime targets: ``onnx`` (FP32), ``onnx-fp16`` and ``ort-int8``.

``ort-int8`` is onnxruntime's static QDQ quantisation: per-channel 8-bit weights, U8S8,
activation ranges at the 99.999th percentile. (7-bit ``reduce_range`` weights, the usual
advice for CPUs without VNNI, lost more accuracy on the demo model on such a CPU: body
AP drop 0.74 vs 0.68, whole-body 0.48 vs 0.37, foot keypoint p99 44 vs 14 px.) The same
quantiser writes the symmetric Q/DQ ONNX TensorRT takes (``rtmw.export.targets.tensorrt``)
and the one-block models of the sensitivity scan.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rtmw.errors import UsageError
from rtmw.export.context import ExportContext
from rtmw.export.onnx_step import (
    FP32_ISLANDS,
    INPUT_NAME,
    fp16_onnx,
    fp32_onnx,
    onnx_version,
    standard_io,
    written_opset,
)
from rtmw.export.quant_policy import (
    ACTIVATION_PERCENTILE,
    AXIS_PER_TENSOR,
    AXIS_WIDE,
    CALIB_BATCH,
    calibration_crops,
    int8_verification_inputs,
    kept_nodes,
    policy_patterns,
    policy_record,
)
from rtmw.export.registry import TargetOutput, register_target
from rtmw.optional import import_backend


def onnx_versions() -> dict[str, str]:
    versions = onnx_version()
    with contextlib.suppress(ImportError):
        import onnxruntime

        versions["onnxruntime"] = str(onnxruntime.__version__)
    return versions


def _onnx_artifact(source: Path, stage: Path, precision: str) -> TargetOutput:
    shutil.copyfile(source, stage / "model.onnx")
    return TargetOutput(
        files=["model.onnx"],
        io=standard_io("model.onnx"),
        tools=onnx_versions(),
        options={
            "opset": written_opset(source),
            "precision": precision,
            "fp32_islands": list(FP32_ISLANDS) if precision == "fp16" else [],
        },
    )


@register_target(
    "onnx",
    format="onnx",
    precision="fp32",
    requires=("onnx", "onnxruntime"),
    extra="onnx",
    description="FP32 ONNX, dynamic batch, opset 17 by default",
)
def target_onnx(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _onnx_artifact(fp32_onnx(ctx), stage, "fp32")


@register_target(
    "onnx-fp16",
    format="onnx",
    precision="fp16",
    requires=("onnx", "onnxruntime", "onnxconverter_common"),
    extra="onnx",
    description="FP16 ONNX (FP32 I/O; ScaleNorm and GAU kept FP32); half the size, for GPU/NPU",
)
def target_onnx_fp16(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _onnx_artifact(fp16_onnx(ctx), stage, "fp16")


def uniform_batch(count: int, largest: int = CALIB_BATCH) -> int:
    """The largest batch ≤ ``largest`` that divides ``count``: onnxruntime's histogram
    calibration stacks every batch's activations and fails on a shorter last batch."""
    return next(b for b in range(min(largest, max(count, 1)), 0, -1) if count % b == 0)


# Histogram calibration holds every calibrated tensor of every crop until it bins them:
# RTMW3D-x at 288×384 keeps ~460 MiB per crop, 29 GiB for 64 crops (the OOM killer ended it
# on a 24 GiB host; RTMW3D-l's 20 GiB only just fitted). Past this budget the crops are
# binned in strides, whose histograms onnxruntime merges on the first stride's bin width.
# A fixed budget, not the host's memory, decides, so one model's INT8 artifact is the same
# on every host; the demo models (~31 MiB per crop, 128 crops: 3.9 GiB) stay in one pass.
CALIB_ACTIVATION_BUDGET = 6 * 2**30


def activation_bytes_per_crop(onnx_model: Path) -> int:
    """Float activations one crop produces (every inferred tensor, batch dimension left out):
    what histogram calibration holds per crop."""
    onnx: Any = import_backend("onnx", "onnx")
    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_model), load_external_data=False))
    weights = {init.name for init in model.graph.initializer}
    total = 0
    for info in [*model.graph.value_info, *model.graph.output]:
        tensor = info.type.tensor_type
        if info.name in weights or tensor.elem_type != onnx.TensorProto.FLOAT:
            continue
        dims = [d.dim_value for d in tensor.shape.dim[1:]]
        if tensor.shape.dim and all(d > 0 for d in dims):
            total += 4 * int(np.prod(dims, dtype=np.int64))
    return total


def calibration_stride(batches: int, batch: int, bytes_per_crop: int) -> int | None:
    """Batches per histogram pass so that a pass holds at most the budget (a divisor of
    ``batches``: onnxruntime needs equal strides); None when everything fits in one."""
    if batches * batch * bytes_per_crop <= CALIB_ACTIVATION_BUDGET:
        return None
    most = max(1, CALIB_ACTIVATION_BUDGET // max(1, batch * bytes_per_crop))
    return next(s for s in range(min(most, batches), 0, -1) if batches % s == 0)


class CropReader:
    """onnxruntime CalibrationDataReader over calibration crops, in equal small batches;
    ``set_range`` (onnxruntime's strided calibration) limits it to some of the batches."""

    def __init__(self, crops: np.ndarray, batch: int = CALIB_BATCH) -> None:
        self.crops = crops
        self.batch = uniform_batch(len(crops), batch)
        self._range = (0, len(self))
        self._iter: Iterator[dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.crops) // self.batch

    def set_range(self, start_index: int, end_index: int) -> None:
        self._range = (start_index, min(end_index, len(self)))
        self._iter = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for index in range(*self._range):
            start = index * self.batch
            yield {INPUT_NAME: np.ascontiguousarray(self.crops[start : start + self.batch])}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            self._iter = self._batches()
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = None


def quantize_qdq(
    onnx_fp32: Path,
    output: Path,
    crops: np.ndarray,
    *,
    exclude: Sequence[str] = (),
    include: Sequence[str] | None = None,
    symmetric: bool,
    cache: Path | None = None,
    per_channel: bool = True,
    wide: Sequence[str] = (),
) -> dict[str, Any]:
    """Static QDQ quantisation with onnxruntime; returns the settings used.

    ``symmetric`` gives S8S8 with zero points 0 (TensorRT's requirement); otherwise
    U8S8 (asymmetric activations), onnxruntime's CPU kernels' format. ``wide`` names nodes
    whose input and output activations get 16-bit Q/DQ (weights stay 8-bit): onnxruntime
    has no 16-bit convolution kernels, so those nodes compute in float between 16-bit
    rounding steps: w8a16, the form Qualcomm's HTP runs natively.
    """
    quant: Any = import_backend("onnxruntime.quantization", "onnx")
    shape_inference: Any = import_backend("onnxruntime.quantization.shape_inference", "onnx")
    prepared = output.with_name(output.stem + "_prep.onnx")
    # symbolic shape inference cannot handle the dynamic batch here; ONNX shape inference can
    shape_inference.quant_pre_process(str(onnx_fp32), str(prepared), skip_symbolic_shape=True)
    activation = quant.QuantType.QInt8 if symmetric else quant.QuantType.QUInt8
    extra: dict[str, Any] = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    kwargs: dict[str, Any] = {}
    if cache is not None:
        kwargs["calibration_cache_path"] = str(cache)
    reader = CropReader(crops)
    stride = calibration_stride(len(reader), reader.batch, activation_bytes_per_crop(prepared))
    if stride is not None:
        # onnxruntime's option is named for MinMax but strides any calibrator's passes
        extra["CalibStridedMinMax"] = stride
    wide_tensors = wide_activation_tensors(prepared, wide) if wide else []
    if wide_tensors:
        wide_type = quant.QuantType.QInt16 if symmetric else quant.QuantType.QUInt16
        extra["TensorQuantOverrides"] = {name: [{"quant_type": wide_type}]
                                         for name in wide_tensors}  # fmt: skip
        extra["UseQDQContribOps"] = True  # 16-bit Q/DQ below opset 21: com.microsoft's
    quant.quantize_static(
        str(prepared),
        str(output),
        reader,
        quant_format=quant.QuantFormat.QDQ,
        per_channel=per_channel,
        reduce_range=False,
        activation_type=activation,
        weight_type=quant.QuantType.QInt8,
        nodes_to_exclude=list(exclude),
        nodes_to_quantize=list(include) if include is not None else None,
        calibrate_method=quant.CalibrationMethod.Percentile,
        extra_options={**extra, "CalibPercentile": ACTIVATION_PERCENTILE},
        **kwargs,
    )
    prepared.unlink(missing_ok=True)
    return {
        "quantizer": "onnxruntime.quantization.quantize_static (QDQ)",
        "activations": "int8 symmetric" if symmetric else "uint8 asymmetric",
        "weights": f"int8 symmetric, per {'channel' if per_channel else 'tensor'}",
        **({"int16_activation_tensors": len(wide_tensors)} if wide_tensors else {}),
        "calibration": f"percentile {ACTIVATION_PERCENTILE}"
        + (
            f", histograms in {len(reader) // stride} passes of {stride * reader.batch} crops"
            if stride is not None
            else ""
        ),
        "kept_in_float": len(exclude),
    }


def wide_activation_tensors(onnx_model: Path, patterns: Sequence[str]) -> list[str]:
    """The float activation tensors going into or out of the nodes named under
    ``patterns`` (weights and constants left out): what gets 16-bit Q/DQ."""
    onnx: Any = import_backend("onnx", "onnx")
    model = onnx.load(str(onnx_model), load_external_data=False)
    constant = {init.name for init in model.graph.initializer} | {
        out for node in model.graph.node if node.op_type == "Constant" for out in node.output
    }
    tensors: dict[str, None] = {}
    for node in model.graph.node:
        if any(node.name.startswith(p) for p in patterns):
            for name in [*node.input, *node.output]:
                if name and name not in constant:
                    tensors[name] = None
    if not tensors:
        raise UsageError(f"16-bit activation patterns {list(patterns)} match no node")
    return list(tensors)


def write_qdq_onnx(ctx: ExportContext, stage: Path, *, symmetric: bool) -> TargetOutput:
    """The policy's QDQ model of the shared FP32 ONNX as ``stage/model.onnx``."""
    patterns = policy_patterns(ctx.options)
    keep = kept_nodes(fp32_onnx(ctx), patterns)
    settings = quantize_qdq(
        fp32_onnx(ctx), stage / "model.onnx", calibration_crops(ctx), exclude=keep,
        symmetric=symmetric, per_channel=ctx.options.int8_per_channel,
        wide=ctx.options.int8_wide,
    )  # fmt: skip
    return TargetOutput(
        files=["model.onnx"],
        io=standard_io("model.onnx"),
        tools=onnx_versions(),
        options={**settings, **policy_record(ctx.options)},
    )


@register_target(
    "ort-int8",
    format="onnx",
    precision="int8",
    requires=("onnx", "onnxruntime"),
    extra="onnx",
    description="onnxruntime static QDQ INT8 (U8S8 or S8S8, per-channel), head in FP32",
    verify_inputs=int8_verification_inputs,
    int8_axes=(AXIS_PER_TENSOR, AXIS_WIDE),
)
def target_ort_int8(ctx: ExportContext, stage: Path) -> TargetOutput:
    return write_qdq_onnx(ctx, stage, symmetric=ctx.options.ort_int8_activations == "s8")
