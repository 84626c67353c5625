"""MNN targets (Alibaba's MNN, x86 and ARM): ``mnn-fp32`` and ``mnn-fp16``.

The shared FP32 ONNX goes through MNN's converter (``mnnconvert -f ONNX``); ``mnn-fp16``
stores its weights in FP16 (``--fp16``; whether it also computes in FP16 is the runtime's
``precision`` setting, which the adapter sets from the contract: FP16 arithmetic on ARM
cores with FP16, f32 elsewhere).

There is no ``mnn-int8``: MNN 3.6.1's offline quantiser (``mnnquant``; KL, EMA and ADMM
tried, our calibration crops written as 8-bit images, the head and neck skipped by name)
wrote an INT8 RTMW whose SimCC argmax agreed with FP32 on 9% of keypoints (verification
needs 70%); with PNG calibration images every activation scale it recorded was 0.0. It is
not shipped until that is understood.

The tools are called through the wheel's ``_tools`` extension, never ``MNN.tools``:
importing ``MNN.tools.utils.log`` runs ``pip install aliyun-log-python-sdk`` on the
system's pip and then reports each conversion to a remote log service (MNN 3.6.1).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from rtmw.errors import RtmwError
from rtmw.export.context import ExportContext
from rtmw.export.onnx_step import fp32_onnx, standard_io
from rtmw.export.registry import TargetOutput, register_target
from rtmw.logs import native_output_to
from rtmw.optional import import_backend

EXTRA = "mnn"
MODEL_FILE = "model.mnn"
BIZ_CODE = "rtmw"


def mnn_version() -> str:
    try:
        return version("mnn")
    except PackageNotFoundError:
        return "absent"


def _tools() -> Any:
    import_backend("MNN", EXTRA)  # the package (and its message if missing) first
    return import_backend("_tools", EXTRA)


def _run(tool: str, argv: list[str], log: Path) -> None:
    """One MNN tool call; its console output goes to ``log`` and is quoted on failure."""
    tools = _tools()
    with native_output_to(log):
        status = getattr(tools, tool)([tool, *argv])
    if status not in (0, None, True):
        text = log.read_text(errors="replace").strip() if log.is_file() else ""
        raise RtmwError(f"MNN {tool} failed (status {status}): {text[-400:]}")


def convert(onnx_path: Path, destination: Path, *, fp16: bool, log: Path | None = None) -> Path:
    argv = ["-f", "ONNX", "--modelFile", str(onnx_path), "--MNNModel", str(destination),
            "--bizCode", BIZ_CODE]  # fmt: skip
    if fp16:
        argv.append("--fp16")
    _run("mnnconvert", argv, log or destination.with_suffix(".log"))
    if not destination.is_file() or destination.stat().st_size == 0:
        raise RtmwError(f"MNN's converter wrote no {destination.name}")
    return destination


def _output(ctx: ExportContext, stage: Path, **options: Any) -> TargetOutput:
    return TargetOutput(
        files=[MODEL_FILE],
        io=standard_io(MODEL_FILE),
        tools={"mnn": mnn_version()},
        options={"converter": "mnnconvert -f ONNX", **options},
    )


@register_target(
    "mnn-fp32",
    format="mnn",
    precision="fp32",
    requires=("MNN", "onnx"),
    extra=EXTRA,
    description="MNN model (its converter from the FP32 ONNX), FP32",
)
def target_mnn_fp32(ctx: ExportContext, stage: Path) -> TargetOutput:
    convert(fp32_onnx(ctx), stage / MODEL_FILE, fp16=False, log=ctx.scratch / "mnn-fp32.log")
    return _output(ctx, stage, weights_fp16=False)


@register_target(
    "mnn-fp16",
    format="mnn",
    precision="fp16",
    requires=("MNN", "onnx"),
    extra=EXTRA,
    description="MNN with FP16 weights; FP16 arithmetic where the CPU has it (ARMv8.2+)",
)
def target_mnn_fp16(ctx: ExportContext, stage: Path) -> TargetOutput:
    convert(fp32_onnx(ctx), stage / MODEL_FILE, fp16=True, log=ctx.scratch / "mnn-fp16.log")
    return _output(ctx, stage, weights_fp16=True)
