"""The base install (``pip install rtmw``, no extras) keeps working: run by ``make
test-base-install`` in a venv of its own.

Checks that no optional backend is importable there, that the package imports, that
``rtmw-export --list`` names every target, and that asking for a target whose extra is
missing ends with one line naming the extra and exit code 3, no traceback, no artifact
(only the run's log, rtmw-export.log).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

OPTIONAL = ("onnx", "onnxruntime", "openvino", "ncnn", "MNN", "onnxruntime_qnn", "rknnlite",
            "litert_torch", "ai_edge_litert", "executorch", "tensorrt", "xtcocotools",
            "matplotlib")  # fmt: skip
TARGET_EXTRA = {"litert-fp32": "litert", "executorch-fp32": "executorch", "onnx": "onnx",
                "openvino-fp32": "openvino-runtime", "ncnn-fp32": "ncnn", "mnn-fp32": "mnn",
                "qnn-w8a16": "onnx", "rknn-fp16": "rknn"}  # fmt: skip


def main() -> int:
    present = [m for m in OPTIONAL if find_spec(m) is not None]
    if present:
        print(f"not a base install: {present} are importable")
        return 1
    import rtmw.bench
    import rtmw.export
    import rtmw.runtimes  # noqa: F401 - importing is the check
    from rtmw.models import demo_checkpoint

    bin_dir = Path(sys.executable).parent
    listed = subprocess.run([bin_dir / "rtmw-export", "--list"], capture_output=True, text=True)
    if listed.returncode != 0 or not all(t in listed.stdout for t in TARGET_EXTRA):
        print(f"rtmw-export --list failed ({listed.returncode}): {listed.stderr.strip()}")
        return 1
    failures = 0
    for target, extra in TARGET_EXTRA.items():
        with tempfile.TemporaryDirectory() as out:
            run = subprocess.run(
                [bin_dir / "rtmw-export", str(demo_checkpoint()), "--target", target,
                 "--out", out, "-q"], capture_output=True, text=True,
            )  # fmt: skip
            said = (run.stdout + run.stderr).strip()
            # the run's log (what happened, for -v readers) is not an artifact
            made = [p.name for p in Path(out).iterdir() if p.name != "rtmw-export.log"]
        ok = run.returncode == 3 and f"rtmw[{extra}]" in said and "Traceback" not in said
        ok = ok and not made
        first = said.splitlines()[0] if said else ""
        print(f"{'ok  ' if ok else 'FAIL'} {target}: exit {run.returncode}: {first}")
        failures += not ok
    print(f"base install: {len(TARGET_EXTRA) - failures} of {len(TARGET_EXTRA)} checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
