"""The execution-precision contract: set explicitly, read back, refused when it differs.

These are the precision-sensitive tests: `.ci/run` runs them (with the INT8 and
verification tests) a second time with the CPU ISA capped to AVX2, so the AVX-512 / bf16
class and the AVX2 class are both exercised on one machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import has_module, small_demo

from rtmw import runtimes
from rtmw.artifact import read_artifact, write_manifest
from rtmw.export import export
from rtmw.export.registry import get_target, unavailable_reason
from rtmw.host import CAP_VARIABLES, cpu_fingerprint
from rtmw.runtimes.precision import (
    PrecisionMismatch,
    PrecisionUnavailable,
    check_readback,
    normalise,
    required_execution,
)

pytestmark = pytest.mark.precision

NO_LOW_PRECISION = {"isa_class": "x86-64-avx2", "native": {"bf16": False, "fp16": False}}
BF16_CPU = {"isa_class": "x86-64-avx512-bf16", "native": {"bf16": True, "fp16": False}}
FP16_CPU = {"isa_class": "arm64-dotprod-fp16", "native": {"bf16": False, "fp16": True}}
needs_openvino = pytest.mark.skipif(not has_module("openvino"), reason="openvino not installed")
CAP_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def test_contract_table() -> None:
    for host in (NO_LOW_PRECISION, BF16_CPU, FP16_CPU):
        assert required_execution("fp32", "cpu", host) == "f32"
        assert required_execution("int8", "cpu", host) == "f32"  # the float parts
        assert required_execution("fp32", "cuda", host) == "f32"
        assert required_execution("fp16", "gpu", host) == "f16"
        # the QNN HTP has no f32: an INT8 model's float parts are f16 there, on any host
        assert required_execution("int8", "htp", host) == "f16"
    assert required_execution("fp16", "cpu", NO_LOW_PRECISION) == "f32"
    assert required_execution("fp16", "cpu", BF16_CPU) == "f32"  # bf16 is not fp16
    assert required_execution("fp16", "cpu", FP16_CPU) == "f16"
    assert required_execution("bf16", "cpu", BF16_CPU) == "bf16"
    with pytest.raises(PrecisionUnavailable, match="no native bf16"):
        required_execution("bf16", "cpu", NO_LOW_PRECISION)
    with pytest.raises(PrecisionUnavailable, match="CPUs only"):
        required_execution("bf16", "cuda", BF16_CPU)


def test_readback_names_and_refusal() -> None:
    assert normalise("<Type: 'float32'>") == "f32" and normalise("bfloat16") == "bf16"
    assert normalise("f16") == "f16" and normalise("FP32") == "f32"
    check_readback("x", "f32", "float32")
    with pytest.raises(PrecisionMismatch, match=r"told to execute in f32.*reports bfloat16"):
        check_readback("openvino", "f32", "bfloat16")


@pytest.fixture(scope="module")
def demo_float(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("precision")
    targets = ["onnx", "onnx-fp16", "torch"]
    targets += ["openvino-fp32", "openvino-fp16"] if has_module("openvino") else []
    targets += ["ncnn-fp16"] if has_module("ncnn") and has_module("pnnx") else []
    results = export(small_demo(), targets, out)
    assert all(r.status == "ok" for r in results), [r.line() for r in results]
    return out


def test_every_adapter_records_its_contract(demo_float: Path) -> None:
    host = cpu_fingerprint()
    for folder in sorted(p for p in demo_float.iterdir() if p.is_dir()):
        artifact = read_artifact(folder)
        with runtimes.open(artifact) as runner:
            wanted = required_execution(artifact.manifest.precision, "cpu", host)
            assert runner.execution_precision == wanted
            assert runner.execution["contract"] == wanted and "reported" in runner.execution
            assert wanted in runner.device, runner.device
            if folder.name == "ncnn-fp16":  # which layers ncnn stores in fp16 on this CPU
                stored = runner.execution["reported"]["fp16_storage_layers"]
                assert re.fullmatch(r"\d+ of \d+(: .+)?", stored), stored
        verification = artifact.manifest.verification
        assert verification["execution"]["contract"] == wanted
        assert artifact.manifest.host["isa_class"] == host["isa_class"]


@needs_openvino
def test_openvino_fp16_runs_f32_on_a_cpu_without_native_fp16(demo_float: Path) -> None:
    """The bug this contract fixes: unhinted, OpenVINO ran FP16 IRs in bf16 on BF16 CPUs."""
    with runtimes.open(demo_float / "openvino-fp16") as runner:
        expected = "f16" if runner.host["native"]["fp16"] else "f32"
        assert runner.execution_precision == expected
        assert normalise(runner.execution["reported"]) == expected
        nodes = runner.execution["nodes"]
        assert "bf16" not in nodes and nodes.get("f32", 0) > 0


def test_torch_reference_is_ieee_f32(demo_float: Path) -> None:
    import torch

    torch.backends.cudnn.conv.fp32_precision = "tf32"  # torch's own default for cuDNN
    with runtimes.open(demo_float / "torch") as runner:
        assert runner.execution["reported"]["cudnn.conv"] == "ieee"
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"


def test_bf16_artifact_is_refused_where_bf16_is_not_native(
    demo_float: Path, tmp_path: Path
) -> None:
    if not has_module("openvino"):
        pytest.skip("openvino not installed")
    # an artifact whose manifest says bf16 (made through the API, not tampered)
    folder = tmp_path / "bf16"
    import shutil

    shutil.copytree(demo_float / "openvino-fp32", folder)
    artifact = read_artifact(folder)
    artifact.manifest.precision = "bf16"
    artifact.manifest.target = "openvino-bf16"
    write_manifest(folder, artifact.manifest)
    runner = runtimes.open(folder, activate=False)
    runner.host = {**runner.host, **NO_LOW_PRECISION}
    with pytest.raises(PrecisionUnavailable, match="no native bf16"):
        runner.activate()
    assert not runner.active


@needs_openvino
def test_openvino_bf16_target_on_this_cpu(tmp_path: Path) -> None:
    """Built, verified and run in bf16 with the head in f32 where the CPU has native bf16;
    skipped with the reason (exit code 4) where it has not: both classes are asserted."""
    reason = unavailable_reason(get_target("openvino-bf16"))
    (result,) = export(small_demo(), ["openvino-bf16"], tmp_path)
    if reason is not None:
        assert result.status == "skipped" and result.exit_code == 4
        assert "no native bf16" in result.reason
        assert not (tmp_path / "openvino-bf16").exists()
        return
    assert result.status == "ok", result.reason
    manifest = read_artifact(result.path).manifest
    assert manifest.precision == "bf16" and manifest.options["f32_marked_layers"] > 0
    verification = manifest.verification
    assert verification["passed"] and verification["max_rel_diff"] <= 4e-2
    kept = verification["execution"]["kept_f32_nodes"]
    # OpenVINO keeps the marked head nodes in f32 (the fused q·kᵀ MatMul excepted)
    assert kept.get("f32", 0) >= 2 * kept.get("bf16", 0) and kept.get("f32", 0) >= 8
    with runtimes.open(result.path) as runner:
        assert normalise(runner.execution["reported"]) == "bf16"
        assert runner.execution["nodes"].get("bf16", 0) > 0  # the backbone really is bf16


CAP_PROBE = """
import json, sys
import torch
from rtmw import runtimes
from rtmw.host import CAP_VARIABLES, cpu_fingerprint
with runtimes.open(sys.argv[1]) as runner:
    kernels = {}
    for op in runner.compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str)
        if layer in ("Convolution", "FullyConnected", "MatMul"):
            kernels[info["primitiveType"].astype(str)] = layer
print(json.dumps({"kernels": kernels, "torch": torch.backends.cpu.get_cpu_capability(),
                  "host": cpu_fingerprint()}))
"""


def _probe(artifact: Path, env: dict[str, str]) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in CAP_VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", CAP_PROBE, str(artifact)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@needs_openvino
def test_isa_cap_takes_effect(demo_float: Path) -> None:
    """ONEDNN_MAX_CPU_ISA=AVX2 really moves OpenVINO's compute kernels and torch to AVX2
    (what the capped CI lane relies on); the fingerprint records the cap."""
    native = _probe(demo_float / "openvino-fp32", {})
    capped = _probe(demo_float / "openvino-fp32", CAP_ENV)
    assert capped["kernels"] and not any("avx512" in k or "amx" in k for k in capped["kernels"])
    assert any("avx2" in k for k in capped["kernels"]), capped["kernels"]
    assert capped["torch"] == "AVX2"
    assert capped["host"]["isa_cap"] == "ONEDNN_MAX_CPU_ISA=AVX2"
    assert not capped["host"]["native"]["bf16"]
    if "avx512f" in native["host"]["flags"]:  # the cap changed something on this host
        assert any("avx512" in k for k in native["kernels"]), native["kernels"]
        assert native["torch"].startswith("AVX512")
    else:
        assert native["kernels"].keys() == capped["kernels"].keys()


def test_outputs_stay_finite_under_contract(demo_float: Path) -> None:
    batch = np.zeros((2, 3, 256, 192), np.float32)
    with runtimes.open(demo_float / "onnx-fp16") as runner:
        x, y = runner.infer(batch).unpack("simcc_x", "simcc_y")
    assert np.isfinite(x).all() and np.isfinite(y).all()


@pytest.mark.skipif(not has_module("nncf"), reason="nncf not installed (rtmw[openvino])")
def test_nncf_statistics_and_accuracy_control_run_in_f32(demo_float: Path) -> None:
    """openvino-int8 relies on NNCF compiling its calibration and validation models in f32
    (else a BF16 CPU collects activation ranges in bf16): guard that against NNCF upgrades."""
    import openvino as ov
    from nncf.openvino.engine import OVNativeEngine
    from nncf.quantization.algorithms.accuracy_control.openvino_backend import OVPreparedModel

    model = ov.Core().read_model(str(demo_float / "openvino-fp32" / "model.xml"))
    engine = OVNativeEngine(model)
    compiled = engine.engine.infer_request.get_compiled_model()
    assert normalise(str(compiled.get_property("INFERENCE_PRECISION_HINT"))) == "f32"
    prepared = OVPreparedModel(model).model_for_inference
    assert normalise(str(prepared.get_property("INFERENCE_PRECISION_HINT"))) == "f32"
