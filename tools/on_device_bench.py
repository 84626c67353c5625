"""Latency of the phone routes (LiteRT, ExecuTorch) next to ncnn and the onnxruntime
baseline, for one published configuration (random init, exported latency-only).

    python tools/on_device_bench.py --model rtmw-m-256x192 \
        --out results/cpu-rtmw-m-256x192-on-device
"""

from __future__ import annotations

from pathlib import Path

import click

from rtmw.workflows.baseline import BaselineSettings, bench_model

TARGETS = ("onnx", "ncnn-fp32", "ncnn-fp16", "ncnn-int8", "litert-fp32", "litert-fp16",
           "litert-int8", "executorch-fp32", "executorch-int8")  # fmt: skip


@click.command()
@click.option("--model", default="rtmw-m-256x192", show_default=True)
@click.option("--threads", default=2, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--work", default="results/_scratch/on-device", show_default=True)
def main(model: str, threads: int, out: str, work: str) -> None:
    settings = BaselineSettings(batches=(1, 8), threads=threads, stream_frames=0)
    run = bench_model(model, Path(out), Path(work) / model, settings, targets=TARGETS,
                      say=click.echo)  # fmt: skip
    bad = [e["name"] for e in run["entries"] if e["status"] != "ok"]
    click.echo(f"{len(run['entries']) - len(bad)} ok" + (f", failed: {bad}" if bad else ""))


if __name__ == "__main__":
    main()
