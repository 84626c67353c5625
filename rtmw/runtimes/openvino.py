"""OpenVINO adapter: CPU, GPU or NPU by name, with the device read back after compiling."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rtmw.runtimes._imports import import_backend
from rtmw.runtimes.base import DeviceUnavailable, Runtime


class OpenVINORunner(Runtime):
    name = "openvino"
    devices: ClassVar[tuple[str, ...]] = ("cpu", "gpu", "npu")

    def _activate_impl(self) -> str:
        ov: Any = import_backend("openvino", "openvino")
        core = ov.Core()
        wanted = self.requested_device.upper()  # "gpu:1" → "GPU:1"; OpenVINO spells it "GPU.1"
        wanted = wanted.replace(":", ".")
        available = core.available_devices
        if wanted not in available and wanted.split(".")[0] not in available:
            raise DeviceUnavailable(
                f"openvino: device {wanted} not present (available: {', '.join(available)})"
            )
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if wanted.startswith("CPU"):
            if self.threads:
                config["INFERENCE_NUM_THREADS"] = self.threads
            # FP32 artifacts run in FP32: without the hint, CPUs with BF16/AMX switch to BF16
            if self.artifact.manifest.precision == "fp32":
                config["INFERENCE_PRECISION_HINT"] = "f32"
        xml = self.artifact.file(self.artifact.manifest.io.get("file", "model.xml"))
        model = core.read_model(str(xml))
        self.compiled = core.compile_model(model, wanted, config)
        executed = list(self.compiled.get_property("EXECUTION_DEVICES"))
        if not executed or not all(d.split(".")[0] == wanted.split(".")[0] for d in executed):
            raise DeviceUnavailable(f"openvino: asked for {wanted}, compiled for {executed}")
        self.request = self.compiled.create_infer_request()
        self.outputs = {o.get_any_name(): o for o in self.compiled.outputs}
        details = ",".join(executed)
        if wanted.startswith("CPU"):
            hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
            details += f", {getattr(hint, 'get_type_name', lambda: str(hint))()}"
        return f"{self.requested_device} ({details})"

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        result = self.request.infer({0: batch}, share_inputs=True)
        return (
            np.array(result[self.outputs["simcc_x"]], copy=True),
            np.array(result[self.outputs["simcc_y"]], copy=True),
        )

    def _close_impl(self) -> None:
        del self.request
        del self.compiled
