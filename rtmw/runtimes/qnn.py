"""Qualcomm QNN adapter for ``qnn-w8a16`` artifacts (a QDQ ONNX with one fixed batch).

Two devices. ``cpu``: onnxruntime's CPU kernels run the Q/DQ graph (exact w8a16
arithmetic; float parts f32): the reference every host can run. ``htp``: Qualcomm's QNN
execution provider compiles the graph for the Hexagon HTP and runs it on the HTP
backend with CPU fallback disabled — on a Snapdragon device the NPU, on an x86_64 Linux
host Qualcomm's HTP emulator (said in the device string and the results). The HTP has
no f32 arithmetic: the nodes an INT8 policy keeps float run in fp16 there. The contract
says so for ``htp`` (runtimes/precision.py), the session pins the QNN EP's fp16 precision
rather than trusting its default, and the run reports it; an artifact is judged on the
HTP by its own gate there, not by its CPU run's.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rtmw.errors import DeviceUnavailable, RtmwError
from rtmw.optional import import_backend
from rtmw.runtimes.base import Runtime, register_runtime
from rtmw.runtimes.precision import check_readback

# Snapdragon 8 Gen 3 (SM8650, QNN SoC id 57): the HTP the emulator models. Without a SoC
# model the x86 emulator fails to finalise RTMW's graph (QNN_COMMON_ERROR_MEM_ALLOC).
DEFAULT_SOC_MODEL = "57"
# the QNN EP's switch for float nodes on the HTP: "1" computes them in fp16, the only float
# the HTP has (the EP's default today; pinned so that a changed default cannot move figures)
HTP_FLOAT_OPTIONS = {"enable_htp_fp16_precision": "1"}


def htp_session(model: Path, soc_model: str = DEFAULT_SOC_MODEL) -> Any:
    """An onnxruntime session on the QNN execution provider's HTP backend, CPU fallback
    off: a node the HTP cannot take fails the session instead of running on the CPU."""
    ort: Any = import_backend("onnxruntime", "onnx")
    qnn: Any = import_backend("onnxruntime_qnn", "qnn")
    if not any(d.ep_name == qnn.get_ep_name() for d in ort.get_ep_devices()):
        ort.register_execution_provider_library(qnn.get_ep_name(), qnn.get_library_path())
    devices = [d for d in ort.get_ep_devices() if d.ep_name == qnn.get_ep_name()]
    if not devices:
        raise RtmwError("onnxruntime-qnn registered no QNN device")
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    options.log_severity_level = 3
    options.add_provider_for_devices(
        devices,
        {"backend_path": qnn.get_qnn_htp_path(), "soc_model": soc_model, **HTP_FLOAT_OPTIONS},
    )
    return ort.InferenceSession(str(model), sess_options=options)


def htp_host() -> str:
    """What 'the HTP backend' is on this host: the emulator off Snapdragon hardware."""
    machine = platform.machine()
    return "HTP emulator (x86_64 Linux)" if machine in ("x86_64", "AMD64") else f"HTP ({machine})"


@register_runtime
class QnnRunner(Runtime):
    name = "qnn"
    format = "qnn"
    extra = "qnn"
    packages: ClassVar[tuple[str, ...]] = ("onnxruntime", "onnxruntime-qnn")
    devices: ClassVar[tuple[str, ...]] = ("cpu", "htp")

    def _activate_impl(self) -> str:
        ort: Any = import_backend("onnxruntime", "onnx")
        path = self.artifact.file(self.artifact.manifest.io.get("file", "model.onnx"))
        if self.requested_device == "cpu":
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("mlas.enable_gemm_fastmath_arm64_bfloat16", "0")
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])  # fmt: skip
            self.execution["reported"] = {"provider": "CPUExecutionProvider"}
            return f"cpu (CPUExecutionProvider, w8a16 Q/DQ, {self.execution_precision})"
        kept = int(self.artifact.manifest.options.get("kept_in_float", 0))
        try:
            self.session = htp_session(path)
        except ImportError:
            raise
        except Exception as exc:
            raise DeviceUnavailable(f"qnn: the HTP backend refused the model: {exc}") from None
        active = self.session.get_providers()
        if not active or active[0] != "QNNExecutionProvider":
            raise DeviceUnavailable(f"qnn: the session runs on {active}, not the QNN HTP")
        # read back what the EP took, not what it was asked for (the contract for htp: f16)
        took = self.session.get_provider_options().get(active[0], {})
        fp16 = took.get("enable_htp_fp16_precision")
        check_readback(self.name, self.execution_precision, "f16" if fp16 == "1" else "f32")
        host = htp_host()
        self.execution["reported"] = {"provider": active[0], "backend": host,
                                      "soc_model": took.get("soc_model"),
                                      "cpu_fallback": "disabled", "float_nodes": kept,
                                      "enable_htp_fp16_precision": fp16}  # fmt: skip
        return f"htp ({host}, QNNExecutionProvider, w8a16, {kept} float nodes in f16)"

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        name = self.session.get_inputs()[0].name
        ran = self.session.run(None, {name: batch})
        outputs = dict(zip([o.name for o in self.session.get_outputs()], ran, strict=True))
        return tuple(outputs[n] for n in self.output_names)

    def _close_impl(self) -> None:
        del self.session
