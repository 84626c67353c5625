"""What each speed lever gives on rtmw-m-256x192 (latency only), measured, one run each.

Uses the artifacts `make bench-baseline` left in results/_scratch/rtmw-m-256x192/ and
adds the ones a lever needs (ort-int8 with S8S8 activations; INT8 with the neck kept in
float). Every run benches batch 1 and 8 with the baseline's 2 threads; the summary
compares end-to-end persons/s and crops/s at batch 8 against the lever's control.
The accuracy side of the neck lever is judged on the trained demo model (one-shot gate,
synthetic data, head-fp32 vs head-neck-fp32). Writes results/cpu-rtmw-m-256x192-levers/.

    .venv/bin/python tools/speed_levers.py      # about 15 min on 2 cores
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rtmw.bench import BenchSettings, TimingPlan, bench
from rtmw.export import export, export_options
from rtmw.markdown import table

ROOT = Path(__file__).resolve().parents[1]
MODEL = "rtmw-m-256x192"
WORK = ROOT / "results" / "_scratch" / MODEL
OUT = ROOT / "results" / f"cpu-{MODEL}-levers"
PLAN = TimingPlan(warmup_s=0.5, seconds=1.5, repeats=2)
THREADS = 2


def run(name: str, artifacts: list[Path], **changes: Any) -> dict[str, Any]:
    folder = OUT / name
    if (folder / "results.json").is_file():
        return dict(json.loads((folder / "results.json").read_text()))
    settings = BenchSettings(batches=(1, 8), threads=THREADS, plan=PLAN, draw=0, **changes)
    here = [a for a in artifacts if (a / "artifact.json").is_file()]  # bf16 needs native bf16
    return bench(here, settings, folder, name=name, progress=False)


def figures(results: dict[str, Any], target: str, batch: str = "8") -> tuple[float, float]:
    entry = next(e for e in results["entries"] if e.get("target") == target or e["name"] == target)
    return entry["latency"][batch]["throughput"], entry["e2e"][batch]["persons_per_s"]


def extra_artifacts() -> dict[str, Path]:
    checkpoint = WORK / f"{MODEL}-random.pth"
    calib = WORK / "calib-192x256.npz"
    made = {}
    for folder, kwargs, targets in (
        ("s8s8", {"ort_int8_activations": "s8"}, ["ort-int8"]),
        ("neck-fp32", {"int8_policy": "head-neck-fp32"}, ["ort-int8", "openvino-int8"]),
    ):
        out = WORK / f"lever-{folder}"
        for target in targets:
            if not (out / target / "artifact.json").is_file():
                options = export_options(latency_only=True, **kwargs)
                export(checkpoint, [target], out, calib=calib, options=options)
            made[f"{folder}/{target}"] = out / target
    return made


def neck_accuracy() -> list[str]:
    """The accuracy side of the neck lever, judged on the trained demo model: the one-shot
    gate's AP drop per part for ort-int8 and openvino-int8 under each policy (synthetic
    data as `make gate-demo` makes it; calibration seed 0)."""
    from rtmw.calib import build_calibration_set, save_calibration_set
    from rtmw.data.synthetic import make_dataset
    from rtmw.keypoints import PARTS
    from rtmw.models import demo_checkpoint
    from rtmw.workflows import one_shot_gate

    work = WORK / "neck-accuracy"
    val = make_dataset(work / "data", 100, 303, split="val", progress=False)
    train = make_dataset(work / "data", 60, 304, split="train", progress=False)
    calib = save_calibration_set(
        build_calibration_set(train.image_dir, input_size=(192, 256), ann_file=train.ann_file,
                              n=96, progress=False), work / "calib.npz")  # fmt: skip
    rows = []
    for policy in ("head-fp32", "head-neck-fp32"):
        run = one_shot_gate(demo_checkpoint(), ["ort-int8", "openvino-int8"],
                            out=work / policy, image_dir=val.image_dir, ann_file=val.ann_file,
                            calib=calib, int8_policy=policy)  # fmt: skip
        for check in run.result.checks:
            if check.metric == "ap_drop" and check.value is not None:
                rows.append((policy, check.candidate, check.part, check.value, check.passed))
    header = ["Policy", "Target", *(f"AP drop {p}" for p in PARTS), "within default budgets"]
    body = []
    for policy in ("head-fp32", "head-neck-fp32"):
        for target in ("ort-int8", "openvino-int8"):
            mine = {r[2]: r for r in rows if r[0] == policy and r[1] == target}
            body.append([policy, target, *(f"{mine[p][3]:.2f}" if p in mine else "–"
                                           for p in PARTS),
                         "yes" if mine and all(r[4] for r in mine.values()) else "no"])  # fmt: skip
    return table(header, body)


def main() -> None:
    art = WORK / "artifacts"
    if not (art / "onnx").is_dir():
        sys.exit("run `make bench-baseline` first (it makes the rtmw-m artifacts)")
    OUT.mkdir(parents=True, exist_ok=True)
    extra = extra_artifacts()
    int8 = [art / "ort-int8", art / "openvino-int8"]
    rows: list[list[str]] = []

    def compare(
        lever: str, control: tuple[dict[str, Any], str], trial: tuple[dict[str, Any], str]
    ) -> None:
        (c_run, c_target), (t_run, t_target) = control, trial
        try:
            c_crops, c_e2e = figures(c_run, c_target)
            t_crops, t_e2e = figures(t_run, t_target)
        except (StopIteration, KeyError):  # not on this host, or the row failed
            rows.append([lever, c_target, "not on this host", "–", "–", "–"])
            return
        rows.append([lever, c_target, f"{c_crops:.1f} → {t_crops:.1f}", f"{t_crops / c_crops:.2f}×",
                     f"{c_e2e:.1f} → {t_e2e:.1f}", f"{t_e2e / c_e2e:.2f}×"])  # fmt: skip

    control = run("control", [art / "onnx", art / "openvino-fp32", art / "openvino-bf16", *int8])
    s8 = run("ort-s8s8", [extra["s8s8/ort-int8"]])
    compare("onnxruntime S8S8 instead of U8S8", (control, "ort-int8"), (s8, "ort-int8"))
    hint = {"openvino": {"performance_hint": "THROUGHPUT", "num_streams": "2"}}
    thr = run("openvino-throughput", [art / "openvino-fp32", art / "openvino-bf16",
              art / "openvino-int8"], runtime_options=hint)  # fmt: skip
    for target in ("openvino-fp32", "openvino-bf16", "openvino-int8"):
        compare("OpenVINO THROUGHPUT hint, 2 streams", (control, target), (thr, target))
    compare(
        "bf16 (head f32) instead of fp32", (control, "openvino-fp32"), (control, "openvino-bf16")
    )
    pin = {"openvino": {"enable_cpu_pinning": "YES"},
           "onnxruntime": {"intra_op_thread_affinities": "2"}}  # fmt: skip
    pinned = run("pinned", int8, runtime_options=pin)
    for target in ("ort-int8", "openvino-int8"):
        compare("thread pinning", (control, target), (pinned, target))
    apart = run("flip-separate", int8, flip_in_batch=False)
    for target in ("ort-int8", "openvino-int8"):
        compare("flipped crops in a second call (control: same batch)", (apart, target),
                (control, target))  # fmt: skip
    neck = run("neck-fp32", [extra["neck-fp32/ort-int8"], extra["neck-fp32/openvino-int8"]])
    for target in ("ort-int8", "openvino-int8"):
        compare("neck in float too (head-neck-fp32)", (control, target), (neck, target))
    header = ["Lever", "Route", "crops/s b8", "× control", "e2e persons/s b8", "× control"]
    text = (
        f"# Speed levers on {MODEL} (random init, latency only; {THREADS} threads, batch 8)\n\n"
        + "\n".join(table(header, rows))
        + "\n\nEach lever is one run against its control (the same artifacts without the lever, "
        "or the lever's own artifact against the default one); runs are in the folders here.\n"
    )
    neck_file = OUT / "neck-accuracy.md"
    if not neck_file.is_file():
        neck = "\n".join(neck_accuracy())
        neck_file.write_text(
            "# INT8 of the neck, judged on the trained demo model\n\n"
            "AP drop against the FP32 onnx artifact, AP points, 100 synthetic validation "
            "images, GT boxes, flip test; budgets: rtmw/bench/gates.toml (int8).\n\n" + neck + "\n"
        )
    text += "\n" + neck_file.read_text().split("\n", 2)[2]
    (OUT / "levers.md").write_text(text)
    (OUT / "levers.json").write_text(json.dumps({"rows": rows, "header": header}, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
