"""PyTorch adapter: the FP32 reference, run from an mmpose (pose) or mmdet (detector)
checkpoint.

The reference must be IEEE f32 everywhere: oneDNN's bf16/TF32 fast-math modes and
cuDNN's TF32 convolutions (torch's default) are pinned off and read back.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rtmw.errors import DeviceUnavailable, PrecisionMismatch
from rtmw.optional import import_backend
from rtmw.runtimes.base import Runtime, register_runtime


@register_runtime
class TorchRunner(Runtime):
    name = "torch"
    format = "torch"
    extra = ""
    packages: ClassVar[tuple[str, ...]] = ("torch",)
    reference = True
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")

    def _activate_impl(self) -> str:
        torch: Any = import_backend("torch", "torch")
        from rtmw.models import any_model_from_contents, read_checkpoint
        from rtmw.models.inference import TorchInference, not_ieee

        if self.requested_device.startswith("cuda") and not torch.cuda.is_available():
            raise DeviceUnavailable("torch: CUDA requested but torch.cuda.is_available() is False")
        if self.threads and self.requested_device == "cpu":
            torch.set_num_threads(self.threads)
        contents = read_checkpoint(
            self.artifact.file(self.artifact.manifest.io.get("file", "model.pth"))
        )
        model, _ = any_model_from_contents(contents)
        self.inference = TorchInference(model.to(self.requested_device), self.requested_device)
        self.execution["reported"] = self.inference.switches
        if not_ieee(self.inference.switches):
            raise PrecisionMismatch(
                f"torch: fp32 precision switches read back as {self.inference.switches}"
            )
        actual = str(next(model.parameters()).device)
        return f"{actual} ({self.execution_precision})"

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.inference(batch).unpack(*self.output_names)

    def _close_impl(self) -> None:
        del self.inference
