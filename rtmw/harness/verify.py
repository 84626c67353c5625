"""Compare an exported artifact with the torch model it came from (per-output tolerances).

Inputs are seeded random tensors at a batch size other than the export's (so the
dynamic axis is really exercised) plus person crops from synthetic whole-body images
made by :mod:`rtmw.pipeline`. Every figure is computed and recorded before deciding,
and a failure lists all checks that missed, not only the first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from rtmw.keypoints import PART_SLICES
from rtmw.pipeline import SIMCC_X, SIMCC_Y, SIMCC_Z, DepthCodec, InferFn, ModelOutputs, as_outputs
from rtmw.pipeline.decode import decode_simcc
from rtmw.schemas import VerificationMode


@dataclass(frozen=True)
class Tolerances:
    """Thresholds for one precision. ``max_rel_diff`` is max|Δ| over max|reference|."""

    max_rel_diff: float
    min_argmax_agreement: float
    max_keypoint_px_p99: float
    # argmax counts as agreeing within this many SimCC bins (2 bins = 1 crop pixel):
    # INT8 moves peaks by a bin or two where FP32/FP16 keep them exactly
    argmax_window: int = 0


DEFAULT_TOLERANCES: dict[str, Tolerances] = {
    "fp32": Tolerances(max_rel_diff=1e-3, min_argmax_agreement=0.97, max_keypoint_px_p99=1.0),
    "fp16": Tolerances(max_rel_diff=3e-2, min_argmax_agreement=0.85, max_keypoint_px_p99=4.0),
    # bf16 keeps 8 mantissa bits (fp16 keeps 11): the backbone's rounding is ~8x larger
    # (measured rel 1.3e-2 on the demo model, 2.7e-2 on rtmw-m); the head stays f32.
    # Argmax must agree within ±1 bin (half a crop pixel).
    "bf16": Tolerances(
        max_rel_diff=4e-2, min_argmax_agreement=0.85, max_keypoint_px_p99=4.0, argmax_window=1
    ),
    "int8": Tolerances(
        max_rel_diff=0.5, min_argmax_agreement=0.70, max_keypoint_px_p99=16.0, argmax_window=4
    ),
}


class _Report:
    """What both kinds of verification report share: failures decide, the mode is named."""

    MODE: ClassVar[str]
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)  # type: ignore[call-overload]
        data["mode"] = self.MODE
        data["passed"] = self.passed
        return dict(data)


@dataclass
class VerificationReport(_Report):
    MODE: ClassVar[str] = VerificationMode.ACCURACY.value
    reference: str
    inputs: dict[str, int]
    max_abs_diff_x: float
    max_abs_diff_y: float
    max_rel_diff: float
    argmax_agreement: float
    keypoint_px_p50: float | None  # None: no clear reference peak to judge keypoints on
    keypoint_px_p99: float | None
    clear_peaks: int
    finite: bool
    tolerances: dict[str, float]
    failures: list[str] = field(default_factory=list)
    # decoded-keypoint error per body part over all keypoints (crop pixels): what a user
    # sees move; the pass/fail p99 above uses clear peaks only
    keypoint_px_per_part: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # RTMW3D's third output: z logits' max|Δ|, argmax agreement, decoded z error (depth
    # pixels of the codec, and metres); None for 2D models
    max_abs_diff_z: float | None = None
    argmax_agreement_z: float | None = None
    depth_px_p50: float | None = None
    depth_px_p99: float | None = None
    depth_m_p99: float | None = None
    clear_peaks_z: int | None = None
    depth_m_per_part: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # every output the manifest names: max|Δ|, reference max|value|, argmax agreement
    outputs: dict[str, dict[str, float]] = field(default_factory=dict)

    def summary(self) -> str:
        z = ""
        if self.max_abs_diff_z is not None and self.argmax_agreement_z is not None:
            z = f", z max|Δ| {self.max_abs_diff_z:.3g} argmax {self.argmax_agreement_z:.1%}"
            if self.depth_m_p99 is not None:
                z += f" p99 {self.depth_m_p99 * 1000:.1f} mm"
        return (
            f"max|Δ| x {self.max_abs_diff_x:.3g} y {self.max_abs_diff_y:.3g} "
            f"(rel {self.max_rel_diff:.2e}), argmax {self.argmax_agreement:.1%}, "
            + (
                f"kp p50/p99 {self.keypoint_px_p50:.2f}/{self.keypoint_px_p99:.2f} px "
                f"on {self.clear_peaks} clear peaks"
                if self.keypoint_px_p50 is not None and self.keypoint_px_p99 is not None
                else f"kp {format_px(None)}"
            )
            + z
        )


def format_px(value: float | None) -> str:
    """Keypoint error for humans; None means nothing could be judged, not zero error."""
    return "– (no clear peak)" if value is None else f"{value:.2f} px"


def verification_inputs(input_size: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random tensors (batch 3) and realistic person crops (synthetic images)."""
    from rtmw.data.synthetic import render_image
    from rtmw.pipeline.preprocess import preprocess

    width, height = input_size
    rng = np.random.default_rng(seed)
    random = rng.standard_normal((3, 3, height, width)).astype(np.float32)
    crops = []
    for index in range(3):
        image, anns, _ = render_image(np.random.default_rng([seed, 1000 + index]), index + 1, 1)
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)])
        if len(boxes):
            crops.append(preprocess(image, boxes, input_size).inputs)
    persons = np.concatenate(crops) if crops else np.zeros((0, 3, height, width), np.float32)
    return {"random": random, "persons": persons[:8]}


def clear_peaks(reference: np.ndarray, min_gap: float, window: int = 3) -> np.ndarray:
    """Where the reference maximum leads every bin outside ±``window`` by ``min_gap``.

    With ``min_gap`` twice the allowed logit error, a candidate within tolerance cannot
    move such an argmax beyond the window; elsewhere (flat logits of random weights)
    the argmax is a coin toss and keypoint distances say nothing about the export.
    """
    top = reference.argmax(-1)
    positions = np.arange(reference.shape[-1])
    near = np.abs(positions[None, None, :] - top[..., None]) <= window
    others = np.where(near, -np.inf, reference).max(-1)
    result: np.ndarray = reference.max(-1) - others >= min_gap
    return result


def _run_both(
    candidate: InferFn, reference: InferFn, inputs: dict[str, np.ndarray]
) -> tuple[ModelOutputs, ModelOutputs]:
    """Both models on every non-empty input batch: (candidate outputs, reference outputs),
    each joined per output name over all inputs."""
    cand: list[ModelOutputs] = []
    ref: list[ModelOutputs] = []
    for batch in inputs.values():
        if len(batch):
            cand.append(as_outputs(candidate(batch)))
            ref.append(as_outputs(reference(batch)))
    return ModelOutputs.concatenate(cand), ModelOutputs.concatenate(ref)


def _shape_mismatch(cand: ModelOutputs, ref: ModelOutputs) -> str | None:
    """Why the candidate's outputs cannot be compared with the reference's, if they cannot:
    other names, another order, or another shape of any one output."""
    if cand.names != ref.names:
        return f"outputs {', '.join(cand.names)} differ from the reference's {', '.join(ref.names)}"
    differing = [
        f"{n} {cand[n].shape} vs {ref[n].shape}" for n in cand if cand[n].shape != ref[n].shape
    ]
    return f"output shapes differ: {'; '.join(differing)}" if differing else None


def per_output(cand: ModelOutputs, ref: ModelOutputs, window: int) -> dict[str, dict[str, float]]:
    """For every output name: max|Δ|, the reference's max|value|, and how often the
    argmax over the last axis agrees within ``window`` bins (what any head's logits show)."""
    stats: dict[str, dict[str, float]] = {}
    for name in ref:
        c, r = cand[name], ref[name]
        agree = np.abs(c.argmax(-1) - r.argmax(-1)) <= window
        stats[name] = {
            "max_abs_diff": float(np.abs(c - r).max()),
            "max_abs_reference": float(np.abs(r).max()),
            "argmax_agreement": float(np.mean(agree)),
        }
    return stats


def _per_part(errors: np.ndarray) -> dict[str, dict[str, float | None]]:
    per_part: dict[str, dict[str, float | None]] = {}
    for part, part_slice in PART_SLICES.items():
        values = errors[:, part_slice].ravel()
        per_part[part] = {
            "p50": float(np.percentile(values, 50)) if values.size else None,
            "p99": float(np.percentile(values, 99)) if values.size else None,
            "n": float(values.size),
        }
    return per_part


def _failures(
    finite: bool, rel: float, agree: float, p99: float | None, tolerances: Tolerances,
    *, agree_z: float | None = None, depth_p99: float | None = None,
) -> list[str]:  # fmt: skip
    """Every check that missed, not only the first."""
    failures = []
    if not finite:
        failures.append("NaN or Inf in the outputs")
    if not rel <= tolerances.max_rel_diff:
        failures.append(f"max rel |Δ| {rel:.2e} > {tolerances.max_rel_diff:.2g}")
    within = f" (±{tolerances.argmax_window} bins)" if tolerances.argmax_window else ""
    if not agree >= tolerances.min_argmax_agreement:
        failures.append(
            f"argmax agreement{within} {agree:.1%} < {tolerances.min_argmax_agreement:.0%}"
        )
    if p99 is not None and not p99 <= tolerances.max_keypoint_px_p99:
        failures.append(f"keypoint p99 {p99:.2f} px > {tolerances.max_keypoint_px_p99} px")
    if agree_z is not None and not agree_z >= tolerances.min_argmax_agreement:
        failures.append(
            f"z argmax agreement{within} {agree_z:.1%} < {tolerances.min_argmax_agreement:.0%}"
        )
    # the codec treats depth as a third pixel axis: the same pixel tolerance applies
    if depth_p99 is not None and not depth_p99 <= tolerances.max_keypoint_px_p99:
        failures.append(
            f"decoded z p99 {depth_p99:.2f} depth px > {tolerances.max_keypoint_px_p99} px"
        )
    return failures


def compare(
    candidate: InferFn,
    reference: InferFn,
    inputs: dict[str, np.ndarray],
    tolerances: Tolerances,
    *,
    split_ratio: float = 2.0,
    reference_name: str = "torch fp32",
    depth: DepthCodec | None = None,
) -> VerificationReport:
    counts = {k: len(v) for k, v in inputs.items()}
    cand, ref = _run_both(candidate, reference, inputs)
    mismatch = _shape_mismatch(cand, ref)
    if mismatch or not {SIMCC_X, SIMCC_Y} <= set(ref):
        nan = float("nan")
        why = mismatch or f"a pose model gives simcc_x and simcc_y, not {', '.join(ref.names)}"
        return VerificationReport(reference_name, counts, nan, nan, nan, nan, nan, nan, 0, False,
                                  asdict(tolerances), [why])  # fmt: skip
    window = tolerances.argmax_window
    stats = per_output(cand, ref, window)  # every output the manifest names, by name
    finite = bool(all(np.isfinite(cand[name]).all() for name in cand))
    scale = float(max(max(s["max_abs_reference"] for s in stats.values()), 1e-12))
    rel = max(s["max_abs_diff"] for s in stats.values()) / scale
    cx, cy, rx, ry = cand[SIMCC_X], cand[SIMCC_Y], ref[SIMCC_X], ref[SIMCC_Y]
    agree = float(
        np.mean(
            (np.abs(cx.argmax(-1) - rx.argmax(-1)) <= window)
            & (np.abs(cy.argmax(-1) - ry.argmax(-1)) <= window)
        )
    )
    ref_kpts, _ = decode_simcc(rx, ry, split_ratio)
    cand_kpts, _ = decode_simcc(cx, cy, split_ratio)
    min_gap = 2 * tolerances.max_rel_diff * scale
    clear = clear_peaks(rx, min_gap) & clear_peaks(ry, min_gap)
    all_errors = np.linalg.norm(cand_kpts - ref_kpts, axis=-1)
    errors = all_errors[clear]
    p50 = float(np.percentile(errors, 50)) if errors.size else None
    p99 = float(np.percentile(errors, 99)) if errors.size else None
    z_fields: dict[str, Any] = {}
    agree_z = depth_p99 = None
    if SIMCC_Z in cand and depth is not None:
        cz, rz = cand[SIMCC_Z], ref[SIMCC_Z]
        agree_z = stats[SIMCC_Z]["argmax_agreement"]
        # decoded z in depth pixels (argmax / split), judged where all three peaks are clear
        z_error_px = np.abs(cz.argmax(-1) - rz.argmax(-1)) / split_ratio
        clear_z = clear & clear_peaks(rz, min_gap)
        judged = z_error_px[clear_z]
        depth_p99 = float(np.percentile(judged, 99)) if judged.size else None
        metres = depth.metres_per_px
        z_fields = {
            "max_abs_diff_z": stats[SIMCC_Z]["max_abs_diff"],
            "argmax_agreement_z": agree_z,
            "depth_px_p50": float(np.percentile(judged, 50)) if judged.size else None,
            "depth_px_p99": depth_p99,
            "depth_m_p99": depth_p99 * metres if depth_p99 is not None else None,
            "clear_peaks_z": int(clear_z.sum()),
            "depth_m_per_part": {
                part: {
                    k: (v * metres if v is not None and k != "n" else v) for k, v in stats.items()
                }
                for part, stats in _per_part(z_error_px).items()
            },
        }
    return VerificationReport(
        reference=reference_name,
        inputs=counts,
        max_abs_diff_x=stats[SIMCC_X]["max_abs_diff"],
        max_abs_diff_y=stats[SIMCC_Y]["max_abs_diff"],
        max_rel_diff=rel,
        argmax_agreement=agree,
        keypoint_px_p50=p50,
        keypoint_px_p99=p99,
        clear_peaks=int(clear.sum()),
        finite=finite,
        tolerances=asdict(tolerances),
        failures=_failures(
            finite, rel, agree, p99, tolerances, agree_z=agree_z, depth_p99=depth_p99
        ),
        keypoint_px_per_part=_per_part(all_errors),
        outputs=stats,
        **z_fields,
    )


LATENCY_ONLY = VerificationMode.LATENCY_ONLY.value


@dataclass
class StructureReport(_Report):
    """A latency-only artifact's verification: it opens, runs and has the right outputs.

    Nothing here says the artifact is accurate: random weights give flat logits that no
    tolerance can judge, and INT8 of such weights cannot be told apart from a broken
    quantisation. The bench reports latency for these artifacts and refuses AP, fidelity
    and gates.
    """

    MODE: ClassVar[str] = LATENCY_ONLY
    inputs: dict[str, int]
    output_shapes: dict[str, list[int]]
    expected_shapes: dict[str, list[int]]
    finite: bool
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"structure only: outputs {self.output_shapes}, finite {self.finite}"


def check_structure(
    candidate: InferFn, reference: InferFn, inputs: dict[str, np.ndarray]
) -> StructureReport:
    """The manifest's output names in torch's order, each output's shape equal to torch's
    on the same batch, finite values: what a latency-only artifact must have."""
    counts = {k: len(v) for k, v in inputs.items()}
    cand, ref = _run_both(candidate, reference, inputs)
    got = {name: list(array.shape) for name, array in cand.items()}
    expected = {name: list(array.shape) for name, array in ref.items()}
    finite = bool(all(np.isfinite(array).all() for array in cand.values()))
    failures = []
    if _shape_mismatch(cand, ref):
        failures.append(f"output shapes {got} differ from torch's {expected}")
    if not finite:
        failures.append("NaN or Inf in the outputs")
    return StructureReport(counts, got, expected, finite, failures)
