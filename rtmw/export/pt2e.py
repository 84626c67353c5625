"""PT2E post-training quantisation under the shared policy, for targets built by torch.export.

LiteRT and ExecuTorch quantise the same way: trace the model at its fixed batch, annotate
it with the backend's quantiser minus the policy's blocks (left float), calibrate on our
crops in full batches, convert. Only the quantiser class and the converter after it differ,
so the targets pass those in and share the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rtmw.errors import RtmwError
from rtmw.export.context import ExportContext
from rtmw.export.quant_policy import calibration_crops, leave_float, policy_modules
from rtmw.optional import import_backend


def fixed_batch_sample(ctx: ExportContext) -> torch.Tensor:
    """The trace input of a fixed-batch target: ``(fixed_batch, 3, H, W)`` zeros."""
    width, height = ctx.config.input_size
    return torch.zeros(ctx.options.fixed_batch, 3, height, width)


@dataclass
class Quantised:
    """A converted PT2E graph and what artifact.json says about how it was made."""

    graph: Any  # torch.fx.GraphModule with quantise/dequantise nodes
    quantizer: Any  # the annotating quantiser (LiteRT's converter needs it again)
    calibration_crops: int
    float_modules: list[str]
    float_nodes: int


def quantise_with_policy(
    ctx: ExportContext,
    target: str,
    quantizer_class: type,
    config: Any,
    *,
    extra: str,
    fold_quantize: bool = True,
) -> Quantised:
    """PT2E of ``ctx.model`` with ``quantizer_class`` (global ``config``), the policy float.

    Call inside :func:`rtmw.models.inference.torch_export_flags`. Raises when the policy's
    modules match no node, or when there are fewer crops than one batch.
    """
    quantize_pt2e: Any = import_backend("torchao.quantization.pt2e.quantize_pt2e", extra)
    kept = policy_modules(ctx.options)
    crops = calibration_crops(ctx)
    batch = ctx.options.fixed_batch
    usable = len(crops) - len(crops) % batch
    if usable == 0:
        raise RtmwError(
            f"{target}: {len(crops)} calibration crops are fewer than one batch of {batch}"
        )

    class PolicyQuantizer(quantizer_class):  # type: ignore[misc]
        """The backend's quantiser with the policy's modules left unannotated (float)."""

        left_float = 0

        def annotate(self, graph_module: Any) -> Any:
            graph_module = super().annotate(graph_module)
            PolicyQuantizer.left_float += leave_float(graph_module, kept)
            return graph_module

    quantizer = PolicyQuantizer()
    quantizer.set_global(config)
    graph = torch.export.export(ctx.model.eval(), (fixed_batch_sample(ctx),)).module()
    prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
    if kept and PolicyQuantizer.left_float == 0:
        raise RtmwError(f"{target}: the policy's modules {list(kept)} matched no node")
    with torch.no_grad():
        for start in range(0, usable, batch):
            prepared(torch.from_numpy(np.ascontiguousarray(crops[start : start + batch])))
    converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=fold_quantize)
    return Quantised(converted, quantizer, usable, list(kept), PolicyQuantizer.left_float)
