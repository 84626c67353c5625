"""The CPU fingerprint recorded beside every figure rtmw produces.

Runtimes pick kernels and even precisions by instruction set (OpenVINO runs bf16 by
default where AVX512_BF16 or AMX exists; INT8 is only fast with VNNI), so a latency, an
accuracy drop or a gate verdict means something only next to the ISA it was measured
on. Artifacts record where they were built and verified, results where they were
measured, and the gate refuses to compare two ISA classes unless told to.

An ISA cap (``ONEDNN_MAX_CPU_ISA``, honoured by oneDNN inside OpenVINO and torch; torch's
own kernels also take ``ATEN_CPU_CAPABILITY``) lowers the effective class: the
fingerprint records both the hardware and the capped class, and which runtimes the
cap cannot reach (onnxruntime's MLAS and ncnn dispatch on CPUID alone).
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# x86 tiers, lowest first; a class is the highest tier whose flags are all present
X86_TIERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("x86-64", ()),
    ("x86-64-avx2", ("avx2", "fma")),
    ("x86-64-avx2-vnni", ("avx2", "fma", "avx_vnni")),
    ("x86-64-avx512", ("avx512f", "avx512bw", "avx512vl")),
    ("x86-64-avx512-vnni", ("avx512f", "avx512bw", "avx512vl", "avx512_vnni")),
    ("x86-64-avx512-bf16", ("avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16")),
    ("x86-64-amx", ("avx512f", "avx512bw", "avx512vl", "avx512_vnni", "amx_bf16", "amx_int8")),
)
X86_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8", "amx_fp16",
)  # fmt: skip
ARM_FLAGS = ("asimd", "asimddp", "i8mm", "asimdhp", "fphp", "bf16", "sve", "sve2")
# oneDNN's cap names → the highest x86 tier they allow
ONEDNN_CAPS = {
    "SSE41": "x86-64",
    "AVX": "x86-64",
    "AVX2": "x86-64-avx2",
    "AVX2_VNNI": "x86-64-avx2-vnni",
    "AVX2_VNNI_2": "x86-64-avx2-vnni",
    "AVX512_CORE": "x86-64-avx512",
    "AVX512_CORE_VNNI": "x86-64-avx512-vnni",
    "AVX512_CORE_BF16": "x86-64-avx512-bf16",
    "AVX512_CORE_FP16": "x86-64-avx512-bf16",
    "AVX10_1_512": "x86-64-avx512-bf16",
    "AVX512_CORE_AMX": "x86-64-amx",
    "AVX10_1_512_AMX": "x86-64-amx",
    "AVX512_CORE_AMX_FP16": "x86-64-amx",
    "AVX10_1_512_AMX_FP16": "x86-64-amx",
    "AVX10_2_512": "x86-64-amx",
    "AVX10_2_512_AMX_2": "x86-64-amx",
    "DEFAULT": "",
}
CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
CAP_HONOURED_BY = ("openvino (oneDNN and plugin kernels, except a few data-movement ones)",
                   "torch (oneDNN, ATen with ATEN_CPU_CAPABILITY)")  # fmt: skip
CAP_IGNORED_BY = ("onnxruntime (MLAS dispatches on CPUID; no runtime switch)",
                  "ncnn (dispatches on CPUID; only a build-time switch)",
                  "litert, executorch (XNNPACK dispatches on CPUID via cpuinfo)")  # fmt: skip


def _tier_index(name: str) -> int:
    return [tier for tier, _ in X86_TIERS].index(name)


def _x86_class(flags: set[str]) -> str:
    best = X86_TIERS[0][0]
    for tier, needs in X86_TIERS:
        if all(flag in flags for flag in needs):
            best = tier
    return best


def _arm_class(flags: set[str]) -> str:
    parts = ["arm64"]
    for flag, label in (("asimddp", "dotprod"), ("i8mm", "i8mm"), ("asimdhp", "fp16"),
                        ("bf16", "bf16"), ("sve", "sve")):  # fmt: skip
        if flag in flags:
            parts.append(label)
    return "-".join(parts)


def _cap(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(``VAR=value`` of the oneDNN cap in force, the tier it allows) or (None, None)."""
    for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = env.get(var, "").strip().upper()
        if value and value != "DEFAULT":
            return f"{var}={value}", ONEDNN_CAPS.get(value)
    aten = env.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if aten in ("avx2", "default"):
        return f"ATEN_CPU_CAPABILITY={aten}", "x86-64-avx2" if aten == "avx2" else "x86-64"
    return None, None


# AArch64 hardware capabilities (Linux uapi asm/hwcap.h): bit → /proc/cpuinfo feature name
ARM_HWCAP = {1: "asimd", 9: "fphp", 10: "asimdhp", 20: "asimddp", 22: "sve"}
ARM_HWCAP2 = {1: "sve2", 13: "i8mm", 14: "bf16"}
AT_HWCAP, AT_HWCAP2 = 16, 26


def arm_hwcaps() -> tuple[int, int] | None:
    """(AT_HWCAP, AT_HWCAP2) from the C library: what the kernel — or qemu-user, which
    emulates them for the CPU model it runs — says this AArch64 core has."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.getauxval.restype = ctypes.c_ulong
        return int(libc.getauxval(AT_HWCAP)), int(libc.getauxval(AT_HWCAP2))
    except (OSError, AttributeError):
        return None


def _qemu_binfmt_enabled() -> bool:
    entry = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    try:
        return entry.read_text().startswith("enabled")
    except OSError:
        return False


def _hwcap_flags(hwcaps: tuple[int, int]) -> set[str]:
    first, second = hwcaps
    return {name for bit, name in ARM_HWCAP.items() if first >> bit & 1} | {
        name for bit, name in ARM_HWCAP2.items() if second >> bit & 1
    }


def cpu_fingerprint(
    cpuinfo: str | None = None,
    env: Mapping[str, str] | None = None,
    arch: str | None = None,
    hwcaps: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Vendor, model, cores, ISA flags, the ISA class and any cap; pure given its inputs.

    On AArch64 the features come from the hardware capabilities (``hwcaps``, read from the
    C library when not given), not /proc/cpuinfo: under qemu-user /proc/cpuinfo is the
    x86 host's, and the record then says the core is emulated and which model qemu runs.
    """
    probe = cpuinfo is None  # this machine (not a recorded one): its binfmt table too
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    env = os.environ if env is None else env
    arch = arch or platform.machine()

    def field(*names: str) -> str | None:
        for name in names:
            match = re.search(rf"^{name}\s*:\s*(.+)$", cpuinfo, re.M)
            if match:
                return match.group(1).strip()
        return None

    flags = set((field("flags", "Features") or "").split())
    is_arm = arch in ("aarch64", "arm64") or "asimd" in flags
    # qemu-user before 8.2 passes the x86 host's /proc/cpuinfo through; later ones write an
    # ARM one, so the qemu settings and an enabled qemu-aarch64 binfmt entry say it too
    emulated = is_arm and (
        bool(flags & {"sse4_2", "avx2", "avx"})
        or any(k in env for k in ("QEMU_CPU", "QEMU_LD_PREFIX"))
        or (probe and _qemu_binfmt_enabled())
    )
    if is_arm and arch in ("aarch64", "arm64"):
        caps = hwcaps if hwcaps is not None else (arm_hwcaps() if probe else None)
        if caps is not None:
            flags = _hwcap_flags(caps)
    known = ARM_FLAGS if is_arm else X86_FLAGS
    present = sorted(f for f in known if f in flags)
    cap, cap_tier = (None, None) if is_arm else _cap(env)
    if is_arm:
        hardware = effective = _arm_class(flags)
        native = {
            "bf16": "bf16" in flags,
            "fp16": "asimdhp" in flags,
            "int8_dot": "asimddp" in flags or "i8mm" in flags,
        }
    else:
        hardware = _x86_class(flags)
        effective = hardware
        if cap_tier:
            effective = X86_TIERS[min(_tier_index(hardware), _tier_index(cap_tier))][0]
        level = _tier_index(effective)
        native = {
            "bf16": level >= _tier_index("x86-64-avx512-bf16")
            and bool(flags & {"avx512_bf16", "amx_bf16"}),
            "fp16": level >= _tier_index("x86-64-avx512-bf16")
            and bool(flags & {"avx512_fp16", "amx_fp16"}),
            "int8_dot": level >= _tier_index("x86-64-avx512-vnni")
            or (level >= _tier_index("x86-64-avx2-vnni") and "avx_vnni" in flags),
        }
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    record: dict[str, Any] = {
        "vendor": field("vendor_id", "CPU implementer") or "unknown",
        "model": field("model name", "Model name", "Hardware") or platform.processor() or arch,
        "arch": arch,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable or os.cpu_count(),
        "flags": present,
        "hardware_isa_class": hardware,
        "isa_cap": cap,
        "isa_class": effective if cap is None else f"{effective} (capped: {cap})",
        "native": native,
    }
    if emulated:
        core = env.get("QEMU_CPU", "qemu's default (max)")
        record["emulated"] = f"qemu-user, CPU model {core}"
        record["vendor"], record["model"] = "qemu", f"emulated AArch64 ({core})"
    if cap is not None:
        record["cap_honoured_by"] = list(CAP_HONOURED_BY)
        record["cap_ignored_by"] = list(CAP_IGNORED_BY)
    return record


def same_isa_class(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Two fingerprints of one ISA class (caps included); a missing one matches nothing."""
    if not a or not b or "isa_class" not in a or "isa_class" not in b:
        return False
    return bool(a["isa_class"] == b["isa_class"] and a.get("arch") == b.get("arch"))


def describe(fingerprint: Mapping[str, Any]) -> str:
    """One line for report headers: model, cores, class, native low-precision support."""
    native = fingerprint.get("native", {})
    extras = [name for name in ("int8_dot", "bf16", "fp16") if native.get(name)]
    line = (
        f"{fingerprint.get('model', '?')} ({fingerprint.get('vendor', '?')}), "
        f"{fingerprint.get('usable_cores', '?')} cores, ISA class {fingerprint.get('isa_class')}"
        f"; native: {', '.join(extras) or 'fp32 only'}"
    )
    if fingerprint.get("emulated"):
        line += f" [EMULATED: {fingerprint['emulated']}; timings are not speeds]"
    return line
