"""ncnn's own INT8 model format, written for ``ncnn-int8`` from our calibration crops.

ncnn's quantisation tools (``ncnn2table``, ``ncnn2int8``) are in no package a registry
offers: the ``ncnn`` wheel has the runtime only and its source distribution carries
``src/`` without ``tools/``. The two steps are small, so they are done here:

1. the table: per-output-channel weight scales (127 / max|w|) and, per quantised layer,
   one input scale (127 / the 99.999th percentile of |input| over the calibration crops,
   run through ncnn's own FP32 network), saved in ``ncnn2table``'s text format;
2. the model: ncnn's INT8 layout — weights behind the int8 tag (0x000D4B38) rounded as
   ncnn rounds, then bias, weight scales and input scale, and ``int8_scale_term`` in the
   param (2 for Convolution and InnerProduct, 1 for ConvolutionDepthWise).

ncnn's runtime then executes these layers with its INT8 kernels; everything else (and
every layer the mixed-precision policy keeps, found through pnnx's module names) stays
FP32. Unknown layer types with weights are refused, never guessed at, and the walk over
the weight file must account for every byte.
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
import zipfile
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rtmw.errors import NcnnInt8Error
from rtmw.optional import import_backend

logger = logging.getLogger(__name__)

PARAM_MAGIC = "7767517"
TAG_FP32 = 0
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_RAW = 0x0002C056
INT8_MAX = 127
# layer types that read nothing from the weight file (everything in an RTMW graph)
WEIGHTLESS = frozenset({
    "AbsVal", "BinaryOp", "Cast", "Clip", "Concat", "Crop", "Dropout", "Eltwise", "ELU",
    "Exp", "ExpandDims", "Flatten", "GELU", "HardSigmoid", "HardSwish", "Input", "Interp",
    "Log", "MatMul", "Mish", "Noop", "Padding", "Permute", "PixelShuffle", "Pooling",
    "Power", "ReLU", "Reduction", "Reorg", "Reshape", "Sigmoid", "Slice", "Softmax",
    "Split", "Squeeze", "Swish", "TanH", "Tile", "UnaryOp",
})  # fmt: skip
QUANTISABLE = {"Convolution": 2, "ConvolutionDepthWise": 1, "InnerProduct": 2}


@dataclass
class Layer:
    type: str
    name: str
    bottoms: list[str]
    tops: list[str]
    params: dict[int, str] = field(default_factory=dict)  # id → text as written

    def get(self, key: int, default: int = 0) -> int:
        return int(float(self.params[key])) if key in self.params else default

    def line(self) -> str:
        blobs = " ".join(self.bottoms + self.tops)
        params = "".join(f" {key}={value}" for key, value in self.params.items())
        return (
            f"{self.type:<24} {self.name:<24} {len(self.bottoms)} {len(self.tops)} {blobs}{params}"
        )


def read_param(path: Path) -> tuple[list[Layer], int]:
    """Layers of an ncnn .param in file order, and its blob count."""
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if not lines or lines[0] != [PARAM_MAGIC] or len(lines[1]) != 2:
        raise NcnnInt8Error(f"{path.name}: not an ncnn param file")
    blob_count = int(lines[1][1])
    layers = []
    for tokens in lines[2:]:
        kind, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
        blobs = tokens[4 : 4 + n_in + n_out]
        params = {}
        for token in tokens[4 + n_in + n_out :]:
            key, _, value = token.partition("=")
            params[int(key)] = value
        layers.append(Layer(kind, name, blobs[:n_in], blobs[n_in:], params))
    return layers, blob_count


def write_param(layers: Sequence[Layer], blob_count: int) -> str:
    head = [PARAM_MAGIC, f"{len(layers)} {blob_count}"]
    return "\n".join(head + [layer.line() for layer in layers]) + "\n"


def _align4(size: int) -> int:
    return (size + 3) // 4 * 4


@dataclass
class Read:
    """One ``ModelBin::load`` call: what it is, how many values, whether it has a tag."""

    role: str
    count: int
    tagged: bool


def _reads(layer: Layer) -> list[Read]:
    """The weight-file reads ncnn's ``load_model`` makes for this layer, in order."""
    kind, get = layer.type, layer.get
    if kind in WEIGHTLESS:
        return []
    if kind in ("Convolution", "ConvolutionDepthWise", "InnerProduct"):
        if kind != "InnerProduct" and get(19):  # dynamic weight: comes in as a blob
            return []
        if get(8):
            raise NcnnInt8Error(f"{layer.name}: already quantised (int8_scale_term set)")
        size_key, bias_key = (2, 1) if kind == "InnerProduct" else (6, 5)
        reads = [Read("weight", get(size_key), True)]
        if get(bias_key):
            reads.append(Read("bias", get(0), False))
        return reads
    if kind == "Gemm":
        if get(18):
            raise NcnnInt8Error(f"{layer.name}: quantised Gemm is not supported here")
        m, n, k = get(7), get(8), get(9)
        reads = []
        if get(4) == 1:
            reads.append(Read("A", m * k, True))
        if get(5) == 1:
            reads.append(Read("B", n * k, True))
        broadcast = get(10, 0)
        if get(6) == 1 and broadcast != -1:
            sizes = {0: 1, 1: m, 2: m, 3: n * m, 4: n}
            reads.append(Read("C", sizes[broadcast], True))
        return reads
    if kind == "MemoryData":
        w, h, d, c = get(0), get(1), get(11), get(2)
        count = w * h * d * c if d else w * h * c if c else w * h if h else w
        return [Read("data", count, get(21, 1) == 0)] if count else []
    raise NcnnInt8Error(
        f"layer {layer.name}: type {layer.type} is not known to our ncnn INT8 writer "
        "(it cannot tell how many weight bytes the layer owns)"
    )


@dataclass
class Span:
    role: str
    start: int
    end: int
    tag: int | None


def weight_spans(layers: Sequence[Layer], data: bytes) -> dict[str, list[Span]]:
    """Byte ranges of every layer's weights; the walk must end exactly at end of file."""
    offset = 0
    spans: dict[str, list[Span]] = {}
    for layer in layers:
        for read in _reads(layer):
            start, tag = offset, None
            if read.tagged:
                if offset + 4 > len(data):
                    raise NcnnInt8Error(f"{layer.name}: weight file ends early")
                (tag,) = struct.unpack_from("<I", data, offset)
                offset += 4
                if tag == TAG_FP16:
                    offset += _align4(2 * read.count)
                elif tag == TAG_INT8:
                    offset += _align4(read.count)
                elif tag in (TAG_FP32, TAG_FP32_RAW):
                    offset += 4 * read.count
                else:  # 256-entry quantisation table, then 8-bit indices
                    offset += 256 * 4 + _align4(read.count)
            else:
                offset += 4 * read.count
            spans.setdefault(layer.name, []).append(Span(read.role, start, offset, tag))
    if offset != len(data):
        raise NcnnInt8Error(
            f"weight file has {len(data)} bytes, the param accounts for {offset}: "
            "param and bin do not belong together"
        )
    return spans


def _fp32(data: bytes, span: Span) -> np.ndarray:
    if span.tag not in (None, TAG_FP32, TAG_FP32_RAW):
        raise NcnnInt8Error("ncnn-int8 starts from FP32 weights (pnnx fp16=False)")
    start = span.start + (4 if span.tag is not None else 0)
    return np.frombuffer(data, dtype="<f4", count=(span.end - start) // 4, offset=start)


def round_like_ncnn(values: np.ndarray) -> np.ndarray:
    """ncnn's float2int8: round half away from zero, clamp to ±127."""
    rounded = np.sign(values) * np.floor(np.abs(values) + 0.5)
    result: np.ndarray = np.clip(rounded, -INT8_MAX, INT8_MAX).astype(np.int8)
    return result


def weight_scales(weights: np.ndarray, channels: int) -> np.ndarray:
    absmax = np.abs(weights.reshape(channels, -1)).max(axis=1)
    return np.where(absmax > 0, INT8_MAX / np.maximum(absmax, 1e-30), 1.0).astype(np.float32)


# --- which ncnn layer is which torch module -------------------------------------------


@dataclass
class _PnnxOp:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]


def _is_module(op: _PnnxOp) -> bool:
    return op.type.startswith("nn.") and "." in op.name and not op.name.startswith("pnnx")


def module_names(pnnx_param: Path, pnnx_bin: Path) -> dict[str, str]:
    """sha256 of each weight tensor → the torch module it belongs to.

    pnnx renames BN-fused convolutions (``convbn2d_7``) but keeps module names on the
    layers around them (``neck.reduce_layers.0.activate``), and ncnn renames everything
    (``conv_18``). The weights themselves are the same bytes in both files, so they
    identify the layer; the nearest named module downstream (else upstream) names it.
    """
    ops = []
    for line in pnnx_param.read_text().splitlines()[2:]:
        tokens = line.split()
        if len(tokens) < 4:
            continue
        n_in, n_out = int(tokens[2]), int(tokens[3])
        blobs = tokens[4 : 4 + n_in + n_out]
        ops.append(_PnnxOp(tokens[0], tokens[1], blobs[:n_in], blobs[n_in:]))
    consumers: dict[str, list[_PnnxOp]] = {}
    producers: dict[str, _PnnxOp] = {}
    for op in ops:
        for blob in op.inputs:
            consumers.setdefault(blob, []).append(op)
        for blob in op.outputs:
            producers[blob] = op

    def nearest(op: _PnnxOp) -> str:
        if _is_module(op):
            return op.name

        def downstream(o: _PnnxOp) -> list[_PnnxOp]:
            return [c for b in o.outputs for c in consumers.get(b, [])]

        def upstream(o: _PnnxOp) -> list[_PnnxOp]:
            return [producers[b] for b in o.inputs if b in producers]

        for step in (downstream, upstream):
            queue, seen = deque([(op, 0)]), {op.name}
            while queue:
                current, depth = queue.popleft()
                for neighbour in step(current):
                    if neighbour.name in seen or depth >= 4:
                        continue
                    if _is_module(neighbour):
                        return neighbour.name
                    seen.add(neighbour.name)
                    queue.append((neighbour, depth + 1))
        return ""

    found: dict[str, str] = {}
    with zipfile.ZipFile(pnnx_bin) as archive:
        stored = set(archive.namelist())
        for op in ops:
            if f"{op.name}.weight" not in stored:
                continue
            raw = archive.read(f"{op.name}.weight")
            module = nearest(op)
            for suffix in (".activate", ".act"):
                module = module.removesuffix(suffix)
            found[hashlib.sha256(raw).hexdigest()] = module
    return found


def is_kept(module: str, patterns: Sequence[str]) -> bool:
    """Match a torch module path against the policy's ONNX scope prefixes ('/neck/')."""
    if not module:
        return True  # unidentified: stay in float rather than guess
    prefixes = [pattern.strip("/").replace("/", ".") + "." for pattern in patterns]
    return any((module + ".").startswith(prefix) for prefix in prefixes if prefix != ".")


# --- calibration ------------------------------------------------------------------------


def input_thresholds(
    net: Any, ncnn: Any, blobs: Sequence[str], crops: np.ndarray, *, progress: bool = True
) -> dict[str, float]:
    """Per blob, the ACTIVATION_PERCENTILE of |value| over all crops, run in ncnn FP32.

    Only the top tail is kept per blob (a running top-k), so memory stays flat.
    """
    from rtmw.export.quant_policy import ACTIVATION_PERCENTILE

    tails: dict[str, np.ndarray] = {}
    for crop in tqdm(crops, desc="ncnn calibration", unit="crop", disable=not progress):
        data = np.ascontiguousarray(crop, dtype=np.float32)
        mat = ncnn.Mat(data)
        extractor = net.create_extractor()
        extractor.set_light_mode(False)
        extractor.input("in0", mat)
        for blob in blobs:
            status, out = extractor.extract(blob)
            if status != 0:
                raise NcnnInt8Error(f"ncnn could not compute blob {blob} ({status})")
            values = np.abs(np.array(out, dtype=np.float32)).ravel()
            keep = max(1, math.ceil(values.size * len(crops) * (1 - ACTIVATION_PERCENTILE / 100)))
            pool = values if blob not in tails else np.concatenate([tails[blob], values])
            tails[blob] = np.partition(pool, len(pool) - keep)[-keep:] if len(pool) > keep else pool
        del extractor, mat, data
    return {blob: float(tail.min()) for blob, tail in tails.items()}


@dataclass
class QuantisedLayer:
    name: str
    type: str
    module: str
    weight_scales: np.ndarray
    input_scale: float


def plan(
    layers: Sequence[Layer], data: bytes, spans: dict[str, list[Span]],
    modules: dict[str, str], patterns: Sequence[str],
) -> tuple[list[Layer], list[Layer], dict[str, str]]:  # fmt: skip
    """Split the quantisable layers into (to quantise, kept in float), naming each one."""
    chosen: list[Layer] = []
    kept: list[Layer] = []
    named: dict[str, str] = {}
    for layer in layers:
        if layer.type not in QUANTISABLE or layer.name not in spans:
            continue
        weight = next(s for s in spans[layer.name] if s.role == "weight")
        raw = _fp32(data, weight).tobytes()
        module = modules.get(hashlib.sha256(raw).hexdigest(), "")
        named[layer.name] = module
        (kept if is_kept(module, patterns) else chosen).append(layer)
    return chosen, kept, named


def write_int8(
    layers: Sequence[Layer], data: bytes, spans: dict[str, list[Span]],
    quantised: dict[str, QuantisedLayer],
) -> bytes:  # fmt: skip
    """The INT8 weight file: quantised layers rewritten, every other byte copied."""
    out = bytearray()
    for layer in layers:
        entry = quantised.get(layer.name)
        for span in spans.get(layer.name, []):
            if entry is None or span.role != "weight":
                out += data[span.start : span.end]  # bias and other layers: as they were
                continue
            weights = _fp32(data, span)
            channels = len(entry.weight_scales)
            scaled = weights.reshape(channels, -1) * entry.weight_scales[:, None]
            q = round_like_ncnn(scaled.astype(np.float32)).tobytes()
            out += struct.pack("<I", TAG_INT8) + q + b"\0" * (_align4(len(q)) - len(q))
        if entry is not None:
            out += entry.weight_scales.astype("<f4").tobytes()
            out += struct.pack("<f", entry.input_scale)
    return bytes(out)


def table_text(quantised: Sequence[QuantisedLayer]) -> str:
    """ncnn2table's format: weight scales as '<layer>_param_0 …', then input scales."""
    lines = [f"{q.name}_param_0 " + " ".join(f"{s:g}" for s in q.weight_scales) for q in quantised]
    lines += [f"{q.name} {q.input_scale:g}" for q in quantised]
    return "\n".join(lines) + "\n"


def quantise_model(
    param_path: Path, bin_path: Path, pnnx_param: Path, pnnx_bin: Path,
    crops: np.ndarray, patterns: Sequence[str], out_dir: Path, *, progress: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Write model.ncnn.param/.bin (INT8) and model.ncnn.table into ``out_dir``."""
    ncnn: Any = import_backend("ncnn", "ncnn")
    layers, blob_count = read_param(param_path)
    data = bin_path.read_bytes()
    spans = weight_spans(layers, data)
    modules = module_names(pnnx_param, pnnx_bin)
    chosen, kept, named = plan(layers, data, spans, modules, patterns)
    if not chosen:
        raise NcnnInt8Error("the policy keeps every quantisable layer: nothing to quantise")
    unnamed = [name for name, module in named.items() if not module]
    if unnamed:
        logger.warning("ncnn-int8: %d layers not traced to a module stay FP32", len(unnamed))

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 2
    # calibration statistics come from IEEE f32: ncnn's defaults store (x86) or compute
    # (ARM) activations in fp16, which would move the percentile ranges with the host
    for option in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic",
                   "use_bf16_storage", "use_bf16_packed"):  # fmt: skip
        setattr(net.opt, option, False)
    net.load_param(str(param_path))
    net.load_model(str(bin_path))
    try:
        thresholds = input_thresholds(
            net, ncnn, [layer.bottoms[0] for layer in chosen], crops, progress=progress
        )
    finally:
        net.clear()
    quantised: dict[str, QuantisedLayer] = {}
    for layer in chosen:
        weight = next(s for s in spans[layer.name] if s.role == "weight")
        channels = layer.get(7, 1) if layer.type == "ConvolutionDepthWise" else layer.get(0)
        threshold = thresholds[layer.bottoms[0]]
        quantised[layer.name] = QuantisedLayer(
            name=layer.name,
            type=layer.type,
            module=named[layer.name],
            weight_scales=weight_scales(_fp32(data, weight), channels),
            input_scale=INT8_MAX / threshold if threshold > 0 else 1.0,
        )
        layer.params[8] = str(QUANTISABLE[layer.type])
    (out_dir / "model.ncnn.param").write_text(write_param(layers, blob_count))
    (out_dir / "model.ncnn.bin").write_bytes(write_int8(layers, data, spans, quantised))
    (out_dir / "model.ncnn.table").write_text(table_text(list(quantised.values())))
    return {
        "quantised_layers": len(quantised),
        "kept_in_float": len(kept),
        "not_traced_to_a_module": len(unnamed),
        "quantised_blocks": sorted({".".join(q.module.split(".")[:2]) for q in quantised.values()}),
        "table": "model.ncnn.table (ncnn2table format)",
    }
