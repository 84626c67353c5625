"""Synthetic video with ground truth: the figure generator animated.

Each actor is one figure of :mod:`rtmw.data.synthetic` (same style, face and hands in every
frame) whose limbs are re-posed per frame by rotating rigid keypoint groups about their
joints, so bone lengths, hands and feet stay the figure's own:

- ``walk``: a side-stepping gait (legs and arms swing about hips and shoulders, knees bend)
  while the actor crosses the scene, entering and leaving through the frame's borders;
- ``wave``: standing still, the right arm raised and the forearm and hand waving about the
  elbow (the rest of the body does not move: the jitter probe);
- ``turn``: standing, the body turning about its vertical axis (a horizontal squash of
  the frontal figure, never past profile, so left stays left), then walking off;
- ``still``: standing without moving.

Actors are drawn back to front, so they occlude each other where their paths cross; the
camera holds still, then pans and zooms (frames blurred along the pan while it moves), then
holds again. Every frame's annotations are COCO-WholeBody's (visibility from the drawn
pixels, as for still images) plus ``track_id``; images carry ``frame_id`` and ``vid_id``
as PoseTrack's do. The video is written as an MP4 (OpenCV's ``mp4v``) and, optionally, as
a folder of frames. Seeded: the same seed writes the same files.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from rtmw.data.synthetic import (
    GENERATOR_VERSION,
    Figure,
    _annotate,
    _background,
    _Canvas,
    _draw_figure,
    _pose_figure,
    _rot,
)
from rtmw.data.wholebody import PART_SLICES
from rtmw.errors import UsageError

logger = logging.getLogger(__name__)

MOTIONS = ("walk", "wave", "turn", "still")
FOOT = PART_SLICES["foot"].start
# keypoints carried by each limb segment (the joint at the segment's far end and beyond)
RIGHT_ARM = [8, 10, *range(PART_SLICES["righthand"].start, PART_SLICES["righthand"].stop)]
LEFT_ARM = [7, 9, *range(PART_SLICES["lefthand"].start, PART_SLICES["lefthand"].stop)]
RIGHT_LEG = [14, 16, FOOT + 3, FOOT + 4, FOOT + 5]
LEFT_LEG = [13, 15, FOOT, FOOT + 1, FOOT + 2]
# (root joint, middle joint, end joint, upper group, lower group, side sign)
LIMBS = {
    "right_arm": (6, 8, 10, RIGHT_ARM, RIGHT_ARM[1:], -1.0),
    "left_arm": (5, 7, 9, LEFT_ARM, LEFT_ARM[1:], 1.0),
    "right_leg": (12, 14, 16, RIGHT_LEG, RIGHT_LEG[1:], -1.0),
    "left_leg": (11, 13, 15, LEFT_LEG, LEFT_LEG[1:], 1.0),
}


@dataclass(frozen=True)
class Actor:
    """One person of the scene: who, how they move, and where (world pixels)."""

    track_id: int
    motion: str
    height_px: float
    start_x: float  # world x of the body's centre line at the actor's first frame
    speed: float  # world px per frame (walkers; a turner's walk-off)
    layer: int  # drawing order: higher is nearer the camera
    first: int = 0  # first frame the actor exists
    phase: float = 0.0
    walk_off: int | None = None  # a turner's frame to start walking


@dataclass
class SyntheticVideo:
    root: Path
    video: Path
    ann_file: Path
    frame_dir: Path | None
    num_frames: int
    fps: float
    size: tuple[int, int]
    num_tracks: int
    # frames during which the camera does not move (where still keypoints are still)
    still_camera: list[tuple[int, int]] = field(default_factory=list)


def _angle(vector: np.ndarray) -> float:
    """Angle of a 2D vector measured as :func:`rtmw.data.synthetic._unit` does (from +y)."""
    return math.atan2(float(vector[0]), float(vector[1]))


def _rotate_group(kp: np.ndarray, pivot: int, group: list[int], turn: float) -> None:
    """Rotate ``group``'s keypoints about keypoint ``pivot`` so their angles grow by ``turn``."""
    rotation = _rot(-turn)  # _rot(d) maps a direction at angle a to angle a − d
    kp[group] = (kp[group] - kp[pivot]) @ rotation.T + kp[pivot]


def set_limb(kp: np.ndarray, limb: str, upper: float, lower: float) -> None:
    """Pose one limb: upper segment at angle ``upper``, lower at ``upper + lower`` (radians
    from straight down, the side's sign applied: positive swings away from the body)."""
    root, middle, end, upper_group, lower_group, sign = LIMBS[limb]
    _rotate_group(kp, root, upper_group, sign * upper - _angle(kp[middle] - kp[root]))
    target = sign * (upper + lower)
    _rotate_group(kp, middle, lower_group, target - _angle(kp[end] - kp[middle]))


def _posed(base: Figure, actor: Actor, frame: int, fps: float) -> tuple[Figure, float]:
    """The actor's figure at ``frame`` in body units, and its world x offset from start."""
    kp = base.keypoints.copy()
    t = (frame - actor.first) / fps
    stride = 2 * math.pi * 1.6 * t + actor.phase  # 1.6 steps per second
    walking = actor.motion == "walk" or (actor.walk_off is not None and frame >= actor.walk_off)
    # a neutral stance first: arms hanging slightly away, legs straight
    for limb in ("right_arm", "left_arm"):
        set_limb(kp, limb, 0.2, 0.05)
    for limb in ("right_leg", "left_leg"):
        set_limb(kp, limb, 0.06, 0.0)
    moved = 0.0
    if walking:
        start = actor.first if actor.walk_off is None else actor.walk_off
        moved = actor.speed * (frame - start)
        swing = math.sin(stride)
        set_limb(kp, "right_leg", 0.08 + 0.22 * swing, -0.25 * max(0.0, -swing))
        set_limb(kp, "left_leg", 0.08 - 0.22 * swing, -0.25 * max(0.0, swing))
        set_limb(kp, "right_arm", 0.2 - 0.25 * swing, 0.15)
        set_limb(kp, "left_arm", 0.2 + 0.25 * swing, 0.15)
    elif actor.motion == "wave":
        set_limb(kp, "right_arm", 2.2, 0.5 + 0.55 * math.sin(2 * math.pi * 1.2 * t))
    scale_x = 1.0
    if actor.motion == "turn" and not walking:
        scale_x = 0.55 + 0.45 * abs(math.cos(2 * math.pi * 0.35 * t))
    if scale_x != 1.0:
        kp[:, 0] *= scale_x
    extras = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in base.extras.items()}
    if scale_x != 1.0:
        extras["head_center"] = extras["head_center"] * np.array([scale_x, 1.0])
    return Figure(
        kp,
        base.style,
        base.head_radius,
        base.limb_width,
        base.arm_in_front,
        base.palm_front,
        extras,
    ), moved


def _script(
    persons: int, width: int, height: int, frames: int, rng: np.random.Generator
) -> list[Actor]:
    """The actors: the first four play the four roles, more cycle through them."""
    actors: list[Actor] = []
    for index in range(persons):
        role = index % 4
        scale = rng.uniform(0.85, 1.0) * (0.75 if index >= 4 else 1.0)
        lane = rng.uniform(-0.04, 0.04) * width + (index // 4) * 0.11 * width
        if role == 0:  # walks in from the left and out on the right
            actor = Actor(
                index + 1,
                "walk",
                0.56 * height * scale,
                -0.12 * width + lane,
                1.35 * width / frames,
                layer=1 + index,
                phase=rng.uniform(0, 6),
            )
        elif role == 1:  # waves, standing still at the back
            actor = Actor(
                index + 1, "wave", 0.5 * height * scale, 0.2 * width + lane, 0.0, layer=0 + index
            )
        elif role == 2:  # turns, then walks off to the right
            actor = Actor(
                index + 1,
                "turn",
                0.53 * height * scale,
                0.78 * width + lane,
                1.6 * width / frames,
                layer=2 + index,
                walk_off=int(0.6 * frames),
            )
        else:  # enters late from the right, crossing in front of the others
            actor = Actor(
                index + 1,
                "walk",
                0.62 * height * scale,
                1.1 * width - lane,
                -1.5 * width / frames,
                layer=3 + index,
                first=int(0.2 * frames),
                phase=rng.uniform(0, 6),
            )
        actors.append(actor)
    return actors


def camera_at(frame: int, frames: int) -> tuple[float, float]:
    """(pan in world px, zoom) of the camera: still, then panning and zooming, then still."""
    start, stop = int(0.5 * frames), int(0.8 * frames)
    progress = min(1.0, max(0.0, (frame - start) / max(1, stop - start)))
    eased = 0.5 - 0.5 * math.cos(math.pi * progress)
    return 90.0 * eased, 1.0 + 0.15 * eased


def render_video(
    out_dir: str | Path,
    *,
    frames: int = 120,
    persons: int = 4,
    size: tuple[int, int] = (640, 480),
    fps: float = 30.0,
    seed: int = 0,
    frame_folder: bool = False,
    progress: bool = True,
) -> SyntheticVideo:
    """Write ``video.mp4`` and ``annotations/video_wholebody.json`` under ``out_dir``."""
    if frames < 1 or persons < 0:
        raise UsageError(
            f"a synthetic video needs ≥ 1 frame and ≥ 0 persons, got {frames}, {persons}"
        )
    width, height = size
    root = Path(out_dir)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 7])
    world = _background(rng, int(width * 1.6), int(height * 1.4))
    actors = _script(persons, width, height, frames, rng)
    figures = [_pose_figure(np.random.default_rng([seed, 8, a.track_id])) for a in actors]
    video_path = root / "video.mp4"
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {video_path} (no mp4v encoder in this build)")
    frame_dir = root / "frames" if frame_folder else None
    if frame_dir is not None:
        frame_dir.mkdir(exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    still: list[tuple[int, int]] = []
    origin = np.array([width * 0.3, height * 0.2])  # world point at the frame's top-left
    previous_pan = 0.0
    try:
        for index in tqdm(
            range(frames), desc="synthetic video", unit="frame", disable=not progress, leave=False
        ):
            pan, zoom = camera_at(index, frames)
            # world → image: (p − origin − (pan, 0)) · zoom about the frame's centre
            centre = np.array([width / 2, height / 2])
            shift = centre - (origin + np.array([pan, 0.0]) + centre) * zoom
            affine = np.array([[zoom, 0.0, shift[0]], [0.0, zoom, shift[1]]])
            background = cv2.warpAffine(
                world,
                affine,
                (width, height),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REFLECT,
            )
            canvas = _Canvas(background)
            placed: list[tuple[int, Figure]] = []
            for owner, (actor, base) in sorted(
                enumerate(zip(actors, figures, strict=True)), key=lambda item: item[1][0].layer
            ):
                if index < actor.first:
                    continue
                figure, moved = _posed(base, actor, index, fps)
                ground = height * 0.93 + origin[1]  # feet on one floor line (world)
                top_world = ground - actor.height_px
                world_pos = np.array([actor.start_x + moved + origin[0], top_world])
                image_pos = world_pos * zoom + shift
                drawn = figure.transformed(actor.height_px * zoom, 0.0, image_pos)
                _draw_figure(canvas, owner, drawn, np.random.default_rng([seed, 9, owner]))
                placed.append((owner, drawn))
            image = canvas.image
            speed = abs(pan - previous_pan) * zoom
            if speed >= 1.5:  # motion blur along the pan
                length = round(speed) | 1
                kernel = np.zeros((length, length), np.float32)
                kernel[length // 2, :] = 1.0 / length
                image = cv2.filter2D(image, -1, kernel)
            elif not still or still[-1][1] != index - 1:
                still.append((index, index))
            else:
                still[-1] = (still[-1][0], index)
            previous_pan = pan
            image_id = index + 1
            for owner, drawn in placed:
                ann = _annotate(canvas, owner, drawn, len(annotations) + 1, image_id)
                if ann is not None:
                    ann["track_id"] = actors[owner].track_id
                    annotations.append(ann)
            writer.write(image)
            name = f"{image_id:06d}.png"
            if frame_dir is not None:
                cv2.imwrite(str(frame_dir / name), image)
            images.append(
                {
                    "id": image_id,
                    "file_name": name,
                    "width": width,
                    "height": height,
                    "frame_id": index,
                    "vid_id": 1,
                }
            )
    finally:
        writer.release()
    ann_file = root / "annotations" / "video_wholebody.json"
    coco = {
        "info": {
            "description": f"rtmw synthetic video, seed {seed}",
            "version": "1.0",
            "rtmw_generator": GENERATOR_VERSION,
            "seed": seed,
            "fps": fps,
            "video": video_path.name,
            "still_camera": still,
            "actors": [{"track_id": a.track_id, "motion": a.motion} for a in actors],
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }
    ann_file.write_text(json.dumps(coco))
    logger.info("wrote a %d-frame video with %d persons to %s", frames, persons, root)
    return SyntheticVideo(root, video_path, ann_file, frame_dir, frames, fps, size, persons, still)
