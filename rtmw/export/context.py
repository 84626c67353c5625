"""State shared by the targets of one export run: the model and the shared ONNX step."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtmw.calib.calibset import CalibrationSet
from rtmw.models import RTMW, RTMWConfig
from rtmw.models.checkpoint import CheckpointContents

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17


@dataclass
class ExportContext:
    model: RTMW
    config: RTMWConfig
    checkpoint: CheckpointContents
    opset: int = DEFAULT_OPSET
    simplify: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    calibration: CalibrationSet | None = None
    _scratch: tempfile.TemporaryDirectory[str] | None = None
    _onnx: dict[str, Path] = field(default_factory=dict)

    @property
    def scratch(self) -> Path:
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="rtmw-export-")
        return Path(self._scratch.name)

    def onnx_fp32(self) -> Path:
        """The verified-shape FP32 ONNX every other target starts from (made once)."""
        if "fp32" not in self._onnx:
            from rtmw.export.onnx import export_onnx

            self._onnx["fp32"] = export_onnx(
                self.model,
                self.config,
                self.scratch / "model_fp32.onnx",
                opset=self.opset,
                simplify=self.simplify,
            )
        return self._onnx["fp32"]

    def onnx_fp16(self) -> Path:
        """FP16 ONNX with FP32 islands for the numerically sensitive head ops (made once)."""
        if "fp16" not in self._onnx:
            from rtmw.export.onnx import convert_fp16

            self._onnx["fp16"] = convert_fp16(self.onnx_fp32(), self.scratch / "model_fp16.onnx")
        return self._onnx["fp16"]

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
