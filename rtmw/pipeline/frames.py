"""The frame loop: detect every N frames, track, pose all tracks in one batch, smooth.

``FrameLoop(detector, pose, settings)`` runs any person detector (:class:`BoxDetector`
around an inference callable, with the one letterbox and decode of
:mod:`rtmw.pipeline.detect`) and any :class:`TopDown` (2D or RTMW3D) over frames:

- detection on frames ``index % det_every == 0``, and (``adaptive``) on the next frame
  whenever a track was lost, a track's pose confidence fell below
  ``redetect_confidence``, or nobody is tracked;
- between detections each track's box is its previous keypoints' box
  (:mod:`rtmw.pipeline.tracking`), IDs by Hungarian IoU association on detection frames;
- the pose of every track in one batch (``batched``), or one crop per call, as rtmlib's
  PoseTracker runs (``batched=False``: the baseline the demo compares against);
- optional One-Euro smoothing per track (:mod:`rtmw.pipeline.smoothing`; off by default).

Every frame's result carries its per-stage times (decode, detect, track, crop, pose,
keypoints, smooth, draw) and its latency: the work from the start of its decode to its
keypoints, without time spent waiting in a queue (a file is read ahead faster than real
time, which a live source never is; a loop that keeps up with its camera has empty queues).
``run(..., stream=True)`` overlaps stages across frames: a reader thread decodes frame
i+1 and, on scheduled detection frames, runs the detector ahead while frame i's pose runs;
a writer thread draws and writes frame i−1. Adaptive re-detections run in place.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtmw.errors import InputError
from rtmw.keypoints import NUM_KEYPOINTS
from rtmw.outputs import ModelOutputs
from rtmw.pipeline.detect import (
    MMDET_DECODE,
    DecodeSettings,
    Detections,
    DetectorSpec,
    Letterbox,
    decode_detections,
    letterbox,
    person_boxes,
)
from rtmw.pipeline.preprocess import check_image
from rtmw.pipeline.smoothing import KeypointSmoother, OneEuroSettings
from rtmw.pipeline.topdown import InferFn, TopDown
from rtmw.pipeline.tracking import Tracker, TrackerSettings

logger = logging.getLogger(__name__)

STAGES = ("decode", "detect", "track", "crop", "pose", "keypoints", "smooth", "draw")


class BoxDetector:
    """Frame → person boxes with mmdet's letterbox and decode; thread-safe (one lock), so
    the reader thread of a stream and the loop may share it."""

    def __init__(
        self,
        infer: InferFn,
        spec: DetectorSpec,
        settings: DecodeSettings = MMDET_DECODE,
        *,
        score_thr: float = 0.3,
        nms_thr: float = 0.3,
    ) -> None:
        self.infer, self.spec, self.settings = infer, spec, settings
        self.score_thr, self.nms_thr = score_thr, nms_thr
        self._lock = threading.Lock()

    def detections(self, frame: np.ndarray) -> Detections:
        tensor, placed = letterbox(frame, self.spec)
        with self._lock:
            outputs: ModelOutputs = self.infer(tensor)
        return self._decode(outputs, placed)

    def _decode(self, outputs: ModelOutputs, placed: Letterbox) -> Detections:
        (found,) = decode_detections(outputs, self.spec, [placed], self.settings)
        return found

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """The hand-off boxes (N,4) xyxy: score > 0.3, NMS 0.3, as mmpose's demos."""
        return person_boxes(self.detections(frame), score_thr=self.score_thr, iou_thr=self.nms_thr)


@dataclass(frozen=True)
class FrameSettings:
    det_every: int = 5
    adaptive: bool = True
    redetect_confidence: float = 0.5  # fraction of body keypoints above keypoint_thr
    batched: bool = True
    smoothing: OneEuroSettings | None = None
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    stream_depth: int = 2  # frames decoded (and detected) ahead in a stream

    def describe(self) -> dict[str, Any]:
        return {
            "det_every": self.det_every,
            "adaptive": self.adaptive,
            "redetect_confidence": self.redetect_confidence,
            "batched": self.batched,
            "smoothing": None if self.smoothing is None else vars(self.smoothing),
            "tracker": vars(self.tracker),
        }


@dataclass
class FrameResult:
    """One frame's persons in track order: IDs, the boxes cropped, keypoints (smoothed when
    smoothing is on; ``raw_keypoints`` always the model's), scores, RTMW3D depth."""

    index: int
    size: tuple[int, int]  # (width, height)
    detected: bool
    track_ids: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray
    raw_keypoints: np.ndarray
    scores: np.ndarray
    depth: np.ndarray | None
    timings: dict[str, float]
    latency_ms: float = 0.0

    def __len__(self) -> int:
        return len(self.track_ids)

    def to_record(self) -> dict[str, Any]:
        """The JSON line: coordinates rounded to 0.01 px, scores to 1e-4."""
        record: dict[str, Any] = {
            "frame": self.index,
            "width": self.size[0],
            "height": self.size[1],
            "detected": self.detected,
            "latency_ms": round(self.latency_ms, 3),
            "timings_ms": {k: round(v, 3) for k, v in self.timings.items()},
            "persons": [],
        }
        for row, track_id in enumerate(self.track_ids.tolist()):
            person: dict[str, Any] = {
                "track_id": int(track_id),
                "box": np.round(self.boxes[row], 2).tolist(),
                "keypoints": np.round(self.keypoints[row], 2).tolist(),
                "scores": np.round(self.scores[row], 4).tolist(),
            }
            if self.depth is not None:
                person["depth_m"] = np.round(self.depth[row], 4).tolist()
            record["persons"].append(person)
        return record


def _check_frame(frame: object, index: int) -> np.ndarray:
    """The one image check of the pipeline, its error naming the frame."""
    try:
        return check_image(frame)
    except InputError as exc:
        raise InputError(f"frame {index}: {exc}") from None


def _inside(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    return (boxes[:, 2] > 0) & (boxes[:, 3] > 0) & (boxes[:, 0] < width) & (boxes[:, 1] < height)


class FrameLoop:
    """Detector + tracker + pose (+ smoothing) over frames; see the module docstring."""

    def __init__(
        self,
        detector: Callable[[np.ndarray], np.ndarray],
        pose: TopDown,
        settings: FrameSettings = FrameSettings(),
        *,
        fps: float = 30.0,
    ) -> None:
        if settings.det_every < 1:
            raise InputError(f"det_every must be ≥ 1, got {settings.det_every}")
        if fps <= 0:
            raise InputError(f"fps must be positive, got {fps}")
        self.detector, self.pose, self.settings, self.fps = detector, pose, settings, fps
        self.tracker = Tracker(settings.tracker)
        self.smoother = KeypointSmoother(settings.smoothing) if settings.smoothing else None
        self._size: tuple[int, int] | None = None
        self._redetect = True

    def reset(self) -> None:
        self.tracker = Tracker(self.settings.tracker)
        if self.smoother is not None:
            self.smoother.reset()
        self._size, self._redetect = None, True

    def scheduled(self, index: int) -> bool:
        """A detection frame by the schedule alone (what a stream can run ahead)."""
        return index % self.settings.det_every == 0

    def _pose(
        self, frame: np.ndarray, boxes: np.ndarray, timings: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        chunks = [boxes] if self.settings.batched else [boxes[i : i + 1] for i in range(len(boxes))]
        keypoints, scores, depth = [], [], []
        for chunk in chunks:
            t0 = time.perf_counter()
            batch = self.pose.preprocess(frame, chunk)
            t1 = time.perf_counter()
            outputs = self.pose.run_model(batch)
            t2 = time.perf_counter()
            result = self.pose.decode(outputs, batch)
            t3 = time.perf_counter()
            timings["crop"] += (t1 - t0) * 1e3
            timings["pose"] += (t2 - t1) * 1e3
            timings["keypoints"] += (t3 - t2) * 1e3
            keypoints.append(result.keypoints)
            scores.append(result.scores)
            if result.depth is not None:
                depth.append(result.depth)
        return (
            np.concatenate(keypoints),
            np.concatenate(scores),
            np.concatenate(depth) if depth else None,
        )

    def process(
        self,
        frame: object,
        index: int,
        *,
        boxes: np.ndarray | None = None,
        decode_ms: float = 0.0,
        detect_ms: float = 0.0,
    ) -> FrameResult:
        """One frame; ``boxes`` are its detections when computed ahead (a stream)."""
        started = time.perf_counter()
        ahead_ms = decode_ms + (detect_ms if boxes is not None else 0.0)
        image = _check_frame(frame, index)
        timings = dict.fromkeys(STAGES, 0.0)
        timings["decode"] = decode_ms
        size = (int(image.shape[1]), int(image.shape[0]))
        if self._size is not None and size != self._size:
            logger.info(
                "frame %d: size changed from %dx%d to %dx%d; tracks restart",
                index,
                *self._size,
                *size,
            )
            self.tracker.reset()  # new geometry: old boxes mean nothing; IDs keep counting
            if self.smoother is not None:
                self.smoother.reset()
            self._redetect = True
        self._size = size
        detect = self.scheduled(index) or (
            self.settings.adaptive and (self._redetect or not self.tracker.tracks)
        )
        if detect:
            if boxes is None:
                t0 = time.perf_counter()
                boxes = self.detector(image)
                detect_ms = (time.perf_counter() - t0) * 1e3
            timings["detect"] = detect_ms
        t0 = time.perf_counter()
        if detect:
            assert boxes is not None
            self.tracker.update(boxes, index, min_confidence=self.settings.redetect_confidence)
        self.tracker.drop(_inside(self.tracker.boxes(), *size), index)
        track_boxes, track_ids = self.tracker.boxes(), self.tracker.ids()
        timings["track"] = (time.perf_counter() - t0) * 1e3
        lost = 0
        depth: np.ndarray | None = None
        if len(track_ids):
            raw, scores, depth = self._pose(image, track_boxes, timings)
            t0 = time.perf_counter()
            lost = self.tracker.propagate(raw, scores, index)
            timings["track"] += (time.perf_counter() - t0) * 1e3
        else:
            raw = np.zeros((0, NUM_KEYPOINTS, 2), np.float32)
            scores = np.zeros((0, NUM_KEYPOINTS), np.float32)
            if self.pose.depth is not None:
                depth = np.zeros((0, NUM_KEYPOINTS), np.float32)
        weak = any(t.confidence < self.settings.redetect_confidence for t in self.tracker.tracks)
        self._redetect = bool(lost or weak)
        smoothed = raw
        if self.smoother is not None:
            t0 = time.perf_counter()
            smoothed = self.smoother(track_ids, raw, track_boxes, index / self.fps, scores)
            timings["smooth"] = (time.perf_counter() - t0) * 1e3
        latency = ahead_ms + (time.perf_counter() - started) * 1e3
        return FrameResult(
            index,
            size,
            detect,
            track_ids,
            track_boxes,
            smoothed,
            raw,
            scores,
            depth,
            timings,
            latency,
        )

    def run(
        self,
        frames: Iterable[object],
        *,
        stream: bool = False,
        draw: Callable[[np.ndarray, FrameResult], None] | None = None,
    ) -> Iterator[FrameResult]:
        """Results frame by frame; ``draw(frame, result)`` (drawing, writing) is timed as the
        draw stage, on a writer thread when streaming."""
        self.reset()
        if stream:
            yield from self._stream(frames, draw)
            return
        iterator = iter(frames)
        index = 0
        while True:
            started = time.perf_counter()
            try:
                frame = next(iterator)
            except StopIteration:
                return
            decoded = time.perf_counter()
            result = self.process(frame, index, decode_ms=(decoded - started) * 1e3)
            if draw is not None:
                t0 = time.perf_counter()
                draw(frame, result)  # type: ignore[arg-type]
                result.timings["draw"] = (time.perf_counter() - t0) * 1e3
            index += 1
            yield result

    def _stream(
        self, frames: Iterable[object], draw: Callable[[np.ndarray, FrameResult], None] | None
    ) -> Iterator[FrameResult]:
        ahead: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=self.settings.stream_depth)
        behind: queue.Queue[tuple[Any, FrameResult] | None] = queue.Queue(maxsize=4)
        failures: list[BaseException] = []
        stop = threading.Event()

        def put(target: queue.Queue[Any], item: Any) -> bool:
            while not stop.is_set():
                try:
                    target.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                iterator = iter(frames)
                index = 0
                while not stop.is_set():
                    started = time.perf_counter()
                    try:
                        frame = next(iterator)
                    except StopIteration:
                        break
                    decode_ms = (time.perf_counter() - started) * 1e3
                    boxes, detect_ms = None, 0.0
                    if self.scheduled(index):
                        image = _check_frame(frame, index)
                        t0 = time.perf_counter()
                        boxes = self.detector(image)
                        detect_ms = (time.perf_counter() - t0) * 1e3
                    if not put(ahead, (index, frame, decode_ms, boxes, detect_ms)):
                        return
                    index += 1
            except BaseException as exc:
                failures.append(exc)
            finally:
                put(ahead, None)

        def write() -> None:
            try:
                while (item := behind.get()) is not None:
                    frame, result = item
                    t0 = time.perf_counter()
                    if draw is not None and not failures:
                        draw(frame, result)
                    result.timings["draw"] = (time.perf_counter() - t0) * 1e3
            except BaseException as exc:
                failures.append(exc)
                stop.set()
                while behind.get() is not None:  # let the loop finish putting
                    pass

        reader = threading.Thread(target=read, name="rtmw-frames-read", daemon=True)
        writer = threading.Thread(target=write, name="rtmw-frames-write", daemon=True)
        reader.start()
        writer.start()
        try:
            while (item := ahead.get()) is not None:
                index, frame, decode_ms, boxes, detect_ms = item
                result = self.process(
                    frame, index, boxes=boxes, decode_ms=decode_ms, detect_ms=detect_ms
                )
                behind.put((frame, result))
                if failures:
                    break
                yield result
        finally:
            stop.set()
            behind.put(None)
            writer.join()
            while reader.is_alive():
                with contextlib.suppress(queue.Empty):
                    ahead.get(timeout=0.1)
            reader.join()
        if failures:
            raise failures[0]
