"""PyTorch adapter: the FP32 reference, run from an mmpose checkpoint."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rtmw.runtimes._imports import import_backend
from rtmw.runtimes.base import DeviceUnavailable, Runtime


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
        model, _ = load_checkpoint(
            self.artifact.file(self.artifact.manifest.io.get("file", "model.pth"))
        )
        self.torch_device = torch.device(self.requested_device)
        self.model = model.to(self.torch_device).eval()
        actual = str(next(self.model.parameters()).device)
        return actual

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            x, y = self.model(torch.from_numpy(batch).to(self.torch_device))
        return x.float().cpu().numpy(), y.float().cpu().numpy()

    def _close_impl(self) -> None:
        del self.model
