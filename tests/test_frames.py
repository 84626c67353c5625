"""The frame loop: synthetic video with ground truth, tracker, One-Euro smoothing, the loop
over real detector and pose artifacts (2D and RTMW3D), its metrics, CLIs and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import has_module, small_demo

from rtmw.data.synthetic_video import render_video
from rtmw.errors import GateConfigError, InputError
from rtmw.pipeline import TopDown
from rtmw.pipeline.frames import FrameLoop, FrameResult, FrameSettings
from rtmw.pipeline.smoothing import KeypointSmoother, OneEuroSettings
from rtmw.pipeline.tracking import Tracker, TrackerSettings, keypoint_box
from rtmw.pipeline.video import open_source

needs_onnx = pytest.mark.skipif(not has_module("onnxruntime"), reason="onnxruntime not installed")
needs_motmetrics = pytest.mark.skipif(
    not has_module("motmetrics"), reason="motmetrics not installed (rtmw[video])"
)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> object:
    return render_video(
        tmp_path_factory.mktemp("video"),
        frames=40,
        persons=4,
        seed=5,
        frame_folder=True,
        progress=False,
    )


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ONNX artifacts of the packaged demo detector and the small demo pose model."""
    if not has_module("onnxruntime"):
        pytest.skip("onnxruntime not installed")
    from rtmw.export import export
    from rtmw.models.detector_checkpoint import demo_detector_checkpoint

    out = tmp_path_factory.mktemp("frame-artifacts")
    (det,) = export(demo_detector_checkpoint(), ["onnx"], out / "det")
    (pose,) = export(small_demo(), ["onnx"], out / "pose")
    assert det.status == "ok" and pose.status == "ok", (det.reason, pose.reason)
    return {"det": out / "det" / "onnx", "pose": out / "pose" / "onnx"}


# ----------------------------------------------------------------------------- video


def test_synthetic_video_is_seeded_tracked_and_still_where_it_should_be(video, tmp_path) -> None:
    coco = json.loads(video.ann_file.read_text())
    assert len(coco["images"]) == 40 and coco["images"][3]["frame_id"] == 3
    tracks = {a["track_id"] for a in coco["annotations"]}
    assert tracks <= {1, 2, 3, 4} and len(tracks) >= 3
    # the waver stands still while the camera does: its body but the right arm never moves
    waver = {
        a["image_id"]: np.array(a["keypoints"]).reshape(-1, 3)
        for a in coco["annotations"]
        if a["track_id"] == 2
    }
    still = [i for i in (1, 2, 3) if i in waver]
    body = [0, 1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 16]
    labelled = (waver[still[0]][body, 2] > 0) & (waver[still[1]][body, 2] > 0)
    assert labelled.sum() >= 6
    assert np.allclose(waver[still[0]][body][labelled, :2], waver[still[1]][body][labelled, :2])
    # ...while its waving wrist does
    assert not np.allclose(waver[still[0]][10, :2], waver[still[1]][10, :2])
    again = render_video(tmp_path, frames=40, persons=4, seed=5, progress=False)
    assert json.loads(again.ann_file.read_text())["annotations"] == coco["annotations"]
    source = open_source(video.video)
    frames = list(source)
    assert len(frames) == 40 and frames[0].shape == (480, 640, 3) and source.fps == 30.0


# ----------------------------------------------------------------------------- tracker


def test_tracker_keeps_ids_through_motion_and_brings_lost_tracks_back() -> None:
    tracker = Tracker(TrackerSettings(max_missed=0))
    a, b = np.array([10, 10, 60, 150.0]), np.array([200, 10, 250, 150.0])
    tracker.update(np.stack([a, b]), 0, min_confidence=0.5)
    assert tracker.ids().tolist() == [1, 2]
    tracker.update(
        np.stack([b + np.array([8, 0, 8, 0]), a + np.array([5, 2, 5, 2])]), 5, min_confidence=0.5
    )
    assert tracker.ids().tolist() == [1, 2]
    assert np.allclose(
        tracker.boxes()[0], a + np.array([5, 2, 5, 2])
    )  # order of detections is irrelevant
    tracker.tracks[1].confidence = 0.0  # b's pose faded: missed by the detector, it ends
    tracker.update(np.stack([a]), 10, min_confidence=0.5)
    assert tracker.ids().tolist() == [1]
    tracker.update(np.stack([a, b + np.array([4, 0, 4, 0])]), 15, min_confidence=0.5)
    assert tracker.ids().tolist() == [1, 2], "a person back within max_age keeps the ID"
    tracker.update(np.stack([a, [400, 10, 450, 150.0]]), 20, min_confidence=0.5)
    assert tracker.ids().tolist() == [1, 3], "a new person gets a new ID"


def test_tracker_drops_the_younger_of_two_converged_tracks_and_boxes_follow_keypoints() -> None:
    tracker = Tracker()
    box = np.array([0, 0, 100, 200.0])
    tracker.update(np.stack([box, box + 1]), 0, min_confidence=0.5)
    assert tracker.ids().tolist() == [1]
    points = np.zeros((1, 133, 2))
    points[0, :, 0] = np.linspace(10, 50, 133)
    points[0, :, 1] = np.linspace(20, 120, 133)
    scores = np.ones((1, 133))
    scores[0, 100:] = 0.0  # unconfident keypoints do not stretch the box
    assert tracker.propagate(points, scores, 1) == 0
    expected = keypoint_box(points[0], scores[0], TrackerSettings())
    assert expected is not None and np.allclose(tracker.boxes()[0], expected)
    assert expected[3] < 120 and (expected[3] - expected[1]) == pytest.approx(
        1.25 * (points[0, 99, 1] - 20)
    )
    assert tracker.propagate(points, np.zeros((1, 133)), 2) == 1 and not tracker.tracks


# ----------------------------------------------------------------------------- smoothing


def test_one_euro_steadies_still_keypoints_and_follows_a_walker() -> None:
    rng = np.random.default_rng(0)
    box = np.array([[0, 0, 100, 300.0]])
    still, smooth = KeypointSmoother(OneEuroSettings()), []
    truth = np.full((1, 133, 2), 150.0)
    for t in range(60):
        noisy = truth + rng.normal(0, 2.0, truth.shape)
        smooth.append(still(np.array([7]), noisy, box, t / 30, np.ones((1, 133))))
    raw_jitter = 2.0 * np.sqrt(2) * np.sqrt(2 / np.pi)  # E|n_t − n_t−1| of N(0, 2²) in 2D
    jitter = np.mean(np.linalg.norm(np.diff(np.stack(smooth[10:]), axis=0), axis=-1))
    assert jitter < 0.5 * raw_jitter
    walker = KeypointSmoother(OneEuroSettings())
    pose = rng.uniform(0, 200, (1, 133, 2))
    for t in range(30):  # 8 px/frame: the pose rides on the torso and keeps its shape
        out = walker(np.array([1]), pose + np.array([8.0 * t, 0]), box, t / 30, np.ones((1, 133)))
    offsets = out[0] - out[0, [5, 6, 11, 12]].mean(0)
    assert np.allclose(offsets, pose[0] - pose[0, [5, 6, 11, 12]].mean(0), atol=0.05)
    assert abs(out[0, 0, 0] - (pose[0, 0, 0] + 8.0 * 29)) < 4.0  # less than half a frame's lag
    jump = walker(np.array([1]), pose + np.array([400, 0]), box, 30 / 30, np.ones((1, 133)))
    assert np.allclose(jump, pose + np.array([400, 0]), atol=1e-3), "a re-assigned track restarts"


# ----------------------------------------------------------------------------- the loop


def _loop(artifacts: dict[str, Path], **settings: object) -> tuple[FrameLoop, list[object]]:
    from rtmw import runtimes
    from rtmw.bench.run import detector_spec
    from rtmw.pipeline.frames import BoxDetector

    det = runtimes.open(artifacts["det"])
    pose_rt = runtimes.open(artifacts["pose"])
    pose = TopDown(pose_rt.infer, pose_rt.artifact.manifest.input_size, flip_test=False)
    loop = FrameLoop(
        BoxDetector(det.infer, detector_spec(det.artifact)), pose, FrameSettings(**settings)
    )  # type: ignore[arg-type]
    return loop, [det, pose_rt]


@needs_onnx
@needs_motmetrics
def test_loop_tracks_the_video_and_modes_agree(video, artifacts) -> None:
    from rtmw.harness.video import load_video_truth, score_video, stage_summary

    truth = load_video_truth(video.ann_file)
    runs = {}
    for name, batched, stream in (
        ("one-crop", False, False),
        ("batched", True, False),
        ("streamed", True, True),
    ):
        loop, _ = _loop(artifacts, det_every=5, batched=batched, smoothing=OneEuroSettings())
        drawn: list[int] = []
        runs[name] = list(
            loop.run(
                open_source(video.video),
                stream=stream,
                draw=lambda _, r, seen=drawn: seen.append(r.index),
            )
        )
        assert len(runs[name]) == 40 and sorted(drawn) == list(range(40))
    for a, b in zip(runs["batched"], runs["streamed"], strict=True):  # the same computation
        assert a.track_ids.tolist() == b.track_ids.tolist() and a.detected == b.detected
        assert np.array_equal(a.raw_keypoints, b.raw_keypoints)
    # one crop per call: other batch sizes may round differently, so agreement, not identity
    same = [
        (a, b)
        for a, b in zip(runs["one-crop"], runs["batched"], strict=True)
        if a.track_ids.tolist() == b.track_ids.tolist()
    ]
    assert len(same) >= 36
    moved = np.concatenate([np.abs(a.raw_keypoints - b.raw_keypoints).ravel() for a, b in same])
    assert np.median(moved) < 0.5
    results = runs["streamed"]
    assert [r.detected for r in results[:10]].count(True) >= 2 and results[0].detected
    figures = score_video(truth, results)
    # the small suite model on 40 frames: body AP 0.36, IDF1 0.45, MOTA 0.23 on this machine
    assert figures["ap"]["body"] > 0.25, figures["ap"]
    assert figures["tracking"]["idf1"] > 0.3 and figures["tracking"]["mota"] > 0.1
    smoothed, raw = figures["stability_smoothed"], figures["stability"]
    assert smoothed["jitter_px"] < raw["jitter_px"]
    assert smoothed["accel_error_px"] < raw["accel_error_px"]
    assert figures["stability"]["jitter_keypoints"] > 100
    summary = stage_summary(results, 1.0)
    assert set(summary["stages_ms"]) == {
        "decode",
        "detect",
        "track",
        "crop",
        "pose",
        "keypoints",
        "smooth",
        "draw",
    }
    assert summary["stages_ms"]["pose"]["p50"] > 0 and summary["latency_ms"]["p99"] > 0
    record = results[5].to_record()
    json.dumps(record)
    assert record["frame"] == 5 and len(record["persons"][0]["keypoints"]) == 133


@needs_motmetrics
def test_metrics_are_perfect_on_ground_truth_and_count_a_swap(video) -> None:
    from rtmw.harness.video import load_video_truth, score_video

    truth = load_video_truth(video.ann_file)

    def as_results(swap_from: int | None) -> list[FrameResult]:
        results = []
        for index in range(truth.num_frames):
            persons = truth.frames[index]
            ids = np.array([p.track_id for p in persons])
            if swap_from is not None and index >= swap_from and len(ids) >= 2:
                ids[[0, 1]] = ids[[1, 0]]
            kpts = np.array([p.keypoints for p in persons]).reshape(-1, 133, 2)
            scores = np.array([np.where(p.labelled, 5.0, 0.0) for p in persons]).reshape(-1, 133)
            boxes = np.array([p.box for p in persons]).reshape(-1, 4)
            results.append(
                FrameResult(index, (640, 480), True, ids, boxes, kpts, kpts, scores, None, {})
            )
        return results

    perfect = score_video(truth, as_results(None))
    assert perfect["ap"]["wholebody"] == pytest.approx(1.0)
    assert perfect["tracking"]["num_switches"] == 0 and perfect["tracking"]["idf1"] == 1.0
    assert perfect["stability"]["accel_error_px"] == pytest.approx(0.0, abs=1e-6)
    assert perfect["stability"]["jitter_px"] == pytest.approx(0.0, abs=1e-6)
    swapped = score_video(truth, as_results(20))
    assert swapped["tracking"]["num_switches"] >= 2 and swapped["tracking"]["idf1"] < 1.0


@needs_onnx
def test_three_d_pose_gives_depth_per_frame(video, artifacts, tmp_path) -> None:
    from rtmw import runtimes
    from rtmw.bench.run import detector_spec
    from rtmw.export import export
    from rtmw.models import DEMO_3D_NAME, demo_checkpoint
    from rtmw.pipeline.frames import BoxDetector

    (made,) = export(demo_checkpoint(DEMO_3D_NAME), ["onnx"], tmp_path)
    assert made.status == "ok", made.reason
    det = runtimes.open(artifacts["det"])
    pose_rt = runtimes.open(tmp_path / "onnx")
    assert pose_rt.depth is not None
    pose = TopDown(
        pose_rt.infer, pose_rt.artifact.manifest.input_size, flip_test=False, depth=pose_rt.depth
    )
    loop = FrameLoop(BoxDetector(det.infer, detector_spec(det.artifact)), pose)
    results = list(loop.run(open_source(video.frame_dir)))
    with_people = [r for r in results if len(r)]
    assert len(results) == 40 and with_people
    assert with_people[0].depth is not None and with_people[0].depth.shape == (
        len(with_people[0]),
        133,
    )
    assert "depth_m" in with_people[0].to_record()["persons"][0]


# ----------------------------------------------------------------------------- bad input


def test_bad_sources_fail_in_one_line(tmp_path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match=r"cannot open|no frame"):
        list(open_source(corrupt))
    with pytest.raises(InputError, match="camera 97 does not open"):
        open_source(97)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        open_source(tmp_path / "empty")
    with pytest.raises(InputError, match="no such video"):
        open_source(tmp_path / "missing.mp4")


def test_a_zero_frame_video_is_an_empty_result_or_one_line(tmp_path) -> None:
    def empty(name: str, codec: str) -> Path:
        path = tmp_path / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), 30, (64, 48))
        writer.release()
        return path

    source = open_source(empty("empty.avi", "MJPG"))  # an AVI header announcing 0 frames
    loop = FrameLoop(lambda f: np.zeros((0, 4)), TopDown(lambda b: (b, b), (192, 256)))
    assert source.announced == 0
    assert list(loop.run(source)) == [] and source.read == 0 and not source.warnings
    with pytest.raises(InputError, match="cannot open it as a video") as caught:
        open_source(empty("empty.mp4", "mp4v"))  # an MP4 without frames has no index
    assert "\n" not in str(caught.value)


def test_truncated_video_ends_early_with_a_warning(video, tmp_path) -> None:
    data = video.video.read_bytes()
    # mp4v in an MP4 keeps its index at the end: cut frames from the middle of the file
    # by rewriting it as an AVI (index-free MJPG) and truncating that instead
    avi = tmp_path / "full.avi"
    writer = cv2.VideoWriter(str(avi), cv2.VideoWriter.fourcc(*"MJPG"), 30, (640, 480))
    for frame in open_source(video.video):
        writer.write(frame)
    writer.release()
    truncated = tmp_path / "cut.avi"
    truncated.write_bytes(avi.read_bytes()[: len(avi.read_bytes()) // 2])
    source = open_source(truncated)
    frames = list(source)
    assert 0 < len(frames) < 40 and len(data) > 0
    assert source.ended_early or source.announced in (0, len(frames))


def test_frames_of_changing_size_restart_tracks_and_odd_frames_are_refused(video) -> None:
    boxes = {
        (640, 480): np.array([[100, 100, 300, 400.0]]),
        (320, 240): np.array([[10, 10, 200, 230.0]]),
    }
    seen: list[tuple[int, int]] = []

    def detector(frame: np.ndarray) -> np.ndarray:
        seen.append((frame.shape[1], frame.shape[0]))
        return boxes[(frame.shape[1], frame.shape[0])]

    def infer(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(batch)
        x = np.zeros((n, 133, 384), np.float32)
        y = np.zeros((n, 133, 512), np.float32)
        x[..., 190], y[..., 250] = 5.0, 5.0
        return x, y

    loop = FrameLoop(
        detector, TopDown(infer, (192, 256), flip_test=False), FrameSettings(det_every=10)
    )
    big = np.zeros((480, 640, 3), np.uint8)
    small = np.zeros((240, 320, 3), np.uint8)
    results = list(loop.run([big, big, small, small]))
    assert [r.size for r in results] == [(640, 480)] * 2 + [(320, 240)] * 2
    assert [r.detected for r in results] == [True, False, True, False]
    assert results[2].track_ids.tolist() == [2], "a new geometry starts new tracks"
    with pytest.raises(InputError, match="frame 1: image must be uint8 BGR"):
        list(loop.run([big, big.astype(np.float32)]))
    with pytest.raises(
        InputError, match=r"frame 0: image must be uint8 BGR \(H, W, 3\), got shape"
    ):
        list(loop.run([np.zeros((480, 640), np.uint8)]))
    with pytest.raises(InputError, match="frame 0: image must be"):
        list(loop.run([np.zeros((480, 640), np.uint8)], stream=True))


def test_nobody_for_a_hundred_frames_and_fifty_people_in_one() -> None:
    calls: list[int] = []

    def empty(frame: np.ndarray) -> np.ndarray:
        calls.append(1)
        return np.zeros((0, 4))

    def infer(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(batch))
        x = np.zeros((len(batch), 133, 384), np.float32)
        y = np.zeros((len(batch), 133, 512), np.float32)
        x[..., 190], y[..., 250] = 5.0, 5.0
        return x, y

    frame = np.zeros((480, 640, 3), np.uint8)
    pose = TopDown(infer, (192, 256), flip_test=False, max_batch=16)
    results = list(
        FrameLoop(empty, pose, FrameSettings(det_every=5)).run([frame] * 100, stream=True)
    )
    assert len(results) == 100 and all(len(r) == 0 for r in results)
    assert all(r.detected for r in results), "nobody tracked: the adaptive loop keeps looking"
    assert all(r.keypoints.shape == (0, 133, 2) for r in results)
    grid = np.array(
        [[x, y, x + 50, y + 100.0] for x in range(0, 600, 60) for y in range(0, 400, 80)]
    )
    assert len(grid) == 50
    calls.clear()
    crowd = list(FrameLoop(lambda f: grid, pose).run([frame, frame]))
    assert [len(r) for r in crowd] == [50, 50] and max(calls) <= 16
    assert len(set(crowd[0].track_ids.tolist())) == 50


# ----------------------------------------------------------------------------- gate and CLIs


def test_frame_gate_fails_closed_and_refuses_unknown_keys() -> None:
    from rtmw.bench.frames import frame_budgets, gate_frames

    row = {"route": "r", "frames_per_s": 20.0, "latency_ms": {"p50": 40.0, "p99": 90.0}}
    verdict = gate_frames([row], {"min_frames_per_s": 10.0, "max_jitter_px": 5.0})
    checks = {c.metric: c for c in verdict.checks}
    assert checks["frames_per_s"].passed and not checks["jitter_px"].passed
    assert "fails closed" in checks["jitter_px"].detail and not verdict.passed
    assert gate_frames([row], {"min_frames_per_s": 30.0}).passed is False
    assert gate_frames([row], {}).passed is False, "nothing judged is not a pass"
    with pytest.raises(GateConfigError, match="unknown key"):
        frame_budgets({"frames": {"max_jiter_px": 1.0}})


@needs_onnx
@needs_motmetrics
def test_rtmw_run_and_bench_frames_cli(video, artifacts, tmp_path) -> None:
    from rtmw.cli.bench import main as bench_main
    from rtmw.cli.run import main as run_main
    from rtmw.pipeline.video import read_json_lines

    def rtmw_run(source: str, det: Path, pose: Path, out: Path) -> Result:
        args = [source, "--det", str(det), "--pose", str(pose), "--out", str(out), "-q"]
        return CliRunner().invoke(run_main, args)

    out = tmp_path / "run"
    result = rtmw_run(str(video.video), artifacts["det"], artifacts["pose"], out)
    assert result.exit_code == 0, result.output
    records = read_json_lines(out / "frames.jsonl")
    assert len(records) == 40 and "40 frames" in result.output
    assert any(p["track_id"] for r in records for p in r["persons"])
    assert len(list(open_source(out / "annotated.mp4"))) == 40
    bad = rtmw_run("97", artifacts["det"], artifacts["pose"], tmp_path / "cam")
    assert bad.exit_code == 1 and bad.output.strip().splitlines()[-1].startswith("error: camera 97")
    swapped = rtmw_run(str(video.video), artifacts["pose"], artifacts["det"], tmp_path / "swap")
    assert swapped.exit_code == 1 and "not a detector artifact" in swapped.output
    budgets = tmp_path / "gates.toml"
    budgets.write_text(
        "[defaults]\nap_drop = {}\npx_p95 = {}\n[frames]\nmin_frames_per_s = 0.5\n"
        "max_id_switches = 0\n"
    )
    bench = CliRunner().invoke(
        bench_main,
        [
            "frames",
            str(video.video),
            "--ann",
            str(video.ann_file),
            "--det",
            str(artifacts["det"]),
            "--pose",
            str(artifacts["pose"]),
            "--modes",
            "batched",
            "--det-every",
            "1,10",
            "--gate",
            "--budgets",
            str(budgets),
            "--out",
            str(tmp_path / "bench"),
            "-q",
        ],
    )
    document = json.loads((tmp_path / "bench" / "frames.json").read_text())
    assert [r["settings"]["det_every"] for r in document["rows"]] == [1, 10]
    assert document["rows"][0]["detections"] == 40 and document["host"]["isa_class"]
    switches = [r["tracking"]["num_switches"] for r in document["rows"]]
    assert bench.exit_code == (0 if max(switches) == 0 else 1), bench.output
    assert "frames/s" in (tmp_path / "bench" / "frames.md").read_text()
