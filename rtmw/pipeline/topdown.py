"""The whole top-down chain around any inference callable.

``TopDown(infer, input_size)`` is what torch, onnxruntime, OpenVINO, ncnn and TensorRT
all run through, so that differences between deployments are differences of the
model, never of the pixels fed to it or of the decoding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from rtmw.errors import InputError
from rtmw.keypoints import FLIP_INDICES, NUM_KEYPOINTS
from rtmw.outputs import SIMCC_X, SIMCC_Y, SIMCC_Z, ModelOutputs, as_outputs
from rtmw.pipeline.decode import (
    check_simcc,
    crop_to_image,
    decode_depth,
    decode_simcc,
    fuse_flip,
)
from rtmw.pipeline.preprocess import CropBatch, preprocess

# the one inference signature of the project: every runtime adapter, the torch reference
# and the pipeline speak it: (N,3,H,W) float32 → outputs by name (simcc_x, simcc_y, and
# simcc_z from a 3D model). A user's own callable may return the arrays as a tuple in that
# order; TopDown names them.
InferFn = Callable[[np.ndarray], ModelOutputs]
# crops per inference call unless told otherwise: 1000 boxes in one frame must not build a
# 2000-crop float batch (8.5 GB measured); persons are processed in chunks that fit
DEFAULT_MAX_BATCH = 32


@dataclass(frozen=True)
class DepthCodec:
    """What decoding RTMW3D's simcc_z needs (mmpose's SimCC3DLabel settings)."""

    depth_size: int  # the codec's third input size: simcc_z has depth_size × split bins
    z_range: float  # metres spanned on each side of the root
    root_index: tuple[int, ...] = (11, 12)

    @property
    def metres_per_px(self) -> float:
        """Metres per depth pixel of the decoded z (the codec's span over its bins)."""
        return self.z_range / (self.depth_size / 2)

    def to_dict(self) -> dict[str, object]:
        return {"depth_size": self.depth_size, "z_range": self.z_range,
                "root_index": list(self.root_index)}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, object] | None) -> DepthCodec | None:
        if not data:
            return None
        root = data.get("root_index", (11, 12))
        index = tuple(int(i) for i in root) if isinstance(root, (list, tuple)) else (11, 12)
        return cls(int(str(data["depth_size"])), float(str(data["z_range"])), index)


@dataclass
class PoseResult:
    """Keypoints (N,133,2) in image pixels, scores (N,133), and the crops' geometry; a 3D
    model adds ``depth`` (N,133): root-relative z in metres (+ away from the camera)."""

    keypoints: np.ndarray
    scores: np.ndarray
    centers: np.ndarray
    scales: np.ndarray
    depth: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keypoints)

    @property
    def areas(self) -> np.ndarray:
        """Padded box areas, which mmpose uses for OKS-NMS."""
        areas: np.ndarray = np.prod(self.scales, axis=1)
        return areas


class TopDown:
    """Image + person boxes → whole-body keypoints, with optional flip test.

    ``infer`` takes an (N,3,H,W) float32 batch and returns its outputs by name
    (:class:`ModelOutputs`): simcc_x, simcc_y, and simcc_z when ``depth`` describes a
    3D model. With flip test the
    original and mirrored crops go through one call of 2N, so batched backends see one
    batch; ``max_batch`` (default 32) bounds the crops per call, and a frame with more
    persons is processed in chunks of persons, so memory stays bounded however many boxes
    come in.
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
        depth: DepthCodec | None = None,
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
        self.depth = depth

    def preprocess(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> CropBatch:
        return preprocess(image, boxes_xyxy, self.input_size)

    def check(self, outputs: ModelOutputs) -> None:
        unknown = sorted(set(outputs) - {SIMCC_X, SIMCC_Y, SIMCC_Z})
        if unknown or SIMCC_X not in outputs or SIMCC_Y not in outputs:
            raise InputError(
                f"inference returned outputs {', '.join(outputs) or 'none'}; a pose model "
                "gives simcc_x, simcc_y (and simcc_z in 3D)"
            )
        depth_size = self.depth.depth_size if self.depth else None
        check_simcc(outputs[SIMCC_X], outputs[SIMCC_Y], self.input_size, self.split_ratio,
                    outputs.get(SIMCC_Z), depth_size)  # fmt: skip

    def _infer_chunked(self, inputs: np.ndarray) -> ModelOutputs:
        step = self.max_batch or len(inputs)
        chunks = [as_outputs(self.infer(inputs[start : start + step]))
                  for start in range(0, len(inputs), step)]  # fmt: skip
        outputs = chunks[0] if len(chunks) == 1 else ModelOutputs.concatenate(chunks)
        self.check(outputs)
        if outputs.batch != len(inputs):
            raise InputError(f"inference returned {outputs.batch} results for {len(inputs)} crops")
        return outputs

    def model_inputs(self, batch: CropBatch) -> np.ndarray:
        """What one frame sends to the model: the crops, and their mirrors when flip testing."""
        if not self.flip_test:
            return batch.inputs
        both = np.concatenate([batch.inputs, batch.inputs[..., ::-1]], axis=0)
        return np.ascontiguousarray(both)

    def model_outputs(self, outputs: ModelOutputs, persons: int) -> ModelOutputs:
        """Raw outputs of :meth:`model_inputs` → per-person logits (flip-fused)."""
        outputs = as_outputs(outputs)
        self.check(outputs)
        if not self.flip_test:
            return outputs
        n = persons
        return fuse_flip(outputs.map(lambda o: o[:n]), outputs.map(lambda o: o[n:]), FLIP_INDICES)

    def run_model(self, batch: CropBatch) -> ModelOutputs:
        """Raw (fused, when flip testing) simcc logits for a crop batch."""
        if not self.flip_test:
            return self._infer_chunked(batch.inputs)
        if not self.flip_in_batch:
            plain = self._infer_chunked(batch.inputs)
            mirrored = self._infer_chunked(np.ascontiguousarray(batch.inputs[..., ::-1]))
            return fuse_flip(plain, mirrored, FLIP_INDICES)
        return self.model_outputs(self._infer_chunked(self.model_inputs(batch)), len(batch))

    def decode(self, outputs: ModelOutputs, batch: CropBatch) -> PoseResult:
        outputs = as_outputs(outputs)
        keypoints, scores = decode_simcc(outputs[SIMCC_X], outputs[SIMCC_Y], self.split_ratio)
        image_kpts = crop_to_image(keypoints, batch.centers, batch.scales, self.input_size)
        depth = None
        if self.depth is not None and SIMCC_Z in outputs:
            depth = decode_depth(
                outputs[SIMCC_Z],
                scores,
                split_ratio=self.split_ratio,
                depth_size=self.depth.depth_size,
                z_range=self.depth.z_range,
            )
        return PoseResult(image_kpts, scores, batch.centers, batch.scales, depth)

    def __call__(self, image: np.ndarray, boxes_xyxy: np.ndarray) -> PoseResult:
        boxes = np.asarray(boxes_xyxy)
        persons = self.max_batch // (2 if self.flip_test else 1) if self.max_batch else 0
        if persons and boxes.ndim == 2 and len(boxes) > max(persons, 1):
            step = max(persons, 1)
            parts = [self(image, boxes[i : i + step]) for i in range(0, len(boxes), step)]
            depth = (np.concatenate([p.depth for p in parts if p.depth is not None])
                     if self.depth is not None else None)  # fmt: skip
            joined = [np.concatenate([getattr(p, f) for p in parts])
                      for f in ("keypoints", "scores", "centers", "scales")]  # fmt: skip
            return PoseResult(joined[0], joined[1], joined[2], joined[3], depth)
        batch = self.preprocess(image, boxes_xyxy)
        if len(batch) == 0:
            return PoseResult(
                np.zeros((0, NUM_KEYPOINTS, 2), np.float32),
                np.zeros((0, NUM_KEYPOINTS), np.float32),
                np.zeros((0, 2)),
                np.zeros((0, 2)),
                np.zeros((0, NUM_KEYPOINTS), np.float32) if self.depth is not None else None,
            )
        return self.decode(self.run_model(batch), batch)
