"""MNN adapter (``.mnn``): MNN's session API on the CPU's threads.

Precision: MNN's ``precision`` setting decides the float arithmetic — ``high`` keeps f32,
``low`` lets the CPU backend compute in FP16 on ARMv8.2+ cores with FP16 (and in bf16 on
builds that have it). The adapter sets it from the contract: ``high`` for every f32
contract (FP32, the float parts of INT8, and FP16 artifacts on CPUs without FP16
arithmetic, which then only store their weights in FP16), ``low`` only where the
contract is f16. MNN reports no arithmetic type back; what is recorded is the setting
passed and the backend the session reports it runs on.

The session takes any batch: the input is resized to each batch before it runs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rtmw.errors import DeviceUnavailable
from rtmw.optional import import_backend
from rtmw.runtimes.base import Runtime, register_runtime

PRECISION_SETTING = {"f32": "high", "f16": "low"}
CPU_BACKENDS = (0, 13)  # MNN_FORWARD_CPU, MNN_FORWARD_CPU_EXTENSION (x86 SIMD)
SESSION_BACKEND_INFO = 2  # Interpreter.SessionInfoCode.BACKENDS


@register_runtime
class MnnRunner(Runtime):
    name = "mnn"
    format = "mnn"
    extra = "mnn"
    packages: ClassVar[tuple[str, ...]] = ("mnn",)
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    def _activate_impl(self) -> str:
        mnn: Any = import_backend("MNN", "mnn")
        setting = PRECISION_SETTING.get(self.execution_precision)
        if setting is None:
            raise DeviceUnavailable(f"mnn: no setting runs {self.execution_precision}")
        self._mnn = mnn
        path = self.artifact.file(self.artifact.manifest.io["file"])
        self._interpreter = mnn.Interpreter(str(path))
        self._session = self._interpreter.createSession(
            {"backend": "CPU", "precision": setting, "numThread": self.threads}
        )
        backends = self._interpreter.getSessionInfo(self._session, SESSION_BACKEND_INFO)
        if backends is not None and int(np.ravel(backends)[0]) not in CPU_BACKENDS:
            raise DeviceUnavailable(f"mnn: the session runs on backend {backends}, not the CPU")
        self._input = self._interpreter.getSessionInput(self._session)
        self._shape: tuple[int, ...] = ()
        self.execution["reported"] = {"precision_setting": setting, "backend": "CPU",
                                      "threads": self.threads}  # fmt: skip
        mode = {"int8": "int8 layers, f32 float layers"}.get(
            self.artifact.manifest.precision, self.execution_precision
        )
        return f"cpu ({self.threads} threads, precision={setting}: {mode})"

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        mnn = self._mnn
        shape = tuple(batch.shape)
        if shape != self._shape:
            self._interpreter.resizeTensor(self._input, shape)
            self._interpreter.resizeSession(self._session)
            self._shape = shape
        host = mnn.Tensor(shape, mnn.Halide_Type_Float, batch, mnn.Tensor_DimensionType_Caffe)
        self._input.copyFrom(host)
        self._interpreter.runSession(self._session)
        outputs = []
        for name in self.output_names:
            tensor = self._interpreter.getSessionOutput(self._session, name)
            out_shape = tuple(tensor.getShape())
            copy = mnn.Tensor(
                out_shape,
                mnn.Halide_Type_Float,
                np.zeros(out_shape, np.float32),
                mnn.Tensor_DimensionType_Caffe,
            )
            tensor.copyToHostTensor(copy)  # fmt: skip
            outputs.append(np.array(copy.getNumpyData(), np.float32, copy=True))
        return tuple(outputs)

    def _close_impl(self) -> None:
        del self._session, self._interpreter
