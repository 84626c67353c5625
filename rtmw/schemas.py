"""The versioned file formats of rtmw, one definition shared by each writer and reader.

``artifact.json`` (an export's manifest), ``results.json`` (a benchmark run), the gates
budget TOML, and the calibration-set manifest inside ``calib.npz``. A writer stamps its
document with :meth:`FileSchema.stamp` (which refuses keys the format does not have, so
a writer cannot drift from its reader); a reader asks :meth:`FileSchema.problems` and
words the refusal for its file. A new version is a new ``FileSchema`` with the next
``version``; readers say which versions they accept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import tomllib

from rtmw.errors import RtmwError


class Status(str, Enum):
    """How one export target or one benchmark entry ended, as the files record it.

    A ``str`` enum: it is written as its value and compares equal to it, so results files
    read back as plain strings match ``Status.OK``.
    """

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # a missing package, or a host/device that cannot run it
    ONNX_ONLY = "onnx-only"  # the backend is absent: its verified ONNX stand-in was written

    def __str__(self) -> str:
        return self.value


class VerificationMode(str, Enum):
    """How an export was verified, as artifact.json and every results row record it.

    ``accuracy``: compared with torch within the precision's tolerances. ``latency-only``:
    random weights, so only structure (names, shapes, finite values) was checked; such an
    artifact gets latency and never AP, fidelity or a gate verdict. ``imported``: a model
    rtmw did not make (an ONNX detector brought by the user): its layout, shapes and finite,
    decodable outputs were checked, with no reference to compare; its accuracy is measured.
    """

    ACCURACY = "accuracy"
    LATENCY_ONLY = "latency-only"
    IMPORTED = "imported"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Problems:
    """What keeps a document from being read as its format."""

    wrong_tag: bool
    found_tag: object
    unknown: frozenset[str]
    missing: frozenset[str]

    def __bool__(self) -> bool:
        return self.wrong_tag or bool(self.unknown) or bool(self.missing)


@dataclass(frozen=True)
class FileSchema:
    kind: str
    version: int
    required: frozenset[str]
    optional: frozenset[str] = frozenset()
    # files users write by hand (the gates TOML) may leave the tag out: it then means v1
    tag_optional: bool = False
    tag_key: str = "schema"

    @property
    def tag(self) -> str:
        return f"rtmw.{self.kind}/{self.version}"

    @property
    def keys(self) -> frozenset[str]:
        return self.required | self.optional | {self.tag_key}

    def stamp(self, content: Mapping[str, Any]) -> dict[str, Any]:
        """The document as written: the tag first, then ``content`` (checked: a key the
        format lacks, or a required key missing, is a bug in the writer)."""
        unknown = set(content) - self.keys
        missing = self.required - set(content)
        if unknown or missing:
            raise ValueError(
                f"{self.tag} writer: unknown {sorted(unknown)}, missing {sorted(missing)}"
            )
        return {self.tag_key: self.tag, **{k: v for k, v in content.items() if k != self.tag_key}}

    def problems(self, data: Mapping[str, Any]) -> Problems:
        found = data.get(self.tag_key)
        wrong = found != self.tag and not (self.tag_optional and found is None)
        return Problems(
            wrong_tag=wrong,
            found_tag=found,
            unknown=frozenset(set(data) - self.keys),
            missing=frozenset(self.required - set(data)),
        )


ARTIFACT = FileSchema(
    "artifact",
    1,
    required=frozenset(
        {"model", "input_size", "target", "format", "precision", "files", "source", "tools"}
    ),
    optional=frozenset(
        {
            "num_keypoints",
            "simcc_split_ratio",
            "calibration",
            "verification",
            "io",
            # RTMW3D artifacts: how simcc_z decodes; a reader that knows no "depth"
            # refuses the artifact rather than run a 3D model as a 2D one
            "depth",
            # person detectors (RTMDet): what the box decode needs; a reader that knows
            # no "detector" refuses the artifact rather than decode it as a pose model
            "detector",
            "options",
            "host",
            "created",
            "manifest_sha256",
        }
    ),
)
RESULTS = FileSchema(
    "bench",
    1,
    required=frozenset({"environment", "settings", "entries"}),
    # "_path" is set by the loader (files written from a loaded run carry it)
    # "remote": where an --remote run ran (ssh target, host key, sync); "fleet": the
    # device class and node of a fleet job
    optional=frozenset({"name", "created", "baseline", "_path", "remote", "fleet"}),
)
CALIBRATION = FileSchema(
    "calib",
    1,
    required=frozenset(
        {
            "input_size",
            "n",
            "seed",
            "normalisation",
            "source",
            "images",
            "shares",
            "requested_shares",
            "tensor_sha256",
        }
    ),
)
GATES = FileSchema(
    "gates",
    1,
    required=frozenset({"defaults"}),
    optional=frozenset({"precision", "target", "frames"}),
    tag_optional=True,
)

__all__ = ["ARTIFACT", "CALIBRATION", "GATES", "RESULTS", "FileSchema", "Problems", "Status",
           "VerificationMode"]  # fmt: skip


def read_toml(path: Path, what: str, error: type[RtmwError]) -> dict[str, Any]:
    """A hand-written TOML file (``what``: "budgets", "fleet"), or ``error`` in one line."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{what} file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML ({exc})") from None
