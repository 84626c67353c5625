"""Faithfulness of the RTMW family to mmpose: layout, parameter counts, MACs, round trips."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from rtmw.errors import RtmwError
from rtmw.models import (
    DEMO_NAME,
    RTMW,
    SMALL_DEMO_NAME,
    build,
    expected_layout,
    get_config,
    load_checkpoint,
    published_models,
    save_checkpoint,
)

ALL = published_models()

# Written down from mmpose's source (cspnext.py, cspnext_pafpn.py, rtmw_head.py,
# rtmcc_block.py): blocks per backbone stage = max(round(n × deepen), 1) for n = 3, 6, 6, 3.
EXPECTED_BLOCKS = {
    "rtmw-m-256x192": (2, 4, 4, 2),
    "rtmw-l-256x192": (3, 6, 6, 3),
    "rtmw-x-256x192": (4, 8, 8, 4),
    "rtmw-l-384x288": (3, 6, 6, 3),
    "rtmw-x-384x288": (4, 8, 8, 4),
}
# Stem and stage widths: int(64·w // 2), int(64·w), then int(c·w) for 128, 256, 512, 1024.
EXPECTED_WIDTHS = {
    0.75: (24, 48, 96, 192, 384, 768),
    1.0: (32, 64, 128, 256, 512, 1024),
    1.25: (40, 80, 160, 320, 640, 1280),
}
# The head's own tensors, identical in every configuration but for shapes.
HEAD_KEYS = {
    "head.final_layer.conv.weight", "head.final_layer.bn.weight", "head.final_layer.bn.bias",
    "head.final_layer.bn.running_mean", "head.final_layer.bn.running_var",
    "head.final_layer.bn.num_batches_tracked",
    "head.final_layer2.conv.weight", "head.final_layer2.bn.weight", "head.final_layer2.bn.bias",
    "head.final_layer2.bn.running_mean", "head.final_layer2.bn.running_var",
    "head.final_layer2.bn.num_batches_tracked",
    "head.conv_dec.conv.weight", "head.conv_dec.bn.weight", "head.conv_dec.bn.bias",
    "head.conv_dec.bn.running_mean", "head.conv_dec.bn.running_var",
    "head.conv_dec.bn.num_batches_tracked",
    "head.mlp.0.g", "head.mlp.1.weight", "head.mlp2.0.g", "head.mlp2.1.weight",
    "head.gau.gamma", "head.gau.beta", "head.gau.o.weight", "head.gau.uv.weight",
    "head.gau.ln.g", "head.gau.res_scale.scale", "head.cls_x.weight", "head.cls_y.weight",
}  # fmt: skip
PUBLISHED_GMACS = {
    "rtmw-m-256x192": 4.30,
    "rtmw-l-256x192": 7.89,
    "rtmw-x-256x192": 13.04,
    "rtmw-l-384x288": 17.64,
    "rtmw-x-384x288": 29.24,
}


def _per_prefix(keys: list[str]) -> Counter[str]:
    return Counter(k.split(".")[0] for k in keys)


@pytest.mark.parametrize("name", ALL)
def test_layout_matches_mmpose(name: str) -> None:
    config = get_config(name)
    layout = expected_layout(config)
    keys = list(layout)
    assert set(_per_prefix(keys)) == {"backbone", "neck", "head"}
    head = {k for k in keys if k.startswith("head.")}
    assert head == HEAD_KEYS
    blocks = tuple(
        len(
            {
                m.group(1)
                for k in keys
                if (m := re.match(rf"backbone\.stage{s}\.\d\.blocks\.(\d+)\.", k))
            }
        )
        for s in range(1, 5)
    )
    assert blocks == EXPECTED_BLOCKS[name]
    widths = EXPECTED_WIDTHS[config.widen_factor]
    assert layout["backbone.stem.0.conv.weight"] == (widths[0], 3, 3, 3)
    assert layout["backbone.stem.2.conv.weight"] == (widths[1], widths[0], 3, 3)
    for stage, channels in zip(range(1, 5), widths[2:], strict=True):
        assert layout[f"backbone.stage{stage}.0.conv.weight"][0] == channels
    # channel attention in every backbone CSP layer, none in the neck
    assert "backbone.stage4.2.attention.fc.bias" in layout
    assert not any("attention" in k for k in keys if k.startswith("neck."))
    # SPP only in the last stage; no residual blocks there is a forward matter, not a key
    assert layout["backbone.stage4.1.conv2.conv.weight"][0] == widths[-1]
    # neck: two of each, the stride-16/32 outputs only
    for module in ("reduce_layers", "top_down_blocks", "downsamples", "bottom_up_blocks"):
        assert {k.split(".")[2] for k in keys if k.startswith(f"neck.{module}.")} == {"0", "1"}
    c = config.head_in_channels
    fw, fh = config.featuremap_size
    wx, wy = config.simcc_size
    assert layout["head.final_layer.conv.weight"] == (133, c, 7, 7)
    assert layout["head.conv_dec.conv.weight"] == (c // 4, c // 4, 7, 7)
    assert layout["head.final_layer2.conv.weight"] == (133, c // 2 + c // 4, 7, 7)
    assert layout["head.mlp.1.weight"] == (128, fw * fh)
    assert layout["head.mlp2.1.weight"] == (128, fw * fh * 4)
    assert layout["head.gau.uv.weight"] == (2 * 512 + 128, 256)
    assert layout["head.gau.gamma"] == (2, 128)
    assert layout["head.cls_x.weight"] == (wx, 256)
    assert layout["head.cls_y.weight"] == (wy, 256)


@pytest.mark.parametrize("name", ALL)
def test_parameter_and_tensor_counts_recorded(name: str) -> None:
    config = get_config(name)
    with torch.device("meta"):
        model = RTMW(config)
    params = sum(p.numel() for p in model.parameters())
    tensors = len(model.state_dict())
    assert config.num_parameters == params
    assert config.num_state_tensors == tensors


def test_known_counts_from_mmpose() -> None:
    """Figures measured on mmpose's own modules (issue #3)."""
    assert (
        get_config("rtmw-m-256x192").num_parameters,
        get_config("rtmw-m-256x192").num_state_tensors,
    ) == (32_258_207, 620)
    assert (
        get_config("rtmw-l-384x288").num_parameters,
        get_config("rtmw-l-384x288").num_state_tensors,
    ) == (57_354_295, 728)


@pytest.mark.parametrize("name", ALL)
def test_macs_match_published(name: str) -> None:
    config = get_config(name)
    model = RTMW(config).eval()
    width, height = config.input_size
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, height, width))
    gmacs = counter.get_total_flops() / 2e9
    assert gmacs == pytest.approx(PUBLISHED_GMACS[name], rel=0.01)
    assert config.published_gmacs == pytest.approx(gmacs, rel=0.01)  # the table rounds


@pytest.mark.parametrize("name", ALL)
def test_round_trip_bit_identical(name: str, tmp_path: Path) -> None:
    config = get_config(name)
    model = build(name, seed=1)
    path = save_checkpoint(model, tmp_path / f"{name}.pth")
    raw = torch.load(path, map_location="cpu", weights_only=False)
    assert set(raw) == {"meta", "state_dict"}
    assert list(raw["state_dict"]) == list(model.state_dict())
    loaded, found = load_checkpoint(path)
    assert found.name == name
    assert not loaded.training
    width, height = config.input_size
    x = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref_x, ref_y = model(x)
        out_x, out_y = loaded(x)
    assert ref_x.shape == (2, 133, width * 2) and ref_y.shape == (2, 133, height * 2)
    assert torch.equal(ref_x, out_x) and torch.equal(ref_y, out_y)


def test_outputs_depend_on_every_stage() -> None:
    """Zeroing the stride-16 path (neck) must change the logits: nothing is dead code."""
    model = build("rtmw-m-256x192", seed=2)
    x = torch.randn(1, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x)[0]
        model.head.final_layer2.bn.bias.add_(5.0)
        changed = model(x)[0]
    assert not torch.allclose(ref, changed)


def test_scalenorm_survives_fp16_overflow() -> None:
    """‖x‖₂ of large FP16 activations overflows in FP16; ours normalises in FP32."""
    from rtmw.models.layers import ScaleNorm

    norm = ScaleNorm(512)
    x = torch.full((1, 2, 512), 3000.0, dtype=torch.float16)
    assert torch.isinf(torch.linalg.vector_norm(x, dim=-1)).all()  # the trap is real
    out = norm(x)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert out.float().mean().item() == pytest.approx(1.0, rel=1e-3)


def test_unknown_zoo_name_lists_known() -> None:
    with pytest.raises(RtmwError, match=r"known: .*rtmw-l-256x192"):
        get_config("rtmw-s")


def test_demo_model_ships_pinned_and_loads() -> None:
    """The product demo: 1/4 width at RTMW-m's depth ratio, ≤ 25 MB, its sha256 pinned."""
    from rtmw.hashing import sha256_file
    from rtmw.models import demo_checkpoint, load_checkpoint

    config = get_config(DEMO_NAME)
    assert config.stage_blocks == (2, 4, 4, 2)
    assert config.stage_channels == (32, 64, 128, 256)
    path = demo_checkpoint()
    assert config.official is not None and sha256_file(path) == config.official.sha256
    assert path.stat().st_size < 25e6
    model, loaded = load_checkpoint(path)
    assert loaded.name == DEMO_NAME
    assert sum(p.numel() for p in model.parameters()) == config.num_parameters


def test_small_demo_config_is_a_reduced_rtmw() -> None:
    """Same modules and head as the published models, one block per stage, 1/8 width."""
    config = get_config(SMALL_DEMO_NAME)
    assert config.published is None and config.input_size == (192, 256)
    assert config.stage_blocks == (1, 1, 1, 1)
    assert config.stage_channels == (16, 32, 64, 128)
    layout = expected_layout(config)
    assert {k for k in layout if k.startswith("head.")} == HEAD_KEYS
    with torch.device("meta"):
        model = RTMW(config)
    assert sum(p.numel() for p in model.parameters()) == config.num_parameters
    assert len(model.state_dict()) == config.num_state_tensors
    # small enough to ship inside the package (≤ 25 MB as FP32)
    assert (config.num_parameters or 0) * 4 < 25e6
