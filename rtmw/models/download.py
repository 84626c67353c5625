"""Zoo checkpoints fetched from the first source that answers, verified, resumable.

OpenMMLab's download server has been unreachable for long stretches (from June 2026:
mmpose #3265, rtmlib #75), so a pull tries the mirrors a user names (each serving the
official file name under its base URL) before the official URL. Bytes land in a hidden
``.NAME.part`` file beside the destination; an interrupted transfer resumes there (HTTP
Range) from the same or the next source; the file takes its final name only after its
sha256 matched. The hash expected is the full digest when one is known (a user's
``--sha256``, or the zoo's pin); for official files only the 8-hex prefix OpenMMLab put in
the name is known, and a pull that can check no more than that says so in its result.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rtmw.errors import DownloadFailed, UsageError
from rtmw.models.rtmdet import DETECTOR_ZOO, RTMDetConfig
from rtmw.models.zoo import RTMWConfig, get_config

logger = logging.getLogger(__name__)

CHUNK = 1 << 20


def zoo_config(name: str) -> RTMWConfig | RTMDetConfig:
    """A pose model's or a person detector's registry entry (one namespace for pulls)."""
    return DETECTOR_ZOO[name] if name in DETECTOR_ZOO else get_config(name)


MIRRORS_ENV = "RTMW_ZOO_MIRRORS"  # whitespace- or comma-separated base URLs, tried first


@dataclass(frozen=True)
class Expected:
    digest: str  # lower-case hex: 64 characters, or the 8 of a prefix-only pin
    source: str  # where the expectation comes from

    @property
    def full(self) -> bool:
        return len(self.digest) == 64

    def matches(self, actual: str) -> bool:
        return actual == self.digest if self.full else actual.startswith(self.digest)


@dataclass
class PullResult:
    path: Path
    sha256: str
    source: str  # the URL that delivered the bytes (or "already present")
    verified: str  # "full sha256 (…)" or "8-hex prefix only (…)"
    attempts: list[str] = field(default_factory=list)  # one line per source that failed

    def line(self) -> str:
        return f"{self.path}: sha256 {self.sha256} ({self.verified}) from {self.source}"


def expected_hash(name: str, sha256: str | None, allow_prefix: bool) -> Expected:
    if sha256 is not None:
        digest = sha256.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise UsageError(f"--sha256 must be 64 hex digits, got {sha256!r}")
        return Expected(digest, "given")
    official = zoo_config(name).official
    if official is not None and official.sha256:
        return Expected(official.sha256.lower(), "pinned in the zoo")
    if official is not None and official.sha256_prefix:
        if not allow_prefix:
            raise UsageError(
                f"{name}: only the 8-hex prefix {official.sha256_prefix} of its sha256 is "
                "known (from the official file name); pass --sha256 with the full digest you "
                "trust, or --allow-prefix to accept a prefix-only check"
            )
        return Expected(official.sha256_prefix.lower(), "8-hex prefix from the file name")
    raise UsageError(
        f"{name}: no sha256 is known for its official file; pass --sha256 with the digest "
        "you trust (a pull never keeps an unverified file)"
    )


def sources_for(name: str, mirrors: Sequence[str], official: bool = True) -> list[str]:
    config = zoo_config(name)
    if config.official is None:
        raise UsageError(f"{name} has no official file to pull")
    file_name = config.official.file_name
    env = os.environ.get(MIRRORS_ENV, "").replace(",", " ").split()
    urls = [f"{base.rstrip('/')}/{file_name}" for base in [*mirrors, *env]]
    if official and not config.official.url.startswith("package:"):
        urls.append(config.official.url)
    if not urls:
        raise UsageError(f"{name}: no source to pull from (give --mirror URL)")
    return urls


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _transfer(
    url: str, part: Path, timeout: float, progress: Callable[[int, int | None], None] | None
) -> None:
    """Append to ``part`` from where it stops (Range), or start over when the server sends
    the whole file; raises on HTTP errors and on a body shorter than announced."""
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "rtmw-zoo"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the part is no prefix of this file: start over
            part.unlink()
            return _transfer(url, part, timeout, progress)
        raise
    with response:
        resumed = response.status == 206
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        total = (start if resumed else 0) + expected if expected is not None else None
        received = 0
        with part.open("ab" if resumed else "wb") as sink:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                sink.write(block)
                received += len(block)
                if progress is not None:
                    progress((start if resumed else 0) + received, total)
        if expected is not None and received < expected:
            raise ConnectionError(f"body ended after {received} of {expected} bytes")
    return None


def pull(
    name: str,
    dest_dir: str | Path,
    mirrors: Sequence[str] = (),
    *,
    official: bool = True,
    sha256: str | None = None,
    allow_prefix: bool = False,
    timeout: float = 30.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> PullResult:
    """Download zoo model ``name`` into ``dest_dir`` under its official file name."""
    config = zoo_config(name)
    expected = expected_hash(name, sha256, allow_prefix)
    urls = sources_for(name, mirrors, official)
    assert config.official is not None
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / config.official.file_name
    verified = (f"full sha256, {expected.source}" if expected.full
                else f"8-hex prefix only, {expected.source}: NOT a full check")  # fmt: skip
    if final.is_file():
        actual = _sha256(final)
        if expected.matches(actual):
            return PullResult(final, actual, "already present", verified)
        raise DownloadFailed(
            f"{final} exists with sha256 {actual[:16]}…, not the expected {expected.digest[:16]}…;"
            " move it away first (a pull never overwrites a file it did not verify)"
        )
    part = dest_dir / f".{config.official.file_name}.part"
    attempts: list[str] = []
    for url in urls:
        for fresh in (False, True):  # a resumed file that fails its hash: once more from 0
            if fresh:
                part.unlink(missing_ok=True)
            resumed_from = part.stat().st_size if part.exists() else 0
            try:
                _transfer(url, part, timeout, progress)
            except urllib.error.HTTPError as exc:
                attempts.append(f"{url}: HTTP {exc.code} {exc.reason}")
                break
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                kept = part.stat().st_size if part.exists() else 0
                attempts.append(f"{url}: {reason} ({kept} bytes kept to resume)")
                break
            actual = _sha256(part)
            if expected.matches(actual):
                part.replace(final)
                logger.info("pulled %s from %s", final.name, url)
                return PullResult(final, actual, url, verified, attempts)
            attempts.append(f"{url}: wrong file (sha256 {actual[:16]}…"
                            + (f", resumed at byte {resumed_from}" if resumed_from else "")
                            + ")")  # fmt: skip
            if not resumed_from:
                part.unlink(missing_ok=True)
                break
    raise DownloadFailed(f"{name}: no source delivered the expected file: " + "; ".join(attempts))
