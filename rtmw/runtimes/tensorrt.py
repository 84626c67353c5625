"""TensorRT adapter (TensorRT 10+): engine deserialisation, named I/O tensors, dynamic batch.

CUDA memory and the stream come from torch (no pycuda). Written against the TensorRT
10 Python API and type-checked with ``tensorrt-stubs``; it runs only where TensorRT
and an NVIDIA GPU are present.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rtmw.errors import DeviceUnavailable, MissingDependency
from rtmw.optional import import_backend
from rtmw.runtimes.base import Runtime, register_runtime


def tensorrt_available() -> bool:
    """``tensorrt-stubs`` makes ``import tensorrt`` succeed as an empty namespace package."""
    try:
        import tensorrt
    except ImportError:
        return False
    return hasattr(tensorrt, "Builder")


@register_runtime
class TensorRTRunner(Runtime):
    name = "tensorrt"
    format = "tensorrt"
    extra = "tensorrt"
    packages: ClassVar[tuple[str, ...]] = ("tensorrt",)
    devices: ClassVar[tuple[str, ...]] = ("cuda",)

    def _activate_impl(self) -> str:
        if not tensorrt_available():
            raise MissingDependency(
                "TensorRT is not installed (needs an NVIDIA GPU and the tensorrt package)"
            )
        import tensorrt as trt

        torch: Any = import_backend("torch", "torch")
        if not torch.cuda.is_available():
            raise DeviceUnavailable("tensorrt: no CUDA device visible to torch")
        index = int(self.requested_device.partition(":")[2] or 0)
        torch.cuda.set_device(index)
        self._torch = torch
        self.logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self.logger)
        engine_path = self.artifact.file(self.artifact.manifest.io.get("file", "model.engine"))
        engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if engine is None:
            raise DeviceUnavailable(
                f"tensorrt: could not deserialise {engine_path.name} (built for another GPU or "
                "TensorRT version?)"
            )
        self.engine = engine
        self.context = engine.create_execution_context()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        for i in range(engine.num_io_tensors):
            tensor = engine.get_tensor_name(i)
            if engine.get_tensor_mode(tensor) == trt.TensorIOMode.INPUT:
                self.inputs.append(tensor)
            else:
                self.outputs.append(tensor)
        self._trt_to_torch = {
            trt.DataType.FLOAT: torch.float32,
            trt.DataType.HALF: torch.float16,
        }
        self.stream = torch.cuda.Stream()
        # the precision is fixed when the engine is built (rtmw.export.targets.tensorrt): TF32
        # off, f16 only in FP16 engines; the build's record is checked against the contract
        float_parts = str(self.artifact.manifest.options.get("float_parts", "unrecorded"))
        if not float_parts.startswith(self.execution_precision):
            from rtmw.errors import PrecisionMismatch

            raise PrecisionMismatch(
                f"tensorrt: engine float parts {float_parts!r}, contract "
                f"{self.execution_precision}; rebuild the engine with this rtmw"
            )
        self.execution["reported"] = float_parts
        name = torch.cuda.get_device_name(index)
        return f"cuda:{index} ({name}, {self.execution_precision})"

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        torch = self._torch
        engine, context = self.engine, self.context
        input_name = self.inputs[0]
        device_input = torch.from_numpy(batch).cuda(non_blocking=True)
        input_dtype = self._trt_to_torch[engine.get_tensor_dtype(input_name)]
        device_input = device_input.to(input_dtype)
        context.set_input_shape(input_name, tuple(device_input.shape))
        context.set_tensor_address(input_name, device_input.data_ptr())
        results: dict[str, Any] = {}
        for name in self.outputs:
            dims = context.get_tensor_shape(name)
            shape = tuple(dims[i] for i in range(len(dims)))
            dtype = self._trt_to_torch[engine.get_tensor_dtype(name)]
            results[name] = torch.empty(shape, dtype=dtype, device="cuda")
            context.set_tensor_address(name, results[name].data_ptr())
        if not context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("tensorrt: execute_async_v3 failed")
        self.stream.synchronize()
        return tuple(results[name].float().cpu().numpy() for name in self.output_names)

    def _close_impl(self) -> None:
        del self.context
        del self.engine
