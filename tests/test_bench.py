"""rtmw-bench: timing statistics, device profiles, per-artifact statuses, outputs that parse."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rtmw.bench import BenchSettings, TimingPlan, bench, find_artifacts, load_results, markdown
from rtmw.bench.environment import DeviceNotPresent, cpu_profile, environment
from rtmw.bench.timing import summarize, time_inference
from rtmw.data.synthetic import SyntheticDataset
from rtmw.errors import DataError, RtmwError

QUICK = TimingPlan(warmup_s=0.0, seconds=None, iters=3, repeats=2)


def test_summarize_percentiles_and_spread() -> None:
    repeats = [[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]]
    stats = summarize(repeats, items_per_call=4)
    pooled = np.array([1, 2, 3, 4, 2, 2, 2, 2], float)
    assert stats.p50 == pytest.approx(np.percentile(pooled, 50))
    assert stats.p99 == pytest.approx(np.percentile(pooled, 99))
    assert stats.mean == pytest.approx(pooled.mean())
    assert stats.throughput == pytest.approx(4 / (pooled.mean() / 1000))
    assert stats.repeat_p50 == (2.5, 2.0)
    assert stats.spread == pytest.approx(0.5 / 2.25)
    assert stats.to_dict()["p50_spread"] == pytest.approx(stats.spread)


def test_timing_plan_needs_a_budget() -> None:
    with pytest.raises(ValueError):
        TimingPlan(seconds=None, iters=None)
    with pytest.raises(ValueError):
        TimingPlan(repeats=0)


def test_time_inference_counts_calls() -> None:
    calls = []

    def infer(batch: np.ndarray) -> None:
        calls.append(len(batch))

    stats = time_inference(infer, np.zeros((4, 3, 8, 8), np.float32), QUICK)
    assert stats.samples == 6 and stats.batch == 4
    assert calls.count(4) == len(calls) >= 8  # two warm-up calls, then 2 × 3 timed


def test_cpu_profile_describes_this_machine() -> None:
    profile = cpu_profile()
    assert profile["logical_cores"] >= 1 and profile["usable_cores"] >= 1
    assert profile["arch"] == platform.machine()
    env = environment("cpu")
    assert env["versions"]["numpy"] and env["python"] == platform.python_version()


def test_absent_devices_are_errors() -> None:
    """A device profile is either read from the device or refused: never made up. Which
    branch a host takes depends on its hardware; the assertions hold on both."""
    try:
        cuda = environment("cuda")
    except DeviceNotPresent as exc:
        assert "no NVIDIA GPU" in str(exc)
    else:
        assert cuda["device_profile"]["gpu"] and cuda["device_profile"]["source"]
    try:
        jetson = environment("jetson")
    except DeviceNotPresent as exc:
        assert "not a Jetson" in str(exc)
    else:
        assert jetson["device_profile"]["l4t"]
    if platform.machine() not in ("aarch64", "arm64"):
        with pytest.raises(DeviceNotPresent, match="not ARM"):
            environment("arm")
    with pytest.raises(RtmwError, match="unknown --device"):
        environment("tpu")


def test_find_artifacts(demo_artifacts: Path, tmp_path: Path) -> None:
    found = find_artifacts([demo_artifacts])
    assert {p.name for p in found} >= {"onnx", "torch"}
    assert find_artifacts([demo_artifacts / "onnx"]) == [demo_artifacts / "onnx"]
    with pytest.raises(RtmwError, match=r"no artifact\.json"):
        find_artifacts([tmp_path])


@pytest.fixture(scope="module")
def bench_run(
    demo_artifacts: Path, synthetic_val: SyntheticDataset, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, Path]:
    """One run over good artifacts plus a tampered one; accuracy on 3 images."""
    work = tmp_path_factory.mktemp("bench")
    tampered = work / "artifacts" / "tampered"
    shutil.copytree(demo_artifacts / "onnx", tampered)
    model = tampered / "model.onnx"
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    settings = BenchSettings(
        batches=(1, 2),
        threads=1,
        plan=QUICK,
        image_dir=str(synthetic_val.image_dir),
        ann_file=str(synthetic_val.ann_file),
        limit=3,
        reference=str(demo_artifacts / "onnx"),
        draw=2,
    )
    out = work / "out"
    return bench([demo_artifacts, tampered], settings, out, progress=False), out


def test_bench_statuses_and_figures(bench_run: tuple[dict, Path]) -> None:
    results, _ = bench_run
    by_name = {e["name"]: e for e in results["entries"]}
    assert by_name["tampered"]["status"] == "failed"
    assert "sha256" in by_name["tampered"]["reason"]
    for name in ("onnx", "torch"):
        entry = by_name[name]
        assert entry["status"] == "ok", entry.get("reason")
        assert set(entry["latency"]) == {"1", "2"}
        lat = entry["latency"]["2"]
        assert 0 < lat["p50"] <= lat["p99"] and lat["samples"] == 6
        frame = entry["e2e"]["1"]
        assert frame["persons"] == 6 and frame["crops_per_frame"] == 12
        assert set(frame["stages_p50_ms"]) == {"preprocess", "inference", "decode"}
        assert entry["accuracy"]["box_source"] == "gt"
        assert set(entry["accuracy"]["parts"]) == {
            "body", "foot", "face", "lefthand", "righthand", "wholebody"
        }  # fmt: skip
        assert entry["device_used"].startswith("cpu")
        assert entry["execution"]["contract"] == "f32" and "reported" in entry["execution"]
        assert entry["built_on"] == results["environment"]["cpu"]["isa_class"]
        assert entry["size_mb"] > 1
    # the reference compared with itself: zero error, zero delta
    self_fid = by_name["onnx"]["fidelity"]["parts"]["wholebody"]
    assert self_fid["px_p99_all"] == 0 and self_fid["ap_delta"] == 0
    assert by_name["onnx"]["fidelity"]["px_scope"] == "reference-correct keypoints"
    torch_fid = by_name["torch"]["fidelity"]["parts"]["body"]
    assert torch_fid["keypoints_all"] > 0 and torch_fid["px_p99_all"] is not None
    # random weights place (almost) nothing right: the judged set is a subset
    assert torch_fid["keypoints"] <= torch_fid["keypoints_all"]
    # baseline: onnxruntime FP32 one crop at a time, and ratios against it
    assert results["baseline"]["artifact"] == "onnx"
    assert by_name["onnx"]["speedup_vs_baseline"]["1"] > 0


def test_bench_outputs_parse(bench_run: tuple[dict, Path], tmp_path: Path) -> None:
    from rtmw.cli.bench import main

    results, out = bench_run
    assert (out / "latency_vs_ap.png").stat().st_size > 1000
    assert (out / "part_ap.png").stat().st_size > 1000
    assert (out / "throughput.png").stat().st_size > 1000
    drawn = [image for e in results["entries"] for image in e.get("images", [])]
    assert drawn and all((out / image).is_file() for image in drawn)
    loaded = load_results(out / "results.json")
    assert loaded["schema"] == "rtmw.bench/1"
    table = (out / "results.md").read_text()
    assert table == markdown([loaded])
    # the compact table first (one row per artifact), every figure below it
    glance, full = table.split("**Every figure**")
    compact = [line for line in glance.splitlines() if line.startswith("| ")]
    assert len(compact[0].strip("|").split("|")) == 8 and len(compact) - 1 == len(
        results["entries"]
    )
    lines = [line for line in full.splitlines() if line.startswith("| ")]
    header = lines[0].strip("|").split("|")
    assert len(header) == 21  # issue 17: threads, GMAC/s, % of peak, peak RSS
    # one row per ok artifact and batch, one per failed artifact
    ok = [e for e in results["entries"] if e["status"] == "ok"]
    failed = [e for e in results["entries"] if e["status"] != "ok"]
    assert len(lines) - 1 == 2 * len(ok) + len(failed)
    assert all(len(line.strip("|").split("|")) == len(header) for line in lines)
    assert "baseline: onnxruntime FP32" in table
    # report: two runs side by side gain a Run column
    result = CliRunner().invoke(
        main, ["report", str(out / "results.json"), str(out), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    compared = (tmp_path / "results.md").read_text()
    first_row = next(line for line in compared.splitlines() if line.startswith("| "))
    assert first_row.startswith("| Run |")
    # the CPU each run was measured on heads the table, ISA class included
    isa = results["environment"]["cpu"]["isa_class"]
    assert compared.startswith("**Measured on** (") and compared.count(f"ISA class {isa}") == 2
    assert table.startswith("**Measured on**: ") and f"ISA class {isa}" in table


def test_report_refuses_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"schema": "something/else"}))
    with pytest.raises(DataError, match="not an rtmw-bench results file"):
        load_results(bad)
    with pytest.raises(DataError, match="not found"):
        load_results(tmp_path / "missing.json")


def test_cli_device_absent_exit_code(demo_artifacts: Path, tmp_path: Path) -> None:
    from rtmw.bench.environment import cuda_profile
    from rtmw.cli.bench import main

    result = CliRunner().invoke(
        main, [str(demo_artifacts / "onnx"), "--device", "cuda", "--out", str(tmp_path / "r")]
    )
    try:
        cuda_profile()
    except DeviceNotPresent:
        assert result.exit_code == 4
        assert "no NVIDIA GPU" in result.output
        assert not (tmp_path / "r" / "results.json").exists()
        return
    # a GPU is here: the row runs on it, or (a CPU-only onnxruntime) says why it cannot
    import onnxruntime

    results = json.loads((tmp_path / "r" / "results.json").read_text())
    (entry,) = results["entries"]
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        assert entry["status"] == "ok" and "CUDAExecutionProvider" in entry["device_used"]
    else:
        assert entry["status"] != "ok" and "CUDA" in entry["reason"]


def test_fidelity_is_judged_where_the_reference_is_right(synthetic_val: SyntheticDataset) -> None:
    """A reference that is right on the first person and wrong on the others: only the first
    person's labelled keypoints are judged, and a candidate that moves the wrong ones does
    not count against the export while one that moves the right ones does."""
    from rtmw.data.evalset import load_eval_set
    from rtmw.data.evaluation import evaluate_wholebody, instance_result
    from rtmw.harness import AccuracyRun, fidelity, reference_correct
    from rtmw.pipeline.topdown import PoseResult

    eval_set = load_eval_set(synthetic_val.image_dir, synthetic_val.ann_file, limit=3)
    truth = {}
    for person in eval_set.annotations.persons:
        truth.setdefault(person.image_id, []).append(person)
    reference, wrong_moved, right_moved = {}, {}, {}
    for item in eval_set.items:
        gts = truth[item.image_id]
        kpts = np.stack([g.keypoints[:, :2] for g in gts]).astype(np.float32)
        kpts[1:] += 500.0  # every person but the first is placed far off
        scores = np.ones(kpts.shape[:2], np.float32)
        geometry = (np.zeros((len(gts), 2), np.float32), np.ones((len(gts), 2), np.float32))
        reference[item.image_id] = PoseResult(kpts, scores, *geometry)
        moved = kpts.copy()
        moved[1:] += 40.0
        wrong_moved[item.image_id] = PoseResult(moved, scores, *geometry)
        moved = kpts.copy()
        moved[0] += 40.0
        right_moved[item.image_id] = PoseResult(moved, scores, *geometry)
    masks = reference_correct(reference, eval_set)
    for item in eval_set.items:
        labelled = truth[item.image_id][0].keypoints[:, 2] > 0
        assert (masks[item.image_id][0] == labelled).all()
        assert not masks[item.image_id][1:].any()

    results = [
        instance_result(i, r.keypoints[n], r.scores[n], bbox_score=1.0, area=1e4)
        for i, r in reference.items()
        for n in range(len(r))
    ]
    # AP is not what this test is about: one evaluation serves all three runs
    evaluation = evaluate_wholebody(eval_set.ann_file, results, image_ids=list(reference))

    def as_run(preds: dict) -> AccuracyRun:
        return AccuracyRun(evaluation, preds, results)

    ref_run = as_run(reference)
    untouched = fidelity(as_run(wrong_moved), ref_run, reference_name="ref", eval_set=eval_set)
    damaged = fidelity(as_run(right_moved), ref_run, reference_name="ref", eval_set=eval_set)
    body = "body"
    assert untouched["parts"][body]["px_p99"] == pytest.approx(0.0)
    assert untouched["parts"][body]["px_p99_all"] == pytest.approx(40 * np.sqrt(2), rel=1e-3)
    assert damaged["parts"][body]["px_p99"] == pytest.approx(40 * np.sqrt(2), rel=1e-3)


def test_bench_exports_a_checkpoint_first_through_the_api(tmp_path: Path) -> None:
    """``rtmw-bench CHECKPOINT --targets onnx``: the export runs in rtmw.workflows (the CLI
    only calls it), then the exported folder is benchmarked."""
    from conftest import small_demo

    from rtmw.cli.bench import main as bench_cli
    from rtmw.errors import InputError
    from rtmw.workflows.gate import export_for_bench

    with pytest.raises(InputError, match="exactly one checkpoint"):
        export_for_bench([str(small_demo()), str(small_demo())], "onnx", tmp_path / "x")
    out = tmp_path / "run"
    args = [str(small_demo()), "--targets", "onnx", "--batch", "1", "--iters", "1",
            "--repeats", "1", "--warmup", "0", "--out", str(out), "-q"]  # fmt: skip
    result = CliRunner().invoke(bench_cli, args)
    assert result.exit_code == 0, result.output
    (entry,) = load_results(out).entries
    assert entry.ok and entry.name == "onnx"
    assert (out / "artifacts" / "onnx" / "artifact.json").is_file()


def test_cli_accuracy_only_times_nothing_and_says_so(
    demo_artifacts: Path, synthetic_val: SyntheticDataset, tmp_path: Path
) -> None:
    """An emulator's or simulator's timing is not the device's speed: --accuracy-only scores
    AP with no timed call, and results.json and results.md say nothing was timed."""
    from rtmw.cli.bench import main

    out = tmp_path / "acc"
    data = ["--images", str(synthetic_val.image_dir), "--ann", str(synthetic_val.ann_file)]
    args = [str(demo_artifacts / "onnx"), *data, "--limit", "2", "--no-flip", "--accuracy-only"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["accuracy_only"] and results["settings"]["timing"] is None
    assert results["baseline"] is None
    (entry,) = results["entries"]
    assert "accuracy" in entry and "latency" not in entry and "e2e" not in entry
    assert "**Accuracy only**" in (out / "results.md").read_text()
    # with nothing to score there is nothing to run
    bare = CliRunner().invoke(main, [str(demo_artifacts / "onnx"), "--accuracy-only",
                                     "--out", str(tmp_path / "bare")])  # fmt: skip
    assert bare.exit_code == 2 and "needs --images and --ann" in bare.output
