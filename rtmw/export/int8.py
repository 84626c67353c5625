"""INT8 targets and the mixed-precision policy they share.

Quantising everything breaks RTMW's SimCC head in every toolchain (argmax agreement
with FP32 falls to 11–93%); the default policy keeps the head's token projections
(ScaleNorm + Linear), the GAU and the cls_x/cls_y classifiers in floating point and
quantises the convolutional backbone, neck and head convolutions; ``head-neck-fp32``
also keeps the PAFPN neck (needed by narrow models such as the demo). ``--sensitivity``
measures, block by block, what quantising each one alone costs per body part.

* ``ort-int8``: onnxruntime static QDQ, per-channel 8-bit weights, U8S8, activation
  ranges at the 99.999th percentile. (7-bit ``reduce_range`` weights, the usual advice
  for CPUs without VNNI, lost more accuracy on the demo model on such a CPU: body AP
  drop 0.74 vs 0.68, whole-body 0.48 vs 0.37, foot keypoint p99 44 vs 14 px.)
* ``openvino-int8``: NNCF post-training quantisation of the OpenVINO IR with full
  bias correction (the fast variant lost 1.59 vs 0.67 body AP on the demo), optionally
  accuracy-controlled against a validation function built on our keypoint OKS.
* ``trt-int8``: an explicit, symmetric Q/DQ ONNX (the only INT8 route TensorRT 11
  accepts), built as an engine with the installed TensorRT; TensorRT 10 can also take
  the implicit calibrator route from the FP32 ONNX.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rtmw.errors import RtmwError
from rtmw.export.context import ExportContext
from rtmw.export.onnx import INPUT_NAME, onnx_versions, standard_io
from rtmw.export.registry import TargetOutput, register_target
from rtmw.runtimes._imports import import_backend

logger = logging.getLogger(__name__)

# ONNX node-name prefixes (torch exporter scopes) kept in floating point by default
HEAD_HIGH_PRECISION = (
    "/head/mlp/",
    "/head/mlp2/",
    "/head/gau/",
    "/head/cls_x/",
    "/head/cls_y/",
)
POLICIES: dict[str, tuple[str, ...]] = {
    "head-fp32": HEAD_HIGH_PRECISION,  # the default
    # also the PAFPN neck: for narrow models (the demo's 0.125 width) whose few-channel
    # neck features lose too much to per-tensor INT8 activations (see --sensitivity)
    "head-neck-fp32": (*HEAD_HIGH_PRECISION, "/neck/"),
    "none": (),  # quantise everything quantisable (shown to break the head)
}
DEFAULT_POLICY = "head-fp32"
CALIB_BATCH = 8
# activation ranges clip the top 0.001% of calibration values: on the demo model this
# halved the body-AP loss of ort-int8 against MinMax ranges (1.52 → 0.74 points)
ACTIVATION_PERCENTILE = 99.999
VERIFY_HOLDOUT = 16
# NNCF's accuracy control re-ranks every quantised layer after each revert: on 2 cores it
# ran for many minutes without converging on a tight budget, so it gets a time limit
ACCURACY_CONTROL_SECONDS = 600.0


class CalibrationRequired(RtmwError):
    pass


class AccuracyControlTimeout(RtmwError):
    pass


def policy_patterns(ctx: ExportContext) -> tuple[str, ...]:
    name = str(ctx.options.get("int8_policy", DEFAULT_POLICY))
    if name not in POLICIES:
        raise RtmwError(f"unknown INT8 policy {name!r}; known: {', '.join(POLICIES)}")
    extra = tuple(ctx.options.get("int8_keep", ()))
    return POLICIES[name] + extra


def kept_nodes(onnx_path: Path, patterns: Sequence[str]) -> list[str]:
    onnx: Any = import_backend("onnx", "onnx")
    model = onnx.load(str(onnx_path))
    return [n.name for n in model.graph.node if any(n.name.startswith(p) for p in patterns)]


def calibration_crops(ctx: ExportContext) -> np.ndarray:
    if ctx.calibration is None:
        raise CalibrationRequired(
            "INT8 targets need a calibration set: rtmw-calib … --out calib.npz, then "
            "rtmw-export … --calib calib.npz (there is no random-data fallback)"
        )
    crops, _ = ctx.calibration.split(VERIFY_HOLDOUT)
    return crops


def block_of(node_name: str) -> str:
    """'/backbone/stage2/stage2.1/…' → 'backbone.stage2'; '/head/gau/…' → 'head.gau'."""
    parts = [p for p in node_name.split("/") if p]
    if len(parts) < 2:
        return "other"
    if parts[0] == "neck" and len(parts) >= 3 and re.fullmatch(r"\w+\.\d+", parts[2]):
        return f"neck.{parts[2]}"
    if parts[0] == "head" and parts[1] in ("cls_x", "cls_y"):
        return "head.cls"
    return f"{parts[0]}.{parts[1]}"


def blocks(onnx_path: Path) -> OrderedDict[str, list[str]]:
    onnx: Any = import_backend("onnx", "onnx")
    model = onnx.load(str(onnx_path))
    grouped: OrderedDict[str, list[str]] = OrderedDict()
    for node in model.graph.node:
        if node.name and node.op_type not in ("Constant", "Shape"):
            grouped.setdefault(block_of(node.name), []).append(node.name)
    return grouped


class _CropReader:
    """onnxruntime CalibrationDataReader over calibration crops, in small batches."""

    def __init__(self, crops: np.ndarray, batch: int = CALIB_BATCH) -> None:
        self.crops = crops
        self.batch = batch
        self._iter: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.crops), self.batch):
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
) -> dict[str, Any]:
    """Static QDQ quantisation with onnxruntime; returns the settings used.

    ``symmetric`` gives S8S8 with zero points 0 (TensorRT's requirement); otherwise
    U8S8 (asymmetric activations), onnxruntime's CPU kernels' format.
    """
    quant: Any = import_backend("onnxruntime.quantization", "onnx")
    shape_inference: Any = import_backend("onnxruntime.quantization.shape_inference", "onnx")
    prepared = output.with_name(output.stem + "_prep.onnx")
    # symbolic shape inference cannot handle the dynamic batch here; ONNX shape inference can
    shape_inference.quant_pre_process(str(onnx_fp32), str(prepared), skip_symbolic_shape=True)
    activation = quant.QuantType.QInt8 if symmetric else quant.QuantType.QUInt8
    extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    kwargs: dict[str, Any] = {}
    if cache is not None:
        kwargs["calibration_cache_path"] = str(cache)
    quant.quantize_static(
        str(prepared),
        str(output),
        _CropReader(crops),
        quant_format=quant.QuantFormat.QDQ,
        per_channel=True,
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
        "weights": "int8 symmetric, per channel",
        "calibration": f"percentile {ACTIVATION_PERCENTILE}",
        "kept_in_float": len(exclude),
    }


@register_target(
    "ort-int8",
    format="onnx",
    precision="int8",
    requires=("onnx", "onnxruntime"),
    description="onnxruntime static QDQ INT8 (U8S8, per-channel), head in FP32",
)
def target_ort_int8(ctx: ExportContext, stage: Path) -> TargetOutput:
    crops = calibration_crops(ctx)
    patterns = policy_patterns(ctx)
    keep = kept_nodes(ctx.onnx_fp32(), patterns)
    settings = quantize_qdq(
        ctx.onnx_fp32(), stage / "model.onnx", crops, exclude=keep, symmetric=False
    )
    return TargetOutput(
        files=["model.onnx"],
        io=standard_io("model.onnx"),
        tools={**onnx_versions()},
        options={**settings, "policy": ctx.options.get("int8_policy", DEFAULT_POLICY),
                 "kept_patterns": list(patterns)},
    )  # fmt: skip


def write_trt_int8_onnx(ctx: ExportContext, stage: Path) -> TargetOutput:
    """The explicit, symmetric Q/DQ ONNX a TensorRT INT8 build takes (verified in onnxruntime)."""
    crops = calibration_crops(ctx)
    patterns = policy_patterns(ctx)
    keep = kept_nodes(ctx.onnx_fp32(), patterns)
    settings = quantize_qdq(
        ctx.onnx_fp32(), stage / "model.onnx", crops, exclude=keep, symmetric=True
    )
    return TargetOutput(
        files=["model.onnx"],
        io=standard_io("model.onnx"),
        tools={**onnx_versions()},
        options={**settings, "for": "trt-int8", "policy": ctx.options.get("int8_policy",
                 DEFAULT_POLICY), "kept_patterns": list(patterns)},
    )  # fmt: skip


@register_target(
    "trt-int8",
    format="tensorrt",
    precision="int8",
    requires=("onnx", "onnxruntime"),
    description="TensorRT INT8 engine from an explicit Q/DQ ONNX (TensorRT 10 and 11)",
    onnx_fallback=write_trt_int8_onnx,
)
def target_trt_int8(ctx: ExportContext, stage: Path) -> TargetOutput:
    from rtmw.export.tensorrt import EngineSettings, build_int8_engine

    qdq = stage / "model_qdq.onnx"
    write_trt_int8_onnx(ctx, stage)
    (stage / "model.onnx").replace(qdq)
    settings = EngineSettings(**ctx.options.get("engine", {}))
    details = build_int8_engine(
        qdq, ctx.onnx_fp32(), calibration_crops(ctx), stage / "model.engine",
        ctx.config.input_size, settings, route=str(ctx.options.get("trt_int8_route", "qdq")),
    )  # fmt: skip
    qdq.unlink()
    return TargetOutput(
        files=["model.engine"],
        io=standard_io("model.engine"),
        tools={"tensorrt": str(details["tensorrt"])},
        options=details,
    )


def _ov_ignored_scope(nncf: Any, patterns: Sequence[str]) -> Any:
    regexes = [re.escape(p) + ".*" for p in patterns]
    return nncf.IgnoredScope(patterns=regexes, validate=False) if regexes else nncf.IgnoredScope()


def crop_oks_metric(
    reference: np.ndarray, candidate: np.ndarray, input_size: tuple[int, int] = (192, 256)
) -> float:
    """Mean OKS of candidate keypoints against reference ones, in crop pixels.

    The validation metric for accuracy-controlled quantisation: the evaluator's OKS with
    COCO-WholeBody sigmas, the FP32 model's keypoints as ground truth, the person inside
    the padded (w, h) crop as area.
    """
    from rtmw.data.evaluation import keypoint_similarity

    area = input_size[0] * input_size[1] / 1.25**2
    return float(np.mean(keypoint_similarity(reference, candidate, area)))


@register_target(
    "openvino-int8",
    format="openvino",
    precision="int8",
    requires=("openvino", "nncf"),
    description="OpenVINO IR quantised by NNCF PTQ (optionally accuracy-controlled), head FP32",
)
def target_openvino_int8(ctx: ExportContext, stage: Path) -> TargetOutput:
    ov: Any = import_backend("openvino", "openvino")
    nncf: Any = import_backend("nncf", "openvino")
    crops = calibration_crops(ctx)
    patterns = policy_patterns(ctx)
    model = ov.convert_model(str(ctx.onnx_fp32()))
    batches = [crops[i : i + 1] for i in range(len(crops))]
    dataset = nncf.Dataset(batches)
    scope = _ov_ignored_scope(nncf, patterns)
    max_drop = ctx.options.get("accuracy_control")
    options: dict[str, Any] = {
        "quantizer": "nncf.quantize",
        "preset": "mixed (symmetric weights, asymmetric activations)",
        "bias_correction": "full",
        "subset_size": len(batches),
        "policy": ctx.options.get("int8_policy", DEFAULT_POLICY),
        "kept_patterns": list(patterns),
    }
    if max_drop is None:
        quantized = nncf.quantize(
            model,
            dataset,
            preset=nncf.QuantizationPreset.MIXED,
            subset_size=len(batches),
            ignored_scope=scope,
            fast_bias_correction=False,
        )
    else:
        quantized, report = _accuracy_controlled(
            ov, nncf, model, ctx, dataset, scope, float(max_drop)
        )
        options.update(report)
    ov.save_model(quantized, str(stage / "model.xml"), compress_to_fp16=False)
    return TargetOutput(
        files=["model.xml", "model.bin"],
        io=standard_io("model.xml"),
        tools={"openvino": str(ov.get_version()), "nncf": str(nncf.__version__)},
        options=options,
    )


def _accuracy_controlled(
    ov: Any, nncf: Any, model: Any, ctx: ExportContext, dataset: Any, scope: Any, max_drop: float
) -> tuple[Any, dict[str, Any]]:
    """NNCF's accuracy-controlled PTQ: revert the most damaging layers until within budget."""
    from rtmw.pipeline.decode import decode_simcc

    assert ctx.calibration is not None
    _, holdout = ctx.calibration.split(VERIFY_HOLDOUT)
    budget = float(ctx.options.get("accuracy_control_seconds") or ACCURACY_CONTROL_SECONDS)
    start = time.monotonic()
    # f32, as NNCF's own engines compile (use_fp32_precision): never the CPU's bf16 default
    reference = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    ref_kpts = []
    for i in range(len(holdout)):
        out = reference(holdout[i : i + 1])
        ref_kpts.append(decode_simcc(out[0], out[1])[0][0])
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
            out = compiled(crop)
            kpts = decode_simcc(out[0], out[1])[0][0]
            scores.append(crop_oks_metric(ref_kpts[index], kpts, ctx.config.input_size))
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
