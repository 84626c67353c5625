"""Workflows: the product's stages chained, as Python calls the CLIs wrap.

* :func:`one_shot_gate`: export the FP32 reference and the targets, bench them with
  fidelity, gate them (``rtmw-bench gate CHECKPOINT …``);
* :func:`gate_results`: gate two results files (``rtmw-bench gate --reference …``);
* :func:`run_demo`: synthetic data → calibration → export → bench → gate (``rtmw-demo``);
* :func:`search_int8_policy`: the fastest INT8 policy within every part's budget
  (``rtmw-export --int8-policy auto``).
"""

from rtmw.workflows.demo import DemoSettings, run_demo
from rtmw.workflows.gate import GateRun, export_failures, gate_results, one_shot_gate
from rtmw.workflows.policy_search import SearchResult, search_int8_policy

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
