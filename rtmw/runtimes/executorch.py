"""ExecuTorch adapter (``.pte``): the program's XNNPACK partitions on the CPU's threads.

An ExecuTorch program here has one fixed batch (the artifact's ``io.batch``): the base
class cuts larger batches into chunks of it and pads the last (``loops_over_batch``).

The thread pool is process-wide in ExecuTorch's Python runtime: activating resets it to
this adapter's thread count and reads it back. XNNPACK runs these programs in f32 (the
FP32 program, and the float parts of the INT8 one); there is no other device here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rtmw.errors import DeviceUnavailable
from rtmw.optional import import_backend
from rtmw.runtimes.base import Runtime, register_runtime


@register_runtime
class ExecuTorchRunner(Runtime):
    name = "executorch"
    format = "executorch"
    extra = "executorch"
    packages: ClassVar[tuple[str, ...]] = ("executorch",)
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    def _activate_impl(self) -> str:
        runtime_module: Any = import_backend("executorch.runtime", "executorch")
        pybindings: Any = import_backend(
            "executorch.extension.pybindings.portable_lib", "executorch"
        )
        torch: Any = import_backend("torch", "executorch")
        runtime = runtime_module.Runtime.get()
        if not runtime.backend_registry.is_available("XnnpackBackend"):
            raise DeviceUnavailable("executorch: this build has no XNNPACK backend")
        pybindings._unsafe_reset_threadpool(self.threads)
        threads = int(pybindings._threadpool_get_thread_count())
        if threads != self.threads:
            raise DeviceUnavailable(f"executorch: asked for {self.threads} threads, got {threads}")
        program = runtime.load_program(str(self.artifact.file(self.artifact.manifest.io["file"])))
        self._method = program.load_method("forward")
        self._torch = torch
        delegates = self.artifact.manifest.options.get("delegates", [])
        self.execution["reported"] = {"threads": threads, "delegates": delegates}
        return f"cpu ({', '.join(delegates) or 'portable kernels'}, {threads} threads, f32)"

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        outputs = self._method.execute([self._torch.from_numpy(batch)])
        return tuple(np.array(o.numpy(), np.float32, copy=True) for o in outputs)

    def _close_impl(self) -> None:
        del self._method
