"""Benchmarks: latency, end-to-end speed, per-part accuracy and fidelity, device profiles."""

from rtmw.bench.entry import BenchEntry, ResultsDocument
from rtmw.bench.report import SCHEMA, load_results, markdown, render
from rtmw.bench.run import BenchSettings, bench, find_artifacts
from rtmw.bench.timing import LatencyStats, TimingPlan

__all__ = [
    "SCHEMA",
    "BenchEntry",
    "BenchSettings",
    "LatencyStats",
    "ResultsDocument",
    "TimingPlan",
    "bench",
    "find_artifacts",
    "load_results",
    "markdown",
    "render",
]
