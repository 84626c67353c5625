"""Rockchip's toolkit in its own environment: build an RKNN model, serve its simulator.

rknn-toolkit2 2.5 pins torch ≤ 2.4, numpy ≤ 1.26.4, onnx ≤ 1.18 and protobuf ≤ 4.25.4,
which rtmw's environment cannot share, so the toolkit runs in a venv of its own
(``make rknn-toolchain``) and this file is its whole interface: a script with no rtmw
import, driven by a JSON job.

    python rknn_worker.py build JOB.json    # → the .rknn file and a JSON line of details
    python rknn_worker.py serve JOB.json    # rebuilds, then answers "infer IN.npz OUT.npz"

The simulator (``init_runtime(target=None)``) runs a model right after it is built, not a
loaded .rknn file, so ``serve`` rebuilds the artifact's model from the ONNX and settings
the artifact carries (the build is deterministic: the same calibration files, the same
float16 layers).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _toolkit() -> Any:
    from rknn.api import RKNN

    return RKNN(verbose=False)


def _quiet() -> contextlib.AbstractContextManager[Any]:
    return contextlib.redirect_stdout(io.StringIO())


def _configured(job: dict[str, Any]) -> Any:
    rknn = _toolkit()
    channels = job["input_shape"][1]
    rknn.config(mean_values=[[0.0] * channels], std_values=[[1.0] * channels],
                target_platform=job["platform"], quantized_dtype="w8a8",
                quantized_method="channel" if job.get("per_channel", True) else "layer",
                float_dtype="float16")  # fmt: skip
    return rknn


LAYER = re.compile(r"^    (['\"]?)(.+?)\1:\s*$")


def keep_float(config: Path, float_tensors: list[str]) -> list[str]:
    """Mark float16 in step 1's ``.quantization.cfg`` every layer of the toolkit's graph
    that computes one of ``float_tensors`` (ONNX names of the tensors the policy's nodes
    compute and read).

    The toolkit renames what its graph passes make (``…_output_0_tp-rs``, ``…_mm``,
    ``…_tile0_conv``), keeping the ONNX tensor name as the prefix: the layers are found
    by that prefix in the toolkit's own list, never passed as ONNX names."""
    text = config.read_text()
    head, sep, listing = text.partition("quantize_parameters:")
    if not sep or "custom_quantize_layers: {}" not in head:
        raise RuntimeError(f"rknn: {config.name} is not in the layout step 1 writes")
    layers = [m.group(2) for m in map(LAYER.match, listing.splitlines()) if m]
    wanted = tuple(float_tensors)
    kept = [name for name in layers if name.startswith(wanted) and not name.endswith("_int8")]
    if not kept:
        raise RuntimeError("rknn: none of the policy's tensors is a layer of the toolkit's graph")
    entries = "".join(f"    '{name}': float16\n" for name in kept)
    head = head.replace("custom_quantize_layers: {}\n", "custom_quantize_layers:\n" + entries)
    config.write_text(head + sep + listing)
    return kept


def build(job: dict[str, Any], work: Path) -> tuple[Any, dict[str, Any]]:
    """The model of ``job`` built (FP16, INT8, or INT8 with float16 layers)."""
    rknn = _configured(job)
    shape = job["input_shape"]
    if rknn.load_onnx(model=job["onnx"], inputs=[job["input_name"]], input_size_list=[shape]):
        raise RuntimeError("rknn: load_onnx failed")
    details: dict[str, Any] = {"platform": job["platform"]}
    if not job["quantize"]:
        if rknn.build(do_quantization=False):
            raise RuntimeError("rknn: build failed")
        details["quantized"] = "none (float16)"
        return rknn, details
    float_tensors = list(job.get("float_tensors", []))
    if not float_tensors:
        if rknn.build(do_quantization=True, dataset=job["dataset"]):
            raise RuntimeError("rknn: INT8 build failed")
        details["quantized"] = "w8a8, every layer"
        return rknn, details
    cwd = Path.cwd()
    os.chdir(work)  # step 1 writes its files into the working directory
    try:
        if rknn.hybrid_quantization_step1(dataset=job["dataset"], proposal=False):
            raise RuntimeError("rknn: hybrid quantisation step 1 failed")
        stem = Path(job["onnx"]).stem
        config = Path(f"{stem}.quantization.cfg")
        kept = keep_float(config, float_tensors)
        rknn.release()
        rknn = _configured(job)  # step 2 starts from step 1's files, in a fresh toolkit
        if rknn.hybrid_quantization_step2(
            model_input=f"{stem}.model",
            data_input=f"{stem}.data",
            model_quantization_cfg=str(config),
        ):
            raise RuntimeError("rknn: hybrid quantisation step 2 failed")  # fmt: skip
    finally:
        os.chdir(cwd)
    details["quantized"] = "w8a8, float16 layers (hybrid quantisation)"
    details["float_layers"] = len(kept)
    return rknn, details


def main(argv: list[str]) -> int:
    command, job_file = argv[1], Path(argv[2])
    job = json.loads(job_file.read_text())
    work = Path(job["work"])
    work.mkdir(parents=True, exist_ok=True)
    with _quiet():
        rknn, details = build(job, work)
    if command == "build":
        with _quiet():
            if rknn.export_rknn(job["out"]):
                raise RuntimeError("rknn: export_rknn failed")
        details["sdk"] = "rknn-toolkit2 " + _version()
        print(json.dumps(details))
        return 0
    with _quiet():
        if rknn.init_runtime(target=None):
            raise RuntimeError("rknn: the simulator did not start")
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        batch = np.load(words[1])["input"]
        with _quiet():
            outputs = [rknn.inference(inputs=[batch[i : i + 1]], data_format="nchw")
                       for i in range(len(batch))]  # fmt: skip
        joined = {f"out{k}": np.concatenate([o[k] for o in outputs]).astype(np.float32)
                  for k in range(len(outputs[0]))}  # fmt: skip
        np.savez(words[2], **joined)  # type: ignore[arg-type]
        print("done", flush=True)
    rknn.release()
    return 0


def _version() -> str:
    from importlib.metadata import version

    return version("rknn-toolkit2")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
