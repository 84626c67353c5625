"""The demo's person-detector stage: what the detector costs a frame, and the pose.

The packaged demo detector (RTMDet-nano's layout, trained with ``rtmw-train`` on synthetic
frames) is exported to FP32 and INT8 targets (INT8 calibrated on letterboxed whole frames
of the training split, ``rtmw-calib --frames``'s code), benchmarked on the validation
split (box AP, frames/s, per-stage times), and the demo pose model is scored on each
detector artifact's boxes next to its score on ground-truth boxes, part by part: the AP
points a real detector costs the pose.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rtmw.bench.entry import ResultsDocument
from rtmw.bench.report import render
from rtmw.bench.run import BenchSettings, bench
from rtmw.calib import save_calibration_set
from rtmw.calib.calibset import build_frame_calibration_set
from rtmw.data.synthetic import SyntheticDataset
from rtmw.export import ExportResult, export
from rtmw.keypoints import PARTS
from rtmw.markdown import table

Say = Callable[[str], None]

DEMO_DETECTOR = "rtmdet-nano-demo"
# FP32 and the INT8 route of two CPU runtime families (the quick demo); --all adds the rest
DETECTOR_TARGETS = ("onnx", "ort-int8", "openvino-fp32", "openvino-int8")
DETECTOR_TARGETS_FULL = (*DETECTOR_TARGETS, "onnx-fp16", "openvino-fp16", "ncnn-fp32",
                         "ncnn-int8", "torch")  # fmt: skip
FRAME_CALIB_N = 64


def pose_on_detector_boxes(
    pose_artifact: Path, detections: dict[str, Path], val: SyntheticDataset, *, flip: bool
) -> dict[str, dict[str, float]]:
    """The pose model's per-part AP on each detector's boxes (name → part → AP)."""
    from rtmw import runtimes
    from rtmw.data.evalset import load_eval_set
    from rtmw.harness import run_accuracy

    scores: dict[str, dict[str, float]] = {}
    with runtimes.open(pose_artifact) as runtime:
        size = runtime.artifact.manifest.input_size
        for name, det_file in detections.items():
            eval_set = load_eval_set(val.image_dir, val.ann_file, det_file)
            run = run_accuracy(runtime.infer, size, eval_set, flip=flip)
            scores[name] = {part: m.ap for part, m in run.evaluation.parts.items()}
    return scores


def _markdown(run: ResultsDocument, gt_ap: dict[str, float],
              on_boxes: dict[str, dict[str, float]]) -> str:  # fmt: skip
    entries = {e.name: e for e in run.entries}
    header = ["Boxes from", "box AP", "AP50", "frames/s", *PARTS]
    rows: list[list[str]] = [["ground truth", "–", "–", "–", *(f"{100 * gt_ap[p]:.1f}"
                                                                for p in PARTS)]]  # fmt: skip
    for name, parts in on_boxes.items():
        det = entries[name].detection or {}
        rate = entries[name].frames_per_s
        rows.append([
            f"demo detector {name}", f"{100 * det.get('ap', 0):.1f}",
            f"{100 * det.get('ap50', 0):.1f}", "–" if rate is None else f"{rate:.1f}",
            *(f"{100 * parts[p]:.1f} ({100 * (parts[p] - gt_ap[p]):+.1f})" for p in PARTS),
        ])  # fmt: skip
    return (
        "# The demo pose model on the demo detector's boxes\n\n"
        "Per-part COCO-WholeBody AP (points) of the pose model's FP32 artifact (onnx, flip "
        "test) on the validation split, with ground-truth person boxes and with each detector "
        "artifact's boxes (mmdet's decode, then mmpose's demo hand-off: score > 0.3, NMS 0.3); in "
        "brackets the change against ground-truth boxes. Box AP: COCO person box AP of the "
        "detector on the same images. frames/s: one frame end to end (letterbox, inference, "
        "decode), batch 1.\n\n" + "\n".join(table(header, rows)) + "\n"
    )


def run_detector_stage(
    out: Path, train: SyntheticDataset, val: SyntheticDataset, pose_artifact: Path,
    gt_ap: dict[str, float], bench_settings: BenchSettings, *, full: bool, calib_seed: int,
    say: Say,
) -> tuple[list[ExportResult], ResultsDocument, dict[str, Any]]:  # fmt: skip
    """Export, bench and score the demo detector; writes OUT/detector/ and detector.md."""
    from rtmw.models.detector_checkpoint import demo_detector_checkpoint

    targets = DETECTOR_TARGETS_FULL if full else DETECTOR_TARGETS
    say(f"== person detector: {DEMO_DETECTOR} to {', '.join(targets)} (INT8 calibrated on "
        f"{FRAME_CALIB_N} letterboxed training frames)")  # fmt: skip
    frames = build_frame_calibration_set(train.image_dir, input_size=(320, 320),
                                         ann_file=train.ann_file, n=FRAME_CALIB_N,
                                         seed=calib_seed)  # fmt: skip
    calib = save_calibration_set(frames, out / "calib-frames.npz")
    folder = out / "detector"
    made = export(demo_detector_checkpoint(), list(targets), folder / "artifacts",
                  overwrite=True, progress=True, calib=calib)  # fmt: skip
    for result in made:
        say("  " + result.line())
    paths = [r.path for r in made if r.path is not None]
    settings = replace(bench_settings, reference=None, draw=0, det_file=None)
    run = bench(list(paths), settings, folder, name="demo-detector")
    render([run], folder)
    detections = {e.name: folder / e.detection["handoff"]["file"]
                  for e in run.entries if e.ok and e.detection}  # fmt: skip
    say(f"== the pose model on each detector's boxes ({len(detections)} detector artifacts)")
    on_boxes = pose_on_detector_boxes(pose_artifact, detections, val, flip=settings.flip)
    (out / "detector.md").write_text(_markdown(run, gt_ap, on_boxes))
    record = {"gt_boxes": gt_ap, "detector_boxes": on_boxes,
              "box_ap": {e.name: e.detection for e in run.entries if e.detection}}  # fmt: skip
    (out / "detector.json").write_text(json.dumps(record, indent=1) + "\n")
    return made, run, record
