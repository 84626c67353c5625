"""Make tests/data/warp_opencv410.npz: person crops as OpenCV 4.10's warpAffine makes them.

Run in a throwaway venv holding only numpy and opencv-python-headless 4.10, so that the
fixture records OpenCV 4.x's own pixels, whatever OpenCV the project's install resolves:

    python3 -m venv /tmp/cv410
    /tmp/cv410/bin/pip install "opencv-python-headless==4.10.0.84" "numpy<2.3"
    /tmp/cv410/bin/python tools/make_warp_fixture.py

Boxes and warp matrices come from rtmw's own preprocessing (imported from this checkout;
rtmw.pipeline needs numpy and OpenCV only); the test checks rtmw's crops against these
bit for bit under the installed OpenCV.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rtmw.pipeline.preprocess import boxes_to_center_scale, warp_matrices  # noqa: E402

OUT = ROOT / "tests" / "data" / "warp_opencv410.npz"
# (image h, w), boxes xyxy: inside, sub-pixel, truncated at every border, tiny, huge
CASES = [
    ((240, 320), [[40.3, 20.7, 150.2, 230.9], [-30.0, -12.5, 90.0, 200.0]]),
    ((200, 300), [[250.5, 100.25, 340.0, 260.0], [120.0, 90.0, 124.5, 97.0]]),
    ((180, 160), [[-400.0, -300.0, 600.0, 500.0], [10.125, 5.875, 150.375, 170.625]]),
]
SIZES = [(192, 256), (288, 384)]


def image(seed: int, shape: tuple[int, int]) -> np.ndarray:
    """Gradients, edges and noise: every interpolation weight gets exercised."""
    rng = np.random.default_rng(seed)
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx * 255 // width), (yy * 255 // height), ((xx + yy) * 3) % 256], -1)
    noise = rng.integers(0, 256, (height, width, 3))
    return np.where(rng.random((height, width, 1)) < 0.3, noise, base).astype(np.uint8)


def main() -> None:
    arrays: dict[str, np.ndarray] = {"opencv": np.array(cv2.__version__)}
    for index, (shape, boxes) in enumerate(CASES):
        picture = image(index, shape)
        arrays[f"image_{index}"] = picture
        arrays[f"boxes_{index}"] = np.array(boxes, np.float64)
        for width, height in SIZES:
            center, scale = boxes_to_center_scale(np.array(boxes), width / height)
            mats = warp_matrices(center, scale, (width, height))
            crops = np.stack(
                [cv2.warpAffine(picture, m, (width, height), flags=cv2.INTER_LINEAR) for m in mats]
            )
            arrays[f"mats_{index}_{width}x{height}"] = mats
            arrays[f"crops_{index}_{width}x{height}"] = crops
    # training's warps: rotation, scale and a horizontal flip (rtmw.train.augment)
    picture = arrays["image_0"]
    mats = []
    for angle, flip in ((30.0, False), (-47.5, True), (90.0, False)):
        rotation = cv2.getRotationMatrix2D((160.3, 120.7), angle, 0.83)
        if flip:
            rotation = np.array([[-1, 0, 191], [0, 1, 0]], np.float64) @ np.vstack(
                [rotation, [0, 0, 1]]
            )
        mats.append(rotation)
    arrays["rotated_mats"] = np.stack(mats)
    arrays["rotated_crops"] = np.stack(
        [cv2.warpAffine(picture, m, (192, 256), flags=cv2.INTER_LINEAR) for m in mats]
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB) with OpenCV {cv2.__version__}")


if __name__ == "__main__":
    main()
