"""Calibration sets of real person crops, made by the inference pipeline itself."""

from rtmw.calib.calibset import (
    MIN_CROPS,
    CalibrationSet,
    build_calibration_set,
    check_matches_model,
    load_calibration_set,
    save_calibration_set,
)
from rtmw.errors import CalibrationError

__all__ = [
    "MIN_CROPS",
    "CalibrationError",
    "CalibrationSet",
    "build_calibration_set",
    "check_matches_model",
    "load_calibration_set",
    "save_calibration_set",
]
