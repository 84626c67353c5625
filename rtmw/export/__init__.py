"""Checkpoint → verified, self-describing artifact folders, one registered function per target.

Layout: ``registry`` (target specs and their hooks), ``context`` (typed options, shared
state), ``onnx_step`` (the shared torch → ONNX step), ``quant_policy`` (the shared INT8
policy) are leaves; ``targets/`` holds one module per backend; ``api`` orchestrates;
``verify`` compares an artifact with torch; ``sensitivity`` scans INT8 damage per block.
"""

from rtmw.errors import VerificationFailed
from rtmw.export.api import (
    ExportResult,
    expand_targets,
    export,
    export_options,
)
from rtmw.export.context import AccuracyControl, EngineOptions, ExportContext, ExportOptions
from rtmw.export.registry import (
    TARGETS,
    OnnxFallback,
    TargetSpec,
    get_target,
    list_targets,
    register_target,
    unavailable_reason,
)
from rtmw.export.sensitivity import sensitivity_scan
from rtmw.harness.verify import DEFAULT_TOLERANCES, Tolerances

__all__ = [
    "DEFAULT_TOLERANCES",
    "TARGETS",
    "AccuracyControl",
    "EngineOptions",
    "ExportContext",
    "ExportOptions",
    "ExportResult",
    "OnnxFallback",
    "TargetSpec",
    "Tolerances",
    "VerificationFailed",
    "expand_targets",
    "export",
    "export_options",
    "get_target",
    "list_targets",
    "register_target",
    "sensitivity_scan",
    "unavailable_reason",
]
