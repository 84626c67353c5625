"""The mixed-precision policy every INT8 target shares, and its calibration crops.

Quantising everything breaks RTMW's SimCC head in every toolchain (argmax agreement
with FP32 falls to 11–93%); the default policy keeps the head's token projections
(ScaleNorm + Linear), the GAU and the cls_x/cls_y classifiers in floating point and
quantises the convolutional backbone, neck and head convolutions; ``head-neck-fp32``
also keeps the PAFPN neck (needed by narrow models such as the demo). ``--sensitivity``
measures, block by block, what quantising each one alone costs per body part.

A leaf of ``rtmw.export``: the backends' INT8 targets read it; it imports none of them.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtmw.errors import CalibrationRequired, UsageError
from rtmw.optional import import_backend

if TYPE_CHECKING:
    from rtmw.export.context import ExportContext, ExportOptions

# ONNX node-name prefixes (torch exporter scopes) kept in floating point by default
HEAD_HIGH_PRECISION = (
    "/head/mlp/",
    "/head/mlp2/",
    "/head/gau/",
    "/head/cls_x/",
    "/head/cls_y/",
    "/head/cls_z/",  # RTMW3D's depth classifier, in float like cls_x/cls_y
)
# RTMDet's equivalent (the person detector): the 1×1 class and box-distance convs of each
# level, whose outputs are the scores and box edges themselves. Measured on the demo
# detector (results/demo-detector-training/sensitivity-rtmdet-nano-demo.md): they cost
# almost nothing to keep (1 and 4 output channels) and the stride-8 ones move 1.5–1.7% of
# the boxes when quantised alone; the largest damage is the backbone's stem and first
# stages (7.3/6.4/5.8% of boxes), kept only on request (--int8-keep /backbone/stem/) since
# they are the high-resolution, costly layers.
DETECTOR_HEAD_HIGH_PRECISION = ("/bbox_head/rtm_cls", "/bbox_head/rtm_reg")
# Node-name prefixes of one family never match the other's graph (a pose head is /head/…,
# a detector head /bbox_head/…), so each policy names both families' sensitive layers.
POLICIES: dict[str, tuple[str, ...]] = {
    "head-fp32": (*HEAD_HIGH_PRECISION, *DETECTOR_HEAD_HIGH_PRECISION),  # the default
    # also the PAFPN neck: for narrow models (the demo's 0.125 width) whose few-channel
    # neck features lose too much to per-tensor INT8 activations (see --sensitivity)
    "head-neck-fp32": (*HEAD_HIGH_PRECISION, *DETECTOR_HEAD_HIGH_PRECISION, "/neck/"),
    "none": (),  # quantise everything quantisable (shown to break the head)
}
DEFAULT_POLICY = "head-fp32"
CALIB_BATCH = 8
# activation ranges clip the top 0.001% of calibration values: on the demo model this
# halved the body-AP loss of ort-int8 against MinMax ranges (1.52 → 0.74 points)
ACTIVATION_PERCENTILE = 99.999
VERIFY_HOLDOUT = 16


def check_policy(name: str) -> None:
    if name == "auto":
        raise UsageError(
            "the INT8 policy 'auto' is a search over exports, benches and gates: call "
            "rtmw.workflows.search_int8_policy (rtmw-export --int8-policy auto)"
        )
    if name not in POLICIES:
        raise UsageError(f"unknown INT8 policy {name!r}; known: {', '.join(POLICIES)}")


def policy_patterns(options: ExportOptions) -> tuple[str, ...]:
    """The node-name prefixes kept in float: the policy's, plus ``--int8-keep``."""
    check_policy(options.int8_policy)
    return POLICIES[options.int8_policy] + tuple(options.int8_keep)


def module_prefix(onnx_prefix: str) -> str:
    """An ONNX scope prefix ('/backbone/stage2/stage2.1/') → module path 'backbone.stage2.1'.

    For quantisers that work on torch graphs (PT2E): the TorchScript exporter repeats a
    container's name in its children's scopes ('stage2' / 'stage2.1'); torch.export's
    module stack has the plain path.
    """
    path: list[str] = []
    for segment in (s for s in onnx_prefix.split("/") if s):
        if path and segment.startswith(path[-1] + "."):
            segment = segment.split(".", 1)[1]
        path.extend(segment.split("."))
    return ".".join(path)


def policy_modules(options: ExportOptions) -> tuple[str, ...]:
    """The policy's float blocks as torch module paths ('head.mlp', 'neck', …)."""
    return tuple(module_prefix(p) for p in policy_patterns(options))


def in_modules(node: Any, prefixes: Sequence[str]) -> bool:
    """Whether a torch.export graph node was traced inside one of the modules ``prefixes``."""
    stack = node.meta.get("nn_module_stack") or {}
    return any(
        path == p or path.startswith(p + ".") for path, _ in stack.values() for p in prefixes
    )


def leave_float(graph_module: Any, modules: Sequence[str]) -> int:
    """Remove the PT2E quantisation annotations of every node traced inside ``modules``.

    What a quantiser's ``annotate`` calls last, so that the policy's blocks stay float
    (PT2E's quantisers take no "no config" per module); returns the nodes left float.
    """
    left = 0
    for node in graph_module.graph.nodes:
        if in_modules(node, modules) and node.meta.pop("quantization_annotation", None):
            left += 1
    return left


def policy_record(options: ExportOptions) -> dict[str, Any]:
    """What artifact.json says about the policy of an INT8 artifact."""
    record: dict[str, Any] = {
        "policy": options.int8_policy,
        "kept_patterns": list(policy_patterns(options)),
        "weight_granularity": "per-channel" if options.int8_per_channel else "per-tensor",
    }
    if options.int8_wide:
        record["int16_activation_patterns"] = list(options.int8_wide)
    return record


# the policy axes beyond "blocks kept in float", which a target names when its quantiser
# honours them (TargetSpec.int8_axes); the auto search proposes only those
AXIS_PER_TENSOR = "per-tensor"
AXIS_WIDE = "int16-activations"


def kept_nodes(onnx_path: Path, patterns: Sequence[str]) -> list[str]:
    onnx: Any = import_backend("onnx", "onnx")
    model = onnx.load(str(onnx_path))
    return [n.name for n in model.graph.node if any(n.name.startswith(p) for p in patterns)]


def with_output_names(onnx_path: Path, patterns: Sequence[str]) -> tuple[str, ...]:
    """``patterns`` plus the graph outputs that nodes under them produce.

    OpenVINO names the node computing a model output after the output ('simcc_x'), not
    after its ONNX node ('/head/cls_x/MatMul'): a scope or mark by ONNX name alone misses
    the classifiers (NNCF quantised them, bf16 marks left them bf16).
    """
    onnx: Any = import_backend("onnx", "onnx")
    model = onnx.load(str(onnx_path), load_external_data=False)
    outputs = {o.name for o in model.graph.output}
    produced = [out for node in model.graph.node
                if any(node.name.startswith(p) for p in patterns)
                for out in node.output if out in outputs]  # fmt: skip
    return (*patterns, *dict.fromkeys(produced))


def calibration_crops(ctx: ExportContext) -> np.ndarray:
    """The crops quantisers calibrate on: the set minus the verification hold-out."""
    return _split(ctx)[0]


def holdout_crops(ctx: ExportContext) -> np.ndarray:
    """Calibration crops no quantiser saw: what INT8 verification and accuracy control use."""
    return _split(ctx)[1]


def _split(ctx: ExportContext) -> tuple[np.ndarray, np.ndarray]:
    if ctx.calibration is None:
        raise CalibrationRequired(
            "INT8 needs a calibration set (--calib, made by rtmw-calib); "
            "there is no random-data fallback"
        )
    return ctx.calibration.split(VERIFY_HOLDOUT)


def int8_verification_inputs(
    ctx: ExportContext, shared: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """INT8 is verified on real inputs (person crops, or a detector's frames) and held-out
    calibration inputs, not on noise."""
    real = {name: inputs for name, inputs in shared.items() if name != "random"}
    return {**real, "calib_holdout": holdout_crops(ctx)}


def block_of(node_name: str) -> str:
    """'/backbone/stage2/stage2.1/…' → 'backbone.stage2'; '/head/gau/…' → 'head.gau'."""
    parts = [p for p in node_name.split("/") if p]
    if len(parts) < 2:
        return "other"
    if parts[0] == "neck" and len(parts) >= 3 and re.fullmatch(r"\w+\.\d+", parts[2]):
        return f"neck.{parts[2]}"
    if parts[0] == "head" and parts[1] in ("cls_x", "cls_y", "cls_z"):
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


def block_prefixes(onnx_path: Path) -> dict[str, str]:
    """Each block's ONNX node-name prefix ('backbone.stage2' → '/backbone/stage2/'): the
    longest scope all its nodes share, so that keeping the prefix keeps the block."""
    found = {}
    for block, nodes in blocks(onnx_path).items():
        shared = nodes[0].split("/")[:-1]
        for name in nodes[1:]:
            scope = name.split("/")[:-1]
            same = 0
            while same < min(len(shared), len(scope)) and shared[same] == scope[same]:
                same += 1
            shared = shared[:same]
        prefix = "/".join(shared) + "/"
        if block != "other" and prefix.count("/") >= 3:
            found[block] = prefix
    return found
