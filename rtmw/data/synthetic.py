"""Procedurally drawn whole-body figures in COCO-WholeBody format.

Every one of the 133 keypoints has a visible meaning in the picture: limbs with
joints, shoes with heel and toes, a face drawn from its own 68 landmarks (jaw line,
brows, eyes, nose, lips), hands with five jointed fingers. Figures vary in scale,
pose, colours and background; some are cut by the image border, some occluded by
objects or by other figures, and visibility flags say so (2 visible, 1 occluded,
0 unlabelled). Everything is seeded: the same seed writes the same files.

The figures face the camera, so a person's left side is on the image's right, as in
most of COCO.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from rtmw.data.wholebody import NUM_KEYPOINTS, PART_SLICES, split_keypoints
from rtmw.errors import UsageError

logger = logging.getLogger(__name__)

Color = tuple[int, int, int]

# Part sizes below which COCO-WholeBody annotators leave a part unlabelled (pixels).
MIN_FACE_PX = 14.0
MIN_HAND_PX = 10.0
MIN_FOOT_PX = 6.0

# Bumped whenever the drawing changes, so saved data from another version is not reused.
# 2: hands drawn ~20 % larger than anatomy (0.095–0.125 of the height, was 0.085–0.105),
#    so that 21 hand keypoints are resolvable in a 256×192 crop of a whole figure.
GENERATOR_VERSION = 2


# ----------------------------------------------------------------------------- geometry


def _rot(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _unit(angle: float) -> np.ndarray:
    """Direction at ``angle`` radians, measured from straight down (+y), ccw on screen."""
    return np.array([math.sin(angle), math.cos(angle)])


def _face_template(rng: np.random.Generator) -> np.ndarray:
    """68 iBUG landmarks in face units: x right (person's left), y down, eyes at y=0.

    Index conventions follow the 68-point layout the COCO-WholeBody face uses: 0–16 jaw
    from the person's right ear to the left, 17–26 brows, 27–35 nose, 36–47 eyes,
    48–67 lips.
    """
    pts = np.zeros((68, 2))
    jaw_w = rng.uniform(0.85, 0.98)
    chin = rng.uniform(0.95, 1.12)
    for i in range(17):
        t = math.pi * i / 16
        pts[i] = (-jaw_w * math.cos(t), -0.08 + (chin + 0.08) * math.sin(t) ** 0.75)
    brow_y = rng.uniform(-0.36, -0.26)
    arch = rng.uniform(0.04, 0.12)
    for j in range(5):
        u = j / 4
        x = -0.78 + 0.6 * u
        pts[17 + j] = (x, brow_y - arch * math.sin(math.pi * (0.2 + 0.7 * u)))
        pts[26 - j] = (-x, pts[17 + j][1])
    for j in range(4):
        pts[27 + j] = (0.0, -0.16 + 0.17 * j)
    nose_y = 0.44
    for j, dx in enumerate((-0.19, -0.1, 0.0, 0.1, 0.19)):
        pts[31 + j] = (dx, nose_y + (0.04 if j == 2 else 0.0) - (0.03 if j in (0, 4) else 0.0))
    eye_h = rng.uniform(0.06, 0.11)
    for side, (outer, inner) in ((-1, (36, 39)), (1, (45, 42))):
        x_out, x_in = side * 0.64, side * 0.2
        pts[outer] = (x_out, 0.0)
        pts[inner] = (x_in, 0.01)
        thirds = (x_out + (x_in - x_out) / 3, x_out + 2 * (x_in - x_out) / 3)
        # (near outer corner, near inner corner) on the upper and the lower lid
        upper, lower = ((37, 38), (41, 40)) if side < 0 else ((44, 43), (46, 47))
        pts[upper[0]] = (thirds[0], -eye_h)
        pts[upper[1]] = (thirds[1], -eye_h * 0.9)
        pts[lower[0]] = (thirds[0], eye_h * 0.7)
        pts[lower[1]] = (thirds[1], eye_h * 0.65)
    mouth_y = rng.uniform(0.68, 0.74)
    half_w = rng.uniform(0.3, 0.42)
    smile = rng.uniform(-0.05, 0.08)
    opening = rng.choice([0.0, rng.uniform(0.03, 0.16)])
    upper_lip = rng.uniform(0.06, 0.09)
    lower_lip = rng.uniform(0.07, 0.11)
    outer_top = [(-1.0, 0.0), (-0.6, -0.6), (-0.25, -1.0), (0.0, -0.85), (0.25, -1.0), (0.6, -0.6)]
    for j, (u, h) in enumerate(outer_top):  # 48 … 53
        pts[48 + j] = (u * half_w, mouth_y - smile * (1 - u * u) + h * upper_lip)
    pts[54] = (half_w, mouth_y - smile * 0.0)
    pts[48] = (-half_w, mouth_y)
    for j, u in enumerate((0.6, 0.0, -0.6)):  # 55, 57, 59 and between
        base = mouth_y - smile * (1 - u * u) + opening
        pts[55 + 2 * j] = (u * half_w, base + lower_lip * (1.0 if u == 0 else 0.7))
    pts[56] = (0.3 * half_w, (pts[55][1] + pts[57][1]) / 2 + 0.01)
    pts[58] = (-0.3 * half_w, pts[56][1])
    inner_w = half_w * 0.75
    pts[60] = (-inner_w, mouth_y)
    pts[64] = (inner_w, mouth_y)
    for j, u in enumerate((-0.45, 0.0, 0.45)):  # 61, 62, 63 upper inner
        pts[61 + j] = (u * inner_w, mouth_y - smile * (1 - u * u) - 0.01)
    for j, u in enumerate((0.45, 0.0, -0.45)):  # 65, 66, 67 lower inner
        pts[65 + j] = (u * inner_w, mouth_y - smile * (1 - u * u) + opening + 0.01)
    return pts


@dataclass
class Style:
    skin: Color
    hair: Color
    shirt: Color
    sleeve: Color
    pants: Color
    shoes: Color
    lips: Color
    iris: Color
    long_sleeves: bool
    outline: Color


def _random_color(rng: np.random.Generator, lo: int = 20, hi: int = 235) -> Color:
    c = rng.integers(lo, hi, size=3)
    return (int(c[0]), int(c[1]), int(c[2]))


def _random_style(rng: np.random.Generator) -> Style:
    tone = rng.uniform(0.25, 1.0)
    skin = (int(90 + 100 * tone), int(120 + 90 * tone), int(150 + 95 * tone))  # BGR
    shirt = _random_color(rng)
    long_sleeves = bool(rng.random() < 0.5)
    return Style(
        skin=skin,
        hair=_random_color(rng, 10, 120),
        shirt=shirt,
        sleeve=shirt if long_sleeves else skin,
        pants=_random_color(rng, 10, 200),
        shoes=_random_color(rng, 0, 160),
        lips=(int(skin[0] * 0.55), int(skin[1] * 0.5), int(min(255, skin[2] * 0.95))),
        iris=_random_color(rng, 20, 160),
        long_sleeves=long_sleeves,
        outline=(int(skin[0] * 0.45), int(skin[1] * 0.45), int(skin[2] * 0.5)),
    )


@dataclass
class Figure:
    """One posed person in body units (height ≈ 1), then placed in pixels."""

    keypoints: np.ndarray  # (133, 2)
    style: Style
    head_radius: float
    limb_width: float
    arm_in_front: tuple[bool, bool]  # (right arm, left arm)
    palm_front: tuple[bool, bool]
    extras: dict[str, Any] = field(default_factory=dict)
    # root-relative depth of every keypoint in metres (3D figures only): + is farther away
    depth: np.ndarray | None = None

    def transformed(self, scale: float, angle: float, offset: np.ndarray) -> Figure:
        rot = _rot(angle)
        kpts = (self.keypoints @ rot.T) * scale + offset
        extras: dict[str, Any] = {
            k: (v @ rot.T) * scale + offset for k, v in self.extras.items() if k != "tilt"
        }
        extras["tilt"] = float(self.extras.get("tilt", 0.0)) + angle
        return Figure(
            kpts,
            self.style,
            self.head_radius * scale,
            self.limb_width * scale,
            self.arm_in_front,
            self.palm_front,
            extras,
            self.depth,
        )


def _hand(
    rng: np.random.Generator,
    wrist: np.ndarray,
    direction: float,
    length: float,
    thumb_side: float,
) -> np.ndarray:
    """21 hand keypoints: root, then thumb/fore/middle/ring/pinky, 4 joints each.

    ``direction`` is the hand's pointing angle (from straight down); ``thumb_side`` is
    +1 or −1: which side of the pointing direction the thumb is on.
    """
    pts = np.zeros((21, 2))
    pts[0] = wrist
    axis = _unit(direction)
    side = np.array([axis[1], -axis[0]]) * thumb_side  # perpendicular, toward the thumb
    palm = 0.46 * length
    spread = rng.uniform(0.6, 1.4)
    finger_len = (0.44, 0.5, 0.54, 0.5, 0.4)
    across = (0.0, 0.16, 0.05, -0.06, -0.16)
    fan = (0.0, 0.14, 0.03, -0.08, -0.2)
    curl_all = rng.uniform(0.0, 1.0) ** 2
    for f in range(5):
        if f == 0:
            base = wrist + axis * (0.14 * length) + side * (0.16 * length)
            ang = direction + thumb_side * rng.uniform(0.5, 1.1)
            seg = np.array((0.34, 0.33, 0.28)) * 0.62 * length
        else:
            base = wrist + axis * palm + side * (across[f] * length)
            ang = direction + thumb_side * fan[f] * spread
            seg = np.array((0.46, 0.3, 0.24)) * finger_len[f] * length
        pts[1 + 4 * f] = base
        curl = curl_all * rng.uniform(0.7, 1.3) if rng.random() > 0.15 else rng.uniform(0, 1)
        point = base
        for j in range(3):
            bend = -thumb_side * curl * (0.5 + 0.25 * j)
            ang += bend * 0.6
            shrink = max(0.35, math.cos(curl * (0.6 + 0.3 * j)))
            point = point + _unit(ang) * seg[j] * shrink
            pts[2 + 4 * f + j] = point
    return pts


def _foot(ankle: np.ndarray, outward: float, length: float, rng: np.random.Generator) -> np.ndarray:
    """big toe, small toe, heel: a foot turned outward by ``outward`` (signed angle)."""
    direction = _unit(outward * rng.uniform(0.9, 1.6))
    heel = ankle + np.array([-0.15 * length * np.sign(outward), 0.2 * length])
    tip = heel + direction * length * rng.uniform(0.75, 1.0) + np.array([0, 0.12 * length])
    # seen from the front, a turned-out foot shows its medial (big-toe) edge lowest
    perp = np.array([direction[1], -direction[0]]) * np.sign(outward)
    big = tip - perp * 0.18 * length
    small = tip + perp * 0.22 * length - direction * 0.22 * length
    return np.stack([big, small, heel])


def _pose_figure(rng: np.random.Generator) -> Figure:
    """A frontal figure with random joint angles, in body units (head top at y = 0)."""
    kp = np.zeros((NUM_KEYPOINTS, 2))
    style = _random_style(rng)
    head_r = rng.uniform(0.058, 0.07)
    shoulder_w = rng.uniform(0.1, 0.125)
    hip_w = rng.uniform(0.07, 0.09)
    lean = rng.normal(0.0, 0.06)
    neck = np.array([0.0, 0.19])
    head_c = neck + _unit(math.pi + lean * 0.5) * (head_r * 1.55)
    pelvis = neck + _unit(lean) * rng.uniform(0.27, 0.31)
    torso_axis = pelvis - neck
    across = np.array([torso_axis[1], -torso_axis[0]]) / np.linalg.norm(torso_axis)
    across = -across if across[0] < 0 else across  # +x: the person's left
    shoulders = {"right": neck - across * shoulder_w, "left": neck + across * shoulder_w}
    shoulders = {k: v + np.array([0, 0.012]) for k, v in shoulders.items()}
    hips = {"right": pelvis - across * hip_w, "left": pelvis + across * hip_w}

    upper_arm, fore_arm = rng.uniform(0.15, 0.18), rng.uniform(0.13, 0.16)
    thigh, shin = rng.uniform(0.22, 0.25), rng.uniform(0.21, 0.24)
    hand_len = rng.uniform(0.095, 0.125)
    foot_len = rng.uniform(0.075, 0.095)

    # Body keypoints: COCO order nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles.
    face_scale = head_r * rng.uniform(0.92, 1.02)
    yaw = rng.normal(0.0, 0.12)
    tilt = lean * 0.5 + rng.normal(0.0, 0.12)
    face = _face_template(rng)
    face[:, 0] += yaw * (1 - np.clip(np.abs(face[:, 0]), 0, 1) ** 2) * 0.5
    face_center = head_c + np.array([0.0, -0.05 * head_r])
    face_px = (face * face_scale) @ _rot(tilt).T + face_center
    kp[PART_SLICES["face"]] = face_px
    kp[0] = face_px[30]
    kp[1] = face_px[[42, 43, 44, 45, 46, 47]].mean(0)  # left eye: image right
    kp[2] = face_px[[36, 37, 38, 39, 40, 41]].mean(0)
    ear_y = face_px[2] * 0.5 + face_px[1] * 0.5
    kp[3] = face_px[14] * 0.5 + face_px[15] * 0.5 + (face_px[15] - face_px[8]) * 0.08
    kp[4] = ear_y + (face_px[1] - face_px[8]) * 0.08

    palm_front = (bool(rng.random() < 0.5), bool(rng.random() < 0.5))
    arm_front = (bool(rng.random() < 0.3), bool(rng.random() < 0.3))
    wrist_dirs = {}
    for side, sign, s_idx, e_idx, w_idx in (("right", -1, 6, 8, 10), ("left", 1, 5, 7, 9)):
        pose = rng.random()
        if pose < 0.45:  # hanging, slightly away from the body
            a1 = sign * rng.uniform(0.05, 0.5)
        elif pose < 0.8:  # raised sideways
            a1 = sign * rng.uniform(0.5, 2.0)
        else:  # overhead or across
            a1 = (
                sign * rng.uniform(2.0, 2.9)
                if rng.random() < 0.6
                else -sign * rng.uniform(0.1, 0.6)
            )
        a2 = a1 + sign * rng.uniform(-0.3, 2.2) * (1 if rng.random() < 0.8 else -0.4)
        elbow = shoulders[side] + _unit(a1) * upper_arm
        wrist = elbow + _unit(a2) * fore_arm
        kp[s_idx], kp[e_idx], kp[w_idx] = shoulders[side], elbow, wrist
        wrist_dirs[side] = a2 + rng.normal(0.0, 0.35)
    for side, sign, h_idx, k_idx, a_idx in (("right", -1, 12, 14, 16), ("left", 1, 11, 13, 15)):
        pose = rng.random()
        if pose < 0.6:  # standing
            a1, a2 = sign * rng.uniform(0.0, 0.25), sign * rng.uniform(-0.1, 0.15)
        elif pose < 0.85:  # stepping or running
            a1 = sign * rng.uniform(-0.3, 0.7)
            a2 = a1 + rng.uniform(-0.9, 0.3) * sign
        else:  # raised knee or kick
            a1 = sign * rng.uniform(0.6, 1.6)
            a2 = a1 - sign * rng.uniform(0.2, 1.8)
        knee = hips[side] + _unit(a1 + lean) * thigh
        ankle = knee + _unit(a2 + lean) * shin
        kp[h_idx], kp[k_idx], kp[a_idx] = hips[side], knee, ankle
    kp[5], kp[6] = shoulders["left"], shoulders["right"]
    kp[11], kp[12] = hips["left"], hips["right"]

    feet = PART_SLICES["foot"].start
    kp[feet : feet + 3] = _foot(kp[15], rng.uniform(0.6, 1.2), foot_len, rng)
    kp[feet + 3 : feet + 6] = _foot(kp[16], -rng.uniform(0.6, 1.2), foot_len, rng)

    # Hands: the thumb side follows which way the palm faces and which hand it is.
    for side, w_idx, part, front in (
        ("left", 9, "lefthand", palm_front[1]),
        ("right", 10, "righthand", palm_front[0]),
    ):
        direction = wrist_dirs[side]
        lateral = 1.0 if side == "left" else -1.0
        axis = _unit(direction)
        perp = np.array([axis[1], -axis[0]])
        # choose the thumb on the body-lateral side when the palm faces the camera
        thumb_side = 1.0 if np.sign(perp[0] + 1e-9) == lateral else -1.0
        if not front:
            thumb_side = -thumb_side
        kp[PART_SLICES[part]] = _hand(rng, kp[w_idx], direction, hand_len, thumb_side)

    extras = {"head_center": head_c, "tilt": float(tilt)}
    return Figure(
        kp,
        style,
        head_r,
        rng.uniform(0.032, 0.045),
        arm_front,
        palm_front,
        extras,
    )


# ----------------------------------------------------------------------------- depth (3D)

ROOT_INDEX = (11, 12)  # the hips: depth is relative to their mean, as RTMW3D's codec sets it


def _lift_depth(fig: Figure, rng: np.random.Generator) -> np.ndarray:
    """Root-relative depth (body units, + away from the camera) of a frontal figure.

    Each bone leaves the image plane at its own angle, so the 3D skeleton's orthographic
    projection is exactly the 2D figure (its drawn bones are the foreshortened ones). The
    angles follow what the picture shows: an arm drawn in front of the torso points
    toward the camera, one drawn behind it away; toes point forward; the face is convex
    around the nose; shoulders and hips turn together with the torso.
    """
    kp = fig.keypoints
    z = np.zeros(NUM_KEYPOINTS)

    def bone(child: int, parent: int, angle: float) -> None:
        length = float(np.linalg.norm(kp[child] - kp[parent]))
        z[child] = z[parent] + length * math.tan(float(np.clip(angle, -1.2, 1.2)))

    twist = rng.normal(0.0, 0.25)
    for left, right in ((5, 6), (11, 12)):
        half = (kp[left, 0] - kp[right, 0]) / 2  # the person's left is image +x
        z[left], z[right] = half * math.tan(twist), -half * math.tan(twist)
    for (shoulder, elbow, wrist, part), front in zip(
        ((6, 8, 10, "righthand"), (5, 7, 9, "lefthand")), fig.arm_in_front, strict=True
    ):
        upper = -rng.uniform(0.35, 1.0) if front else rng.uniform(-0.25, 0.5)
        fore = upper + rng.normal(0.0, 0.4)
        bone(elbow, shoulder, upper)
        bone(wrist, elbow, fore)
        hand = PART_SLICES[part]
        tilt = math.tan(float(np.clip(fore + rng.normal(0.0, 0.3), -1.2, 1.2)))
        offsets = np.linalg.norm(kp[hand] - kp[wrist], axis=1)
        z[hand] = z[wrist] + offsets * tilt
        z[hand.start] = z[wrist]  # the hand root is the wrist
    foot = PART_SLICES["foot"].start
    for hip, knee, ankle, toes in ((12, 14, 16, foot + 3), (11, 13, 15, foot)):
        bone(knee, hip, rng.normal(-0.1, 0.35))
        bone(ankle, knee, rng.normal(0.1, 0.3))
        bone(toes, ankle, -rng.uniform(0.7, 1.1))  # big toe
        bone(toes + 1, ankle, -rng.uniform(0.6, 1.0))  # small toe
        bone(toes + 2, ankle, rng.uniform(0.2, 0.6))  # heel, behind the ankle
    neck_z = (z[5] + z[6]) / 2
    head_z = neck_z + rng.normal(-0.01, 0.015)
    face = PART_SLICES["face"]
    pts = kp[face]
    center = pts.mean(0)
    radius = fig.head_radius
    lateral = np.clip(np.abs(pts[:, 0] - center[0]) / radius, 0.0, 1.0)
    z[face] = head_z - radius * 0.9 * (1.0 - lateral**2)
    z[0] = z[face.start + 30]  # nose: the nose tip
    z[1] = z[face.start + 42 : face.start + 48].mean()
    z[2] = z[face.start + 36 : face.start + 42].mean()
    z[3] = z[4] = head_z + radius * 0.3  # ears, behind the face
    relative: np.ndarray = z - z[list(ROOT_INDEX)].mean()
    return relative


def _perspective(fig: Figure, depth_m: np.ndarray, principal: np.ndarray,
                 root_z: float) -> Figure:  # fmt: skip
    """A placed (orthographic) figure seen by a pinhole camera: each keypoint's offset from
    the principal point scales by root_z / (root_z + z), the head with its face."""
    ratio = root_z / (root_z + depth_m)
    points = principal + (fig.keypoints - principal) * ratio[:, None]
    face = PART_SLICES["face"]
    extras = dict(fig.extras)
    head_ratio = float(ratio[face].mean())
    extras["head_center"] = principal + (fig.extras["head_center"] - principal) * head_ratio
    return Figure(points, fig.style, fig.head_radius * head_ratio, fig.limb_width,
                  fig.arm_in_front, fig.palm_front, extras, depth_m)  # fmt: skip


def _depth_shade(color: Color, fig: Figure, indices: list[int]) -> Color:
    """Farther parts drawn darker (a depth cue the picture carries); 2D figures unchanged."""
    if fig.depth is None:
        return color
    return _shade(color, float(np.clip(1.0 - 1.5 * fig.depth[indices].mean(), 0.45, 1.6)))


# ----------------------------------------------------------------------------- drawing


def _pt(p: np.ndarray) -> tuple[int, int]:
    return (round(float(p[0]) * 16), round(float(p[1]) * 16))


def _line(img: np.ndarray, a: np.ndarray, b: np.ndarray, color: Color, width: float) -> None:
    cv2.line(img, _pt(a), _pt(b), color, max(1, round(width)), cv2.LINE_AA, shift=4)


def _polyline(
    img: np.ndarray, pts: np.ndarray | list[np.ndarray], color: Color, width: float
) -> None:
    """Consecutive segments through ``pts`` (open)."""
    for a, b in itertools.pairwise(pts):
        _line(img, a, b, color, width)


def _poly(img: np.ndarray, pts: np.ndarray, color: Color) -> None:
    cv2.fillPoly(img, [np.round(pts * 16).astype(np.int32)], color, cv2.LINE_AA, shift=4)


def _circle(img: np.ndarray, c: np.ndarray, r: float, color: Color) -> None:
    cv2.circle(img, _pt(c), max(1, round(r * 16)), color, -1, cv2.LINE_AA, shift=4)


def _shade(color: Color, factor: float) -> Color:
    return (
        int(min(255, color[0] * factor)),
        int(min(255, color[1] * factor)),
        int(min(255, color[2] * factor)),
    )


class _Canvas:
    """The image plus an owner map, so occlusion of every keypoint can be read back."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.owner: np.ndarray = np.full(image.shape[:2], -1, dtype=np.int32)
        self.layer = np.zeros(image.shape[:2], dtype=np.uint8)

    def paint(self, owner: int, draw: Any) -> None:
        """Run ``draw(img)`` on the image, and record which pixels it covered."""
        self.layer[:] = 0
        draw(self.layer, 255)
        draw(self.image, None)
        self.owner[self.layer > 127] = owner


def _draw_limb(
    canvas: _Canvas, owner: int, pts: list[np.ndarray], color: Color, width: float
) -> None:
    def draw(img: np.ndarray, mask_value: int | None) -> None:
        c = (mask_value,) * 3 if mask_value is not None else color
        edge = (mask_value,) * 3 if mask_value is not None else _shade(color, 0.7)
        _polyline(img, pts, edge, width + 2)
        _polyline(img, pts, c, width)
        for p in pts[1:-1]:
            _circle(img, p, width * 0.5, c)

    canvas.paint(owner, draw)


def _draw_hand(
    canvas: _Canvas, owner: int, hand: np.ndarray, fig: Figure, skin: Color | None = None
) -> None:
    skin, dark = skin or fig.style.skin, fig.style.outline
    finger_w = max(1.0, fig.limb_width * 0.28)

    def draw(img: np.ndarray, mask_value: int | None) -> None:
        if mask_value is not None:
            col_skin = col_dark = col_nail = (mask_value,) * 3
        else:
            col_skin, col_dark, col_nail = skin, dark, _shade(skin, 1.18)
        palm = hand[[0, 1, 5, 9, 13, 17]]
        _poly(img, palm, col_skin)
        for f in range(5):
            chain = hand[[1 + 4 * f, 2 + 4 * f, 3 + 4 * f, 4 + 4 * f]]
            width = finger_w * (1.35 if f == 0 else 1.0)
            _polyline(img, chain, col_dark, width + 1.5)
            _polyline(img, chain, col_skin, width)
            for j in (1, 2):
                _circle(img, chain[j], width * 0.3, col_dark)
            _circle(img, chain[3], width * 0.4, col_nail)
            _circle(img, chain[0], width * 0.25, col_dark)
        _circle(img, hand[0], finger_w * 0.5, col_dark)

    canvas.paint(owner, draw)


def _draw_head(canvas: _Canvas, owner: int, fig: Figure, rng: np.random.Generator) -> None:
    kp = fig.keypoints
    face = kp[PART_SLICES["face"]]
    st = fig.style
    head_c = fig.extras["head_center"]
    r = fig.head_radius
    jaw = face[:17]
    top = np.array(
        [
            head_c + _rot(fig.extras["tilt"]) @ np.array([math.cos(t), -math.sin(t) * 1.05]) * r
            for t in np.linspace(0.05, math.pi - 0.05, 15)
        ]
    )
    head_poly = np.concatenate([jaw, top])
    hair_style = rng.integers(0, 3)

    def draw(img: np.ndarray, mask_value: int | None) -> None:
        m = (mask_value,) * 3 if mask_value is not None else None
        # ears (COCO body keypoints 3 and 4)
        for ear in (kp[3], kp[4]):
            _circle(img, ear, r * 0.22, m or _shade(st.skin, 0.9))
        _poly(img, head_poly, m or st.skin)
        if m is not None:
            return
        # hair above the brows
        hair = top[2:-2] if hair_style else top
        hair_poly = np.concatenate([hair, hair[::-1] + np.array([0, r * 0.25])])
        _poly(img, hair_poly, st.hair)
        lw = max(1.0, r * 0.06)
        _polyline(img, jaw, st.outline, lw)
        brow_w = max(1.0, r * 0.09)
        for brow in (face[17:22], face[22:27]):
            _polyline(img, brow, st.hair, brow_w)
        for eye in (face[36:42], face[42:48]):
            _poly(img, eye, (245, 245, 245))
            center = eye.mean(0)
            _circle(img, center, r * 0.075, st.iris)
            _circle(img, center, r * 0.035, (20, 20, 20))
            closed = np.concatenate([eye, eye[:1]])
            _polyline(img, closed, st.outline, lw)
        _polyline(img, face[27:31], _shade(st.skin, 0.8), lw)
        _polyline(img, face[31:36], st.outline, lw)
        _poly(img, face[48:60], st.lips)
        _poly(img, face[60:68], (40, 30, 60))

    canvas.paint(owner, draw)


def _draw_foot(
    canvas: _Canvas, owner: int, ankle: np.ndarray, foot: np.ndarray, fig: Figure
) -> None:
    big, small, heel = foot
    poly = np.stack([ankle, heel, small, big])

    def draw(img: np.ndarray, mask_value: int | None) -> None:
        m = (mask_value,) * 3 if mask_value is not None else None
        _poly(img, poly, m or fig.style.shoes)
        _circle(img, big, fig.limb_width * 0.3, m or _shade(fig.style.shoes, 1.6))
        _circle(img, heel, fig.limb_width * 0.25, m or _shade(fig.style.shoes, 0.55))

    canvas.paint(owner, draw)


def _draw_figure(canvas: _Canvas, owner: int, fig: Figure, rng: np.random.Generator) -> None:
    kp, st, w = fig.keypoints, fig.style, fig.limb_width
    foot = PART_SLICES["foot"].start

    def arm(side: str) -> None:
        s, e, wr = (6, 8, 10) if side == "right" else (5, 7, 9)
        _draw_limb(canvas, owner, [kp[s], kp[e]], _depth_shade(st.shirt, fig, [s, e]), w * 0.95)
        _draw_limb(canvas, owner, [kp[e], kp[wr]], _depth_shade(st.sleeve, fig, [e, wr]), w * 0.8)
        hand = kp[PART_SLICES["righthand" if side == "right" else "lefthand"]]
        _draw_hand(canvas, owner, hand, fig, _depth_shade(st.skin, fig, [wr]))

    for side, front in zip(("right", "left"), fig.arm_in_front, strict=True):
        if not front:
            arm(side)
    for h, k, a, f in ((12, 14, 16, foot + 3), (11, 13, 15, foot)):
        pants = _depth_shade(st.pants, fig, [k, a])
        _draw_limb(canvas, owner, [kp[h], kp[k], kp[a]], pants, w * 1.15)
        _draw_foot(canvas, owner, kp[a], kp[f : f + 3], fig)
    torso = kp[[5, 6, 12, 11]]
    neck_base = (kp[5] + kp[6]) / 2

    def draw_torso(img: np.ndarray, mask_value: int | None) -> None:
        m = (mask_value,) * 3 if mask_value is not None else None
        _line(img, neck_base, fig.extras["head_center"], m or st.skin, fig.head_radius * 0.9)
        grown = torso + (torso - torso.mean(0)) * 0.12
        _poly(img, grown, m or st.shirt)
        _poly(img, kp[[11, 12]].mean(0) + (grown - grown.mean(0)) * [1.0, 0.25], m or st.pants)

    canvas.paint(owner, draw_torso)
    _draw_head(canvas, owner, fig, rng)
    for side, front in zip(("right", "left"), fig.arm_in_front, strict=True):
        if front:
            arm(side)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A cluttered scene: gradient, blocks, stripes and noise (no person-like shapes)."""
    c0 = np.array(_random_color(rng), np.float32)
    c1 = np.array(_random_color(rng), np.float32)
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    img = (c0 * (1 - t) + c1 * t) * np.ones((height, width, 1), np.float32)
    img = img.astype(np.uint8)
    for _ in range(rng.integers(3, 12)):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(20, width // 2)), int(rng.integers(20, height // 2))
        color = _random_color(rng)
        if rng.random() < 0.6:
            cv2.rectangle(img, (x, y), (x + w, y + h), color, -1)
        else:
            cv2.ellipse(
                img, (x, y), (w // 2, h // 2), float(rng.uniform(0, 180)), 0, 360, color, -1
            )
    for _ in range(rng.integers(0, 8)):
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(img, p1, p2, _random_color(rng), int(rng.integers(1, 4)), cv2.LINE_AA)
    noise = rng.normal(0, rng.uniform(2, 9), img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _draw_occluder(canvas: _Canvas, rng: np.random.Generator, target: np.ndarray) -> None:
    """An object over part of a figure (furniture, a sign, a bag)."""
    x1, y1, x2, y2 = target
    w, h = x2 - x1, y2 - y1
    cx = rng.uniform(x1, x2)
    cy = rng.uniform(y1 + 0.3 * h, y2)
    ow, oh = rng.uniform(0.2, 0.6) * w, rng.uniform(0.15, 0.4) * h
    color = _random_color(rng)
    shape = rng.integers(0, 2)

    def draw(img: np.ndarray, mask_value: int | None) -> None:
        c = (mask_value,) * 3 if mask_value is not None else color
        if shape == 0:
            half = np.array([[-ow, -oh], [ow, -oh], [ow, oh], [-ow, oh]]) / 2
            _poly(img, half + np.array([cx, cy]), c)
        else:
            axes = (round(ow * 8), round(oh * 8))  # semi-axes ow/2, oh/2 in 1/16 px
            center = _pt(np.array([cx, cy]))
            cv2.ellipse(img, center, axes, 0, 0, 360, c, -1, cv2.LINE_AA, shift=4)

    canvas.paint(-2, draw)


# ----------------------------------------------------------------------------- dataset


@dataclass
class SyntheticDataset:
    root: Path
    image_dir: Path
    ann_file: Path
    det_file: Path
    num_images: int
    num_persons: int


def _visibility(canvas: _Canvas, owner: int, pts: np.ndarray) -> np.ndarray:
    """2 where the figure's own pixels are at the point (3×3), 1 if covered, 0 outside."""
    height, width = int(canvas.owner.shape[0]), int(canvas.owner.shape[1])
    vis = np.zeros(len(pts), dtype=np.int64)
    for i, (x, y) in enumerate(pts):
        xi, yi = math.floor(x), math.floor(y)
        if not (0 <= x < width and 0 <= y < height):
            continue
        patch = canvas.owner[max(0, yi - 1) : yi + 2, max(0, xi - 1) : xi + 2]
        vis[i] = 2 if np.any(patch == owner) else 1
    return vis


def _part_box(pts: np.ndarray, vis: np.ndarray) -> list[float]:
    labelled = pts[vis > 0]
    if len(labelled) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    lo, hi = labelled.min(0), labelled.max(0)
    return [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]


def _annotate(
    canvas: _Canvas, owner: int, fig: Figure, ann_id: int, image_id: int
) -> dict[str, Any] | None:
    kp = fig.keypoints
    vis = _visibility(canvas, owner, kp)
    size = {
        "face": np.ptp(kp[PART_SLICES["face"]], axis=0).max(),
        "lefthand": np.ptp(kp[PART_SLICES["lefthand"]], axis=0).max(),
        "righthand": np.ptp(kp[PART_SLICES["righthand"]], axis=0).max(),
        "foot": fig.limb_width,
    }
    minimum = {
        "face": MIN_FACE_PX,
        "lefthand": MIN_HAND_PX,
        "righthand": MIN_HAND_PX,
        "foot": MIN_FOOT_PX,
    }
    valid = {}
    for part, px in size.items():
        sl = PART_SLICES[part]
        # a part too small to annotate, or mostly cut off, is left unlabelled, as annotators do
        labelled = px >= minimum[part] and np.mean(vis[sl] > 0) >= 0.5
        if not labelled:
            vis[sl] = 0
        valid[part] = bool(labelled)
    mask = canvas.owner == owner
    area = int(mask.sum())
    if area < 40 or not np.any(vis[:17] > 0):
        return None
    ys, xs = np.nonzero(mask)
    bbox = [
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    ]
    triples = np.concatenate([kp, vis[:, None].astype(np.float64)], axis=1)
    triples[vis == 0, :2] = 0.0
    triples = np.round(triples, 2)
    fields = split_keypoints(triples)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": bbox,
        "area": float(area),
        "segmentation": [],
        "num_keypoints": int(np.sum(vis[:17] > 0)),
        **fields,
        "face_box": _part_box(kp[PART_SLICES["face"]], vis[PART_SLICES["face"]]),
        "lefthand_box": _part_box(kp[PART_SLICES["lefthand"]], vis[PART_SLICES["lefthand"]]),
        "righthand_box": _part_box(kp[PART_SLICES["righthand"]], vis[PART_SLICES["righthand"]]),
        "face_valid": valid["face"],
        "lefthand_valid": valid["lefthand"],
        "righthand_valid": valid["righthand"],
        "foot_valid": valid["foot"],
    }


def _simulated_detections(
    rng: np.random.Generator, anns: list[dict[str, Any]], image_id: int, width: int, height: int
) -> list[dict[str, Any]]:
    """A plausible person detector: jittered boxes, a few misses and false alarms."""
    dets = []
    for ann in anns:
        visible = ann["num_keypoints"] / 17
        if rng.random() < 0.04 * (1.5 - visible):
            continue
        x, y, w, h = ann["bbox"]
        jitter = rng.normal(0, 0.04, size=4) * np.array([w, h, w, h])
        x1 = float(np.clip(x + jitter[0], 0, width - 1))
        y1 = float(np.clip(y + jitter[1], 0, height - 1))
        x2 = float(np.clip(x + w + jitter[2], x1 + 1, width))
        y2 = float(np.clip(y + h + jitter[3], y1 + 1, height))
        score = float(np.clip(0.55 + 0.4 * visible + rng.normal(0, 0.05), 0.05, 0.999))
        dets.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": round(score, 4),
            }
        )
    for _ in range(rng.poisson(0.3)):
        w, h = rng.uniform(20, width / 3), rng.uniform(40, height / 2)
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        dets.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "bbox": [float(x), float(y), float(w), float(h)],
                "score": round(float(rng.uniform(0.05, 0.35)), 4),
            }
        )
    return dets


def render_image(
    rng: np.random.Generator,
    image_id: int,
    first_ann_id: int,
    size: tuple[int, int] | None = None,
    *,
    depth_rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]], list[dict[str, Any]]]:
    """One image with 1–4 figures: (BGR image, annotations, simulated detections).

    With ``depth_rng`` the figures are 3D skeletons seen by a pinhole camera (focal
    1.2 × the image's long side, principal point at its centre): annotations gain
    ``keypoints_3d`` (camera frame, metres) and ``camera_param``; the 2D stream of
    random numbers is the same, so the 2D data of a seed does not change.
    """
    if size is None:
        width = int(rng.integers(40, 81)) * 8
        height = int(rng.integers(40, 65)) * 8
    else:
        width, height = size
    canvas = _Canvas(_background(rng, width, height))
    n_persons = int(rng.choice([1, 1, 2, 2, 3, 4]))
    figures = []
    focal = 1.2 * max(width, height)
    principal = np.array([width / 2, height / 2])
    cameras: list[tuple[np.ndarray, float] | None] = []
    for owner in range(n_persons):
        fig = _pose_figure(rng)
        person_h = (
            height * rng.uniform(0.35, 0.95)
            if rng.random() > 0.15
            else height * rng.uniform(0.15, 0.35)
        )
        angle = rng.normal(0, 0.12) if rng.random() > 0.1 else rng.uniform(-1.2, 1.2)
        cx = rng.uniform(0.1, 0.9) * width
        top = rng.uniform(0.0, max(1.0, height - person_h))
        if rng.random() < 0.2:  # truncated by the border
            edge = rng.integers(0, 3)
            if edge == 0:
                top = height - person_h * rng.uniform(0.45, 0.8)
            elif edge == 1:
                cx = rng.uniform(-0.1, 0.05) * width
            else:
                cx = rng.uniform(0.95, 1.1) * width
        placed = fig.transformed(person_h, angle, np.array([cx, top]))
        if depth_rng is not None:
            height_m = depth_rng.uniform(1.55, 1.9)  # the figure's height in metres
            depth_m = _lift_depth(fig, depth_rng) * height_m
            root_z = focal * height_m / person_h  # its hips' distance from the camera
            # camera-frame metres of the skeleton whose projection is drawn
            xy = (placed.keypoints - principal) * (root_z / focal)
            cameras.append((np.column_stack([xy, root_z + depth_m]), root_z))
            placed = _perspective(placed, depth_m, principal, root_z)
        else:
            cameras.append(None)
        _draw_figure(canvas, owner, placed, rng)
        figures.append(placed)
    for fig in figures:
        if rng.random() < 0.25:
            lo, hi = fig.keypoints.min(0), fig.keypoints.max(0)
            _draw_occluder(canvas, rng, np.array([lo[0], lo[1], hi[0], hi[1]]))
    anns: list[dict[str, Any]] = []
    for owner, fig in enumerate(figures):
        ann = _annotate(canvas, owner, fig, first_ann_id + len(anns), image_id)
        if ann is not None:
            camera = cameras[owner]
            if camera is not None:
                points_3d, root_z = camera
                ann["keypoints_3d"] = np.round(points_3d, 5).reshape(-1).tolist()
                ann["camera_param"] = {
                    "f": [focal, focal],
                    "c": [float(principal[0]), float(principal[1])],
                }
                ann["root_z"] = round(float(root_z), 5)
            anns.append(ann)
    image = canvas.image
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5]))
        image = cv2.GaussianBlur(image, (k, k), 0)
    dets = _simulated_detections(rng, anns, image_id, width, height)
    return image, anns, dets


def make_dataset(
    out_dir: str | Path,
    n_images: int,
    seed: int = 0,
    *,
    split: str = "val",
    image_format: str = "jpg",
    progress: bool = True,
    depth: bool = False,
) -> SyntheticDataset:
    """Write images, a COCO-WholeBody annotation file and a person-detection file.

    ``depth`` draws 3D figures (see :func:`render_image`): the same layout, with 3D
    ground truth in every annotation, under ``annotations/coco_wholebody3d_<split>.json``.

    Layout (mirrors COCO-WholeBody's): ``images/<split>/000000000001.jpg``,
    ``annotations/coco_wholebody_<split>_v1.0.json``,
    ``detections/<split>_person_detections.json``.
    """
    if n_images < 1:
        raise ValueError("n_images must be at least 1")
    if image_format not in ("jpg", "png"):
        raise ValueError("image_format must be 'jpg' or 'png'")
    root = Path(out_dir)
    image_dir = root / "images" / split
    image_dir.mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    (root / "detections").mkdir(exist_ok=True)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpg" else []
    iterator = tqdm(range(n_images), desc=f"synthetic {split}", disable=not progress, unit="img")
    for index in iterator:
        image_id = index + 1
        rng = np.random.default_rng([seed, index])
        depth_rng = np.random.default_rng([seed, index, 3]) if depth else None
        image, anns, dets = render_image(
            rng, image_id, first_ann_id=len(annotations) + 1, depth_rng=depth_rng
        )
        file_name = f"{image_id:012d}.{image_format}"
        if not cv2.imwrite(str(image_dir / file_name), image, params):
            raise OSError(f"could not write {image_dir / file_name}")
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": image.shape[1],
                "height": image.shape[0],
            }
        )
        annotations.extend(anns)
        detections.extend(dets)
    ann_file = root / "annotations" / annotation_name(split, depth)
    det_file = root / "detections" / f"{split}_person_detections.json"
    coco = {
        "info": {
            "description": f"rtmw synthetic COCO-WholeBody{' 3D' if depth else ''}, seed {seed}",
            "version": "1.0",
            "rtmw_generator": GENERATOR_VERSION,
            "seed": seed,
            **({"depth": True} if depth else {}),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }
    ann_file.write_text(json.dumps(coco))
    det_file.write_text(json.dumps(detections))
    logger.info("wrote %d images, %d persons to %s", len(images), len(annotations), root)
    return SyntheticDataset(root, image_dir, ann_file, det_file, len(images), len(annotations))


def annotation_name(split: str, depth: bool = False) -> str:
    return f"coco_wholebody3d_{split}.json" if depth else f"coco_wholebody_{split}_v1.0.json"


def existing_dataset(
    out_dir: str | Path, split: str, *, depth: bool = False
) -> SyntheticDataset | None:
    """A split written earlier by this generator version, or None (then write it anew)."""
    root = Path(out_dir)
    ann_file = root / "annotations" / annotation_name(split, depth)
    det_file = root / "detections" / f"{split}_person_detections.json"
    if not (ann_file.is_file() and det_file.is_file()):
        return None
    try:
        coco = json.loads(ann_file.read_text())
    except (OSError, ValueError):
        return None
    if coco.get("info", {}).get("rtmw_generator") != GENERATOR_VERSION:
        return None
    image_dir = root / "images" / split
    if not all((image_dir / image["file_name"]).is_file() for image in coco["images"]):
        return None
    return SyntheticDataset(
        root, image_dir, ann_file, det_file, len(coco["images"]), len(coco["annotations"])
    )


def training_splits(
    out_dir: str | Path,
    count: int,
    seed: int,
    *,
    depth: bool = False,
    reuse: bool = False,
    progress: bool = True,
) -> tuple[SyntheticDataset, SyntheticDataset]:
    """(train, val) for ``rtmw-train --synthetic N``: N training images drawn with seed+1
    and N/20 (at least 10) validation images with seed+2, so the two never share a figure.
    ``reuse`` (a resumed run) keeps splits written earlier: they are seeded, hence equal."""
    if count < 1:
        raise UsageError(f"--synthetic needs a positive image count, got {count}")
    splits = {"train": (count, seed + 1), "val": (max(count // 20, 10), seed + 2)}
    made: dict[str, SyntheticDataset] = {}
    for split, (images, split_seed) in splits.items():
        found = existing_dataset(out_dir, split, depth=depth) if reuse else None
        made[split] = found or make_dataset(
            out_dir, images, split_seed, split=split, progress=progress, depth=depth
        )
    return made["train"], made["val"]
