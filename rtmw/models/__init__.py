"""RTMW and RTMDet architectures, their registries and mmpose/mmdet checkpoint I/O."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rtmw.hashing import sha256_file
from rtmw.models.checkpoint import (
    CheckpointContents,
    build,
    demo_checkpoint,
    expected_layout,
    identify,
    load_checkpoint,
    model_from_contents,
    read_checkpoint,
    save_checkpoint,
)
from rtmw.models.detector_checkpoint import (
    build_detector,
    detector_from_contents,
    identify_detector,
    is_detector_state,
    load_detector,
    save_detector_checkpoint,
)
from rtmw.models.rtmdet import DETECTOR_ZOO, RTMDet, RTMDetConfig, get_detector_config
from rtmw.models.rtmw import RTMW
from rtmw.models.zoo import (
    DEMO_3D_NAME,
    DEMO_NAME,
    SMALL_DEMO_NAME,
    ZOO,
    RTMWConfig,
    get_config,
    list_models,
    published_models,
)

if TYPE_CHECKING:
    from torch import nn

# a configuration of either family: pose (RTMW, RTMW3D) or person detector (RTMDet)
ModelConfig = RTMWConfig | RTMDetConfig


def any_model_from_contents(contents: CheckpointContents) -> tuple[nn.Module, ModelConfig]:
    """The model a checkpoint holds, whichever family: an mmdet file (bbox_head.*) is an
    RTMDet detector, an mmpose one an RTMW pose model; each loads strictly."""
    if is_detector_state(contents.state_dict):
        return detector_from_contents(contents)
    return model_from_contents(contents)


__all__ = [
    "DEMO_3D_NAME",
    "DEMO_NAME",
    "DETECTOR_ZOO",
    "RTMW",
    "SMALL_DEMO_NAME",
    "ZOO",
    "CheckpointContents",
    "ModelConfig",
    "RTMDet",
    "RTMDetConfig",
    "RTMWConfig",
    "any_model_from_contents",
    "build",
    "build_detector",
    "demo_checkpoint",
    "detector_from_contents",
    "expected_layout",
    "get_config",
    "get_detector_config",
    "identify",
    "identify_detector",
    "is_detector_state",
    "list_models",
    "load_checkpoint",
    "load_detector",
    "model_from_contents",
    "published_models",
    "read_checkpoint",
    "save_checkpoint",
    "save_detector_checkpoint",
    "sha256_file",
]
