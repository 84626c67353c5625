"""The synthetic COCO-WholeBody generator: determinism, format, and figure semantics."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import xtcocotools_usable

from rtmw.data.synthetic import SyntheticDataset, make_dataset
from rtmw.data.wholebody import (
    FLIP_PAIRS,
    KEYPOINT_NAMES,
    PART_SLICES,
    SKELETON,
    load_annotations,
    load_detections,
)


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = make_dataset(tmp_path / "a", 4, seed=11, progress=False)
    b = make_dataset(tmp_path / "b", 4, seed=11, progress=False)
    c = make_dataset(tmp_path / "c", 4, seed=12, progress=False)
    assert a.ann_file.read_bytes() == b.ann_file.read_bytes()
    assert a.det_file.read_bytes() == b.det_file.read_bytes()
    for image in sorted(a.image_dir.iterdir()):
        assert image.read_bytes() == (b.image_dir / image.name).read_bytes()
    assert a.ann_file.read_bytes() != c.ann_file.read_bytes()


def test_loads_with_xtcocotools(synthetic_val: SyntheticDataset) -> None:
    usable, reason = xtcocotools_usable()
    if not usable:
        pytest.skip(reason)
    from xtcocotools.coco import COCO

    coco = COCO(str(synthetic_val.ann_file))
    assert len(coco.getImgIds()) == synthetic_val.num_images
    assert len(coco.getAnnIds()) == synthetic_val.num_persons


def test_files_are_complete_and_consistent(synthetic_val: SyntheticDataset) -> None:
    anns = load_annotations(synthetic_val.ann_file)
    raw = json.loads(synthetic_val.ann_file.read_text())
    for record in anns.images.values():
        image = cv2.imread(str(synthetic_val.image_dir / record.file_name))
        assert image is not None and image.shape[:2] == (record.height, record.width)
    for ann in raw["annotations"]:
        for key in ("face_box", "lefthand_box", "righthand_box", "face_valid", "foot_valid"):
            assert key in ann
    for person in anns.persons:
        record = anns.images[person.image_id]
        kpts = person.keypoints
        labelled = kpts[:, 2] > 0
        assert np.all(kpts[~labelled, :2] == 0)  # COCO convention for unlabelled points
        xs, ys = kpts[labelled, 0], kpts[labelled, 1]
        assert np.all((xs >= 0) & (xs < record.width) & (ys >= 0) & (ys < record.height))
        visible = kpts[:, 2] == 2
        x, y, w, h = person.bbox_xywh
        inside = (
            (kpts[visible, 0] >= x - 2) & (kpts[visible, 0] <= x + w + 2)
            & (kpts[visible, 1] >= y - 2) & (kpts[visible, 1] <= y + h + 2)
        )  # fmt: skip
        assert np.all(inside)
        for part in ("face", "lefthand", "righthand"):
            assert person.part_valid[part] == bool(np.any(labelled[PART_SLICES[part]]))
    dets = load_detections(synthetic_val.det_file)
    assert sum(len(v) for v in dets.values()) >= 0.8 * len(anns.persons)


def test_variety_truncation_and_occlusion(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, 40, seed=5, progress=False)
    anns = load_annotations(dataset.ann_file)
    persons = anns.persons
    assert len(persons) / dataset.num_images > 1.5
    vis = np.stack([p.keypoints[:, 2] for p in persons])
    assert np.any(vis == 1)  # occluded but labelled
    body_cut = np.mean((vis[:, :17] == 0).any(1) & (vis[:, :17] > 0).any(1))
    assert body_cut > 0.05  # some persons run off the border
    heights = np.array([p.bbox_xywh[3] for p in persons])
    assert heights.min() < 100 and heights.max() > 250
    hands = np.mean([p.part_valid["lefthand"] for p in persons])
    faces = np.mean([p.part_valid["face"] for p in persons])
    assert hands > 0.4 and faces > 0.4


def test_left_is_on_the_image_right_for_upright_figures(tmp_path: Path) -> None:
    """Frontal figures: the person's left shoulder/hip/eye lies at larger x."""
    dataset = make_dataset(tmp_path, 40, seed=6, progress=False)
    votes = []
    for person in load_annotations(dataset.ann_file).persons:
        k = person.keypoints
        for left, right in ((5, 6), (11, 12), (1, 2)):
            if k[left, 2] > 0 and k[right, 2] > 0:
                votes.append(k[left, 0] > k[right, 0])
    assert np.mean(votes) > 0.85


def test_hands_have_five_distinct_jointed_fingers(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path, 20, seed=8, progress=False)
    checked = 0
    for person in load_annotations(dataset.ann_file).persons:
        for part in ("lefthand", "righthand"):
            hand = person.keypoints[PART_SLICES[part]]
            if not np.all(hand[:, 2] > 0):
                continue
            checked += 1
            tips = hand[[4, 8, 12, 16, 20], :2]
            assert len({tuple(np.round(t, 1)) for t in tips}) == 5
            root = hand[0, :2]
            for f in range(1, 5):  # finger tips lie farther from the wrist than their base
                base, tip = hand[1 + 4 * f, :2], hand[4 + 4 * f, :2]
                assert np.linalg.norm(tip - root) > 0.6 * np.linalg.norm(base - root)
    assert checked >= 5


def test_metadata_tables_are_consistent() -> None:
    assert len(KEYPOINT_NAMES) == 133 and len(set(KEYPOINT_NAMES)) == 133
    for a, b in FLIP_PAIRS:
        assert a != b
    flat = [i for pair in FLIP_PAIRS for i in pair]
    assert len(flat) == len(set(flat))
    assert all(0 <= a < 133 and 0 <= b < 133 for a, b in SKELETON)


def test_training_splits_are_seeded_apart_and_reused_on_resume(tmp_path: Path) -> None:
    from rtmw.data.synthetic import training_splits
    from rtmw.errors import UsageError

    train_set, val_set = training_splits(tmp_path, 12, 21, progress=False)
    assert (train_set.num_images, val_set.num_images) == (12, 10)  # val: N/20, at least 10
    assert train_set.ann_file != val_set.ann_file
    first = train_set.ann_file.read_bytes()
    again, _ = training_splits(tmp_path, 12, 21, reuse=True, progress=False)
    assert again.ann_file.read_bytes() == first
    with pytest.raises(UsageError, match="positive image count"):
        training_splits(tmp_path, 0, 21)
