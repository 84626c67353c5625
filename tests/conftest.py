"""Shared fixtures: random-init checkpoints in mmpose's layout and synthetic data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from rtmw.calib import CalibrationSet, build_calibration_set
from rtmw.data.synthetic import SyntheticDataset, make_dataset
from rtmw.models import build, demo_checkpoint, save_checkpoint
from rtmw.models.zoo import SMALL_DEMO_NAME

torch.set_num_threads(2)


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def small_demo() -> Path:
    """The small packaged demo model: trained weights that export quickly, so the suite's
    many exports stay cheap (make demo and the CI gate use the product demo, DEMO_NAME)."""
    return demo_checkpoint(SMALL_DEMO_NAME)


def xtcocotools_usable() -> tuple[bool, str]:
    """The binary wheel can fail to import beside numpy 2 (dtype size changed)."""
    try:
        import xtcocotools.cocoeval  # noqa: F401
    except Exception as exc:  # ImportError or the numpy ABI ValueError
        return False, f"xtcocotools not usable: {exc}"
    return True, ""


@pytest.fixture(scope="session")
def rtmw_m_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "rtmw-m-256x192-random.pth"
    return save_checkpoint(build("rtmw-m-256x192", seed=0), path)


@pytest.fixture(scope="session")
def synthetic_val(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return make_dataset(tmp_path_factory.mktemp("synthetic"), 12, seed=3, progress=False)


@pytest.fixture(scope="session")
def demo_random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo architecture with random weights: small, so benches and INT8 runs are quick."""
    path = tmp_path_factory.mktemp("ckpt-demo") / "rtmw-demo-random.pth"
    return save_checkpoint(build("rtmw-demo-256x192", seed=0), path)


@pytest.fixture(scope="session")
def demo_artifacts(tmp_path_factory: pytest.TempPathFactory, demo_random_checkpoint: Path) -> Path:
    """onnx, openvino-fp32 and torch artifacts of the random demo model."""
    from rtmw.export import export

    out = tmp_path_factory.mktemp("demo-artifacts")
    targets = ["onnx", "torch"] + (["openvino-fp32"] if has_module("openvino") else [])
    results = export(demo_random_checkpoint, targets, out)
    assert all(r.status == "ok" for r in results), [r.line() for r in results]
    return out


@pytest.fixture(scope="session")
def calib_set(tmp_path_factory: pytest.TempPathFactory) -> CalibrationSet:
    """64 person crops of 40 seeded synthetic training images, by rtmw-calib's code: the
    calibration set of every INT8 export in the tests."""
    src = make_dataset(tmp_path_factory.mktemp("int8-calib"), 40, seed=21, split="train",
                       progress=False)  # fmt: skip
    return build_calibration_set(
        src.image_dir, input_size=(192, 256), ann_file=src.ann_file, n=64, progress=False
    )


@pytest.fixture(scope="session")
def frames_calib(tmp_path_factory: pytest.TempPathFactory) -> CalibrationSet:
    """32 whole synthetic frames letterboxed to 320x320 (rtmw-calib --frames's code): the
    calibration set of the INT8 person-detector exports in the tests."""
    from rtmw.calib.calibset import build_frame_calibration_set

    src = make_dataset(tmp_path_factory.mktemp("frames-calib"), 36, seed=23, split="train",
                       progress=False)  # fmt: skip
    return build_frame_calibration_set(
        src.image_dir, input_size=(320, 320), ann_file=src.ann_file, n=32, progress=False
    )


# The backend a parametrised test needs, from the target (or the artifact format) it runs:
# `pytest -m openvino`, `-m "not ncnn"` or `-m "not slow"` select by what a test touches.
# Derived from the target and runtime registries: a new backend needs no line here.
def _backend_marker(value: str) -> str | None:
    from rtmw import runtimes
    from rtmw.export import get_target, list_targets

    if value in list_targets():
        fmt = get_target(value).format
    elif value in runtimes.REGISTRY:
        fmt = value
    else:
        return None
    # without TensorRT, a trt-* target is its ONNX stand-in in onnxruntime; torch is the
    # reference every run has
    return {"tensorrt": "onnx", "torch": None}.get(fmt, fmt)


_LARGE_CONFIGS = ("rtmw-x-", "384x288")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        for value in params.values():
            if not isinstance(value, str):
                continue
            marker = _backend_marker(value)
            if marker is not None:
                item.add_marker(getattr(pytest.mark, marker))
            if any(part in value for part in _LARGE_CONFIGS):
                item.add_marker(pytest.mark.slow)
