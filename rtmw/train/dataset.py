"""COCO-WholeBody-format person instances as augmented SimCC training samples."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from rtmw.data.evalset import read_image
from rtmw.data.wholebody import PersonAnnotation, load_annotations
from rtmw.errors import DataError
from rtmw.pipeline import DepthCodec
from rtmw.pipeline.preprocess import normalize_crops
from rtmw.train.augment import AugmentConfig, augment_person_ordered
from rtmw.train.targets import SIMCC3D_SIGMA, depth_labels, simcc3d_targets, simcc_targets

logger = logging.getLogger(__name__)


class WholeBodyTrainSet(Dataset[tuple[torch.Tensor, ...]]):
    """Every non-crowd person with at least ``min_keypoints`` labelled keypoints.

    Images are decoded once and kept in memory: on a CPU box the decoder, not the
    warp, would otherwise dominate the data time.
    """

    def __init__(
        self,
        image_dir: str | Path,
        ann_file: str | Path,
        input_size: tuple[int, int],
        augment: AugmentConfig,
        *,
        seed: int = 0,
        min_keypoints: int = 1,
        cache_images: bool = True,
        depth: DepthCodec | None = None,
        sigma: tuple[float, float, float] | None = None,
    ) -> None:
        self.image_dir = Path(image_dir)
        from rtmw.data.h3wb import as_coco

        anns = load_annotations(as_coco(ann_file, image_dir))
        self.images = anns.images
        self.persons: list[PersonAnnotation] = [
            p
            for p in anns.persons
            if not p.iscrowd and int((p.keypoints[:, 2] > 0).sum()) >= min_keypoints
        ]
        if not self.persons:
            raise DataError(f"{ann_file}: no person with labelled keypoints to train on")
        self.input_size = input_size
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.cache_images = cache_images
        self.depth = depth
        self.sigma = sigma
        if depth is not None and not any(p.has_3d for p in self.persons):
            raise DataError(f"{ann_file}: a 3D model is trained, but no person has keypoints_3d")
        self._cache: dict[int, np.ndarray] = {}
        logger.info("training set: %d persons in %d images", len(self.persons), len(self.images))

    def __len__(self) -> int:
        return len(self.persons)

    def image(self, image_id: int) -> np.ndarray:
        cached = self._cache.get(image_id)
        if cached is not None:
            return cached
        image = read_image(self.image_dir / self.images[image_id].file_name)
        if self.cache_images:
            self._cache[image_id] = image
        return image

    def set_epoch(self, epoch: int) -> None:
        """Augmentations are a function of (seed, epoch, index): reproducible, not repeated."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        person = self.persons[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        crop, points, visible, order = augment_person_ordered(
            self.image(person.image_id),
            person.bbox_xyxy,
            person.keypoints,
            self.input_size,
            self.augment,
            rng,
        )
        inputs = normalize_crops(crop[None])[0]
        if self.depth is not None:
            return (torch.from_numpy(inputs), *self._depth_item(person, points, visible, order))
        target_x, target_y, weights = simcc_targets(points[None], visible[None], self.input_size)
        return (
            torch.from_numpy(inputs),
            torch.from_numpy(target_x[0]),
            torch.from_numpy(target_y[0]),
            torch.from_numpy(weights[0]),
        )

    def _depth_item(
        self, person: PersonAnnotation, points: np.ndarray, visible: np.ndarray, order: np.ndarray
    ) -> tuple[torch.Tensor, ...]:
        """x, y, z targets, keypoint weights and depth weights (0 without 3D labels).

        Depth is unchanged by the 2D warp (scale, rotation, shift act in the image plane)
        and by the mirror; the mirror only swaps which keypoint is which.
        """
        assert self.depth is not None
        codec = self.depth
        if person.keypoints_3d is not None:
            depth_px = depth_labels(person.keypoints_3d[None], codec.root_index, codec.z_range,
                                    codec.depth_size)[0][order]  # fmt: skip
            has_3d = 1.0
        else:
            depth_px = np.full(len(points), codec.depth_size / 2)
            has_3d = 0.0
        tx, ty, tz, weights = simcc3d_targets(
            points[None],
            depth_px[None],
            visible[None],
            self.input_size,
            codec.depth_size,
            sigma=self.sigma or SIMCC3D_SIGMA,
        )
        return tuple(torch.from_numpy(a[0]) for a in (tx, ty, tz, weights, weights * has_3d))
