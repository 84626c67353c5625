"""One-Euro smoothing of keypoints per track (Casiez, Roussel and Vogel, CHI 2012).

Each coordinate is low-pass filtered with a cut-off that rises with its speed:
``cutoff = min_cutoff + beta · |speed|``, so a still keypoint is smoothed hard (jitter
removed) and a moving one follows with little lag. Speeds are measured in box heights per
second (pixel speeds divided by the track's box height), so one setting serves a person
near the camera and one far away. Time comes from the frame rate.

A person is filtered in two parts: the torso centre (mean of the confident shoulders and
hips), whose filter follows fast (``centre_beta``), and every keypoint's offset from it.
Walking moves the whole body; filtering absolute positions would make every keypoint of a
walker lag (measured on the synthetic video: face AP fell twice as much), while the offsets
move only when the pose changes.

Parameters (defaults chosen by a sweep on the synthetic video, see results/demo/frames.md:
smoothing trades AP of moving persons for steadiness; these halve neither):
``min_cutoff`` 2.0 Hz, the cut-off of a still keypoint (lower: steadier, more lag);
``beta`` 4.0 per box-height/s (higher: less lag when moving);
``centre_beta`` 40.0 per box-height/s, the same for the torso centre;
``d_cutoff`` 1.0 Hz, the cut-off of the speed estimate itself;
``reset_jump`` 0.25 box heights: a track whose keypoints moved by more than this (median)
in one frame was re-assigned to another person or re-detected, not moved, and its filter
restarts there instead of dragging the old position along.
Off by default: an accuracy run judges the model, not the filter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

TORSO = [5, 6, 11, 12]  # shoulders and hips: the part of a person that moves rigidly


@dataclass(frozen=True)
class OneEuroSettings:
    min_cutoff: float = 2.0
    beta: float = 4.0
    d_cutoff: float = 1.0
    reset_jump: float = 0.25
    centre_beta: float = 40.0


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff, np.float64))
    result: np.ndarray = 1.0 / (1.0 + tau / dt)
    return result


@dataclass
class _State:
    value: np.ndarray  # last filtered value, pixels
    speed: np.ndarray  # last filtered speed, pixels per second
    time: float


def _one_euro(
    state: _State | None,
    value: np.ndarray,
    time: float,
    scale: float,
    min_cutoff: float,
    beta: float,
    d_cutoff: float,
) -> _State:
    if state is None:
        return _State(value, np.zeros_like(value), time)
    dt = time - state.time
    speed = (value - state.value) / dt
    speed_hat = state.speed + _alpha(d_cutoff, dt) * (speed - state.speed)
    cutoff = min_cutoff + beta * np.linalg.norm(speed_hat, axis=-1, keepdims=True) / scale
    return _State(state.value + _alpha(cutoff, dt) * (value - state.value), speed_hat, time)


@dataclass
class KeypointSmoother:
    """One-Euro filter state per track ID; tracks not seen in a frame are forgotten."""

    settings: OneEuroSettings = field(default_factory=OneEuroSettings)
    states: dict[int, tuple[_State, _State]] = field(default_factory=dict)

    def reset(self) -> None:
        self.states.clear()

    def __call__(
        self,
        track_ids: np.ndarray,
        keypoints: np.ndarray,
        boxes: np.ndarray,
        time: float,
        scores: np.ndarray | None = None,
    ) -> np.ndarray:
        """Smoothed copies of ``keypoints`` (N,K,D) for the tracks ``track_ids`` at ``time``
        seconds; ``boxes`` (N,4) xyxy give each track's scale, ``scores`` (N,K) pick the
        confident body keypoints whose median is the person's centre."""
        out = np.array(keypoints, np.float64, copy=True)
        seen: dict[int, tuple[_State, _State]] = {}
        config = self.settings
        for row, track_id in enumerate(np.asarray(track_ids).tolist()):
            scale = max(float(boxes[row, 3] - boxes[row, 1]), 1.0)
            points = out[row]
            torso = points[TORSO]
            if scores is not None and np.sum(scores[row, TORSO] > 0.3) >= 2:
                torso = torso[scores[row, TORSO] > 0.3]
            centre = torso.mean(axis=0, keepdims=True)
            previous = self.states.get(int(track_id))
            if previous is not None:
                jump = (
                    float(
                        np.median(
                            np.linalg.norm(points - previous[0].value - previous[1].value, axis=-1)
                        )
                    )
                    / scale
                )
                if time <= previous[0].time or jump > config.reset_jump:
                    previous = None
            centre_state = _one_euro(
                None if previous is None else previous[0],
                centre,
                time,
                scale,
                config.min_cutoff,
                config.centre_beta,
                config.d_cutoff,
            )
            offset_state = _one_euro(
                None if previous is None else previous[1],
                points - centre,
                time,
                scale,
                config.min_cutoff,
                config.beta,
                config.d_cutoff,
            )
            seen[int(track_id)] = (centre_state, offset_state)
            out[row] = centre_state.value + offset_state.value
        self.states = seen
        return out.astype(np.float32)
