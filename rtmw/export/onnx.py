"""The shared ONNX step, and the ``onnx`` / ``onnx-fp16`` targets.

torch → ONNX with the TorchScript exporter (``dynamo=False``): the dynamo exporter
silently writes opset 18 when asked for 17. The opset actually written is recorded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

from rtmw.errors import UsageError
from rtmw.export.context import ExportContext
from rtmw.export.registry import TargetOutput, register_target
from rtmw.models import RTMW, RTMWConfig
from rtmw.runtimes._imports import import_backend

logger = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAMES = ("simcc_x", "simcc_y")

# Node-name fragments (TorchScript exporter scopes) kept in FP32 by FP16 conversions:
# ScaleNorm's ‖x‖₂ overflows FP16, and the GAU's squared-ReLU attention sums 133
# squared products, which can too.
FP32_ISLANDS = ("/mlp/mlp.0/", "/mlp2/mlp2.0/", "/gau/")


def onnx_versions() -> dict[str, str]:
    onnx: Any = import_backend("onnx", "onnx")
    versions = {"onnx": str(onnx.__version__)}
    with contextlib.suppress(ImportError):
        import onnxruntime

        versions["onnxruntime"] = str(onnxruntime.__version__)
    return versions


# opsets the shared ONNX step is exported and tested with: below 13 the head's ops
# (ReduceL2 axes, Split) have other forms and torch fails with pages of graph dump
OPSETS = range(13, 22)


def check_opset(opset: int) -> None:
    if opset not in OPSETS:
        raise UsageError(
            f"--opset {opset}: rtmw exports with ONNX opset {OPSETS.start}-{OPSETS.stop - 1} "
            "(17 is the default and what is tested)"
        )


def export_onnx(
    model: RTMW, config: RTMWConfig, path: Path, *, opset: int = 17, simplify: bool = True
) -> Path:
    """FP32 ONNX, dynamic batch axis, checked; simplified with onnxsim when available."""
    import torch

    check_opset(opset)

    onnx: Any = import_backend("onnx", "onnx")
    width, height = config.input_size
    dummy = torch.zeros(1, 3, height, width)
    dynamic = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)}
    # torch's exporter warns with whole TorchScript graphs; the outcome is what counts
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            (dummy,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
    proto = onnx.load(str(path))
    if simplify:
        try:
            onnxsim: Any = import_backend("onnxsim", "onnx")
            simplified, ok = onnxsim.simplify(proto)
            if ok:
                proto = simplified
            else:
                logger.warning(
                    "onnxsim could not validate the simplified model; keeping the original"
                )
        except Exception as exc:  # onnxsim is optional; any failure keeps the plain export
            logger.warning("onnxsim failed (%s); keeping the unsimplified model", exc)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return path


def written_opset(path: Path) -> int:
    onnx: Any = import_backend("onnx", "onnx")
    proto = onnx.load(str(path), load_external_data=False)
    return int(next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")))


def fp32_island_nodes(proto: Any) -> list[str]:
    return [n.name for n in proto.graph.node if any(part in n.name for part in FP32_ISLANDS)]


def convert_fp16(src: Path, dst: Path) -> Path:
    """FP16 weights and activations, FP32 inputs/outputs and FP32 islands (see above)."""
    onnx: Any = import_backend("onnx", "onnx")
    float16: Any = import_backend("onnxconverter_common.float16", "onnx")
    proto = onnx.load(str(src))
    keep = fp32_island_nodes(proto)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(
            proto,
            keep_io_types=True,
            # extend, never replace, the default list: replacing it breaks Resize
            op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST),
            node_block_list=keep,
        )
    truncated = sum("truncated" in str(w.message) for w in caught)
    if truncated:
        logger.info("fp16: %d tiny constants clamped to the FP16 range", truncated)
    onnx.checker.check_model(converted)
    onnx.save(converted, str(dst))
    return dst


def standard_io(file: str) -> dict[str, Any]:
    """The I/O record of an artifact whose model takes ``input`` and returns simcc_x/y."""
    return {"file": file, "input": INPUT_NAME, "outputs": list(OUTPUT_NAMES), "batch": "dynamic"}


def _onnx_artifact(ctx: ExportContext, source: Path, stage: Path, precision: str) -> TargetOutput:
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
    description="FP32 ONNX, dynamic batch, opset 17 by default",
)
def target_onnx(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _onnx_artifact(ctx, ctx.onnx_fp32(), stage, "fp32")


@register_target(
    "onnx-fp16",
    format="onnx",
    precision="fp16",
    requires=("onnx", "onnxruntime", "onnxconverter_common"),
    description="FP16 ONNX (FP32 I/O; ScaleNorm and GAU kept FP32); half the size, for GPU/NPU",
)
def target_onnx_fp16(ctx: ExportContext, stage: Path) -> TargetOutput:
    return _onnx_artifact(ctx, ctx.onnx_fp16(), stage, "fp16")
