"""Rockchip RKNN adapter: the NPU through ``rknn-toolkit-lite2`` on a board, or
rknn-toolkit2's simulator on an x86 host.

``npu``: ``RKNNLite`` loads ``model.rknn`` and runs it on the NPU's cores (auto core
mask); a host without an RKNPU driver fails ``init_runtime``, which is refused as
:class:`DeviceUnavailable`, never run elsewhere. ``simulator``: the toolkit lives in an
environment of its own (torch ≤ 2.4 and numpy ≤ 1.26 pinned), so a worker process there
(:mod:`rtmw.runtimes.rknn_worker`) rebuilds the artifact's model from what it carries and
answers inferences through files; a simulator's timings are not the NPU's.

Precision: the NPU computes float16 (``rknn-fp16``, and the float subgraphs of
``rknn-int8``, whose manifest says ``float_parts: fp16``); there is no f32 to pin.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np

from rtmw.errors import DeviceUnavailable, RtmwError
from rtmw.optional import import_backend
from rtmw.runtimes.base import Runtime, register_runtime

RKNN_FILE = "model.rknn"
ONNX_FILE = "model_fixed.onnx"
JOB_FILE = "rknn_job.json"
CALIB_FILE = "calibration.npz"
WORKER = Path(__file__).with_name("rknn_worker.py")
# the toolkit's native error lines: 'E RKNN: [03:08:49.402] REGTASK: …'
ERROR_LINE = re.compile(r"E RKNN: \[[0-9:.]+\] (.*)$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
TOOLCHAIN_VENV = ".venv-rknn"


def rknn_python() -> Path | None:
    """The python of rknn-toolkit2's environment: ``RTMW_RKNN_PYTHON``, else
    ``.venv-rknn`` in the working directory or beside this checkout."""
    named = os.environ.get("RTMW_RKNN_PYTHON")
    if named:
        return Path(named) if Path(named).exists() else None
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base / TOOLCHAIN_VENV / "bin" / "python"
        if candidate.exists():
            return candidate
    return None


def toolchain_missing() -> str | None:
    """Why rknn-* cannot be built here, or None."""
    if rknn_python() is None:
        return ("rknn-toolkit2 is not set up: it needs an environment of its own "
                "(make rknn-toolchain, or RTMW_RKNN_PYTHON=/path/to/its/python)")  # fmt: skip
    return None


def _worker_job(artifact: Path, out: Path | None, work: Path) -> Path:
    """The artifact's build settings plus this run's paths (and its calibration files)."""
    job: dict[str, Any] = json.loads((artifact / JOB_FILE).read_text())
    work.mkdir(parents=True, exist_ok=True)
    job.update({"onnx": str(artifact / ONNX_FILE), "work": str(work),
                "out": str(out) if out is not None else ""})  # fmt: skip
    if job.get("quantize"):
        crops = np.load(artifact / CALIB_FILE)["crops"]
        listing = work / "dataset.txt"
        lines = []
        for index, crop in enumerate(crops):
            path = work / f"crop{index:03d}.npy"
            np.save(path, crop[None].astype(np.float32))
            lines.append(str(path))
        listing.write_text("\n".join(lines) + "\n")
        job["dataset"] = str(listing)
    path = work / "job.json"
    path.write_text(json.dumps(job))
    return path


def run_worker(command: str, artifact: Path, out: Path, work: Path) -> dict[str, Any]:
    """``build``: the .rknn of ``artifact``'s settings into ``out``; returns its details."""
    python = rknn_python()
    if python is None:
        raise RtmwError(toolchain_missing() or "rknn-toolkit2 missing")
    job = _worker_job(artifact, out, work)
    done = subprocess.run([str(python), "-P", str(WORKER), command, str(job)], capture_output=True,
                          text=True, timeout=1800, check=False)  # fmt: skip
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RtmwError(f"rknn-toolkit2 {command} failed: {' | '.join(tail)[:400]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    details = dict(json.loads(lines[-1])) if lines else {}
    details["toolkit_errors"] = toolkit_errors(done.stdout + done.stderr)
    return details


def toolkit_errors(log: str) -> list[dict[str, Any]]:
    """The distinct 'E RKNN:' lines of a toolkit run (timestamps dropped) and their counts."""
    found = (ERROR_LINE.search(ANSI.sub("", line)) for line in log.splitlines())
    counts = Counter(match.group(1).strip() for match in found if match)
    return [{"message": message, "count": count} for message, count in counts.items()]


@register_runtime
class RknnRunner(Runtime):
    name = "rknn"
    format = "rknn"
    extra = "rknn"
    packages: ClassVar[tuple[str, ...]] = ("rknn-toolkit-lite2", "rknn-toolkit2")
    devices: ClassVar[tuple[str, ...]] = ("npu", "simulator")

    def _activate_impl(self) -> str:
        if self.requested_device == "simulator":
            return self._start_simulator()
        lite: Any = import_backend("rknnlite.api", "rknn")
        runner = lite.RKNNLite(verbose=False)
        if runner.load_rknn(str(self.artifact.file(RKNN_FILE))) != 0:
            raise DeviceUnavailable("rknn: RKNNLite could not load model.rknn")
        if runner.init_runtime(core_mask=lite.RKNNLite.NPU_CORE_AUTO) != 0:
            raise DeviceUnavailable("rknn: no RKNPU here (init_runtime failed): not run elsewhere")
        self._lite = runner
        platform = self.artifact.manifest.options.get("platform", "?")
        self.execution["reported"] = {"device": "npu", "platform": platform}
        return f"npu ({platform}, {self.execution_precision})"

    def _start_simulator(self) -> str:
        python = rknn_python()
        if python is None:
            raise DeviceUnavailable(f"rknn simulator: {toolchain_missing()}")
        self._work = Path(tempfile.mkdtemp(prefix="rtmw-rknn-"))
        job = _worker_job(self.artifact.path, None, self._work / "build")
        self._process = subprocess.Popen(
            [str(python), "-P", str(WORKER), "serve", str(job)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self._await("ready")
        platform = self.artifact.manifest.options.get("platform", "?")
        self.execution["reported"] = {"device": "simulator", "platform": platform}
        return f"simulator (rknn-toolkit2, {platform}, {self.execution_precision}; not NPU timings)"

    def _await(self, word: str) -> None:
        stream: IO[str] | None = self._process.stdout
        assert stream is not None
        for line in stream:
            if line.strip() == word:
                return
        raise DeviceUnavailable(f"rknn simulator: the worker ended before '{word}'")

    def _infer_impl(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.requested_device != "simulator":
            outputs = self._lite.inference(inputs=[batch], data_format="nchw")
            return tuple(np.asarray(o, np.float32) for o in outputs)
        given, taken = self._work / "in.npz", self._work / "out.npz"
        np.savez(given, input=batch)
        assert self._process.stdin is not None
        self._process.stdin.write(f"infer {given} {taken}\n")
        self._process.stdin.flush()
        self._await("done")
        with np.load(taken) as found:
            return tuple(np.array(found[f"out{k}"]) for k in range(len(found.files)))

    def _close_impl(self) -> None:
        if self.requested_device != "simulator":
            self._lite.release()
            return
        if self._process.stdin is not None:
            self._process.stdin.write("quit\n")
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
        shutil.rmtree(self._work, ignore_errors=True)
