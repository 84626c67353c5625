"""``export(checkpoint, targets, out_dir)``: the Python surface of ``rtmw-export``."""

from __future__ import annotations

import importlib.util
import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rtmw import __version__
from rtmw.artifact import Manifest, hash_files, now_utc, read_artifact, staging, write_manifest
from rtmw.calib.calibset import CalibrationSet, check_matches_model, load_calibration_set
from rtmw.errors import MissingDependency, RtmwError, UsageError
from rtmw.export.context import DEFAULT_OPSET, ExportContext
from rtmw.export.int8 import VERIFY_HOLDOUT
from rtmw.export.registry import TargetOutput, TargetSpec, get_target, list_targets
from rtmw.export.verify import (
    DEFAULT_TOLERANCES,
    Tolerances,
    compare,
    format_px,
    verification_inputs,
)
from rtmw.host import cpu_fingerprint
from rtmw.models import model_from_contents, read_checkpoint

logger = logging.getLogger(__name__)

# Installed-package name per importable module, for "pip install" hints.
EXTRAS = {
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxconverter_common": "onnx",
    "openvino": "openvino-runtime",
    "pnnx": "ncnn",
    "ncnn": "ncnn",
}


class VerificationFailed(RtmwError):
    """The exported model does not reproduce torch within the precision's tolerances."""


@dataclass
class ExportResult:
    target: str
    status: str  # ok | failed | skipped | onnx-only
    path: Path | None = None
    reason: str = ""
    seconds: float = 0.0
    size_mb: float = 0.0
    verification: dict[str, Any] | None = None
    exit_code: int = 0

    def line(self) -> str:
        if self.status == "ok" and self.verification:
            v = self.verification
            figures = (
                f"max|Δ| {max(v['max_abs_diff_x'], v['max_abs_diff_y']):.3g} "
                f"argmax {v['argmax_agreement']:.1%} kp p99 {format_px(v['keypoint_px_p99'])}"
            )
            size = f"{self.size_mb:7.1f} MB {self.seconds:6.1f} s"
            return f"{self.target:<14} ok        {size}  {figures}"
        return f"{self.target:<14} {self.status:<9} {self.reason}"


def expand_targets(targets: str | Sequence[str], *, include_int8: bool = True) -> list[str]:
    """Comma lists and 'all' → target names. 'all' leaves INT8 out when no calibration set
    is at hand (they would only fail for want of one) and leaves out 'torch'."""
    names = [targets] if isinstance(targets, str) else list(targets)
    flat = [t.strip() for name in names for t in name.split(",") if t.strip()]
    if flat == ["all"]:
        return [
            t
            for t in list_targets()
            if t != "torch"
            and (include_int8 or get_target(t).precision != "int8")
            and unavailable_reason(get_target(t)) is None
        ]
    if not flat:
        raise UsageError("no targets given (see rtmw-export --list)")
    for name in flat:
        get_target(name)  # unknown names fail here, listing the known ones
    return list(dict.fromkeys(flat))


def _tools(extra: dict[str, str]) -> dict[str, str]:
    import cv2
    import torch

    return {
        "rtmw": __version__,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "opencv": str(cv2.__version__),
        **extra,
    }


def unavailable_reason(spec: TargetSpec) -> str | None:
    """Why this host cannot build and verify ``spec`` (hardware, not packages), or None."""
    return spec.unavailable() if spec.unavailable is not None else None


def _missing_modules(spec: TargetSpec) -> list[str]:
    return [m for m in spec.requires if importlib.util.find_spec(m) is None]


class _TorchReference:
    def __init__(self, ctx: ExportContext) -> None:
        import torch

        from rtmw.runtimes.torch import pin_ieee_fp32

        pin_ieee_fp32(torch)  # the reference is IEEE f32 on every host
        self.model = ctx.model

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            x, y = self.model(torch.from_numpy(batch))
        return x.numpy(), y.numpy()


def _write_artifact(
    ctx: ExportContext,
    destination: Path,
    target: str,
    fmt: str,
    precision: str,
    build: Any,
    inputs: dict[str, np.ndarray],
    tolerances: Tolerances,
    device: str,
    overwrite: bool,
) -> tuple[Path, dict[str, Any]]:
    """Build into a staging folder, verify against torch, then rename into place."""
    from rtmw import runtimes

    with staging(destination, overwrite=overwrite) as stage:
        output: TargetOutput = build(ctx, stage)
        manifest = Manifest(
            model=ctx.config.name,
            input_size=ctx.config.input_size,
            target=target,
            format=fmt,
            precision=precision,
            files=hash_files(stage, output.files),
            source={"checkpoint": str(ctx.checkpoint.path), "sha256": ctx.checkpoint.sha256},
            tools=_tools(output.tools),
            num_keypoints=ctx.config.num_keypoints,
            simcc_split_ratio=ctx.config.simcc_split_ratio,
            calibration=ctx.calibration.describe()
            if precision == "int8" and ctx.calibration is not None
            else None,
            io=output.io,
            options=output.options,
            host=cpu_fingerprint(),
            created=now_utc(),
        )
        write_manifest(stage, manifest)
        runner = runtimes.open(read_artifact(stage, allow_staging=True), device=device)
        try:
            report = compare(runner, _TorchReference(ctx), inputs, tolerances)
            ran_on, execution = runner.device, dict(runner.execution)
        finally:
            runner.close()
        manifest.verification = report.to_dict()
        manifest.verification["device"] = device
        manifest.verification["device_used"] = ran_on
        manifest.verification["execution"] = execution
        write_manifest(stage, manifest)
        if not report:
            raise VerificationFailed(
                f"{target}: verification failed: {'; '.join(report.failures)} ({report.summary()})"
            )
    return destination, manifest.verification


def export(
    checkpoint: str | Path,
    targets: str | Sequence[str],
    out_dir: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    simplify: bool = True,
    overwrite: bool = False,
    tolerances: dict[str, Tolerances] | None = None,
    engine: dict[str, Any] | None = None,
    progress: bool = False,
    calib: str | Path | CalibrationSet | None = None,
    int8_policy: str = "head-fp32",
    accuracy_control: float | None = None,
    accuracy_control_seconds: float | None = None,
) -> list[ExportResult]:
    """Export one checkpoint to each target under ``out_dir/<target>``; never raises per target.

    Each result carries its status and exit code: 0 ok, 1 failed, 3 a missing backend
    (for ``trt-fp16`` without TensorRT, the verified TensorRT-ready ONNX is written to
    ``out_dir/trt-fp16-onnx``). INT8 targets need ``calib`` (a set made by
    rtmw-calib, checked against the model's input size); they are verified on person
    crops and held-out calibration crops, not on noise.
    """
    from rtmw.export.onnx import check_opset

    check_opset(opset)  # before any work: a bad opset is a usage error, not 12 failures
    names = expand_targets(targets, include_int8=calib is not None)
    contents = read_checkpoint(checkpoint)
    model, config = model_from_contents(contents)
    calibration = None
    if calib is not None:
        calibration = calib if isinstance(calib, CalibrationSet) else load_calibration_set(calib)
        check_matches_model(calibration, config.input_size, config.name)
    ctx = ExportContext(
        model,
        config,
        contents,
        opset=opset,
        simplify=simplify,
        options={
            "engine": engine or {},
            "int8_policy": int8_policy,
            "accuracy_control": accuracy_control,
            "accuracy_control_seconds": accuracy_control_seconds,
            "progress": progress,
        },
        calibration=calibration,
    )
    inputs = verification_inputs(config.input_size)
    limits = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    out = Path(out_dir)
    results = []
    bar = tqdm(names, desc="export", unit="target", disable=not progress or len(names) < 2)
    try:
        for name in bar:
            bar.set_postfix_str(name)
            results.append(_export_one(ctx, get_target(name), out, inputs, limits, overwrite))
    finally:
        ctx.close()
    return results


def _export_one(
    ctx: ExportContext,
    spec: TargetSpec,
    out: Path,
    inputs: dict[str, np.ndarray],
    limits: dict[str, Tolerances],
    overwrite: bool,
) -> ExportResult:
    start = time.perf_counter()
    missing = _missing_modules(spec)
    if missing:
        extra = EXTRAS.get(missing[0], missing[0])
        return ExportResult(
            spec.name,
            "skipped",
            reason=f"{', '.join(missing)} not installed (pip install 'rtmw[{extra}]')",
            exit_code=3,
        )
    reason = unavailable_reason(spec)
    if reason is not None:
        return ExportResult(spec.name, "skipped", reason=reason, exit_code=4)
    if spec.precision == "int8":
        if ctx.calibration is None:
            return ExportResult(
                spec.name,
                "failed",
                reason="INT8 needs a calibration set (--calib, made by rtmw-calib); "
                "there is no random-data fallback",
                exit_code=2,
            )
        _, holdout = ctx.calibration.split(VERIFY_HOLDOUT)
        inputs = {"persons": inputs["persons"], "calib_holdout": holdout}
    try:
        if spec.format == "tensorrt":
            from rtmw.runtimes.tensorrt import tensorrt_available

            if not tensorrt_available() and spec.onnx_fallback is not None:
                return _tensorrt_ready_onnx(ctx, spec, out, inputs, limits, overwrite, start)
        path, verification = _write_artifact(
            ctx,
            out / spec.name,
            spec.name,
            spec.format,
            spec.precision,
            spec.build,
            inputs,
            limits[spec.precision],
            "cuda" if spec.format == "tensorrt" else "cpu",
            overwrite,
        )
    except RtmwError as exc:
        return ExportResult(
            spec.name,
            "failed",
            reason=str(exc),
            exit_code=exc.exit_code,
            seconds=time.perf_counter() - start,
        )
    except Exception as exc:  # a converter's own failure: reported, never a traceback wall
        logger.debug("export of %s failed", spec.name, exc_info=True)
        reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        return ExportResult(
            spec.name, "failed", reason=reason, exit_code=1, seconds=time.perf_counter() - start
        )
    artifact = read_artifact(path)
    return ExportResult(
        spec.name,
        "ok",
        path,
        seconds=time.perf_counter() - start,
        size_mb=artifact.size_bytes / 1e6,
        verification=verification,
    )


def _tensorrt_ready_onnx(
    ctx: ExportContext,
    spec: TargetSpec,
    out: Path,
    inputs: dict[str, np.ndarray],
    limits: dict[str, Tolerances],
    overwrite: bool,
    start: float,
) -> ExportResult:
    assert spec.onnx_fallback is not None
    name = f"{spec.name}-onnx"
    path, verification = _write_artifact(
        ctx,
        out / name,
        name,
        "onnx",
        spec.precision,
        spec.onnx_fallback,
        inputs,
        limits[spec.precision],
        "cpu",
        overwrite,
    )
    reason = (
        f"TensorRT not installed; the ONNX for building on the target is at "
        f"{path / 'model.onnx'} (verified in onnxruntime)"
    )
    return ExportResult(
        spec.name,
        "onnx-only",
        path,
        reason=reason,
        verification=verification,
        seconds=time.perf_counter() - start,
        exit_code=MissingDependency.exit_code,
        size_mb=read_artifact(path).size_bytes / 1e6,
    )


def sensitivity_scan(
    checkpoint: str | Path,
    calib: str | Path | CalibrationSet,
    out_dir: str | Path,
    *,
    int8_policy: str = "head-fp32",
    progress: bool = True,
) -> tuple[Path, str]:
    """Quantise one block at a time; write and return the per-part damage table."""
    from rtmw.export import sensitivity
    from rtmw.export.int8 import POLICIES

    contents = read_checkpoint(checkpoint)
    model, config = model_from_contents(contents)
    calibration = calib if isinstance(calib, CalibrationSet) else load_calibration_set(calib)
    check_matches_model(calibration, config.input_size, config.name)
    ctx = ExportContext(model, config, contents, calibration=calibration)
    try:
        rows = sensitivity.scan(ctx, POLICIES[int8_policy], progress=progress)
    finally:
        ctx.close()
    path = sensitivity.write(rows, Path(out_dir), config.name)
    return path, sensitivity.table(rows)
