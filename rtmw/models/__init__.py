"""RTMW architecture, the zoo registry and mmpose-format checkpoint I/O."""

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

__all__ = [
    "DEMO_3D_NAME",
    "DEMO_NAME",
    "RTMW",
    "SMALL_DEMO_NAME",
    "ZOO",
    "CheckpointContents",
    "RTMWConfig",
    "build",
    "demo_checkpoint",
    "expected_layout",
    "get_config",
    "identify",
    "list_models",
    "load_checkpoint",
    "model_from_contents",
    "published_models",
    "read_checkpoint",
    "save_checkpoint",
    "sha256_file",
]
