"""Export targets, one function each, registered by name (no branch-per-format function)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtmw.errors import RtmwError

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


@dataclass(frozen=True)
class TargetSpec:
    name: str
    format: str  # runtime family that reads the artifact
    precision: str
    build: TargetFn
    requires: tuple[str, ...] = ()  # python modules needed to build
    description: str = ""
    # TensorRT targets: what to write and verify in onnxruntime when TensorRT is absent
    onnx_fallback: TargetFn | None = None
    # why this host cannot build and verify the target (e.g. no native bf16), or None
    unavailable: Callable[[], str | None] | None = None


TARGETS: dict[str, TargetSpec] = {}


def register_target(
    name: str,
    *,
    format: str,
    precision: str,
    requires: tuple[str, ...] = (),
    description: str = "",
    onnx_fallback: TargetFn | None = None,
    unavailable: Callable[[], str | None] | None = None,
) -> Callable[[TargetFn], TargetFn]:
    def decorator(fn: TargetFn) -> TargetFn:
        if name in TARGETS:
            raise ValueError(f"target registered twice: {name}")
        TARGETS[name] = TargetSpec(
            name, format, precision, fn, requires, description, onnx_fallback, unavailable
        )
        return fn

    return decorator


def get_target(name: str) -> TargetSpec:
    _load_builtin_targets()
    try:
        return TARGETS[name]
    except KeyError:
        raise RtmwError(f"unknown target {name!r}; known: {', '.join(list_targets())}") from None


FORMAT_ORDER = ("onnx", "openvino", "ncnn", "tensorrt", "torch")
PRECISION_ORDER = ("fp32", "fp16", "bf16", "int8")


def list_targets() -> list[str]:
    _load_builtin_targets()

    def order(spec: TargetSpec) -> tuple[int, int, str]:
        fmt = FORMAT_ORDER.index(spec.format) if spec.format in FORMAT_ORDER else 99
        return (fmt, PRECISION_ORDER.index(spec.precision), spec.name)

    return [spec.name for spec in sorted(TARGETS.values(), key=order)]


def _load_builtin_targets() -> None:
    # Importing the modules registers their targets; backends are imported lazily inside.
    from rtmw.export import int8, ncnn, onnx, openvino, tensorrt, torch_target  # noqa: F401
