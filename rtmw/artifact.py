"""Self-describing artifact folders: model files plus ``artifact.json``.

Exporters write an artifact into a staging folder beside the destination, verify it,
and only then rename it into place, so a failed export never leaves a half-written
artifact. Runtimes refuse an artifact whose files do not match their recorded hashes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rtmw.errors import ArtifactError
from rtmw.hashing import sha256_file
from rtmw.schemas import ARTIFACT

SCHEMA = ARTIFACT.tag
MANIFEST = "artifact.json"
# ".<name>.staging-<hex>" while an export builds, ".<name>.old-<hex>" while it swaps in
HIDDEN_WORK = re.compile(r"^\..+\.(staging|old)-[0-9a-f]{8}$")
logger = logging.getLogger(__name__)


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
    # RTMW3D: how simcc_z decodes (depth_size, z_range, root_index); None for 2D models
    depth: dict[str, Any] | None = None
    # a person detector's decode (strides, classes, letterbox mean/std/pad); None for pose
    detector: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # target-specific settings
    host: dict[str, Any] = field(default_factory=dict)  # CPU fingerprint where built/verified
    created: str = ""
    schema: str = SCHEMA

    def content(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        return data

    def to_json(self) -> str:
        data = self.content()
        data["manifest_sha256"] = content_sha256(data)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str, *, check_hash: bool = True) -> Manifest:
        if not isinstance(data, dict):
            raise ArtifactError(f"{where}: the manifest must be a JSON object")
        problems = ARTIFACT.problems(data)
        if problems.wrong_tag:
            raise ArtifactError(f"{where}: unknown artifact schema {problems.found_tag!r}")
        if problems.unknown:
            raise ArtifactError(f"{where}: unknown manifest field(s) {sorted(problems.unknown)}")
        content = {k: v for k, v in data.items() if k != "manifest_sha256"}
        if check_hash:
            recorded = data.get("manifest_sha256")
            if recorded is None:
                raise ArtifactError(
                    f"{where}: no manifest_sha256 (written by an older rtmw): re-export it"
                )
            if content_sha256(content) != recorded:
                raise ArtifactError(
                    f"{where}: artifact.json was edited after export (its content no longer "
                    "matches manifest_sha256): re-export instead of editing"
                )
        try:
            known = dict(content)
            known["input_size"] = tuple(int(v) for v in data["input_size"])
            manifest = cls(**known)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{where}: malformed manifest ({exc!r})") from None
        if not isinstance(manifest.files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in manifest.files.items()
        ):
            raise ArtifactError(f"{where}: 'files' must map file names to sha256 strings")
        return manifest


def content_sha256(content: dict[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no whitespace, no own hash)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


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

    def file_digests(self) -> dict[str, str]:
        """sha256 of every file of the artifact, its manifest included: what a copy of the
        folder must reproduce (the listed files' hashes come from the manifest, which
        ``read_artifact`` checked against the bytes)."""
        return {**self.manifest.files, MANIFEST: sha256_file(self.path / MANIFEST)}


def read_artifact(
    path: str | Path, *, check_hashes: bool = True, allow_staging: bool = False
) -> Artifact:
    """Open an artifact folder; with ``check_hashes`` every file and the manifest itself
    must match their sha256. Export staging folders are refused (an export killed
    half-way leaves one behind) unless the exporter itself opens one to verify it."""
    root = Path(path)
    manifest_path = root / MANIFEST
    if not root.is_dir():
        raise ArtifactError(f"artifact folder not found: {root}")
    if HIDDEN_WORK.match(root.name) and not allow_staging:
        raise ArtifactError(
            f"{root}: an unfinished export's work folder, not an artifact (the next export of "
            "this target removes it)"
        )
    if not manifest_path.is_file():
        raise ArtifactError(f"{root}: no {MANIFEST}; not an rtmw artifact")
    try:
        data = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({exc})") from None
    manifest = Manifest.from_dict(data, str(manifest_path), check_hash=check_hashes)
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
def _destination_lock(destination: Path) -> Iterator[None]:
    """An exclusive lock on the output folder: concurrent exports into one folder run one
    after the other instead of silently replacing each other's result. The lock is the
    folder itself (flock on its descriptor), so nothing is left behind."""
    import os

    handle = os.open(destination.parent, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.warning("waiting for another export into %s to finish", destination.parent)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)


def _remove_stale_work(destination: Path) -> list[Path]:
    """Work folders a killed export left for this destination (safe: the lock is held)."""
    stale = [
        p
        for p in destination.parent.glob(f".{destination.name}.*-*")
        if p.is_dir() and HIDDEN_WORK.match(p.name)
    ]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
        logger.info("removed %s left by an interrupted export", path)
    return stale


@contextlib.contextmanager
def staging(destination: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """A temp folder beside ``destination``, renamed onto it only if the block succeeds.

    Holds the destination's lock throughout, and first removes work folders that an
    interrupted (killed) export of the same destination left behind.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with _destination_lock(destination):
        _remove_stale_work(destination)
        if destination.exists() and not overwrite:
            raise ArtifactError(f"{destination} exists; pass overwrite to replace it")
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
