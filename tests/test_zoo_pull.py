"""rtmw-zoo pull against a real HTTP server on 127.0.0.1 that serves a fixture checkpoint,
a truncated body, a wrong file and a 404: the first source that delivers the right bytes
wins, a truncated transfer resumes (HTTP Range) from the next source, the sha256 is checked
in full, and nothing partial ever takes the final name."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner
from conftest import small_demo

from rtmw.errors import RtmwError, UsageError
from rtmw.models.download import DownloadFailed, pull
from rtmw.models.zoo import SMALL_DEMO_NAME, get_config

FIXTURE = small_demo().read_bytes()  # the packaged small demo: its full sha256 is pinned
FILE_NAME = get_config(SMALL_DEMO_NAME).official.file_name  # type: ignore[union-attr]


class _Handler(BaseHTTPRequestHandler):
    """/good/ serves the fixture (with Range), /trunc/ announces it whole and sends half,
    /wrong/ serves other bytes, anything else is a 404."""

    ranges: ClassVar[list[str | None]] = []

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        kind = self.path.strip("/").split("/", 1)[0]
        _Handler.ranges.append(self.headers.get("Range") if kind == "good" else None)
        if kind not in ("good", "trunc", "wrong") or not self.path.endswith(".pth"):
            self.send_error(404, "not here")
            return
        body = FIXTURE if kind != "wrong" else FIXTURE[::-1]
        start = 0
        asked = self.headers.get("Range")
        if asked and kind == "good":
            start = int(asked.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if kind == "trunc":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture()
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.ranges = []
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_first_mirror_that_delivers_wins_and_a_truncated_body_resumes(
    server: str, tmp_path: Path
) -> None:
    mirrors = [f"{server}/missing", f"{server}/wrong", f"{server}/trunc", f"{server}/good"]
    result = pull(SMALL_DEMO_NAME, tmp_path, mirrors, timeout=10)
    assert result.path == tmp_path / FILE_NAME
    assert result.path.read_bytes() == FIXTURE
    assert result.sha256 == hashlib.sha256(FIXTURE).hexdigest()
    assert result.source == f"{server}/good/{FILE_NAME}"
    assert result.verified.startswith("full sha256")
    assert [a.split(": ", 1)[1].split(" ")[0] for a in result.attempts] == ["HTTP", "wrong",
                                                                            "body"]  # fmt: skip
    # the good mirror was asked only for what the truncated one did not deliver
    assert _Handler.ranges[-1] == f"bytes={len(FIXTURE) // 2}-"
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]  # no .part left


def test_a_failed_pull_leaves_no_final_file_and_the_next_one_resumes(
    server: str, tmp_path: Path
) -> None:
    with pytest.raises(DownloadFailed, match="no source delivered") as failed:
        pull(SMALL_DEMO_NAME, tmp_path, [f"{server}/trunc"], timeout=10)
    assert "bytes kept to resume" in str(failed.value)
    assert not (tmp_path / FILE_NAME).exists()
    part = tmp_path / f".{FILE_NAME}.part"
    assert part.stat().st_size == len(FIXTURE) // 2
    result = pull(SMALL_DEMO_NAME, tmp_path, [f"{server}/good"], timeout=10)
    assert result.path.read_bytes() == FIXTURE and not part.exists()
    assert _Handler.ranges[-1] == f"bytes={len(FIXTURE) // 2}-"
    again = pull(SMALL_DEMO_NAME, tmp_path, [f"{server}/good"], timeout=10)
    assert again.source == "already present"


def test_wrong_bytes_never_take_the_final_name(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadFailed, match="wrong file"):
        pull(SMALL_DEMO_NAME, tmp_path, [f"{server}/wrong", f"{server}/missing"], timeout=10)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / FILE_NAME).write_bytes(b"someone else's file")
    with pytest.raises(DownloadFailed, match="never overwrites"):
        pull(SMALL_DEMO_NAME, tmp_path, [f"{server}/good"], timeout=10)
    assert (tmp_path / FILE_NAME).read_bytes() == b"someone else's file"


def test_a_prefix_only_pin_is_never_taken_for_a_full_one(server: str, tmp_path: Path) -> None:
    """Official files carry only an 8-hex prefix of their sha256 in the name: a pull refuses
    to pass that off as verification unless told, and then says so in its result."""
    with pytest.raises(UsageError, match="only the 8-hex prefix 13a2546d"):
        pull("rtmw-x-256x192", tmp_path, [f"{server}/good"], official=False)
    with pytest.raises(UsageError, match="no sha256 is known"):
        pull("rtmw-m-256x192", tmp_path, [f"{server}/good"], official=False)
    with pytest.raises(UsageError, match="64 hex digits"):
        pull("rtmw-m-256x192", tmp_path, [f"{server}/good"], official=False, sha256="abc")
    # a digest the user trusts stands in for the unknown one; served under rtmw-m's name
    digest = hashlib.sha256(FIXTURE).hexdigest()
    result = pull("rtmw-m-256x192", tmp_path, [f"{server}/good"], official=False,
                  sha256=digest, timeout=10)  # fmt: skip
    assert result.sha256 == digest and result.verified == "full sha256, given"
    with pytest.raises(RtmwError, match="unknown RTMW configuration"):
        pull("rtmw-q-256x192", tmp_path, [f"{server}/good"])


def test_cli_says_where_it_came_from_or_one_error_line(server: str, tmp_path: Path) -> None:
    from rtmw.cli.zoo import main

    args = ["pull", SMALL_DEMO_NAME, "--mirror", f"{server}/missing", "--mirror",
            f"{server}/good", "--out", str(tmp_path), "-q"]  # fmt: skip
    ok = CliRunner().invoke(main, args)
    assert ok.exit_code == 0, ok.output
    assert f"from {server}/good/{FILE_NAME}" in ok.output and "HTTP 404" in ok.output
    bad = CliRunner().invoke(main, ["pull", SMALL_DEMO_NAME, "--mirror", f"{server}/missing",
                                    "--out", str(tmp_path / "other"), "-q"])  # fmt: skip
    assert bad.exit_code == 1
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "HTTP 404" in lines[0]
    listed = CliRunner().invoke(main, ["list"])
    assert "rtmw-x-256x192" in listed.output and "prefix 13a2546d only" in listed.output
