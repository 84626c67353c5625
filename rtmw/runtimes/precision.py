"""Execution precision as a contract between an artifact and the runtime that runs it.

Backends pick their own arithmetic when left alone: OpenVINO's CPU plugin runs bf16 on
CPUs with AVX512_BF16 or AMX, torch's cuDNN convolutions use TF32, ncnn enables fp16
arithmetic by default. A figure measured that way depends on the host, not on the
artifact. So the contract is derived from the manifest's precision alone (plus whether
the device computes fp16 natively), every adapter sets it explicitly, reads back what
the backend reports, and refuses to run when the two differ.

| artifact | CPU                                  | GPU / NPU |
|----------|--------------------------------------|-----------|
| fp32     | f32                                  | f32 (no TF32) |
| int8     | INT8 layers; f32 float parts          | same      |
| fp16     | f16 where the CPU computes FP16 natively, else f32 (FP16 storage) | f16 |
| bf16     | bf16 (needs AVX512_BF16 / AMX / ARM BF16; refused elsewhere) | refused |
| int8, float parts bf16 | INT8 layers; bf16 float parts (same needs as bf16) | refused |
| int8, float parts fp16 | refused (an NPU model: rknn-int8)      | INT8 layers; f16 float parts |
| int8 on the QNN HTP   | –                                    | INT8 layers; f16 float parts |

An INT8 artifact's float parts run in bf16 only when its manifest says so
(``options.float_parts: bf16``, the ``openvino-int8-bf16`` target): a contract of its own,
verified and gated in it, never a runtime's silent choice. A device that has no f32 at all
(Qualcomm's HTP) runs an INT8 model's float parts in f16: the contract says so for that
device, the adapter pins it (the QNN EP's fp16 precision) and reports it, and the artifact
is gated there in it (``rtmw-bench --device htp``), never compared with the CPU's f32 run
as if the two were one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rtmw.errors import PrecisionMismatch, PrecisionUnavailable

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
EXECUTION_TYPES = ("f32", "f16", "bf16")
# devices without f32 arithmetic: an INT8 model's float parts run in f16 there
F16_ONLY_DEVICES = ("htp",)


def required_execution(
    precision: str, device: str, host: Mapping[str, Any], *, float_parts: str | None = None
) -> str:
    """The float execution type an artifact of ``precision`` must run in on ``device``;
    ``float_parts`` is an INT8 manifest's ``options.float_parts`` ("bf16": bf16)."""
    if precision not in PRECISIONS:
        raise PrecisionUnavailable(f"unknown artifact precision {precision!r}")
    kind = device.split(":")[0]
    on_cpu = kind == "cpu"
    native = host.get("native", {})
    if precision == "int8" and float_parts == "fp16":
        # an NPU's INT8 model (rknn-int8): its float subgraphs are fp16, as the manifest says
        if on_cpu:
            raise PrecisionUnavailable("an INT8 model with fp16 float parts runs on its NPU")
        return "f16"
    if precision == "int8" and kind in F16_ONLY_DEVICES:
        return "f16"
    if precision == "int8" and float_parts == "bf16":
        precision = "bf16"  # the float parts' contract: bf16's, with its host needs
    elif precision in ("fp32", "int8"):
        return "f32"
    if precision == "fp16":
        return "f16" if not on_cpu or native.get("fp16") else "f32"
    if not on_cpu:
        raise PrecisionUnavailable(f"bf16 artifacts run on CPUs only, not on {device!r}")
    if not native.get("bf16"):
        raise PrecisionUnavailable(
            f"bf16 artifact: this CPU ({host.get('isa_class')}) has no native bf16 "
            "(needs AVX512_BF16 or AMX, and no ISA cap below them)"
        )
    return "bf16"


def check_readback(runtime: str, wanted: str, reported: str) -> None:
    """Raise unless the backend runs what it was told to (names normalised first)."""
    if normalise(reported) != wanted:
        raise PrecisionMismatch(
            f"{runtime}: told to execute in {wanted}, the backend reports {reported}; "
            "refusing to run in another precision than the artifact's contract"
        )


def normalise(name: str) -> str:
    """'float32', '<Type: 'float32'>', 'FP32', 'bfloat16' → 'f32' / 'bf16' / 'f16'."""
    text = str(name).lower()
    if "bf16" in text or "bfloat16" in text:
        return "bf16"
    if "16" in text:
        return "f16"
    if "32" in text:
        return "f32"
    return text
