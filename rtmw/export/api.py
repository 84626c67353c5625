"""``export(checkpoint, targets, out_dir)``: the Python surface of ``rtmw-export``.

Orchestration only: read the checkpoint, build the typed options, then per target
stage → build (the target's function) → manifest → verify against torch (on the
target's verification device, with its verification inputs) → rename. Everything that
differs per backend is a hook on the target's :class:`~rtmw.export.registry.TargetSpec`.
"""

from __future__ import annotations

import importlib.util
import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rtmw import __version__
from rtmw.artifact import Manifest, hash_files, now_utc, read_artifact, staging, write_manifest
from rtmw.calib.calibset import CalibrationSet, check_matches_model, load_calibration_set
from rtmw.errors import MissingDependency, RtmwError, UsageError, VerificationFailed
from rtmw.export import targets as _builtin_targets  # noqa: F401  (registers the targets)
from rtmw.export.context import (
    DEFAULT_OPSET,
    AccuracyControl,
    EngineOptions,
    ExportContext,
    ExportOptions,
)
from rtmw.export.family import DetectionReport, Family, family_of
from rtmw.export.onnx_step import check_opset
from rtmw.export.quant_policy import AXIS_PER_TENSOR, AXIS_WIDE, check_policy
from rtmw.export.registry import (
    TargetFn,
    TargetSpec,
    get_target,
    list_targets,
    unavailable_reason,
)
from rtmw.harness.verify import (
    DEFAULT_TOLERANCES,
    LATENCY_ONLY,
    StructureReport,
    Tolerances,
    VerificationReport,
    check_structure,
    format_px,
)
from rtmw.host import cpu_fingerprint
from rtmw.logs import native_output_to_log
from rtmw.models import RTMDet, any_model_from_contents, read_checkpoint
from rtmw.models.inference import TorchInference
from rtmw.schemas import Status

logger = logging.getLogger(__name__)


# the statuses an export target ends with (one enum for exports and bench entries)


@dataclass
class ExportResult:
    target: str
    status: Status
    path: Path | None = None
    reason: str = ""
    seconds: float = 0.0
    size_mb: float = 0.0
    verification: dict[str, Any] | None = None
    exit_code: int = 0

    def line(self) -> str:
        if self.verification and self.verification.get("mode") == LATENCY_ONLY:
            size = f"{self.size_mb:7.1f} MB {self.seconds:6.1f} s"
            state = f"{self.target:<14} {self.status.value:<9} {size}"
            return f"{state}  latency-only (structure verified)"
        if self.status == Status.OK and self.verification and "matched" in self.verification:
            v = self.verification  # a detector's: outputs by name, then decoded boxes
            size = f"{self.size_mb:7.1f} MB {self.seconds:6.1f} s"
            iou = "–" if v.get("iou_p50") is None else f"{v['iou_p50']:.3f}"
            figures = (f"max rel|Δ| {v['max_rel_diff']:.2e} boxes {v['matched']:.1%} of "
                       f"{v['reference_boxes']} (IoU p50 {iou})")  # fmt: skip
            return f"{self.target:<14} ok        {size}  {figures}"
        if self.status == Status.OK and self.verification:
            v = self.verification
            figures = (
                f"max|Δ| {max(v['max_abs_diff_x'], v['max_abs_diff_y']):.3g} "
                f"argmax {v['argmax_agreement']:.1%} kp p99 {format_px(v['keypoint_px_p99'])}"
            )
            if v.get("max_abs_diff_z") is not None:
                z_p99 = v.get("depth_m_p99")
                figures += (
                    f" | z max|Δ| {v['max_abs_diff_z']:.3g} argmax {v['argmax_agreement_z']:.1%}"
                    f" p99 {'–' if z_p99 is None else f'{z_p99 * 1000:.1f} mm'}"
                )
            size = f"{self.size_mb:7.1f} MB {self.seconds:6.1f} s"
            return f"{self.target:<14} ok        {size}  {figures}"
        return f"{self.target:<14} {self.status.value:<9} {self.reason}"


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


def export_options(
    *,
    opset: int = DEFAULT_OPSET,
    simplify: bool = True,
    int8_policy: str = "head-fp32",
    int8_keep: Sequence[str] = (),
    accuracy_control: float | None = None,
    accuracy_control_seconds: float | None = None,
    engine: EngineOptions | dict[str, Any] | None = None,
    latency_only: bool = False,
    progress: bool = False,
    **target_settings: Any,
) -> ExportOptions:
    """Checked :class:`ExportOptions` from plain values: a bad value is a usage error
    before any work, not one failure per target. ``target_settings`` are the options
    individual targets read (fields of ExportOptions, e.g. ort_int8_activations)."""
    check_opset(opset)
    check_policy(int8_policy)
    if accuracy_control is not None and not 0 < accuracy_control < 1:
        raise UsageError(f"accuracy control max drop must be in (0, 1), got {accuracy_control}")
    if isinstance(engine, dict):
        try:
            engine = EngineOptions(**engine)
        except TypeError as exc:
            raise UsageError(f"engine settings: {exc}") from None
    known = {f.name for f in fields(ExportOptions)}
    unknown = sorted(set(target_settings) - known)
    if unknown:
        raise UsageError(f"unknown export setting(s) {unknown}")
    return ExportOptions(
        opset=opset,
        simplify=simplify,
        int8_policy=int8_policy,
        int8_keep=tuple(int8_keep),
        accuracy_control=None
        if accuracy_control is None
        else AccuracyControl(accuracy_control, accuracy_control_seconds),
        engine=engine or EngineOptions(),
        latency_only=latency_only,
        progress=progress,
        **target_settings,
    )


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


def unsupported_axes(spec: TargetSpec, options: ExportOptions) -> list[str]:
    """The INT8 policy axes ``options`` use that ``spec``'s quantiser does not honour."""
    if spec.precision != "int8":
        return []
    used = [AXIS_PER_TENSOR] if not options.int8_per_channel else []
    used += [AXIS_WIDE] if options.int8_wide else []
    return [axis for axis in used if axis not in spec.int8_axes]


def _missing_modules(spec: TargetSpec) -> list[str]:
    return [m for m in spec.requires if importlib.util.find_spec(m) is None]


@dataclass(frozen=True)
class _Build:
    """One artifact to build: under which name and format, with which function, verified
    on which device."""

    name: str
    format: str
    build: TargetFn
    device: str


def _write_artifact(
    ctx: ExportContext,
    spec: TargetSpec,
    build: _Build,
    destination: Path,
    inputs: dict[str, np.ndarray],
    tolerances: Tolerances,
    overwrite: bool,
) -> tuple[Path, dict[str, Any]]:
    family = family_of(ctx.config)
    """Build into a staging folder, verify against torch, then rename into place."""
    from rtmw import runtimes

    # backends' own chatter (NNCF, the quantisers, pnnx, absl, cpuinfo) goes to the run log
    with native_output_to_log(), staging(destination, overwrite=overwrite) as stage:
        output = build.build(ctx, stage)
        manifest = Manifest(
            model=ctx.config.name,
            input_size=ctx.config.input_size,
            target=build.name,
            format=build.format,
            precision=spec.precision,
            files=hash_files(stage, output.files),
            source={"checkpoint": str(ctx.checkpoint.path), "sha256": ctx.checkpoint.sha256},
            tools=_tools(output.tools),
            calibration=ctx.calibration.describe()
            if spec.precision == "int8" and ctx.calibration is not None
            else None,
            # the outputs are the model's, whatever the target: simcc_x, simcc_y (+ simcc_z)
            # of a pose model, a detector's class logits and box distances per level
            io={**output.io, "outputs": list(ctx.config.output_names)},
            options=output.options,
            host=cpu_fingerprint(),
            created=now_utc(),
            **family.manifest_fields(ctx.config),
        )
        write_manifest(stage, manifest)
        runner = runtimes.open(read_artifact(stage, allow_staging=True), device=build.device)
        try:
            torch_reference = TorchInference(ctx.model)
            report: VerificationReport | DetectionReport | StructureReport = (
                check_structure(runner, torch_reference, inputs)
                if ctx.options.latency_only
                else family.verify(
                    runner, torch_reference, inputs, spec.precision, tolerances, ctx.config
                )
            )
            ran_on, execution = runner.device, dict(runner.execution)
        finally:
            runner.close()
        manifest.verification = report.to_dict()
        manifest.verification["device"] = build.device
        manifest.verification["device_used"] = ran_on
        manifest.verification["execution"] = execution
        write_manifest(stage, manifest)
        if not report:
            raise VerificationFailed(
                f"{build.name}: verification failed: {'; '.join(report.failures)} "
                f"({report.summary()})"
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
    engine: EngineOptions | dict[str, Any] | None = None,
    progress: bool = False,
    calib: str | Path | CalibrationSet | None = None,
    int8_policy: str = "head-fp32",
    int8_keep: Sequence[str] = (),
    accuracy_control: float | None = None,
    accuracy_control_seconds: float | None = None,
    latency_only: bool = False,
    options: ExportOptions | None = None,
) -> list[ExportResult]:
    """Export one checkpoint to each target under ``out_dir/<target>``; never raises per target.

    Each result carries its status and exit code: 0 ok, 1 failed, 2 usage (INT8 without
    a calibration set), 3 a missing backend (for ``trt-fp16`` without TensorRT, the
    verified TensorRT-ready ONNX is written to ``out_dir/trt-fp16-onnx``), 4 a host that
    cannot run the target. INT8 targets need ``calib`` (a set made by rtmw-calib, checked
    against the model's input size); they are verified on person crops and held-out
    calibration crops, not on noise. ``latency_only`` verifies structure only (weights that
    cannot be judged, e.g. random-init published configurations): artifact.json then says
    ``verification.mode: latency-only`` and the bench reports no accuracy for it.
    ``options`` replaces the keyword settings at once: giving both is refused (a keyword
    beside ``options`` was silently ignored).
    """
    if options is not None:
        defaults = {"opset": DEFAULT_OPSET, "simplify": True, "engine": None,
                    "int8_policy": "head-fp32", "int8_keep": (), "accuracy_control": None,
                    "accuracy_control_seconds": None, "latency_only": False}  # fmt: skip
        given = {"opset": opset, "simplify": simplify, "engine": engine,
                 "int8_policy": int8_policy, "int8_keep": tuple(int8_keep),
                 "accuracy_control": accuracy_control,
                 "accuracy_control_seconds": accuracy_control_seconds,
                 "latency_only": latency_only}  # fmt: skip
        clash = sorted(k for k, v in given.items() if v != defaults[k])
        if clash:
            raise UsageError(
                f"export(): give these settings inside options=, not beside it: {', '.join(clash)}"
            )
    if options is None:
        options = export_options(
            opset=opset, simplify=simplify, int8_policy=int8_policy, int8_keep=int8_keep,
            accuracy_control=accuracy_control, accuracy_control_seconds=accuracy_control_seconds,
            engine=engine, latency_only=latency_only, progress=progress,
        )  # fmt: skip
    else:
        options = replace(options, progress=progress or options.progress)
    names = expand_targets(targets, include_int8=calib is not None)
    contents = read_checkpoint(checkpoint)
    model, config = any_model_from_contents(contents)
    if isinstance(model, RTMDet):
        model.unshare_convs()  # pnnx cannot trace one conv module used at three levels
    family = family_of(config)
    calibration = None
    if calib is not None:
        calibration = calib if isinstance(calib, CalibrationSet) else load_calibration_set(calib)
        check_matches_model(calibration, config.input_size, config.name,
                            kind=family.calibration_kind)  # fmt: skip
    ctx = ExportContext(model, config, contents, options=options, calibration=calibration)
    shared_inputs = family.inputs(config)
    limits = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    out = Path(out_dir)
    results = []
    bar = tqdm(names, desc="export", unit="target", disable=not progress or len(names) < 2)
    try:
        for name in bar:
            bar.set_postfix_str(name)
            spec = get_target(name)
            results.append(_export_one(ctx, spec, out, shared_inputs, limits[spec.precision],
                                       overwrite, family))  # fmt: skip
    finally:
        ctx.close()
    return results


def _export_one(
    ctx: ExportContext,
    spec: TargetSpec,
    out: Path,
    shared_inputs: dict[str, np.ndarray],
    tolerances: Tolerances,
    overwrite: bool,
    family: Family,
) -> ExportResult:
    start = time.perf_counter()
    missing = _missing_modules(spec)
    if missing:
        return ExportResult(
            spec.name,
            Status.SKIPPED,
            reason=f"{', '.join(missing)} not installed (pip install 'rtmw[{spec.extra}]')",
            exit_code=MissingDependency.exit_code,
        )
    reason = unavailable_reason(spec)
    if reason is not None:
        return ExportResult(spec.name, Status.SKIPPED, reason=reason, exit_code=4)
    refused = unsupported_axes(spec, ctx.options)
    if refused:
        return ExportResult(
            spec.name, Status.FAILED, exit_code=UsageError.exit_code,
            reason=f"{spec.name}'s quantiser has no {' or '.join(refused)} setting",
        )  # fmt: skip
    try:
        inputs = shared_inputs
        if spec.verify_inputs is not None:
            inputs = spec.verify_inputs(ctx, shared_inputs)
        fallback = spec.onnx_fallback
        stand_in = fallback.missing() if fallback is not None else None
        if fallback is not None and stand_in is not None:
            build = _Build(spec.name + fallback.suffix, "onnx", fallback.build, "cpu")
            path, verification = _write_artifact(
                ctx, spec, build, out / build.name, inputs, tolerances, overwrite
            )
            return _stand_in_result(spec, path, verification, stand_in, start)
        build = _Build(spec.name, spec.format, spec.build, spec.verify_device)
        path, verification = _write_artifact(
            ctx, spec, build, out / spec.name, inputs, tolerances, overwrite
        )
    except RtmwError as exc:
        return ExportResult(
            spec.name,
            Status.FAILED,
            reason=str(exc),
            exit_code=exc.exit_code,
            seconds=time.perf_counter() - start,
        )
    except Exception as exc:  # a converter's own failure: reported, never a traceback wall
        logger.debug("export of %s failed", spec.name, exc_info=True)
        reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        return ExportResult(
            spec.name,
            Status.FAILED,
            reason=reason,
            exit_code=1,
            seconds=time.perf_counter() - start,
        )
    return ExportResult(
        spec.name,
        Status.OK,
        path,
        seconds=time.perf_counter() - start,
        size_mb=read_artifact(path).size_bytes / 1e6,
        verification=verification,
    )


def _stand_in_result(
    spec: TargetSpec, path: Path, verification: dict[str, Any], missing: str, start: float
) -> ExportResult:
    """The backend is absent here: its verified ONNX stand-in was written (exit code 3)."""
    return ExportResult(
        spec.name,
        Status.ONNX_ONLY,
        path,
        reason=f"{missing}; the ONNX for building on the target is at "
        f"{path / 'model.onnx'} (verified in onnxruntime)",
        verification=verification,
        seconds=time.perf_counter() - start,
        exit_code=MissingDependency.exit_code,
        size_mb=read_artifact(path).size_bytes / 1e6,
    )
