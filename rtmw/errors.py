"""Error types whose message is a single line a user can act on.

Every CLI catches :class:`RtmwError`, prints its message on one line and exits
non-zero, so user mistakes never surface as a traceback wall.
"""

from __future__ import annotations


class RtmwError(Exception):
    """Base class: a user-facing failure with a one-line explanation."""

    exit_code: int = 1


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


class MissingDependency(RtmwError):
    """An optional backend or tool is not installed."""

    exit_code = 3


class UsageError(RtmwError):
    """An option or configuration value that cannot work; nothing was done."""

    exit_code = 2


class DeviceUnavailable(RtmwError):
    """The requested device, execution provider or precision is not the one that would run."""

    exit_code = 4
