"""The single pre/post-processing of the project (numpy + OpenCV; no torch)."""

from rtmw.pipeline.decode import crop_to_image, decode_simcc, flip_simcc_x, fuse_flip
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
from rtmw.pipeline.topdown import DEFAULT_MAX_BATCH, InferFn, PoseResult, TopDown

__all__ = [
    "DEFAULT_MAX_BATCH",
    "MEAN_RGB",
    "STD_RGB",
    "CropBatch",
    "InferFn",
    "PoseResult",
    "TopDown",
    "boxes_to_center_scale",
    "check_boxes",
    "check_image",
    "crop_persons",
    "crop_to_image",
    "decode_simcc",
    "draw_poses",
    "flip_simcc_x",
    "fuse_flip",
    "normalize_crops",
    "preprocess",
    "save_image",
    "warp_matrices",
]
