"""`-q` prints results and errors only: each CLI runs with -q on the demo model, in a real
subprocess (native libraries write to file descriptors, which no in-process capture sees),
and every line it prints must be one that rtmw itself echoed. What backends say (NNCF,
onnxruntime's quantiser, pnnx, ExecuTorch's cpuinfo, TFLite's delegate banner, warnings) is in
the run's log file instead."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import has_module, small_demo

pytestmark = pytest.mark.skipif(
    not (has_module("onnxruntime") and has_module("xtcocotools")),
    reason="onnxruntime and xtcocotools needed (rtmw[onnx,eval])",
)

# Runs a CLI with click.echo traced: what rtmw printed on purpose is written to TRACE.
TRACED = """
import atexit, json, sys
import click
trace, module, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
echoed = []
original = click.echo
def echo(message=None, *args, **kwargs):
    echoed.append("" if message is None else str(message))
    return original(message, *args, **kwargs)
click.echo = echo
atexit.register(lambda: open(trace, "w").write(json.dumps(echoed)))
import importlib
main = importlib.import_module(module).main
main(argv, prog_name=module, standalone_mode=True)
"""

# the chatter of the backends this test exercises, as it looked before it was captured
FOREIGN = ("INFO:nncf", "Collecting tensor data", "[cpuinfo", "XNNPACK delegate", "absl",
           "WARNING:", "Statistics collection", "pnnx")  # fmt: skip


def run_quiet(module: str, args: list[str], tmp_path: Path) -> tuple[int, list[str]]:
    trace = tmp_path / f"{module.rsplit('.', 1)[-1]}-{len(list(tmp_path.iterdir()))}.json"
    proc = subprocess.run([sys.executable, "-c", TRACED, str(trace), module, *args, "-q"],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    printed = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    ours = {
        line
        for message in json.loads(trace.read_text() if trace.exists() else "[]")
        for line in message.splitlines()
    }
    foreign = [line for line in printed if line not in ours]
    assert not foreign, f"{module} -q printed lines that are not rtmw's: {foreign[:10]}"
    return proc.returncode, printed


def test_every_cli_prints_only_its_own_lines_with_q(tmp_path: Path) -> None:
    from rtmw.data.synthetic import make_dataset

    data = make_dataset(tmp_path / "data", 24, seed=41, split="train", progress=False)
    val = make_dataset(tmp_path / "data", 4, seed=42, split="val", progress=False)
    calib = tmp_path / "calib.npz"
    args = ["--images", str(data.image_dir), "--ann", str(data.ann_file), "--n", "32",
            "--out", str(calib)]  # fmt: skip
    code, printed = run_quiet("rtmw.cli.calib", args, tmp_path)
    assert code == 0 and calib.is_file() and printed

    targets = ["onnx", "ort-int8"]
    targets += ["openvino-int8"] if has_module("openvino") and has_module("nncf") else []
    targets += ["ncnn-fp32"] if has_module("ncnn") and has_module("pnnx") else []
    targets += ["litert-fp32"] if has_module("ai_edge_litert") else []
    targets += ["executorch-fp32"] if has_module("executorch") else []
    out = tmp_path / "artifacts"
    code, printed = run_quiet("rtmw.cli.export", [str(small_demo()), "--targets",
                              ",".join(targets), "--calib", str(calib), "--out", str(out)],
                              tmp_path)  # fmt: skip
    assert code == 0, printed
    assert sum(line.split()[0] in targets and " ok " in line for line in printed) == len(targets)
    log = (out / "rtmw-export.log").read_text()
    if "openvino-int8" in targets:
        assert "nncf" in log  # what -q kept off the console is in the run's log
    assert "Collecting tensor data" in log

    code, printed = run_quiet("rtmw.cli.bench", ["run", str(out), "--iters", "2", "--repeats",
                              "1", "--warmup", "0", "--images", str(val.image_dir), "--ann",
                              str(val.ann_file), "--reference", str(out / "onnx"), "--out",
                              str(tmp_path / "bench")], tmp_path)  # fmt: skip
    assert code == 0 and any(line.startswith("bench: ") for line in printed), printed
    if "executorch-fp32" in targets:
        assert "cpuinfo" in (tmp_path / "bench" / "rtmw-bench.log").read_text()

    code, printed = run_quiet("rtmw.cli.inspect", [str(small_demo())], tmp_path)
    assert code == 0 and printed
    results = str(tmp_path / "bench" / "results.json")
    code, printed = run_quiet("rtmw.cli.bench", ["gate", "--reference", results, "--candidate",
                              results, "--entries", "ort-int8"], tmp_path)  # fmt: skip
    assert code in (0, 1) and printed
    assert not [line for line in printed if line.startswith(FOREIGN)]


@pytest.mark.skipif(not (has_module("openvino") and has_module("nncf")),
                    reason="openvino and nncf needed (rtmw[openvino])")  # fmt: skip
def test_backend_records_reach_the_console_with_v(tmp_path: Path) -> None:
    """NNCF prints through a stdout handler of its own, installed when nncf is imported
    (after the CLI set logging up): it is adopted at that import, so with -v its records
    are on the console (and in the log), and with -q only in the log."""
    from rtmw.calib import build_calibration_set, save_calibration_set
    from rtmw.data.synthetic import make_dataset

    data = make_dataset(tmp_path / "data", 24, seed=43, split="train", progress=False)
    calib = save_calibration_set(
        build_calibration_set(data.image_dir, input_size=(192, 256), ann_file=data.ann_file,
                              n=32, progress=False), tmp_path / "calib.npz",
    )  # fmt: skip
    out = tmp_path / "v"
    args = [str(Path(sys.executable).parent / "rtmw-export"), str(small_demo()), "--targets",
            "openvino-int8", "--calib", str(calib), "--out", str(out), "-v"]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if line.startswith("INFO nncf")]
    assert console, proc.stderr[-2000:]
    assert "INFO nncf:" in (out / "rtmw-export.log").read_text()
