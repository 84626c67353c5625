"""Workflows: the product's stages chained, as Python calls the CLIs wrap.

* :func:`one_shot_gate`: export the FP32 reference and the targets, bench them with
  fidelity, gate them (``rtmw-bench gate CHECKPOINT …``);
* :func:`gate_results`: gate two results files (``rtmw-bench gate --reference …``);
* :func:`run_demo`: synthetic data → calibration → export → bench → gate (``rtmw-demo``).
"""

from rtmw.workflows.demo import DemoSettings, run_demo
from rtmw.workflows.gate import GateRun, export_failures, gate_results, one_shot_gate

__all__ = [
    "DemoSettings",
    "GateRun",
    "export_failures",
    "gate_results",
    "one_shot_gate",
    "run_demo",
]
