"""One runtime interface over every backend; chosen by the artifact's format.

``rtmw.runtimes.open(artifact_dir, device="cpu")`` checks the manifest hashes, picks the
adapter and activates it; it raises :class:`DeviceUnavailable` rather than run anywhere
other than the requested device.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rtmw.artifact import Artifact, Manifest, hash_files, read_artifact
from rtmw.errors import DeviceUnavailable, RtmwError
from rtmw.runtimes import (  # noqa: F401  (each registers its adapter; backends load lazily)
    executorch,
    litert,
    mnn,
    ncnn,
    onnxrt,
    openvino,
    qnn,
    rknn,
    tensorrt,
)
from rtmw.runtimes import torch as _torch_adapter  # noqa: F401
from rtmw.runtimes.base import REGISTRY, Runtime, TensorSpec, register_runtime

# artifact format → its adapter class, as the adapters declared themselves
RUNTIMES: Mapping[str, type[Runtime]] = REGISTRY


def runtime_class(artifact_format: str) -> type[Runtime]:
    try:
        return REGISTRY[artifact_format]
    except KeyError:
        raise RtmwError(
            f"no runtime for artifact format {artifact_format!r}; known: {', '.join(REGISTRY)}"
        ) from None


def extras_by_format() -> dict[str, str]:
    """Artifact format → the pip extra that runs it on a run-only host (none for the base)."""
    return {fmt: cls.extra for fmt, cls in REGISTRY.items() if cls.extra}


def recorded_packages() -> tuple[str, ...]:
    """Every adapter's packages, in registration order, once each."""
    return tuple(dict.fromkeys(p for cls in REGISTRY.values() for p in cls.packages))


def devices() -> tuple[str, ...]:
    """Every device some adapter declares."""
    return tuple(dict.fromkeys(d for cls in REGISTRY.values() for d in cls.devices))


def deployment_formats(device: str = "cpu") -> tuple[str, ...]:
    """Formats whose adapter runs on ``device`` and is a deployment route (not a reference)."""
    return tuple(
        fmt for fmt, cls in REGISTRY.items() if device in cls.devices and not cls.reference
    )


def open(
    artifact: str | Path | Artifact,
    device: str = "cpu",
    threads: int | None = None,
    *,
    options: Mapping[str, str] | None = None,
    activate: bool = True,
) -> Runtime:
    """Open an artifact folder on ``device``; hashes are checked, no silent fallback.
    ``options`` are the adapter's tuning knobs (``Runtime.OPTIONS``); unknown ones are refused."""
    opened = artifact if isinstance(artifact, Artifact) else read_artifact(artifact)
    cls = runtime_class(opened.manifest.format)
    runner = cls(opened, device=device, threads=threads, options=options)
    return runner.activate() if activate else runner


def open_model(
    model_file: str | Path,
    *,
    format: str,
    precision: str,
    input_size: tuple[int, int],
    device: str = "cpu",
    threads: int | None = None,
    files: tuple[str, ...] = (),
    outputs: tuple[str, ...] | None = None,
) -> Runtime:
    """Open a bare model file (no artifact folder) with the adapter and precision contract
    an artifact of ``format``/``precision`` gets: for work files of an export (quantiser
    references, per-block sensitivity models), which must run as artifacts run.
    ``files`` names the model's companion files (an IR's .bin) beside it; ``outputs`` the
    model's outputs in order (an RTMW3D model's three; two when not given)."""
    path = Path(model_file)
    manifest = Manifest(
        model="work-file", input_size=input_size, target=f"{format}-{precision}",
        format=format, precision=precision,
        files=hash_files(path.parent, [path.name, *files]), source={"file": str(path)},
        tools={}, io={"file": path.name, "input": "input", "batch": "dynamic",
                      **({"outputs": list(outputs)} if outputs else {})},
    )  # fmt: skip
    runner = runtime_class(format)(Artifact(path.parent, manifest), device=device, threads=threads)
    return runner.activate()


__all__ = [
    "REGISTRY",
    "RUNTIMES",
    "DeviceUnavailable",
    "Runtime",
    "TensorSpec",
    "deployment_formats",
    "devices",
    "extras_by_format",
    "open",
    "open_model",
    "recorded_packages",
    "register_runtime",
    "runtime_class",
]
