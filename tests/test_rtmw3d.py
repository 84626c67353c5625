"""RTMW3D: the family, strict loading, decoding, 3D data, 3D error, training and export."""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import has_module, xtcocotools_usable

from rtmw.data.evaluation3d import Matched3D, evaluate_matched, procrustes
from rtmw.data.synthetic import make_dataset
from rtmw.data.wholebody import load_annotations
from rtmw.errors import StateDictMismatch
from rtmw.models import RTMW, build, expected_layout, get_config, load_checkpoint, save_checkpoint
from rtmw.models.checkpoint import demo_checkpoint, lift_to_3d, read_checkpoint
from rtmw.models.macs import macs_per_crop
from rtmw.pipeline import DepthCodec, ModelOutputs, TopDown, decode_depth, fuse_flip
from rtmw.pipeline.decode import flip_simcc_x

# Counted on mmpose 1.3.2's modules with the project's source (issue #21): RTMW-l/x-384x288
# plus head.cls_z (256 → 576)
PUBLISHED_3D = {
    "rtmw3d-l-384x288": (57_501_751, 729, "rtmw-l-384x288"),
    "rtmw3d-x-384x288": (92_342_447, 837, "rtmw-x-384x288"),
}
# MACs per 288×384 crop, torch's FlopCounterMode on our modules: the 2D model's plus the
# z classifier's 133 × 256 × 576
MACS_3D = {"rtmw3d-l-384x288": 17_658_223_744, "rtmw3d-x-384x288": 29_257_923_712}


@pytest.mark.parametrize("name", sorted(PUBLISHED_3D))
def test_layout_counts_and_macs(name: str) -> None:
    params, tensors, two_d = PUBLISHED_3D[name]
    config = get_config(name)
    assert config.is_3d and config.depth_size == 288 and config.simcc_depth == 576
    assert config.output_names == ("simcc_x", "simcc_y", "simcc_z")
    layout = expected_layout(config)
    base = expected_layout(get_config(two_d))
    assert set(layout) - set(base) == {"head.cls_z.weight"}
    assert all(layout[k] == v for k, v in base.items())
    assert layout["head.cls_z.weight"] == (576, 256)
    with torch.device("meta"):
        model = RTMW(config)
    assert sum(p.numel() for p in model.parameters()) == params == config.num_parameters
    assert len(model.state_dict()) == tensors == config.num_state_tensors
    assert macs_per_crop(name) == MACS_3D[name]
    assert macs_per_crop(name) - macs_per_crop(two_d) == 133 * 256 * 576


@pytest.mark.parametrize("name", sorted(PUBLISHED_3D))
def test_random_init_checkpoint_loads_strictly(name: str, tmp_path: Path) -> None:
    """Saved exactly as mmpose saves it; identified from shapes (not from the file name)."""
    model = build(name, seed=3)
    path = save_checkpoint(model, tmp_path / "weights.pth")
    raw = torch.load(path, map_location="cpu", weights_only=False)
    assert set(raw) == {"meta", "state_dict"} and list(raw["state_dict"]) == list(
        model.state_dict()
    )
    loaded, config = load_checkpoint(path)
    assert config.name == name
    x = torch.randn(1, 3, 384, 288, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, out = model(x), loaded(x)
    assert [tuple(t.shape) for t in out] == [(1, 133, 576), (1, 133, 768), (1, 133, 576)]
    assert all(torch.equal(a, b) for a, b in zip(ref, out, strict=True))


def test_wrong_depth_bins_refused(tmp_path: Path) -> None:
    state = OrderedDict(build("rtmw3d-demo-wide-256x192", seed=0).state_dict())
    state["head.cls_z.weight"] = torch.zeros(384, 128)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(StateDictMismatch, match="cls_z"):
        load_checkpoint(path)


def test_lift_keeps_every_2d_tensor() -> None:
    contents = read_checkpoint(demo_checkpoint())
    model, config = lift_to_3d(contents, get_config("rtmw3d-demo-wide-256x192"))
    state = model.state_dict()
    assert set(state) - set(contents.state_dict) == {"head.cls_z.weight"}
    assert all(torch.equal(state[k], v) for k, v in contents.state_dict.items())
    assert config.extra["init_sha256"] == contents.sha256
    with pytest.raises(StateDictMismatch, match="cannot start"):
        lift_to_3d(contents, get_config("rtmw3d-l-384x288"))


def test_decode_depth_is_mmpose_simcc3d() -> None:
    """argmax bin, −1 where the score ≤ 0, / split, then [0, D] → [−z_range, z_range]."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, 133, 576)).astype(np.float32)
    scores = rng.standard_normal((2, 133)).astype(np.float32)
    got = decode_depth(z, scores, split_ratio=2.0, depth_size=288, z_range=2.1744869)
    loc = z.argmax(-1).astype(np.float64)
    loc[scores <= 0] = -1
    expected = (loc / 2.0 / 144.0 - 1.0) * 2.1744869
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    # the centre bin is the root's depth; the ends are ±z_range
    one = np.zeros((1, 1, 576), np.float32)
    one[0, 0, 288] = 1.0
    assert decode_depth(one, np.ones((1, 1)), split_ratio=2.0, depth_size=288,
                        z_range=2.0)[0, 0] == pytest.approx(0.0)  # fmt: skip


def test_flip_fusion_swaps_depth_without_mirroring() -> None:
    rng = np.random.default_rng(1)
    outs = [rng.standard_normal((1, 133, n)).astype(np.float32) for n in (384, 512, 384)]
    flipped = [rng.standard_normal((1, 133, n)).astype(np.float32) for n in (384, 512, 384)]
    from rtmw.keypoints import FLIP_INDICES

    names = ("simcc_x", "simcc_y", "simcc_z")
    fused = fuse_flip(
        ModelOutputs.from_sequence(names, outs),
        ModelOutputs.from_sequence(names, flipped),
        FLIP_INDICES,
    )
    assert fused.names == names
    index = list(FLIP_INDICES)
    np.testing.assert_allclose(fused["simcc_x"], (outs[0] + flip_simcc_x(flipped[0], index)) / 2)
    np.testing.assert_allclose(fused["simcc_z"], (outs[2] + flipped[2][:, index]) / 2)


def test_topdown_refuses_output_count_mismatch() -> None:
    from rtmw.errors import InputError

    def two(batch: np.ndarray) -> tuple[np.ndarray, ...]:
        n = len(batch)
        return np.zeros((n, 133, 384), np.float32), np.zeros((n, 133, 512), np.float32)

    image = np.zeros((300, 300, 3), np.uint8)
    pose = TopDown(two, (192, 256), depth=DepthCodec(192, 2.17))
    with pytest.raises(InputError, match="three simcc outputs"):
        pose(image, np.array([[10, 10, 200, 280]]))


def test_synthetic_3d_figures_project_exactly(tmp_path: Path) -> None:
    """The 2D labels are the pinhole projection of keypoints_3d; depth is root-relative
    to the hips; the same seed's 2D data (depth off) carries no 3D fields."""
    data = make_dataset(tmp_path / "d3", 8, seed=4, depth=True, progress=False)
    anns = load_annotations(data.ann_file)
    assert anns.persons and all(p.has_3d for p in anns.persons)
    for person in anns.persons:
        assert person.keypoints_3d is not None and person.camera is not None
        points = person.keypoints_3d
        uv = points[:, :2] / points[:, 2:] * np.asarray(person.camera["f"]) + person.camera["c"]
        labelled = person.keypoints[:, 2] > 0
        np.testing.assert_allclose(uv[labelled], person.keypoints[labelled, :2], atol=0.01)
        assert person.root_z == pytest.approx(points[[11, 12], 2].mean(), abs=1e-4)
        assert np.ptp(points[:, 2]) > 0.05  # real depth, not a flat figure
    flat = make_dataset(tmp_path / "d2", 8, seed=4, progress=False)
    assert not any(p.has_3d for p in load_annotations(flat.ann_file).persons)


def _matched(gt: np.ndarray, pred: np.ndarray) -> Matched3D:
    return Matched3D(gt, pred, np.ones(133, bool))


def test_mpjpe_and_pa_mpjpe() -> None:
    rng = np.random.default_rng(2)
    gt = rng.normal(0, 0.3, (133, 3)) + np.array([0.0, 0.0, 5.0])
    shifted = gt + np.array([0.1, -0.2, 0.3])  # a shift: the root alignment removes it
    perfect = evaluate_matched([_matched(gt, shifted)])
    assert perfect.mpjpe["wholebody"] == pytest.approx(0.0, abs=1e-9)
    offset = gt.copy()
    offset[91:112] += [0.01, 0.0, 0.0]  # the left hand 10 mm to the side
    hand = evaluate_matched([_matched(gt, offset)])
    assert hand.mpjpe["lefthand"] == pytest.approx(10.0, abs=1e-6)
    assert hand.mpjpe["body"] < hand.mpjpe["lefthand"]
    assert hand.local["lefthand"] == pytest.approx(0.0, abs=1e-6)  # wrist-aligned: rigid shift
    angle = 0.3
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0,
                                                                   np.cos(angle)]])  # fmt: skip
    turned = (gt - gt.mean(0)) @ rot.T * 1.1 + gt.mean(0)
    result = evaluate_matched([_matched(gt, turned)])
    assert result.mpjpe["wholebody"] > 20.0
    assert result.pa_mpjpe["wholebody"] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(procrustes(turned, gt), gt, atol=1e-9)


@pytest.mark.skipif(not xtcocotools_usable()[0], reason=xtcocotools_usable()[1])
def test_h3wb_json_release_read_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file in H3WB's JSON release layout (mm, joints by id) loads and evaluates like
    the COCO-WholeBody-3D file it was written from."""
    from rtmw.data.evalset import load_eval_set
    from rtmw.data.h3wb import as_coco, to_h3wb_json

    monkeypatch.setenv("RTMW_CACHE", str(tmp_path / "cache"))
    data = make_dataset(tmp_path / "d", 6, seed=5, depth=True, progress=False)
    coco = json.loads(data.ann_file.read_text())
    h3wb = tmp_path / "RGBto3D_train.json"
    h3wb.write_text(json.dumps(to_h3wb_json(coco)))
    converted = as_coco(h3wb, data.image_dir)
    assert converted != h3wb and as_coco(h3wb, data.image_dir) == converted  # cached
    ours = load_annotations(data.ann_file).persons
    theirs = load_annotations(converted).persons
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.keypoints_3d is not None and b.keypoints_3d is not None
        np.testing.assert_allclose(a.keypoints_3d, b.keypoints_3d, atol=1e-5)
        assert b.valid_3d is not None and b.valid_3d.all()
    eval_set = load_eval_set(data.image_dir, h3wb)
    assert eval_set.ann_file == converted and eval_set.num_instances == len(theirs)


def test_3d_targets_and_training_step(tmp_path: Path) -> None:
    """Targets peak where the codec maps the keypoint; two training iterations of a 3D
    model started from 2D weights give a loadable RTMW3D checkpoint."""
    from rtmw.train import TrainConfig, train
    from rtmw.train.targets import depth_labels, simcc3d_targets

    points = np.zeros((1, 133, 3))
    points[0, :, 2] = 5.0
    points[0, 0, 2] = 5.5  # the nose half a metre behind the hips
    depth = depth_labels(points, (11, 12), 2.0, 192)
    assert depth[0, 11] == pytest.approx(96.0) and depth[0, 0] == pytest.approx(96 + 24)
    kp = np.full((1, 133, 2), 50.0)
    _, _, tz, w = simcc3d_targets(kp, depth, np.ones((1, 133)), (192, 256), 192)
    assert tz.shape == (1, 133, 384) and int(tz[0, 0].argmax()) == 240 and w.all()
    data = make_dataset(tmp_path / "d", 6, seed=6, depth=True, progress=False)
    cfg = TrainConfig(
        model="rtmw3d-demo-wide-256x192", init=str(demo_checkpoint()),
        image_dir=str(data.image_dir), ann_file=str(data.ann_file), out_dir=str(tmp_path / "run"),
        iters=2, batch_size=4, warmup_iters=1, val_every=100, save_every=100, threads=2,
    )  # fmt: skip
    result = train(cfg, progress=False)
    assert all(np.isfinite(h["loss"]) for h in result.history)
    _, config = load_checkpoint(result.checkpoint)
    assert config.is_3d


@pytest.mark.onnx
@pytest.mark.skipif(not has_module("onnxruntime"), reason="onnxruntime not installed")
def test_export_verifies_all_three_outputs(tmp_path: Path) -> None:
    """The artifact names three outputs and records z figures; a z-only error is caught."""
    from rtmw import runtimes
    from rtmw.artifact import read_artifact
    from rtmw.export import export
    from rtmw.harness.verify import DEFAULT_TOLERANCES, compare, verification_inputs
    from rtmw.models.inference import TorchInference

    model, _ = lift_to_3d(read_checkpoint(demo_checkpoint()),
                          get_config("rtmw3d-demo-wide-256x192"))  # fmt: skip
    path = save_checkpoint(model, tmp_path / "r3d.pth")
    (result,) = export(path, ["onnx"], tmp_path / "out")
    assert result.status == "ok", result.line()
    manifest = read_artifact(tmp_path / "out" / "onnx").manifest
    assert manifest.io["outputs"] == ["simcc_x", "simcc_y", "simcc_z"]
    assert manifest.depth == {"depth_size": 192, "z_range": 2.1744869, "root_index": [11, 12]}
    v = manifest.verification
    assert v["max_abs_diff_z"] < 1e-3 and v["argmax_agreement_z"] == 1.0
    assert "z max|Δ|" in result.line()
    reference = TorchInference(model)
    inputs = verification_inputs((192, 256))

    def broken_z(batch: np.ndarray) -> ModelOutputs:
        x, y, z = reference(batch).unpack("simcc_x", "simcc_y", "simcc_z")
        return ModelOutputs(
            {"simcc_x": x, "simcc_y": y, "simcc_z": np.roll(z, 40, axis=-1)}
        )  # every depth 40 bins off

    with runtimes.open(read_artifact(tmp_path / "out" / "onnx")) as runner:
        assert runner.infer(inputs["persons"][:2]).names == ("simcc_x", "simcc_y", "simcc_z")
    report = compare(broken_z, reference, inputs, DEFAULT_TOLERANCES["fp32"],
                     depth=DepthCodec(192, 2.1744869))  # fmt: skip
    assert not report.passed and any("z argmax" in f for f in report.failures)


def test_gate_judges_3d_error() -> None:
    from rtmw.bench.gate import gate_entry, load_budgets

    parts = ("body", "foot", "face", "lefthand", "righthand", "wholebody")

    def entry(name: str, precision: str, mpjpe: float) -> dict[str, object]:
        three_d = {"mpjpe_mm": dict.fromkeys(parts, mpjpe),
                   "pa_mpjpe_mm": dict.fromkeys(parts, mpjpe / 2)}  # fmt: skip
        return {"name": name, "target": name, "precision": precision, "status": "ok",
                "model": "m", "input_size": [192, 256], "verification": "accuracy",
                "accuracy": {"parts": {p: {"ap": 0.5} for p in parts}, "3d": three_d},
                "fidelity": {"parts": {p: {"px_p95": 0.5, "keypoints": 500}
                                       for p in parts}}}  # fmt: skip

    run = {"settings": {"data": {"ann_sha256": "a", "box_source": "gt", "image_ids": [1]},
                        "flip": True}, "_path": "/nonexistent/results.json"}  # fmt: skip
    budgets = load_budgets()
    budgets["defaults"]["resamples"] = 0
    ref = entry("onnx", "fp32", 60.0)
    ok = gate_entry(run, run, ref, entry("ort-int8", "int8", 65.0), budgets)
    assert all(c.passed for c in ok if c.metric.endswith("mpjpe_rise"))
    bad = gate_entry(run, run, ref, entry("ort-int8", "int8", 75.0), budgets)
    failed = [c for c in bad if not c.passed]
    assert failed and all(c.metric == "mpjpe_rise" for c in failed)
    lost = entry("ort-int8", "int8", 60.0)
    lost["accuracy"] = {"parts": {p: {"ap": 0.5} for p in parts}}  # no 3D figures
    assert any(not c.passed and "3D error missing" in c.detail
               for c in gate_entry(run, run, ref, lost, budgets))  # fmt: skip


@pytest.fixture(scope="module")
def calib_3d(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Person crops of synthetic 3D figures, by rtmw-calib's code."""
    from rtmw.calib import build_calibration_set, save_calibration_set

    src = make_dataset(tmp_path_factory.mktemp("calib3d"), 40, seed=31, split="train",
                       depth=True, progress=False)  # fmt: skip
    calib = build_calibration_set(src.image_dir, input_size=(192, 256), ann_file=src.ann_file,
                                  n=64, progress=False)  # fmt: skip
    return save_calibration_set(calib, tmp_path_factory.mktemp("calib3d-set") / "calib.npz")


@pytest.mark.precision
@pytest.mark.parametrize("target", ["ort-int8", "openvino-int8", "ncnn-int8"])
def test_int8_of_the_3d_demo_verified_with_cls_z_in_float(
    target: str, calib_3d: Path, tmp_path: Path
) -> None:
    """INT8 of the trained 3D demo model is judged on all three outputs (z argmax within
    ±4 bins), with the z classifier kept in float."""
    from rtmw.artifact import read_artifact
    from rtmw.export import export
    from rtmw.models import DEMO_3D_NAME

    backend = {"ort-int8": "onnxruntime", "openvino-int8": "openvino", "ncnn-int8": "ncnn"}
    if not has_module(backend[target]):
        pytest.skip(f"{backend[target]} not installed")
    (result,) = export(demo_checkpoint(DEMO_3D_NAME), [target], tmp_path, calib=calib_3d)
    assert result.status == "ok", result.line()
    manifest = read_artifact(tmp_path / target).manifest
    v = manifest.verification
    # judged on z: argmax agreement within the INT8 window (±4 bins); the decoded-z p99 is
    # judged only on peaks clear at INT8's logit tolerance, which this model's z logits
    # (trained with logits ×10, so small) do not reach: it is recorded as None, not 0
    assert v["mode"] == "accuracy" and v["max_abs_diff_z"] is not None
    assert v["argmax_agreement_z"] >= v["tolerances"]["min_argmax_agreement"]
    assert v["depth_m_p99"] is None or v["depth_m_p99"] >= 0
    assert "/head/cls_z/" in manifest.options["kept_patterns"]
    if target == "ort-int8":
        import onnx

        model = onnx.load(str(tmp_path / target / "model.onnx"))
        dequantised = {o for n in model.graph.node if n.op_type == "DequantizeLinear"
                       for o in n.output}  # fmt: skip
        cls_z = [n for n in model.graph.node if n.name.startswith("/head/cls_z/")]
        assert cls_z and all(n.op_type == "MatMul" for n in cls_z)
        assert not any(i in dequantised for n in cls_z for i in n.input)


@pytest.mark.precision
def test_sensitivity_scan_of_the_3d_demo_reports_z(calib_3d: Path, tmp_path: Path) -> None:
    """The per-block INT8 scan runs on a three-output model and says how each block moves
    the depth classifier's argmax, beside the 2D figures."""
    from rtmw.calib import load_calibration_set
    from rtmw.export import sensitivity_scan
    from rtmw.models import DEMO_3D_NAME

    if not has_module("onnxruntime"):
        pytest.skip("onnxruntime not installed")
    path, table = sensitivity_scan(demo_checkpoint(DEMO_3D_NAME), load_calibration_set(calib_3d),
                                   tmp_path, progress=False)  # fmt: skip
    rows = json.loads(path.with_suffix(".json").read_text())
    assert {"backbone.stem", "head.cls"} <= {r["block"] for r in rows}
    assert all(0 <= r["argmax_agreement_z"] <= 1 for r in rows)
    # quantising a block moves some z argmaxes: a scan that compared z with itself would not
    assert min(r["argmax_agreement_z"] for r in rows) < 1.0
    assert "z argmax agree" in table.splitlines()[0]


def test_fleet_shards_merge_3d_error_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fleet's evaluation shards of an RTMW3D artifact, merged, give the single-process
    3D error exactly (per-shard MPJPE means would not: shards hold different persons)."""
    from rtmw import runtimes
    from rtmw.artifact import read_artifact
    from rtmw.data.evalset import load_eval_set
    from rtmw.export import export
    from rtmw.harness import run_accuracy
    from rtmw.models import DEMO_3D_NAME
    from rtmw.workflows.fleet import Shard, eval_shard, merge_shards, pack_artifact, shard_items

    if not has_module("onnxruntime"):
        pytest.skip("onnxruntime not installed")
    ok, why = xtcocotools_usable()
    if not ok:
        pytest.skip(why)
    monkeypatch.setenv("RTMW_FLEET_CACHE", str(tmp_path / "cache"))
    (result,) = export(demo_checkpoint(DEMO_3D_NAME), ["onnx"], tmp_path / "art")
    assert result.status == "ok", result.line()
    folder = tmp_path / "art" / "onnx"
    data = make_dataset(tmp_path / "val", 6, seed=77, split="val", depth=True, progress=False)
    eval_set = load_eval_set(data.image_dir, data.ann_file)
    tar, digest = pack_artifact(folder)
    answers = []
    for index, items in enumerate(shard_items(eval_set.items, 3)):
        shard = Shard(index, items, {item.path.name: item.path.read_bytes() for item in items})
        answers.append(eval_shard(tar, digest, "cpu", 1, shard, True, 2))
    # outside a Ray task a shard must not start a local Ray instance of its own
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()
    merged = merge_shards(eval_set, answers[::-1])  # any arrival order
    with runtimes.open(read_artifact(folder), device="cpu", threads=1) as runtime:
        single = run_accuracy(runtime.infer, (192, 256), eval_set, flip=True, max_batch=2,
                              depth=runtime.depth)  # fmt: skip
    assert single.evaluation_3d is not None and single.evaluation_3d.persons > 0
    assert merged.to_dict() == single.to_dict()
    shipped = sorted(image_id for answer in answers for image_id in answer["poses"])
    assert shipped == sorted(item.image_id for item in eval_set.items)


def test_h3wb_npz_release_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mmpose's h3wb_train.npz layout (subject → action → camera, mm, K per camera, boxes
    per frame, images under original/<S>/Images/<action>.<camera>/) converts with its
    cameras: predictions are placed through them."""
    import shutil

    from rtmw.data.h3wb import as_coco

    monkeypatch.setenv("RTMW_CACHE", str(tmp_path / "cache"))
    data = make_dataset(tmp_path / "d", 4, seed=7, depth=True, progress=False)
    anns = load_annotations(data.ann_file)
    first = {}
    for person in anns.persons:
        first.setdefault(person.image_id, person)
    persons = [first[i] for i in sorted(first)]
    cam, subject, action = "54138969", "S1", "Walking"
    folder = tmp_path / "h36m" / "original" / subject / "Images" / f"{action}.{cam}"
    folder.mkdir(parents=True)
    for frame, person in enumerate(persons):
        shutil.copy(data.image_dir / anns.images[person.image_id].file_name,
                    folder / f"frame_{frame}.jpg")  # fmt: skip
    camera = persons[0].camera
    assert camera is not None
    k = np.array([[camera["f"][0], 0, camera["c"][0]], [0, camera["f"][1], camera["c"][1]],
                  [0, 0, 1000.0]]) / 1000.0  # fmt: skip
    record = {
        "pose_2d": np.stack([p.keypoints[:, :2] for p in persons]),
        "camera_3d": np.stack([p.keypoints_3d for p in persons]) * 1000.0,  # type: ignore[misc]
    }
    train = {subject: {action: {cam: record, "frame_id": list(range(len(persons)))}}}
    boxes = {(subject, action, cam, f): dict(zip(("x_min", "y_min", "x_max", "y_max"),
                                                 (float(v) for v in p.bbox_xyxy), strict=True))
             for f, p in enumerate(persons)}  # fmt: skip
    metadata = {subject: {cam: {"K": k[None], "R": np.eye(3)[None], "T": np.zeros(3),
                                "Distortion": np.zeros((1, 5))}}}  # fmt: skip
    npz = tmp_path / "h3wb_train.npz"
    objects = {"train_data": train, "metadata": metadata, "bbox": boxes}
    np.savez(npz, **{key: np.array(value, dtype=object) for key, value in objects.items()})
    converted = load_annotations(as_coco(npz, tmp_path / "h36m"))
    assert len(converted.persons) == len(persons)
    for ours, theirs in zip(persons, converted.persons, strict=True):
        assert theirs.camera is not None and ours.keypoints_3d is not None
        np.testing.assert_allclose(theirs.camera["f"], camera["f"], rtol=1e-9)
        np.testing.assert_allclose(theirs.keypoints_3d, ours.keypoints_3d, atol=1e-6)
    image = converted.images[1]
    assert image.file_name.startswith("original/S1/Images/Walking.54138969/")
    assert (image.width, image.height) == (anns.images[persons[0].image_id].width,
                                           anns.images[persons[0].image_id].height)  # fmt: skip
