"""Rockchip NPU targets (RK3588 by default): ``rknn-fp16`` and ``rknn-int8``.

Built by Rockchip's ``rknn-toolkit2`` from the FP32 ONNX with its batch fixed at 1 (the
NPU compiles static shapes; the runtime loops over crops). ``rknn-int8`` is the toolkit's
w8a8 (per-channel weights unless the policy says per tensor) calibrated on our crops,
with the shared INT8 policy expressed as RKNN *hybrid quantisation*: the toolkit's layers
that compute the policy's nodes stay float16, marked in the layer list its step 1 writes
(the NPU has no f32: an INT8 RKNN's float parts are fp16, said in the manifest).

What the toolkit reports as an error while it emits the NPU's register commands (e.g.
``REGTASK: The bit width of field value exceeds the limit``, a field over 13 bits) does
not stop its build, and the simulator does not execute those commands: the manifest
records each such message (``toolkit_errors``), since only a board can show their effect.

The toolkit pins torch ≤ 2.4, numpy ≤ 1.26.4, onnx ≤ 1.18 and protobuf ≤ 4.25.4, so it
lives in an environment of its own (``make rknn-toolchain``, or ``RTMW_RKNN_PYTHON`` naming
its python) and is driven through :mod:`rtmw.runtimes.rknn_worker`. Each artifact carries what its
simulator needs to rebuild it exactly (the fixed-batch ONNX, the settings, the
calibration crops): export verification runs the model in the toolkit's simulator
against torch, like every other artifact. On a board, ``rknn-toolkit-lite2`` runs the
``.rknn`` on the NPU (:mod:`rtmw.runtimes.rknn`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from rtmw.export.context import ExportContext
from rtmw.export.onnx_step import INPUT_NAME, fixed_batch_onnx, standard_io
from rtmw.export.quant_policy import (
    AXIS_PER_TENSOR,
    calibration_crops,
    int8_verification_inputs,
    policy_patterns,
    policy_record,
)
from rtmw.export.registry import TargetOutput, register_target
from rtmw.optional import import_backend
from rtmw.runtimes.rknn import (
    CALIB_FILE,
    JOB_FILE,
    ONNX_FILE,
    RKNN_FILE,
    WORKER,
    rknn_python,
    run_worker,
    toolchain_missing,
)

EXTRA = "rknn"
# RKNN's calibration: enough crops for its per-tensor ranges, few enough to ship inside
# the artifact (the simulator rebuilds from them)
RKNN_CALIB_CROPS = 24


def float_tensors(onnx_path: Path, patterns: tuple[str, ...]) -> list[str]:
    """The tensors the policy's nodes compute and read (ONNX names); the toolkit's layers
    named after them are marked float16.

    The tensors read count too: the toolkit names the pieces it splits a node into after
    that node's input (ScaleNorm's square becomes ``/head/Concat_3_output_0_rs_pow``), and
    a ScaleNorm whose square runs in int8 ruins the head (max rel 3.4 on the demo model).
    At the policy's edge this also keeps the layer producing its input float16: a little
    more float than the policy names, never less."""
    onnx: Any = import_backend("onnx", "onnx")
    model = onnx.load(str(onnx_path), load_external_data=False)
    # weights, the model input and constants: no layer of the toolkit computes them
    not_computed = {init.name for init in model.graph.initializer}
    not_computed |= {i.name for i in model.graph.input}
    not_computed |= {out for node in model.graph.node if node.op_type == "Constant"
                     for out in node.output}  # fmt: skip
    kept = [node for node in model.graph.node
            if node.op_type != "Constant" and node.name.startswith(patterns)]  # fmt: skip
    names = [name for node in kept for name in (*node.output, *node.input)
             if name and name not in not_computed]  # fmt: skip
    return list(dict.fromkeys(names))


def _job(ctx: ExportContext, stage: Path, quantize: bool) -> dict[str, Any]:
    onnx_path = fixed_batch_onnx(ctx, 1)
    shutil.copyfile(onnx_path, stage / ONNX_FILE)
    width, height = ctx.config.input_size
    job: dict[str, Any] = {
        "platform": ctx.options.rknn_platform,
        "input_name": INPUT_NAME,
        "input_shape": [1, 3, height, width],
        "quantize": quantize,
        "per_channel": ctx.options.int8_per_channel,
    }
    if quantize:
        crops = calibration_crops(ctx)
        step = max(1, len(crops) // RKNN_CALIB_CROPS)
        np.savez_compressed(stage / CALIB_FILE, crops=crops[::step][:RKNN_CALIB_CROPS])
        patterns = policy_patterns(ctx.options)
        job["float_tensors"] = float_tensors(stage / ONNX_FILE, patterns) if patterns else []
    (stage / JOB_FILE).write_text(json.dumps(job, indent=1) + "\n")
    return job


def _build(ctx: ExportContext, stage: Path, quantize: bool) -> TargetOutput:
    job = _job(ctx, stage, quantize)
    details = run_worker("build", stage, stage / RKNN_FILE, ctx.scratch / "rknn-build")
    rebuilt_from = [ONNX_FILE, JOB_FILE] + ([CALIB_FILE] if quantize else [])
    options: dict[str, Any] = {
        "toolkit": details.get("sdk", "rknn-toolkit2"),
        "platform": job["platform"],
        "quantized": details.get("quantized"),
        "batch": 1,
        "simulator_rebuilds_from": rebuilt_from,
        "toolkit_errors": details.get("toolkit_errors", []),
    }
    if quantize:
        options.update(policy_record(ctx.options))
        options["float_parts"] = "fp16"  # the NPU computes no f32
        options["float_layers"] = details.get("float_layers", 0)
    return TargetOutput(
        files=[RKNN_FILE, *rebuilt_from],
        io={**standard_io(RKNN_FILE), "batch": 1},
        tools={"rknn-toolkit2": str(details.get("sdk", "unknown")), "python": str(rknn_python())},
        options=options,
    )


@register_target(
    "rknn-fp16",
    format="rknn",
    precision="fp16",
    requires=("onnx", "onnxruntime"),
    extra=EXTRA,
    description="Rockchip NPU (RK3588 default), float16; verified in rknn-toolkit2's simulator",
    unavailable=toolchain_missing,
    verify_device="simulator",
)
def target_rknn_fp16(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _build(ctx, stage, quantize=False)


@register_target(
    "rknn-int8",
    format="rknn",
    precision="int8",
    requires=("onnx", "onnxruntime"),
    extra=EXTRA,
    description="Rockchip NPU w8a8 (our crops), the policy's layers float16 (hybrid quantisation)",
    unavailable=toolchain_missing,
    verify_device="simulator",
    verify_inputs=int8_verification_inputs,
    int8_axes=(AXIS_PER_TENSOR,),
)
def target_rknn_int8(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _build(ctx, stage, quantize=True)


__all__ = ["WORKER", "float_tensors"]
