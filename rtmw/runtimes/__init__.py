"""One runtime interface over every backend; chosen by the artifact's format.

``rtmw.runtimes.open(artifact_dir, device="cpu")`` checks the manifest hashes, picks the
adapter and activates it; it raises :class:`DeviceUnavailable` rather than run anywhere
other than the requested device.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path

from rtmw.artifact import Artifact, Manifest, hash_files, read_artifact
from rtmw.errors import DeviceUnavailable, RtmwError
from rtmw.runtimes.base import Runtime, TensorSpec

# artifact format → "module:class"; modules import their backend only when activated
RUNTIMES: dict[str, str] = {
    "onnx": "rtmw.runtimes.onnxrt:OnnxRuntimeRunner",
    "openvino": "rtmw.runtimes.openvino:OpenVINORunner",
    "ncnn": "rtmw.runtimes.ncnn:NcnnRunner",
    "litert": "rtmw.runtimes.litert:LiteRTRunner",
    "executorch": "rtmw.runtimes.executorch:ExecuTorchRunner",
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
    "RUNTIMES",
    "DeviceUnavailable",
    "Runtime",
    "TensorSpec",
    "open",
    "open_model",
    "runtime_class",
]
