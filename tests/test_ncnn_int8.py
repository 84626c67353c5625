"""ncnn's INT8 format, written by us: the param/bin walk, rounding and byte layout."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from rtmw.export.targets.ncnn.int8_format import (
    TAG_FP16,
    TAG_INT8,
    NcnnInt8Error,
    QuantisedLayer,
    is_kept,
    read_param,
    round_like_ncnn,
    table_text,
    weight_scales,
    weight_spans,
    write_int8,
    write_param,
)

PARAM = """7767517
7 8
Input                    in0                      0 1 in0
Convolution              conv_0                   1 1 in0 1 0=4 1=3 11=3 5=1 6=108
Swish                    silu_0                   1 1 1 2
ConvolutionDepthWise     convdw_0                 1 1 2 3 0=4 1=3 5=1 6=36 7=4
InnerProduct             linear_0                 1 1 3 4 0=2 1=1 2=8
MemoryData               attr_0                   0 1 5 0=3
Gemm                     gemm_0                   1 1 4 6 4=0 5=1 6=1 7=1 8=2 9=2 10=4
"""


def _fp32(values: np.ndarray, tag: int | None = 0) -> bytes:
    head = b"" if tag is None else struct.pack("<I", tag)
    return head + values.astype("<f4").tobytes()


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, bytes, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    tensors = {
        "conv_w": rng.standard_normal(108), "conv_b": rng.standard_normal(4),
        "dw_w": rng.standard_normal(36), "dw_b": rng.standard_normal(4),
        "fc_w": rng.standard_normal(8), "fc_b": rng.standard_normal(2),
        "mem": rng.standard_normal(3), "gemm_b": rng.standard_normal(4),
    }  # fmt: skip
    fp16 = rng.standard_normal(2).astype("<f2").tobytes()  # Gemm C, stored FP16
    data = (
        _fp32(tensors["conv_w"]) + _fp32(tensors["conv_b"], None)
        + _fp32(tensors["dw_w"]) + _fp32(tensors["dw_b"], None)
        + _fp32(tensors["fc_w"]) + _fp32(tensors["fc_b"], None)
        + _fp32(tensors["mem"], None)
        + _fp32(tensors["gemm_b"]) + struct.pack("<I", TAG_FP16) + fp16
    )  # fmt: skip
    path = tmp_path / "m.param"
    path.write_text(PARAM)
    return path, data, tensors


def test_param_round_trip_and_every_byte_accounted(model: tuple) -> None:
    path, data, _ = model
    layers, blob_count = read_param(path)
    assert [layer.type for layer in layers][:2] == ["Input", "Convolution"]
    assert layers[3].get(7) == 4 and layers[1].get(19) == 0
    again = path.with_name("again.param")
    again.write_text(write_param(layers, blob_count))
    assert read_param(again) == (layers, blob_count)
    spans = weight_spans(layers, data)
    assert [s.role for s in spans["conv_0"]] == ["weight", "bias"]
    assert spans["conv_0"][0].end - spans["conv_0"][0].start == 4 + 108 * 4
    assert [s.role for s in spans["gemm_0"]] == ["B", "C"]
    assert spans["gemm_0"][-1].end == len(data)
    with pytest.raises(NcnnInt8Error, match="do not belong together"):
        weight_spans(layers, data + b"\0\0\0\0")
    with pytest.raises(NcnnInt8Error, match="ends early"):
        weight_spans(layers, data[: spans["gemm_0"][-1].start])


def test_unknown_weighted_layers_and_quantised_input_are_refused(model: tuple) -> None:
    path, data, _ = model
    path.write_text(PARAM.replace("Swish   ", "LSTM    "))
    with pytest.raises(NcnnInt8Error, match="LSTM is not known"):
        weight_spans(read_param(path)[0], data)
    path.write_text(PARAM.replace("6=108", "6=108 8=2"))
    with pytest.raises(NcnnInt8Error, match="already quantised"):
        weight_spans(read_param(path)[0], data)
    path.write_text("not a param\n")
    with pytest.raises(NcnnInt8Error, match="not an ncnn param"):
        read_param(path)


def test_rounding_is_ncnns() -> None:
    values = np.array([0.5, -0.5, 1.5, 2.5, -2.5, 0.49, 300.0, -300.0], np.float32)
    assert round_like_ncnn(values).tolist() == [1, -1, 2, 3, -3, 0, 127, -127]


def test_int8_layout(model: tuple) -> None:
    path, data, tensors = model
    layers, _ = read_param(path)
    spans = weight_spans(layers, data)
    scales = weight_scales(tensors["conv_w"].astype(np.float32), 4)
    per_channel = np.abs(tensors["conv_w"].reshape(4, -1)).max(1)
    assert np.allclose(scales, 127 / per_channel)
    quantised = {"conv_0": QuantisedLayer("conv_0", "Convolution", "backbone.stem.0", scales, 9.5)}
    out = write_int8(layers, data, spans, quantised)
    (tag,) = struct.unpack_from("<I", out, 0)
    assert tag == TAG_INT8
    q = np.frombuffer(out, np.int8, 108, 4)
    expected = round_like_ncnn(
        (tensors["conv_w"].astype(np.float32).reshape(4, -1) * scales[:, None]).ravel()
    )
    assert np.array_equal(q, expected)
    assert np.abs(q.reshape(4, -1)).max(1).tolist() == [127] * 4  # each channel uses the range
    offset = 4 + 108  # 108 is 4-aligned
    assert out[offset : offset + 16] == tensors["conv_b"].astype("<f4").tobytes()
    offset += 16
    assert np.allclose(np.frombuffer(out, "<f4", 4, offset), scales)
    assert struct.unpack_from("<f", out, offset + 16)[0] == 9.5
    rest = out[offset + 20 :]
    assert rest == data[spans["conv_0"][-1].end :]  # every other layer copied byte for byte
    table = table_text(list(quantised.values())).splitlines()
    assert table[0].startswith("conv_0_param_0 ") and len(table[0].split()) == 5
    assert table[1] == "conv_0 9.5"


def test_policy_patterns_match_module_paths() -> None:
    policy = ("/head/mlp/", "/head/gau/", "/neck/")
    assert is_kept("neck.reduce_layers.0", policy)
    assert is_kept("head.gau.uv", policy)
    assert not is_kept("head.mlp2.1", policy)  # '/head/mlp/' is not '/head/mlp2/'
    assert not is_kept("backbone.stage4.2.attention.fc", policy)
    assert is_kept("", policy)  # a layer not traced to a module stays in float
    assert not is_kept("neck.out_convs.1", ())
