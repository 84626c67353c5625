"""onnxruntime adapter: CPU, CUDA, TensorRT and OpenVINO execution providers."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rtmw.runtimes._imports import import_backend
from rtmw.runtimes.base import DeviceUnavailable, Runtime

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}


class OnnxRuntimeRunner(Runtime):
    """Runs ``model.onnx``. The requested provider must be the session's first provider.

    onnxruntime silently drops an unavailable provider and runs on CPU; that case is
    turned into :class:`DeviceUnavailable` instead.
    """

    name = "onnxruntime"
    devices: ClassVar[tuple[str, ...]] = tuple(PROVIDERS)

    def _activate_impl(self) -> str:
        ort: Any = import_backend("onnxruntime", "onnx")
        base, _, index = self.requested_device.partition(":")
        wanted = PROVIDERS[base]
        available = ort.get_available_providers()
        if wanted not in available:
            raise DeviceUnavailable(
                f"onnxruntime: {wanted} is not available in this onnxruntime build "
                f"(available: {', '.join(available)})"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        provider: Any = wanted
        if index and base in ("cuda", "tensorrt"):
            provider = (wanted, {"device_id": int(index)})
        path = self.artifact.file(self.artifact.manifest.io.get("file", "model.onnx"))
        self.session = ort.InferenceSession(str(path), options, providers=[provider])
        active = self.session.get_providers()
        if not active or active[0] != wanted:
            raise DeviceUnavailable(
                f"onnxruntime: asked for {wanted} but the session runs on {active}; refusing to "
                "fall back"
            )
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        return f"{self.requested_device} ({active[0]})"

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = dict(
            zip(self.output_names, self.session.run(None, {self.input_name: batch}), strict=True)
        )
        return outputs["simcc_x"], outputs["simcc_y"]

    def _close_impl(self) -> None:
        del self.session
