"""Qualcomm: ``qnn-w8a16``, a QDQ ONNX for the Hexagon HTP (8-bit weights, 16-bit
activations, the form Qualcomm publishes its RTMPose whole-body figures in).

onnxruntime's QNN preset (``get_qnn_qdq_config``) writes the Q/DQ the QNN execution
provider compiles for the HTP: uint16 activations, uint8 symmetric weights, per channel
unless the policy says per tensor, calibrated on our crops; the policy's nodes are left
float. The HTP takes static shapes, so the model has one fixed batch
(``ExportOptions.fixed_batch``; the runtime chunks larger batches).

Verified twice: against torch in onnxruntime's CPU kernels (exact w8a16 arithmetic, every
export's check), and — where Qualcomm's ``onnxruntime-qnn`` wheel is installed — compiled
for the HTP by its QNN execution provider and run on the HTP backend, which on an
x86_64 Linux host is Qualcomm's HTP emulator (``libQnnHtp.so`` of the x86 wheel), with
CPU fallback disabled so that no node silently runs elsewhere. The nodes the INT8 policy
keeps float compute in fp16 there (the HTP has no f32; runtimes/precision.py). Its agreement
with torch (judged with the INT8 tolerance) and with the CPU run is recorded in
artifact.json (``htp_emulation``); a run that misses the tolerance is said in the export's
log and the record, and the artifact's gate on ``--device htp`` is what decides.

What the other Qualcomm packages on the index do here: ``qairt-dev`` is a 1 MB client
that fetches the QAIRT SDK from Qualcomm at run time (no network here);
``ai-edge-litert-sdk-qualcomm`` is an sdist that downloads the SDK when it builds;
``qnnruntime`` publishes aarch64 wheels only. None of them can compile or run here.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from rtmw.errors import RtmwError
from rtmw.export.context import ExportContext
from rtmw.export.onnx_step import INPUT_NAME, fixed_batch_onnx, standard_io
from rtmw.export.quant_policy import (
    calibration_crops,
    holdout_crops,
    int8_verification_inputs,
    kept_nodes,
    policy_patterns,
    policy_record,
)
from rtmw.export.registry import TargetOutput, register_target
from rtmw.export.targets.onnxruntime import CropReader, onnx_versions
from rtmw.harness.verify import DEFAULT_TOLERANCES
from rtmw.optional import import_backend
from rtmw.runtimes.qnn import DEFAULT_SOC_MODEL, HTP_FLOAT_OPTIONS, htp_host, htp_session

logger = logging.getLogger(__name__)

EXTRA = "qnn"
HTP_CHECK_CROPS = 4


def qnn_versions() -> dict[str, str]:
    versions = onnx_versions()
    try:
        versions["onnxruntime-qnn"] = version("onnxruntime-qnn")
    except PackageNotFoundError:
        versions["onnxruntime-qnn"] = "absent"
    return versions


def _htp_check(ctx: ExportContext, model: Path, batch: int, kept: int) -> dict[str, Any]:
    """The QDQ model compiled for and run on the HTP backend against onnxruntime's CPU run."""
    try:
        import_backend("onnxruntime_qnn", EXTRA)
    except Exception as exc:  # a missing extra: said in the record, not a failed export
        return {"ran": False, "why": str(exc).splitlines()[0]}
    ort: Any = import_backend("onnxruntime", "onnx")
    crops = holdout_crops(ctx)[: HTP_CHECK_CROPS * batch]
    cpu = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    try:
        htp = htp_session(model)
    except Exception as exc:
        raise RtmwError(f"qnn-w8a16: the QNN HTP backend refused the model: {exc}") from None
    from rtmw.models.inference import TorchInference

    torch_run = TorchInference(ctx.model)
    worst, agree, agree_torch, total = 0.0, 0, 0, 0
    for start in range(0, len(crops) - batch + 1, batch):
        chunk = np.ascontiguousarray(crops[start : start + batch])
        reference = torch_run(chunk)
        outputs = zip(htp.run(None, {INPUT_NAME: chunk}), cpu.run(None, {INPUT_NAME: chunk}),
                      reference.values(), strict=True)  # fmt: skip
        for got, want, exact in outputs:
            worst = max(worst, float(np.abs(got - want).max()))
            agree += int((got.argmax(-1) == want.argmax(-1)).sum())
            agree_torch += int((np.abs(got.argmax(-1) - exact.argmax(-1)) <= 4).sum())
            total += int(np.prod(got.shape[:-1]))
    # vs torch within ±4 bins (2 crop pixels), as INT8 verification counts agreement
    tolerance = DEFAULT_TOLERANCES["int8"]
    vs_torch = agree_torch / max(total, 1)
    passed = vs_torch >= tolerance.min_argmax_agreement
    if not passed:
        logger.warning("qnn-w8a16: on the HTP backend argmax agrees with torch on %.1f%% "
                       "(< %.0f%%); gate it there (--device htp) before deploying",
                       100 * vs_torch, 100 * tolerance.min_argmax_agreement)  # fmt: skip
    return {"ran": True, "backend": htp_host(), "soc_model": DEFAULT_SOC_MODEL,
            "crops": len(crops), "float_nodes": kept, "float_parts": "f16" if kept else "none",
            "max_abs_vs_cpu": worst, "argmax_agreement_vs_cpu": agree / max(total, 1),
            "argmax_agreement_vs_torch_4_bins": vs_torch,
            "min_argmax_agreement": tolerance.min_argmax_agreement, "passed": passed,
            "cpu_fallback": "disabled", **HTP_FLOAT_OPTIONS}  # fmt: skip


@register_target(
    "qnn-w8a16",
    format="qnn",
    precision="int8",
    requires=("onnx", "onnxruntime"),
    extra="onnx",
    description="QDQ ONNX for Qualcomm's HTP: 8-bit weights, 16-bit activations (QNN preset)",
    verify_inputs=int8_verification_inputs,
)
def target_qnn_w8a16(ctx: ExportContext, stage: Path) -> TargetOutput:
    quant: Any = import_backend("onnxruntime.quantization", "onnx")
    presets: Any = import_backend("onnxruntime.quantization.execution_providers.qnn", "onnx")
    batch = ctx.options.fixed_batch
    fixed = fixed_batch_onnx(ctx, batch)
    keep = kept_nodes(fixed, policy_patterns(ctx.options))
    config = presets.get_qnn_qdq_config(
        str(fixed), CropReader(calibration_crops(ctx), batch=batch),
        activation_type=quant.QuantType.QUInt16, weight_type=quant.QuantType.QUInt8,
        per_channel=ctx.options.int8_per_channel,
    )  # fmt: skip
    config.nodes_to_exclude = keep
    quant.quantize(str(fixed), str(stage / "model.onnx"), config)
    io = {**standard_io("model.onnx"), "batch": batch}
    granularity = "channel" if ctx.options.int8_per_channel else "tensor"
    return TargetOutput(
        files=["model.onnx"],
        io=io,
        tools=qnn_versions(),
        options={
            "quantizer": "onnxruntime get_qnn_qdq_config + quantize (QDQ for the QNN EP)",
            "activations": "uint16 asymmetric",
            "weights": f"uint8 symmetric, per {granularity}",
            "batch": batch,
            "kept_in_float": len(keep),
            "htp_emulation": _htp_check(ctx, stage / "model.onnx", batch, len(keep)),
            **policy_record(ctx.options),
        },
    )
