"""Device profiles: what machine, in what state, a benchmark ran on.

A figure without its environment cannot be compared, so every results file carries the
CPU model, cores and frequency governor, OS, Python and backend versions, and per
device kind what decides its speed: GPU clocks and power (NVML), Jetson power mode and
clocks (nvpmodel, jetson_clocks, tegrastats), ARM core types. Asking for a device the
machine does not have is an error, never a silent CPU run.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtmw import runtimes
from rtmw.errors import DeviceNotPresent, UsageError

# bench device profile → device name handed to the runtimes: the four profiles that record
# more than the CPU, then every device an adapter declares (OpenVINO gpu/npu, ncnn vulkan,
# LiteRT gpu, onnxruntime's execution providers), each as itself
PROFILE_DEVICE = {"cpu": "cpu", "arm": "cpu", "cuda": "cuda", "jetson": "cuda"}
RUNTIME_DEVICE = {**PROFILE_DEVICE, **{d: d for d in runtimes.devices() if d not in PROFILE_DEVICE}}
# what every results file records the version of: rtmw's own dependencies, then each
# adapter's declared packages
BASE_PACKAGES = ("rtmw", "numpy", "opencv-python-headless", "torch", "xtcocotools")
BACKEND_PACKAGES = tuple(dict.fromkeys((*BASE_PACKAGES, *runtimes.recorded_packages())))
ARM_CPU_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd42": "Cortex-A78AE",
    "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd48": "Cortex-X2",
    "0xd4f": "Neoverse-V2", "0x004": "Carmel",
}  # fmt: skip


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _run(command: list[str], timeout: float = 5.0) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def backend_versions() -> dict[str, str]:
    versions = {}
    for package in BACKEND_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def cpu_profile() -> dict[str, Any]:
    """The CPU fingerprint (rtmw.host) plus what else decides speed: affinity, clocks."""
    from rtmw.host import cpu_fingerprint

    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    cur = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    top = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    return {
        **cpu_fingerprint(),
        "affinity": affinity,
        "governor": governor or "unknown (no cpufreq in this environment)",
        "cur_freq_mhz": int(cur) / 1000 if cur and cur.isdigit() else None,
        "max_freq_mhz": int(top) / 1000 if top and top.isdigit() else None,
    }


def cuda_profile() -> dict[str, Any]:
    """GPU name, driver, clocks and power from NVML (pynvml) or nvidia-smi."""
    try:
        import pynvml  # type: ignore[import-not-found,import-untyped,unused-ignore]

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        profile = {
            "gpu": pynvml.nvmlDeviceGetName(handle),
            "driver": pynvml.nvmlSystemGetDriverVersion(),
            "sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "mem_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
            "power_limit_w": pynvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000,
            "source": "nvml",
        }
        pynvml.nvmlShutdown()
        return profile
    except Exception:
        pass
    query = "name,driver_version,clocks.sm,clocks.mem,power.limit,pstate"
    out = _run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"])
    if not out:
        raise DeviceNotPresent("--device cuda: no NVIDIA GPU found (neither NVML nor nvidia-smi)")
    name, driver, sm, mem, power, pstate = (v.strip() for v in out.splitlines()[0].split(","))
    return {
        "gpu": name,
        "driver": driver,
        "sm_clock_mhz": sm,
        "mem_clock_mhz": mem,
        "power_limit_w": power,
        "pstate": pstate,
        "source": "nvidia-smi",
    }


def jetson_profile() -> dict[str, Any]:
    release = _read("/etc/nv_tegra_release")
    if release is None:
        raise DeviceNotPresent("--device jetson: this is not a Jetson (no /etc/nv_tegra_release)")
    l4t = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", release)
    return {
        "l4t": f"{l4t.group(1)}.{l4t.group(2)}" if l4t else release.splitlines()[0],
        "jetpack": _dpkg_version("nvidia-jetpack"),
        "nvpmodel": _run(["nvpmodel", "-q"]) or "unknown (nvpmodel not runnable)",
        "jetson_clocks": _run(["jetson_clocks", "--show"]) or "unknown (needs root)",
        "model": _read("/proc/device-tree/model"),
    }


def _dpkg_version(package: str) -> str | None:
    out = _run(["dpkg-query", "-W", "-f=${Version}", package])
    return out or None


def arm_profile() -> dict[str, Any]:
    if platform.machine() not in ("aarch64", "arm64", "armv7l", "armv8l"):
        raise DeviceNotPresent(f"--device arm: this CPU is {platform.machine()}, not ARM")
    cpuinfo = _read("/proc/cpuinfo") or ""
    parts = re.findall(r"^CPU part\s*:\s*(0x[0-9a-f]+)", cpuinfo, re.M)
    cores = [ARM_CPU_PARTS.get(p, p) for p in parts]
    return {
        "core_types": {c: cores.count(c) for c in sorted(set(cores))},
        "per_core": cores,
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [],
    }


PROFILES: dict[str, Callable[[], dict[str, Any]]] = {
    "cpu": lambda: {},
    "cuda": cuda_profile,
    "jetson": jetson_profile,
    "arm": arm_profile,
    # a device an adapter declares (and checks itself when it activates: no fallback)
    **{d: (lambda: {}) for d in RUNTIME_DEVICE if d not in PROFILE_DEVICE},
}


def environment(device: str) -> dict[str, Any]:
    """The environment record of a run; raises DeviceNotPresent for an absent device."""
    if device not in PROFILES:
        raise UsageError(f"unknown --device {device!r}; known: {', '.join(PROFILES)}")
    profile = PROFILES[device]()
    return {
        "host": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_profile(),
        "device": device,
        "device_profile": profile,
        "versions": backend_versions(),
    }


class TegrastatsSampler:
    """Samples Jetson board power with ``tegrastats`` while a block of code runs."""

    def __init__(self, interval_ms: int = 200) -> None:
        self.interval_ms = interval_ms
        self.samples_mw: list[float] = []
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> TegrastatsSampler:
        if shutil.which("tegrastats") is None:
            return self
        self._proc = subprocess.Popen(
            ["tegrastats", "--interval", str(self.interval_ms)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            # e.g. "VDD_IN 5012mW/5012mW" (Orin) or "POM_5V_IN 3456/3456" (Xavier, Nano)
            match = re.search(r"(?:VDD_IN|POM_5V_IN)\s+(\d+)(?:mW)?/", line)
            if match:
                self.samples_mw.append(float(match.group(1)))

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=2)

    def summary(self) -> dict[str, float] | None:
        if not self.samples_mw:
            return None
        return {
            "mean_w": sum(self.samples_mw) / len(self.samples_mw) / 1000,
            "max_w": max(self.samples_mw) / 1000,
            "samples": float(len(self.samples_mw)),
        }
