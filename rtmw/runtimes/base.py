"""One interface for every backend: activate, infer a float32 NCHW batch, close.

Adapters implement small ``_*_impl`` hooks; the base class checks state and inputs,
and refuses to run on a device other than the one asked for (no silent CPU fallback).
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

import numpy as np

from rtmw.artifact import Artifact
from rtmw.errors import DeviceUnavailable, InputError, UsageError
from rtmw.host import cpu_fingerprint
from rtmw.logs import native_output_to_log
from rtmw.pipeline import POSE_OUTPUTS_2D, DepthCodec, ModelOutputs

# an artifact whose manifest names no outputs is a 2D pose model's (the first artifacts)
DEFAULT_OUTPUTS = POSE_OUTPUTS_2D


def depth_codec(artifact: Artifact) -> DepthCodec | None:
    """How an RTMW3D artifact's simcc_z decodes (None for a 2D model)."""
    return DepthCodec.from_dict(artifact.manifest.depth)


def output_names(artifact: Artifact) -> tuple[str, ...]:
    """The outputs an artifact's model gives, in order, as its manifest records them."""
    names = artifact.manifest.io.get("outputs") or DEFAULT_OUTPUTS
    return tuple(str(n) for n in names)


logger = logging.getLogger(__name__)

DECLARATIONS = ("name", "format", "extra", "packages", "devices")
# artifact format → its adapter; filled by @register_runtime as the adapters are imported
REGISTRY: dict[str, type[Runtime]] = {}


def register_runtime(cls: type[Runtime]) -> type[Runtime]:
    """Class decorator: registers an adapter under its format, refusing one whose
    declarations are missing or wrong (a backend half-added fails at import)."""
    missing = [attr for attr in DECLARATIONS if not hasattr(cls, attr)]
    if missing:
        raise TypeError(f"{cls.__name__} does not declare {', '.join(missing)}")
    if (
        not isinstance(cls.packages, tuple)
        or not isinstance(cls.devices, tuple)
        or not (cls.devices and cls.packages)
    ):
        raise TypeError(f"{cls.__name__}: packages and devices must be non-empty tuples")
    if cls.format in REGISTRY and REGISTRY[cls.format] is not cls:
        raise TypeError(f"format {cls.format!r} already runs on {REGISTRY[cls.format].__name__}")
    REGISTRY[cls.format] = cls
    return cls


@dataclass(frozen=True)
class TensorSpec:
    """Input metadata; ``None`` marks a dynamic dimension."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


def default_threads() -> int:
    """The cores this process may run on (affinity), the thread count of every runtime."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class Runtime(ABC):
    """Base adapter. Use as a context manager, or call ``activate``/``close``.

    Each adapter declares, once, what the rest of rtmw derives its tables from
    (:func:`register_runtime` refuses one that does not): the artifact ``format`` it runs,
    the pip ``extra`` that installs it on a run-only host ("" for the base install), the
    ``packages`` whose versions every results file records, and the ``devices`` it can run
    on (``rtmw-bench --device`` accepts each).
    """

    name: ClassVar[str]
    format: ClassVar[str]
    extra: ClassVar[str]
    packages: ClassVar[tuple[str, ...]]
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    # a reference (the torch checkpoint), not a deployment route: baselines leave it out
    reference: ClassVar[bool] = False

    # tuning knobs an adapter accepts (name → what it does); nothing else is passed through,
    # and none of them may change the precision contract
    OPTIONS: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        artifact: Artifact,
        device: str = "cpu",
        threads: int | None = None,
        options: Mapping[str, str] | None = None,
    ):
        unknown = sorted(set(options or {}) - set(self.OPTIONS))
        if unknown:
            known = ", ".join(self.OPTIONS) or "none"
            raise UsageError(f"{self.name}: unknown runtime option(s) {unknown}; known: {known}")
        self.options = dict(options or {})
        self.artifact = artifact
        self.requested_device = device
        # every adapter gets an explicit thread count (the usable cores unless told), so
        # that no runtime runs with its own default while another uses every core
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise UsageError(f"{self.name}: threads must be a positive integer, got {threads!r}")
        self.threads = threads or default_threads()
        self.device = "inactive"
        self.active = False
        width, height = artifact.manifest.input_size
        declared = artifact.manifest.io.get("batch", "dynamic")
        batch = None if declared == "dynamic" else int(declared)
        self.input_spec = TensorSpec(
            artifact.manifest.io.get("input", "input"), (batch, 3, height, width)
        )
        # A model of one fixed batch gets chunks of it inside infer() (the last one padded);
        # a backend that runs one crop at a time loops. Both say so.
        self.fixed_batch = batch
        self.loops_over_batch = batch is not None
        self.output_names = output_names(artifact)
        self.depth = depth_codec(artifact)
        # the precision contract (rtmw.runtimes.precision): what the float parts must run
        # in, set before activation; adapters record what the backend reported
        self.host = cpu_fingerprint()
        self.execution_precision = "unset"
        self.execution: dict[str, Any] = {}
        self._executor: ThreadPoolExecutor | None = None

    # -- public API -------------------------------------------------------------------
    def activate(self) -> Runtime:
        if self.active:
            return self
        base_device, _, index = self.requested_device.partition(":")
        if base_device == "cpu" and index:
            raise DeviceUnavailable(f"{self.name}: 'cpu' takes no device index, got {index!r}")
        if index and not index.isdigit():
            raise DeviceUnavailable(f"{self.name}: device index must be a number, got {index!r}")
        if base_device not in self.devices:
            raise DeviceUnavailable(
                f"{self.name} cannot run on {self.requested_device!r}; it supports "
                + ", ".join(self.devices)
            )
        from rtmw.runtimes.precision import required_execution

        manifest = self.artifact.manifest
        float_parts = manifest.options.get("float_parts") if manifest.precision == "int8" else None
        self.execution_precision = required_execution(
            manifest.precision, base_device, self.host, float_parts=float_parts
        )
        self.execution = {"contract": self.execution_precision, "threads": self.threads}
        if self.options:
            self.execution["options"] = dict(self.options)
        if self.artifact.manifest.precision == "fp16" and self.execution_precision == "f32":
            self.execution["note"] = (
                "FP16 artifact computed in f32: this CPU has no native FP16 arithmetic"
            )
        with native_output_to_log():  # session banners, cpuinfo probes: the run log
            self.device = self._activate_impl()
        self.active = True
        logger.info("%s: running on %s", self.name, self.device)
        return self

    def infer(self, batch: np.ndarray) -> ModelOutputs:
        """The model's outputs by name (float32, in the manifest's order): simcc_x, simcc_y
        (and simcc_z) of a pose model. ``.unpack()`` gives them as a tuple."""
        if not self.active:
            self.activate()
        self._check_batch(batch)
        step = self.fixed_batch or 1
        if self.loops_over_batch and len(batch) != step:
            parts = [
                self._infer_chunk(batch[i : i + step], step) for i in range(0, len(batch), step)
            ]
            return ModelOutputs.concatenate(parts)
        return self._as_outputs(self._infer_impl(np.ascontiguousarray(batch)), len(batch))

    def _infer_chunk(self, chunk: np.ndarray, size: int) -> ModelOutputs:
        """One call of a fixed-batch model; a short last chunk is padded, its padding dropped."""
        count = len(chunk)
        if count < size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - count, axis=0)])
        return self._as_outputs(self._infer_impl(np.ascontiguousarray(chunk)), count)

    def _as_outputs(self, outputs: Sequence[np.ndarray], count: int) -> ModelOutputs:
        if len(outputs) != len(self.output_names):
            raise InputError(
                f"{self.name}: the model gave {len(outputs)} outputs, its manifest names "
                f"{len(self.output_names)} ({', '.join(self.output_names)})"
            )
        return ModelOutputs.from_sequence(self.output_names, [o[:count] for o in outputs])

    def __call__(self, batch: np.ndarray) -> ModelOutputs:
        return self.infer(batch)

    # the kind of asynchronous inference infer_async gives (adapters with their own say so)
    async_kind: ClassVar[str] = "worker thread"

    def infer_async(self, batch: np.ndarray) -> Future[ModelOutputs]:
        """Start inference and return at once; the result arrives in the future.

        The base runs ``infer`` on one worker thread (backends release the GIL while they
        compute, so the caller's preprocessing and decoding overlap it). An adapter may
        override it with native asynchronous requests; OpenVINO's AsyncInferQueue did and
        crashed at interpreter teardown, so none does yet.
        """
        if not self.active:
            self.activate()
        self._check_batch(batch)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        return self._executor.submit(self.infer, batch)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self.active:
            self._close_impl()
        self.active = False
        self.device = "inactive"

    def __enter__(self) -> Runtime:
        return self.activate()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- hooks ------------------------------------------------------------------------
    @abstractmethod
    def _activate_impl(self) -> str:
        """Load the model; return the device actually used, read back from the backend.

        Must run the float parts in ``self.execution_precision``, read back what the
        backend reports into ``self.execution``, and raise ``PrecisionMismatch`` when
        they differ.
        """

    @abstractmethod
    def _infer_impl(self, batch: np.ndarray) -> Sequence[np.ndarray]:
        """The model's outputs for one batch, in ``self.output_names`` order."""

    def _close_impl(self) -> None:  # noqa: B027 - optional hook
        pass

    # -- helpers ----------------------------------------------------------------------
    def _check_batch(self, batch: object) -> None:
        if not isinstance(batch, np.ndarray):
            raise InputError(
                f"{self.name}: batch must be a numpy array, got {type(batch).__name__}"
            )
        if batch.dtype != np.float32:
            raise InputError(f"{self.name}: batch must be float32 NCHW, got dtype {batch.dtype}")
        expected = self.input_spec.shape[1:]
        if batch.ndim != 4 or tuple(batch.shape[1:]) != expected or len(batch) == 0:
            raise InputError(
                f"{self.name}: batch must be (N, {', '.join(map(str, expected))}) with N ≥ 1, "
                f"got {batch.shape}"
            )
        # a NaN/Inf pixel gives NaN logits on one backend and finite garbage on another:
        # refuse it (the sum is a cheap screen; only a non-finite sum costs the full scan)
        if not np.isfinite(batch.sum(dtype=np.float64)) and not np.isfinite(batch).all():
            bad = int(np.count_nonzero(~np.isfinite(batch)))
            raise InputError(f"{self.name}: batch holds {bad} NaN or infinite value(s)")
