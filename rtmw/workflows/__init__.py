"""Workflows: the product's stages chained, as Python calls the CLIs wrap.

* :func:`one_shot_gate`: export the FP32 reference and the targets, bench them with
  fidelity, gate them (``rtmw-bench gate CHECKPOINT …``);
* :func:`gate_results`: gate two results files (``rtmw-bench gate --reference …``);
* :func:`run_demo`: synthetic data → calibration → export → bench → gate (``rtmw-demo``);
* :func:`search_int8_policy`: the fastest INT8 policy within every part's budget
  (``rtmw-export --int8-policy auto``).

The names load on first use: a run-only host without torch (the aarch64 lane under
emulation) imports ``rtmw.workflows.arm_lane`` without the export machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtmw.workflows.demo import DemoSettings, run_demo
    from rtmw.workflows.gate import GateRun, export_failures, gate_results, one_shot_gate
    from rtmw.workflows.policy_search import SearchResult, search_int8_policy

_HOMES = {
    "DemoSettings": "demo", "run_demo": "demo",
    "GateRun": "gate", "export_failures": "gate", "gate_results": "gate", "one_shot_gate": "gate",
    "SearchResult": "policy_search", "search_int8_policy": "policy_search",
}  # fmt: skip

__all__ = [
    "DemoSettings",
    "GateRun",
    "SearchResult",
    "export_failures",
    "gate_results",
    "one_shot_gate",
    "run_demo",
    "search_int8_policy",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'rtmw.workflows' has no attribute {name!r}")
    return getattr(importlib.import_module(f"rtmw.workflows.{_HOMES[name]}"), name)
