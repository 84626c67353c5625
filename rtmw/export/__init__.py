"""Checkpoint → verified, self-describing artifact folders, one registered function per target."""

from rtmw.export.api import (
    ExportResult,
    VerificationFailed,
    expand_targets,
    export,
    sensitivity_scan,
)
from rtmw.export.registry import TARGETS, get_target, list_targets, register_target
from rtmw.export.verify import DEFAULT_TOLERANCES, Tolerances

__all__ = [
    "DEFAULT_TOLERANCES",
    "TARGETS",
    "ExportResult",
    "Tolerances",
    "VerificationFailed",
    "expand_targets",
    "export",
    "get_target",
    "list_targets",
    "register_target",
    "sensitivity_scan",
]
