"""COCO-WholeBody v1.0 keypoint metadata: the 133 keypoints, their parts, OKS sigmas,
flip pairs and skeleton. A leaf: the pipeline, data, models and evaluation all read it.

Keypoint order is body (17), foot (6), face (68), left hand (21), right hand (21), as
in the annotation files' ``keypoints``, ``foot_kpts``, ``face_kpts``,
``lefthand_kpts`` and ``righthand_kpts`` fields.
"""

from __future__ import annotations

NUM_KEYPOINTS = 133

BODY_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
FOOT_NAMES = (
    "left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)  # fmt: skip
FACE_NAMES = tuple(f"face-{i}" for i in range(68))
_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")


def _hand_names(side: str) -> tuple[str, ...]:
    return (
        f"{side}_hand_root",
        *(f"{side}_{finger}{joint}" for finger in _FINGERS for joint in range(1, 5)),
    )


KEYPOINT_NAMES: tuple[str, ...] = (
    BODY_NAMES + FOOT_NAMES + FACE_NAMES + _hand_names("left") + _hand_names("right")
)

# Parts in file order; each is (annotation field, slice into the 133).
PART_FIELDS: dict[str, str] = {
    "body": "keypoints",
    "foot": "foot_kpts",
    "face": "face_kpts",
    "lefthand": "lefthand_kpts",
    "righthand": "righthand_kpts",
}
PART_SLICES: dict[str, slice] = {
    "body": slice(0, 17),
    "foot": slice(17, 23),
    "face": slice(23, 91),
    "lefthand": slice(91, 112),
    "righthand": slice(112, 133),
    "wholebody": slice(0, 133),
}
PARTS: tuple[str, ...] = ("body", "foot", "face", "lefthand", "righthand", "wholebody")

# Per-keypoint OKS sigmas of COCO-WholeBody (body, foot, face, left hand, right hand).
_BODY_SIGMAS = (
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
    0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
)  # fmt: skip
_FOOT_SIGMAS = (0.068, 0.066, 0.066, 0.092, 0.094, 0.094)
_FACE_SIGMAS = (
    0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023, 0.029, 0.032, 0.037,
    0.038, 0.043, 0.041, 0.045, 0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011, 0.011, 0.013,
    0.015, 0.009, 0.007, 0.007, 0.007, 0.012, 0.009, 0.008, 0.016, 0.010, 0.017, 0.011, 0.009,
    0.011, 0.009, 0.007, 0.013, 0.008, 0.011, 0.012, 0.010, 0.034, 0.008, 0.008, 0.009, 0.008,
    0.008, 0.007, 0.010, 0.008, 0.009, 0.009, 0.009, 0.007, 0.007, 0.008, 0.011, 0.008, 0.008,
    0.008, 0.010, 0.008,
)  # fmt: skip
_HAND_SIGMAS = (
    0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024,
    0.022, 0.026, 0.017, 0.021, 0.021, 0.032, 0.020, 0.019, 0.022, 0.031,
)  # fmt: skip
SIGMAS: tuple[float, ...] = _BODY_SIGMAS + _FOOT_SIGMAS + _FACE_SIGMAS + _HAND_SIGMAS + _HAND_SIGMAS


def _face_flip_pairs() -> list[tuple[int, int]]:
    """Mirror pairs of the 68-point iBUG face layout (indices within the face)."""
    pairs = [(i, 16 - i) for i in range(8)]  # jaw contour 0–16, 8 is the chin
    pairs += [(17 + i, 26 - i) for i in range(5)]  # eyebrows
    pairs += [(31, 35), (32, 34)]  # nostrils; 27–30 and 33 lie on the midline
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    pairs += [(60, 64), (61, 63), (65, 67)]  # inner lips
    return pairs


def _flip_pairs() -> tuple[tuple[int, int], ...]:
    name_to_id = {n: i for i, n in enumerate(KEYPOINT_NAMES)}
    pairs: list[tuple[int, int]] = []
    for i, name in enumerate(KEYPOINT_NAMES):
        if name.startswith("left_"):
            pairs.append((i, name_to_id["right_" + name[len("left_") :]]))
    face = PART_SLICES["face"].start
    pairs += [(face + a, face + b) for a, b in _face_flip_pairs()]
    return tuple(sorted(pairs))


FLIP_PAIRS: tuple[tuple[int, int], ...] = _flip_pairs()


def _flip_indices() -> tuple[int, ...]:
    indices = list(range(NUM_KEYPOINTS))
    for a, b in FLIP_PAIRS:
        indices[a], indices[b] = b, a
    return tuple(indices)


FLIP_INDICES: tuple[int, ...] = _flip_indices()


def _hand_links(root: int) -> list[tuple[int, int]]:
    links = []
    for finger in range(5):
        first = root + 1 + 4 * finger
        links.append((root, first))
        links += [(first + j, first + j + 1) for j in range(3)]
    return links


# fmt: off
_BODY_FOOT_LINKS = [
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    (15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22),
]
# fmt: on
SKELETON: tuple[tuple[int, int], ...] = (
    *_BODY_FOOT_LINKS,
    *_hand_links(PART_SLICES["lefthand"].start),
    *_hand_links(PART_SLICES["righthand"].start),
)


def part_of(index: int) -> str:
    for part, sl in PART_SLICES.items():
        if part != "wholebody" and sl.start <= index < sl.stop:
            return part
    raise IndexError(index)
