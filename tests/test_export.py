"""rtmw-export: every target exports, verifies, and runs through rtmw.runtimes + rtmw.pipeline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import has_module

from rtmw import runtimes
from rtmw.artifact import ArtifactError, read_artifact
from rtmw.cli.export import main as export_main
from rtmw.data.synthetic import render_image
from rtmw.errors import InputError, MissingDependency
from rtmw.export import DEFAULT_TOLERANCES, Tolerances, export, list_targets
from rtmw.harness.verify import check_structure, clear_peaks, compare
from rtmw.models import build, load_checkpoint, save_checkpoint
from rtmw.pipeline import ModelOutputs, TopDown
from rtmw.runtimes import DeviceUnavailable

pytestmark = [
    pytest.mark.onnx,
    pytest.mark.skipif(
        not (has_module("onnx") and has_module("onnxruntime")),
        reason="onnx/onnxruntime not installed",
    ),
]

NEEDS = {
    "onnx-fp16": ("onnxconverter_common",),
    "openvino-fp32": ("openvino",),
    "openvino-fp16": ("openvino",),
    "ncnn-fp32": ("pnnx", "ncnn"),
    "ncnn-fp16": ("pnnx", "ncnn"),
}
RUNNABLE = ["onnx", "onnx-fp16", "openvino-fp32", "openvino-fp16", "ncnn-fp32", "ncnn-fp16"]


def _available(target: str) -> bool:
    return all(has_module(m) for m in NEEDS.get(target, ()))


# rtmw-l-384x288 adds over rtmw-m what depends on the input size and the deeper, wider
# graph: the ONNX export (SimCC widths 576/768), the OpenVINO IR and the pnnx trace at a
# fixed size. FP16 and the TensorRT stand-in add nothing there that rtmw-m does not test.
LARGE = "rtmw-l-384x288"
LARGE_TARGETS = ["onnx", "openvino-fp32", "ncnn-fp32"]
CASES = [pytest.param("exported", t, id=f"rtmw-m-256x192-{t}") for t in RUNNABLE] + [
    pytest.param("exported_large", t, marks=pytest.mark.slow, id=f"{LARGE}-{t}")
    for t in LARGE_TARGETS
]


def _export_all(name: str, targets: list[str], root: Path):
    checkpoint = save_checkpoint(build(name, seed=7), root / "model.pth")
    available = [t for t in targets if _available(t)]
    results = {r.target: r for r in export(checkpoint, available, root / "artifacts")}
    return name, checkpoint, root / "artifacts", results


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory):
    """Every runnable target of a random-init rtmw-m, exported once for the session."""
    name = "rtmw-m-256x192"
    return _export_all(name, [*RUNNABLE, "trt-fp16"], tmp_path_factory.mktemp(name))


@pytest.fixture(scope="session")
def exported_large(tmp_path_factory: pytest.TempPathFactory):
    """What rtmw-l-384x288 adds over rtmw-m (LARGE_TARGETS), exported once."""
    return _export_all(LARGE, LARGE_TARGETS, tmp_path_factory.mktemp(LARGE))


@pytest.fixture
def exported_case(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


@pytest.mark.precision
@pytest.mark.parametrize(("exported_case", "target"), CASES, indirect=["exported_case"])
def test_target_exports_and_verifies(exported_case, target: str) -> None:
    if not _available(target):
        pytest.skip(f"{', '.join(NEEDS[target])} not installed")
    name, checkpoint, out, results = exported_case
    result = results[target]
    assert result.status == "ok", result.reason
    artifact = read_artifact(out / target)
    manifest = artifact.manifest
    assert manifest.model == name and manifest.target == target
    assert manifest.source["sha256"] == load_checkpoint(checkpoint)[1].extra["sha256"]
    verification = manifest.verification
    assert verification["passed"] and verification["finite"]
    limits = DEFAULT_TOLERANCES[manifest.precision]
    assert verification["max_rel_diff"] <= limits.max_rel_diff
    assert verification["inputs"]["random"] == 3 and verification["inputs"]["persons"] >= 1
    assert {"torch", "numpy", "rtmw"} <= set(manifest.tools)
    assert not list(out.glob(".*staging*"))  # nothing half-written left behind


@pytest.mark.precision
@pytest.mark.parametrize(("exported_case", "target"), CASES, indirect=["exported_case"])
def test_runtime_and_pipeline_match_torch(exported_case, target: str) -> None:
    if not _available(target):
        pytest.skip(f"{', '.join(NEEDS[target])} not installed")
    _, checkpoint, out, _ = exported_case
    model, config = load_checkpoint(checkpoint)

    def torch_infer(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            x, y = model(torch.from_numpy(batch))
        return x.numpy(), y.numpy()

    scenes = [render_image(np.random.default_rng([42, i]), 1, 1) for i in range(3)]
    image = np.concatenate([cv2.resize(s[0], (320, 240)) for s in scenes], axis=1)
    boxes = np.array([[40, 20, 200, 230], [360, 10, 600, 235], [700, 30, 900, 220]], float)
    reference_pose = TopDown(torch_infer, config.input_size)
    with runtimes.open(out / target) as runner:
        assert runner.device.startswith("cpu"), runner.device
        pose = TopDown(runner, config.input_size)
        batch = pose.preprocess(image, boxes)
        ref_outputs = reference_pose.run_model(batch)  # flip-fused logits
        cand_outputs = pose.run_model(batch)
        end_to_end = pose(image, boxes)
    ref_x, ref_y = ref_outputs.unpack("simcc_x", "simcc_y")
    cand_x, cand_y = cand_outputs.unpack("simcc_x", "simcc_y")
    reference = reference_pose.decode(ref_outputs, batch)
    result = pose.decode(cand_outputs, batch)
    np.testing.assert_array_equal(end_to_end.keypoints, result.keypoints)
    limits = DEFAULT_TOLERANCES[read_artifact(out / target).manifest.precision]
    scale = max(np.abs(ref_x).max(), np.abs(ref_y).max())
    assert (
        max(np.abs(cand_x - ref_x).max(), np.abs(cand_y - ref_y).max()) / scale
        <= limits.max_rel_diff
    )
    # random weights give flat logits: compare keypoints where the reference peak is clear
    gap = 2 * limits.max_rel_diff * scale
    clear = clear_peaks(ref_x, gap) & clear_peaks(ref_y, gap)
    assert clear.sum() >= 5, f"only {clear.sum()} clear reference peaks: comparison meaningless"
    crop_px = reference.scales[:, None, 0] / config.input_size[0]
    error = np.linalg.norm(result.keypoints - reference.keypoints, axis=-1) / crop_px
    assert np.percentile(error[clear], 99) <= limits.max_keypoint_px_p99


def test_tensorrt_without_tensorrt_writes_verified_onnx(exported) -> None:
    from rtmw.runtimes.tensorrt import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT present: the engine path is tested in test_tensorrt_engine")
    _, _, out, results = exported
    result = results["trt-fp16"]
    assert result.status == "onnx-only" and result.exit_code == 3
    assert "TensorRT not installed; the ONNX for building on the target is at" in result.reason
    artifact = read_artifact(out / "trt-fp16-onnx")
    assert set(artifact.manifest.files) == {"model.onnx", "model_fp32.onnx"}
    assert artifact.manifest.verification["passed"]
    assert not (out / "trt-fp16").exists()


@pytest.mark.tensorrt
def test_tensorrt_engine(tmp_path: Path, rtmw_m_checkpoint: Path) -> None:
    from rtmw.runtimes.tensorrt import tensorrt_available

    if not tensorrt_available() or not torch.cuda.is_available():
        pytest.skip("TensorRT and a CUDA GPU are required (tensorrt not installed here)")
    (result,) = export(rtmw_m_checkpoint, "trt-fp16", tmp_path)
    assert result.status == "ok", result.reason
    with runtimes.open(tmp_path / "trt-fp16", device="cuda") as runner:
        x = runner.infer(np.zeros((4, 3, 256, 192), np.float32))["simcc_x"]
    assert x.shape == (4, 133, 384)


def test_fp16_onnx_keeps_scalenorm_in_fp32(exported) -> None:
    import onnx

    _, _, out, _ = exported
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(out / "onnx-fp16" / "model.onnx")))
    types = {v.name: v.type.tensor_type.elem_type for v in proto.graph.value_info}
    norms = [n for n in proto.graph.node if n.op_type == "ReduceL2"]
    assert len(norms) == 3  # mlp, mlp2 and the GAU's ScaleNorm
    for node in norms:
        assert types.get(node.input[0]) == onnx.TensorProto.FLOAT, node.name
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert any(types.get(n.output[0]) == onnx.TensorProto.FLOAT16 for n in convs)
    assert read_artifact(out / "onnx-fp16").manifest.options["opset"] == 17


def test_fp16_outputs_stay_finite_on_large_inputs(exported) -> None:
    _, _, out, _ = exported
    manifest = read_artifact(out / "onnx-fp16").manifest
    width, height = manifest.input_size
    loud = np.random.default_rng(0).normal(0, 40, (2, 3, height, width)).astype(np.float32)
    with runtimes.open(out / "onnx-fp16") as runner:
        x, y = runner.infer(loud).unpack("simcc_x", "simcc_y")
    assert np.isfinite(x).all() and np.isfinite(y).all()


def test_tampered_artifact_refused(exported, tmp_path: Path) -> None:
    _, _, out, _ = exported
    copy = tmp_path / "onnx"
    shutil.copytree(out / "onnx", copy)
    with (copy / "model.onnx").open("r+b") as handle:
        handle.seek(-100, 2)
        handle.write(b"\x00" * 8)
    with pytest.raises(ArtifactError, match="does not match its recorded sha256"):
        runtimes.open(copy)
    (copy / "artifact.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        runtimes.open(copy)
    with pytest.raises(ArtifactError, match=r"no artifact\.json"):
        runtimes.open(tmp_path)


@pytest.mark.parametrize(
    ("target", "device"),
    [("onnx", "cuda"), ("onnx", "tensorrt"), ("openvino-fp32", "gpu"), ("ncnn-fp32", "vulkan"),
     ("onnx", "metal")],
)  # fmt: skip
def test_requested_device_or_nothing(exported, target: str, device: str) -> None:
    """Either the artifact runs on the device asked for, or it is refused: never elsewhere.

    Which branch a host takes depends on its hardware (a GPU, an iGPU, a software Vulkan
    driver); the assertion does not: a silent CPU run fails the test on every host.
    """
    if not _available(target):
        pytest.skip(f"{', '.join(NEEDS[target])} not installed")
    _, _, out, _ = exported
    names = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider",
             "gpu": "GPU", "vulkan": "vulkan"}  # fmt: skip
    if device not in names:  # no backend knows this device
        with pytest.raises(DeviceUnavailable):
            runtimes.open(out / target, device=device)
        return
    try:
        runner = runtimes.open(out / target, device=device)
    except DeviceUnavailable:
        return
    with runner:
        assert names[device] in runner.device and "CPU" not in runner.device.split("(")[-1]


def test_runtime_refuses_bad_batches(exported) -> None:
    _, _, out, _ = exported
    with runtimes.open(out / "onnx") as runner:
        _, _, height, width = runner.input_spec.shape
        assert runner.input_spec.shape[0] is None  # dynamic batch
        with pytest.raises(InputError, match="float32"):
            runner.infer(np.zeros((1, 3, height, width), np.float64))
        with pytest.raises(InputError, match="got"):
            runner.infer(np.zeros((1, 3, height + 1, width), np.float32))


def test_ncnn_loops_over_the_batch_and_matches_single_crops(exported) -> None:
    """ncnn is batch-1; a batch of 3 must equal three single runs (input buffers kept alive)."""
    if not _available("ncnn-fp32"):
        pytest.skip("pnnx/ncnn not installed")
    _, _, out, _ = exported
    with runtimes.open(out / "ncnn-fp32") as runner:
        assert runner.loops_over_batch
        _, _, height, width = runner.input_spec.shape
        batch = np.random.default_rng(1).standard_normal((3, 3, height, width)).astype(np.float32)
        together = runner.infer(batch)["simcc_x"]
        singles = np.concatenate([runner.infer(batch[i : i + 1])["simcc_x"] for i in range(3)])
    np.testing.assert_allclose(together, singles, rtol=1e-5, atol=1e-4)


def test_verification_failure_leaves_nothing(rtmw_m_checkpoint: Path, tmp_path: Path) -> None:
    impossible = {"fp32": Tolerances(max_rel_diff=1e-12, min_argmax_agreement=1.0,
                                      max_keypoint_px_p99=0.0)}  # fmt: skip
    (result,) = export(rtmw_m_checkpoint, "onnx", tmp_path, tolerances=impossible)
    assert result.status == "failed" and result.exit_code == 1
    assert "verification failed: max rel |Δ|" in result.reason and "argmax" in result.reason
    assert list(tmp_path.iterdir()) == []


def test_missing_backend_is_reported(rtmw_m_checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    from rtmw.export import api

    monkeypatch.setattr(api, "_missing_modules", lambda spec: ["openvino"])
    (result,) = export(rtmw_m_checkpoint, "openvino-fp32", tmp_path)
    assert result.status == "skipped" and result.exit_code == 3
    assert "pip install 'rtmw[openvino-runtime]'" in result.reason


def test_cli_export_and_errors(rtmw_m_checkpoint: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        export_main, [str(rtmw_m_checkpoint), "--target", "onnx", "--out", str(tmp_path)]
    )
    assert ok.exit_code == 0, ok.output
    *_, line, summary = ok.output.strip().splitlines()
    assert line.startswith("onnx ") and summary == "export: 1 ok"
    again = runner.invoke(
        export_main, [str(rtmw_m_checkpoint), "--target", "onnx", "--out", str(tmp_path)]
    )
    assert again.exit_code == 1 and "exists; pass overwrite" in again.output
    unknown = runner.invoke(
        export_main, [str(rtmw_m_checkpoint), "--target", "coreml", "--out", str(tmp_path)]
    )
    assert unknown.exit_code == 2  # a usage error (README's exit-code table)
    assert unknown.output.strip() == (
        "error: unknown target 'coreml'; known: " + ", ".join(list_targets())
    )
    manifest = json.loads((tmp_path / "onnx" / "artifact.json").read_text())
    assert manifest["schema"] == "rtmw.artifact/1" and manifest["format"] == "onnx"


def test_tensorrt_runtime_without_tensorrt(exported) -> None:
    from rtmw.artifact import Artifact
    from rtmw.runtimes.tensorrt import TensorRTRunner, tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT present")
    _, _, out, _ = exported
    artifact = read_artifact(out / "onnx")
    fake = Artifact(artifact.path, artifact.manifest)
    with pytest.raises(MissingDependency, match="TensorRT is not installed"):
        TensorRTRunner(fake, device="cuda").activate()


def _fixed_logits(batch: np.ndarray) -> ModelOutputs:
    """A deterministic stand-in model: logits that depend only on the batch's pixels."""
    seed = int(abs(float(batch.sum())) * 1000) % 2**32
    rng = np.random.default_rng(seed)
    n = len(batch)
    return ModelOutputs({"simcc_x": rng.normal(size=(n, 133, 384)),
                         "simcc_y": rng.normal(size=(n, 133, 512))})  # fmt: skip


def test_verification_loops_over_output_names() -> None:
    """Every output is compared by its name: the same arrays listed in another order are a
    failure of the artifact's names, not a numeric comparison of simcc_x with simcc_y."""
    inputs = {"random": np.random.default_rng(0).normal(size=(2, 3, 256, 192)).astype(np.float32)}
    same = compare(_fixed_logits, _fixed_logits, inputs, DEFAULT_TOLERANCES["fp32"])
    assert same.passed and set(same.outputs) == {"simcc_x", "simcc_y"}
    assert all(s["max_abs_diff"] == 0 and s["argmax_agreement"] == 1 for s in same.outputs.values())

    def swapped(batch: np.ndarray) -> ModelOutputs:
        x, y = _fixed_logits(batch).unpack("simcc_x", "simcc_y")
        return ModelOutputs({"simcc_y": y, "simcc_x": x})

    report = compare(swapped, _fixed_logits, inputs, DEFAULT_TOLERANCES["fp32"])
    assert not report.passed
    assert report.failures == [
        "outputs simcc_y, simcc_x differ from the reference's simcc_x, simcc_y"
    ]
    structure = check_structure(swapped, _fixed_logits, inputs)
    assert not structure.passed and "differ from torch's" in structure.failures[0]
