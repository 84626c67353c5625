"""The one torch-inference adapter: an RTMW module as an ``InferFn`` on numpy batches.

Export verification (the reference), training validation and the torch runtime all run
torch through this class, so the reference is computed one way everywhere: IEEE f32
(oneDNN's bf16/TF32 fast-math modes and cuDNN's TF32 convolutions, torch's default, are
pinned off and read back), inference mode, outputs as float32 numpy arrays.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from rtmw.outputs import POSE_OUTPUTS_3D, ModelOutputs

FP32_SWITCHES = ("mkldnn.matmul", "mkldnn.conv", "cuda.matmul", "cudnn.conv")


def pin_ieee_fp32() -> dict[str, str]:
    """Set every fp32 fast-math switch torch has to IEEE; return them as read back."""
    backends: Any = torch.backends  # fp32_precision is not in torch's type stubs yet
    switches: dict[str, Any] = {
        "mkldnn.matmul": backends.mkldnn.matmul,
        "mkldnn.conv": backends.mkldnn.conv,
        "cuda.matmul": backends.cuda.matmul,
        "cudnn.conv": backends.cudnn.conv,
    }
    for backend in switches.values():
        backend.fp32_precision = "ieee"
    return {name: str(backend.fp32_precision) for name, backend in switches.items()}


@contextlib.contextmanager
def torch_export_flags() -> Iterator[None]:
    """Tracing with torch.export after :func:`pin_ieee_fp32`.

    torch.export reads cuDNN's legacy ``allow_tf32``, which raises once the per-op API
    has set conv alone (as the pin does). For the trace the legacy switch says the same
    thing (no TF32; cuDNN plays no part in a CPU export); the per-op settings are put
    back after. torch's pytree deprecation warnings from inside export are muted.
    """
    cudnn: Any = torch.backends.cudnn
    saved = {op: getattr(cudnn, op).fp32_precision for op in ("conv", "rnn")}
    cudnn.allow_tf32 = False
    try:
        with warnings.catch_warnings():
            # torch 2.13's own pytree deprecation, raised from its export internals
            warnings.filterwarnings("ignore", message=r".*LeafSpec", category=FutureWarning)
            yield
    finally:
        for op, value in saved.items():
            getattr(cudnn, op).fp32_precision = value


def not_ieee(reported: dict[str, str]) -> dict[str, str]:
    """The switches that did not read back as IEEE (empty when the pin held)."""
    return {name: value for name, value in reported.items() if value != "ieee"}


class TorchInference:
    """``(N,3,H,W) float32 → (simcc_x, simcc_y[, simcc_z])`` with a torch module, IEEE f32.

    Calling it switches the module to eval mode; ``restore`` puts training mode back for
    a caller (training validation) that needs it.
    """

    def __init__(self, model: nn.Module, device: str = "cpu", *, pin: bool = True) -> None:
        self.switches = pin_ieee_fp32() if pin else {}
        self.device = torch.device(device)
        self.model = model
        self._was_training = model.training

    def __call__(self, batch: np.ndarray) -> ModelOutputs:
        self.model.eval()
        with torch.inference_mode():
            outputs = self.model(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        arrays = [o.float().cpu().numpy() for o in outputs]
        # an rtmw model names its outputs in its config; a bare module gets the pose order
        config = getattr(self.model, "config", None)
        names = getattr(config, "output_names", POSE_OUTPUTS_3D[: len(arrays)])
        return ModelOutputs.from_sequence(tuple(names), arrays)

    def restore(self) -> None:
        self.model.train(self._was_training)
