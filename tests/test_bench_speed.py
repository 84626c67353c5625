"""Latency-only artifacts, the host's peak, fair threads, memory and streaming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import has_module

from rtmw import runtimes
from rtmw.bench import BenchSettings, TimingPlan, bench, load_results, markdown
from rtmw.bench.gate import gate, load_budgets
from rtmw.bench.peak import clock_ghz, compute_precision, host_peak, macs_per_cycle
from rtmw.bench.run import fixed_inputs, peak_rss_mb, reset_peak_rss
from rtmw.bench.stream import stream
from rtmw.data.synthetic import SyntheticDataset
from rtmw.errors import UsageError
from rtmw.export import export
from rtmw.host import cpu_fingerprint
from rtmw.pipeline import TopDown

QUICK = TimingPlan(warmup_s=0.0, seconds=None, iters=2, repeats=1)
needs_onnx = pytest.mark.skipif(not has_module("onnxruntime"), reason="onnxruntime not installed")

AVX2 = "flags : avx avx2 fma f16c\nvendor_id : GenuineIntel\nmodel name : Xeon @ 2.50GHz\n"
VNNI = (
    "flags : avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16\nvendor_id : AuthenticAMD\n"
)


def test_peak_follows_isa_precision_and_clock() -> None:
    avx2 = cpu_fingerprint(AVX2, env={}, arch="x86_64")
    zen4 = cpu_fingerprint(VNNI, env={}, arch="x86_64")
    assert macs_per_cycle(avx2, "fp32")[0] == 16 and macs_per_cycle(avx2, "int8")[0] == 32
    assert macs_per_cycle(avx2, "bf16")[0] == 0  # no bf16 arithmetic: no peak at all
    assert macs_per_cycle(zen4, "int8")[0] == 4 * macs_per_cycle(zen4, "fp32")[0] == 64
    assert macs_per_cycle(zen4, "bf16")[0] == 32
    assert compute_precision("fp16", zen4) == "fp32"  # f32 compute without native FP16
    assert clock_ghz(AVX2, env={}) == ((2.5, 2.5), "model name")
    (low, high), source = clock_ghz("cpu MHz : 2600.0\n", env={})
    assert (low, high) == (2.6, 3.7) and "assumed" in source
    assert clock_ghz("", env={"RTMW_CPU_GHZ": "3.1"})[0] == (3.1, 3.1)
    peak = host_peak(avx2, "fp32", cores=2)
    assert peak is not None
    low, high = peak.gmacs
    assert low <= 2 * 16 * peak.clock_ghz[0] + 1e-9 and high == pytest.approx(
        2 * 16 * peak.clock_ghz[1]
    )
    assert host_peak(avx2, "bf16") is None


def test_peak_rss_mark_resets() -> None:
    if not reset_peak_rss():
        pytest.skip("this kernel does not allow /proc/self/clear_refs (peak RSS not resettable)")
    import mmap

    base = peak_rss_mb()  # the mark at the current resident size
    block = mmap.mmap(-1, 64 * 2**20)  # fresh anonymous pages, not reused heap
    for offset in range(0, len(block), 4096):
        block[offset] = 1  # touch every page
    high = peak_rss_mb()
    block.close()
    assert reset_peak_rss()
    low = peak_rss_mb()
    assert base is not None and high is not None and low is not None
    assert high - base > 48  # the block shows in the mark ...
    assert high - low > 48  # ... and a reset takes it out again


@needs_onnx
def test_latency_only_exports_structure_and_bench_refuses_accuracy(
    demo_random_checkpoint: Path, synthetic_val: SyntheticDataset, tmp_path: Path
) -> None:
    made = export(demo_random_checkpoint, ["onnx"], tmp_path / "a", latency_only=True)
    assert made[0].status == "ok", made[0].reason
    manifest = json.loads((tmp_path / "a" / "onnx" / "artifact.json").read_text())
    verification = manifest["verification"]
    assert verification["mode"] == "latency-only" and verification["passed"]
    assert verification["output_shapes"] == verification["expected_shapes"]
    assert "argmax_agreement" not in verification  # no accuracy figure can pass for one
    settings = BenchSettings(batches=(1, 2), plan=QUICK, image_dir=str(synthetic_val.image_dir),
                             ann_file=str(synthetic_val.ann_file), draw=0, stream=4)  # fmt: skip
    run = bench([tmp_path / "a"], settings, tmp_path / "r", progress=False)
    (entry,) = run["entries"]
    assert entry["status"] == "ok" and entry["verification"] == "latency-only"
    assert "accuracy" not in entry and "fidelity" not in entry
    assert "latency-only" in entry["accuracy_refused"]
    assert entry["threads"] >= 1 and entry["latency"]["2"]["gmacs"] > 0
    assert entry["stream"]["frames"] == 4
    assert "ok (latency-only)" in markdown([load_results(tmp_path / "r")])
    verdict = gate(run, run, load_budgets(), candidates=["onnx"], reference_entry="onnx")
    assert not verdict.passed
    assert any(c.metric == "verification" and "latency-only" in c.detail for c in verdict.checks)
    with pytest.raises(UsageError, match="latency-only"):
        bench([tmp_path / "a"], BenchSettings(batches=(1,), plan=QUICK, draw=0,
              image_dir=str(synthetic_val.image_dir), ann_file=str(synthetic_val.ann_file),
              reference=str(tmp_path / "a" / "onnx")), tmp_path / "r2", progress=False)  # fmt: skip


@needs_onnx
def test_an_isolated_row_reports_its_own_peak_not_its_parents(
    demo_artifacts: Path, tmp_path: Path
) -> None:
    """A spawned child inherits getrusage's high-water mark from its parent on Linux; the
    row's peak must be the child's own (load and speed phases)."""
    if not reset_peak_rss():
        pytest.skip("this kernel does not allow /proc/self/clear_refs (peak RSS not resettable)")
    ballast = np.ones(1536 * 2**20 // 8)  # 1.5 GiB resident in the parent, touched
    settings = BenchSettings(batches=(1,), plan=QUICK, draw=0, isolate=True)
    run = bench([demo_artifacts / "onnx"], settings, tmp_path / "r", progress=False)
    (entry,) = run["entries"]
    assert entry["status"] == "ok" and entry["isolated"]
    phase_peaks = [entry["latency"]["1"]["peak_rss_mb"], entry["e2e"]["1"]["peak_rss_mb"]]
    assert entry["peak_rss_mb"] >= max(phase_peaks)
    assert entry["peak_rss_mb"] < 1536  # the child never held the parent's ballast
    assert float(ballast[-1]) == 1.0


@needs_onnx
def test_every_runtime_gets_the_same_threads(demo_artifacts: Path) -> None:
    for name in ("onnx", "torch", "openvino-fp32"):
        if not (demo_artifacts / name).is_dir():
            continue
        with runtimes.open(demo_artifacts / name) as runner:
            assert runner.threads == runtimes.base.default_threads()
            assert runner.execution["threads"] == runner.threads


@needs_onnx
def test_unknown_runtime_options_are_refused(demo_artifacts: Path) -> None:
    with pytest.raises(UsageError, match="unknown runtime option"):
        runtimes.open(demo_artifacts / "onnx", options={"performance_hint": "THROUGHPUT"})


@pytest.mark.skipif(not has_module("openvino"), reason="openvino not installed")
def test_openvino_throughput_hint_is_read_back(demo_artifacts: Path) -> None:
    options = {"performance_hint": "THROUGHPUT", "num_streams": "2"}
    with runtimes.open(demo_artifacts / "openvino-fp32", options=options) as runner:
        performance = runner.execution["performance"]
    assert performance["hint"] == "THROUGHPUT" and performance["streams"] == "2"


@needs_onnx
@pytest.mark.parametrize("name", ["onnx", "openvino-fp32"])
def test_stream_decodes_what_the_synchronous_pipeline_decodes(
    demo_artifacts: Path, name: str
) -> None:
    if not (demo_artifacts / name).is_dir():
        pytest.skip(f"{name} not exported here (its backend is not installed)")
    _, frame, boxes = fixed_inputs((192, 256), 1, 4, 0)
    with runtimes.open(demo_artifacts / name) as runner:
        sync = TopDown(runner.infer, (192, 256), max_batch=None)(frame, boxes)
        run = stream(runner, (192, 256), frame, boxes, 6, keep=True)
    assert run["frames"] == 6 and run["persons_per_s"] > 0
    assert run["frame_latency_ms"]["p99"] >= run["frame_latency_ms"]["p50"] > 0
    for result in run["results"]:
        np.testing.assert_allclose(result.keypoints, sync.keypoints, atol=1e-3)


@needs_onnx
def test_flip_in_a_second_call_gives_the_same_keypoints(demo_artifacts: Path) -> None:
    _, frame, boxes = fixed_inputs((192, 256), 1, 3, 0)
    with runtimes.open(demo_artifacts / "onnx") as runner:
        together = TopDown(runner.infer, (192, 256))(frame, boxes)
        apart = TopDown(runner.infer, (192, 256), flip_in_batch=False)(frame, boxes)
    np.testing.assert_allclose(apart.keypoints, together.keypoints, atol=1e-3)
