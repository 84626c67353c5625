"""OpenVINO adapter: CPU, GPU or NPU by name, with device and precision read back.

The execution precision is always set (``INFERENCE_PRECISION_HINT``): left unset,
the CPU plugin runs bf16 wherever the CPU has AVX512_BF16 or AMX, whatever the
artifact is. bf16 artifacts carry per-node ``precise`` marks (DisableFP16Compression)
on the SimCC head and ScaleNorm, which the CPU plugin keeps in f32; how many of those
nodes really ran in f32 is read back from the runtime model.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rtmw.errors import DeviceUnavailable, PrecisionUnavailable
from rtmw.optional import import_backend
from rtmw.runtimes.base import Runtime, register_runtime
from rtmw.runtimes.precision import check_readback

HINTS = {"f32": "f32", "f16": "f16", "bf16": "bf16"}
# layer types whose arithmetic precision matters (reorders and reshapes only move data)
COMPUTE_LAYERS = {"Convolution", "FullyConnected", "MatMul", "Eltwise", "Reduce", "Subgraph",
                  "Deconvolution", "Pooling", "Interpolate", "MVN", "Softmax"}  # fmt: skip


def runtime_precisions(compiled: Any, prefixes: tuple[str, ...] = ()) -> dict[str, int]:
    """Compute nodes counted by the precision their kernel computes in (the suffix of the
    runtime model's ``primitiveType``, e.g. ``brgconv_avx512_f32``), only those under
    ``prefixes``. Not ``runtimePrecision``: that follows the weights' storage type (an FP16
    IR's convolutions report f16 there while their kernels compute f32)."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if "layerType" not in info or info["layerType"].astype(str) not in COMPUTE_LAYERS:
            continue
        names = op.get_friendly_name()
        if "originalLayersNames" in info:
            names = info["originalLayersNames"].astype(str)
        if prefixes and not any(n.startswith(prefixes) for n in names.split(",")):
            continue
        kernel = info["primitiveType"].astype(str) if "primitiveType" in info else "?"
        precision = kernel.rsplit("_", 1)[-1].lower()
        counts[precision] = counts.get(precision, 0) + 1
    return counts


@register_runtime
class OpenVINORunner(Runtime):
    name = "openvino"
    format = "openvino"
    extra = "openvino-runtime"
    packages: ClassVar[tuple[str, ...]] = ("openvino", "nncf")
    devices: ClassVar[tuple[str, ...]] = ("cpu", "gpu", "npu")
    OPTIONS: ClassVar[dict[str, str]] = {
        "performance_hint": "LATENCY (default) or THROUGHPUT (parallel streams for batches)",
        "num_streams": "CPU streams under the THROUGHPUT hint (default: OpenVINO's choice)",
        "enable_cpu_pinning": "YES/NO: pin inference threads to cores",
    }

    def _activate_impl(self) -> str:
        ov: Any = import_backend("openvino", "openvino")
        arm = self.host.get("arch") in ("aarch64", "arm64")
        if (
            arm
            and self.artifact.manifest.precision == "int8"
            and not self.host["native"].get("int8_dot")
        ):
            # measured in the aarch64 lane (OpenVINO 2026.4): its ARM CPU plugin builds the INT8
            # model on a Cortex-A53/A57 and then fails every inference (node.cpp:823); it runs
            # on a Cortex-A55, the same but with the dot-product extension
            raise DeviceUnavailable(
                "openvino: INT8 on ARM needs the dot-product extension (ARMv8.2 asimddp); "
                f"this core ({self.host.get('isa_class')}) has none"
            )
        core = ov.Core()
        wanted = self.requested_device.upper()  # "gpu:1" → "GPU:1"; OpenVINO spells it "GPU.1"
        wanted = wanted.replace(":", ".")
        available = core.available_devices
        if wanted not in available and wanted.split(".")[0] not in available:
            raise DeviceUnavailable(
                f"openvino: device {wanted} not present (available: {', '.join(available)})"
            )
        hint = HINTS[self.execution_precision]
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": self.options.get("performance_hint", "LATENCY").upper(),
            "INFERENCE_PRECISION_HINT": hint,
        }
        if "num_streams" in self.options:
            config["NUM_STREAMS"] = self.options["num_streams"]
        if "enable_cpu_pinning" in self.options:
            config["ENABLE_CPU_PINNING"] = self.options["enable_cpu_pinning"].upper() in (
                "YES", "TRUE", "1",
            )  # fmt: skip
        if wanted.startswith("CPU") and self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        xml = self.artifact.file(self.artifact.manifest.io.get("file", "model.xml"))
        model = core.read_model(str(xml))
        try:
            self.compiled = core.compile_model(model, wanted, config)
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or [""])[-1][:160]
            raise PrecisionUnavailable(
                f"openvino: {wanted} cannot compile this model in {hint} ({first}); "
                f"CPU ISA class {self.host.get('isa_class')}"
            ) from None
        reported = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        check_readback("openvino", self.execution_precision, reported)
        self.execution["reported"] = reported
        self.execution["performance"] = {
            "hint": str(self.compiled.get_property("PERFORMANCE_HINT")),
            "streams": str(self.compiled.get_property("NUM_STREAMS")),
            "requests": int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")),
        }
        executed = list(self.compiled.get_property("EXECUTION_DEVICES"))
        if not executed or not all(d.split(".")[0] == wanted.split(".")[0] for d in executed):
            raise DeviceUnavailable(f"openvino: asked for {wanted}, compiled for {executed}")
        self.request = self.compiled.create_infer_request()
        self.outputs = {o.get_any_name(): o for o in self.compiled.outputs}
        if wanted.startswith("CPU"):
            self.execution["nodes"] = runtime_precisions(self.compiled)
            kept = tuple(self.artifact.manifest.options.get("kept_f32_patterns", ()))
            if kept:
                self.execution["kept_f32_nodes"] = runtime_precisions(self.compiled, kept)
        return f"{self.requested_device} ({','.join(executed)}, {self.execution_precision})"

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        result = self.request.infer({0: batch}, share_inputs=True)
        return tuple(np.array(result[self.outputs[name]], copy=True) for name in self.output_names)

    def _close_impl(self) -> None:
        del self.request
        del self.compiled
