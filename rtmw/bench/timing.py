"""Latency measurement: warm-up, repeated timed runs, percentiles, spread across repeats.

Timings come from ``time.perf_counter_ns`` around one synchronous call each; inputs are
fixed (real synthetic person crops and one fixed multi-person frame), so two runs of
the same artifact see identical work. The spread of p50 across repeats is reported,
not hidden: it says how much a difference between two rows can be trusted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rtmw.pipeline.topdown import TopDown


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per call; ``throughput`` in crops (or persons) per second."""

    batch: int
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    throughput: float
    samples: int
    repeat_p50: tuple[float, ...]

    @property
    def spread(self) -> float:
        """(max − min) / median of the per-repeat p50s."""
        values = np.asarray(self.repeat_p50)
        return float((values.max() - values.min()) / np.median(values)) if len(values) else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["repeat_p50"] = list(self.repeat_p50)
        data["p50_spread"] = self.spread
        return data


@dataclass(frozen=True)
class TimingPlan:
    warmup_s: float = 1.0
    seconds: float | None = 2.0  # per repeat; None → use iters
    iters: int | None = None
    repeats: int = 3
    min_iters: int = 5

    def __post_init__(self) -> None:
        if self.seconds is None and self.iters is None:
            raise ValueError("give seconds or iters")
        if self.repeats < 1:
            raise ValueError("repeats must be at least 1")


def _time_calls(call: Callable[[], object], plan: TimingPlan) -> list[list[float]]:
    deadline = time.perf_counter() + plan.warmup_s
    call()
    call()
    while time.perf_counter() < deadline:
        call()
    repeats: list[list[float]] = []
    for _ in range(plan.repeats):
        samples: list[float] = []
        start = time.perf_counter()
        while True:
            t0 = time.perf_counter_ns()
            call()
            samples.append((time.perf_counter_ns() - t0) / 1e6)
            if plan.iters is not None:
                if len(samples) >= plan.iters:
                    break
            elif len(samples) >= plan.min_iters and time.perf_counter() - start >= (
                plan.seconds or 0.0
            ):
                break
        repeats.append(samples)
    return repeats


def summarize(repeats: list[list[float]], items_per_call: int) -> LatencyStats:
    pooled = np.concatenate([np.asarray(r) for r in repeats])
    p50, p90, p99 = np.percentile(pooled, [50, 90, 99])
    mean = float(pooled.mean())
    return LatencyStats(
        batch=items_per_call,
        p50=float(p50),
        p90=float(p90),
        p99=float(p99),
        mean=mean,
        std=float(pooled.std()),
        throughput=items_per_call / (mean / 1000.0),
        samples=len(pooled),
        repeat_p50=tuple(float(np.median(r)) for r in repeats),
    )


def time_inference(
    infer: Callable[[np.ndarray], object], inputs: np.ndarray, plan: TimingPlan
) -> LatencyStats:
    """Model-only latency for one batch of normalised crops."""
    batch = np.ascontiguousarray(inputs)
    return summarize(_time_calls(lambda: infer(batch), plan), len(batch))


Stage = tuple[str, Callable[[Any], Any]]


def time_stages(
    stages: Sequence[Stage], items: int, plan: TimingPlan
) -> tuple[LatencyStats, dict[str, float]]:
    """One call runs ``stages`` in order, each fed the previous one's result (the first gets
    None); the whole call's statistics over ``items`` per call, and each stage's p50 over the
    timed calls (warm-up excluded), so their sum and the whole describe the same calls."""
    samples: dict[str, list[float]] = {name: [] for name, _ in stages}

    def one_call() -> None:
        value: Any = None
        for name, stage in stages:
            start = time.perf_counter_ns()
            value = stage(value)
            samples[name].append((time.perf_counter_ns() - start) / 1e6)

    repeats = _time_calls(one_call, plan)
    n_timed = sum(len(r) for r in repeats)
    medians = {name: float(np.median(values[-n_timed:])) for name, values in samples.items()}
    return summarize(repeats, items), medians


def time_frame(
    pose: TopDown, image: np.ndarray, boxes: np.ndarray, plan: TimingPlan
) -> dict[str, Any]:
    """End-to-end time for one multi-person frame, and each stage on its own
    (preprocess → inference → decode)."""
    whole, stages = time_stages(
        [("preprocess", lambda _: pose.preprocess(image, boxes)),
         ("inference", lambda batch: (batch, pose.run_model(batch))),
         ("decode", lambda done: pose.decode(done[1], done[0]))],
        len(boxes), plan,
    )  # fmt: skip
    stage_sum = sum(stages.values())
    return {
        "persons": len(boxes),
        "crops_per_frame": len(boxes) * (2 if pose.flip_test else 1),
        "e2e": whole.to_dict(),
        "stages_p50_ms": stages,
        "stage_sum_ms": stage_sum,
        "stage_sum_vs_e2e": stage_sum / whole.p50 - 1.0,
        "persons_per_s": whole.throughput,
    }
