"""The aarch64 lane: the AArch64 fingerprint (hardware capabilities, emulation said), the
check against torch repeated from stored outputs, and the report that sets each host's
verdicts beside x86's. The emulated run itself is tools/arm_lane.sh's (make arm-lane)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import has_module, xtcocotools_usable

from rtmw.host import cpu_fingerprint, describe

needs_onnx = pytest.mark.skipif(not has_module("onnxruntime"), reason="onnxruntime not installed")
needs_eval = pytest.mark.skipif(not xtcocotools_usable()[0], reason=xtcocotools_usable()[1])

# Cortex-A710 as qemu reports it: FP16 (fphp, asimdhp), dot product, SVE; SVE2, i8mm, bf16
A710 = ((1 << 1) | (1 << 9) | (1 << 10) | (1 << 20) | (1 << 22), (1 << 1) | (1 << 13) | (1 << 14))
A53 = (1 << 1, 0)
X86_CPUINFO = "vendor_id : AuthenticAMD\nflags : fpu sse4_2 avx avx2 fma\n"
ARM_CPUINFO = "processor : 0\nFeatures : fp asimd\nCPU implementer : 0x41\n"


def test_arm_fingerprint_comes_from_hwcaps_and_says_emulated() -> None:
    phone = cpu_fingerprint(X86_CPUINFO, env={"QEMU_CPU": "cortex-a710"}, arch="aarch64",
                            hwcaps=A710)  # fmt: skip
    assert phone["isa_class"] == "arm64-dotprod-i8mm-fp16-bf16-sve"
    assert phone["native"] == {"bf16": True, "fp16": True, "int8_dot": True}
    assert "cortex-a710" in phone["emulated"] and "EMULATED" in describe(phone)
    plain = cpu_fingerprint(X86_CPUINFO, env={"QEMU_CPU": "cortex-a53"}, arch="aarch64",
                            hwcaps=A53)  # fmt: skip
    assert plain["isa_class"] == "arm64" and not any(plain["native"].values())
    # a real board: its own /proc/cpuinfo, no qemu settings: not emulated
    board = cpu_fingerprint(ARM_CPUINFO, env={}, arch="aarch64", hwcaps=A710)
    assert "emulated" not in board and board["native"]["fp16"]


@pytest.fixture(scope="module")
def lane(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rtmw.workflows.arm_lane import prepare

    return prepare(tmp_path_factory.mktemp("lane"), targets=["onnx", "ort-int8"], images=5,
                   say=lambda _: None)  # fmt: skip


@needs_onnx
def test_verification_repeats_from_stored_torch_outputs(lane: Path, tmp_path: Path) -> None:
    from rtmw.workflows.arm_lane import verify_here

    for target in ("onnx", "ort-int8"):
        check = verify_here(lane / "artifacts" / target, lane / "reference.npz")
        assert check["passed"], check["failures"]
        assert check["execution"]["contract"] == "f32"
    # torch's outputs moved (as a wrong reference or a broken artifact would move them)
    stored = dict(np.load(lane / "reference.npz"))
    moved = {k: (v if k.endswith("/input") else np.roll(v, 7, axis=-1)) for k, v in stored.items()}
    np.savez(tmp_path / "moved.npz", **moved)  # type: ignore[arg-type]
    check = verify_here(lane / "artifacts" / "onnx", tmp_path / "moved.npz")
    assert not check["passed"] and check["failures"]


@needs_onnx
@needs_eval
def test_lane_run_and_report_name_every_difference(lane: Path) -> None:
    from rtmw.workflows.arm_lane import report, run, unexplained_differences

    record = json.loads(run(lane, "x86", say=lambda _: None).read_text())
    assert set(record["verdicts"]) == {"onnx", "ort-int8"}
    assert "gate" in record["verdicts"]["ort-int8"]
    # the lane scores accuracy only: no timed call, no baseline (emulation would time nothing)
    results = json.loads((lane / "runs" / "x86" / "results.json").read_text())
    assert results["baseline"] is None
    assert all("accuracy" in e and "latency" not in e and "e2e" not in e
               for e in results["entries"])  # fmt: skip
    same = dict(record, label="copy")
    (lane / "runs" / "copy.json").write_text(json.dumps(same))
    same_text = report(lane, ["copy"])
    assert "Differences from x86: none." in same_text
    assert "5 held-out synthetic images" in same_text  # the count prepare was given
    flipped = json.loads(json.dumps(record))
    verdict = flipped["verdicts"]["ort-int8"]["verification"]
    verdict["passed"], verdict["failures"] = not verdict["passed"], ["made up for the test"]
    (lane / "runs" / "flipped.json").write_text(json.dumps(flipped))
    text = report(lane, ["flipped"])
    assert "**no**" in text and "ort-int8 on flipped: verification" in text
    assert unexplained_differences(text)


def test_a_difference_is_explained_only_by_what_both_records_report() -> None:
    """Explained: another contract, a refusal, or (one contract) fp16 storage on other
    layers, as ncnn reports it per host. Anything else is a finding."""
    from rtmw.workflows.arm_lane import explanation

    def record(contract: str, stored: str | None = None, **flags: bool) -> dict:
        reported = {"fp16_storage_layers": stored} if stored else {}
        return {"verification": {"execution": {"contract": contract, "reported": reported},
                                 **flags}}  # fmt: skip

    x86 = record("f32", "23 of 260: Concat, Reshape, Slice")
    assert "computed in f16" in (explanation(record("f16"), x86) or "")
    assert "refused here" in (explanation(record("f32", opened=False), x86) or "")
    same_contract = explanation(record("f32", "6 of 260: Gemm"), x86)
    assert same_contract and "6 of 260: Gemm" in same_contract and "23 of 260" in same_contract
    assert explanation(record("f32", "23 of 260: Concat, Reshape, Slice"), x86) is None
    assert explanation(record("f32"), record("f32")) is None
