"""One runtime interface over every backend; chosen by the artifact's format.

``rtmw.runtimes.open(artifact_dir, device="cpu")`` checks the manifest hashes, picks the
adapter and activates it; it raises :class:`DeviceUnavailable` rather than run anywhere
other than the requested device.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from rtmw.artifact import Artifact, read_artifact
from rtmw.errors import RtmwError
from rtmw.runtimes.base import DeviceUnavailable, Runtime, TensorSpec

# artifact format → "module:class"; modules import their backend only when activated
RUNTIMES: dict[str, str] = {
    "onnx": "rtmw.runtimes.onnxrt:OnnxRuntimeRunner",
    "openvino": "rtmw.runtimes.openvino:OpenVINORunner",
    "ncnn": "rtmw.runtimes.ncnn:NcnnRunner",
    "tensorrt": "rtmw.runtimes.tensorrt:TensorRTRunner",
    "torch": "rtmw.runtimes.torch:TorchRunner",
}


def runtime_class(artifact_format: str) -> type[Runtime]:
    try:
        module_name, class_name = RUNTIMES[artifact_format].split(":")
    except KeyError:
        raise RtmwError(
            f"no runtime for artifact format {artifact_format!r}; known: {', '.join(RUNTIMES)}"
        ) from None
    cls: type[Runtime] = getattr(importlib.import_module(module_name), class_name)
    return cls


def open(
    artifact: str | Path | Artifact,
    device: str = "cpu",
    threads: int | None = None,
    *,
    activate: bool = True,
) -> Runtime:
    """Open an artifact folder on ``device``; hashes are checked, no silent fallback."""
    opened = artifact if isinstance(artifact, Artifact) else read_artifact(artifact)
    runner = runtime_class(opened.manifest.format)(opened, device=device, threads=threads)
    return runner.activate() if activate else runner


__all__ = ["RUNTIMES", "DeviceUnavailable", "Runtime", "TensorSpec", "open", "runtime_class"]
