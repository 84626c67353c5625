"""Frames in and out through OpenCV: a video file, a folder of frames, a camera index;
an annotated video and one JSON line per frame.

Every failure is one sentence (:class:`rtmw.errors.InputError`): a file OpenCV cannot
open, a video that yields no frame although its header announces some (corrupt), a camera
that does not open or gives no frame, a folder without images. A video that ends before
its header's frame count (truncated) ends the run there with a warning; a video whose
header announces no frame and yields none is an empty, correct result.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rtmw.errors import InputError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class FrameSource:
    """An iterable of BGR uint8 frames with what is known of them beforehand."""

    description: str
    fps: float
    announced: int | None  # frames the container announces (None: a camera, unknown)
    _frames: Iterator[np.ndarray]
    read: int = 0
    ended_early: bool = False
    warnings: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in self._frames:
            self.read += 1
            yield frame


def _capture_frames(
    capture: cv2.VideoCapture, what: str, announced: int | None, source: FrameSource | None = None
) -> Iterator[np.ndarray]:
    try:
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            count += 1
            yield frame
        if count == 0 and announced:
            raise InputError(
                f"{what}: no frame could be decoded although the file announces "
                f"{announced} (corrupt video?)"
            )
        if announced and count < announced - 1 and source is not None:
            source.ended_early = True
            message = (
                f"{what}: decoding stopped after {count} of the {announced} frames the "
                "file announces (truncated?)"
            )
            source.warnings.append(message)
            logger.warning(message)
    finally:
        capture.release()


def open_source(spec: str | int | Path, *, fps: float | None = None) -> FrameSource:
    """A camera (an integer, or a string of digits), a folder of images, or a video file."""
    text = str(spec)
    if isinstance(spec, int) or text.isdigit():
        index = int(text)
        quiet = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # its own probe lines
        try:
            capture = cv2.VideoCapture(index)
        finally:
            cv2.utils.logging.setLogLevel(quiet)
        if not capture.isOpened():
            capture.release()
            raise InputError(f"camera {index} does not open (no such device, or it is busy)")
        rate = fps or float(capture.get(cv2.CAP_PROP_FPS) or 30.0)
        source = FrameSource(f"camera {index}", rate, None, iter(()))
        source._frames = _capture_frames(capture, f"camera {index}", None, source)
        return source
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")

        def read_folder() -> Iterator[np.ndarray]:
            for file in files:
                frame = cv2.imread(str(file), cv2.IMREAD_COLOR)
                if frame is None:
                    raise InputError(f"{file}: not a readable image")
                yield frame

        return FrameSource(f"{len(files)} frames in {path}", fps or 30.0, len(files), read_folder())
    if not path.is_file():
        raise InputError(f"{path}: no such video file, folder or camera index")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise InputError(f"{path}: OpenCV cannot open it as a video (corrupt or not a video)")
    announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    rate = fps or float(capture.get(cv2.CAP_PROP_FPS) or 0.0) or 30.0
    source = FrameSource(f"{path.name}", rate, max(announced, 0), iter(()))
    source._frames = _capture_frames(capture, str(path), max(announced, 0), source)
    return source


class VideoSink:
    """The annotated video: OpenCV's ``mp4v`` at the first frame's size; a frame of another
    size is letterboxed into it (the JSON lines keep every frame's own coordinates)."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self.size: tuple[int, int] | None = None
        self._writer: cv2.VideoWriter | None = None

    def write(self, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.size = (width, height)
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not self._writer.isOpened():
                raise InputError(f"{self.path}: OpenCV cannot write an mp4v video here")
        assert self.size is not None
        if (width, height) != self.size:
            image = _letterbox_to(image, self.size)
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def _letterbox_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    factor = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(
        image, (max(1, round(image.shape[1] * factor)), max(1, round(image.shape[0] * factor)))
    )
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas


class JsonLinesSink:
    """One JSON object per frame, written as it comes (a crash keeps what was done)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self._file.close()


def read_json_lines(path: str | Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            records.append(json.loads(line))
    return records
