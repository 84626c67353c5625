"""The shared ONNX step: torch → FP32 ONNX once per export run, and its FP16 form.

Every target but ``torch`` starts from these graphs. torch → ONNX with the TorchScript
exporter (``dynamo=False``): the dynamo exporter silently writes opset 18 when asked for
17. The opset actually written is recorded. A leaf of ``rtmw.export``: it uses the
``onnx`` format library (and onnxsim, onnxconverter-common), never a backend runtime.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtmw.errors import UsageError
from rtmw.models import ModelConfig
from rtmw.optional import import_backend

if TYPE_CHECKING:
    from torch import nn

    from rtmw.export.context import ExportContext

logger = logging.getLogger(__name__)

INPUT_NAME = "input"

# Node-name fragments (TorchScript exporter scopes) kept in FP32 by FP16 conversions:
# ScaleNorm's ‖x‖₂ overflows FP16, and the GAU's squared-ReLU attention sums 133
# squared products, which can too.
FP32_ISLANDS = ("/mlp/mlp.0/", "/mlp2/mlp2.0/", "/gau/")


def onnx_version() -> dict[str, str]:
    return {"onnx": str(import_backend("onnx", "onnx").__version__)}


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
    model: nn.Module, config: ModelConfig, path: Path, *, opset: int = 17, simplify: bool = True
) -> Path:
    """FP32 ONNX, dynamic batch axis, checked; simplified with onnxsim when available."""
    import torch

    check_opset(opset)

    onnx: Any = import_backend("onnx", "onnx")
    width, height = config.input_size
    dummy = torch.zeros(1, 3, height, width)
    outputs = config.output_names
    dynamic = {name: {0: "batch"} for name in (INPUT_NAME, *outputs)}
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
            output_names=list(outputs),
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
    """The I/O record of an artifact whose model takes ``input`` (the export adds the
    model's output names: simcc_x, simcc_y and, for RTMW3D, simcc_z)."""
    return {"file": file, "input": INPUT_NAME, "batch": "dynamic"}


def fp32_onnx(ctx: ExportContext) -> Path:
    """The FP32 ONNX every other target starts from (made once per run)."""
    return ctx.once(
        "onnx-fp32",
        lambda path: export_onnx(
            ctx.model, ctx.config, path, opset=ctx.options.opset, simplify=ctx.options.simplify
        ),
        "model_fp32.onnx",
    )


def fp16_onnx(ctx: ExportContext) -> Path:
    """FP16 ONNX with FP32 islands for the numerically sensitive head ops (made once)."""
    return ctx.once("onnx-fp16", lambda path: convert_fp16(fp32_onnx(ctx), path), "model_fp16.onnx")


def fixed_batch_onnx(ctx: ExportContext, batch: int) -> Path:
    """The FP32 ONNX with one fixed batch (NPU compilers take static shapes; made once)."""

    def make(path: Path) -> Path:
        onnx: Any = import_backend("onnx", "onnx")
        model = onnx.load(str(fp32_onnx(ctx)))
        for value in [*model.graph.input, *model.graph.output]:
            first = value.type.tensor_type.shape.dim[0]
            first.ClearField("dim_param")
            first.dim_value = batch
        del model.graph.value_info[:]  # inferred again with the batch fixed
        onnx.save(onnx.shape_inference.infer_shapes(model), str(path))
        return path

    return ctx.once(f"onnx-fixed-b{batch}", make, f"model_fixed_b{batch}.onnx")
