"""Render predicted whole-body keypoints and skeletons on an image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from rtmw.keypoints import NUM_KEYPOINTS, SKELETON, part_of

# BGR colours per part; left and right hands differ so swaps are visible at a glance.
PART_COLORS: dict[str, tuple[int, int, int]] = {
    "body": (255, 128, 0),
    "foot": (0, 200, 255),
    "face": (255, 255, 255),
    "lefthand": (0, 255, 0),
    "righthand": (255, 0, 255),
}

_PART_OF = [part_of(i) for i in range(NUM_KEYPOINTS)]


def draw_poses(
    image: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray | None = None,
    *,
    threshold: float = 0.3,
    boxes_xyxy: np.ndarray | None = None,
    labels: list[str] | None = None,
) -> np.ndarray:
    """A copy of ``image`` with skeletons (N,133,2) drawn where scores pass ``threshold``;
    ``labels`` (one per box, e.g. track IDs) are written above the boxes."""
    canvas = image.copy()
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, NUM_KEYPOINTS, 2)
    conf = np.ones(kpts.shape[:2]) if scores is None else np.asarray(scores).reshape(kpts.shape[:2])
    diag = float(np.hypot(*canvas.shape[:2]))
    thickness = max(1, round(diag / 600))
    if boxes_xyxy is not None:
        for box in np.asarray(boxes_xyxy).reshape(-1, 4):
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), (80, 220, 80), thickness)
        for label, box in zip(labels or [], np.asarray(boxes_xyxy).reshape(-1, 4), strict=False):
            origin = (max(0, round(float(box[0]))), max(12, round(float(box[1])) - 4))
            cv2.putText(
                canvas, label, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (80, 220, 80), 1, cv2.LINE_AA
            )
    for person, person_conf in zip(kpts, conf, strict=True):
        ok = person_conf > threshold
        for a, b in SKELETON:
            if ok[a] and ok[b]:
                color = PART_COLORS[_PART_OF[b]]
                pa = (round(person[a, 0]), round(person[a, 1]))
                pb = (round(person[b, 0]), round(person[b, 1]))
                cv2.line(canvas, pa, pb, color, thickness, cv2.LINE_AA)
        for index, (x, y) in enumerate(person):
            if ok[index]:
                part = _PART_OF[index]
                radius = thickness + (1 if part == "body" else 0)
                cv2.circle(canvas, (round(x), round(y)), radius, PART_COLORS[part], -1, cv2.LINE_AA)
    return canvas


def save_image(path: str | Path, image: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write image {path}")
    return path
