"""Every error type rtmw raises, and the exit code each one means: one table.

Every CLI catches :class:`RtmwError`, prints its message on one line and exits with the
class's ``exit_code`` (an :class:`ExitCode`), so user mistakes never surface as a traceback
wall. A module raises these; it declares none of its own.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The exit codes of every rtmw command (README's table is :data:`EXIT_MEANINGS`)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    MISSING_DEPENDENCY = 3
    UNAVAILABLE = 4
    INTERRUPTED = 130


EXIT_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success (every target, artifact or check passed, or was skipped with its reason)",
    ExitCode.FAILED: "failure: a target, a benchmark or a gate check failed; the reason is printed",
    ExitCode.USAGE: "usage: a bad option, value, configuration or input; nothing was done",
    ExitCode.MISSING_DEPENDENCY: (
        "missing dependency: a backend or extra is not installed (pip install 'rtmw[...]')"
    ),
    ExitCode.UNAVAILABLE: (
        "this host's device or precision is unavailable (never a silent fallback)"
    ),
    ExitCode.INTERRUPTED: "interrupted",
}


class RtmwError(Exception):
    """Base class: a user-facing failure with a one-line explanation."""

    exit_code: int = ExitCode.FAILED


# -- failures (exit 1) ------------------------------------------------------------------
class CheckpointError(RtmwError):
    """The checkpoint file cannot be read, or is not a checkpoint we can trust."""


class NotRTMWError(CheckpointError):
    """The checkpoint is a pose model, but not RTMW (e.g. RTMPose or DWPose)."""


class StateDictMismatch(CheckpointError):
    """The tensors do not match the identified RTMW configuration exactly."""


class InputError(RtmwError):
    """An image, box array or batch handed to the pipeline is malformed."""


class DataError(RtmwError):
    """An annotation, detection or result file is malformed or inconsistent."""


class ArtifactError(RtmwError):
    """An artifact folder is missing, malformed or has been tampered with."""


class CalibrationError(RtmwError):
    """A calibration set cannot be built or read (too few crops, damaged file)."""


class VerificationFailed(RtmwError):
    """The exported model does not reproduce torch within the precision's tolerances."""


class AccuracyControlTimeout(RtmwError):
    """OpenVINO's accuracy-controlled quantisation ran past its time limit."""


class NcnnInt8Error(RtmwError):
    """ncnn's INT8 model could not be written from the calibration."""


class RemoteError(RtmwError):
    """The remote host could not be reached, or a command there failed."""


class RemoteTimeout(RemoteError):
    """A remote command ran past its limit (and was stopped on both sides)."""


class DownloadFailed(RtmwError):
    """No source delivered a zoo file with the expected hash."""


# -- usage (exit 2) ---------------------------------------------------------------------
class UsageError(RtmwError):
    """An option or configuration value that cannot work; nothing was done."""

    exit_code = ExitCode.USAGE


class CalibrationRequired(UsageError):
    """An INT8 target was asked for without a calibration set."""


class GateConfigError(UsageError):
    """A gate's budgets file or its inputs cannot be judged."""


class NothingToGate(GateConfigError):
    """No candidate in the results file can be gated."""


class CrossHost(GateConfigError):
    """Reference and candidate were measured on different ISA classes."""


# -- a missing backend (exit 3) ---------------------------------------------------------
class MissingDependency(RtmwError):
    """An optional backend or tool is not installed."""

    exit_code = ExitCode.MISSING_DEPENDENCY


# -- this host cannot (exit 4) ----------------------------------------------------------
class DeviceUnavailable(RtmwError):
    """The requested device, execution provider or precision is not the one that would run."""

    exit_code = ExitCode.UNAVAILABLE


class DeviceNotPresent(DeviceUnavailable):
    """The device a benchmark profile asks for is not on this host."""


class PrecisionUnavailable(DeviceUnavailable):
    """The device cannot execute the artifact in its contracted precision."""


class PrecisionMismatch(DeviceUnavailable):
    """The backend reports another execution precision than the one it was told to use."""
