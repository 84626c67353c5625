"""Person tracks between detections: boxes from keypoints, IDs by box association.

The algorithm (rtmlib's and mmpose's demo trackers, made explicit and hardened):

1. Between detections a track's box is the box of its previous frame's keypoints: the
   keypoints scoring above ``keypoint_thr`` (0.3), their extent scaled by ``expand``
   (1.25) about its centre; fewer than ``min_keypoints`` (3) such keypoints lose the track.
2. On a detection frame, tracks and detected boxes are paired by the Hungarian assignment
   (``scipy.optimize.linear_sum_assignment``) on 1 − IoU; pairs below ``match_iou`` (0.3)
   are not pairs. A paired track takes the detector's box and keeps its ID; an unpaired
   detection starts a new track (IDs count up and are never reused); an unpaired track
   survives ``max_missed`` (1) detection frames if its pose is still confident (a person the
   detector missed behind an occluder), else it ends.
3. An ended track is remembered for ``max_age`` (30) frames: an unpaired detection is first
   paired (the same Hungarian IoU rule) with the last boxes of these, so a person who comes
   back from behind an occluder or a missed detection keeps the ID, as in SORT/ByteTrack's
   lost-track buffer; only the rest start new tracks.
4. Two tracks whose boxes overlap above ``duplicate_iou`` (0.8) have converged on one
   person: the younger is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from rtmw.boxes import box_iou


@dataclass(frozen=True)
class TrackerSettings:
    match_iou: float = 0.3
    keypoint_thr: float = 0.3
    expand: float = 1.25
    min_keypoints: int = 3
    max_missed: int = 1
    max_age: int = 30
    duplicate_iou: float = 0.8


@dataclass
class Track:
    track_id: int
    box: np.ndarray  # (4,) xyxy: the box the next pose crop uses
    born: int  # frame index of its first detection
    ended: int = -1  # frame index it was lost at (the lost-track buffer)
    missed: int = 0  # consecutive detection frames without a detected box
    confidence: float = 1.0  # mean score of its last pose's body keypoints
    keypoints: np.ndarray | None = None
    scores: np.ndarray | None = None


def keypoint_box(
    keypoints: np.ndarray, scores: np.ndarray, settings: TrackerSettings
) -> np.ndarray | None:
    """The box the next frame crops, from this frame's confident keypoints (or None)."""
    confident = keypoints[scores > settings.keypoint_thr]
    if len(confident) < settings.min_keypoints:
        return None
    low, high = confident.min(0), confident.max(0)
    centre, half = (low + high) / 2, (high - low) / 2 * settings.expand
    half = np.maximum(half, 1.0)
    return np.concatenate([centre - half, centre + half]).astype(np.float64)


def associate(
    track_boxes: np.ndarray, detected: np.ndarray, min_iou: float
) -> list[tuple[int, int]]:
    """Pairs (track index, detection index) of the optimal assignment with IoU ≥ min_iou."""
    if len(track_boxes) == 0 or len(detected) == 0:
        return []
    iou = box_iou(track_boxes, detected)
    rows, cols = linear_sum_assignment(1.0 - iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= min_iou]


@dataclass
class Tracker:
    """The tracks of one video; :meth:`update` on detection frames, :meth:`propagate` after
    each pose."""

    settings: TrackerSettings = field(default_factory=TrackerSettings)
    tracks: list[Track] = field(default_factory=list)
    lost: list[Track] = field(default_factory=list)
    next_id: int = 1

    def reset(self) -> None:
        self.tracks, self.lost = [], []

    def _end(self, tracks: list[Track], frame_index: int) -> None:
        for track in tracks:
            track.ended = frame_index
        self.lost = [
            t for t in [*self.lost, *tracks] if frame_index - t.ended <= self.settings.max_age
        ]

    def boxes(self) -> np.ndarray:
        return np.array([t.box for t in self.tracks], np.float64).reshape(-1, 4)

    def ids(self) -> np.ndarray:
        return np.array([t.track_id for t in self.tracks], np.int64)

    def update(self, detected: np.ndarray, frame_index: int, *, min_confidence: float) -> None:
        """Merge one detection frame's person boxes (N,4) xyxy into the tracks."""
        detected = np.asarray(detected, np.float64).reshape(-1, 4)
        pairs = associate(self.boxes(), detected, self.settings.match_iou)
        paired_tracks = {t for t, _ in pairs}
        paired_dets = {d for _, d in pairs}
        kept: list[Track] = []
        ended: list[Track] = []
        for index, track in enumerate(self.tracks):
            if index in paired_tracks:
                continue
            track.missed += 1
            if track.missed <= self.settings.max_missed and track.confidence >= min_confidence:
                kept.append(track)
            else:
                ended.append(track)
        for t, d in pairs:
            track = self.tracks[t]
            track.box, track.missed = detected[d].copy(), 0
            kept.append(track)
        self._end([], frame_index)  # forget what is too old to come back
        unpaired = [d for d in range(len(detected)) if d not in paired_dets]
        lost_boxes = np.array([t.box for t in self.lost], np.float64).reshape(-1, 4)
        returned = associate(lost_boxes, detected[unpaired], self.settings.match_iou)
        back = {unpaired[d]: self.lost[t] for t, d in returned}
        for d in unpaired:
            track = back.get(d) or Track(self.next_id, detected[d].copy(), born=frame_index)
            if d not in back:
                self.next_id += 1
            track.box, track.missed = detected[d].copy(), 0
            kept.append(track)
        self.lost = [t for t in self.lost if all(t is not b for b in back.values())]
        self._end(ended, frame_index)
        kept.sort(key=lambda track: track.track_id)
        self.tracks = self._without_duplicates(kept, frame_index)

    def _without_duplicates(self, tracks: list[Track], frame_index: int) -> list[Track]:
        if len(tracks) < 2:
            return tracks
        iou = box_iou(np.array([t.box for t in tracks]), np.array([t.box for t in tracks]))
        dropped: set[int] = set()
        for i in range(len(tracks)):  # sorted by ID: the older of a pair comes first
            if i in dropped:
                continue
            for j in range(i + 1, len(tracks)):
                if j not in dropped and iou[i, j] > self.settings.duplicate_iou:
                    dropped.add(j)
        self._end([t for i, t in enumerate(tracks) if i in dropped], frame_index)
        return [t for i, t in enumerate(tracks) if i not in dropped]

    def drop(self, keep: np.ndarray, frame_index: int) -> None:
        """End the tracks where ``keep`` is False (e.g. boxes that left the frame)."""
        self._end([t for t, k in zip(self.tracks, keep, strict=True) if not k], frame_index)
        self.tracks = [t for t, k in zip(self.tracks, keep, strict=True) if k]

    def propagate(self, keypoints: np.ndarray, scores: np.ndarray, frame_index: int) -> int:
        """Carry each track to the next frame by its pose (N,133,2)/(N,133) in track
        order; returns how many tracks were lost for want of confident keypoints."""
        kept: list[Track] = []
        ended: list[Track] = []
        for track, points, conf in zip(self.tracks, keypoints, scores, strict=True):
            track.keypoints, track.scores = points, conf
            track.confidence = float(np.mean(conf[:17] > self.settings.keypoint_thr))
            box = keypoint_box(points, conf, self.settings)
            if box is not None:
                track.box = box
                kept.append(track)
            else:
                ended.append(track)
        self._end(ended, frame_index)
        self.tracks = self._without_duplicates(kept, frame_index)
        return len(ended)
