"""onnxruntime adapter: CPU, CUDA, TensorRT and OpenVINO execution providers.

Precision, as the contract in :mod:`rtmw.runtimes.precision` asks: the CPU provider
has no implicit reduced precision on x86 (MLAS computes f32; INT8 artifacts are
explicit QDQ; an FP16 graph's nodes without an FP16 kernel get f32 casts inserted by
onnxruntime), and its one opt-in (bf16 fast-math GEMM on ARM64) is pinned off. CUDA
runs with TF32 off unless the artifact is FP16; the TensorRT provider gets FP16/INT8
flags from the artifact only. The pinned settings are read back from the session.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rtmw.errors import DeviceUnavailable
from rtmw.optional import import_backend
from rtmw.runtimes.base import Runtime, register_runtime

ARM_BF16_FASTMATH = "mlas.enable_gemm_fastmath_arm64_bfloat16"
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}


@register_runtime
class OnnxRuntimeRunner(Runtime):
    """Runs ``model.onnx``. The requested provider must be the session's first provider.

    onnxruntime silently drops an unavailable provider and runs on CPU; that case is
    turned into :class:`DeviceUnavailable` instead.
    """

    name = "onnxruntime"
    format = "onnx"
    extra = "onnx-runtime"
    packages: ClassVar[tuple[str, ...]] = ("onnxruntime", "onnxruntime-gpu", "onnx", "onnxsim")
    devices: ClassVar[tuple[str, ...]] = tuple(PROVIDERS)
    OPTIONS: ClassVar[dict[str, str]] = {
        "intra_op_thread_affinities": "session.intra_op_thread_affinities, e.g. '1;2' pins "
        "the intra-op threads after the caller's to cores 1 and 2",
        "allow_spinning": "0/1: session.intra_op.allow_spinning (busy-wait between calls)",
    }

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
        options.add_session_config_entry(ARM_BF16_FASTMATH, "0")
        if "intra_op_thread_affinities" in self.options:
            options.add_session_config_entry(
                "session.intra_op_thread_affinities", self.options["intra_op_thread_affinities"]
            )
        if "allow_spinning" in self.options:
            options.add_session_config_entry(
                "session.intra_op.allow_spinning", self.options["allow_spinning"]
            )
        provider_options = self._provider_options(base, index)
        path = self.artifact.file(self.artifact.manifest.io.get("file", "model.onnx"))
        self.session = ort.InferenceSession(
            str(path), options, providers=[(wanted, provider_options)]
        )
        active = self.session.get_providers()
        if not active or active[0] != wanted:
            raise DeviceUnavailable(
                f"onnxruntime: asked for {wanted} but the session runs on {active}; refusing to "
                "fall back"
            )
        self._read_back(options, wanted, provider_options)
        self.input_name = self.session.get_inputs()[0].name
        self.session_outputs = [o.name for o in self.session.get_outputs()]
        return f"{self.requested_device} ({active[0]}, {self.execution_precision})"

    def _provider_options(self, base: str, index: str) -> dict[str, str]:
        reduced = self.execution_precision == "f16"
        options: dict[str, str] = {}
        if index and base in ("cuda", "tensorrt"):
            options["device_id"] = index
        if base == "cuda":
            options["use_tf32"] = "1" if reduced else "0"
        if base == "tensorrt":
            options["trt_fp16_enable"] = "1" if reduced else "0"
            # INT8 artifacts are explicit Q/DQ graphs: the flag lets TensorRT honour their
            # scales; nothing else is ever reduced below the contract
            int8 = self.artifact.manifest.precision == "int8"
            options["trt_int8_enable"] = "1" if int8 else "0"
        return options

    def _read_back(self, options: Any, wanted: str, asked: dict[str, str]) -> None:
        """The pinned settings as the session reports them; any difference is refused."""
        from rtmw.errors import PrecisionMismatch

        reported = dict(self.session.get_provider_options().get(wanted, {}))
        differs = {k: (v, reported.get(k)) for k, v in asked.items() if reported.get(k, v) != v}
        if options.get_session_config_entry(ARM_BF16_FASTMATH) != "0":
            differs[ARM_BF16_FASTMATH] = ("0", options.get_session_config_entry(ARM_BF16_FASTMATH))
        if differs:
            raise PrecisionMismatch(
                f"onnxruntime: {wanted} did not take {differs}; refusing to run"
            )
        self.execution["reported"] = {k: reported.get(k, v) for k, v in asked.items()} | {
            ARM_BF16_FASTMATH: "0"
        }
        if wanted == "CPUExecutionProvider" and self.artifact.manifest.precision == "fp16":
            self.execution["kernels"] = (
                "FP16 graph: nodes without an FP16 CPU kernel compute in f32 behind inserted casts"
            )

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        ran = self.session.run(None, {self.input_name: batch})
        outputs = dict(zip(self.session_outputs, ran, strict=True))
        return tuple(outputs[name] for name in self.output_names)

    def _close_impl(self) -> None:
        del self.session
