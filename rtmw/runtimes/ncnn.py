"""ncnn adapter (pnnx-converted param/bin): CPU threads, Vulkan when the build has it.

ncnn runs one crop per extractor, so ``infer`` loops over the batch (stated by
``loops_over_batch``). ``ncnn.Mat(numpy)`` wraps the array without copying: the input
array must stay alive until extraction ends, or ncnn reads freed memory.

Precision: ncnn's defaults turn on fp16 storage *and* arithmetic, and bf16 storage
exists too; every one of these is set here from the contract, never left to the
defaults. On x86, fp16 storage (F16C) only stores activations in fp16 and computes in
f32; fp16 arithmetic is honoured on ARM CPUs with FP16 (asimdhp) and on Vulkan.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from rtmw.errors import DeviceUnavailable
from rtmw.optional import import_backend
from rtmw.runtimes.base import Runtime, register_runtime


@register_runtime
class NcnnRunner(Runtime):
    name = "ncnn"
    format = "ncnn"
    extra = "ncnn"
    packages: ClassVar[tuple[str, ...]] = ("ncnn", "pnnx")
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
        if use_vulkan and ":" in self.requested_device:
            index = int(self.requested_device.partition(":")[2])
            if index >= count:
                raise DeviceUnavailable(f"ncnn: Vulkan device {index} not present ({count} found)")
            net.set_vulkan_device(index)
        net.opt.use_vulkan_compute = use_vulkan
        net.opt.num_threads = self.threads or 1
        fp16 = bool(options.get("fp16_arithmetic", False))
        # fp16 storage where the artifact is FP16; fp16 arithmetic only where the contract is f16
        arithmetic = fp16 and (use_vulkan or self.execution_precision == "f16")
        net.opt.use_fp16_packed = fp16
        net.opt.use_fp16_storage = fp16
        net.opt.use_fp16_arithmetic = arithmetic
        net.opt.use_bf16_storage = False
        net.opt.use_bf16_packed = False
        int8 = self.artifact.manifest.precision == "int8"
        net.opt.use_int8_inference = int8
        wanted = {
            "use_fp16_storage": fp16,
            "use_fp16_arithmetic": arithmetic,
            "use_bf16_storage": False,
            "use_int8_inference": int8,
        }
        got = {key: bool(getattr(net.opt, key)) for key in wanted}
        if got != wanted:
            from rtmw.errors import PrecisionMismatch

            raise PrecisionMismatch(f"ncnn: options {got} differ from the contract's {wanted}")
        self.execution["reported"] = got
        io = self.artifact.manifest.io
        if net.load_param(str(self.artifact.file(io["param"]))) != 0:
            raise DeviceUnavailable(f"ncnn: could not load {io['param']}")
        if net.load_model(str(self.artifact.file(io["bin"]))) != 0:
            raise DeviceUnavailable(f"ncnn: could not load {io['bin']}")
        if fp16:
            # which layers store their tensors in fp16 is ncnn's per-ISA choice, made as the
            # pipelines are built: on this x86 only data-movement layers (Concat, Reshape,
            # Slice), on an ARMv8.0 core the Gemms, on an FP16 core nearly all. The same
            # contract then rounds different tensors; recorded, it explains a verdict that
            # differs between hosts (the aarch64 lane)
            self.execution["reported"]["fp16_storage_layers"] = _fp16_storage_layers(net)
        self.net = net
        self.input_blob = io.get("ncnn_input", "in0")
        self.output_blobs = io.get(
            "ncnn_outputs", [f"out{i}" for i in range(len(self.output_names))]
        )
        mode = self.execution_precision + (" arithmetic, fp16 storage" if fp16 else "")
        if self.artifact.manifest.precision == "int8":
            mode = "int8 layers, f32 float layers"
        return f"{'vulkan' if use_vulkan else 'cpu'} ({net.opt.num_threads} threads, {mode})"

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
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
        return tuple(outputs)

    def _close_impl(self) -> None:
        self.net.clear()
        del self.net


def _fp16_storage_layers(net: Any) -> str:
    """'k of n: Type, Type': the layers whose tensors ncnn stores in fp16 on this CPU."""
    layers = list(net.layers())
    stored = [layer.type for layer in layers if layer.support_fp16_storage]
    types = ", ".join(sorted(set(stored)))
    return f"{len(stored)} of {len(layers)}" + (f": {types}" if types else "")
