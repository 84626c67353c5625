"""The typed options of an export run and the state its targets share.

A leaf of ``rtmw.export``: it imports no other export module. Targets receive an
:class:`ExportContext` whose ``options`` is a frozen :class:`ExportOptions`, never a dict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torch import nn

from rtmw.calib.calibset import CalibrationSet
from rtmw.errors import UsageError
from rtmw.models import ModelConfig
from rtmw.models.checkpoint import CheckpointContents
from rtmw.scratch import ScratchDir

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
DEFAULT_INT8_POLICY = "head-fp32"
TrtInt8Route = Literal["qdq", "calibrator"]


@dataclass(frozen=True)
class EngineOptions:
    """TensorRT engine settings: the batch profile, workspace, timing cache, INT8 route.

    ``int8_route`` "qdq" builds from the explicit Q/DQ ONNX (TensorRT 10 and 11);
    "calibrator" is TensorRT 10's implicit entropy calibration on our crops.
    """

    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 32
    workspace_bytes: int = 2 << 30
    timing_cache: Path | None = None
    int8_route: TrtInt8Route = "qdq"


@dataclass(frozen=True)
class AccuracyControl:
    """NNCF accuracy-controlled quantisation: the largest keypoint-OKS drop and a time limit."""

    max_drop: float
    seconds: float | None = None


@dataclass(frozen=True)
class ExportOptions:
    """Everything a target may read besides the model: one frozen record per export run."""

    opset: int = DEFAULT_OPSET
    simplify: bool = True
    int8_policy: str = DEFAULT_INT8_POLICY
    # node-name prefixes kept in float on top of the policy's (rtmw-export --int8-keep)
    int8_keep: tuple[str, ...] = ()
    # weights quantised per output channel (every backend's default) or per tensor (what
    # some NPUs take); a policy axis only where the target's quantiser offers it
    int8_per_channel: bool = True
    # node-name prefixes whose activations are quantised to 16 bits instead of 8 (weights
    # stay 8-bit: w8a16 there), for backends whose quantiser has it (onnxruntime QDQ)
    int8_wide: tuple[str, ...] = ()
    accuracy_control: AccuracyControl | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)
    # weights that cannot be judged for accuracy (random-init published configurations):
    # the same graphs, quantisation and policy, verified for structure only
    latency_only: bool = False
    # ort-int8's activations: "u8" (U8S8, asymmetric; onnxruntime's x86 default) or "s8"
    # (S8S8, symmetric), whose speed differs with the ISA (docs/speed.md)
    ort_int8_activations: Literal["u8", "s8"] = "u8"
    # the batch of the targets whose models take one fixed batch (LiteRT: litert-torch
    # cannot trace a symbolic one through the head; ExecuTorch: its XNNPACK program fails
    # at run time with one); the runtime cuts larger batches into chunks and pads the last
    fixed_batch: int = 1
    # rknn-*: the Rockchip SoC compiled for (rknn-toolkit2's target_platform)
    rknn_platform: str = "rk3588"
    progress: bool = False

    def __post_init__(self) -> None:
        if self.ort_int8_activations not in ("u8", "s8"):
            raise UsageError(
                f"ort-int8 activations must be u8 or s8, got {self.ort_int8_activations!r}"
            )
        if not 1 <= self.fixed_batch <= 64:
            raise UsageError(f"the fixed batch must be 1 to 64, got {self.fixed_batch}")
        if self.rknn_platform not in RKNN_PLATFORMS:
            raise UsageError(
                f"unknown RKNN platform {self.rknn_platform!r} (one of {', '.join(RKNN_PLATFORMS)})"
            )


# the SoCs rknn-toolkit2 2.5 compiles for (its config's target_platform)
RKNN_PLATFORMS = ("rk3588", "rk3576", "rk3568", "rk3566", "rk3562", "rv1126b", "rv1106",
                  "rv1106b", "rv1103", "rv1103b", "rk2118")  # fmt: skip


@dataclass
class ExportContext:
    model: nn.Module  # RTMW (pose) or RTMDet (person detector)
    config: ModelConfig
    checkpoint: CheckpointContents
    options: ExportOptions = field(default_factory=ExportOptions)
    calibration: CalibrationSet | None = None
    _scratch: ScratchDir | None = None
    _made: dict[str, Path] = field(default_factory=dict)

    @property
    def scratch(self) -> Path:
        if self._scratch is None:
            # locked while this process lives: a later export removes it after a kill -9
            self._scratch = ScratchDir(prefix="rtmw-export-")
        return self._scratch.path

    def once(self, key: str, make: Callable[[Path], Path], name: str) -> Path:
        """``make(scratch / name)`` the first time ``key`` is asked for; its path after.

        How the targets of one run share intermediate files (the FP32 and FP16 ONNX, pnnx
        output) without each making its own.
        """
        if key not in self._made:
            self._made[key] = make(self.scratch / name)
        return self._made[key]

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
