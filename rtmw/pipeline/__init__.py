"""The single pre/post-processing of the project (numpy + OpenCV; no torch)."""

from rtmw.outputs import (
    POSE_OUTPUTS_2D,
    POSE_OUTPUTS_3D,
    SIMCC_X,
    SIMCC_Y,
    SIMCC_Z,
    ModelOutputs,
    as_outputs,
)
from rtmw.pipeline.decode import (
    camera_keypoints,
    crop_to_image,
    decode_depth,
    decode_simcc,
    flip_simcc_x,
    fuse_flip,
)
from rtmw.pipeline.draw import draw_poses, save_image
from rtmw.pipeline.preprocess import (
    MEAN_RGB,
    STD_RGB,
    CropBatch,
    boxes_to_center_scale,
    check_boxes,
    check_image,
    crop_persons,
    normalize_crops,
    preprocess,
    warp_matrices,
)
from rtmw.pipeline.topdown import (
    DEFAULT_MAX_BATCH,
    DepthCodec,
    InferFn,
    PoseResult,
    TopDown,
)

__all__ = [
    "DEFAULT_MAX_BATCH",
    "MEAN_RGB",
    "POSE_OUTPUTS_2D",
    "POSE_OUTPUTS_3D",
    "SIMCC_X",
    "SIMCC_Y",
    "SIMCC_Z",
    "STD_RGB",
    "CropBatch",
    "DepthCodec",
    "InferFn",
    "ModelOutputs",
    "PoseResult",
    "TopDown",
    "as_outputs",
    "boxes_to_center_scale",
    "camera_keypoints",
    "check_boxes",
    "check_image",
    "crop_persons",
    "crop_to_image",
    "decode_depth",
    "decode_simcc",
    "draw_poses",
    "flip_simcc_x",
    "fuse_flip",
    "normalize_crops",
    "preprocess",
    "save_image",
    "warp_matrices",
]
