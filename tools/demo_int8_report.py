"""results/demo-training/int8.md: the demo model's INT8 drop per part, per target, per policy.

The data and calibration of ``make gate-demo`` (100 held-out synthetic images, seed 303;
96 crops from 60 training images, seed 304), then ``rtmw-bench gate`` of every INT8
target (and onnx-fp16) against the FP32 ONNX, once per INT8 policy.

    .venv/bin/python tools/demo_int8_report.py --out results/demo-training
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

TARGETS = "onnx-fp16,ort-int8,openvino-int8,ncnn-int8,litert-int8,executorch-int8"
PARTS = ("body", "foot", "face", "lefthand", "righthand", "wholebody")


def _cli(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@click.command()
@click.option("--checkpoint", default=None, help="Default: the packaged demo model.")
@click.option("--policies", default="head-fp32,head-neck-fp32", show_default=True)
@click.option("--out", default="results/demo-training", show_default=True)
def main(checkpoint: str | None, policies: str, out: str) -> None:
    from rtmw.data.synthetic import make_dataset
    from rtmw.models import demo_checkpoint

    ckpt = checkpoint or str(demo_checkpoint())
    root = Path(out)
    work = root / "_int8"
    val = make_dataset(work / "data", 100, 303, split="val", progress=False)
    train = make_dataset(work / "data", 60, 304, split="train", progress=False)
    calib = work / "calib.npz"
    subprocess.run(
        [
            _cli("rtmw-calib"),
            "--images",
            str(train.image_dir),
            "--ann",
            str(train.ann_file),
            "--n",
            "96",
            "--out",
            str(calib),
            "--quiet",
        ],
        check=True,
    )
    sections = []
    for policy in policies.split(","):
        gate_dir = work / policy
        done = subprocess.run(
            [
                _cli("rtmw-bench"),
                "gate",
                ckpt,
                "--targets",
                TARGETS,
                "--int8-policy",
                policy,
                "--budgets",
                ".ci/gates-demo.toml",
                "--calib",
                str(calib),
                "--images",
                str(val.image_dir),
                "--ann",
                str(val.ann_file),
                "--out",
                str(gate_dir),
                "-q",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        results = json.loads((gate_dir / "bench" / "results.json").read_text())
        entries = {e["name"]: e for e in results["entries"]}
        fp32 = entries["onnx"]["accuracy"]["parts"]
        rows = [
            "| target | " + " | ".join(PARTS) + " | gate |",
            "|---|" + "---|" * (len(PARTS) + 1),
        ]
        rows.append(
            "| onnx (FP32 reference) | "
            + " | ".join(f"{100 * fp32[p]['ap']:.1f}" for p in PARTS)
            + " | – |"
        )
        verdicts = {
            line.split("|")[1].strip(): line
            for line in done.stdout.splitlines()
            if line.startswith("| ") and "| fail |" in line
        }
        for name in TARGETS.split(","):
            entry = entries.get(name)
            if entry is None or entry.get("status") != "ok":
                rows.append(f"| {name} | " + " | ".join("–" for _ in PARTS) + " | not run |")
                continue
            parts = entry["accuracy"]["parts"]
            cells = [
                f"{100 * parts[p]['ap']:.1f} ({100 * (parts[p]['ap'] - fp32[p]['ap']):+.1f})"
                for p in PARTS
            ]
            rows.append(
                f"| {name} | "
                + " | ".join(cells)
                + f" | {'FAIL' if name in verdicts else 'pass'} |"
            )
        # the gate's report, without the quantisers' chatter printed before it
        report = done.stdout[done.stdout.find("#") :] if "#" in done.stdout else done.stdout
        (root / f"int8-gate-{policy}.md").write_text(report)
        sections.append(
            f"## `--int8-policy {policy}`: gate {'PASS' if done.returncode == 0 else 'FAIL'}\n\n"
            + "\n".join(rows)
        )
    text = (
        "# The demo model under INT8, per part\n\n"
        f"`{Path(ckpt).name}`; AP in % on 100 held-out synthetic images (seed 303), GT boxes, "
        "flip test; in brackets the change against the FP32 ONNX artifact. Calibration: 96 "
        "person crops from 60 synthetic training images (seed 304). Gate budgets: "
        "`.ci/gates-demo.toml` (the defaults); every check per part: `int8-gate-<policy>.md`. "
        "Made by `tools/demo_int8_report.py`.\n\n" + "\n\n".join(sections) + "\n"
    )
    (root / "int8.md").write_text(text)
    click.echo(text)
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
