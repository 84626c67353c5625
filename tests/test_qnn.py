"""qnn-w8a16: the Q/DQ ONNX for Qualcomm's HTP (8-bit weights, 16-bit activations), run by
onnxruntime's CPU kernels everywhere and by the QNN HTP backend (Qualcomm's x86 emulator
here) where onnxruntime-qnn is installed; on the HTP the policy's float parts run in f16
(it has no f32), pinned and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import has_module, small_demo

from rtmw import runtimes
from rtmw.artifact import read_artifact
from rtmw.calib import CalibrationSet
from rtmw.export import export

pytestmark = [pytest.mark.precision, pytest.mark.qnn]
needs_onnx = pytest.mark.skipif(not has_module("onnxruntime"), reason="onnxruntime not installed")
needs_htp = pytest.mark.skipif(not has_module("onnxruntime_qnn"),
                               reason="onnxruntime-qnn not installed (rtmw[qnn])")  # fmt: skip


@pytest.fixture(scope="module")
def w8a16(tmp_path_factory: pytest.TempPathFactory, calib_set: CalibrationSet) -> Path:
    out = tmp_path_factory.mktemp("qnn")
    made = export(small_demo(), ["qnn-w8a16"], out, calib=calib_set, int8_policy="none")
    assert made[0].path is not None, made[0].reason
    return made[0].path


@needs_onnx
def test_w8a16_has_16_bit_activations_8_bit_weights_and_a_fixed_batch(w8a16: Path) -> None:
    import onnx

    manifest = read_artifact(w8a16).manifest
    assert manifest.io["batch"] == 1 and manifest.options["kept_in_float"] == 0
    model = onnx.load(str(w8a16 / "model.onnx"))
    types = {init.name: init.data_type for init in model.graph.initializer}
    activations = {types[n.input[2]] for n in model.graph.node
                   if n.op_type == "QuantizeLinear" and len(n.input) > 2}  # fmt: skip
    weights = {types[n.input[0]] for n in model.graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in types}  # fmt: skip
    assert activations == {onnx.TensorProto.UINT16}  # every activation 16-bit
    assert onnx.TensorProto.UINT8 in weights  # the convolutions' weights 8-bit


@needs_onnx
@needs_htp
def test_htp_backend_runs_a_fully_quantised_artifact(
    w8a16: Path, calib_set: CalibrationSet
) -> None:
    manifest = read_artifact(w8a16).manifest
    emulation = manifest.options["htp_emulation"]
    assert emulation["ran"] and emulation["float_parts"] == "none"
    # the HTP's integer kernels are not onnxruntime's Q/DQ arithmetic: the emulator's peaks
    # agree with the CPU run's far above chance (1/384), not exactly (the figure is recorded)
    assert emulation["argmax_agreement_vs_cpu"] > 0.3
    assert emulation["passed"] == (
        emulation["argmax_agreement_vs_torch_4_bins"] >= emulation["min_argmax_agreement"]
    )
    crops = calib_set.inputs[:2]
    with runtimes.open(w8a16, device="htp") as htp, runtimes.open(w8a16, device="cpu") as cpu:
        assert "HTP" in htp.device and htp.execution["reported"]["cpu_fallback"] == "disabled"
        assert htp.execution["contract"] == "f16" and cpu.execution["contract"] == "f32"
        got, want = htp.infer(crops), cpu.infer(crops)
    agree = np.mean(got["simcc_x"].argmax(-1) == want["simcc_x"].argmax(-1))
    assert agree > 0.3 and np.isfinite(got["simcc_x"]).all()


@needs_onnx
@needs_htp
def test_htp_runs_the_policys_float_parts_in_f16_pinned_and_read_back(
    tmp_path: Path, calib_set: CalibrationSet
) -> None:
    kept = export(small_demo(), ["qnn-w8a16"], tmp_path, calib=calib_set,
                  int8_policy="head-neck-fp32")[0]  # fmt: skip
    assert kept.path is not None, kept.reason
    options = read_artifact(kept.path).manifest.options
    assert options["kept_in_float"] > 0
    assert options["htp_emulation"]["float_parts"] == "f16"
    assert options["htp_emulation"]["float_nodes"] == options["kept_in_float"]
    crops = calib_set.inputs[:2]
    with runtimes.open(kept.path, device="htp") as htp:
        # the contract for the HTP, and what the QNN EP reports it took
        assert htp.execution["contract"] == "f16" and "float nodes in f16" in htp.device
        assert htp.execution["reported"]["enable_htp_fp16_precision"] == "1"
        got = htp.infer(crops)
    with runtimes.open(kept.path, device="cpu") as cpu:
        assert cpu.execution["contract"] == "f32"  # the same file, f32 float parts here
        want = cpu.infer(crops)
    agree = np.mean(np.abs(got["simcc_x"].argmax(-1) - want["simcc_x"].argmax(-1)) <= 4)
    assert agree > 0.7 and np.isfinite(got["simcc_x"]).all()
