"""The RTMDet person detector: mmdet's layout loaded strictly, mmdet's test pipeline and
decode reproduced, exported through the registry and verified on decoded boxes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import has_module

from rtmw.calib import CalibrationSet
from rtmw.data.synthetic import SyntheticDataset
from rtmw.errors import InputError, NotRTMWError, StateDictMismatch
from rtmw.models import (
    DETECTOR_ZOO,
    build,
    build_detector,
    load_checkpoint,
    load_detector,
    save_checkpoint,
    save_detector_checkpoint,
)
from rtmw.models.rtmdet import RTMDetConfig
from rtmw.outputs import ModelOutputs
from rtmw.pipeline.detect import (
    DecodeSettings,
    DetectorSpec,
    Letterbox,
    decode_detections,
    letterbox,
    nms,
    person_boxes,
    rescale_size,
    resize_linear,
)

needs_onnx = pytest.mark.skipif(not has_module("onnxruntime"), reason="onnxruntime not installed")


@pytest.fixture(scope="module")
def nano_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rtmdet")
    return save_detector_checkpoint(build_detector("rtmdet-nano-person", seed=1),
                                    out / "rtmdet_nano_random.pth")  # fmt: skip


# parameters as mmdet's README publishes them (millions; person heads have 1 class)
PUBLISHED_PARAMS = {"rtmdet-s": 8.89, "rtmdet-m": 24.71, "rtmdet-l": 52.3, "rtmdet-x": 94.86,
                    "rtmdet-nano-person": 0.99}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_architecture_matches_published_parameter_counts(name: str) -> None:
    with torch.device("meta"):
        model = DETECTOR_ZOO[name]
        from rtmw.models.rtmdet import RTMDet

        count = sum(p.numel() for p in RTMDet(model).parameters())  # shared convs once
    published = PUBLISHED_PARAMS[name]
    digits = len(str(published).split(".")[1])  # as many decimals as the README gives
    assert round(count / 1e6, digits) == published


@pytest.mark.parametrize("name", ["rtmdet-nano-person", "rtmdet-m-person", "rtmdet-tiny"])
def test_mmdet_layout_loads_strictly_and_is_named_from_shapes(name: str, tmp_path: Path) -> None:
    model = build_detector(name, seed=0)
    path = save_detector_checkpoint(model, tmp_path / "det.pth")
    raw = torch.load(path, weights_only=True)
    keys = raw["state_dict"]
    assert ("bbox_head.rtm_cls.0.weight" in keys and "neck.out_convs.2.conv.weight" in keys) or (
        "neck.out_convs.2.depthwise_conv.conv.weight" in keys
    )
    assert raw["meta"]["dataset_meta"]["classes"][0] == "person"
    loaded, config = load_detector(path)
    assert config.name == name and config.exp_on_reg == DETECTOR_ZOO[name].exp_on_reg
    frame = torch.randn(1, 3, config.input_size[1], config.input_size[0])
    with torch.no_grad():
        for a, b in zip(model(frame), loaded(frame), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_shared_head_convs_are_seen_in_the_tensors(tmp_path: Path) -> None:
    path = save_detector_checkpoint(build_detector("rtmdet-m-person", seed=2), tmp_path / "m.pth")
    state = torch.load(path, weights_only=True)["state_dict"]
    assert torch.equal(state["bbox_head.cls_convs.0.0.conv.weight"],
                       state["bbox_head.cls_convs.2.0.conv.weight"])  # fmt: skip
    assert load_detector(path)[1].share_conv
    # levels with their own convs are another (custom) configuration, still strict
    state["bbox_head.cls_convs.2.0.conv.weight"] = (
        state["bbox_head.cls_convs.2.0.conv.weight"].clone() + 1
    )
    torch.save({"meta": {}, "state_dict": state}, tmp_path / "unshared.pth")
    _, config = load_detector(tmp_path / "unshared.pth")
    assert not config.share_conv and config.name.startswith("rtmdet-custom")


def test_exp_on_reg_comes_from_the_files_config_when_it_says(tmp_path: Path) -> None:
    cfg = "model = dict(bbox_head=dict(exp_on_reg=False))"  # mmengine's meta["cfg"] text
    model = build_detector("rtmdet-m-person", seed=3)
    path = save_detector_checkpoint(model, tmp_path / "m.pth", meta={"cfg": cfg})
    assert load_detector(path)[1].exp_on_reg is False


def test_pose_and_detector_checkpoints_are_not_confused(
    nano_checkpoint: Path, tmp_path: Path
) -> None:
    pose = save_checkpoint(build("rtmw-demo-256x192", seed=0), tmp_path / "pose.pth")
    with pytest.raises(NotRTMWError, match=r"mmpose pose checkpoint.*not a detector"):
        load_detector(pose)
    with pytest.raises(NotRTMWError, match=r"mmdet detector checkpoint.*not a pose model"):
        load_checkpoint(nano_checkpoint)
    state = torch.load(nano_checkpoint, weights_only=True)["state_dict"]
    state.pop("bbox_head.rtm_reg.1.bias")
    torch.save({"state_dict": state}, tmp_path / "cut.pth")
    with pytest.raises(StateDictMismatch, match=r"missing 1: bbox_head\.rtm_reg\.1\.bias"):
        load_detector(tmp_path / "cut.pth")
    other = {k.replace("rtm_cls", "gfl_cls"): v for k, v in state.items()}
    torch.save({"state_dict": other}, tmp_path / "gfl.pth")
    with pytest.raises(NotRTMWError, match="another family"):
        load_detector(tmp_path / "gfl.pth")


def test_inspect_names_a_detector(nano_checkpoint: Path, tmp_path: Path) -> None:
    from rtmw.cli.inspect import main

    result = CliRunner().invoke(main, [str(nano_checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    assert '"model": "rtmdet-nano-person"' in result.output
    assert '"task": "person detector"' in result.output
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    bad = CliRunner().invoke(main, [str(tmp_path / "junk.pth")])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1 and "error:" in bad.output


# -- pre-processing -------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_resize_is_opencv_inter_linear_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [(*rng.integers(2, 900, 2),), (2160, 3840), (37, 1300), (640, 640)]
    for height, width in sizes:
        image = rng.integers(0, 256, (int(height), int(width), 3), dtype=np.uint8)
        new_w, new_h, _ = rescale_size(int(width), int(height), (640, 640))
        ours = resize_linear(image, new_w, new_h)
        theirs = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(ours, theirs)


def test_letterbox_is_mmdets_resize_pad_and_normalise() -> None:
    spec = DetectorSpec(input_size=(640, 640), num_classes=1, person_class=0)
    frame = np.full((500, 1000, 3), 200, np.uint8)
    tensor, placed = letterbox(frame, spec)
    assert tensor.shape == (1, 3, 640, 640) and tensor.dtype == np.float32
    assert placed.resized == (640, 320) and placed.scale_x == 0.64 and placed.scale_y == 0.64
    mean, std = np.array(spec.mean_bgr), np.array(spec.std_bgr)
    np.testing.assert_allclose(tensor[0, :, 100, 100], (200 - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(tensor[0, :, 400, 100], (114 - mean) / std, rtol=1e-6)  # pad
    # mmcv's rounding of the new size: int(x * factor + 0.5)
    assert rescale_size(1001, 333, (640, 640))[:2] == (640, 213)
    for bad in (np.zeros((10, 10, 3), np.float32), np.zeros((10, 10), np.uint8), [[1]]):
        with pytest.raises(InputError, match="frame must be"):
            letterbox(bad, spec)  # type: ignore[arg-type]


# -- decoding -------------------------------------------------------------------------------
def _outputs(classes: int, size: int = 64, logit: float = -12.0) -> dict[str, np.ndarray]:
    arrays = {}
    for stride in (8, 16, 32):
        cells = size // stride
        arrays[f"cls_score_s{stride}"] = np.full((1, classes, cells, cells), logit, np.float32)
        arrays[f"bbox_pred_s{stride}"] = np.full((1, 4, cells, cells), 4.0, np.float32)
    return arrays


def test_decode_reproduces_mmdets_priors_distances_nms_and_rescale() -> None:
    spec = DetectorSpec(input_size=(64, 64), num_classes=80, person_class=0)
    arrays = _outputs(80)
    # a person at stride-8 cell (row 2, col 3): prior (24, 16), distances l,t,r,b
    arrays["cls_score_s8"][0, 0, 2, 3] = 3.0
    arrays["bbox_pred_s8"][0, :, 2, 3] = [10, 6, 20, 30]
    # a weaker person overlapping it (suppressed at IoU > 0.65) and a car over it (kept by
    # class-aware NMS, then dropped by the person filter)
    arrays["cls_score_s8"][0, 0, 2, 4] = 1.0
    arrays["bbox_pred_s8"][0, :, 2, 4] = [18, 6, 12, 30]
    arrays["cls_score_s8"][0, 2, 2, 3] = 4.0
    # a person with zero width (dropped by min_bbox_size 0)
    arrays["cls_score_s16"][0, 0, 1, 1] = 2.0
    arrays["bbox_pred_s16"][0, :, 1, 1] = [0, 5, 0, 5]
    placed = Letterbox(0.5, 0.5, (64, 64), (128, 128))  # the frame was twice the input
    everything = decode_detections(ModelOutputs(arrays), spec, [placed], person_only=False)[0]
    assert sorted(everything.labels.tolist()) == [0, 2]
    (found,) = decode_detections(ModelOutputs(arrays), spec, [placed])
    assert len(found) == 1 and found.labels[0] == 0
    np.testing.assert_allclose(found.boxes[0], np.array([14, 10, 44, 46]) * 2, rtol=1e-6)
    assert found.scores[0] == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-6)
    # clipping to the network input before rescaling (mmcv's Pad sets img_shape to it)
    arrays["bbox_pred_s8"][0, :, 2, 3] = [100, 100, 100, 100]
    (clipped,) = decode_detections(ModelOutputs(arrays), spec, [placed])
    np.testing.assert_allclose(clipped.boxes[0], [0, 0, 128, 128])


def test_decode_threshold_topk_and_max_per_image() -> None:
    spec = DetectorSpec(input_size=(64, 64), num_classes=1, person_class=0)
    placed = [Letterbox(1.0, 1.0, (64, 64), (64, 64))]
    empty = decode_detections(ModelOutputs(_outputs(1)), spec, placed)[0]
    assert len(empty) == 0 and empty.boxes.shape == (0, 4)  # nothing above 0.001
    crowd = _outputs(1, logit=5.0)
    for stride in (8, 16, 32):  # every prior a 2×2 box around itself
        crowd[f"bbox_pred_s{stride}"][:] = 1.0
    (found,) = decode_detections(ModelOutputs(crowd), spec, placed)
    # the 16 + 4 coarser priors sit on stride-8 priors: the same boxes, suppressed (IoU 1)
    assert len(found) == 64
    (capped,) = decode_detections(ModelOutputs(crowd), spec, placed,
                                  DecodeSettings(max_per_img=10, nms_pre=20))  # fmt: skip
    assert len(capped) == 10
    with pytest.raises(InputError, match="does not fit"):
        decode_detections(ModelOutputs(_outputs(1, size=96)), spec, placed)


def test_thousand_boxes_and_the_pose_handoff() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 1000, (1000, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(20, 200, (1000, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 1000).astype(np.float32)
    keep = nms(boxes, scores, 0.65)
    assert len(keep) and np.all(np.diff(scores[keep]) <= 0)
    from rtmw.pipeline.detect import Detections

    handed = person_boxes(Detections(boxes, scores, np.zeros(1000, np.int64)))
    assert handed.shape[1] == 4 and len(handed) <= len(keep)


# -- export ---------------------------------------------------------------------------------
@needs_onnx
def test_detector_exports_through_the_registry_and_verifies_on_boxes(
    nano_checkpoint: Path, tmp_path: Path
) -> None:
    import json

    from rtmw import runtimes
    from rtmw.export import export

    (result,) = export(nano_checkpoint, ["onnx"], tmp_path)
    assert result.status == "ok", result.reason
    manifest = json.loads((tmp_path / "onnx" / "artifact.json").read_text())
    assert manifest["detector"]["num_classes"] == 1 and manifest["num_keypoints"] == 0
    assert manifest["io"]["outputs"][0] == "cls_score_s8"
    v = manifest["verification"]
    assert v["matched"] >= 0.97 and v["reference_boxes"] > 0 and v["max_rel_diff"] < 1e-3
    assert set(v["outputs"]) == set(manifest["io"]["outputs"])
    with runtimes.open(tmp_path / "onnx") as runner:
        frame = cv2.cvtColor(np.full((240, 320, 3), 90, np.uint8), cv2.COLOR_RGB2BGR)
        spec = DetectorSpec.from_record(manifest["detector"], manifest["input_size"])
        tensor, placed = letterbox(frame, spec)
        (found,) = decode_detections(runner.infer(tensor), spec, [placed])
        assert found.boxes.shape[1] == 4
    (refused,) = export(nano_checkpoint, ["ort-int8"], tmp_path / "int8", calib=None)
    assert refused.status == "failed" and "calibration set" in refused.reason


def test_config_records_what_decoding_needs() -> None:
    config: RTMDetConfig = DETECTOR_ZOO["rtmdet-tiny"]
    spec = DetectorSpec.from_record(config.detector_record, config.input_size)
    assert spec.num_classes == 80 and spec.person_class == 0 and spec.strides == (8, 16, 32)


@needs_onnx
def test_bench_times_detector_frames_beside_pose_rows_and_scores_pose_on_its_boxes(
    nano_checkpoint: Path, synthetic_val: SyntheticDataset, tmp_path: Path
) -> None:
    """A detector row (frames/s, box AP, a --dets file) next to a pose row, and the pose
    model scored on that detector's boxes when --dets names the detector artifact."""
    from conftest import small_demo

    from rtmw.bench import BenchSettings, TimingPlan, bench, load_results
    from rtmw.export import export

    export(nano_checkpoint, ["onnx"], tmp_path / "det")
    export(small_demo(), ["onnx"], tmp_path / "pose")
    data = synthetic_val
    plan = TimingPlan(warmup_s=0, seconds=None, iters=2, repeats=1)
    settings = BenchSettings(
        batches=(1, 2),
        plan=plan,
        image_dir=str(data.image_dir),
        ann_file=str(data.ann_file),
        draw=0,
        limit=6,
    )
    run = bench([tmp_path / "det" / "onnx", tmp_path / "pose" / "onnx"], settings,
                tmp_path / "r", progress=False)  # fmt: skip
    detector, pose = run.entries
    assert (detector.name, detector.task, pose.name, pose.task) == (
        "det-onnx",
        "detect",
        "pose-onnx",
        "pose",
    )
    assert detector.ok and detector.frames_per_s and detector.frames_per_s > 0
    assert set(detector["latency"]) == {"1", "2"} and "e2e" not in detector
    assert detector.detection is not None and 0.0 <= detector.detection["ap"] <= 1.0
    assert (tmp_path / "r" / detector.detection["detections"]).is_file()
    # the hand-off file (score > 0.3, NMS 0.3) is a subset of every box, what --dets crops
    every = json.loads((tmp_path / "r" / detector.detection["detections"]).read_text())
    handoff = detector.detection["handoff"]
    handed = json.loads((tmp_path / "r" / handoff["file"]).read_text())
    assert (handoff["score_thr"], handoff["nms_thr"]) == (0.3, 0.3)
    assert len(handed) <= len(every) and all(d["score"] > 0.3 for d in handed)
    assert run.baseline is not None and run.baseline["artifact"] == "pose-onnx"
    text = (tmp_path / "r" / "results.md").read_text()
    assert "**Person detector**" in text and "rtmdet-nano-person" in text
    assert "<h2>Person detector</h2>" in (tmp_path / "r" / "index.html").read_text()
    on_boxes = bench([tmp_path / "pose" / "onnx"], BenchSettings(
        batches=(1,), plan=plan, image_dir=str(data.image_dir),
        ann_file=str(data.ann_file), det_file=str(tmp_path / "det" / "onnx"), draw=0,
        limit=6), tmp_path / "r2", progress=False)  # fmt: skip
    record = load_results(tmp_path / "r2").settings["data"]
    assert record["box_source"] == "detector" and record["detector"]["target"] == "onnx"
    (row,) = on_boxes.entries
    assert row.ok or "no images with person boxes" in row.reason
    with pytest.raises(Exception, match="a pose artifact, not a person detector"):
        bench([tmp_path / "pose" / "onnx"], BenchSettings(
            batches=(1,), plan=plan, image_dir=str(data.image_dir),
            ann_file=str(data.ann_file), det_file=str(tmp_path / "pose" / "onnx")),
            tmp_path / "r3", progress=False)  # fmt: skip


def test_nms_stopping_at_max_keep_keeps_what_a_full_pass_keeps_first() -> None:
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 300, (2000, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (2000, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 2000).astype(np.float32)
    full = nms(boxes, scores, 0.65)
    assert len(full) > 300
    np.testing.assert_array_equal(nms(boxes, scores, 0.65, max_keep=300), full[:300])


# -- calibration frames and training ---------------------------------------------------------
def test_frame_calibration_set_is_letterboxed_hashed_and_kept_apart_from_crops(
    frames_calib: CalibrationSet, calib_set: CalibrationSet, tmp_path: Path
) -> None:
    from rtmw.calib import load_calibration_set, save_calibration_set
    from rtmw.calib.calibset import check_matches_model
    from rtmw.errors import CalibrationError

    assert frames_calib.kind == "frames" and calib_set.kind == "crops"
    assert frames_calib.inputs.shape == (32, 3, 320, 320)
    assert frames_calib.manifest["shares"]["with_persons"] == 1.0
    # the letterbox's padding (114 in BGR, normalised) fills the bottom or right edge
    pad = (114.0 - np.asarray([103.53, 116.28, 123.675])) / np.asarray([57.375, 57.12, 58.395])
    corners = frames_calib.inputs[:, :, -1, -1]
    assert np.allclose(corners, pad.astype(np.float32), atol=1e-5)
    loaded = load_calibration_set(save_calibration_set(frames_calib, tmp_path / "f.npz"))
    assert loaded.kind == "frames" and loaded.sha256 == frames_calib.sha256
    check_matches_model(loaded, (320, 320), "rtmdet-nano-person", kind="frames")
    with pytest.raises(CalibrationError, match="calibrates on frames, but this set holds crops"):
        check_matches_model(calib_set, (192, 256), "rtmdet-nano-person", kind="frames")
    with pytest.raises(CalibrationError, match="calibrates on crops, but this set holds frames"):
        check_matches_model(loaded, (320, 320), "rtmw-demo", kind="crops")


def test_calib_cli_builds_frames(tmp_path: Path) -> None:
    from rtmw.cli.calib import main
    from rtmw.data.synthetic import make_dataset

    images = make_dataset(tmp_path / "src", 32, seed=4, progress=False).image_dir
    args = ["--frames", "--images", str(images), "--input-size", "320x320",
            "--n", "32", "--out", str(tmp_path / "frames.npz"), "-q"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "32 frames letterboxed to 320x320" in result.output
    too_many = CliRunner().invoke(main, [*args[:-5], "--n", "5000", "--out", "x.npz", "-q"])
    assert too_many.exit_code != 0 and "frames available" in too_many.output


def test_assigner_takes_priors_inside_each_box_and_losses_vanish_on_perfect_boxes() -> None:
    from rtmw.train.detection_targets import assign, box_iou, flat_priors, giou_loss

    priors = flat_priors((64, 64))
    gt = torch.tensor([[8.0, 8.0, 40.0, 56.0]])
    # predictions: every prior predicts the ground-truth box itself (IoU 1)
    pred = gt.expand(len(priors), 4).clone()
    found = assign(priors, torch.zeros(len(priors), 1), pred, gt, torch.zeros(1, dtype=torch.int64))
    chosen = priors[found.gt_index == 0]
    assert 1 <= len(chosen) <= 13
    inside = (chosen[:, 0] > 8) & (chosen[:, 0] < 40) & (chosen[:, 1] > 8) & (chosen[:, 1] < 56)
    assert bool(inside.all())
    assert torch.allclose(found.quality[found.gt_index == 0], torch.ones(len(chosen)))
    assert float(giou_loss(gt, gt)[0]) == pytest.approx(0.0, abs=1e-6)
    far = torch.tensor([[100.0, 100.0, 110.0, 110.0]])
    assert float(giou_loss(far, gt)[0]) > 1.0  # GIoU still pulls disjoint boxes together
    assert float(box_iou(gt, far)[0, 0]) == 0.0
    empty = assign(priors, torch.zeros(len(priors), 1), pred, torch.zeros(0, 4),
                   torch.zeros(0, dtype=torch.int64))  # fmt: skip
    assert bool((empty.gt_index == -1).all())


def test_rtmw_train_trains_a_detector_saved_in_mmdet_layout(tmp_path: Path) -> None:
    from rtmw.cli.train import main

    out = tmp_path / "run"
    args = ["--model", "rtmdet-nano-person", "--synthetic", "40", "--iters", "3",
            "--batch-size", "4", "--val-every", "3", "--val-count", "4", "--warmup", "1",
            "--out", str(out), "-q"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "validation person box AP" in result.output
    _, config = load_detector(out / "rtmdet-nano-person.pth")  # strict, mmdet's keys
    assert config.name == "rtmdet-nano-person"
    import json

    log = json.loads((out / "train_log.json").read_text())
    assert log["history"][-1]["iter"] == 3 and "val_box_ap" in log["history"][-1]
    assert set(log["final_box_ap"]) == {"ap", "ap50", "ap75", "ar100"}


# -- INT8 (the packaged demo detector: trained weights, so INT8 can be judged) ----------------
@needs_onnx
@pytest.mark.parametrize("target", ["ort-int8", "openvino-int8", "ncnn-int8"])
def test_demo_detector_int8_targets_verify_on_boxes(
    target: str, frames_calib: CalibrationSet, tmp_path: Path
) -> None:
    import json

    from rtmw.export import export
    from rtmw.models.detector_checkpoint import demo_detector_checkpoint

    (result,) = export(demo_detector_checkpoint(), [target], tmp_path, calib=frames_calib)
    if result.status == "skipped":
        pytest.skip(result.reason)
    assert result.status == "ok", result.reason
    manifest = json.loads((tmp_path / target / "artifact.json").read_text())
    v = manifest["verification"]
    assert v["matched"] >= 0.70 and v["reference_boxes"] > 0
    assert "calib_holdout" in v["inputs"] and "random" not in v["inputs"]
    assert manifest["calibration"]["sha256"] == frames_calib.sha256
    assert manifest["calibration"]["kind"] == "frames"
    assert manifest["detector"]["family"] == "rtmdet" and manifest["model"] == "rtmdet-nano-demo"


@needs_onnx
def test_detector_sensitivity_scan_ranks_blocks_by_box_damage(
    frames_calib: CalibrationSet, tmp_path: Path
) -> None:
    import json

    from rtmw.export import sensitivity_scan
    from rtmw.models.detector_checkpoint import demo_detector_checkpoint

    path, text = sensitivity_scan(demo_detector_checkpoint(), frames_calib, tmp_path,
                                  progress=False)  # fmt: skip
    rows = json.loads(path.with_suffix(".json").read_text())
    matched = [r["boxes_matched"] for r in rows]
    assert matched == sorted(matched)  # worst first
    blocks = {r["block"] for r in rows}
    assert {"backbone.stem", "bbox_head.rtm_cls.0"} <= blocks
    assert any(b.startswith("neck.") for b in blocks)  # the neck is found by its prefix
    kept = {r["block"] for r in rows if r["kept"]}
    assert kept == {f"bbox_head.{conv}.{level}" for conv in ("rtm_cls", "rtm_reg")
                    for level in range(3)}  # fmt: skip
    assert "Boxes matched" in text


@needs_onnx
@pytest.mark.parametrize(
    "target", ["onnx-fp16", "openvino-fp32", "openvino-fp16", "ncnn-fp32", "ncnn-fp16"]
)
def test_demo_detector_float_targets_verify_on_boxes(target: str, tmp_path: Path) -> None:
    """The float routes of each CPU runtime family on trained weights (LiteRT, ExecuTorch and
    bf16: results/demo-detector-training/export.md, slower to build)."""
    from rtmw.export import export
    from rtmw.export.family import BOX_TOLERANCES
    from rtmw.models.detector_checkpoint import demo_detector_checkpoint

    (result,) = export(demo_detector_checkpoint(), [target], tmp_path)
    if result.status == "skipped":
        pytest.skip(result.reason)
    assert result.status == "ok", result.reason
    v = json.loads((tmp_path / target / "artifact.json").read_text())["verification"]
    precision = "fp16" if target.endswith("fp16") else "fp32"
    assert v["matched"] >= BOX_TOLERANCES[precision].min_matched and v["reference_boxes"] > 100
