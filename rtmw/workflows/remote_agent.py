"""What ``rtmw-bench --remote`` runs on the remote host before it benchmarks there.

``python -m rtmw.workflows.remote_agent info`` prints the host's rtmw version, source
digest and CPU fingerprint; ``... hashes DIR`` prints the sha256 of every file under DIR,
so that only what changed is sent. Output is one JSON object on stdout. Kept to the
standard library and rtmw's leaves so it answers even where a backend is broken.

``... bench JOB_JSON`` runs the benchmark itself: the job (artifact folders, output folder
and the :class:`~rtmw.bench.run.BenchSettings` as JSON, paths already the host's) goes to
:func:`rtmw.bench.run.bench`, the same call a local run makes. No command line is rebuilt
in between, so a renamed CLI flag cannot change what runs remotely.
"""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import sys
from pathlib import Path
from typing import Any

import rtmw
from rtmw.hashing import sha256_file

# the files whose bytes decide what a benchmark does (weights are checked by their own hash)
SOURCE_SUFFIXES = (".py", ".toml")


def source_digest(package_dir: Path | None = None) -> str:
    """sha256 over the package's source files (path and bytes), order-independent.

    Two hosts with the same version string can still run different code (an editable
    install on a branch); equal digests mean the same benchmark code.
    """
    root = package_dir or Path(rtmw.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in SOURCE_SUFFIXES):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def local_identity() -> dict[str, str]:
    """This rtmw's version and source digest: what another host must match."""
    return {"rtmw": rtmw.__version__, "source_digest": source_digest()}


def check_versions(local: dict[str, Any], remote: dict[str, Any]) -> str | None:
    """Why the host's rtmw is not ours (None when it is)."""
    if local["rtmw"] != remote.get("rtmw"):
        return f"rtmw {remote.get('rtmw')} there, {local['rtmw']} here"
    if local["source_digest"] != remote.get("source_digest"):
        return (
            f"rtmw {local['rtmw']} on both, but other source (digest "
            f"{str(remote.get('source_digest'))[:12]}… there, {local['source_digest'][:12]}… here)"
        )
    return None


def host_info() -> dict[str, Any]:
    from rtmw.host import cpu_fingerprint

    return {
        **local_identity(),
        "python": sys.executable,
        "python_version": platform.python_version(),
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "cpu": cpu_fingerprint(),
    }


def file_hashes(root: Path) -> dict[str, str]:
    """Relative path → sha256 of every regular file under root ({} when root is absent)."""
    if not root.is_dir():
        return {}
    return {
        path.relative_to(root).as_posix(): sha256_file(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def bench_job(job: dict[str, Any]) -> int:
    """Run one shipped benchmark job here; 0 when every row ran, else rtmw's exit code.

    The results (results.json, predictions, images, the run log) are left in the job's
    ``out`` for the caller to fetch; errors are one line on stderr, as the CLIs give them.
    """
    from rtmw.bench.run import BenchSettings, bench
    from rtmw.errors import ExitCode, RtmwError
    from rtmw.logs import attach_run_log, setup_logging
    from rtmw.schemas import Status

    quiet = bool(job.get("quiet", False))
    setup_logging(int(job.get("verbose", 0)), quiet)
    out = Path(job["out"])
    attach_run_log(out / "rtmw-bench.log")
    try:
        settings = BenchSettings.from_dict(job["settings"])
        results = bench(list(job["artifacts"]), settings, out, name=job.get("name"),
                        progress=not quiet)  # fmt: skip
    except RtmwError as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
              file=sys.stderr)  # fmt: skip
        return int(exc.exit_code)
    failed = any(entry.status == Status.FAILED for entry in results.entries)
    return int(ExitCode.FAILED if failed else ExitCode.OK)


USAGE = "usage: python -m rtmw.workflows.remote_agent info | hashes DIR | bench JOB_JSON"


def main(argv: list[str]) -> int:
    if argv[:1] == ["info"]:
        answer: dict[str, Any] = host_info()
    elif argv[:1] == ["hashes"] and len(argv) == 2:
        answer = file_hashes(Path(argv[1]))
    elif argv[:1] == ["bench"] and len(argv) == 2:
        return bench_job(json.loads(argv[1]))
    else:
        print(USAGE, file=sys.stderr)
        return 2
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
