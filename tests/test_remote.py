"""``rtmw-bench run --remote``: against a real OpenSSH server this test starts on 127.0.0.1.

The "remote" host is this machine reached through sshd with a throwaway key, so the
whole path runs for real: ssh's options, the version handshake, the hash-checked sync,
the remote benchmark, the fetch-back, and the failures that must become row statuses.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from servers import REQUIRED, SshServer, free_port, openssh_server, sshd_binary

from rtmw.cli.bench import main as bench_cli
from rtmw.data.synthetic import SyntheticDataset
from rtmw.workflows.remote import SshTarget
from rtmw.workflows.remote_agent import check_versions, source_digest

pytestmark = [
    pytest.mark.remote,
    pytest.mark.skipif(
        sshd_binary() is None and not REQUIRED, reason="OpenSSH server (sshd) not installed"
    ),
    pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client (ssh) not installed"),
]
QUICK = ["--iters", "3", "--repeats", "1", "--warmup", "0", "--batch", "1", "--quiet"]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with openssh_server(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory: pytest.TempPathFactory, demo_random_checkpoint: Path) -> Path:
    from rtmw.export import export

    out = tmp_path_factory.mktemp("remote-artifacts")
    (result,) = export(demo_random_checkpoint, ["onnx"], out, progress=False)
    assert result.status == "ok" and result.path is not None
    return result.path


def _bench(server: SshServer, *args: str) -> tuple[int, str, dict | None]:
    result = CliRunner().invoke(bench_cli, ["run", *args, *server.cli_args()])
    out_index = args.index("--out") + 1
    path = Path(args[out_index]) / "results.json"
    return result.exit_code, result.output, json.loads(path.read_text()) if path.is_file() else None


def _here(tmp: Path) -> list[str]:
    """This interpreter (it has rtmw) as the remote one, with a remote folder of the test's."""
    return ["--remote-python", sys.executable, "--remote-dir", str(tmp / "remote-home")]


def test_target_parsing() -> None:
    assert SshTarget.parse("nvidia@orin.local:2222") == SshTarget("orin.local", "nvidia", 2222)
    assert SshTarget.parse("board") == SshTarget("board", None, 22)
    assert SshTarget.parse("pi@[::1]:22").host == "::1"
    with pytest.raises(Exception, match="user@host"):
        SshTarget.parse("a@b@c")


def test_remote_bench_ships_only_what_changed(
    sshd: SshServer, onnx_artifact: Path, tmp_path: Path
) -> None:
    here = _here(tmp_path)
    code, output, results = _bench(
        sshd, str(onnx_artifact), *QUICK, *here, "--out", str(tmp_path / "first")
    )
    assert code == 0, output
    assert results is not None
    (entry,) = results["entries"]
    assert entry["status"] == "ok" and entry["latency"]["1"]["p50"] > 0
    assert entry["path"] == str(onnx_artifact)
    assert entry["remote_path"].startswith(str(tmp_path / "remote-home"))
    remote = results["remote"]
    assert remote["target"] == f"{sshd.user}@127.0.0.1:{sshd.port}"
    assert remote["ssh_host_key"].startswith("SHA256:")
    assert remote["rtmw"]["version_check"] == "same version and source"
    assert remote["rtmw"]["cpu"]["isa_class"] == results["environment"]["cpu"]["isa_class"]
    assert sorted(remote["sync"]["sent"]) == ["onnx/artifact.json", "onnx/model.onnx"]
    assert (tmp_path / "first" / "results.md").is_file()

    code, output, again = _bench(
        sshd, str(onnx_artifact), *QUICK, *here, "--out", str(tmp_path / "second")
    )
    assert code == 0, output
    assert again is not None and again["remote"]["sync"]["sent"] == []
    assert again["remote"]["sync"]["unchanged"] == 2

    # a file changed on the host (tampered or half-copied) is sent again, and only it
    shipped = Path(entry["remote_path"]) / "model.onnx"
    shipped.write_bytes(shipped.read_bytes()[:-10])
    code, output, third = _bench(
        sshd, str(onnx_artifact), *QUICK, *here, "--out", str(tmp_path / "third")
    )
    assert code == 0, output
    assert third is not None and third["remote"]["sync"]["sent"] == ["onnx/model.onnx"]


@pytest.mark.eval
def test_remote_accuracy_ships_the_data(
    sshd: SshServer, onnx_artifact: Path, synthetic_val: SyntheticDataset, tmp_path: Path
) -> None:
    code, output, results = _bench(
        sshd,
        str(onnx_artifact),
        *QUICK,
        *_here(tmp_path),
        "--images",
        str(synthetic_val.image_dir),
        "--ann",
        str(synthetic_val.ann_file),
        "--limit",
        "4",
        "--out",
        str(tmp_path / "acc"),
    )
    assert code == 0, output
    assert results is not None
    (entry,) = results["entries"]
    assert set(entry["accuracy"]["parts"]) >= {"body", "lefthand", "wholebody"}
    assert (tmp_path / "acc" / entry["predictions"]).is_file()  # fetched back
    sent = results["remote"]["sync"]["sent"]
    assert any(name.endswith(".json") and name.startswith("files/") for name in sent)
    assert sum(name.startswith(synthetic_val.image_dir.name + "/") for name in sent) == len(
        list(synthetic_val.image_dir.iterdir())
    )


def test_remote_timeout_is_a_row_status(
    sshd: SshServer, onnx_artifact: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    code, output, results = _bench(
        sshd,
        str(onnx_artifact),
        *QUICK,
        *_here(tmp_path),
        "--remote-timeout",
        "2",
        "--out",
        str(tmp_path / "t"),
    )
    assert code == 1
    assert results is not None
    (entry,) = results["entries"]
    assert entry["status"] == "failed" and "ran past 2 s" in entry["reason"]
    assert time.monotonic() - started < 60
    assert "Traceback" not in output


def test_unreachable_host_is_retried_then_a_row_status(onnx_artifact: Path, tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    result = CliRunner().invoke(
        bench_cli,
        [
            "run",
            str(onnx_artifact),
            *QUICK,
            "--remote",
            f"nobody@127.0.0.1:{closed}",
            "--retries",
            "1",
            "--out",
            str(tmp_path / "u"),
        ],
    )
    assert result.exit_code == 1
    results = json.loads((tmp_path / "u" / "results.json").read_text())
    (entry,) = results["entries"]
    assert entry["status"] == "failed"
    assert "after 2 attempts" in entry["reason"] and "refused" in entry["reason"].lower()
    assert results["remote"]["ssh_host_key"] is None


def test_host_without_rtmw_is_told_to_install(
    sshd: SshServer, onnx_artifact: Path, tmp_path: Path
) -> None:
    bare = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"
    where = ["--remote-dir", str(tmp_path / "h"), "--out", str(tmp_path / "n")]
    code, _, results = _bench(sshd, str(onnx_artifact), *QUICK, "--remote-python", bare, *where)
    assert code == 1
    assert results is not None
    reason = results["entries"][0]["reason"]
    assert "no usable rtmw" in reason and "--install" in reason


def test_version_check_sees_other_source(tmp_path: Path) -> None:
    import rtmw

    copy = tmp_path / "rtmw"
    shutil.copytree(Path(rtmw.__file__).parent, copy, ignore=shutil.ignore_patterns("*.pth"))
    assert source_digest(copy) == source_digest()
    ours = {"rtmw": rtmw.__version__, "source_digest": source_digest()}
    assert check_versions(ours, dict(ours)) is None
    (copy / "bench" / "run.py").write_text((copy / "bench" / "run.py").read_text() + "\n# edit\n")
    theirs = {"rtmw": rtmw.__version__, "source_digest": source_digest(copy)}
    assert "other source" in str(check_versions(ours, theirs))
    assert "0.0.1 there" in str(check_versions(ours, {**theirs, "rtmw": "0.0.1"}))


def test_install_puts_this_rtmw_in_a_venv_there(
    sshd: SshServer, onnx_artifact: Path, tmp_path: Path
) -> None:
    """--install: a wheel of this checkout into a fresh venv on the host, then the bench
    runs with that venv's python (pip reaches the package index, as a real host's would)."""
    import torch

    remote_dir = tmp_path / "fresh-host"
    code, output, results = _bench(
        sshd,
        str(onnx_artifact),
        *QUICK,
        "--remote-dir",
        str(remote_dir),
        "--install",
        "--install-requirement",
        f"torch=={torch.__version__.split('+')[0]}",
        "--out",
        str(tmp_path / "i"),
    )
    assert code == 0, output
    assert results is not None
    venv_python = results["remote"]["rtmw"]["python"]
    assert venv_python.startswith(str(remote_dir)), venv_python
    assert results["remote"]["rtmw"]["version_check"] == "same version and source"
    assert results["entries"][0]["status"] == "ok"


def test_bench_settings_travel_as_json_unchanged() -> None:
    """--remote ships the settings object, not a rebuilt command line: every field comes
    back equal on the other side, and a key this rtmw does not know is refused."""
    import json

    from rtmw.bench.run import BenchSettings
    from rtmw.bench.timing import TimingPlan
    from rtmw.errors import UsageError

    settings = BenchSettings(
        device="cpu", batches=(1, 4), threads=3,
        plan=TimingPlan(warmup_s=0.5, seconds=None, iters=7, repeats=2), flip=False,
        image_dir="/data/images", ann_file="/data/ann.json", det_file=None, limit=9,
        reference="/a/onnx", draw=1, seed=5, stream=3,
        runtime_options={"openvino": {"performance_hint": "THROUGHPUT"}},
        flip_in_batch=False, isolate=True,
    )  # fmt: skip
    assert BenchSettings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings
    with pytest.raises(UsageError, match="unknown key"):
        BenchSettings.from_dict({**settings.to_dict(), "batch_sizes": [1]})


def test_install_wheel_never_ships_stale_modules_from_the_checkouts_build_dir() -> None:
    import zipfile

    import rtmw
    from rtmw.workflows.remote import build_wheel

    source = Path(rtmw.__file__).resolve().parent.parent
    stale = source / "build" / "lib" / "rtmw" / "deleted_long_ago.py"
    made_build = not (source / "build").exists()
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("raise ImportError('stale')\n")
    try:
        wheel = build_wheel()
    finally:
        stale.unlink()
        if made_build:
            shutil.rmtree(source / "build", ignore_errors=True)
    names = zipfile.ZipFile(wheel).namelist()
    shutil.rmtree(wheel.parent, ignore_errors=True)
    assert "rtmw/deleted_long_ago.py" not in names
    assert "rtmw/runtimes/rknn_worker.py" in names and "rtmw/bench/gates.toml" in names
