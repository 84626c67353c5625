"""PyTorch adapter: the FP32 reference, run from an mmpose checkpoint.

The reference must be IEEE f32 everywhere: oneDNN's bf16/TF32 fast-math modes and
cuDNN's TF32 convolutions (torch's default) are pinned off and read back.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rtmw.runtimes._imports import import_backend
from rtmw.runtimes.base import DeviceUnavailable, Runtime


def pin_ieee_fp32(torch: Any) -> dict[str, str]:
    """Set every fast-math switch torch has to IEEE f32; return them as read back."""
    from rtmw.runtimes.precision import PrecisionMismatch

    switches = {
        "mkldnn.matmul": torch.backends.mkldnn.matmul,
        "mkldnn.conv": torch.backends.mkldnn.conv,
        "cuda.matmul": torch.backends.cuda.matmul,
        "cudnn.conv": torch.backends.cudnn.conv,
    }
    for backend in switches.values():
        backend.fp32_precision = "ieee"
    reported = {name: str(backend.fp32_precision) for name, backend in switches.items()}
    if any(value != "ieee" for value in reported.values()):
        raise PrecisionMismatch(f"torch: fp32 precision switches read back as {reported}")
    return reported


class TorchRunner(Runtime):
    name = "torch"
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")

    def _activate_impl(self) -> str:
        torch: Any = import_backend("torch", "torch")
        from rtmw.models import load_checkpoint

        if self.requested_device.startswith("cuda") and not torch.cuda.is_available():
            raise DeviceUnavailable("torch: CUDA requested but torch.cuda.is_available() is False")
        if self.threads and self.requested_device == "cpu":
            torch.set_num_threads(self.threads)
        self._torch = torch
        self.execution["reported"] = pin_ieee_fp32(torch)
        model, _ = load_checkpoint(
            self.artifact.file(self.artifact.manifest.io.get("file", "model.pth"))
        )
        self.torch_device = torch.device(self.requested_device)
        self.model = model.to(self.torch_device).eval()
        actual = str(next(self.model.parameters()).device)
        return f"{actual} ({self.execution_precision})"

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            x, y = self.model(torch.from_numpy(batch).to(self.torch_device))
        return x.float().cpu().numpy(), y.float().cpu().numpy()

    def _close_impl(self) -> None:
        del self.model
