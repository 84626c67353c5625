"""COCO-WholeBody evaluation: perfect predictions, monotonic damage, hand-computed OKS."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import xtcocotools_usable

from rtmw.data.evaluation import evaluate_wholebody, instance_result, oks, rescore_and_nms
from rtmw.data.synthetic import SyntheticDataset
from rtmw.data.wholebody import PART_SLICES, PARTS, SIGMAS, load_annotations
from rtmw.errors import DataError

usable, reason = xtcocotools_usable()
pytestmark = [pytest.mark.eval, pytest.mark.skipif(not usable, reason=reason)]


def _gt_results(dataset: SyntheticDataset, noise: float = 0.0, seed: int = 0) -> list[dict]:
    """Ground truth as predictions; unlabelled points sit at the box centre, as a model's would."""
    anns = load_annotations(dataset.ann_file)
    rng = np.random.default_rng(seed)
    results = []
    for person in anns.persons:
        kpts = person.keypoints[:, :2].copy()
        labelled = person.keypoints[:, 2] > 0
        x, y, w, h = person.bbox_xywh
        kpts[~labelled] = (x + w / 2, y + h / 2)
        direction = rng.normal(size=kpts.shape)
        kpts += direction * noise * math.sqrt(person.area)
        results.append(
            instance_result(person.image_id, kpts, np.ones(133), bbox_score=1.0, area=float(w * h))
        )
    return results


def test_ground_truth_scores_one_on_every_part(synthetic_val: SyntheticDataset) -> None:
    evaluation = evaluate_wholebody(
        synthetic_val.ann_file, _gt_results(synthetic_val), box_source="gt"
    )
    for part in PARTS:
        assert evaluation.parts[part].ap == pytest.approx(1.0), part
        assert evaluation.parts[part].ar == pytest.approx(1.0), part
    assert evaluation.box_source == "gt"
    assert set(evaluation.to_dict()["parts"]) == set(PARTS)


def test_perturbation_lowers_ap_monotonically(synthetic_val: SyntheticDataset) -> None:
    aps = []
    for noise in (0.0, 0.01, 0.03, 0.08):
        evaluation = evaluate_wholebody(synthetic_val.ann_file, _gt_results(synthetic_val, noise))
        aps.append([evaluation.parts[p].ap for p in PARTS])
    table = np.array(aps)
    assert np.all(np.diff(table, axis=0) <= 1e-9), table
    assert np.all(table[-1] < table[0] - 0.2), table


def _tiny_annotation(tmp_path: Path, area: float) -> tuple[Path, np.ndarray]:
    body = np.array([[100 + 10 * i, 200 + 5 * i, 2] for i in range(17)], float)
    ann = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 640, "height": 480}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {
                "id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": area,
                "bbox": [90, 190, 200, 120], "num_keypoints": 17,
                "keypoints": body.reshape(-1).tolist(), "foot_kpts": [0.0] * 18,
                "face_kpts": [0.0] * 204, "lefthand_kpts": [0.0] * 63, "righthand_kpts": [0.0] * 63,
            }
        ],
    }  # fmt: skip
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(ann))
    return path, body


def test_hand_computed_oks_matches_evaluator(tmp_path: Path) -> None:
    area = 9000.0
    path, body = _tiny_annotation(tmp_path, area)
    shift = 7.0  # pixels, every body keypoint moved right
    sig = np.array(SIGMAS[:17])
    by_hand = float(np.mean(np.exp(-(shift**2) / (2 * area * (2 * sig) ** 2))))
    assert oks(body[:, :2], body[:, :2] + [shift, 0], area, SIGMAS[:17]) == pytest.approx(by_hand)
    prediction = np.zeros((133, 2))
    prediction[:17] = body[:, :2] + [shift, 0]
    prediction[17:] = (190, 250)  # unlabelled parts: inside the box
    result = instance_result(1, prediction, np.ones(133), bbox_score=1.0, area=area)
    evaluation = evaluate_wholebody(path, [result], rescore=False)
    thresholds = np.arange(0.5, 0.951, 0.05)
    assert 0.5 < by_hand < 0.95  # the case is informative
    assert evaluation.parts["body"].ap == pytest.approx(np.mean(thresholds <= by_hand + 1e-12))


def test_rescoring_and_oks_nms_as_mmpose() -> None:
    base = np.tile(np.array([[100.0, 100.0]]), (133, 1)) + np.arange(133)[:, None]
    scores = np.full(133, 0.1)
    scores[:10] = 0.8  # only scores above 0.2 count in the mean
    a = instance_result(1, base, scores, bbox_score=0.5, area=5000)
    duplicate = instance_result(1, base + 0.5, np.full(133, 0.6), bbox_score=0.9, area=5000)
    far = instance_result(1, base + 300, np.full(133, 0.6), bbox_score=0.9, area=5000)
    kept = rescore_and_nms([a, duplicate, far])
    assert len(kept) == 2  # the near-duplicate with the lower rescored score is suppressed
    assert {round(k["score"], 6) for k in kept} == {round(0.9 * 0.6, 6)}
    rescored_a = rescore_and_nms([a], nms_thr=None)[0]["score"]
    assert rescored_a == pytest.approx(0.5 * 0.8)


def test_results_for_unknown_images_refused(synthetic_val: SyntheticDataset) -> None:
    bogus = instance_result(999_999, np.zeros((133, 2)), np.ones(133), bbox_score=1, area=1)
    with pytest.raises(DataError, match="absent from"):
        evaluate_wholebody(synthetic_val.ann_file, [bogus])


def test_malformed_result_refused(synthetic_val: SyntheticDataset) -> None:
    with pytest.raises(DataError, match="face_kpts must hold 204 values"):
        evaluate_wholebody(
            synthetic_val.ann_file,
            [
                {
                    "image_id": 1,
                    "keypoints": [0] * 51,
                    "foot_kpts": [0] * 18,
                    "face_kpts": [],
                    "lefthand_kpts": [0] * 63,
                    "righthand_kpts": [0] * 63,
                    "score": 1,
                }
            ],
        )


def test_result_file_round_trip(synthetic_val: SyntheticDataset, tmp_path: Path) -> None:
    """Results as mmpose writes them (already rescored, no bbox_score) are taken as final."""
    final = [
        {k: v for k, v in r.items() if k not in ("bbox_score", "area")}
        for r in _gt_results(synthetic_val)
    ]
    path = tmp_path / "results.keypoints.json"
    path.write_text(json.dumps(final))
    evaluation = evaluate_wholebody(synthetic_val.ann_file, path)
    assert evaluation.parts["wholebody"].ap == pytest.approx(1.0)


def test_part_slices_cover_133() -> None:
    covered = sorted(i for p in PARTS[:-1] for i in range(133)[PART_SLICES[p]])
    assert covered == list(range(133))


def test_readme_flow_end_to_end(synthetic_val: SyntheticDataset, rtmw_m_checkpoint: Path) -> None:
    """Checkpoint → TopDown on detector boxes → results → six-part evaluation."""
    import cv2
    import torch

    from rtmw.data.wholebody import load_detections
    from rtmw.models import load_checkpoint
    from rtmw.pipeline import TopDown

    model, config = load_checkpoint(rtmw_m_checkpoint)

    def infer(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            x, y = model(torch.from_numpy(batch))
        return x.numpy(), y.numpy()

    pose = TopDown(infer, config.input_size)
    anns = load_annotations(synthetic_val.ann_file)
    dets = load_detections(synthetic_val.det_file)
    results = []
    for image_id, image_dets in list(dets.items())[:4]:
        image = cv2.imread(str(synthetic_val.image_dir / anns.images[image_id].file_name))
        out = pose(image, np.stack([d.bbox_xyxy for d in image_dets]))
        for i, det in enumerate(image_dets):
            results.append(
                instance_result(
                    image_id,
                    out.keypoints[i],
                    out.scores[i],
                    bbox_score=det.score,
                    area=float(out.areas[i]),
                )
            )
    evaluation = evaluate_wholebody(synthetic_val.ann_file, results, box_source="detector")
    assert evaluation.box_source == "detector"
    assert evaluation.num_instances >= 1
    for part in PARTS:  # random weights: defined, bounded, and far from perfect
        assert 0.0 <= evaluation.parts[part].ap < 0.5


def test_image_subset_scores_only_those_images(synthetic_val: SyntheticDataset) -> None:
    """A partial run scored on its own images is perfect; scored on all, misses count."""
    anns = load_annotations(synthetic_val.ann_file)
    subset = sorted(anns.images)[: len(anns.images) // 2]
    partial = [r for r in _gt_results(synthetic_val) if r["image_id"] in subset]
    on_subset = evaluate_wholebody(synthetic_val.ann_file, partial, image_ids=subset)
    on_all = evaluate_wholebody(synthetic_val.ann_file, partial)
    assert on_subset.ap("wholebody") == pytest.approx(1.0)
    assert on_all.parts["wholebody"].ar < 0.9
    with pytest.raises(DataError, match="absent"):
        evaluate_wholebody(synthetic_val.ann_file, partial, image_ids=[10**9])


def test_eval_set_boxes_and_prediction_loop(synthetic_val: SyntheticDataset) -> None:
    """GT and detector boxes both feed the shared predict/evaluate loop."""
    from rtmw.data.evalset import load_eval_set
    from rtmw.harness import evaluate_pose
    from rtmw.pipeline import TopDown

    gt = load_eval_set(synthetic_val.image_dir, synthetic_val.ann_file, limit=3)
    dets = load_eval_set(
        synthetic_val.image_dir, synthetic_val.ann_file, synthetic_val.det_file, limit=3
    )
    assert gt.box_source == "gt" and dets.box_source == "detector"
    assert all((item.box_scores == 1).all() for item in gt.items)
    assert len(gt.items) <= 3 and gt.num_instances >= len(gt.items)

    def centre_guess(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(batch)
        x = np.zeros((n, 133, 384), np.float32)
        y = np.zeros((n, 133, 512), np.float32)
        x[..., 192] = 1.0
        y[..., 256] = 1.0
        return x, y

    evaluation, raw = evaluate_pose(TopDown(centre_guess, (192, 256), flip_test=False), gt)
    assert set(raw) == {item.image_id for item in gt.items}
    assert evaluation.num_images == len(gt.items)
    assert evaluation.ap("wholebody") < 0.2  # every keypoint at the box centre
