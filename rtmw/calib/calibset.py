"""Calibration sets: real person crops made by the inference pipeline, hashed, reproducible.

A calibration set is one ``.npz`` holding the normalised crops exactly as
``rtmw.pipeline`` feeds them to a model, the boxes and image ids they came from, and a
manifest (source image hashes, input size, normalisation, sampling seed, part shares,
sha256 of the tensor data). Loading re-hashes the tensors; a set that does not match
its manifest, has too few crops, or looks like noise rather than images is refused.
There is no random-data fallback anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rtmw.data.evalset import read_image
from rtmw.data.wholebody import PART_SLICES, load_annotations, load_detections
from rtmw.errors import CalibrationError, DataError
from rtmw.hashing import sha256_file
from rtmw.pipeline.preprocess import BBOX_PADDING, MEAN_RGB, STD_RGB, preprocess
from rtmw.schemas import CALIBRATION

logger = logging.getLogger(__name__)

SCHEMA = CALIBRATION.tag
# crop sides (pixels) a model input can have: anything else is a typo, not a model
INPUT_SIDE_RANGE = (16, 4096)
MANIFEST_KEYS = CALIBRATION.keys
MIN_CROPS = 32
CROPS, FRAMES = "crops", "frames"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
HAND_MIN_KEYPOINTS = 8  # of 21 labelled: the hand is really in the crop
FACE_MIN_KEYPOINTS = 20  # of 68


@dataclass
class CalibrationSet:
    inputs: np.ndarray  # (N, 3, H, W) float32, normalised RGB
    boxes: np.ndarray  # (N, 4) xyxy in source-image pixels
    image_ids: np.ndarray  # (N,)
    manifest: dict[str, Any]
    path: Path | None = None

    @property
    def input_size(self) -> tuple[int, int]:
        width, height = self.manifest["input_size"]
        return int(width), int(height)

    @property
    def sha256(self) -> str:
        return str(self.manifest["tensor_sha256"])

    @property
    def kind(self) -> str:
        """ "crops" (person crops for a pose model) or "frames" (letterboxed whole frames for
        a person detector); sets written before frames existed are crops."""
        return str(self.manifest.get("normalisation", {}).get("kind", CROPS))

    def __len__(self) -> int:
        return len(self.inputs)

    def split(self, holdout: int) -> tuple[np.ndarray, np.ndarray]:
        """(calibration crops, held-out crops): the tail is kept for verification."""
        holdout = min(holdout, len(self) // 4)
        return self.inputs[: len(self) - holdout], self.inputs[len(self) - holdout :]

    def describe(self) -> dict[str, Any]:
        """What an artifact manifest records about the set it was calibrated on."""
        return {
            "path": str(self.path) if self.path else None,
            "sha256": self.sha256,
            "kind": self.kind,
            "n": len(self),
            "input_size": list(self.input_size),
            "shares": self.manifest.get("shares"),
            "seed": self.manifest.get("seed"),
        }


def tensor_sha256(inputs: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(str(inputs.dtype).encode() + str(inputs.shape).encode())
    digest.update(np.ascontiguousarray(inputs).tobytes())
    return digest.hexdigest()


def neighbour_correlation(inputs: np.ndarray, samples: int = 16) -> float:
    """Mean correlation of horizontally adjacent pixels: ~0.9 for images, ~0 for noise."""
    picked = inputs[:: max(1, len(inputs) // samples)][:samples]
    left = picked[..., :, :-1].reshape(len(picked), -1)
    right = picked[..., :, 1:].reshape(len(picked), -1)
    values = []
    for a, b in zip(left, right, strict=True):
        if a.std() < 1e-6 or b.std() < 1e-6:
            values.append(0.0)
            continue
        values.append(float(np.corrcoef(a, b)[0, 1]))
    return float(np.mean(values))


@dataclass
class _Candidate:
    image_id: int
    box: np.ndarray
    hand: bool
    face: bool
    ann_id: int = field(default=-1)


def _candidates_from_annotations(ann_file: str | Path) -> list[_Candidate]:
    anns = load_annotations(ann_file)
    found = []
    for person in anns.persons:
        labelled = person.keypoints[:, 2] > 0
        if person.iscrowd or labelled.sum() == 0:
            continue
        hand = any(
            labelled[PART_SLICES[p]].sum() >= HAND_MIN_KEYPOINTS for p in ("lefthand", "righthand")
        )
        face = bool(labelled[PART_SLICES["face"]].sum() >= FACE_MIN_KEYPOINTS)
        found.append(_Candidate(person.image_id, person.bbox_xyxy, hand, face, person.id))
    return found


def _candidates_from_boxes(boxes_file: str | Path, min_score: float) -> list[_Candidate]:
    detections = load_detections(boxes_file, min_score=min_score)
    return [
        _Candidate(image_id, det.bbox_xyxy, False, False)
        for image_id, dets in sorted(detections.items())
        for det in dets
    ]


def _stratified(
    candidates: list[_Candidate], n: int, seed: int, hand_share: float, face_share: float
) -> list[_Candidate]:
    """Fill quotas for hands and faces first (as far as the data has them), then the rest."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(candidates))
    chosen: list[int] = []
    taken = set()
    for wanted, has in ((hand_share, "hand"), (face_share, "face")):
        quota = math.ceil(wanted * n)
        have = sum(getattr(candidates[i], has) for i in chosen)
        for i in order:
            if have >= quota or len(chosen) >= n:
                break
            if i not in taken and getattr(candidates[i], has):
                chosen.append(int(i))
                taken.add(int(i))
                have += 1
    for i in order:
        if len(chosen) >= n:
            break
        if int(i) not in taken:
            chosen.append(int(i))
            taken.add(int(i))
    return [candidates[i] for i in chosen]


def build_calibration_set(
    image_dir: str | Path,
    *,
    input_size: tuple[int, int],
    ann_file: str | Path | None = None,
    boxes_file: str | Path | None = None,
    n: int = 512,
    seed: int = 0,
    hand_share: float = 0.4,
    face_share: float = 0.4,
    min_box_score: float = 0.5,
    progress: bool = True,
) -> CalibrationSet:
    """Sample ``n`` person crops (seeded, stratified) and preprocess them like inference."""
    low, high = INPUT_SIDE_RANGE
    if len(input_size) != 2 or min(input_size) < low or max(input_size) > high:
        raise CalibrationError(
            f"input size {input_size[0]}x{input_size[1]} is not a model input (WIDTHxHEIGHT, "
            "e.g. 192x256)"
        )
    if (ann_file is None) == (boxes_file is None):
        raise CalibrationError("give exactly one of an annotation file or a boxes file")
    if n < MIN_CROPS:
        raise CalibrationError(f"--n {n}: a calibration set needs at least {MIN_CROPS} crops")
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DataError(f"image folder not found: {image_dir}")
    if ann_file is not None:
        candidates = _candidates_from_annotations(ann_file)
        names = {i: r.file_name for i, r in load_annotations(ann_file).images.items()}
        source = {"annotations": str(ann_file), "sha256": sha256_file(Path(ann_file))}
    else:
        assert boxes_file is not None
        candidates = _candidates_from_boxes(boxes_file, min_box_score)
        names = {c.image_id: f"{c.image_id:012d}.jpg" for c in candidates}
        source = {"boxes": str(boxes_file), "sha256": sha256_file(Path(boxes_file))}
    if len(candidates) < n:
        raise CalibrationError(
            f"only {len(candidates)} person crops available, --n {n} requested: add images "
            "or lower --n"
        )
    chosen = _stratified(candidates, n, seed, hand_share, face_share)
    by_image: dict[int, list[int]] = {}
    for index, cand in enumerate(chosen):
        by_image.setdefault(cand.image_id, []).append(index)
    width, height = input_size
    inputs = np.empty((n, 3, height, width), np.float32)
    image_hashes: dict[str, str] = {}
    for image_id, indices in tqdm(
        sorted(by_image.items()), desc="calibration crops", unit="img", disable=not progress
    ):
        path = image_dir / names[image_id]
        if not path.is_file():
            raise DataError(f"image of id {image_id} not found: {path}")
        image = read_image(path)
        image_hashes[names[image_id]] = sha256_file(path)
        boxes = np.stack([chosen[i].box for i in indices])
        inputs[indices] = preprocess(image, boxes, input_size).inputs
    known_parts = ann_file is not None
    shares = {
        "hands": float(np.mean([c.hand for c in chosen])) if known_parts else None,
        "face": float(np.mean([c.face for c in chosen])) if known_parts else None,
        "available_hands": float(np.mean([c.hand for c in candidates])) if known_parts else None,
        "available_face": float(np.mean([c.face for c in candidates])) if known_parts else None,
    }
    manifest = CALIBRATION.stamp({
        "input_size": [width, height],
        "n": n,
        "seed": seed,
        "normalisation": {
            "colour": "RGB (from BGR images)",
            "mean": MEAN_RGB.tolist(),
            "std": STD_RGB.tolist(),
            "bbox_padding": BBOX_PADDING,
            "warp": "rtmw.pipeline.preprocess (OpenCV 4.x fixed-point bilinear affine)",
        },
        "source": source,
        "images": image_hashes,
        "shares": shares,
        "requested_shares": {"hands": hand_share, "face": face_share},
        "tensor_sha256": tensor_sha256(inputs),
    })  # fmt: skip
    boxes_arr = np.stack([c.box for c in chosen]).astype(np.float32)
    ids = np.array([c.image_id for c in chosen], np.int64)
    return CalibrationSet(inputs, boxes_arr, ids, manifest)


def save_calibration_set(calib: CalibrationSet, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez(
        tmp,
        inputs=calib.inputs,
        boxes=calib.boxes,
        image_ids=calib.image_ids,
        manifest=np.array(json.dumps(calib.manifest, sort_keys=True)),
    )
    tmp.replace(path)
    calib.path = path
    return path


def load_calibration_set(path: str | Path) -> CalibrationSet:
    """Read and check a calibration set; every problem is one CalibrationError line."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration set not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            inputs = data["inputs"]
            boxes = data["boxes"]
            ids = data["image_ids"]
            manifest = json.loads(str(data["manifest"]))
    except (KeyError, ValueError, OSError, EOFError, json.JSONDecodeError,
            zipfile.BadZipFile) as exc:  # fmt: skip
        raise CalibrationError(
            f"{path}: not an rtmw calibration set, or a damaged one (needs inputs, boxes, "
            f"image_ids and a manifest; {type(exc).__name__})"
        ) from None
    if not isinstance(manifest, dict):
        raise CalibrationError(f"{path}: the calibration manifest must be a JSON object")
    problems = CALIBRATION.problems(manifest)
    if problems.unknown:
        raise CalibrationError(
            f"{path}: unknown calibration manifest key(s) {sorted(problems.unknown)}"
        )
    if problems.wrong_tag:
        raise CalibrationError(f"{path}: unknown calibration schema {problems.found_tag!r}")
    if inputs.dtype != np.float32 or inputs.ndim != 4 or inputs.shape[1] != 3:
        raise CalibrationError(f"{path}: inputs must be float32 (N,3,H,W), got {inputs.shape}")
    if len(inputs) < MIN_CROPS:
        raise CalibrationError(f"{path}: {len(inputs)} crops; at least {MIN_CROPS} are needed")
    if tensor_sha256(inputs) != manifest.get("tensor_sha256"):
        raise CalibrationError(f"{path}: tensor data does not match its manifest sha256")
    try:
        width, height = (int(v) for v in manifest["input_size"])
    except (KeyError, TypeError, ValueError):
        raise CalibrationError(f"{path}: the manifest has no valid input_size") from None
    if inputs.shape[2:] != (height, width):
        raise CalibrationError(
            f"{path}: crops are {inputs.shape[2:]}, manifest says {height}x{width}"
        )
    if not np.isfinite(inputs).all():
        raise CalibrationError(f"{path}: NaN or Inf in the crops")
    corr = neighbour_correlation(inputs)
    if corr < 0.5:
        raise CalibrationError(
            f"{path}: crops look like random noise (neighbouring-pixel correlation {corr:.2f}); "
            "calibrate on real person crops made by rtmw-calib"
        )
    return CalibrationSet(inputs, boxes, ids, manifest, path)


def build_frame_calibration_set(
    image_dir: str | Path,
    *,
    input_size: tuple[int, int],
    ann_file: str | Path | None = None,
    n: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> CalibrationSet:
    """Sample ``n`` whole frames (seeded) and letterbox them as the person detector's
    inference does (:func:`rtmw.pipeline.detect.letterbox`: mmdet's resize, pad 114, BGR
    mean/std). With ``ann_file`` only its images are candidates, and frames with persons
    are preferred, so calibration sees what the detector must find."""
    from rtmw.pipeline.detect import DetectorSpec, letterbox

    low, high = INPUT_SIDE_RANGE
    if len(input_size) != 2 or min(input_size) < low or max(input_size) > high:
        raise CalibrationError(f"input size {input_size} is not a detector input (e.g. 320x320)")
    if n < MIN_CROPS:
        raise CalibrationError(f"--n {n}: a calibration set needs at least {MIN_CROPS} frames")
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DataError(f"image folder not found: {image_dir}")
    persons: dict[str, int] = {}
    if ann_file is not None:
        annotations = load_annotations(ann_file)
        counts: dict[int, int] = {}
        for person in annotations.persons:
            counts[person.image_id] = counts.get(person.image_id, 0) + 1
        persons = {r.file_name: counts.get(i, 0) for i, r in annotations.images.items()}
        names = sorted(persons)
        source: dict[str, Any] = {"annotations": str(ann_file),
                                  "sha256": sha256_file(Path(ann_file))}  # fmt: skip
    else:
        names = sorted(p.name for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        source = {"folder": str(image_dir)}
    if len(names) < n:
        raise CalibrationError(
            f"only {len(names)} frames available in {image_dir}, --n {n} requested: add "
            "frames or lower --n"
        )
    rng = np.random.default_rng(seed)
    # frames with persons first (in a seeded order), then the rest
    order = rng.permutation(len(names))
    chosen = sorted(order, key=lambda i: persons.get(names[i], 1) == 0)[:n]
    spec = DetectorSpec(input_size=input_size, num_classes=1, person_class=0)
    width, height = input_size
    inputs = np.empty((n, 3, height, width), np.float32)
    boxes = np.empty((n, 4), np.float32)
    image_hashes: dict[str, str] = {}
    for slot, index in enumerate(tqdm(chosen, desc="calibration frames", unit="img",
                                      disable=not progress)):  # fmt: skip
        path = image_dir / names[index]
        if not path.is_file():
            raise DataError(f"image not found: {path}")
        image = read_image(path)
        image_hashes[names[index]] = sha256_file(path)
        inputs[slot], _ = letterbox(image, spec)
        boxes[slot] = (0, 0, image.shape[1], image.shape[0])
    with_persons = [persons[names[i]] > 0 for i in chosen] if persons else None
    manifest = CALIBRATION.stamp({
        "input_size": [width, height],
        "n": n,
        "seed": seed,
        "normalisation": {
            "kind": FRAMES,
            "colour": "BGR",
            "mean": list(spec.mean_bgr),
            "std": list(spec.std_bgr),
            "letterbox": "mmdet Resize(keep_ratio) + Pad(114), rtmw.pipeline.detect.letterbox",
        },
        "source": source,
        "images": image_hashes,
        "shares": {"with_persons": float(np.mean(with_persons)) if with_persons else None},
        "requested_shares": {},
        "tensor_sha256": tensor_sha256(inputs),
    })  # fmt: skip
    ids = np.arange(1, n + 1, dtype=np.int64)
    return CalibrationSet(inputs, boxes, ids, manifest)


def check_matches_model(
    calib: CalibrationSet, input_size: tuple[int, int], model: str, *, kind: str = CROPS
) -> None:
    """A set fits a model when its inputs are the model's size and kind (crops for a pose
    model, letterboxed frames for a detector)."""
    if calib.kind != kind:
        remedy = "rtmw-calib --frames" if kind == FRAMES else "rtmw-calib (person crops)"
        raise CalibrationError(
            f"{model} calibrates on {kind}, but this set holds {calib.kind}; build one with "
            f"{remedy}"
        )
    if calib.input_size != tuple(input_size):
        w, h = calib.input_size
        raise CalibrationError(
            f"calibration crops are {h}x{w} (HxW) but {model} takes "
            f"{input_size[1]}x{input_size[0]}; rebuild with rtmw-calib --input-size "
            f"{input_size[0]}x{input_size[1]}"
        )
