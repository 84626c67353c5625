"""The aarch64 lane: every verdict x86 gives the demo model's artifacts, given again on
AArch64 cores under user-mode emulation, through the same runtime adapters and gates.

Phones and boards run other kernels with other defaults (ncnn's FP16 arithmetic on
ARMv8.2 cores, onnxruntime's bf16 fast-math GEMM switch, XNNPACK's FP16 path, OpenVINO's
ARM plugin defaulting to f16). The lane runs in three steps, each on the host it names:

1. ``prepare`` (x86, with torch): a small held-out synthetic set, a calibration set, the
   demo model exported to every target an AArch64 wheel exists for, and the torch
   reference outputs of the verification inputs (``reference.npz``), so that the check
   against torch can be repeated where torch is not installed;
2. ``run`` (on each host: x86 itself, then an emulated ARMv8.0 core and an emulated
   phone-class core — qemu-user with an arm64 Debian Python, ``tools/arm_lane.sh``): each
   artifact verified again against the stored torch outputs with its own tolerances,
   what its runtime runs in read back, every artifact benched for accuracy on the held-out
   set against the FP32 ONNX reference of the same host, and gated;
3. ``report`` (anywhere): per runtime and precision, the verdicts of every host next to
   x86's, and every difference named.

Timings under emulation are not speeds: the lane times nothing (its bench scores accuracy
only), and every host record says whether it was emulated.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rtmw.artifact import read_artifact
from rtmw.bench.run import BenchSettings, bench
from rtmw.errors import RtmwError
from rtmw.harness.verify import Tolerances, compare
from rtmw.host import cpu_fingerprint, describe
from rtmw.markdown import table as markdown_table
from rtmw.outputs import ModelOutputs

logger = logging.getLogger(__name__)
Say = Callable[[str], None]

# every target whose runtime publishes an aarch64 wheel (ExecuTorch's Python runtime needs
# torch, ~700 MB under emulation: left out, said in the report)
LANE_TARGETS = (
    "onnx", "onnx-fp16", "ort-int8",
    "openvino-fp32", "openvino-fp16", "openvino-int8",
    "ncnn-fp32", "ncnn-fp16", "ncnn-int8",
    "litert-fp32", "litert-fp16", "litert-int8",
    "mnn-fp32", "mnn-fp16", "qnn-w8a16",
)  # fmt: skip
NOT_IN_LANE = {"executorch-*": "ExecuTorch's Python runtime needs torch (~700 MB, emulated)"}
REFERENCE = "onnx"  # the FP32 route every host gates the others against
# the default budgets, judged over the lane's few images: a px check needs 20 judged
# keypoints of a part here instead of 100 (the same on every host; verdicts are compared)
LANE_PX_MIN_KEYPOINTS = 20
# the emulated cores: a plain ARMv8.0 core and a phone-class ARMv9 core (Cortex-A710:
# FP16 arithmetic, dot product, i8mm, bf16, SVE2)
ARM_CORES = {"armv8.0-a53": "cortex-a53", "armv9-a710": "cortex-a710"}
LANE_IMAGES = 12
DATA_SEED, CALIB_SEED = 707, 708


def prepare(out: Path, *, checkpoint: Path | None = None, images: int = LANE_IMAGES,
            targets: Sequence[str] = LANE_TARGETS, say: Say = logger.info) -> Path:  # fmt: skip
    """Data, artifacts and torch reference outputs for the lane (x86, torch installed)."""
    from rtmw.calib import build_calibration_set, save_calibration_set
    from rtmw.data.synthetic import make_dataset
    from rtmw.export import export, get_target, unavailable_reason
    from rtmw.models import SMALL_DEMO_NAME, demo_checkpoint

    checkpoint = checkpoint or demo_checkpoint(SMALL_DEMO_NAME)
    out.mkdir(parents=True, exist_ok=True)
    data = make_dataset(out / "data", images, DATA_SEED, split="val", progress=False)
    train = make_dataset(out / "calib-data", 40, CALIB_SEED, split="train", progress=False)
    calib = build_calibration_set(train.image_dir, input_size=(192, 256), ann_file=train.ann_file,
                                  n=64, progress=False)  # fmt: skip
    calib_path = save_calibration_set(calib, out / "calib.npz")
    if REFERENCE not in targets:
        targets = [REFERENCE, *targets]
    targets = [t for t in targets if unavailable_reason(get_target(t)) is None]
    say(f"lane: exporting {len(targets)} targets of {checkpoint.name}")
    # the small demo model's 1/8-width neck needs float under INT8 too (docs/gates.md)
    made = export(checkpoint, targets, out / "artifacts", overwrite=True, calib=calib_path,
                  int8_policy="head-neck-fp32")  # fmt: skip
    for result in made:
        say("  " + result.line())
    _reference_outputs(checkpoint, calib_path, out / "reference.npz")
    (out / "lane.json").write_text(json.dumps({
        "checkpoint": str(checkpoint), "images": data.num_images,
        "image_dir": str(data.image_dir.relative_to(out)),
        "ann_file": str(data.ann_file.relative_to(out)),
        "targets": [r.target for r in made if r.path is not None],
        "export_failures": {r.target: r.reason for r in made if r.path is None},
    }, indent=1) + "\n")  # fmt: skip
    return out


def _reference_outputs(checkpoint: Path, calib_path: Path, destination: Path) -> None:
    """The verification inputs every export uses and torch's outputs on them."""
    from rtmw.calib import load_calibration_set
    from rtmw.export.quant_policy import VERIFY_HOLDOUT
    from rtmw.harness.verify import verification_inputs
    from rtmw.models.checkpoint import load_checkpoint
    from rtmw.models.inference import TorchInference

    model, config = load_checkpoint(checkpoint)
    inputs = verification_inputs(config.input_size)
    inputs["calib_holdout"] = load_calibration_set(calib_path).split(VERIFY_HOLDOUT)[1]
    torch_run = TorchInference(model)
    arrays: dict[str, np.ndarray] = {}
    for name, batch in inputs.items():
        arrays[f"{name}/input"] = batch
        for output, value in torch_run(batch).items():
            arrays[f"{name}/{output}"] = value
    np.savez_compressed(destination, **arrays)  # type: ignore[arg-type]


class _StoredReference:
    """torch's stored outputs, handed back for the very inputs they were computed on."""

    def __init__(self, stored: Any, names: Sequence[str]) -> None:
        self.stored, self.names = stored, list(names)

    def __call__(self, batch: np.ndarray) -> ModelOutputs:
        for name in self.names:
            if np.array_equal(self.stored[f"{name}/input"], batch):
                prefix = f"{name}/"
                return ModelOutputs(
                    {
                        key[len(prefix) :]: self.stored[key]
                        for key in self.stored.files
                        if key.startswith(prefix) and key != f"{name}/input"
                    }
                )
        raise RtmwError("the lane's reference has no outputs for this input batch")  # fmt: skip


def verify_here(artifact_dir: Path, reference: Path) -> dict[str, Any]:
    """The export's check against torch, repeated on this host from stored torch outputs,
    with the artifact's own tolerances and inputs (INT8: real crops, no noise)."""
    from rtmw import runtimes

    artifact = read_artifact(artifact_dir)
    manifest = artifact.manifest
    stored = np.load(reference)
    names = ["persons", "calib_holdout"] if manifest.precision == "int8" else [
        "random", "persons"]  # fmt: skip
    inputs = {n: stored[f"{n}/input"] for n in names}
    recorded = manifest.verification.get("tolerances") or {}
    tolerances = Tolerances(**{k: v for k, v in recorded.items()
                               if k in Tolerances.__dataclass_fields__})  # fmt: skip
    try:
        runner = runtimes.open(artifact, device="cpu")
    except RtmwError as exc:
        return {"passed": False, "opened": False, "failures": [str(exc).splitlines()[0]]}
    try:
        try:
            report = compare(runner.infer, _StoredReference(stored, names), inputs, tolerances,
                             split_ratio=manifest.simcc_split_ratio)  # fmt: skip
        except Exception as exc:  # the runtime failed to run it here: that is the verdict
            return {"passed": False, "opened": True, "ran": False, "device": runner.device,
                    "execution": dict(runner.execution),
                    "failures": [f"inference failed: {_first_words(exc)}"]}  # fmt: skip
        return {"passed": report.passed, "opened": True, "device": runner.device,
                "execution": dict(runner.execution), "max_rel_diff": report.max_rel_diff,
                "argmax_agreement": report.argmax_agreement,
                "keypoint_px_p99": report.keypoint_px_p99,
                "failures": list(report.failures)}  # fmt: skip
    finally:
        runner.close()


def _first_words(exc: BaseException) -> str:
    """A backend's exception in one line: its type and its first lines that say something."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {' | '.join(lines[:3])[:300]}"


def run(lane: Path, label: str, *, say: Say = logger.info) -> Path:
    """Verify, bench and gate every lane artifact on this host; ``runs/<label>.json``."""
    from rtmw.bench.gate import gate, load_budgets
    from rtmw.bench.report import load_results

    start = time.monotonic()
    record = json.loads((lane / "lane.json").read_text())
    host = cpu_fingerprint()
    say(f"lane run '{label}' on {describe(host)}")
    artifacts = [lane / "artifacts" / t for t in record["targets"]]
    verdicts: dict[str, Any] = {}
    for path in artifacts:
        verdicts[path.name] = {"verification": verify_here(path, lane / "reference.npz")}
        check = verdicts[path.name]["verification"]
        say(f"  {path.name:<14} verification {'PASS' if check['passed'] else 'FAIL'}"
            f"  {check.get('device', '')}  {'; '.join(check['failures'])[:120]}")  # fmt: skip
    out = lane / "runs" / label
    settings = BenchSettings(
        batches=(1,), image_dir=str(lane / record["image_dir"]),
        ann_file=str(lane / record["ann_file"]), flip=False, draw=0,
        reference=str(lane / "artifacts" / REFERENCE), accuracy_only=True,
    )  # fmt: skip
    opened = [p for p in artifacts if verdicts[p.name]["verification"].get("opened")
              and verdicts[p.name]["verification"].get("ran", True)]  # fmt: skip
    bench(opened, settings, out, name=f"lane-{label}", progress=False)
    candidates = [p.name for p in opened if p.name != REFERENCE]
    results = load_results(out / "results.json")
    budgets = load_budgets()
    budgets["defaults"]["px_min_keypoints"] = LANE_PX_MIN_KEYPOINTS
    result = gate(results, results, budgets, candidates=candidates)
    for name in candidates:
        checks = [c for c in result.checks if c.candidate == name]
        failed = [f"{c.part} {c.metric}" for c in checks if not c.passed]
        verdicts[name]["gate"] = {"passed": bool(checks) and not failed, "failed": failed,
                                  "checks": len(checks)}  # fmt: skip
        say(f"  {name:<14} gate {'PASS' if verdicts[name]['gate']['passed'] else 'FAIL'}"
            f"  {', '.join(failed)[:120]}")  # fmt: skip
    document = {"label": label, "host": host, "machine": platform.machine(),
                "seconds": round(time.monotonic() - start, 1), "verdicts": verdicts}  # fmt: skip
    path = lane / "runs" / f"{label}.json"
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
    return path


def report(lane: Path, labels: Sequence[str], reference_label: str = "x86") -> str:
    """Markdown: per artifact, each host's verification and gate verdicts beside x86's."""
    runs = {label: json.loads((lane / "runs" / f"{label}.json").read_text()) for label in
            [reference_label, *labels]}  # fmt: skip
    base = runs[reference_label]["verdicts"]
    header = ["artifact", *(f"{label}: verify / gate" for label in runs), "runs in (ARM)",
              "same as x86"]  # fmt: skip
    body, differences, unexplained = [], [], 0
    for name in base:
        cells, same = [], True
        for label, document in runs.items():
            verdict = document["verdicts"].get(name, {})
            cells.append(f"{_word(verdict.get('verification'))} / {_word(verdict.get('gate'))}")
            if label != reference_label and _key(verdict) != _key(base[name]):
                same = False
                because = explanation(verdict, base[name])
                unexplained += because is None
                differences.append(f"- {name} on {label}: {_why(verdict, base[name])} — "
                                   + (because or "**not explained**"))  # fmt: skip
        ran = {label: d["verdicts"].get(name, {}).get("verification", {}).get("device") or "–"
               for label, d in runs.items() if label != reference_label}  # fmt: skip
        # one cell: the device where every ARM host agrees, else each host's
        arm = (next(iter(ran.values())) if len(set(ran.values())) == 1
               else "; ".join(f"{label}: {device}" for label, device in ran.items()))  # fmt: skip
        body.append([name, *cells, arm, "yes" if same else "**no**"])
    hosts = [f"- {label}: {describe(d['host'])}; lane time {d['seconds'] / 60:.1f} min"
             for label, d in runs.items()]  # fmt: skip
    images = json.loads((lane / "lane.json").read_text())["images"]
    lines = [
        "# The aarch64 lane: every verdict on ARM next to x86's",
        "",
        *hosts,
        "",
        "verify: the export's check against torch repeated on the host (stored torch outputs, "
        "the artifact's tolerances); gate: per-part AP drop and keypoint error against the "
        f"FP32 ONNX run on the same host ({REFERENCE}), default budgets (a px check needs "
        f"{LANE_PX_MIN_KEYPOINTS} judged keypoints), {images} held-out synthetic images, "
        "no flip. No timing under emulation is a speed.",
        "",
        *markdown_table(header, body),
        "",
        "Differences from x86: "
        + ("none." if not differences else f"{len(differences)}, {unexplained} not explained."),
        *differences,
        "",
        *(f"Not in the lane: {k}: {v}." for k, v in NOT_IN_LANE.items()),
    ]
    return "\n".join(lines) + "\n"


def explanation(arm: dict[str, Any], x86: dict[str, Any]) -> str | None:
    """Why a verdict differs, when the records say: the contract made the ARM core compute
    in another precision, or refused to run there. None: nothing recorded explains it."""
    mine = arm.get("verification") or {}
    theirs = x86.get("verification") or {}
    mine_ran, x86_ran = mine.get("execution") or {}, theirs.get("execution") or {}
    ran_in, x86_in = mine_ran.get("contract"), x86_ran.get("contract")
    if not mine.get("opened", True):
        return "explained: refused here, not run (the runtime cannot honour the contract)"
    if ran_in and x86_in and ran_in != x86_in and mine.get("ran", True):
        return f"explained: computed in {ran_in} on this core (the contract), {x86_in} on x86"
    # the same contract, but the runtime stored other tensors in fp16 here (ncnn's per-ISA
    # fp16 storage), as both records report
    stored = mine_ran.get("reported", {}).get("fp16_storage_layers")
    x86_stored = x86_ran.get("reported", {}).get("fp16_storage_layers")
    if stored and x86_stored and stored != x86_stored:
        return (f"explained: the same contract ({ran_in}), but fp16 storage covers other layers "
                f"here ({stored}) than on x86 ({x86_stored})")  # fmt: skip
    return None  # e.g. a runtime that fails here in the same precision: a finding


def unexplained_differences(text: str) -> bool:
    return "**not explained**" in text


def _word(verdict: dict[str, Any] | None) -> str:
    if verdict is None:
        return "–"
    return "PASS" if verdict.get("passed") else "FAIL"


def _key(verdict: dict[str, Any]) -> tuple[bool | None, bool | None]:
    return ((verdict.get("verification") or {}).get("passed"),
            (verdict.get("gate") or {}).get("passed"))  # fmt: skip


def _why(arm: dict[str, Any], x86: dict[str, Any]) -> str:
    parts = []
    for step in ("verification", "gate"):
        mine, theirs = arm.get(step) or {}, x86.get(step) or {}
        if mine.get("passed") != theirs.get("passed"):
            detail = "; ".join(map(str, mine.get("failures") or mine.get("failed") or []))
            parts.append(f"{step} {_word(mine)} vs {_word(theirs)} on x86 "
                         f"({detail[:200] or 'no failure listed'})")  # fmt: skip
    return "; ".join(parts)
