"""The host's peak multiply-accumulate rate per precision, to put a route's speed in scale.

    peak GMAC/s = usable cores × clock (GHz) × MACs per cycle per core (ISA, precision)

MACs per cycle per core, from the vector width and FMA pipes of the class (docs/speed.md):

| class | fp32 | int8 | bf16 | fp16 |
|---|---|---|---|---|
| x86-64 (SSE) | 8 | 16 | – | fp32 rate |
| AVX2 (2×256-bit FMA) | 16 | 32 (vpmaddubsw) | – | fp32 rate |
| AVX2 + AVX-VNNI | 16 | 64 | – | fp32 rate |
| AVX-512, AMD (Zen 4: 256-bit pipes) | 16 | 64 with VNNI, 32 without | 32 | fp32 rate |
| AVX-512, Intel (2×512-bit FMA) | 32 | 128 with VNNI, 64 without | 64 | 64 with AVX512_FP16 |
| AMX (Intel) | 32 | 1024 | 512 | 512 with AMX-FP16 |
| Arm NEON (2×128-bit) | 8 | 32 with dotprod, 16 without | 16 with bf16 | 16 with fp16 |

fp16 without native arithmetic is computed in f32 (the precision contract), so it is
judged against the fp32 peak. The clock is rarely readable in a VM: cpufreq's maximum
when present, else the model name's "@ x.xGHz", else /proc/cpuinfo's MHz (often the base or
TSC clock) up to an assumed boost; ``RTMW_CPU_GHZ`` overrides it. Every figure says which.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ASSUMED_BOOST_GHZ = 3.7  # an upper bound for server/desktop x86 all-core boost


@dataclass(frozen=True)
class Peak:
    precision: str
    macs_per_cycle_per_core: int
    cores: int
    clock_ghz: tuple[float, float]  # (low, high): a range when the clock is not readable
    clock_source: str
    basis: str

    @property
    def gmacs(self) -> tuple[float, float]:
        per_ghz = self.cores * self.macs_per_cycle_per_core
        return per_ghz * self.clock_ghz[0], per_ghz * self.clock_ghz[1]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gmacs"] = list(self.gmacs)
        return data


def clock_ghz(
    cpuinfo: str | None = None, env: Mapping[str, str] | None = None
) -> tuple[tuple[float, float], str]:
    env = os.environ if env is None else env
    if env.get("RTMW_CPU_GHZ"):
        value = float(env["RTMW_CPU_GHZ"])
        return (value, value), "RTMW_CPU_GHZ"
    cpufreq = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if cpufreq.is_file():
        value = int(cpufreq.read_text().strip()) / 1e6
        return (value, value), "cpufreq cpuinfo_max_freq"
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    named = re.search(r"^model name\s*:.*@\s*([\d.]+)\s*GHz", cpuinfo, re.M)
    if named:
        value = float(named.group(1))
        return (value, value), "model name"
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, re.M)
    if mhz:
        low = float(mhz.group(1)) / 1000
        high = max(low, ASSUMED_BOOST_GHZ)
        return (low, high), f"/proc/cpuinfo MHz to an assumed {ASSUMED_BOOST_GHZ} GHz boost"
    return (2.0, ASSUMED_BOOST_GHZ), "unknown: 2.0 GHz to an assumed boost"


def macs_per_cycle(host: Mapping[str, Any], precision: str) -> tuple[int, str]:
    """MACs per cycle per core of ``host`` (a CPU fingerprint) for ``precision``."""
    flags = set(host.get("flags", ()))
    native = host.get("native", {})
    klass = str(host.get("isa_class", ""))
    intel = "intel" in str(host.get("vendor", "")).lower()
    if host.get("arch") in ("aarch64", "arm64"):
        table = {
            "fp32": 8,
            "int8": 32 if native.get("int8_dot") else 16,
            "bf16": 16 if native.get("bf16") else 0,
            "fp16": 16 if native.get("fp16") else 8,
        }
        return table[precision], "Arm NEON, 2×128-bit"
    if "amx" in klass and "capped" not in klass:
        table = {"fp32": 32, "int8": 1024, "bf16": 512, "fp16": 512 if "amx_fp16" in flags else 32}
        return table[precision], "AMX tiles"
    if "avx512" in klass:
        fp32 = 32 if intel else 16
        vnni = bool(native.get("int8_dot"))
        table = {
            "fp32": fp32,
            "int8": fp32 * (4 if vnni else 2),
            "bf16": fp32 * 2 if native.get("bf16") else 0,
            "fp16": fp32 * 2 if native.get("fp16") else fp32,
        }
        pipes = "2×512-bit FMA (Intel)" if intel else "256-bit FMA pipes (AMD Zen 4)"
        return table[precision], f"AVX-512, {pipes}" + (", VNNI" if vnni else "")
    if "avx2" in klass:
        vnni = "vnni" in klass
        table = {"fp32": 16, "int8": 64 if vnni else 32, "bf16": 0, "fp16": 16}
        return table[precision], "AVX2, 2×256-bit FMA" + (" + AVX-VNNI" if vnni else "")
    return {"fp32": 8, "int8": 16, "bf16": 0, "fp16": 8}[precision], "SSE, 2×128-bit"


def host_peak(host: Mapping[str, Any], precision: str, cores: int | None = None) -> Peak | None:
    """The peak for ``precision`` on ``host``; None where the CPU cannot compute it at all."""
    per_cycle, basis = macs_per_cycle(host, precision)
    if per_cycle == 0:
        return None
    clock, source = clock_ghz()
    return Peak(precision, per_cycle, int(cores or host.get("usable_cores") or 1), clock, source,
                basis)  # fmt: skip


def compute_precision(precision: str, host: Mapping[str, Any]) -> str:
    """Which peak a route is judged against: FP16 without native FP16 computes in f32."""
    if precision == "fp16" and not host.get("native", {}).get("fp16"):
        return "fp32"
    return precision
