"""Multiply-accumulates per crop of an RTMW configuration, counted on the torch model.

torch's FlopCounterMode counts 2 FLOPs per multiply-accumulate of the convolutions,
linear layers and matrix products; the published GMACs of RTMW-m/l/x are reproduced to
within 1 % (tests/test_models.py).
"""

from __future__ import annotations

import functools

import torch
from torch.utils.flop_counter import FlopCounterMode

from rtmw.models.rtmw import RTMW
from rtmw.models.zoo import get_config


@functools.lru_cache(maxsize=16)
def macs_per_crop(config_name: str) -> int:
    """MACs of one forward pass on one crop of ``config_name`` (random weights suffice)."""
    config = get_config(config_name)
    model = RTMW(config).eval()
    width, height = config.input_size
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, height, width))
    return int(counter.get_total_flops() // 2)
