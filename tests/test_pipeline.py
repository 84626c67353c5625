"""The single pre/post-processing: geometry, colour order, decode, flip and validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rtmw.data.wholebody import FLIP_INDICES
from rtmw.errors import InputError
from rtmw.pipeline import (
    MEAN_RGB,
    STD_RGB,
    ModelOutputs,
    TopDown,
    boxes_to_center_scale,
    crop_persons,
    crop_to_image,
    decode_simcc,
    fuse_flip,
    preprocess,
    warp_matrices,
)

INPUT = (192, 256)


def _reference_warp(center: np.ndarray, scale: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """mmpose's get_warp_matrix at rot=0: three point pairs through cv2.getAffineTransform."""
    src_w = scale[0]
    dst_w, dst_h = size
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center
    src[1] = center + np.array([-0.5 * src_w, 0.0])
    dst[0] = (dst_w * 0.5, dst_h * 0.5)
    dst[1] = dst[0] + np.array([-0.5 * dst_w, 0.0])
    for pts in (src, dst):
        d = pts[0] - pts[1]
        pts[2] = pts[1] + np.array([-d[1], d[0]])
    return cv2.getAffineTransform(src, dst)


def test_center_scale_padding_and_aspect() -> None:
    center, scale = boxes_to_center_scale(np.array([[10, 20, 110, 220]]), 192 / 256)
    np.testing.assert_allclose(center, [[60, 120]])
    np.testing.assert_allclose(scale, [[187.5, 250.0]])  # 100×200 padded to 125×250, widened
    _, wide = boxes_to_center_scale(np.array([[0, 0, 400, 100]]), 192 / 256)
    np.testing.assert_allclose(wide, [[500.0, 500.0 / 0.75]])  # heightened


def test_warp_matrix_matches_mmpose_construction() -> None:
    rng = np.random.default_rng(0)
    boxes = np.concatenate([rng.uniform(-50, 300, (20, 2)), rng.uniform(320, 700, (20, 2))], 1)
    center, scale = boxes_to_center_scale(boxes, INPUT[0] / INPUT[1])
    ours = warp_matrices(center, scale, INPUT)
    for i in range(len(boxes)):
        np.testing.assert_allclose(ours[i], _reference_warp(center[i], scale[i], INPUT), atol=1e-3)


def test_colour_order_and_normalisation_pinned() -> None:
    """A pure-blue BGR image must arrive as R low, B high: BGR→RGB is not skipped."""
    image = np.zeros((64, 48, 3), np.uint8)
    image[:] = (255, 0, 0)  # blue in OpenCV's BGR
    batch = preprocess(image, np.array([[0, 0, 48, 64]]), INPUT)
    centre = batch.inputs[0, :, 128, 96]
    expected = (np.array([0.0, 0.0, 255.0]) - MEAN_RGB) / STD_RGB
    np.testing.assert_allclose(centre, expected, rtol=1e-6)
    assert batch.inputs.dtype == np.float32 and batch.inputs.shape == (1, 3, 256, 192)
    assert batch.inputs.flags["C_CONTIGUOUS"]


def test_crop_places_a_marker_where_the_matrix_says() -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    image[150, 220] = 255
    box = np.array([[150, 60, 290, 260]])
    crops, center, scale = crop_persons(image, box, INPUT)
    mat = warp_matrices(center, scale, INPUT)[0]
    x, y = mat @ np.array([220, 150, 1.0])
    peak = np.unravel_index(np.argmax(crops[0].sum(-1)), crops[0].shape[:2])
    assert abs(peak[1] - x) <= 1.0 and abs(peak[0] - y) <= 1.0


def _peaked(position: float, length: int, split: float) -> np.ndarray:
    vec = np.full(length, -1.0, np.float32)
    vec[int(np.clip(np.round(position * split), 0, length - 1))] = 10.0
    return vec


@settings(max_examples=150, deadline=None)
@given(
    x1=st.floats(-200, 500),
    y1=st.floats(-200, 400),
    w=st.floats(8, 600),
    h=st.floats(8, 600),
    u=st.floats(0.02, 0.98),
    v=st.floats(0.02, 0.98),
)
def test_project_decode_back_project_round_trip(
    x1: float, y1: float, w: float, h: float, u: float, v: float
) -> None:
    """Image point → crop → peaked SimCC → decode → image, within 0.5 crop px.

    Boxes range over positions partly outside a 480×640 image.
    """
    box = np.array([[x1, y1, x1 + w, y1 + h]])
    center, scale = boxes_to_center_scale(box, INPUT[0] / INPUT[1])
    point = center[0] - scale[0] / 2 + np.array([u, v]) * scale[0]
    mat = warp_matrices(center, scale, INPUT)[0]
    in_crop = mat @ np.array([*point, 1.0])
    split = 2.0
    simcc_x = _peaked(float(in_crop[0]), INPUT[0] * 2, split)[None, None]
    simcc_y = _peaked(float(in_crop[1]), INPUT[1] * 2, split)[None, None]
    kpts, scores = decode_simcc(simcc_x, simcc_y, split)
    assert scores[0, 0] == pytest.approx(10.0)
    back = crop_to_image(kpts, center, scale, INPUT)[0, 0]
    crop_px = scale[0, 0] / INPUT[0]  # image pixels per crop pixel
    assert np.all(np.abs(back - point) <= 0.5 * crop_px + 1e-3)


def test_decode_scores_and_invalid_marking() -> None:
    simcc_x = np.array([[[0.1, 0.9, 0.2], [-3.0, -1.0, -2.0]]], np.float32)
    simcc_y = np.array([[[0.5, 0.1, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]]], np.float32)
    kpts, scores = decode_simcc(simcc_x, simcc_y, 2.0)
    np.testing.assert_allclose(scores, [[0.5, -1.0]])  # min of the two maxima, raw logits
    np.testing.assert_allclose(kpts[0, 0], [0.5, 0.0])
    np.testing.assert_allclose(kpts[0, 1], [-1.0, -1.0])  # score ≤ 0 → invalid


def test_flip_fusion_is_identity_for_a_mirror_consistent_model() -> None:
    rng = np.random.default_rng(1)
    simcc_x = rng.normal(size=(3, 133, 384)).astype(np.float32)
    simcc_y = rng.normal(size=(3, 133, 512)).astype(np.float32)
    index = list(FLIP_INDICES)
    flipped_x = simcc_x[:, index, ::-1]  # what a mirror-consistent model predicts on the flip
    flipped_y = simcc_y[:, index]
    fused_x, fused_y = fuse_flip(
        ModelOutputs({"simcc_x": simcc_x, "simcc_y": simcc_y}),
        ModelOutputs({"simcc_x": flipped_x, "simcc_y": flipped_y}),
        FLIP_INDICES,
    ).unpack("simcc_x", "simcc_y")
    np.testing.assert_allclose(fused_x, simcc_x)
    np.testing.assert_allclose(fused_y, simcc_y)


def test_flip_test_feeds_mirrored_crops_in_one_batch() -> None:
    seen: list[np.ndarray] = []

    def infer(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        seen.append(batch.copy())
        n = len(batch)
        return np.zeros((n, 133, 384), np.float32), np.zeros((n, 133, 512), np.float32)

    image = np.random.default_rng(2).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    TopDown(infer, INPUT)(image, np.array([[10, 10, 100, 200], [150, 20, 300, 230]]))
    assert len(seen) == 1 and seen[0].shape[0] == 4
    np.testing.assert_array_equal(seen[0][2:], seen[0][:2, :, :, ::-1])


def test_topdown_torch_batched_equals_chunked_and_single() -> None:
    from rtmw.models import build

    model = build("rtmw-m-256x192", seed=3)

    def infer(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            x, y = model(torch.from_numpy(batch))
        return x.numpy(), y.numpy()

    image = np.random.default_rng(3).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 100, 200], [150, 20, 300, 230], [-20, 100, 60, 260]])
    full = TopDown(infer, INPUT)(image, boxes)
    chunked = TopDown(infer, INPUT, max_batch=2)(image, boxes)
    single = TopDown(infer, INPUT)(image, boxes[1:2])
    assert full.keypoints.shape == (3, 133, 2) and full.scores.shape == (3, 133)
    np.testing.assert_allclose(full.scores, chunked.scores, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(full.scores[1], single.scores[0], rtol=1e-4, atol=1e-3)
    empty = TopDown(infer, INPUT)(image, np.zeros((0, 4)))
    assert empty.keypoints.shape == (0, 133, 2)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((64, 64, 3), np.float32), "uint8"),
        (np.zeros((64, 64), np.uint8), "shape"),
        (np.zeros((64, 64, 4), np.uint8), "shape"),
        ([[0, 1]], "numpy array"),
    ],
)
def test_bad_images_refused(image: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        preprocess(image, np.array([[0, 0, 10, 10]]), INPUT)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        (np.zeros((2, 3)), r"\(N, 4\)"),
        (np.array([[0, 0, np.nan, 10]]), "NaN"),
        (np.array([[10, 10, 5, 20]]), "no area"),
        (np.array([[500, 500, 600, 600]]), "entirely outside"),
        (np.array([[-50, -50, -1, -1]]), "entirely outside"),
    ],
)
def test_bad_boxes_refused(boxes: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message):
        preprocess(np.zeros((100, 100, 3), np.uint8), boxes, INPUT)


def test_box_partly_outside_is_fine() -> None:
    batch = preprocess(np.full((100, 100, 3), 200, np.uint8), np.array([[-40, -40, 60, 90]]), INPUT)
    assert batch.inputs.shape == (1, 3, 256, 192)
    zero = (np.zeros(3) - MEAN_RGB) / STD_RGB  # border fill is black
    np.testing.assert_allclose(batch.inputs[0, :, 0, 0], zero, rtol=1e-6)


def test_pipeline_does_not_import_torch() -> None:
    code = "import sys, rtmw.pipeline, rtmw.data.evaluation; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.precision
def test_crops_equal_opencv4_warpaffine_bit_for_bit() -> None:
    """The committed fixture holds crops made by OpenCV 4.10's own warpAffine (see
    tools/make_warp_fixture.py); our crops must equal them under whatever OpenCV this
    install resolved (5.x gives other pixels with its own warpAffine)."""
    import cv2

    from rtmw.pipeline.preprocess import crop_persons, warp_crop

    fixture = np.load(Path(__file__).parent / "data" / "warp_opencv410.npz")
    assert str(fixture["opencv"]).startswith("4.10")
    compared = 0
    for key in fixture.files:
        if not key.startswith("crops_"):
            continue
        _, index, size = key.split("_")
        width, height = (int(v) for v in size.split("x"))
        image, boxes = fixture[f"image_{index}"], fixture[f"boxes_{index}"]
        crops, _, _ = crop_persons(image, boxes, (width, height))
        np.testing.assert_array_equal(crops, fixture[key], err_msg=key)
        for mat, expected in zip(fixture[f"mats_{index}_{size}"], fixture[key], strict=True):
            np.testing.assert_array_equal(warp_crop(image, mat, (width, height)), expected)
        compared += len(crops)
    assert compared == 12
    # rotated and flipped warps (training's augmentation uses the same warp)
    for mat, expected in zip(fixture["rotated_mats"], fixture["rotated_crops"], strict=True):
        np.testing.assert_array_equal(warp_crop(fixture["image_0"], mat, (192, 256)), expected)
    if cv2.__version__.startswith("4."):
        return
    # on OpenCV 5 the library's own warp differs: the fixed-point rebuild is what holds
    image, boxes = fixture["image_0"], fixture["boxes_0"]
    mat = fixture["mats_0_192x256"][0]
    assert (
        cv2.warpAffine(image, mat, (192, 256), flags=cv2.INTER_LINEAR)
        != fixture["crops_0_192x256"][0]
    ).any()


def test_model_outputs_are_read_by_name_and_unpacked_on_request() -> None:
    x = np.zeros((2, 133, 384), np.float32)
    y = np.ones((2, 133, 512), np.float64)
    outputs = ModelOutputs.from_sequence(("simcc_x", "simcc_y"), [x, y])
    assert outputs.names == ("simcc_x", "simcc_y") and outputs.batch == 2
    assert outputs["simcc_y"].dtype == np.float32  # one dtype whatever the backend gave
    first, second = outputs.unpack("simcc_y", "simcc_x")
    assert first.shape == (2, 133, 512) and second.shape == (2, 133, 384)
    assert outputs.get("simcc_z") is None and "simcc_z" not in outputs
    with pytest.raises(InputError, match="no output 'simcc_z'; it gives simcc_x, simcc_y"):
        outputs["simcc_z"]
    with pytest.raises(InputError, match="gave 1 outputs, its manifest names 2"):
        ModelOutputs.from_sequence(("simcc_x", "simcc_y"), [x])
    joined = ModelOutputs.concatenate([outputs, outputs.map(lambda a: a[:1])])
    assert joined.batch == 3 and joined.names == outputs.names
    with pytest.raises(InputError, match="differ"):
        ModelOutputs.concatenate([outputs, ModelOutputs({"simcc_y": y, "simcc_x": x})])


def test_topdown_reads_outputs_by_name_not_position() -> None:
    """A backend that lists simcc_y first decodes exactly like one listing simcc_x first."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    boxes = np.array([[10, 10, 150, 230]], float)
    logits: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def simcc(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(batch)
        if n not in logits:
            logits[n] = (rng.normal(size=(n, 133, 384)).astype(np.float32),
                         rng.normal(size=(n, 133, 512)).astype(np.float32))  # fmt: skip
        return logits[n]

    def x_first(batch: np.ndarray) -> ModelOutputs:
        x, y = simcc(batch)
        return ModelOutputs({"simcc_x": x, "simcc_y": y})

    def y_first(batch: np.ndarray) -> ModelOutputs:
        x, y = simcc(batch)
        return ModelOutputs({"simcc_y": y, "simcc_x": x})

    def misnamed(batch: np.ndarray) -> ModelOutputs:
        x, y = simcc(batch)
        return ModelOutputs({"cls_score": x, "simcc_y": y})

    a = TopDown(x_first, INPUT)(image, boxes)
    b = TopDown(y_first, INPUT)(image, boxes)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    with pytest.raises(InputError, match="a pose model gives simcc_x, simcc_y"):
        TopDown(misnamed, INPUT)(image, boxes)
