"""TensorRT targets, ``trt-fp16`` and ``trt-int8``, for both APIs in the field.

* TensorRT 10: FP32 ONNX, builder FP16 flag, ScaleNorm/GAU layers pinned to FP32 with
  OBEY_PRECISION_CONSTRAINTS, an optimisation profile over the batch, a timing cache.
* TensorRT 11+: a strongly typed network from the FP16 ONNX whose FP32 islands are
  explicit casts in the graph (weakly typed precision flags are gone there).

INT8 is an explicit, symmetric Q/DQ ONNX (the only INT8 route TensorRT 11 accepts), made
by onnxruntime's quantiser with the shared policy; TensorRT 10 can also take the implicit
calibrator route from the FP32 ONNX (``EngineOptions.int8_route``).

Where TensorRT is absent, the TensorRT-ready ONNX is still exported and verified in
onnxruntime, written as its own artifact (the spec's ``onnx_fallback``), and the export
stops with exit code 3.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtmw.errors import MissingDependency
from rtmw.export.context import EngineOptions, ExportContext
from rtmw.export.onnx_step import FP32_ISLANDS, INPUT_NAME, fp16_onnx, fp32_onnx, standard_io
from rtmw.export.quant_policy import AXIS_PER_TENSOR, calibration_crops, int8_verification_inputs
from rtmw.export.registry import OnnxFallback, TargetOutput, register_target
from rtmw.export.targets.onnxruntime import onnx_versions, write_qdq_onnx
from rtmw.runtimes.tensorrt import tensorrt_available

if TYPE_CHECKING:
    import tensorrt as trt

logger = logging.getLogger(__name__)
DEFAULT_ENGINE = EngineOptions()


def tensorrt_missing() -> str | None:
    """Why no engine can be built here (None: TensorRT's Python API is importable)."""
    return None if tensorrt_available() else "TensorRT not installed"


def tensorrt_major() -> int:
    import tensorrt as trt

    return int(str(trt.__version__).split(".")[0])


def _parse(network: trt.INetworkDefinition, onnx_path: Path) -> None:
    import tensorrt as trt

    parser = trt.OnnxParser(network, trt.Logger(trt.Logger.WARNING))
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path.name}: {errors}")


def _pin_fp32_islands(network: trt.INetworkDefinition) -> int:
    """TensorRT 10 weak typing: keep ScaleNorm and the GAU in FP32."""
    import tensorrt as trt

    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if any(fragment in layer.name for fragment in FP32_ISLANDS):
            layer.precision = trt.float32
            for output in range(layer.num_outputs):
                layer.set_output_type(output, trt.float32)
            pinned += 1
    return pinned


def _batch_profile(
    builder: trt.Builder,
    config: trt.IBuilderConfig,
    input_size: tuple[int, int],
    settings: EngineOptions,
) -> trt.IOptimizationProfile:
    """min/opt/max batch for the dynamic batch axis, added to the builder config."""
    import tensorrt as trt

    width, height = input_size
    profile = builder.create_optimization_profile()
    profile.set_shape(
        INPUT_NAME,
        trt.Dims4(settings.min_batch, 3, height, width),
        trt.Dims4(settings.opt_batch, 3, height, width),
        trt.Dims4(settings.max_batch, 3, height, width),
    )
    config.add_optimization_profile(profile)
    return profile


def build_engine(
    onnx_fp32: Path,
    onnx_fp16: Path,
    engine_path: Path,
    input_size: tuple[int, int],
    settings: EngineOptions = DEFAULT_ENGINE,
) -> dict[str, object]:
    """Build and serialise an FP16 engine with the API of the installed TensorRT."""
    import tensorrt as trt

    builder, network, config, strongly_typed = _parsed_network(onnx_fp16, onnx_fp32, settings)
    pinned = 0
    if not strongly_typed:
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        pinned = _pin_fp32_islands(network)
    _batch_profile(builder, config, input_size, settings)
    cache_bytes = b""
    if settings.timing_cache is not None and settings.timing_cache.is_file():
        cache_bytes = settings.timing_cache.read_bytes()
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see its log above)")
    engine_path.write_bytes(bytes(serialized))
    if settings.timing_cache is not None:
        timing = config.get_timing_cache()
        if timing is not None:
            settings.timing_cache.write_bytes(bytes(timing.serialize()))
    return {
        "tensorrt": str(trt.__version__),
        "api": "strongly-typed (TensorRT 11+)"
        if strongly_typed
        else "builder FP16 flag (TensorRT 10)",
        "fp32_layers_pinned": pinned,
        "profile": [settings.min_batch, settings.opt_batch, settings.max_batch],
        "float_parts": "f16 with f32 islands (TF32 off)",
    }


def _parsed_network(
    typed_onnx: Path, weakly_typed_onnx: Path, settings: EngineOptions
) -> tuple[trt.Builder, trt.INetworkDefinition, trt.IBuilderConfig, bool]:
    """Builder, parsed network and base config, the one preamble of every engine build.

    TensorRT 11+ gets a strongly typed network from ``typed_onnx`` (types come from the
    ONNX); TensorRT 10 a weakly typed one from ``weakly_typed_onnx`` (builder flags decide).
    """
    import tensorrt as trt

    strongly_typed = tensorrt_major() >= 11
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    _parse(network, typed_onnx if strongly_typed else weakly_typed_onnx)
    return builder, network, _base_config(builder, settings), strongly_typed


def _base_config(builder: trt.Builder, settings: EngineOptions) -> trt.IBuilderConfig:
    """Workspace, detailed layer info for inspection, and TF32 off (on by default in TRT):
    what is not FP16 or INT8 by the artifact's contract is IEEE f32."""
    import tensorrt as trt

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    config.clear_flag(trt.BuilderFlag.TF32)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    return config


class CropCalibrator:
    """TensorRT 10's implicit-quantisation route: entropy calibration on our crops.

    Deprecated by NVIDIA since 10.1 in favour of explicit Q/DQ, and gone in TensorRT 11;
    kept for users on TensorRT 10 who compare both routes. Device memory comes from
    torch (no pycuda).
    """

    def __new__(cls, crops: np.ndarray, cache: Path | None, batch: int = 8) -> Any:
        import tensorrt as trt
        import torch

        class _Calibrator(trt.IInt8EntropyCalibrator2):
            def __init__(self) -> None:
                trt.IInt8EntropyCalibrator2.__init__(self)
                self.crops = crops
                self.batch = batch
                self.index = 0
                self.cache = cache
                self.device_buffer = torch.empty(
                    (batch, *crops.shape[1:]), dtype=torch.float32, device="cuda"
                )

            def get_batch_size(self) -> int:
                return self.batch

            def get_batch(self, names: list[str]) -> list[int]:
                if self.index + self.batch > len(self.crops):
                    return []
                chunk = torch.from_numpy(self.crops[self.index : self.index + self.batch])
                self.device_buffer.copy_(chunk)
                self.index += self.batch
                return [int(self.device_buffer.data_ptr())]

            def read_calibration_cache(self) -> bytes | None:
                if self.cache is not None and self.cache.is_file():
                    return self.cache.read_bytes()
                return None

            def write_calibration_cache(self, cache: Any) -> None:
                if self.cache is not None:
                    self.cache.write_bytes(bytes(cache))

        return _Calibrator()


def build_int8_engine(
    onnx_qdq: Path,
    onnx_fp32: Path,
    crops: np.ndarray,
    engine_path: Path,
    input_size: tuple[int, int],
    settings: EngineOptions = DEFAULT_ENGINE,
    *,
    route: str = "qdq",
) -> dict[str, object]:
    """INT8 engine: explicit Q/DQ (TensorRT 10 and 11) or TensorRT 10's calibrator route.

    Q/DQ: on TensorRT 11 the network is strongly typed and every non-quantised layer
    runs in the ONNX's own type (f32 outside Q/DQ pairs); on TensorRT 10 the INT8 flag
    alone, so what is not INT8 stays f32 as the precision contract asks (no FP16 flag,
    no TF32), with the head islands pinned to f32 as well.
    """
    import tensorrt as trt

    if route not in ("qdq", "calibrator"):
        raise ValueError(f"route must be 'qdq' or 'calibrator', got {route!r}")
    major = tensorrt_major()
    if route == "calibrator" and major >= 11:
        raise RuntimeError("TensorRT 11 removed implicit INT8 calibration; use the Q/DQ route")
    onnx = onnx_qdq if route == "qdq" else onnx_fp32
    builder, network, config, strongly_typed = _parsed_network(onnx, onnx, settings)
    pinned = 0
    if not strongly_typed:
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        pinned = _pin_fp32_islands(network)
    profile = _batch_profile(builder, config, input_size, settings)
    if route == "calibrator":
        config.set_calibration_profile(profile)
        cache = settings.timing_cache.with_suffix(".calib") if settings.timing_cache else None
        config.int8_calibrator = CropCalibrator(crops, cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the INT8 engine (see its log above)")
    engine_path.write_bytes(bytes(serialized))
    return {
        "tensorrt": str(trt.__version__),
        "route": "explicit Q/DQ" if route == "qdq" else "implicit entropy calibrator (TRT 10)",
        "api": "strongly-typed (TensorRT 11+)" if strongly_typed else "INT8 flag (TRT 10)",
        "float_parts": "f32 (TF32 off)",
        "fp32_layers_pinned": pinned,
        "profile": [settings.min_batch, settings.opt_batch, settings.max_batch],
        "calibration_crops": len(crops),
    }


def write_tensorrt_ready_onnx(ctx: ExportContext, stage: Path) -> TargetOutput:
    """Both ONNX inputs a TensorRT build takes, the FP16 one verified as the artifact."""
    shutil.copyfile(fp16_onnx(ctx), stage / "model.onnx")
    shutil.copyfile(fp32_onnx(ctx), stage / "model_fp32.onnx")
    return TargetOutput(
        files=["model.onnx", "model_fp32.onnx"],
        io=standard_io("model.onnx"),
        tools=onnx_versions(),
        options={
            "for": "trt-fp16",
            "model.onnx": "FP16 with FP32 islands: strongly typed build (TensorRT 11+, or 10)",
            "model_fp32.onnx": "FP32: TensorRT 10 build with the FP16 flag and pinned layers",
            "fp32_islands": list(FP32_ISLANDS),
        },
    )


@register_target(
    "trt-fp16",
    format="tensorrt",
    precision="fp16",
    requires=("onnx",),
    extra="onnx",
    description="TensorRT FP16 engine (TensorRT 10 flags or TensorRT 11 strongly typed)",
    verify_device="cuda",
    onnx_fallback=OnnxFallback(tensorrt_missing, write_tensorrt_ready_onnx),
)
def target_trt_fp16(ctx: ExportContext, stage: Path) -> TargetOutput:
    if tensorrt_missing():
        raise MissingDependency("TensorRT is not installed")  # the fallback runs instead
    details = build_engine(
        fp32_onnx(ctx), fp16_onnx(ctx), stage / "model.engine", ctx.config.input_size,
        ctx.options.engine,
    )  # fmt: skip
    return TargetOutput(
        files=["model.engine"],
        io=standard_io("model.engine"),
        tools={"tensorrt": str(details["tensorrt"])},
        options=details,
    )


def write_trt_int8_onnx(ctx: ExportContext, stage: Path) -> TargetOutput:
    """The explicit, symmetric Q/DQ ONNX a TensorRT INT8 build takes (verified in onnxruntime)."""
    output = write_qdq_onnx(ctx, stage, symmetric=True)
    output.options["for"] = "trt-int8"
    return output


@register_target(
    "trt-int8",
    format="tensorrt",
    precision="int8",
    requires=("onnx", "onnxruntime"),
    extra="onnx",
    description="TensorRT INT8 engine from an explicit Q/DQ ONNX (TensorRT 10 and 11)",
    verify_device="cuda",
    verify_inputs=int8_verification_inputs,
    int8_axes=(AXIS_PER_TENSOR,),
    onnx_fallback=OnnxFallback(tensorrt_missing, write_trt_int8_onnx),
)
def target_trt_int8(ctx: ExportContext, stage: Path) -> TargetOutput:
    qdq = stage / "model_qdq.onnx"
    write_trt_int8_onnx(ctx, stage)
    (stage / "model.onnx").replace(qdq)
    details = build_int8_engine(
        qdq, fp32_onnx(ctx), calibration_crops(ctx), stage / "model.engine",
        ctx.config.input_size, ctx.options.engine, route=ctx.options.engine.int8_route,
    )  # fmt: skip
    qdq.unlink()
    return TargetOutput(
        files=["model.engine"],
        io=standard_io("model.engine"),
        tools={"tensorrt": str(details["tensorrt"])},
        options=details,
    )
