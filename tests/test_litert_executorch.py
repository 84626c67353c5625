"""LiteRT and ExecuTorch: fixed-batch models, their runtime adapters, the policy on PT2E, and
the base install without the extra.

The three targets' export → verify → open contract is tests/test_targets.py's (they are
registered); this file covers what is particular to LiteRT.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from conftest import small_demo

from rtmw import runtimes
from rtmw.artifact import read_artifact
from rtmw.errors import DeviceUnavailable, UsageError
from rtmw.export import export, export_options
from rtmw.export.quant_policy import module_prefix
from rtmw.export.targets.litert import scope_regex
from rtmw.runtimes.precision import PrecisionUnavailable
from rtmw.schemas import Status

HAS_LITERT = all(find_spec(m) is not None for m in ("litert_torch", "ai_edge_litert"))
needs_litert = pytest.mark.skipif(
    not HAS_LITERT, reason="litert-torch / ai-edge-litert not installed (rtmw[litert])"
)


@pytest.mark.parametrize(
    ("onnx_prefix", "module"),
    [
        ("/head/mlp/", "head.mlp"),
        ("/head/cls_x/", "head.cls_x"),
        ("/neck/", "neck"),
        ("/backbone/stage2/stage2.1/", "backbone.stage2.1"),
        ("/neck/top_down_blocks.0/", "neck.top_down_blocks.0"),
    ],
)
def test_policy_prefixes_map_onto_module_paths(onnx_prefix: str, module: str) -> None:
    assert module_prefix(onnx_prefix) == module


def test_scope_regex_matches_litert_torch_tensor_names() -> None:
    gau = (
        "rtmw.models.rtmw.RTMW/rtmw.models.rtmw.RTMWHead_head/"
        "rtmw.models.layers.RTMCCBlock_gau/torch.nn.modules.linear.Linear_uv;"
    )
    mlp2 = "rtmw.models.rtmw.RTMW/rtmw.models.rtmw.RTMWHead_head/x.Sequential_mlp2/y.Linear_1;"
    assert re.match(scope_regex("head.gau"), gau)
    assert re.match(scope_regex("head.mlp2"), mlp2)
    assert not re.match(scope_regex("head.mlp"), mlp2)  # mlp is not a prefix of mlp2
    assert not re.match(scope_regex("neck"), gau)


@pytest.fixture(scope="module")
def fixed_batch2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """litert-fp32 of the demo model at a fixed batch of 2, beside its ONNX reference."""
    out = tmp_path_factory.mktemp("litert-b2")
    options = export_options(fixed_batch=2)
    results = export(small_demo(), ["litert-fp32", "onnx"], out, options=options)
    assert all(r.status == Status.OK for r in results), [r.line() for r in results]
    return out


@needs_litert
@pytest.mark.litert
def test_fixed_batch_model_takes_any_batch_and_matches_onnx(fixed_batch2: Path) -> None:
    rng = np.random.default_rng(0)
    crops = rng.standard_normal((5, 3, 256, 192)).astype(np.float32)
    with runtimes.open(fixed_batch2 / "onnx") as reference:
        ref_x, ref_y = reference(crops).unpack("simcc_x", "simcc_y")
    with runtimes.open(fixed_batch2 / "litert-fp32", threads=1) as runner:
        assert runner.fixed_batch == 2 and runner.loops_over_batch
        assert runner.execution["reported"]["delegate"] == "XNNPACK"
        assert runner.execution["reported"]["delegate_partitions"] > 0
        for count in (1, 2, 5):  # short, exact, and two chunks plus a padded one
            simcc_x, simcc_y = runner(crops[:count]).unpack("simcc_x", "simcc_y")
            assert simcc_x.shape == (count, 133, 384) and simcc_y.shape == (count, 133, 512)
            np.testing.assert_allclose(simcc_x, ref_x[:count], atol=1e-3)
            np.testing.assert_allclose(simcc_y, ref_y[:count], atol=1e-3)


@needs_litert
@pytest.mark.litert
def test_builtin_kernels_without_xnnpack_give_the_same_result(fixed_batch2: Path) -> None:
    crops = np.random.default_rng(1).standard_normal((2, 3, 256, 192)).astype(np.float32)
    with runtimes.open(fixed_batch2 / "litert-fp32") as xnnpack:
        fast = xnnpack(crops)
    options = {"xnnpack": "off"}
    with runtimes.open(fixed_batch2 / "litert-fp32", options=options) as builtin:
        assert builtin.execution["reported"]["delegate"] == "none (builtin)"
        slow = builtin(crops)
    assert fast.names == slow.names
    for name in fast:
        np.testing.assert_allclose(fast[name], slow[name], atol=1e-3)
    with pytest.raises(UsageError, match="xnnpack must be on or off"):
        runtimes.open(fixed_batch2 / "litert-fp32", options={"xnnpack": "maybe"})


@needs_litert
@pytest.mark.litert
# ai-edge-litert's Delegate.__del__ trips over its own failed construction (a warning)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_gpu_without_a_delegate_library_is_refused_not_run_on_cpu(fixed_batch2: Path) -> None:
    options = {"gpu_delegate": "/nonexistent/libLiteRtGpuAccelerator.so"}
    with pytest.raises(DeviceUnavailable, match="no GPU delegate could be loaded"):
        runtimes.open(fixed_batch2 / "litert-fp32", device="gpu", options=options)


@needs_litert
@pytest.mark.litert
def test_fp16_contract_is_refused_where_xnnpack_cannot_be_told_fp16(fixed_batch2: Path) -> None:
    """On a CPU with native FP16 the contract is f16, which the Python interpreter cannot
    set: refused, not run in f32 under an FP16 label (the host's flag is set here to be one)."""
    from dataclasses import replace

    from rtmw.artifact import Artifact, read_artifact

    artifact = read_artifact(fixed_batch2 / "litert-fp32")
    fp16 = Artifact(artifact.path, replace(artifact.manifest, precision="fp16"))
    runner = runtimes.runtime_class("litert")(fp16)
    runner.host = {**runner.host, "native": {**runner.host["native"], "fp16": True}}
    with pytest.raises(PrecisionUnavailable, match="forced FP16"):
        runner.activate()


HIDE_LITERT = """
import sys
for name in ("litert_torch", "ai_edge_litert", "ai_edge_quantizer"):
    sys.modules[name] = None  # what a base install without rtmw[litert] looks like
from rtmw.cli.export import main
main(sys.argv[1:])
"""


@pytest.mark.onnx
def test_without_the_extra_litert_is_one_line_and_exit_3_and_onnx_still_exports(
    tmp_path: Path,
) -> None:
    command = [sys.executable, "-c", HIDE_LITERT, str(small_demo()), "--out", str(tmp_path)]
    missing = subprocess.run([*command, "--target", "litert-fp32", "-q"], capture_output=True,
                             text=True, timeout=600)  # fmt: skip
    assert missing.returncode == 3, missing.stderr
    assert "rtmw[litert]" in missing.stdout + missing.stderr
    assert "Traceback" not in missing.stderr
    other = subprocess.run([*command, "--target", "onnx", "-q"], capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert other.returncode == 0, other.stdout + other.stderr
    assert (tmp_path / "onnx" / "artifact.json").is_file()
    assert not (tmp_path / "litert-fp32").exists()


HAS_EXECUTORCH = find_spec("executorch") is not None


@pytest.mark.skipif(not HAS_EXECUTORCH, reason="executorch not installed (rtmw[executorch])")
@pytest.mark.executorch
def test_executorch_program_chunks_batches_and_pins_its_thread_pool(tmp_path: Path) -> None:
    options = export_options(fixed_batch=2)
    results = export(small_demo(), ["executorch-fp32", "onnx"], tmp_path, options=options)
    assert all(r.status == Status.OK for r in results), [r.line() for r in results]
    manifest = read_artifact(tmp_path / "executorch-fp32").manifest
    assert manifest.io["batch"] == 2 and "XnnpackBackend" in manifest.options["delegates"]
    crops = np.random.default_rng(2).standard_normal((3, 3, 256, 192)).astype(np.float32)
    with runtimes.open(tmp_path / "onnx") as reference:
        expected = reference(crops)
    with runtimes.open(tmp_path / "executorch-fp32", threads=1) as runner:
        assert runner.execution["reported"]["threads"] == 1
        got = runner(crops)
    assert got.names == expected.names
    for name in got:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-3)
    with pytest.raises(DeviceUnavailable, match="supports cpu"):
        runtimes.open(tmp_path / "executorch-fp32", device="cuda")
