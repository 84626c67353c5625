"""Our lines on the console; every other library's in the run's log file.

Third-party Python loggers (NNCF, onnxruntime's quantiser, OpenVINO, ExecuTorch, LiteRT,
``warnings``) go to the run's log file and reach the console only with ``-v``. Native
libraries write to file descriptors 1 and 2 directly (ExecuTorch's cpuinfo lines, absl,
TensorFlow Lite's delegate banner, pnnx): :func:`native_output_to_log` points both at the
log file during the calls that make such output, while our console handler keeps writing to
the terminal. A library user who never calls :func:`attach_run_log` gets no redirection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

OURS = "rtmw"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"


class _OursOrVerbose(logging.Filter):
    """Console filter: rtmw's records always (at the handler's level), others only at -v."""

    def __init__(self, show_others: bool):
        super().__init__()
        self.show_others = show_others

    def filter(self, record: logging.LogRecord) -> bool:
        return self.show_others or record.name == OURS or record.name.startswith(OURS + ".")


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler that writes to the terminal (native capture re-points it)."""


class _RunLogHandler(logging.FileHandler):
    """Opens (and makes the folder of) the log only when the first record arrives: a
    command refused before it did anything leaves no file behind."""

    def __init__(self, path: Path):
        super().__init__(path, mode="a", encoding="utf-8", delay=True)

    def _open(self):  # type: ignore[no-untyped-def]
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


_lock = threading.RLock()
_run_log: Path | None = None
_file_handler: logging.FileHandler | None = None
_capture_depth = 0
_configured = False  # setup_logging ran: a CLI owns the process's logging


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Console: rtmw's warnings (errors only with ``quiet``; info with -v, debug with -vv);
    other libraries' records only with -v. Everything goes to the run log once attached."""
    global _configured
    console_level = logging.ERROR if quiet else logging.WARNING - 10 * min(verbose, 2)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _ConsoleHandler) or not isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
    console = _ConsoleHandler(sys.stderr)
    console.setLevel(console_level)
    console.setFormatter(logging.Formatter(CONSOLE_FORMAT))
    console.addFilter(_OursOrVerbose(show_others=verbose >= 1 and not quiet))
    root.addHandler(console)
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    logging.captureWarnings(True)  # warnings.warn → the 'py.warnings' logger → the log file
    _configured = True


def adopt_logger(name: str) -> None:
    """A library logger that prints on a handler of its own (NNCF's, to stdout, installed
    when nncf is imported) propagates to rtmw's handlers instead: call it right after the
    import. Only where a CLI set rtmw's logging up; a library user's logging is left alone."""
    if not _configured:
        return
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True


def attach_run_log(path: str | Path) -> Path:
    """Every record (INFO and up, DEBUG with -vv) and captured native output go to ``path``."""
    global _run_log, _file_handler
    path = Path(path).absolute()
    with _lock:
        root = logging.getLogger()
        if _file_handler is not None:
            root.removeHandler(_file_handler)
            _file_handler.close()
        handler = _RunLogHandler(path)
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
        _file_handler, _run_log = handler, path
    return path


def detach_run_log(path: str | Path | None = None) -> None:
    """Stop writing to the run log (only if it is still ``path``, when given): a command run
    inside a longer-lived process (a test, a notebook) must not keep collecting the
    records of whatever that process does next."""
    global _run_log, _file_handler
    with _lock:
        if _file_handler is None or (path is not None and Path(path).absolute() != _run_log):
            return
        logging.getLogger().removeHandler(_file_handler)
        _file_handler.close()
        _file_handler, _run_log = None, None


def run_log() -> Path | None:
    return _run_log


def _flush(*streams: IO[str] | None) -> None:
    for stream in streams:
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


@contextlib.contextmanager
def native_output_to_log() -> Iterator[None]:
    """File descriptors 1 and 2 (and Python's sys.stdout/stderr on them) write to the run
    log for the duration; the console handler keeps the terminal. No-op without a run log,
    when nested, or off the main thread (descriptors are process-wide)."""
    global _capture_depth
    log = _run_log
    if log is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    with _lock:
        _capture_depth += 1
        outer = _capture_depth == 1
    if not outer:
        try:
            yield
        finally:
            with _lock:
                _capture_depth -= 1
        return
    _flush(sys.stdout, sys.stderr)
    log.parent.mkdir(parents=True, exist_ok=True)
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    consoles: list[tuple[_ConsoleHandler, IO[str]]] = []
    try:
        with log.open("a", encoding="utf-8") as sink:
            sink.write(f"---- native output ({os.getpid()}) ----\n")
            sink.flush()
            for handler in logging.getLogger().handlers:
                if isinstance(handler, _ConsoleHandler):
                    fileno = _fileno(handler.stream)
                    if fileno in saved:
                        original = handler.stream
                        handler.setStream(os.fdopen(os.dup(saved[fileno]), "w", buffering=1))
                        consoles.append((handler, original))
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                _flush(sys.stdout, sys.stderr)
                for fd, copy in saved.items():
                    os.dup2(copy, fd)
    finally:
        for handler, original in consoles:
            replaced = handler.setStream(original)
            if replaced is not None and replaced is not original:
                replaced.close()
        for copy in saved.values():
            os.close(copy)
        with _lock:
            _capture_depth -= 1


def _fileno(stream: object) -> int | None:
    try:
        return int(stream.fileno())  # type: ignore[attr-defined]
    except Exception:
        return None


@contextlib.contextmanager
def native_output_to(path: Path) -> Iterator[None]:
    """A converter's C++ side printing to the process's stdout/stderr (pnnx's passes, MNN's
    converter): into ``path`` for the duration, so an error can quote it."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("w") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
