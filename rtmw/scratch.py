"""Scratch folders that a killed process does not leave behind for good.

A ``TemporaryDirectory`` is removed by its owner; after ``kill -9`` nobody removes it, and
an ncnn export's scratch holds ~100 MB. Each folder made here holds an exclusive ``flock``
on a lock file inside it for as long as its owner lives (the kernel drops the lock when the
process dies, however it dies), so the next process that makes a scratch folder of the same
kind can tell abandoned folders from live ones and remove them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_NAME = ".owner.lock"
# folders of an rtmw from before the lock (no lock file): removed once this old
UNLOCKED_MAX_AGE_S = 24 * 3600


class ScratchDir:
    """A temporary folder, locked by its owner until :meth:`cleanup`."""

    def __init__(self, prefix: str, parent: str | Path | None = None):
        removed = sweep_abandoned(prefix, parent)
        if removed:
            logger.info("removed %d abandoned %s* folder(s) of killed runs", removed, prefix)
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self._lock_fd: int | None = os.open(self.path / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    @property
    def name(self) -> str:
        return str(self.path)

    def cleanup(self) -> None:
        if self._lock_fd is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __del__(self) -> None:
        self.cleanup()


def sweep_abandoned(prefix: str, parent: str | Path | None = None) -> int:
    """Remove ``prefix*`` folders whose owner is gone (their lock can be taken); returns
    how many. A live owner's folder is never touched."""
    root = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    removed = 0
    for folder in root.glob(f"{prefix}*"):
        if not folder.is_dir() or folder.is_symlink():
            continue
        lock = folder / LOCK_NAME
        if not lock.exists():
            try:
                age = time.time() - folder.stat().st_mtime
            except OSError:
                continue
            if age > UNLOCKED_MAX_AGE_S:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
            continue
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # its owner is alive
            continue
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        finally:
            os.close(fd)
    return removed
