"""qnn-w8a16: the Q/DQ ONNX for Qualcomm's HTP (8-bit weights, 16-bit activations), run by
onnxruntime's CPU kernels everywhere and by the QNN HTP backend (Qualcomm's x86 emulator
here) where onnxruntime-qnn is installed; float parts are refused on the HTP (fp16 there)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import has_module, small_demo

from rtmw import runtimes
from rtmw.artifact import read_artifact
from rtmw.calib import CalibrationSet
from rtmw.errors import PrecisionUnavailable
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
def test_htp_backend_runs_a_fully_quantised_artifact_and_refuses_float_parts(
    w8a16: Path, tmp_path: Path, calib_set: CalibrationSet
) -> None:
    manifest = read_artifact(w8a16).manifest
    assert manifest.options["htp_emulation"]["ran"]
    # the HTP's integer kernels are not onnxruntime's Q/DQ arithmetic: the emulator's peaks
    # agree with the CPU run's far above chance (1/384), not exactly (the figure is recorded)
    assert manifest.options["htp_emulation"]["argmax_agreement_vs_cpu"] > 0.3
    crops = calib_set.inputs[:2]
    with runtimes.open(w8a16, device="htp") as htp, runtimes.open(w8a16, device="cpu") as cpu:
        assert "HTP" in htp.device and htp.execution["reported"]["cpu_fallback"] == "disabled"
        got, want = htp.infer(crops), cpu.infer(crops)
    agree = np.mean(got["simcc_x"].argmax(-1) == want["simcc_x"].argmax(-1))
    assert agree > 0.3 and np.isfinite(got["simcc_x"]).all()
    kept = export(small_demo(), ["qnn-w8a16"], tmp_path, calib=calib_set,
                  int8_policy="head-neck-fp32")[0]  # fmt: skip
    assert kept.path is not None
    with pytest.raises(PrecisionUnavailable, match="fp16"):
        runtimes.open(kept.path, device="htp")
