"""rknn-fp16 / rknn-int8: Rockchip's NPU models, built by rknn-toolkit2 in an environment
of its own and verified in its simulator; a board runs them with rknn-toolkit-lite2.

The toolkit-free parts (which layers a policy keeps float16, what the toolkit's error lines
say) run everywhere; the builds need ``make rknn-toolchain``; the NPU needs a board."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import has_module, small_demo

from rtmw import runtimes
from rtmw.artifact import read_artifact
from rtmw.calib import CalibrationSet
from rtmw.errors import PrecisionUnavailable
from rtmw.export import export
from rtmw.export.quant_policy import POLICIES
from rtmw.runtimes.precision import required_execution
from rtmw.runtimes.rknn import toolchain_missing, toolkit_errors
from rtmw.schemas import Status

pytestmark = [pytest.mark.precision, pytest.mark.rknn]
needs_onnx = pytest.mark.skipif(not has_module("onnx"), reason="onnx not installed (rtmw[rknn])")
needs_toolkit = pytest.mark.skipif(toolchain_missing() is not None,
                                   reason=str(toolchain_missing()))  # fmt: skip


def _worker() -> object:
    """rknn_worker.py is a script for the toolkit's environment; its helpers import numpy only."""
    path = Path(runtimes.__file__).with_name("rknn_worker.py")
    spec = importlib.util.spec_from_file_location("rknn_worker_for_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STEP1_CFG = """custom_quantize_layers: {}
quantize_parameters:
    input:
        dtype: float32
    /backbone/stem/stem.0/conv/Conv_output_0:
        dtype: int8
    /head/Concat_3_output_0-rs:
        dtype: int8
    /head/Concat_3_output_0_rs_pow:
        dtype: int8
    /head/gau/uv/MatMul_output_0_mm_tp_sw:
        dtype: int8
    '/head/gau/o/MatMul#2':
        dtype: int8
    simcc_x_mm_tp:
        dtype: int8
    simcc_x_int8:
        dtype: int8
"""


def test_policy_layers_are_found_by_the_toolkit_names_that_start_with_the_onnx_names(
    tmp_path: Path,
) -> None:
    config = tmp_path / "model.quantization.cfg"
    config.write_text(STEP1_CFG)
    worker: object = _worker()
    kept = worker.keep_float(  # type: ignore[attr-defined]
        config, ["/head/Concat_3_output_0", "/head/gau/uv/MatMul_output_0", "/head/gau/o/MatMul",
                 "simcc_x"],
    )  # fmt: skip
    # the ScaleNorm square named after the GAU's input, the renamed matmuls, the output;
    # never the backbone, never the toolkit's int8 output conversion
    assert kept == ["/head/Concat_3_output_0-rs", "/head/Concat_3_output_0_rs_pow",
                    "/head/gau/uv/MatMul_output_0_mm_tp_sw", "/head/gau/o/MatMul#2",
                    "simcc_x_mm_tp"]  # fmt: skip
    written = config.read_text().split("quantize_parameters:")[0]
    assert "    '/head/gau/o/MatMul#2': float16\n" in written and "stem" not in written
    with pytest.raises(RuntimeError, match="none of the policy's tensors"):
        config.write_text(STEP1_CFG)
        worker.keep_float(config, ["/neck/"])  # type: ignore[attr-defined]


@needs_onnx
def test_float_tensors_cover_the_policy_nodes_and_what_they_read(tmp_path: Path) -> None:
    from rtmw.export.targets.rknn import float_tensors

    made = export(small_demo(), ["onnx"], tmp_path)[0]
    assert made.path is not None
    names = float_tensors(made.path / "model.onnx", POLICIES["head-fp32"])
    assert "simcc_x" in names and "simcc_y" in names
    assert any(n.startswith("/head/gau/") for n in names)
    assert not any(n.startswith(("/backbone/", "/neck/")) for n in names)
    assert "input" not in names and not any(n.startswith("head.") for n in names)  # no weights


def test_toolkit_error_lines_are_counted_without_their_timestamps() -> None:
    log = "\n".join([
        "I rknn building ...",
        "E RKNN: [03:08:49.402] REGTASK: The bit width of field value exceeds the limit",
        "E RKNN: [03:08:49.455] REGTASK: The bit width of field value exceeds the limit",
        "\x1b[1;31mE\x1b[0m \x1b[1;31mE RKNN: [03:08:50.001] other\x1b[0m",
    ])  # fmt: skip
    found = toolkit_errors(log)
    assert found[0]["count"] == 2 and found[0]["message"].startswith("REGTASK")
    assert len(found) == 2


def test_npu_precision_contract() -> None:
    host = {"native": {}, "isa_class": "x86-64"}
    assert required_execution("fp16", "simulator", host) == "f16"
    assert required_execution("int8", "npu", host, float_parts="fp16") == "f16"
    with pytest.raises(PrecisionUnavailable, match="NPU"):
        required_execution("int8", "cpu", host, float_parts="fp16")


@pytest.fixture(scope="module")
def int8_pair(
    tmp_path_factory: pytest.TempPathFactory, calib_set: CalibrationSet
) -> dict[str, object]:
    out = tmp_path_factory.mktemp("rknn")
    kept = export(small_demo(), ["rknn-int8"], out / "kept", calib=calib_set,
                  int8_policy="head-neck-fp32")[0]  # fmt: skip
    every = export(small_demo(), ["rknn-int8"], out / "none", calib=calib_set,
                   int8_policy="none")[0]  # fmt: skip
    return {"kept": kept, "none": every}


@needs_onnx
@needs_toolkit
def test_int8_policy_keeps_its_layers_float16_and_that_is_what_verifies(
    int8_pair: dict,
) -> None:
    kept = int8_pair["kept"]
    assert kept.status == Status.OK, kept.reason
    options = read_artifact(kept.path).manifest.options
    assert options["float_parts"] == "fp16" and options["float_layers"] > 50
    assert options["policy"] == "head-neck-fp32" and options["batch"] == 1
    assert options["platform"] == "rk3588"  # the default SoC
    assert isinstance(options["toolkit_errors"], list)  # recorded, whatever the toolkit said
    # every layer int8 (ScaleNorm's squares included) is far worse than the policy's
    every = int8_pair["none"]
    kept_rel = read_artifact(kept.path).manifest.verification["max_rel_diff"]
    if every.status == Status.OK:
        assert read_artifact(every.path).manifest.verification["max_rel_diff"] > 2 * kept_rel
    else:
        assert every.status == Status.FAILED and "max rel" in str(every.reason)


@needs_onnx
@needs_toolkit
def test_simulator_runs_the_artifact_and_cpu_is_refused(int8_pair: dict) -> None:
    path = int8_pair["kept"].path
    crops = np.zeros((3, 3, 256, 192), np.float32)
    with runtimes.open(path, device="simulator") as sim:
        assert "simulator" in sim.device and sim.execution["contract"] == "f16"
        got = sim.infer(crops)
    assert got["simcc_x"].shape == (3, 133, 384) and np.isfinite(got["simcc_x"]).all()
    with pytest.raises(Exception, match=r"simulator|npu|NPU"):
        runtimes.open(path, device="cpu")


@needs_onnx
@needs_toolkit
def test_small_model_fp16_misses_the_fp16_tolerance_and_leaves_nothing(tmp_path: Path) -> None:
    made = export(small_demo(), ["rknn-fp16"], tmp_path)[0]
    assert made.status == Status.FAILED
    assert "verification failed" in str(made.reason) and "max rel" in str(made.reason)
    assert not (tmp_path / "rknn-fp16").exists() and not list(tmp_path.glob(".*staging*"))


NPU_MARKERS = ("/sys/module/rknpu", "/dev/rknpu", "/sys/kernel/debug/rknpu")


def _board() -> str | None:
    """Why the NPU test cannot run here, or None on a Rockchip board."""
    if not has_module("rknnlite"):
        return "rknn-toolkit-lite2 not installed (rtmw[rknn] on an aarch64 Rockchip board)"
    if not any(Path(marker).exists() for marker in NPU_MARKERS):
        return "no RKNPU driver here (runs on an RK3588/RK3576/RK3566 board)"
    return None


@needs_onnx
@needs_toolkit
@pytest.mark.skipif(_board() is not None, reason=str(_board()))
def test_board_npu_agrees_with_the_fixed_batch_onnx_it_was_built_from(int8_pair: dict) -> None:
    import onnxruntime as ort

    path = int8_pair["kept"].path
    crops = np.random.default_rng(0).normal(size=(2, 3, 256, 192)).astype(np.float32)
    with runtimes.open(path, device="npu") as npu:
        assert npu.execution["reported"]["device"] == "npu"
        got = npu.infer(crops)
    session = ort.InferenceSession(str(path / "model_fixed.onnx"))
    want = np.concatenate([session.run(["simcc_x"], {"input": c[None]})[0] for c in crops])
    agree = np.mean(np.abs(got["simcc_x"].argmax(-1) - want.argmax(-1)) <= 4)
    assert agree > 0.7  # the INT8 verification's own floor


def test_unknown_rknn_platform_is_a_usage_error() -> None:
    from rtmw.errors import UsageError
    from rtmw.export.context import ExportOptions

    assert ExportOptions(rknn_platform="rk3576").rknn_platform == "rk3576"
    with pytest.raises(UsageError, match="unknown RKNN platform 'rk9999'"):
        ExportOptions(rknn_platform="rk9999")
