"""COCO-WholeBody metadata, loaders, evaluation and the synthetic data generator."""
