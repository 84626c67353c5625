"""Bring your own detector: an ONNX person detector made elsewhere, as an rtmw artifact.

Users already hold detectors as ONNX files: mmdeploy's ``end2end.onnx`` (``dets`` (N,K,5)
and ``labels`` (N,K), NMS inside; rtmlib ships its RTMDet and YOLOX this way) and YOLOX's
own export without the decode (one (N,A,5+C) output). :func:`import_detector` reads the
graph, names its layout from the output names and shapes (anything else is one clear
error), takes the pre-processing from mmdeploy's ``pipeline.json`` beside the file when
there is one (else ``preprocess``), checks it on letterboxed synthetic frames in
onnxruntime, and writes an artifact folder the runtime layer, ``rtmw-bench`` and
``--dets`` use like any other — decoded by :mod:`rtmw.pipeline.detect`'s one decode.

There is no torch reference for a file rtmw did not make, so its verification mode is
``imported``: layout, shapes, finite outputs and decodable boxes were checked; its
accuracy is what rtmw-bench measures (box AP), never a claim of agreement.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from rtmw import __version__
from rtmw.artifact import Manifest, hash_files, now_utc, read_artifact, staging, write_manifest
from rtmw.errors import InputError, UsageError, VerificationFailed
from rtmw.host import cpu_fingerprint
from rtmw.models.rtmdet import MEAN_BGR, PAD_VALUE, STD_BGR, STRIDES
from rtmw.optional import import_backend
from rtmw.pipeline.detect import DETECTOR_LAYOUTS, DetectorSpec, decode_detections, letterbox
from rtmw.schemas import VerificationMode

# how each detector family normalises its letterboxed BGR input
PREPROCESSING: dict[str, dict[str, Any]] = {
    "mmdet": {"mean_bgr": list(MEAN_BGR), "std_bgr": list(STD_BGR), "rounding": "half-up"},
    # YOLOX (its own repo and rtmlib): raw 0–255 BGR, int(x·r) resize, one ratio
    "yolox": {"mean_bgr": [0.0, 0.0, 0.0], "std_bgr": [1.0, 1.0, 1.0], "rounding": "floor"},
}
DEFAULT_PREPROCESSING = {"yolox-raw": "yolox"}


@dataclass(frozen=True)
class OnnxDetector:
    """What the graph says: its input, outputs, layout, size and class count."""

    path: Path
    input_name: str
    input_size: tuple[int, int] | None  # (width, height), None when dynamic
    batch: int | None  # None when dynamic
    outputs: tuple[str, ...]
    layout: str
    num_classes: int


def _dims(value_info: Any) -> list[int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def _probe(
    path: Path, outputs: tuple[str, ...], size: tuple[int, int]
) -> dict[str, list[int | None]]:
    """Output shapes from one run on a zero frame through the onnx runtime adapter (graphs
    traced with a dynamic batch often declare no output dimension at all)."""
    from rtmw import runtimes

    zeros = np.zeros((1, 3, size[1], size[0]), np.float32)
    with runtimes.open_model(path, format="onnx", precision="fp32", input_size=size,
                             outputs=outputs) as runner:  # fmt: skip
        ran = runner(zeros)
    return {name: list(array.shape) for name, array in ran.items()}


def inspect_onnx_detector(
    path: str | Path, input_size: tuple[int, int] | None = None
) -> OnnxDetector:
    """Read an ONNX detector's interface and name its layout (one error line otherwise)."""
    onnx: Any = import_backend("onnx", "onnx")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"detector file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError
        raise InputError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    graph = model.graph
    initialisers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1:
        raise InputError(f"{path}: a detector takes one image input, this graph has {len(inputs)}")
    shape = _dims(inputs[0])
    if len(shape) != 4 or shape[1] not in (3, None):
        raise InputError(f"{path}: input {inputs[0].name} is {shape}, not (N,3,H,W)")
    size = (shape[3], shape[2]) if shape[2] and shape[3] else input_size
    outputs = {o.name: _dims(o) for o in graph.output}
    if size is not None and any(None in dims[1:] for dims in outputs.values()):
        outputs = _probe(path, tuple(outputs), size)
    names = tuple(outputs)
    found = ", ".join(f"{n} {outputs[n]}" for n in names)
    if {"dets", "labels"} <= set(outputs):
        dets = outputs["dets"]
        if len(dets) != 3 or dets[2] != 5:
            raise InputError(f"{path}: dets is {dets}; the end2end layout has (N,K,5)")
        # mmdeploy's file does not say its class count; person is class 0 either way
        return OnnxDetector(path, inputs[0].name, size, shape[0], ("dets", "labels"),
                            "mmdeploy-end2end", 80)  # fmt: skip
    if len(outputs) == 1:
        dims = outputs[names[0]]
        if len(dims) == 3 and dims[2] is None and size is None:
            raise UsageError(f"{path}: its input and output sizes are dynamic; give --input-size")
        if len(dims) == 3 and dims[2] is not None and dims[2] >= 6:
            anchors = _yolox_anchors(size) if size else None
            if anchors is not None and dims[1] not in (None, anchors):
                raise InputError(
                    f"{path}: output {names[0]} {dims} has {dims[1]} rows; YOLOX's raw layout "
                    f"at {size[0]}x{size[1]} has {anchors} (strides 8/16/32)"  # type: ignore[index]
                )
            return OnnxDetector(path, inputs[0].name, size, shape[0], names, "yolox-raw",
                                int(dims[2]) - 5)  # fmt: skip
    raise InputError(
        f"{path}: unknown detector layout (outputs: {found}); rtmw reads "
        + "; ".join(f"{k}: {v}" for k, v in DETECTOR_LAYOUTS.items() if k != "rtmdet")
    )


def _yolox_anchors(size: tuple[int, int]) -> int:
    width, height = size
    return sum((width // s) * (height // s) for s in STRIDES)


def _mmdeploy_preprocessing(path: Path) -> dict[str, Any] | None:
    """mean/std (as BGR) from mmdeploy's pipeline.json beside the model, if it is there."""
    pipeline = path.parent / "pipeline.json"
    if not pipeline.is_file():
        return None
    try:
        tasks = json.loads(pipeline.read_text())["pipeline"]["tasks"]
        transforms = next(t["transforms"] for t in tasks if t.get("module") == "Transform")
        norm = next(t for t in transforms if t.get("type") == "Normalize")
        mean, std = list(norm["mean"]), list(norm["std"])
    except (ValueError, KeyError, StopIteration, TypeError):
        raise InputError(f"{pipeline}: not mmdeploy's pipeline.json (no Normalize step)") from None
    if norm.get("to_rgb"):  # given in RGB order: rtmw feeds BGR, so flip them
        mean, std = mean[::-1], std[::-1]
    return {"mean_bgr": mean, "std_bgr": std, "rounding": "half-up", "from": str(pipeline)}


def _frames(spec: DetectorSpec, count: int = 3) -> tuple[np.ndarray, list[Any]]:
    from rtmw.data.synthetic import render_image

    tensors, placed = [], []
    for index in range(count):
        image, _, _ = render_image(np.random.default_rng([0, 2000 + index]), index + 2, 1)
        tensor, where = letterbox(image, spec)
        tensors.append(tensor)
        placed.append(where)
    return np.concatenate(tensors), placed


def import_detector(
    onnx_path: str | Path,
    out_dir: str | Path,
    *,
    preprocess: str | None = None,
    input_size: tuple[int, int] | None = None,
    num_classes: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``out_dir`` as a verified (``imported``) detector artifact; returns its path."""
    from rtmw import runtimes

    found = inspect_onnx_detector(onnx_path, input_size)
    size = found.input_size or input_size
    if size is None:
        raise UsageError(f"{onnx_path}: the input size is dynamic; give --input-size WxH")
    if found.input_size and input_size and tuple(input_size) != found.input_size:
        raise UsageError(f"{onnx_path}: the graph takes {found.input_size}, not {input_size}")
    chosen = _mmdeploy_preprocessing(found.path)
    if preprocess is not None:
        if preprocess not in PREPROCESSING:
            raise UsageError(f"unknown --preprocess {preprocess!r}: {', '.join(PREPROCESSING)}")
        chosen = {**PREPROCESSING[preprocess], "from": f"--preprocess {preprocess}"}
    if chosen is None:
        default = DEFAULT_PREPROCESSING.get(found.layout)
        if default is None:
            raise UsageError(
                f"{onnx_path}: which normalisation does it expect? No mmdeploy pipeline.json "
                "beside it: give --preprocess mmdet (RTMDet: BGR mean/std) or yolox (raw 0–255)"
            )
        chosen = {**PREPROCESSING[default], "from": f"the {found.layout} layout's default"}
    classes = num_classes or found.num_classes
    record = {
        "family": "imported", "layout": found.layout, "num_classes": classes,
        "person_class": 0, "strides": list(STRIDES), "pad_value": PAD_VALUE,
        "mean_bgr": chosen["mean_bgr"], "std_bgr": chosen["std_bgr"],
        "rounding": chosen["rounding"], "preprocessing_from": chosen["from"],
    }  # fmt: skip
    spec = DetectorSpec.from_record(record, size)
    out = Path(out_dir)
    with staging(out, overwrite=overwrite) as stage:
        shutil.copyfile(found.path, stage / "model.onnx")
        tools = {"onnxruntime": metadata.version("onnxruntime"), "rtmw": __version__}
        manifest = Manifest(
            model=f"imported:{found.path.name}", input_size=size, target="onnx", format="onnx",
            precision="fp32", files=hash_files(stage, ["model.onnx"]),
            source={"onnx": str(found.path), "imported": True}, tools=tools,
            num_keypoints=0, simcc_split_ratio=0.0, detector=record,
            io={"file": "model.onnx", "input": found.input_name,
                "batch": "dynamic" if found.batch is None else str(found.batch),
                "outputs": list(found.outputs)},
            host=cpu_fingerprint(), created=now_utc(),
        )  # fmt: skip
        write_manifest(stage, manifest)
        frames, placed = _frames(spec)
        try:
            with runtimes.open(read_artifact(stage, allow_staging=True)) as runtime:
                outputs = runtime.infer(frames)
                detections = decode_detections(outputs, spec, placed)
        except InputError as exc:
            raise VerificationFailed(f"{onnx_path}: imported as {found.layout}: {exc}") from None
        finite = all(bool(np.isfinite(a).all()) for a in outputs.values())
        if not finite:
            raise VerificationFailed(f"{onnx_path}: NaN or Inf in its outputs on real frames")
        manifest.verification = {
            "mode": VerificationMode.IMPORTED.value, "passed": True, "layout": found.layout,
            "frames": len(frames), "boxes": [len(d) for d in detections],
            "outputs": {name: list(array.shape) for name, array in outputs.items()},
            "note": "no torch reference: layout, shapes, finite outputs and decodable boxes "
            "checked; accuracy is measured by rtmw-bench (box AP)",
        }  # fmt: skip
        write_manifest(stage, manifest)
    return out
