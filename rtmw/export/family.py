"""What differs between model families at export (optimum's "export config" per model):
the manifest's family fields, the verification inputs, and how outputs are compared.

Pose models (RTMW, RTMW3D) compare SimCC logits and decoded keypoints
(:func:`rtmw.harness.verify.compare`). Person detectors (RTMDet) compare every head output
by name and the boxes decoded from them (:func:`compare_detections`): box IoU and score
agreement on letterboxed synthetic frames and on noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from rtmw.boxes import box_iou
from rtmw.harness.verify import (
    Tolerances,
    VerificationReport,
    _Report,
    _run_both,
    _shape_mismatch,
    compare,
    per_output,
    verification_inputs,
)
from rtmw.models import ModelConfig, RTMDetConfig
from rtmw.pipeline import DepthCodec, InferFn
from rtmw.pipeline.detect import (
    DecodeSettings,
    Detections,
    DetectorSpec,
    Letterbox,
    decode_detections,
    letterbox,
)
from rtmw.schemas import VerificationMode


@dataclass(frozen=True)
class BoxTolerances:
    """How far a detector's decoded boxes may move: the share of reference boxes that must
    find a candidate of their class with IoU ≥ ``min_iou`` and |Δ score| ≤ ``max_score_diff``."""

    min_matched: float
    min_iou: float
    max_score_diff: float
    # whether the largest output error (relative to the output's range) is gated too: INT8
    # moves logits far below any threshold freely, so there only the boxes are judged
    gate_output_error: bool = True


BOX_TOLERANCES: dict[str, BoxTolerances] = {
    "fp32": BoxTolerances(min_matched=0.97, min_iou=0.95, max_score_diff=0.01),
    "fp16": BoxTolerances(min_matched=0.90, min_iou=0.90, max_score_diff=0.05),
    # bf16 (8 mantissa bits) moves class logits far below any threshold by more than the
    # pose tolerance (demo detector: 5.6e-2 rel with 98.3% of the boxes matched): boxes judged
    "bf16": BoxTolerances(
        min_matched=0.85, min_iou=0.85, max_score_diff=0.08, gate_output_error=False
    ),
    "int8": BoxTolerances(
        min_matched=0.70, min_iou=0.70, max_score_diff=0.15, gate_output_error=False
    ),
}
# the boxes verification judges: what a deployment keeps (score ≥ 0.05, the best 100 per
# frame), not the 0.001 tail AP evaluation keeps
VERIFY_DECODE = DecodeSettings(score_thr=0.05, nms_pre=1000, iou_thr=0.65, max_per_img=100)


@dataclass
class DetectionReport(_Report):
    MODE: ClassVar[str] = VerificationMode.ACCURACY.value
    reference: str
    inputs: dict[str, int]
    max_rel_diff: float
    finite: bool
    reference_boxes: int
    candidate_boxes: int
    matched: float
    iou_p50: float | None
    iou_min: float | None
    score_diff_p99: float | None
    tolerances: dict[str, float]
    outputs: dict[str, dict[str, float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        iou = "–" if self.iou_p50 is None else f"{self.iou_p50:.3f}"
        return (
            f"max rel |Δ| {self.max_rel_diff:.2e}, boxes matched {self.matched:.1%} of "
            f"{self.reference_boxes} (IoU p50 {iou}, score |Δ| p99 "
            f"{'–' if self.score_diff_p99 is None else f'{self.score_diff_p99:.3g}'})"
        )


def detector_spec(config: RTMDetConfig) -> DetectorSpec:
    return DetectorSpec.from_record(config.detector_record, config.input_size)


def detector_inputs(config: RTMDetConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded noise (batch 2) and three letterboxed synthetic frames of people."""
    from rtmw.data.synthetic import render_image

    width, height = config.input_size
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((2, 3, height, width)).astype(np.float32)
    spec = detector_spec(config)
    frames = []
    for index in range(3):
        image, _, _ = render_image(np.random.default_rng([seed, 2000 + index]), index + 2, 1)
        frames.append(letterbox(image, spec)[0])
    return {"random": noise, "frames": np.concatenate(frames)}


def _match(
    ref: Detections, cand: Detections, tolerances: BoxTolerances
) -> tuple[int, list[float], list[float]]:
    """(matched count, best IoU per reference box, |Δ score| per matched box)."""
    matched = 0
    ious: list[float] = []
    score_diffs: list[float] = []
    if not len(ref):
        return 0, ious, score_diffs
    overlap = box_iou(ref.boxes, cand.boxes) if len(cand) else np.zeros((len(ref), 0))
    for i in range(len(ref)):
        same = cand.labels == ref.labels[i] if len(cand) else np.zeros(0, bool)
        row = np.where(same, overlap[i], -1.0) if len(cand) else overlap[i]
        best = int(np.argmax(row)) if row.size else -1
        iou = float(row[best]) if best >= 0 else 0.0
        ious.append(max(iou, 0.0))
        if best >= 0 and iou >= tolerances.min_iou:
            diff = abs(float(cand.scores[best]) - float(ref.scores[i]))
            score_diffs.append(diff)
            matched += diff <= tolerances.max_score_diff
    return matched, ious, score_diffs


def compare_detections(
    candidate: InferFn,
    reference: InferFn,
    inputs: dict[str, np.ndarray],
    tolerances: Tolerances,
    boxes: BoxTolerances,
    spec: DetectorSpec,
    *,
    reference_name: str = "torch fp32",
) -> DetectionReport:
    """Every head output by name (max|Δ| relative to each output's own range) and the boxes
    decoded from them with the one decode (rtmw.pipeline.detect), frame by frame."""
    counts = {k: len(v) for k, v in inputs.items()}
    cand, ref = _run_both(candidate, reference, inputs)
    mismatch = _shape_mismatch(cand, ref)
    if mismatch:
        nan = float("nan")
        return DetectionReport(reference_name, counts, nan, False, 0, 0, 0.0, None, None, None,
                               asdict(boxes), failures=[mismatch])  # fmt: skip
    stats = per_output(cand, ref, 0)
    finite = bool(all(np.isfinite(cand[name]).all() for name in cand))
    rel = max(s["max_abs_diff"] / max(s["max_abs_reference"], 1e-12) for s in stats.values())
    width, height = spec.input_size
    placed = [Letterbox(1.0, 1.0, (width, height), (width, height))] * ref.batch
    ref_dets = decode_detections(ref, spec, placed, VERIFY_DECODE)
    cand_dets = decode_detections(cand, spec, placed, VERIFY_DECODE)
    matched, total, cand_total = 0, 0, 0
    ious: list[float] = []
    diffs: list[float] = []
    for r, c in zip(ref_dets, cand_dets, strict=True):
        found, frame_ious, frame_diffs = _match(r, c, boxes)
        matched += found
        ious += frame_ious
        diffs += frame_diffs
        total += len(r)
        cand_total += len(c)
    share = matched / total if total else 1.0
    failures = []
    if not finite:
        failures.append("NaN or Inf in the outputs")
    if boxes.gate_output_error and not rel <= tolerances.max_rel_diff:
        failures.append(f"max rel |Δ| {rel:.2e} > {tolerances.max_rel_diff:.2g}")
    if share < boxes.min_matched:
        failures.append(
            f"boxes matched {share:.1%} < {boxes.min_matched:.0%} (IoU ≥ {boxes.min_iou}, "
            f"|Δ score| ≤ {boxes.max_score_diff})"
        )
    return DetectionReport(
        reference=reference_name, inputs=counts, max_rel_diff=rel, finite=finite,
        reference_boxes=total, candidate_boxes=cand_total, matched=share,
        iou_p50=float(np.median(ious)) if ious else None,
        iou_min=float(np.min(ious)) if ious else None,
        score_diff_p99=float(np.percentile(diffs, 99)) if diffs else None,
        tolerances={**asdict(boxes), "max_rel_diff": tolerances.max_rel_diff},
        outputs=stats, failures=failures,
    )  # fmt: skip


class PoseFamily:
    """RTMW / RTMW3D: SimCC outputs, keypoints decoded from them."""

    name = "pose"
    calibration_kind = "crops"

    def manifest_fields(self, config: Any) -> dict[str, Any]:
        return {"num_keypoints": config.num_keypoints,
                "simcc_split_ratio": config.simcc_split_ratio,
                "depth": config.depth_record}  # fmt: skip

    def inputs(self, config: Any) -> dict[str, np.ndarray]:
        return verification_inputs(config.input_size)

    def verify(
        self, candidate: InferFn, reference: InferFn, inputs: dict[str, np.ndarray],
        precision: str, tolerances: Tolerances, config: Any,
    ) -> VerificationReport:  # fmt: skip
        return compare(candidate, reference, inputs, tolerances,
                       depth=DepthCodec.from_dict(config.depth_record))  # fmt: skip


class DetectorFamily:
    """RTMDet: per-level class logits and box distances, boxes decoded from them."""

    name = "detect"
    calibration_kind = "frames"

    def manifest_fields(self, config: Any) -> dict[str, Any]:
        return {"num_keypoints": 0, "simcc_split_ratio": 0.0,
                "detector": dict(config.detector_record)}  # fmt: skip

    def inputs(self, config: Any) -> dict[str, np.ndarray]:
        return detector_inputs(config)

    def verify(
        self, candidate: InferFn, reference: InferFn, inputs: dict[str, np.ndarray],
        precision: str, tolerances: Tolerances, config: Any,
    ) -> DetectionReport:  # fmt: skip
        return compare_detections(candidate, reference, inputs, tolerances,
                                  BOX_TOLERANCES[precision], detector_spec(config))  # fmt: skip


Family = PoseFamily | DetectorFamily


def family_of(config: ModelConfig) -> Family:
    return DetectorFamily() if isinstance(config, RTMDetConfig) else PoseFamily()


__all__ = [
    "BOX_TOLERANCES",
    "BoxTolerances",
    "DetectionReport",
    "DetectorFamily",
    "Family",
    "PoseFamily",
    "compare_detections",
    "detector_inputs",
    "family_of",
]
