"""rtmw-calib: pipeline-made person crops, stratified, hashed, refused when wrong."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from rtmw.calib import (
    CalibrationError,
    CalibrationSet,
    build_calibration_set,
    check_matches_model,
    load_calibration_set,
    save_calibration_set,
)
from rtmw.calib.calibset import tensor_sha256
from rtmw.data.synthetic import SyntheticDataset, make_dataset
from rtmw.data.wholebody import load_annotations
from rtmw.pipeline.preprocess import preprocess


@pytest.fixture(scope="module")
def calib_source(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return make_dataset(tmp_path_factory.mktemp("calib-src"), 30, seed=11, split="train",
                        progress=False)  # fmt: skip


def _build(src: SyntheticDataset, n: int = 40, seed: int = 0) -> CalibrationSet:
    return build_calibration_set(
        src.image_dir,
        input_size=(192, 256),
        ann_file=src.ann_file,
        n=n,
        seed=seed,
        progress=False,
    )


def test_crops_are_the_inference_pipeline(calib_source: SyntheticDataset) -> None:
    calib = _build(calib_source)
    anns = load_annotations(calib_source.ann_file)
    for i in (0, 7, 39):
        image_id = int(calib.image_ids[i])
        image = cv2.imread(str(calib_source.image_dir / anns.images[image_id].file_name))
        expected = preprocess(image, calib.boxes[i : i + 1], (192, 256)).inputs[0]
        assert np.array_equal(calib.inputs[i], expected)


def test_seeded_stratified_and_described(calib_source: SyntheticDataset) -> None:
    a, b, c = _build(calib_source), _build(calib_source), _build(calib_source, seed=1)
    assert a.sha256 == b.sha256 != c.sha256
    shares = a.manifest["shares"]
    assert shares["hands"] >= 0.4 and shares["face"] >= 0.4
    manifest = a.manifest
    assert manifest["input_size"] == [192, 256] and manifest["n"] == 40
    assert manifest["normalisation"]["mean"] == pytest.approx([123.675, 116.28, 103.53])
    assert len(manifest["images"]) >= 1
    assert all(len(h) == 64 for h in manifest["images"].values())


def test_save_load_round_trip_and_tamper(calib_source: SyntheticDataset, tmp_path: Path) -> None:
    calib = _build(calib_source)
    path = save_calibration_set(calib, tmp_path / "calib.npz")
    loaded = load_calibration_set(path)
    assert loaded.sha256 == calib.sha256 and len(loaded) == 40
    assert loaded.describe()["sha256"] == calib.sha256
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["inputs"] = arrays["inputs"].copy()
    arrays["inputs"][0, 0, 0, 0] += 1.0
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(CalibrationError, match="does not match its manifest"):
        load_calibration_set(tmp_path / "tampered.npz")


def test_random_data_is_refused_even_with_a_valid_hash(
    calib_source: SyntheticDataset, tmp_path: Path
) -> None:
    calib = _build(calib_source)
    noise = np.random.default_rng(0).standard_normal(calib.inputs.shape).astype(np.float32)
    manifest = dict(calib.manifest, tensor_sha256=tensor_sha256(noise))
    np.savez(
        tmp_path / "noise.npz", inputs=noise, boxes=calib.boxes, image_ids=calib.image_ids,
        manifest=np.array(json.dumps(manifest)),
    )  # fmt: skip
    with pytest.raises(CalibrationError, match="random noise"):
        load_calibration_set(tmp_path / "noise.npz")


def test_refusals(calib_source: SyntheticDataset, tmp_path: Path) -> None:
    with pytest.raises(CalibrationError, match="at least 32"):
        _build(calib_source, n=8)
    with pytest.raises(CalibrationError, match="person crops available"):
        _build(calib_source, n=5000)
    with pytest.raises(CalibrationError, match="not found"):
        load_calibration_set(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CalibrationError, match="not an rtmw calibration set"):
        load_calibration_set(tmp_path / "junk.npz")
    calib = _build(calib_source)
    with pytest.raises(CalibrationError, match="rebuild with rtmw-calib --input-size 288x384"):
        check_matches_model(calib, (288, 384), "rtmw-l-384x288")


def test_cli(calib_source: SyntheticDataset, tmp_path: Path) -> None:
    from rtmw.cli.calib import main

    out = tmp_path / "c.npz"
    args = ["--images", str(calib_source.image_dir), "--ann", str(calib_source.ann_file),
            "--n", "40", "--out", str(out), "--quiet"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "with a hand" in result.output and out.is_file()
    result = CliRunner().invoke(main, [*args[:-3], "--n", "4000", "--out", str(out), "--quiet"])
    assert result.exit_code == 1
    assert result.output.startswith("error: only")
    assert "Traceback" not in result.output
    # boxes-only: shares cannot be known, and the run says so
    result = CliRunner().invoke(
        main,
        ["--images", str(calib_source.image_dir), "--boxes", str(calib_source.det_file),
         "--n", "32", "--min-score", "0", "--out", str(tmp_path / "b.npz"), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "part shares unknown" in result.output
