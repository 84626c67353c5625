"""LiteRT adapter (``.tflite``): XNNPACK on CPUs, the GPU delegate where one is installed.

A LiteRT model here has one fixed batch (the artifact's ``io.batch``): the base class
cuts larger batches into chunks of it and pads the last (``loops_over_batch``).

Delegates: on the CPU, LiteRT applies XNNPACK by default; the adapter reads back how many
delegate partitions the graph has and refuses to report "XNNPACK" when there are none
(``xnnpack=off`` runs LiteRT's builtin kernels instead, stated as such). ``gpu`` loads
the GPU delegate's shared library; where it is absent that is ``DeviceUnavailable``,
never a run on the CPU.

Precision: XNNPACK computes FP32, and FP16-weight models are dequantised to FP32 at
load, unless told to force FP16, which LiteRT's Python interpreter cannot do. So an
FP16 artifact on a CPU with native FP16 arithmetic (whose contract is f16) is refused
rather than run in f32 under an f16 label. INT8 models with an INT8 input get the float
crops quantised here with the model's own scale and zero point.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rtmw.errors import DeviceUnavailable, UsageError
from rtmw.optional import import_backend
from rtmw.runtimes.base import Runtime, register_runtime

# names the GPU delegate's library goes by in LiteRT builds (Linux and Android)
GPU_DELEGATE_LIBRARIES = (
    "libLiteRtGpuAccelerator.so",
    "libtensorflowlite_gpu_delegate.so",
    "libtensorflowlite_gpu_gl.so",
)


@register_runtime
class LiteRTRunner(Runtime):
    name = "litert"
    format = "litert"
    extra = "litert"
    packages: ClassVar[tuple[str, ...]] = ("ai-edge-litert", "litert-torch", "ai-edge-quantizer")
    devices: ClassVar[tuple[str, ...]] = ("cpu", "gpu")
    OPTIONS: ClassVar[dict[str, str]] = {
        "xnnpack": "on (default) | off: LiteRT's builtin CPU kernels without XNNPACK",
        "gpu_delegate": "path of the GPU delegate library (default: the known names)",
    }

    def _activate_impl(self) -> str:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # LiteRT's C++ log: warnings up
        litert: Any = import_backend("ai_edge_litert.interpreter", "litert")
        xnnpack = self.options.get("xnnpack", "on")
        if xnnpack not in ("on", "off"):
            raise UsageError(f"litert: xnnpack must be on or off, got {xnnpack!r}")
        if self.execution_precision == "f16":
            from rtmw.errors import PrecisionUnavailable

            raise PrecisionUnavailable(
                "litert: the FP16 contract on this CPU needs XNNPACK's forced FP16, which "
                "LiteRT's Python interpreter cannot set; refusing to run it in f32"
            )
        on_gpu = self.requested_device.startswith("gpu")
        delegates = [self._gpu_delegate(litert)] if on_gpu else []
        resolver = litert.OpResolverType
        interpreter = litert.Interpreter(
            model_path=str(self.artifact.file(self.artifact.manifest.io["file"])),
            num_threads=self.threads,
            experimental_delegates=delegates or None,
            experimental_op_resolver_type=(
                resolver.AUTO
                if xnnpack == "on" and not on_gpu
                else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            ),
        )
        interpreter.allocate_tensors()
        partitions = sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())
        if (on_gpu or xnnpack == "on") and partitions == 0:
            raise DeviceUnavailable(
                f"litert: the {'GPU' if on_gpu else 'XNNPACK'} delegate took no part of the graph"
            )
        delegate = "GPU" if on_gpu else ("XNNPACK" if xnnpack == "on" else "none (builtin)")
        self.execution["reported"] = {"delegate": delegate, "delegate_partitions": partitions}
        self._interpreter = interpreter
        self._input = interpreter.get_input_details()[0]
        self._outputs = self._output_order(interpreter.get_output_details())
        where = "gpu" if on_gpu else "cpu"
        return f"{where} ({delegate}, {partitions} partitions, {self.threads} threads, f32)"

    def _gpu_delegate(self, litert: Any) -> Any:
        wanted = self.options.get("gpu_delegate")
        candidates = (wanted,) if wanted else GPU_DELEGATE_LIBRARIES
        failures = []
        for library in candidates:
            try:
                return litert.load_delegate(library)
            except (ValueError, OSError, RuntimeError) as exc:
                failures.append(f"{Path(library).name}: {str(exc).splitlines()[0]}")
        raise DeviceUnavailable(
            "litert: no GPU delegate could be loaded (" + "; ".join(failures) + ")"
        )

    def _output_order(self, details: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The model's return order (simcc_x, simcc_y[, simcc_z]), from the signature's
        output names ('serving_default_output_0'): the tensor table's order is the
        converter's."""
        count = len(self.output_names)

        def number(detail: dict[str, Any]) -> int:
            found = re.search(r"output_(\d+)", str(detail["name"]))
            if found is None or len(details) != count:
                names = [d["name"] for d in details]
                expected = ", ".join(f"output_{i}" for i in range(count))
                raise DeviceUnavailable(f"litert: expected outputs {expected}; got {names}")
            return int(found.group(1))

        return sorted(details, key=number)

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        tensor = batch
        scale, zero_point = self._input["quantization"]
        if self._input["dtype"] == np.int8:
            quantised = np.round(batch / scale) + zero_point
            tensor = np.clip(quantised, -128, 127).astype(np.int8)
        self._interpreter.set_tensor(self._input["index"], tensor)
        self._interpreter.invoke()
        outputs = []
        for detail in self._outputs:
            value = self._interpreter.get_tensor(detail["index"])
            if detail["dtype"] != np.float32:
                out_scale, out_zero = detail["quantization"]
                value = (value.astype(np.float32) - out_zero) * out_scale
            outputs.append(np.array(value, np.float32, copy=True))
        return tuple(outputs)

    def _close_impl(self) -> None:
        del self._interpreter
