"""Real servers for the remote and fleet tests, started here on loopback and stopped again.

* :func:`openssh_server`: OpenSSH's sshd on 127.0.0.1 with a throwaway host key and a
  throwaway client key (the only key it accepts), for the current user;
* :func:`ray_cluster`: a Ray head and worker nodes (``ray start``), each on 127.0.0.1 with
  its own custom resources, in a temp dir of their own;
* :func:`run_with_ray_cluster`: a command run beside such a cluster inside a network
  namespace of its own whose only interface is loopback. Ray 2.x binds its GCS and raylets
  to every interface whatever ``--node-ip-address`` says; in the namespace every interface
  is loopback, so nothing the test starts can be reached from outside the machine.

No mock stands in for either: where the server binary is absent the tests that need it
skip and say which package is missing.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# .ci/run sets this: there a missing server is a failure of the setup, not a reason to skip
REQUIRED = bool(os.environ.get("RTMW_REQUIRE_SERVERS"))
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/usr/bin/sshd")


def sshd_binary() -> str | None:
    found = shutil.which("sshd")
    return found or next((p for p in SSHD_CANDIDATES if Path(p).is_file()), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")


@dataclass(frozen=True)
class SshServer:
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    log: Path

    @property
    def spec(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def cli_args(self) -> list[str]:
        return ["--remote", self.spec, "--ssh-key", str(self.client_key),
                "--known-hosts", str(self.known_hosts)]  # fmt: skip


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True,
    )  # fmt: skip


@contextlib.contextmanager
def openssh_server(root: Path) -> Iterator[SshServer]:
    """sshd -D on a free loopback port, key-only, for this user; killed on exit."""
    sshd = sshd_binary()
    assert sshd is not None, "OpenSSH's sshd not found (make test-servers installs it)"
    root.mkdir(parents=True, exist_ok=True)
    host_key, client_key = root / "host_ed25519", root / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    authorized = root / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized}",
                f"PidFile {root / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",  # the temp dir's modes are not sshd's business here
                "AllowTcpForwarding no",
                "X11Forwarding no",
                "PrintMotd no",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation dir
    log = root / "sshd.log"
    process = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )  # fmt: skip
    try:
        wait_for_port(port)
        known_hosts = root / "known_hosts"  # empty: the first connection records the key
        known_hosts.touch()
        yield SshServer(port, getpass.getuser(), client_key, known_hosts, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class RayCluster:
    address: str
    temp_dir: Path
    nodes: list[dict[str, float]]


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


@contextlib.contextmanager
def ray_cluster(root: Path, workers: list[dict[str, float]]) -> Iterator[RayCluster]:
    """A head with no CPUs (nothing runs there) and one worker node per resource dict."""
    root.mkdir(parents=True, exist_ok=True)
    # short: Ray's unix sockets live under it (a socket path has 107 bytes at most)
    temp_dir = Path(tempfile.mkdtemp(prefix="rtmw-ray-", dir="/tmp"))
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    head = [_ray_cli(), "start", "--head", f"--port={port}", "--num-cpus=0",
            "--include-dashboard=false", f"--temp-dir={temp_dir}", *common]  # fmt: skip

    def start(command: list[str]) -> None:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:  # say why: a bare CalledProcessError hides Ray's reason
            raise RuntimeError(f"{' '.join(command[1:3])} failed ({done.returncode}): "
                               f"{(done.stderr or done.stdout)[-1500:]}")  # fmt: skip

    try:
        start(head)
        address = f"127.0.0.1:{port}"
        for resources in workers:
            start([_ray_cli(), "start", f"--address={address}", "--num-cpus=1",
                   f"--resources={json.dumps(resources)}", *common])  # fmt: skip
        yield RayCluster(address, temp_dir, workers)
    finally:
        subprocess.run([_ray_cli(), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp_dir, ignore_errors=True)


def private_network_prefix() -> list[str] | None:
    """``unshare`` into a new network namespace (user namespace too when not root)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    # a PID namespace too: `ray stop` then sees only this cluster, and every process of it
    # dies with the namespace when the command ends
    isolation = ["--net", "--pid", "--fork", "--mount-proc"]
    prefix = (
        [unshare, *isolation] if os.geteuid() == 0 else [unshare, "--map-root-user", *isolation]
    )
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30, check=False)
    return prefix if probe.returncode == 0 else None


def run_with_ray_cluster(
    root: Path, workers: list[dict[str, float]], argv: list[str], *, timeout_s: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run argv (``{address}`` replaced by the head's) beside a fresh local Ray cluster, in a
    loopback-only network namespace; the cluster is stopped before this returns."""
    prefix = private_network_prefix()
    if prefix is None:
        raise RuntimeError("unshare (a network namespace) is needed to keep Ray on loopback")
    inner = [sys.executable, __file__, "ray-cluster", str(root), json.dumps(workers), *argv]
    return subprocess.run(
        [*prefix, *inner], capture_output=True, text=True, timeout=timeout_s, check=False
    )


def _inside_namespace(root: str, workers: str, argv: list[str]) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with ray_cluster(Path(root), json.loads(workers)) as cluster:
        command = [arg.replace("{address}", cluster.address) for arg in argv]
        return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    if sys.argv[1:2] == ["ray-cluster"]:
        raise SystemExit(_inside_namespace(sys.argv[2], sys.argv[3], sys.argv[4:]))
    raise SystemExit("usage: servers.py ray-cluster ROOT WORKERS_JSON COMMAND...")
