"""CPU fingerprints: ISA classes, caps, and the comparisons that depend on them.

The fingerprint is a pure function of /proc/cpuinfo text and the environment, so every
class is tested here on any host, with cpuinfo texts of the CPUs rtmw meets.
"""

from __future__ import annotations

import pytest

from rtmw.host import cpu_fingerprint, describe, same_isa_class

AVX2_ONLY = (
    "vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B12\n"
    "flags\t\t: fpu sse4_2 avx f16c fma avx2 bmi2\n"
)
ZEN4 = (
    "vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n"
    "flags\t\t: fpu sse4_2 avx f16c fma avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni "
    "avx512_bf16 avx512vbmi\n"
)
SAPPHIRE = (
    "vendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    "flags\t\t: fpu sse4_2 avx f16c fma avx2 avx_vnni avx512f avx512bw avx512vl avx512_vnni "
    "avx512_bf16 avx512_fp16 amx_bf16 amx_int8 amx_tile\n"
)
ORIN = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 atomics fphp asimdhp asimddp\n"


@pytest.mark.parametrize(
    ("cpuinfo", "arch", "isa_class", "native"),
    [
        (AVX2_ONLY, "x86_64", "x86-64-avx2", {"bf16": False, "fp16": False, "int8_dot": False}),
        (ZEN4, "x86_64", "x86-64-avx512-bf16", {"bf16": True, "fp16": False, "int8_dot": True}),
        (SAPPHIRE, "x86_64", "x86-64-amx", {"bf16": True, "fp16": True, "int8_dot": True}),
        (ORIN, "aarch64", "arm64-dotprod-fp16", {"bf16": False, "fp16": True, "int8_dot": True}),
    ],
)
def test_isa_class_and_native_support(
    cpuinfo: str, arch: str, isa_class: str, native: dict[str, bool]
) -> None:
    record = cpu_fingerprint(cpuinfo, env={}, arch=arch)
    assert record["isa_class"] == record["hardware_isa_class"] == isa_class
    assert record["native"] == native
    assert record["isa_cap"] is None
    assert isa_class in describe(record)


def test_onednn_cap_lowers_the_class_and_the_native_support() -> None:
    capped = cpu_fingerprint(ZEN4, env={"ONEDNN_MAX_CPU_ISA": "AVX2"}, arch="x86_64")
    assert capped["hardware_isa_class"] == "x86-64-avx512-bf16"
    assert capped["isa_class"] == "x86-64-avx2 (capped: ONEDNN_MAX_CPU_ISA=AVX2)"
    assert capped["native"] == {"bf16": False, "fp16": False, "int8_dot": False}
    assert any("onnxruntime" in r for r in capped["cap_ignored_by"])
    # a cap above the hardware changes nothing but the record of it
    high = cpu_fingerprint(AVX2_ONLY, env={"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"})
    assert high["isa_class"].startswith("x86-64-avx2 (capped")
    vnni = cpu_fingerprint(ZEN4, env={"DNNL_MAX_CPU_ISA": "avx512_core_vnni"}, arch="x86_64")
    assert vnni["isa_class"].startswith("x86-64-avx512-vnni")
    assert vnni["native"]["int8_dot"] and not vnni["native"]["bf16"]


def test_classes_compare_exactly() -> None:
    native = cpu_fingerprint(ZEN4, env={}, arch="x86_64")
    capped = cpu_fingerprint(ZEN4, env={"ONEDNN_MAX_CPU_ISA": "AVX2"}, arch="x86_64")
    avx2 = cpu_fingerprint(AVX2_ONLY, env={}, arch="x86_64")
    assert same_isa_class(native, dict(native))
    assert not same_isa_class(native, capped)
    assert not same_isa_class(capped, avx2)  # capped is recorded as capped, never as native
    assert not same_isa_class(native, None) and not same_isa_class({}, native)


def test_this_host_has_a_fingerprint() -> None:
    record = cpu_fingerprint()
    assert record["isa_class"] and record["usable_cores"] >= 1
    assert set(record["native"]) == {"bf16", "fp16", "int8_dot"}
