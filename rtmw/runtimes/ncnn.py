"""ncnn adapter (pnnx-converted param/bin): CPU threads, Vulkan when the build has it.

ncnn runs one crop per extractor, so ``infer`` loops over the batch (stated by
``loops_over_batch``). ``ncnn.Mat(numpy)`` wraps the array without copying: the input
array must stay alive until extraction ends, or ncnn reads freed memory.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rtmw.runtimes._imports import import_backend
from rtmw.runtimes.base import DeviceUnavailable, Runtime


class NcnnRunner(Runtime):
    name = "ncnn"
    devices: ClassVar[tuple[str, ...]] = ("cpu", "vulkan")

    def _activate_impl(self) -> str:
        ncnn: Any = import_backend("ncnn", "ncnn")
        self._ncnn = ncnn
        self.loops_over_batch = True
        net = ncnn.Net()
        options = self.artifact.manifest.options
        use_vulkan = self.requested_device.startswith("vulkan")
        if use_vulkan:
            count = ncnn.get_gpu_count() if hasattr(ncnn, "get_gpu_count") else 0
            if count < 1:
                raise DeviceUnavailable("ncnn: Vulkan requested but no Vulkan device/build found")
        net.opt.use_vulkan_compute = use_vulkan
        net.opt.num_threads = self.threads or 1
        fp16 = bool(options.get("fp16_arithmetic", False))
        net.opt.use_fp16_packed = fp16
        net.opt.use_fp16_storage = fp16
        net.opt.use_fp16_arithmetic = fp16
        io = self.artifact.manifest.io
        if net.load_param(str(self.artifact.file(io["param"]))) != 0:
            raise DeviceUnavailable(f"ncnn: could not load {io['param']}")
        if net.load_model(str(self.artifact.file(io["bin"]))) != 0:
            raise DeviceUnavailable(f"ncnn: could not load {io['bin']}")
        self.net = net
        self.input_blob = io.get("ncnn_input", "in0")
        self.output_blobs = io.get("ncnn_outputs", ["out0", "out1"])
        mode = "fp16" if fp16 else "fp32"
        return f"{'vulkan' if use_vulkan else 'cpu'} ({net.opt.num_threads} threads, {mode})"

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        crop = np.ascontiguousarray(batch[0])  # kept alive for the whole extraction
        mat = self._ncnn.Mat(crop)
        extractor = self.net.create_extractor()
        if extractor.input(self.input_blob, mat) != 0:
            raise RuntimeError("ncnn: input rejected")
        outputs = []
        for blob in self.output_blobs:
            status, out = extractor.extract(blob)
            if status != 0:
                raise RuntimeError(f"ncnn: extracting {blob} failed with {status}")
            outputs.append(np.array(out, dtype=np.float32, copy=True)[None])
        del mat, crop
        return outputs[0], outputs[1]

    def _close_impl(self) -> None:
        self.net.clear()
        del self.net
