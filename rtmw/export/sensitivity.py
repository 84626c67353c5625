"""Per-block INT8 sensitivity: quantise one block at a time, measure per-part damage.

This is the evidence behind the mixed-precision policy: a user sees which blocks move
hands and faces when quantised, and why the head is kept in floating point.
Calibration statistics are collected once and reused for every block.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rtmw.calib.calibset import CalibrationSet, check_matches_model, load_calibration_set
from rtmw.errors import UsageError
from rtmw.export.context import ExportContext
from rtmw.export.family import family_of
from rtmw.export.onnx_step import fp32_onnx
from rtmw.export.quant_policy import POLICIES, blocks, calibration_crops, holdout_crops
from rtmw.export.targets.onnxruntime import quantize_qdq
from rtmw.keypoints import PART_SLICES, PARTS
from rtmw.models import RTMDetConfig, RTMWConfig, any_model_from_contents, read_checkpoint
from rtmw.optional import import_backend
from rtmw.pipeline import SIMCC_X, SIMCC_Y, SIMCC_Z, ModelOutputs
from rtmw.pipeline.decode import decode_simcc

QUANTISABLE = {"Conv", "MatMul", "Gemm"}


def _keypoints(
    path: Path, crops: np.ndarray, precision: str, config: RTMWConfig
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Decoded keypoints and the argmax of every output by name (x, y and RTMW3D's z) of one
    ONNX model, run as an artifact of its precision runs (the onnxruntime adapter with its
    pinned CPU settings)."""
    from rtmw import runtimes

    batches: list[ModelOutputs] = []
    with runtimes.open_model(
        path,
        format="onnx",
        precision=precision,
        input_size=config.input_size,
        outputs=config.output_names,
    ) as runner:
        for start in range(0, len(crops), 8):
            batches.append(runner(np.ascontiguousarray(crops[start : start + 8])))
    outputs = ModelOutputs.concatenate(batches)
    keypoints, _ = decode_simcc(outputs[SIMCC_X], outputs[SIMCC_Y])
    return keypoints, {name: output.argmax(-1) for name, output in outputs.items()}


def scan(
    ctx: ExportContext, kept: Sequence[str] = (), *, progress: bool = True
) -> list[dict[str, Any]]:
    """One row per block: per-part keypoint error (crop px) and argmax agreement.

    ``kept`` are the policy's node-name prefixes: a row says whether the policy keeps
    its block in float by the same rule the INT8 targets use to exclude nodes.
    """
    if isinstance(ctx.config, RTMDetConfig):
        return _scan_detector(ctx, ctx.config, kept, progress=progress)
    if not isinstance(ctx.config, RTMWConfig):
        raise UsageError(f"{ctx.config.name}: no sensitivity measure for this model family")
    onnx: Any = import_backend("onnx", "onnx")
    crops = calibration_crops(ctx)
    holdout = holdout_crops(ctx)
    fp32 = fp32_onnx(ctx)
    ref_kpts, ref_argmax = _keypoints(fp32, holdout, "fp32", ctx.config)
    op_types = {n.name: n.op_type for n in onnx.load(str(fp32)).graph.node}
    cache = ctx.scratch / "sensitivity_calibration.cache"
    rows = []
    grouped = [(b, nodes) for b, nodes in blocks(fp32).items()
               if any(op_types.get(n) in QUANTISABLE for n in nodes)]  # fmt: skip
    for block, nodes in tqdm(grouped, desc="sensitivity", unit="block", disable=not progress):
        out = ctx.scratch / "sensitivity_block.onnx"
        quantize_qdq(fp32, out, crops, include=nodes, symmetric=False, cache=cache)
        kpts, argmax = _keypoints(out, holdout, "int8", ctx.config)
        error = np.linalg.norm(kpts - ref_kpts, axis=-1)
        row: dict[str, Any] = {
            "block": block,
            "nodes": len(nodes),
            "kept": any(n.startswith(p) for n in nodes for p in kept),
            "argmax_agreement": float(
                np.mean(
                    (argmax[SIMCC_X] == ref_argmax[SIMCC_X])
                    & (argmax[SIMCC_Y] == ref_argmax[SIMCC_Y])
                )
            ),
        }
        if SIMCC_Z in argmax:  # RTMW3D: the depth classifier's agreement on its own
            row["argmax_agreement_z"] = float(np.mean(argmax[SIMCC_Z] == ref_argmax[SIMCC_Z]))
        for part in PARTS:
            values = error[:, PART_SLICES[part]]
            row[f"{part}_px_p50"] = float(np.percentile(values, 50))
            row[f"{part}_px_p99"] = float(np.percentile(values, 99))
        rows.append(row)
    rows.sort(key=lambda r: r["wholebody_px_p99"], reverse=True)
    return rows


def _scan_detector(
    ctx: ExportContext, config: RTMDetConfig, kept: Sequence[str], *, progress: bool
) -> list[dict[str, Any]]:
    """A detector's rows: per block quantised alone, the boxes decoded from its outputs
    against FP32's on held-out calibration frames (share matched at the INT8 box tolerance,
    IoU p50, score |Δ| p99) and the largest output error relative to its range."""
    from rtmw import runtimes
    from rtmw.export.family import BOX_TOLERANCES, compare_detections, detector_spec
    from rtmw.harness.verify import DEFAULT_TOLERANCES

    onnx: Any = import_backend("onnx", "onnx")
    crops = calibration_crops(ctx)
    holdout = {"calib_holdout": holdout_crops(ctx)}
    fp32 = fp32_onnx(ctx)
    op_types = {n.name: n.op_type for n in onnx.load(str(fp32)).graph.node}
    cache = ctx.scratch / "sensitivity_calibration.cache"
    grouped = [(b, nodes) for b, nodes in blocks(fp32).items()
               if any(op_types.get(n) in QUANTISABLE for n in nodes)]  # fmt: skip
    rows: list[dict[str, Any]] = []
    with runtimes.open_model(fp32, format="onnx", precision="fp32",
                             input_size=config.input_size,
                             outputs=config.output_names) as reference:  # fmt: skip
        for block, nodes in tqdm(grouped, desc="sensitivity", unit="block",
                                 disable=not progress):  # fmt: skip
            out = ctx.scratch / "sensitivity_block.onnx"
            quantize_qdq(fp32, out, crops, include=nodes, symmetric=False, cache=cache)
            with runtimes.open_model(out, format="onnx", precision="int8",
                                     input_size=config.input_size,
                                     outputs=config.output_names) as runner:  # fmt: skip
                report = compare_detections(
                    runner, reference, holdout, DEFAULT_TOLERANCES["int8"],
                    BOX_TOLERANCES["int8"], detector_spec(config), reference_name="onnx fp32",
                )  # fmt: skip
            rows.append({
                "block": block, "nodes": len(nodes),
                "kept": any(n.startswith(p) for n in nodes for p in kept),
                "boxes_matched": report.matched, "iou_p50": report.iou_p50,
                "score_diff_p99": report.score_diff_p99, "max_rel_diff": report.max_rel_diff,
                "reference_boxes": report.reference_boxes,
            })  # fmt: skip
    rows.sort(key=lambda r: (float(r["boxes_matched"]), -float(r["max_rel_diff"])))
    return rows


def _detector_table(rows: list[dict[str, Any]]) -> str:
    from rtmw.markdown import table as markdown_table

    def fmt(value: float | None, spec: str) -> str:
        return "–" if value is None else format(value, spec)

    header = ["Block", "Kept in float", "Boxes matched", "IoU p50", "Score |Δ| p99",
              "Max rel |Δ|"]  # fmt: skip
    body = [[row["block"], "yes" if row.get("kept") else "", f"{row['boxes_matched']:.1%}",
             fmt(row["iou_p50"], ".3f"), fmt(row["score_diff_p99"], ".3f"),
             f"{row['max_rel_diff']:.2e}"] for row in rows]  # fmt: skip
    return "\n".join(markdown_table(header, body)) + "\n"


def table(rows: list[dict[str, Any]]) -> str:
    from rtmw.markdown import table as markdown_table

    if rows and "boxes_matched" in rows[0]:
        return _detector_table(rows)

    depth = any("argmax_agreement_z" in row for row in rows)
    header = ["Block", "Kept in float", "argmax agree", *(["z argmax agree"] if depth else []),
              *(f"{p} p99 px" for p in PARTS)]  # fmt: skip
    body = [
        [row["block"], "yes" if row.get("kept") else "", f"{row['argmax_agreement']:.1%}",
         *([f"{row['argmax_agreement_z']:.1%}"] if depth else []),
         *(f"{row[f'{p}_px_p99']:.2f}" for p in PARTS)]
        for row in rows
    ]  # fmt: skip
    return "\n".join(markdown_table(header, body)) + "\n"


def write(rows: list[dict[str, Any]], out_dir: Path, name: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"sensitivity-{name}.md"
    detector = bool(rows) and "boxes_matched" in rows[0]
    measure = (
        "the boxes decoded from its outputs against FP32's on held-out calibration frames "
        "(a reference box matches when a box of its class has IoU ≥ 0.70 and |Δ score| ≤ "
        "0.15, the INT8 verification tolerance), worst first"
        if detector
        else "decoded-keypoint error against FP32 on held-out calibration crops, in crop pixels"
    )
    md.write_text(
        f"# INT8 sensitivity of {name}\n\nEach row quantises one block alone (onnxruntime "
        f"QDQ, per-channel weights) and measures {measure}.\n\n" + table(rows)
    )
    (out_dir / f"sensitivity-{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    return md


def sensitivity_scan(
    checkpoint: str | Path,
    calib: str | Path | CalibrationSet,
    out_dir: str | Path,
    *,
    int8_policy: str = "head-fp32",
    progress: bool = True,
) -> tuple[Path, str]:
    """Quantise one block at a time; write and return the per-part damage table."""
    contents = read_checkpoint(checkpoint)
    model, config = any_model_from_contents(contents)
    calibration = calib if isinstance(calib, CalibrationSet) else load_calibration_set(calib)
    check_matches_model(calibration, config.input_size, config.name,
                        kind=family_of(config).calibration_kind)  # fmt: skip
    ctx = ExportContext(model, config, contents, calibration=calibration)
    try:
        rows = scan(ctx, POLICIES[int8_policy], progress=progress)
    finally:
        ctx.close()
    path = write(rows, Path(out_dir), config.name)
    return path, table(rows)
