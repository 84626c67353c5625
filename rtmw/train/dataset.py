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
from rtmw.pipeline.preprocess import normalize_crops
from rtmw.train.augment import AugmentConfig, augment_person
from rtmw.train.targets import simcc_targets

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
    ) -> None:
        self.image_dir = Path(image_dir)
        anns = load_annotations(ann_file)
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
        crop, points, visible = augment_person(
            self.image(person.image_id),
            person.bbox_xyxy,
            person.keypoints,
            self.input_size,
            self.augment,
            rng,
        )
        target_x, target_y, weights = simcc_targets(points[None], visible[None], self.input_size)
        inputs = normalize_crops(crop[None])[0]
        return (
            torch.from_numpy(inputs),
            torch.from_numpy(target_x[0]),
            torch.from_numpy(target_y[0]),
            torch.from_numpy(weights[0]),
        )
