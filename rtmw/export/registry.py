"""Export targets, one function each, registered by name with their backend's hooks.

A leaf of ``rtmw.export``: backends register here (``rtmw.export.targets.*``) and the
export API reads it; it imports neither. Everything that differs per backend is a field
of :class:`TargetSpec` (what verifies it, on which device, with which inputs, and what
stands in where the backend is absent), so the export API carries no backend branches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtmw.errors import UsageError

if TYPE_CHECKING:
    from rtmw.export.context import ExportContext


@dataclass
class TargetOutput:
    """What a target function wrote into the staging folder."""

    files: list[str]
    io: dict[str, Any]
    tools: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


TargetFn = Callable[["ExportContext", Path], TargetOutput]
# the verification inputs a target gets: the shared ones (random tensors and person
# crops), or what its hook makes of them (INT8: person crops and held-out calibration crops)
InputsFn = Callable[["ExportContext", dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class OnnxFallback:
    """What a target writes instead when its backend cannot build here.

    ``missing()`` says why the real build cannot run on this host (None: it can); then
    ``build`` writes an ONNX artifact named ``<target><suffix>`` that is verified in
    onnxruntime on the CPU, and the export reports "onnx-only" with exit code 3.
    """

    missing: Callable[[], str | None]
    build: TargetFn
    suffix: str = "-onnx"


@dataclass(frozen=True)
class TargetSpec:
    name: str
    format: str  # runtime family that reads the artifact
    precision: str
    build: TargetFn
    requires: tuple[str, ...] = ()  # python modules needed to build
    extra: str = ""  # the rtmw[...] extra that installs them
    description: str = ""
    # why this host cannot build and verify the target (e.g. no native bf16), or None
    unavailable: Callable[[], str | None] | None = None
    verify_device: str = "cpu"  # where the exported artifact is run to be verified
    verify_inputs: InputsFn | None = None
    onnx_fallback: OnnxFallback | None = None
    # the INT8 policy axes its quantiser honours beyond blocks kept in float
    # (quant_policy.AXIS_PER_TENSOR, AXIS_WIDE); an option on another axis is refused
    int8_axes: tuple[str, ...] = ()


TARGETS: dict[str, TargetSpec] = {}


def register_target(
    name: str,
    *,
    format: str,
    precision: str,
    requires: tuple[str, ...] = (),
    extra: str = "",
    description: str = "",
    unavailable: Callable[[], str | None] | None = None,
    verify_device: str = "cpu",
    verify_inputs: InputsFn | None = None,
    onnx_fallback: OnnxFallback | None = None,
    int8_axes: tuple[str, ...] = (),
) -> Callable[[TargetFn], TargetFn]:
    """Register the decorated function as target ``name`` (once)."""

    def decorator(fn: TargetFn) -> TargetFn:
        if name in TARGETS:
            raise ValueError(f"target registered twice: {name}")
        TARGETS[name] = TargetSpec(
            name, format, precision, fn, requires, extra, description, unavailable,
            verify_device, verify_inputs, onnx_fallback, int8_axes,
        )  # fmt: skip
        return fn

    return decorator


def get_target(name: str) -> TargetSpec:
    try:
        return TARGETS[name]
    except KeyError:
        raise UsageError(f"unknown target {name!r}; known: {', '.join(list_targets())}") from None


FORMAT_ORDER = ("onnx", "openvino", "ncnn", "litert", "executorch", "tensorrt", "torch")
PRECISION_ORDER = ("fp32", "fp16", "bf16", "int8")


def list_targets() -> list[str]:
    def order(spec: TargetSpec) -> tuple[int, int, str]:
        fmt = FORMAT_ORDER.index(spec.format) if spec.format in FORMAT_ORDER else 99
        return (fmt, PRECISION_ORDER.index(spec.precision), spec.name)

    return [spec.name for spec in sorted(TARGETS.values(), key=order)]


def unavailable_reason(spec: TargetSpec) -> str | None:
    """Why this host cannot build and verify ``spec`` (hardware, not packages), or None."""
    return spec.unavailable() if spec.unavailable is not None else None
