"""ExecuTorch targets (``.pte``, XNNPACK delegate): ``executorch-fp32`` and ``executorch-int8``.

PyTorch's own on-device route: torch.export → edge dialect → XNNPACK partitions → an
ExecuTorch program. Like LiteRT the program has one fixed batch
(``ExportOptions.fixed_batch``): with a symbolic batch it lowers, but its XNNPACK
program fails at run time (error 0x10 in ExecuTorch 1.5.1).

``executorch-int8`` is PT2E with ExecuTorch's XNNPACK quantiser (per-channel symmetric
weights, INT8 activations) on our calibration crops; the shared policy's modules have
their annotations removed, so they stay float, exactly as in ``litert-int8``. The program's
input and outputs stay float.
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from rtmw.errors import RtmwError
from rtmw.export.context import ExportContext
from rtmw.export.pt2e import fixed_batch_sample, quantise_with_policy
from rtmw.export.quant_policy import AXIS_PER_TENSOR, int8_verification_inputs, policy_record
from rtmw.export.registry import TargetOutput, register_target
from rtmw.models.inference import torch_export_flags
from rtmw.optional import import_backend

logger = logging.getLogger(__name__)

EXTRA = "executorch"


def _tools() -> dict[str, str]:
    try:
        return {"executorch": version("executorch"), "torch": str(torch.__version__)}
    except PackageNotFoundError:
        return {"executorch": "absent", "torch": str(torch.__version__)}


def _lower(program: Any, stage: Path) -> dict[str, Any]:
    """Edge dialect → XNNPACK partitions → ``model.pte``; returns what was delegated."""
    exir: Any = import_backend("executorch.exir", EXTRA)
    partitioner: Any = import_backend(
        "executorch.backends.xnnpack.partition.xnnpack_partitioner", EXTRA
    )
    edge = exir.to_edge_transform_and_lower(program, partitioner=[partitioner.XnnpackPartitioner()])
    lowered = edge.to_executorch()
    (stage / "model.pte").write_bytes(lowered.buffer)
    plan = lowered.executorch_program.execution_plan[0]
    backends = sorted({d.id for d in plan.delegates})
    if "XnnpackBackend" not in backends:
        raise RtmwError(f"executorch: nothing was delegated to XNNPACK (delegates: {backends})")
    undelegated = sorted({op.name for op in plan.operators})
    return {"delegates": backends, "xnnpack_partitions": len(plan.delegates),
            "portable_operators": undelegated}  # fmt: skip


def _output(ctx: ExportContext, lowered: dict[str, Any], **options: Any) -> TargetOutput:
    return TargetOutput(
        files=["model.pte"],
        io={
            "file": "model.pte",
            "input": "input",
            "batch": ctx.options.fixed_batch,
        },
        tools=_tools(),
        options={
            "lowering": "to_edge_transform_and_lower + XnnpackPartitioner",
            "batch": ctx.options.fixed_batch,
            **lowered,
            **options,
        },
    )


@register_target(
    "executorch-fp32",
    format="executorch",
    precision="fp32",
    requires=("executorch",),
    extra=EXTRA,
    description="ExecuTorch program, XNNPACK delegate, FP32, fixed batch",
)
def target_executorch_fp32(ctx: ExportContext, stage: Path) -> TargetOutput:
    with torch_export_flags():
        program = torch.export.export(ctx.model.eval(), (fixed_batch_sample(ctx),))
        return _output(ctx, _lower(program, stage))


@register_target(
    "executorch-int8",
    format="executorch",
    precision="int8",
    requires=("executorch", "torchao"),
    extra=EXTRA,
    description="ExecuTorch XNNPACK INT8 (PT2E, our calibration crops), the policy's blocks float",
    verify_inputs=int8_verification_inputs,
    int8_axes=(AXIS_PER_TENSOR,),
)
def target_executorch_int8(ctx: ExportContext, stage: Path) -> TargetOutput:
    xnnpack: Any = import_backend("executorch.backends.xnnpack.quantizer.xnnpack_quantizer", EXTRA)
    with torch_export_flags():
        done = quantise_with_policy(
            ctx, "executorch-int8", xnnpack.XNNPACKQuantizer,
            xnnpack.get_symmetric_quantization_config(
                is_per_channel=ctx.options.int8_per_channel
            ),
            extra=EXTRA,
        )  # fmt: skip
        program = torch.export.export(done.graph, (fixed_batch_sample(ctx),))
        lowered = _lower(program, stage)
    return _output(
        ctx, lowered, quantiser="PT2E, ExecuTorch XNNPACKQuantizer (per-channel symmetric)",
        calibration_crops=done.calibration_crops, float_modules=done.float_modules,
        float_nodes=done.float_nodes, **policy_record(ctx.options),
    )  # fmt: skip
