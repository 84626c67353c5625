"""The whole top-down chain around any inference callable.

``TopDown(infer, input_size)`` is what torch, onnxruntime, OpenVINO, ncnn and TensorRT
all run through, so that differences between deployments are differences of the
model, never of the pixels fed to it or of the decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rtmw.errors import InputError
from rtmw.keypoints import FLIP_INDICES, NUM_KEYPOINTS
from rtmw.pipeline.decode import check_simcc, crop_to_image, decode_simcc, fuse_flip
from rtmw.pipeline.preprocess import CropBatch, preprocess

# the one inference signature of the project: every runtime adapter, the torch reference
# and the pipeline speak it: (N,3,H,W) float32 → (simcc_x, simcc_y)
InferFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
# crops per inference call unless told otherwise: 1000 boxes in one frame must not build a
# 2000-crop float batch (8.5 GB measured); persons are processed in chunks that fit
DEFAULT_MAX_BATCH = 32


@dataclass
class PoseResult:
    """Keypoints (N,133,2) in image pixels, scores (N,133), and the crops' geometry."""

    keypoints: np.ndarray
    scores: np.ndarray
    centers: np.ndarray
    scales: np.ndarray

    def __len__(self) -> int:
        return len(self.keypoints)

    @property
    def areas(self) -> np.ndarray:
        """Padded box areas, which mmpose uses for OKS-NMS."""
        areas: np.ndarray = np.prod(self.scales, axis=1)
        return areas


class TopDown:
    """Image + person boxes → whole-body keypoints, with optional flip test.

    ``infer`` takes an (N,3,H,W) float32 batch and returns (simcc_x, simcc_y) as numpy
    arrays. With flip test the original and mirrored crops go through one call of
    2N, so batched backends see one batch; ``max_batch`` (default 32) bounds the crops
    per call, and a frame with more persons is processed in chunks of persons, so memory
    stays bounded however many boxes come in.
    """

    def __init__(
        self,
        infer: InferFn,
        input_size: tuple[int, int],
        *,
        flip_test: bool = True,
        split_ratio: float = 2.0,
        max_batch: int | None = DEFAULT_MAX_BATCH,
        flip_in_batch: bool = True,
    ) -> None:
        if max_batch is not None and max_batch < 1:
            raise InputError(f"max_batch must be ≥ 1, got {max_batch}")
        self.infer = infer
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.flip_test = flip_test
        self.split_ratio = split_ratio
        self.max_batch = max_batch
        # the mirrored crops in the same inference call as the originals (one batch of 2N);
        # False runs them as a second call, to measure what batching them together gives
        self.flip_in_batch = flip_in_batch

    def preprocess(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> CropBatch:
        return preprocess(image, boxes_xyxy, self.input_size)

    def _infer_chunked(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        step = self.max_batch or len(inputs)
        outs_x, outs_y = [], []
        for start in range(0, len(inputs), step):
            sx, sy = self.infer(inputs[start : start + step])
            outs_x.append(np.asarray(sx, dtype=np.float32))
            outs_y.append(np.asarray(sy, dtype=np.float32))
        simcc_x = np.concatenate(outs_x) if len(outs_x) > 1 else outs_x[0]
        simcc_y = np.concatenate(outs_y) if len(outs_y) > 1 else outs_y[0]
        check_simcc(simcc_x, simcc_y, self.input_size, self.split_ratio)
        if len(simcc_x) != len(inputs):
            raise InputError(f"inference returned {len(simcc_x)} results for {len(inputs)} crops")
        return simcc_x, simcc_y

    def model_inputs(self, batch: CropBatch) -> np.ndarray:
        """What one frame sends to the model: the crops, and their mirrors when flip testing."""
        if not self.flip_test:
            return batch.inputs
        both = np.concatenate([batch.inputs, batch.inputs[..., ::-1]], axis=0)
        return np.ascontiguousarray(both)

    def model_outputs(
        self, simcc_x: np.ndarray, simcc_y: np.ndarray, persons: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs of :meth:`model_inputs` → per-person logits (flip-fused)."""
        check_simcc(simcc_x, simcc_y, self.input_size, self.split_ratio)
        if not self.flip_test:
            return simcc_x, simcc_y
        n = persons
        return fuse_flip(simcc_x[:n], simcc_y[:n], simcc_x[n:], simcc_y[n:], FLIP_INDICES)

    def run_model(self, batch: CropBatch) -> tuple[np.ndarray, np.ndarray]:
        """Raw (fused, when flip testing) simcc logits for a crop batch."""
        n = len(batch)
        if not self.flip_test:
            return self._infer_chunked(batch.inputs)
        if not self.flip_in_batch:
            x, y = self._infer_chunked(batch.inputs)
            fx, fy = self._infer_chunked(np.ascontiguousarray(batch.inputs[..., ::-1]))
            return fuse_flip(x, y, fx, fy, FLIP_INDICES)
        simcc_x, simcc_y = self._infer_chunked(self.model_inputs(batch))
        return fuse_flip(simcc_x[:n], simcc_y[:n], simcc_x[n:], simcc_y[n:], FLIP_INDICES)

    def decode(self, simcc_x: np.ndarray, simcc_y: np.ndarray, batch: CropBatch) -> PoseResult:
        keypoints, scores = decode_simcc(simcc_x, simcc_y, self.split_ratio)
        image_kpts = crop_to_image(keypoints, batch.centers, batch.scales, self.input_size)
        return PoseResult(image_kpts, scores, batch.centers, batch.scales)

    def __call__(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> PoseResult:
        boxes = np.asarray(boxes_xyxy)
        persons = self.max_batch // (2 if self.flip_test else 1) if self.max_batch else 0
        if persons and boxes.ndim == 2 and len(boxes) > max(persons, 1):
            step = max(persons, 1)
            parts = [self(image, boxes[i : i + step]) for i in range(0, len(boxes), step)]
            return PoseResult(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                                ("keypoints", "scores", "centers", "scales")))  # fmt: skip
        batch = self.preprocess(image, boxes_xyxy)
        if len(batch) == 0:
            return PoseResult(
                np.zeros((0, NUM_KEYPOINTS, 2), np.float32),
                np.zeros((0, NUM_KEYPOINTS), np.float32),
                np.zeros((0, 2)),
                np.zeros((0, 2)),
            )
        simcc_x, simcc_y = self.run_model(batch)
        return self.decode(simcc_x, simcc_y, batch)
