"""Bring your own ONNX detector: mmdeploy's end2end layout and YOLOX's raw layout become
artifacts the runtime layer and the one decode read; anything else is one clear line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import has_module
from torch import Tensor, nn

from rtmw.artifact import read_artifact
from rtmw.errors import InputError, UsageError
from rtmw.models import build_detector
from rtmw.models.rtmdet import DETECTOR_ZOO, STRIDES, RTMDet
from rtmw.pipeline.detect import DecodeSettings, DetectorSpec, decode_detections, letterbox
from rtmw.train.detection_targets import flat_priors

pytestmark = pytest.mark.skipif(
    not (has_module("onnxruntime") and has_module("onnx")), reason="onnx/onnxruntime not installed"
)
# nano's layout with exp() on the distances, so every box has positive width and height
CONFIG = replace(DETECTOR_ZOO["rtmdet-nano-person"], exp_on_reg=True)
SIZE = CONFIG.input_size
# no max_per_img cut: near-equal scores at the cut would make the two sets differ there
UNCAPPED = DecodeSettings(score_thr=0.3, max_per_img=10_000)


def _detector() -> RTMDet:
    model = build_detector(CONFIG, seed=3)
    from rtmw.data.synthetic import render_image

    image = render_image(np.random.default_rng([5, 2]), 1, 1)[0]
    tensor = torch.from_numpy(letterbox(image, DetectorSpec(SIZE, 1, 0))[0])
    with torch.no_grad():  # spread-out class logits centred on 0: distinct scores
        for level, conv in enumerate(model.bbox_head.rtm_cls):
            assert isinstance(conv, nn.Conv2d) and conv.bias is not None
            conv.weight.mul_(1500.0)
            conv.bias.sub_(model(tensor)[level].mean())
    return model


class End2End(nn.Module):
    """mmdeploy's end2end interface: the best K (prior, class) boxes as dets and labels
    (top-k stands in for the NMS mmdeploy puts in the graph)."""

    def __init__(self, model: RTMDet, keep: int = 50) -> None:
        super().__init__()
        self.model, self.keep = model, keep
        self.register_buffer("priors", flat_priors(SIZE)[:, :2])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        outputs = self.model(x)
        scores = torch.cat([o.flatten(2) for o in outputs[:3]], 2).sigmoid()[:, 0]
        dist = torch.cat([o.flatten(2) for o in outputs[3:]], 2).transpose(1, 2)
        boxes = torch.cat([self.priors - dist[..., :2], self.priors + dist[..., 2:]], -1)
        top, index = scores.topk(self.keep, dim=1)
        chosen = torch.gather(boxes, 1, index[..., None].expand(-1, -1, 4))
        return torch.cat([chosen, top[..., None]], -1), torch.zeros_like(index)


class YoloxRaw(nn.Module):
    """RTMDet's outputs rewritten in YOLOX's raw layout: per prior (cx, cy) as grid offsets,
    log (w, h) in strides, objectness = sigmoid(class logit), class probability 1."""

    def __init__(self, model: RTMDet) -> None:
        super().__init__()
        self.model = model
        priors = flat_priors(SIZE)
        self.register_buffer("cells", priors[:, :2] / priors[:, 2:])
        self.register_buffer("strides", priors[:, 2:])

    def forward(self, x: Tensor) -> Tensor:
        outputs = self.model(x)
        logits = torch.cat([o.flatten(2) for o in outputs[:3]], 2).transpose(1, 2)
        dist = torch.cat([o.flatten(2) for o in outputs[3:]], 2).transpose(1, 2)
        points = self.cells * self.strides
        # clipped to the input as RTMDet's decode clips, so both readings give equal boxes
        low = torch.maximum(points - dist[..., :2], torch.zeros(2))
        high = torch.minimum(points + dist[..., 2:], torch.tensor([float(SIZE[0]), SIZE[1]]))
        centre = (low + high) / 2 / self.strides - self.cells
        size = torch.log((high - low).clamp(min=0) / self.strides)
        return torch.cat([centre, size, logits.sigmoid(), torch.ones_like(logits)], -1)


def _assert_same_boxes(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    """The same set of boxes (near-equal scores may order them differently)."""
    gap = np.abs(a[:, None, :] - b[None, :, :]).max(-1)
    assert gap.min(1).max() <= atol and gap.min(0).max() <= atol, gap.min(1).max()


def _export(module: nn.Module, path: Path, outputs: list[str], input_name: str = "input") -> Path:
    dummy = torch.zeros(1, 3, SIZE[1], SIZE[0])
    torch.onnx.export(module.eval(), (dummy,), str(path), dynamo=False, opset_version=17,
                      input_names=[input_name], output_names=outputs,
                      dynamic_axes={input_name: {0: "batch"}})  # fmt: skip
    return path


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    from rtmw.data.synthetic import render_image

    return render_image(np.random.default_rng([5, 1]), 1, 1)[0]


def test_end2end_layout_is_detected_and_decoded_to_frame_pixels(
    tmp_path: Path, frame: np.ndarray
) -> None:
    from rtmw import runtimes
    from rtmw.export.imported import import_detector, inspect_onnx_detector

    model = _detector()
    path = _export(End2End(model), tmp_path / "end2end.onnx", ["dets", "labels"])
    assert inspect_onnx_detector(path).layout == "mmdeploy-end2end"
    with pytest.raises(UsageError, match="--preprocess mmdet"):  # no pipeline.json: ask
        import_detector(path, tmp_path / "a")
    folder = import_detector(path, tmp_path / "a", preprocess="mmdet")
    artifact = read_artifact(folder)
    assert artifact.manifest.verification["mode"] == "imported"
    assert artifact.manifest.detector is not None
    spec = DetectorSpec.from_record(artifact.manifest.detector, artifact.manifest.input_size)
    tensor, placed = letterbox(frame, spec)
    with runtimes.open(artifact) as runtime:
        (found,) = decode_detections(runtime.infer(tensor), spec, [placed])
    with torch.no_grad():
        dets, _ = End2End(model)(torch.from_numpy(tensor))
    expected = dets[0].numpy()
    expected = expected[expected[:, 4] > 0.001]
    scale = np.array([placed.scale_x, placed.scale_y] * 2, np.float32)
    assert len(found) == len(expected) > 0
    assert np.all(np.diff(found.scores) <= 0)  # best first

    _assert_same_boxes(found.boxes * scale, expected[:, :4], atol=1e-2)


def test_mmdeploy_pipeline_json_gives_the_normalisation(tmp_path: Path) -> None:
    from rtmw.export.imported import import_detector

    path = _export(End2End(_detector()), tmp_path / "end2end.onnx", ["dets", "labels"])
    pipeline = {"pipeline": {"tasks": [{"module": "Transform", "transforms": [
        {"type": "Resize", "keep_ratio": True},
        {"type": "Normalize", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375],
         "to_rgb": True}]}]}}  # fmt: skip
    (tmp_path / "pipeline.json").write_text(json.dumps(pipeline))
    record = read_artifact(import_detector(path, tmp_path / "b")).manifest.detector
    assert record is not None
    assert record["mean_bgr"] == [103.53, 116.28, 123.675]  # RGB given, flipped to BGR
    assert record["preprocessing_from"].endswith("pipeline.json")


def test_yolox_raw_layout_decodes_to_the_same_boxes_as_the_native_heads(
    tmp_path: Path, frame: np.ndarray
) -> None:
    """The same network read through both layouts gives the same detections: the YOLOX
    decode (grid offsets, exp sizes, objectness × class) is exact."""
    from rtmw import runtimes
    from rtmw.export.imported import import_detector
    from rtmw.models.inference import TorchInference

    model = _detector()
    path = _export(YoloxRaw(model), tmp_path / "yolox.onnx", ["output"], input_name="images")
    folder = import_detector(path, tmp_path / "y", preprocess="mmdet")
    manifest = read_artifact(folder).manifest
    assert manifest.detector is not None and manifest.detector["layout"] == "yolox-raw"
    assert manifest.io["input"] == "images"
    spec = DetectorSpec.from_record(manifest.detector, manifest.input_size)
    native = DetectorSpec.from_record(CONFIG.detector_record, SIZE)
    tensor, placed = letterbox(frame, spec)
    with runtimes.open(read_artifact(folder)) as runtime:
        (theirs,) = decode_detections(runtime.infer(tensor), spec, [placed], UNCAPPED)
    (ours,) = decode_detections(TorchInference(model)(tensor), native, [placed], UNCAPPED)
    assert len(ours) > 0
    assert len(theirs) == len(ours)
    _assert_same_boxes(theirs.boxes, ours.boxes, atol=0.05)
    np.testing.assert_allclose(theirs.scores, ours.scores, atol=1e-4)  # both best first


def test_yolox_default_preprocessing_is_raw_pixels_with_floor_resize(tmp_path: Path) -> None:
    from rtmw.export.imported import import_detector

    path = _export(YoloxRaw(_detector()), tmp_path / "yolox.onnx", ["output"])
    record = read_artifact(import_detector(path, tmp_path / "y")).manifest.detector
    assert record is not None
    assert (record["mean_bgr"], record["std_bgr"], record["rounding"]) == (
        [0.0] * 3, [1.0] * 3, "floor")  # fmt: skip
    spec = DetectorSpec.from_record(record, SIZE)
    image = np.full((479, 641, 3), 200, np.uint8)
    tensor, placed = letterbox(image, spec)
    ratio = min(SIZE[0] / 641, SIZE[1] / 479)
    assert placed.resized == (int(641 * ratio), int(479 * ratio))
    assert placed.scale_x == placed.scale_y == ratio
    assert tensor[0, 0, 0, 0] == 200.0 and tensor[0, 0, -1, -1] == 114.0


def test_unknown_layouts_and_wrong_files_are_one_clear_error(tmp_path: Path) -> None:
    from rtmw.export.imported import inspect_onnx_detector

    class TwoMaps(nn.Module):
        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
            return x.mean(1), x.amax(1)

    odd = _export(TwoMaps(), tmp_path / "odd.onnx", ["a", "b"])
    with pytest.raises(
        InputError, match=r"unknown detector layout .*outputs: a .*mmdeploy-end2end"
    ):
        inspect_onnx_detector(odd)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not onnx" * 10)
    with pytest.raises(InputError, match="not a readable ONNX model"):
        inspect_onnx_detector(garbage)
    with pytest.raises(InputError, match="not found"):
        inspect_onnx_detector(tmp_path / "missing.onnx")


def test_yolox_rows_must_fit_the_input_size(tmp_path: Path) -> None:
    from rtmw.export.imported import inspect_onnx_detector

    class Short(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x.flatten(2)[:, :1, :100].transpose(1, 2).repeat(1, 1, 6)

    path = _export(Short(), tmp_path / "short.onnx", ["output"])
    rows = sum((SIZE[0] // s) * (SIZE[1] // s) for s in STRIDES)
    with pytest.raises(InputError, match=f"has 100 rows; YOLOX's raw layout .* has {rows}"):
        inspect_onnx_detector(path)


def test_cli_imports_an_onnx_detector_and_bench_dets_reads_it(tmp_path: Path) -> None:
    from rtmw.cli.export import main

    path = _export(YoloxRaw(_detector()), tmp_path / "yolox.onnx", ["output"])
    result = CliRunner().invoke(main, [str(path), "--out", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 0, result.output
    assert "imported" in result.output and "yolox-raw" in result.output
    refused = CliRunner().invoke(
        main, [str(path), "--out", str(tmp_path / "o2"), "--targets", "onnx,ort-int8", "-q"]
    )
    assert refused.exit_code == 2 and "onnx artifact only" in refused.output
