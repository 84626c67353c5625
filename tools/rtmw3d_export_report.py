"""results/rtmw3d-export/: random-init RTMW3D-l/x in mmpose's layout, exported to the CPU
targets with all three outputs verified against torch.

Random weights give flat logits: FP32/FP16 artifacts are verified output by output
(max|Δ| of simcc_x/y/z, argmax agreement, decoded z error where peaks are clear); INT8
artifacts of random weights cannot be told apart from a broken quantisation, so they are
exported ``--latency-only`` (opened, run, three outputs of torch's shapes, finite) and say
so. The calibration set is 288×384 crops of synthetic 3D figures.

A float target whose accuracy verification fails is recorded with its figures and then
exported again ``--latency-only``, so the table shows both the failure and that the graph
itself runs with three outputs. Rows of an earlier run (export.json) are kept unless this
run exports the same model and target again; each row names its host.

    .venv/bin/python tools/rtmw3d_export_report.py --out results/rtmw3d-export
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

FLOAT_TARGETS = ("onnx", "onnx-fp16", "openvino-fp32", "openvino-fp16", "openvino-bf16",
                 "ncnn-fp32", "ncnn-fp16", "litert-fp32", "executorch-fp32", "torch")  # fmt: skip
INT8_TARGETS = ("ort-int8", "openvino-int8", "ncnn-int8", "litert-int8", "executorch-int8")


def _row(model: str, result: object, seconds: float) -> dict[str, Any]:
    from rtmw.export import ExportResult

    assert isinstance(result, ExportResult)
    v = result.verification or {}
    return {
        "model": model, "target": result.target, "status": str(result.status.value),
        "reason": result.reason, "seconds": round(seconds, 1), "size_mb": round(result.size_mb, 1),
        "mode": v.get("mode"), "max_abs_diff": [v.get(f"max_abs_diff_{a}") for a in "xyz"],
        "argmax_xy": v.get("argmax_agreement"), "argmax_z": v.get("argmax_agreement_z"),
        "depth_m_p99": v.get("depth_m_p99"), "output_shapes": v.get("output_shapes"),
    }  # fmt: skip


def _write(root: Path, host: str, rows: list[dict[str, Any]]) -> None:
    """export.json and README.md: this run's rows over an earlier run's other rows."""
    done = {(r["model"], r["target"]) for r in rows}
    earlier = root / "export.json"
    kept = []
    if earlier.is_file():
        old = json.loads(earlier.read_text())
        kept = [{"host": old.get("host"), **r} for r in old["rows"]
                if (r["model"], r["target"]) not in done]  # fmt: skip
    order = {t: i for i, t in enumerate(FLOAT_TARGETS + INT8_TARGETS)}
    rows = sorted(kept + rows, key=lambda r: (r["model"], order.get(r["target"], 99)))
    hosts = sorted({str(r["host"]) for r in rows})
    record = {"host": host if len(hosts) == 1 else hosts, "rows": rows}
    root.mkdir(parents=True, exist_ok=True)
    (root / "export.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = [
        "# RTMW3D-l/x: export to the CPU targets, three outputs verified",
        "",
        f"Host: {'; '.join(hosts)}. Random-init checkpoints in mmpose's layout "
        "(`rtmw.models.build(name, seed=0)` + `save_checkpoint`), loaded strictly by "
        "`rtmw-export`. Reproduce: `.venv/bin/python tools/rtmw3d_export_report.py`.",
        "",
        "| model | target | status | s | MB | verified | max abs diff x / y / z | "
        "argmax x,y | argmax z | z p99 (mm) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diffs = r["max_abs_diff"]
        diff_text = (" / ".join("–" if d is None else f"{d:.2g}" for d in diffs)
                     if r["mode"] == "accuracy" else "–")  # fmt: skip
        shapes = r["output_shapes"]
        mode = ("structure: " + ", ".join(f"{k} {v}" for k, v in shapes.items())
                if r["mode"] == "latency-only" and shapes else r["mode"] or "–")  # fmt: skip
        z_p99 = r["depth_m_p99"]
        status = f"{r['status']} {r['reason']}".strip().replace("|", "\\|")  # in a table cell
        if len(hosts) > 1:
            status += f" ({r['host']})"
        lines.append(
            f"| {r['model']} | {r['target']} | {status} | {r['seconds']} | "
            f"{r['size_mb']} | {mode} | {diff_text} | "
            f"{'–' if r['argmax_xy'] is None else format(r['argmax_xy'], '.1%')} | "
            f"{'–' if r['argmax_z'] is None else format(r['argmax_z'], '.1%')} | "
            f"{'–' if z_p99 is None else format(float(z_p99) * 1000, '.1f')} |"
        )
    lines += ["", "Random weights: FP16's argmax may differ where logits are flat; the pass "
              "criteria are the precision's tolerances (rtmw.harness.verify). INT8 rows are "
              "latency-only by design (see the module docstring). A float row that failed its "
              "accuracy check is followed by the same target exported latency-only.",
              ""]  # fmt: skip
    (root / "README.md").write_text("\n".join(lines))


@click.command()
@click.option("--models", default="rtmw3d-l-384x288,rtmw3d-x-384x288", show_default=True)
@click.option("--targets", default=",".join(FLOAT_TARGETS + INT8_TARGETS), show_default=True)
@click.option("--out", default="results/rtmw3d-export", show_default=True)
def main(models: str, targets: str, out: str) -> None:
    from rtmw.calib import build_calibration_set, save_calibration_set
    from rtmw.data.synthetic import make_dataset
    from rtmw.export import export
    from rtmw.host import cpu_fingerprint, describe
    from rtmw.models import build, save_checkpoint

    root = Path(out)
    work = root / "_work"
    train = make_dataset(work / "data", 40, 707, split="train", depth=True, progress=False)
    calib = build_calibration_set(train.image_dir, input_size=(288, 384), ann_file=train.ann_file,
                                  n=64, seed=0, progress=False)  # fmt: skip
    calib_path = save_calibration_set(calib, work / "calib-288x384.npz")
    host = describe(cpu_fingerprint())
    rows: list[dict[str, Any]] = []
    wanted = targets.split(",")
    for model in models.split(","):
        checkpoint = save_checkpoint(build(model, seed=0), work / f"{model}-random.pth")
        for target in wanted:
            int8 = target in INT8_TARGETS
            for latency_only in (int8, True):
                started = time.perf_counter()
                (result,) = export(checkpoint, [target], work / model, overwrite=True,
                                   calib=calib_path if int8 else None,
                                   latency_only=latency_only)  # fmt: skip
                row = _row(model, result, time.perf_counter() - started)
                rows.append({**row, "host": host})
                print(model, result.line(), flush=True)
                _write(root, host, rows)  # after every row: a killed run keeps what it did
                failed_check = (result.status.value == "failed"
                                and "verification failed" in result.reason)  # fmt: skip
                if latency_only or not failed_check:
                    break
                rows[-1]["mode"] = "accuracy"
                _write(root, host, rows)
                print(model, target, "again latency-only after the failed accuracy check")
    _write(root, host, rows)
    print(root / "README.md")


if __name__ == "__main__":
    main()
