"""The one evaluation harness (predict, six-part evaluation, fidelity); see ``accuracy``."""

from rtmw.harness.accuracy import (
    AccuracyRun,
    crop_similarity,
    evaluate,
    evaluate_pose,
    fidelity,
    keypoint_errors_per_image,
    predict,
    quantile_interval,
    reference_correct,
    run_accuracy,
    score,
)

__all__ = [
    "AccuracyRun",
    "crop_similarity",
    "evaluate",
    "evaluate_pose",
    "fidelity",
    "keypoint_errors_per_image",
    "predict",
    "quantile_interval",
    "reference_correct",
    "run_accuracy",
    "score",
]
