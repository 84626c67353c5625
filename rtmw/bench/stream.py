"""Streaming: frames through an overlapped pipeline, as production runs them.

One thread preprocesses frame i+1 and submits it (``Runtime.infer_async``, a worker
thread: backends release the GIL) while frame i is inferred and frame i-1 is decoded on
the caller's thread. At most ``depth`` frames are in flight. Reported: persons/s over the
whole stream and per-frame latency (submission of the frame's preprocessing to its decoded
keypoints), next to the synchronous figures of the same row.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

import numpy as np

from rtmw.pipeline import CropBatch, ModelOutputs, PoseResult, TopDown
from rtmw.runtimes.base import Runtime

InFlight = tuple[float, CropBatch, "Future[ModelOutputs]"]


def stream(
    runtime: Runtime,
    input_size: tuple[int, int],
    frame: np.ndarray,
    boxes: np.ndarray,
    frames: int,
    *,
    flip: bool = True,
    depth: int = 2,
    warmup: int = 2,
    keep: bool = False,
) -> dict[str, Any]:
    """Feed ``frames`` copies of one multi-person frame through the overlapped pipeline."""
    pose = TopDown(runtime.infer, input_size, flip_test=flip, max_batch=None, depth=runtime.depth)
    for _ in range(warmup):
        pose(frame, boxes)
    pending: queue.Queue[InFlight | None] = queue.Queue(maxsize=depth)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for _ in range(frames):
                submitted = time.perf_counter()
                batch = pose.preprocess(frame, boxes)
                pending.put((submitted, batch, runtime.infer_async(pose.model_inputs(batch))))
        except BaseException as exc:  # surfaced on the caller's thread below
            failure.append(exc)
        finally:
            pending.put(None)

    latencies: list[float] = []
    kept: list[PoseResult] = []
    start = time.perf_counter()
    producer = threading.Thread(target=produce, name="rtmw-stream-preprocess", daemon=True)
    producer.start()
    while (item := pending.get()) is not None:
        submitted, batch, future = item
        result = pose.decode(pose.model_outputs(future.result(), len(batch)), batch)
        if keep:
            kept.append(result)
        latencies.append((time.perf_counter() - submitted) * 1000.0)
    wall = time.perf_counter() - start
    producer.join()
    if failure:
        raise failure[0]
    values = np.asarray(latencies)
    extra: dict[str, Any] = {"results": kept} if keep else {}
    return extra | {
        "frames": frames,
        "persons": len(boxes),
        "in_flight": depth,
        "async": runtime.async_kind,
        "persons_per_s": frames * len(boxes) / wall,
        "frames_per_s": frames / wall,
        "frame_latency_ms": {
            "p50": float(np.percentile(values, 50)),
            "p99": float(np.percentile(values, 99)),
            "mean": float(values.mean()),
        },
    }
