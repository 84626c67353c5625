"""Self-describing artifact folders: model files plus ``artifact.json``.

Exporters write an artifact into a staging folder beside the destination, verify it,
and only then rename it into place, so a failed export never leaves a half-written
artifact. Runtimes refuse an artifact whose files do not match their recorded hashes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rtmw.errors import RtmwError
from rtmw.hashing import sha256_file

SCHEMA = "rtmw.artifact/1"
MANIFEST = "artifact.json"


class ArtifactError(RtmwError):
    """An artifact folder is missing, malformed or has been tampered with."""


@dataclass
class Manifest:
    """The contents of ``artifact.json`` (see DESIGN.md)."""

    model: str
    input_size: tuple[int, int]
    target: str
    format: str  # which runtime family reads it: onnx, openvino, ncnn, tensorrt, torch
    precision: str  # fp32, fp16, bf16, int8
    files: dict[str, str]  # file name → sha256
    source: dict[str, Any]
    tools: dict[str, str]
    num_keypoints: int = 133
    simcc_split_ratio: float = 2.0
    calibration: dict[str, Any] | None = None
    verification: dict[str, Any] = field(default_factory=dict)
    io: dict[str, Any] = field(default_factory=dict)  # tensor names, batch mode
    options: dict[str, Any] = field(default_factory=dict)  # target-specific settings
    host: dict[str, Any] = field(default_factory=dict)  # CPU fingerprint where built/verified
    created: str = ""
    schema: str = SCHEMA

    def to_json(self) -> str:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> Manifest:
        if data.get("schema") != SCHEMA:
            raise ArtifactError(f"{where}: unknown artifact schema {data.get('schema')!r}")
        try:
            known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
            known["input_size"] = tuple(int(v) for v in data["input_size"])
            return cls(**known)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{where}: malformed manifest ({exc!r})") from None


@dataclass
class Artifact:
    """An artifact folder on disk, with its manifest read and checked."""

    path: Path
    manifest: Manifest

    def file(self, name: str) -> Path:
        if name not in self.manifest.files:
            raise ArtifactError(f"{self.path}: manifest lists no file {name!r}")
        return self.path / name

    @property
    def size_bytes(self) -> int:
        return sum((self.path / n).stat().st_size for n in self.manifest.files)


def read_artifact(path: str | Path, *, check_hashes: bool = True) -> Artifact:
    """Open an artifact folder; with ``check_hashes`` every file must match its sha256."""
    root = Path(path)
    manifest_path = root / MANIFEST
    if not root.is_dir():
        raise ArtifactError(f"artifact folder not found: {root}")
    if not manifest_path.is_file():
        raise ArtifactError(f"{root}: no {MANIFEST}; not an rtmw artifact")
    try:
        data = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({exc})") from None
    manifest = Manifest.from_dict(data, str(manifest_path))
    if check_hashes:
        for name, digest in manifest.files.items():
            file_path = root / name
            if not file_path.is_file():
                raise ArtifactError(f"{root}: file {name} listed in the manifest is missing")
            actual = sha256_file(file_path)
            if actual != digest:
                raise ArtifactError(
                    f"{root}: {name} does not match its recorded sha256 "
                    f"({actual[:12]}… ≠ {digest[:12]}…): modified or corrupt artifact"
                )
    return Artifact(root, manifest)


def hash_files(folder: Path, names: list[str]) -> dict[str, str]:
    return {name: sha256_file(folder / name) for name in sorted(names)}


def now_utc() -> str:
    return _dt.datetime.now(tz=_dt.timezone.utc).isoformat(timespec="seconds")


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    path = folder / MANIFEST
    path.write_text(manifest.to_json())
    return path


@contextlib.contextmanager
def staging(destination: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """A temp folder beside ``destination``, renamed onto it only if the block succeeds."""
    destination = Path(destination)
    if destination.exists() and not overwrite:
        raise ArtifactError(f"{destination} exists; pass overwrite to replace it")
    destination.parent.mkdir(parents=True, exist_ok=True)
    temp = destination.parent / f".{destination.name}.staging-{uuid.uuid4().hex[:8]}"
    temp.mkdir()
    try:
        yield temp
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    if destination.exists():
        backup = destination.parent / f".{destination.name}.old-{uuid.uuid4().hex[:8]}"
        destination.rename(backup)
        temp.rename(destination)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        temp.rename(destination)
