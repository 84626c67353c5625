"""``rtmw-bench run ARTIFACTS --remote user@host[:port]``: benchmark on the machine that
will run the model, from the machine that has the artifacts.

OpenSSH does the transport (key-based, ``BatchMode``: never a password prompt). The run:

1. ask the host what it has (``remote_agent info``): its rtmw version and source digest
   must equal ours, or the figures would come from other code (``--install`` puts ours
   there, in a venv under the remote folder);
2. sync: hash what the host already has of each artifact (and the evaluation data), send
   only the files that differ (one tar stream), hash again;
3. run ``rtmw-bench run`` there with the same settings, streaming its progress here, under
   a time limit enforced on both sides;
4. bring its results folder back and stamp results.json with where it ran (the host's
   SSH key fingerprint, its CPU fingerprint, what was sent).

A failure there becomes the status of the rows, never a hang: ssh's own failures (exit
255: refused, unreachable, dropped) are retried ``retries`` times with a growing pause;
a command that fails or runs past its limit is not retried.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import rtmw
from rtmw import runtimes
from rtmw.artifact import Artifact, read_artifact
from rtmw.bench.entry import BenchEntry, ResultsDocument
from rtmw.bench.run import BenchSettings
from rtmw.errors import MissingDependency, RemoteError, RemoteTimeout, RtmwError, UsageError
from rtmw.hashing import sha256_file
from rtmw.schemas import RESULTS, Status
from rtmw.workflows.remote_agent import check_versions, file_hashes, local_identity

logger = logging.getLogger(__name__)

SSH_FAILURE = 255  # ssh's own exit status: the connection, not the remote command
AGENT = "rtmw.workflows.remote_agent"
SYNC_TIMEOUT_S = 1800.0  # the least time a sync (hash, send, hash) may take
DEFAULT_REMOTE_DIR = ".cache/rtmw-remote"  # under the remote user's home
# artifact format → the rtmw extra whose runtime runs it (what --install puts there)


@dataclass(frozen=True)
class SshTarget:
    """``user@host[:port]`` (``[::1]:port`` for IPv6)."""

    host: str
    user: str | None = None
    port: int = 22

    @classmethod
    def parse(cls, spec: str) -> SshTarget:
        match = re.fullmatch(r"(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\s\[\]]+)(?::(\d+))?", spec.strip())
        if not match:
            raise UsageError(f"--remote {spec!r}: expected user@host[:port]")
        user, host, port = match.groups()
        port_number = int(port) if port else 22
        if not 0 < port_number < 65536:
            raise UsageError(f"--remote {spec!r}: port {port_number} out of range")
        return cls(host.strip("[]"), user, port_number)

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user + '@' if self.user else ''}{host}:{self.port}"


@dataclass(frozen=True)
class SshOptions:
    identity: Path | None = None  # private key (default: ssh's own, ~/.ssh/id_*)
    known_hosts: Path | None = None  # default: ssh's own (~/.ssh/known_hosts)
    # accept-new: trust on first use, refuse a changed key; "yes" for pinned fleets
    host_key_checking: str = "accept-new"
    connect_timeout_s: float = 10.0
    retries: int = 2
    retry_pause_s: float = 2.0


@dataclass
class Completed:
    returncode: int
    stdout: bytes
    stderr: str
    attempts: int


def _last_line(text: str) -> str:
    lines = [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]
    return lines[-1] if lines else ""


class RemoteHost:
    """One host reached over ssh; every command gets the same options and limits."""

    def __init__(self, target: SshTarget, options: SshOptions | None = None) -> None:
        if shutil.which("ssh") is None:
            raise MissingDependency("--remote needs the OpenSSH client (ssh) on this machine")
        self.target = target
        self.options = options or SshOptions()
        self.attempts = 0

    def ssh_command(self) -> list[str]:
        opts = self.options
        command = [
            "ssh", "-p", str(self.target.port), "-o", "BatchMode=yes",
            "-o", f"ConnectTimeout={int(opts.connect_timeout_s)}",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
            "-o", f"StrictHostKeyChecking={opts.host_key_checking}", "-o", "LogLevel=ERROR",
        ]  # fmt: skip
        if opts.identity is not None:
            command += ["-i", str(opts.identity), "-o", "IdentitiesOnly=yes"]
        if opts.known_hosts is not None:
            command += ["-o", f"UserKnownHostsFile={opts.known_hosts}"]
        return [*command, self.target.destination, "--"]

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        stdin: Path | None = None,
        on_line: Callable[[str], None] | None = None,
        check: bool = True,
    ) -> Completed:
        """Run argv on the host (quoted for its shell); retried on ssh's own failures."""
        remote_line = " ".join(shlex.quote(a) if not a.startswith("~/") else a for a in argv)
        tries = 1 + self.options.retries
        for attempt in range(1, tries + 1):
            self.attempts += 1
            done = self._once(remote_line, timeout_s, stdin, on_line)
            done.attempts = attempt
            if done.returncode != SSH_FAILURE or attempt == tries:
                break
            pause = self.options.retry_pause_s * attempt
            logger.warning(
                "%s: ssh failed (%s); retry %d of %d in %.0f s", self.target,
                _last_line(done.stderr) or "exit 255", attempt, tries - 1, pause,
            )  # fmt: skip
            time.sleep(pause)
        if check and done.returncode == SSH_FAILURE:
            raise self.ssh_failure(done)
        if check and done.returncode != 0:
            detail = _last_line(done.stderr) or "no message"
            raise RemoteError(f"{self.target}: {argv[0]} exited {done.returncode}: {detail}")
        return done

    def ssh_failure(self, done: Completed) -> RemoteError:
        """The error of a command that ssh itself could not carry (exit 255)."""
        tried = f" after {done.attempts} attempts" if done.attempts > 1 else ""
        return RemoteError(
            f"{self.target}: ssh failed{tried}: {_last_line(done.stderr) or 'no message'}"
        )

    def _once(
        self,
        remote_line: str,
        timeout_s: float,
        stdin: Path | None,
        on_line: Callable[[str], None] | None,
    ) -> Completed:
        # stdin from a file: the OS streams it (a tar of 5,000 images never sits in memory)
        source = stdin.open("rb") if stdin is not None else None
        try:
            process = subprocess.Popen(
                [*self.ssh_command(), remote_line],
                stdin=source if source is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        finally:
            if source is not None:
                source.close()
        chunks: list[bytes] = []
        errors: list[str] = []

        stdout, stderr = process.stdout, process.stderr
        assert stdout is not None and stderr is not None

        def read_stdout() -> None:
            for chunk in iter(lambda: stdout.read(1 << 16), b""):
                chunks.append(chunk)

        def read_stderr() -> None:
            pending = ""
            # read1: whatever has arrived, so progress lines stream as they come
            for raw in iter(lambda: stderr.read1(4096), b""):  # type: ignore[attr-defined]
                pending += raw.decode(errors="replace")
                *lines, pending = re.split(r"[\r\n]", pending)
                for line in lines:
                    # a progress bar's last state arrives twice (after \r, then \n)
                    repeated = bool(errors) and errors[-1] == line
                    errors.append(line)
                    if on_line is not None and line.strip() and not repeated:
                        on_line(line)
            if pending:
                errors.append(pending)

        readers = [threading.Thread(target=f, daemon=True) for f in (read_stdout, read_stderr)]
        for reader in readers:
            reader.start()
        try:
            returncode = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RemoteTimeout(
                f"{self.target}: timed out after {timeout_s:.0f} s: {remote_line[:120]}"
            ) from None
        for reader in readers:
            reader.join(timeout=5)
        return Completed(returncode, b"".join(chunks), "\n".join(errors), 1)

    def json(self, argv: Sequence[str], *, timeout_s: float = 60.0) -> Any:
        done = self.run(argv, timeout_s=timeout_s)
        try:
            return json.loads(done.stdout.decode())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RemoteError(
                f"{self.target}: {argv[0]} answered no JSON: {done.stdout[:200]!r}"
            ) from None

    def home(self) -> str:
        done = self.run(["sh", "-c", 'printf %s "$HOME"'], timeout_s=30)
        return done.stdout.decode().strip() or "."

    def put_files(
        self, local_root: Path, names: Iterable[str], remote_dir: str, *, timeout_s: float
    ) -> int:
        """One tar stream of ``names`` (relative to local_root) unpacked in remote_dir."""
        with tempfile.TemporaryDirectory(prefix="rtmw-send-") as work:
            bundle = Path(work) / "send.tar"
            with tarfile.open(bundle, mode="w") as tar:
                for name in names:
                    tar.add(local_root / name, arcname=name, recursive=False)
            unpack = 'mkdir -p "$1" && tar -x --no-same-owner -f - -C "$1"'
            self.run(["sh", "-c", unpack, "sh", remote_dir], timeout_s=timeout_s, stdin=bundle)
            return bundle.stat().st_size

    def get_tree(self, remote_dir: str, local_dir: Path, *, timeout_s: float) -> None:
        done = self.run(["tar", "-c", "-f", "-", "-C", remote_dir, "."], timeout_s=timeout_s)
        local_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(done.stdout), mode="r") as tar:
            tar.extractall(local_dir, filter="data")

    def host_key_fingerprint(self) -> str | None:
        """The server's SSH host key (SHA256:…), as ssh-keyscan reads it; None if unread."""
        if shutil.which("ssh-keyscan") is None or shutil.which("ssh-keygen") is None:
            return None
        try:
            scanned = subprocess.run(
                ["ssh-keyscan", "-p", str(self.target.port), "-T", "5", "-t", "ed25519,ecdsa,rsa",
                 self.target.host],
                capture_output=True, timeout=15, check=False,
            )  # fmt: skip
            if not scanned.stdout:
                return None
            listed = subprocess.run(
                ["ssh-keygen", "-l", "-f", "-"], input=scanned.stdout, capture_output=True,
                timeout=15, check=False,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None
        first = listed.stdout.decode().split("\n", 1)[0].split()
        return f"{first[1]} ({first[-1].strip('()')})" if len(first) >= 2 else None


@dataclass
class SyncRecord:
    """What one tree sync did: files sent, files the host already had, bytes on the wire."""

    sent: list[str] = field(default_factory=list)
    unchanged: int = 0
    bytes: int = 0

    def add(self, other: SyncRecord, prefix: str) -> None:
        self.sent += [f"{prefix}/{name}" for name in other.sent]
        self.unchanged += other.unchanged
        self.bytes += other.bytes


def sync_tree(
    host: RemoteHost, python: str, local_root: Path, local: dict[str, str], remote_dir: str,
    *, timeout_s: float = 600.0,
) -> SyncRecord:  # fmt: skip
    """Send the files of ``local`` (relative name → sha256 of the bytes under local_root)
    that the host lacks or holds other bytes of; check their hashes there after."""
    there = host.json([python, "-m", AGENT, "hashes", remote_dir], timeout_s=timeout_s)
    stale = sorted(name for name, digest in local.items() if there.get(name) != digest)
    record = SyncRecord(unchanged=len(local) - len(stale))
    if stale:
        record.bytes = host.put_files(local_root, stale, remote_dir, timeout_s=timeout_s)
        record.sent = stale
        after = host.json([python, "-m", AGENT, "hashes", remote_dir], timeout_s=timeout_s)
        wrong = [name for name, digest in local.items() if after.get(name) != digest]
        if wrong:
            raise RemoteError(f"{host.target}: {wrong[0]} does not hash the same after sending")
    return record


@dataclass
class RemoteSettings:
    """Where and how to reach the host; the benchmark's own settings travel as CLI args."""

    target: SshTarget
    ssh: SshOptions = field(default_factory=SshOptions)
    python: str | None = None  # remote interpreter with rtmw (default: remote_dir's venv)
    remote_dir: str | None = None  # default: ~/.cache/rtmw-remote
    install: bool = False
    install_extras: tuple[str, ...] | None = None  # default: from the artifacts' formats
    install_requirements: tuple[str, ...] = ()  # installed first, e.g. a pinned torch
    pip_args: tuple[str, ...] = ()  # e.g. an --index-url for the host's wheels
    system_site_packages: bool = False  # Jetson: torch and TensorRT come with JetPack
    timeout_s: float = 3600.0  # the remote benchmark's limit
    allow_version_mismatch: bool = False


@dataclass
class DataPaths:
    """The evaluation inputs of a run (local paths), shipped beside the artifacts."""

    image_dir: str | None = None
    ann_file: str | None = None
    det_file: str | None = None
    reference: str | None = None

    @classmethod
    def of(cls, settings: BenchSettings) -> DataPaths:
        return cls(settings.image_dir, settings.ann_file, settings.det_file, settings.reference)


class RemoteSession:
    """The host, its folders and its interpreter, checked once per run."""

    def __init__(self, settings: RemoteSettings, *, say: Callable[[str], None]) -> None:
        self.settings = settings
        self.say = say
        self.host = RemoteHost(settings.target, settings.ssh)
        home = self.host.home()
        base = settings.remote_dir or DEFAULT_REMOTE_DIR
        self.root = base if base.startswith("/") else f"{home}/{base.removeprefix('~/')}"
        self.venv = f"{self.root}/venv-{rtmw.__version__}"
        self.python = settings.python or f"{self.venv}/bin/python"
        self.info: dict[str, Any] = {}

    def prepare(self, formats: Iterable[str], *, evaluates: bool) -> dict[str, Any]:
        """The host's info once its rtmw is ours (installed first with ``install``)."""
        if self.settings.install:
            self.install(formats, evaluates=evaluates)
        probe = self.host.run([self.python, "-m", AGENT, "info"], timeout_s=120, check=False)
        if probe.returncode != 0:
            if probe.returncode == SSH_FAILURE:
                raise self.host.ssh_failure(probe)
            raise RemoteError(
                f"{self.host.target}: no usable rtmw at {self.python} "
                f"({_last_line(probe.stderr) or 'exit ' + str(probe.returncode)}); "
                "pass --remote-python, or --install to put this rtmw there"
            )
        try:
            self.info = json.loads(probe.stdout.decode())
        except json.JSONDecodeError:
            raise RemoteError(f"{self.host.target}: rtmw's agent answered no JSON") from None
        mismatch = check_versions(local_identity(), self.info)
        if mismatch and not self.settings.allow_version_mismatch:
            raise RemoteError(
                f"{self.host.target}: version mismatch: {mismatch}; --install puts this "
                "rtmw there (or --allow-version-mismatch)"
            )
        self.info["version_check"] = mismatch or "same version and source"
        return self.info

    def install(self, formats: Iterable[str], *, evaluates: bool) -> None:
        """This rtmw, as a wheel built here, into a venv on the host, with the extras the
        artifacts' runtimes need (and eval's xtcocotools, built there from source)."""
        settings = self.settings
        extras = settings.install_extras
        if extras is None:
            by_format = runtimes.extras_by_format()  # as each adapter declares it
            extras = tuple(sorted({by_format[f] for f in formats if f in by_format}))
            extras += ("eval",) * evaluates
        wheel = build_wheel()
        self.say(f"{self.host.target}: installing {wheel.name}[{','.join(extras)}] in {self.venv}")
        wheel_dir = f"{self.root}/wheels"
        self.host.put_files(wheel.parent, [wheel.name], wheel_dir, timeout_s=600)
        pip = [f"{self.venv}/bin/python", "-m", "pip", "install", "--quiet",
               "--disable-pip-version-check", *settings.pip_args]  # fmt: skip
        site = ["--system-site-packages"] * settings.system_site_packages
        self.host.run(["python3", "-m", "venv", *site, self.venv], timeout_s=300)
        steps: list[list[str]] = []
        if settings.install_requirements:
            steps.append([*pip, *settings.install_requirements])
        if "eval" in extras:  # xtcocotools' wheel breaks beside numpy 2: build it there
            steps.append([*pip, "cython", "numpy"])
            steps.append([*pip, "--no-binary", "xtcocotools", "--no-build-isolation",
                          "xtcocotools>=1.14"])  # fmt: skip
        spec = f"{wheel_dir}/{wheel.name}" + (f"[{','.join(extras)}]" if extras else "")
        steps.append([*pip, "--force-reinstall", "--no-deps", f"{wheel_dir}/{wheel.name}"])
        steps.append([*pip, spec])
        for step in steps:
            self.host.run(step, timeout_s=settings.timeout_s, on_line=self._echo)

    def _echo(self, line: str) -> None:
        self.say(f"[{self.host.target.host}] {line.strip()}")


def build_wheel() -> Path:
    """A wheel of this rtmw, built from its source checkout (an installed copy has none).

    Built from a clean copy of the package, never in the checkout: setuptools reuses the
    checkout's ``build/lib`` and keeps there the modules since deleted or renamed, which
    would ship to the host as stale code."""
    source = Path(rtmw.__file__).resolve().parent.parent
    if not (source / "pyproject.toml").is_file():
        raise UsageError(
            "--install builds rtmw from its source checkout, and this rtmw was installed "
            "without one; install rtmw on the host yourself and pass --remote-python"
        )
    out = Path(tempfile.mkdtemp(prefix="rtmw-wheel-"))
    clean = out / "src"
    shutil.copytree(source / "rtmw", clean / "rtmw",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(source / name, clean / name)
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(clean)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    shutil.rmtree(clean, ignore_errors=True)
    wheels = sorted(out.glob("rtmw-*.whl"))
    if done.returncode != 0 or not wheels:
        raise RemoteError(f"building the rtmw wheel failed: {_last_line(done.stderr)}")
    return wheels[0]


def _failed_entries(artifacts: Sequence[Path], reason: str) -> list[BenchEntry]:
    return [
        BenchEntry(
            {"name": path.name, "path": str(path), "status": Status.FAILED, "reason": reason}
        )
        for path in artifacts
    ]


def remote_bench(
    artifacts: Sequence[Path],
    bench_settings: BenchSettings,
    settings: RemoteSettings,
    out_dir: Path,
    *,
    say: Callable[[str], None] = logger.info,
    progress: bool = True,
    quiet: bool = False,
) -> ResultsDocument:
    """Ship, run there, bring back: results.json in out_dir, one row per artifact.

    ``bench_settings`` is what a local :func:`rtmw.bench.run.bench` would get; its data
    paths (images, annotations, detections, reference artifact) are shipped and replaced
    by the host's copies, and the host's agent runs ``bench`` with the rest unchanged.
    """
    data = DataPaths.of(bench_settings)
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"target": str(settings.target), "ssh_host_key": None}
    # opened once, hash-checked: a tampered artifact is refused before anything is sent
    opened = [read_artifact(path) for path in artifacts]
    formats = [artifact.manifest.format for artifact in opened]
    session: RemoteSession | None = None
    try:
        session = RemoteSession(settings, say=say)
        record["ssh_host_key"] = session.host.host_key_fingerprint()
        record["rtmw"] = session.prepare(formats, evaluates=data.ann_file is not None)
        say(f"{settings.target}: rtmw {record['rtmw']['rtmw']} at {session.python} "
            f"({record['rtmw']['version_check']})")  # fmt: skip
        args, sync = _ship(session, opened, data)
        record["sync"] = {"sent": sync.sent, "unchanged": sync.unchanged, "bytes": sync.bytes}
        say(f"{settings.target}: sent {len(sync.sent)} file(s) ({sync.bytes / 1e6:.1f} MB), "
            f"{sync.unchanged} unchanged")  # fmt: skip
        there = replace(
            bench_settings, image_dir=args.get("image_dir"), ann_file=args.get("ann_file"),
            det_file=args.get("det_file"), reference=args.get("reference"),
        )  # fmt: skip
        results = _run_there(session, args["artifacts"], there, out_dir, progress=progress,
                             quiet=quiet)  # fmt: skip
    except (RemoteError, RtmwError) as exc:
        logger.warning("%s", exc)
        results = _failure_document(out_dir.name, settings, artifacts, f"remote: {exc}")
        record["error"] = str(exc)
    for entry, path in zip(results.entries, artifacts, strict=False):
        entry["remote_path"], entry["path"] = entry.get("path"), str(path)
    record["ssh_commands"] = session.host.attempts if session is not None else None
    record["seconds"] = time.perf_counter() - started
    results["remote"] = record
    return _write(results, out_dir)


def _ship(
    session: RemoteSession, artifacts: Sequence[Artifact], data: DataPaths
) -> tuple[dict[str, Any], SyncRecord]:
    """Sync artifacts and data; the remote paths of each, for the remote command line."""
    total = SyncRecord()
    # sending data may take long (5,000 images on a slow link), whatever the bench limit is
    limit = max(SYNC_TIMEOUT_S, session.settings.timeout_s)

    def send(local_root: Path, digests: dict[str, str], remote_dir: str, label: str) -> str:
        record = sync_tree(session.host, session.python, local_root, digests, remote_dir,
                           timeout_s=limit)  # fmt: skip
        total.add(record, label)
        return remote_dir

    def send_artifact(artifact: Artifact) -> str:
        where = f"{session.root}/artifacts/{artifact.path.name}"
        return send(artifact.path, artifact.file_digests(), where, artifact.path.name)

    args: dict[str, Any] = {"artifacts": [send_artifact(a) for a in artifacts]}
    if data.image_dir:
        images = Path(data.image_dir)
        where = f"{session.root}/data/{images.resolve().name}"
        args["image_dir"] = send(images, file_hashes(images), where, images.name)
    for key in ("ann_file", "det_file"):
        value = getattr(data, key)
        if value:
            local = Path(value)
            where = send(local.parent, {local.name: sha256_file(local)},
                         f"{session.root}/data/files", "files")  # fmt: skip
            args[key] = f"{where}/{local.name}"
    if data.reference:
        # refused here if tampered, before anything is sent
        args["reference"] = send_artifact(read_artifact(data.reference))
    return args, total


def _run_there(
    session: RemoteSession,
    artifacts: list[str],
    settings: BenchSettings,
    out_dir: Path,
    *,
    progress: bool,
    quiet: bool,
) -> ResultsDocument:
    limit = int(session.settings.timeout_s)
    run_dir = f"{session.root}/runs/{out_dir.name}-{time.strftime('%Y%m%dT%H%M%S')}"
    job = {"artifacts": artifacts, "out": run_dir, "name": out_dir.name,
           "settings": settings.to_dict(), "quiet": quiet}  # fmt: skip
    command = [session.python, "-m", "rtmw.workflows.remote_agent", "bench", json.dumps(job)]
    # the limit holds there too: a killed ssh would otherwise leave the bench running
    wrapped = ["sh", "-c", 'if command -v timeout >/dev/null 2>&1; then '
               f'exec timeout -k 10 {limit} "$@"; else exec "$@"; fi', "sh", *command]  # fmt: skip
    done = session.host.run(
        wrapped, timeout_s=limit + 30, check=False,
        on_line=session._echo if progress else None,
    )  # fmt: skip
    if done.returncode == 124:
        raise RemoteTimeout(f"{session.host.target}: the benchmark ran past {limit} s")
    if done.returncode == SSH_FAILURE:
        raise session.host.ssh_failure(done)
    fetched = out_dir / ".remote-run"
    shutil.rmtree(fetched, ignore_errors=True)
    try:
        session.host.get_tree(run_dir, fetched, timeout_s=600)
        results = ResultsDocument(json.loads((fetched / "results.json").read_text()))
    except (RemoteError, OSError, json.JSONDecodeError):
        raise RemoteError(
            f"{session.host.target}: the benchmark left no results "
            f"(exit {done.returncode}: {_last_line(done.stderr) or 'no message'})"
        ) from None
    for item in fetched.iterdir():  # predictions/, images/ beside results.json
        if item.is_dir():
            target = out_dir / item.name
            shutil.rmtree(target, ignore_errors=True)
            item.replace(target)
    shutil.rmtree(fetched, ignore_errors=True)
    results["remote_run_dir"] = run_dir
    return results


def _failure_document(
    name: str, settings: RemoteSettings, artifacts: Sequence[Path], reason: str
) -> ResultsDocument:
    return ResultsDocument({
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "environment": {"host": str(settings.target), "device": "remote (unreached)", "cpu": {}},
        "settings": {},
        "baseline": None,
        "entries": _failed_entries(artifacts, reason),
    })  # fmt: skip


def _write(results: ResultsDocument, out_dir: Path) -> ResultsDocument:
    from rtmw.bench.report import render

    remote_run_dir = results.pop("remote_run_dir", None)
    if remote_run_dir:
        results["remote"]["run_dir"] = remote_run_dir
    document = ResultsDocument(RESULTS.stamp({k: v for k, v in results.items() if k != "schema"}))
    (out_dir / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    render([document], out_dir)
    return document
