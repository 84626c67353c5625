"""Every bad checkpoint gets one clear error line (API and CLI), never a traceback."""

from __future__ import annotations

import os
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rtmw.cli.inspect import main as inspect_main
from rtmw.errors import CheckpointError, NotRTMWError, StateDictMismatch
from rtmw.models import build, load_checkpoint, read_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def state_dict(rtmw_m_checkpoint: Path) -> OrderedDict[str, torch.Tensor]:
    raw = torch.load(rtmw_m_checkpoint, map_location="cpu", weights_only=False)
    return raw["state_dict"]


def _save(obj: object, path: Path) -> Path:
    torch.save(obj, path)
    return path


def _rtmpose_like(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """RTMPose/DWPose whole-body layout: no neck, one plain final_layer conv, mlp to 256."""
    out = {k: v for k, v in state_dict.items() if k.startswith("backbone.")}
    out["head.final_layer.weight"] = torch.zeros(133, 768, 7, 7)
    out["head.final_layer.bias"] = torch.zeros(133)
    out["head.mlp.0.g"] = torch.ones(1)
    out["head.mlp.1.weight"] = torch.zeros(256, 48)
    for k, v in state_dict.items():
        if k.startswith(("head.gau.", "head.cls_")):
            out[k] = v
    return out


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pth")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(path)


def test_truncated_file(rtmw_m_checkpoint: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.pth"
    data = rtmw_m_checkpoint.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt or not a PyTorch file"):
        load_checkpoint(path)


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "noise.pth"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _save({"meta": {"x": _Exploit(marker)}, "state_dict": {}}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"refusing to load: .*system.*arbitrary code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_numpy_meta_loads(state_dict: dict[str, torch.Tensor], tmp_path: Path) -> None:
    meta = {
        "dataset_meta": {"sigmas": np.linspace(0, 1, 133), "n": np.int64(3)},
        "f": np.float32(1),
    }
    path = _save({"meta": meta, "state_dict": state_dict}, tmp_path / "numpy_meta.pth")
    contents = read_checkpoint(path)
    assert isinstance(contents.meta["dataset_meta"]["sigmas"], np.ndarray)
    assert load_checkpoint(path)[1].name == "rtmw-m-256x192"


def test_training_state_records_load_inert(
    state_dict: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    """mmengine training checkpoints carry HistoryBuffer objects in message_hub."""
    names = ["mmengine", "mmengine.logging", "mmengine.logging.history_buffer"]
    modules = {n: types.ModuleType(n) for n in names}

    class HistoryBuffer:
        def __init__(self) -> None:
            self._log_history = np.arange(3.0)

    HistoryBuffer.__module__ = names[-1]
    HistoryBuffer.__qualname__ = "HistoryBuffer"
    modules[names[-1]].HistoryBuffer = HistoryBuffer  # type: ignore[attr-defined]
    sys.modules.update(modules)
    try:
        obj = {"meta": {}, "state_dict": state_dict, "message_hub": {"loss": HistoryBuffer()}}
        path = _save(obj, tmp_path / "training.pth")
    finally:
        for n in names:
            sys.modules.pop(n, None)
    assert load_checkpoint(path)[1].name == "rtmw-m-256x192"


def test_other_model_state_dict(tmp_path: Path) -> None:
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8)).state_dict()
    path = _save(other, tmp_path / "resnetish.pth")
    with pytest.raises(CheckpointError, match="not an mmpose top-down pose checkpoint"):
        load_checkpoint(path)


def test_rtmpose_wholebody_rejected(state_dict: dict[str, torch.Tensor], tmp_path: Path) -> None:
    path = _save({"meta": {}, "state_dict": _rtmpose_like(state_dict)}, tmp_path / "rtmpose.pth")
    with pytest.raises(
        NotRTMWError, match=r"RTMPose/DWPose whole-body checkpoint.*RTMW is required"
    ):
        load_checkpoint(path)


def test_dwpose_distillation_file_rejected(
    state_dict: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    student = _rtmpose_like(state_dict)
    wrapped = {f"student.{k}": v for k, v in student.items()}
    wrapped.update({f"teacher.{k}": v for k, v in student.items()})
    path = _save({"state_dict": wrapped}, tmp_path / "dwpose.pth")
    with pytest.raises(NotRTMWError, match="RTMPose/DWPose"):
        load_checkpoint(path)


def test_rtmw3d_head_identified_and_checked(
    state_dict: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    """A 2D layout plus head.cls_z is an RTMW3D model (depth size from cls_z's length); a
    cls_z that does not fit the GAU's width is refused with the tensor named."""
    three_d = dict(state_dict, **{"head.cls_z.weight": torch.zeros(512, 256)})
    path = _save({"state_dict": three_d}, tmp_path / "rtmw3d.pth")
    model, config = load_checkpoint(path)
    assert config.is_3d and config.depth_size == 256 and config.name.startswith("rtmw3d-")
    with torch.no_grad():
        assert len(model(torch.zeros(1, 3, 256, 192))) == 3
    wrong = dict(state_dict, **{"head.cls_z.weight": torch.zeros(512, 128)})
    path = _save({"state_dict": wrong}, tmp_path / "rtmw3d-wrong.pth")
    with pytest.raises(StateDictMismatch, match=r"head\.cls_z\.weight"):
        load_checkpoint(path)


def test_missing_keys_listed(state_dict: dict[str, torch.Tensor], tmp_path: Path) -> None:
    broken = dict(state_dict)
    del broken["neck.reduce_layers.0.bn.running_var"]
    del broken["head.gau.res_scale.scale"]
    path = _save({"state_dict": broken}, tmp_path / "missing.pth")
    with pytest.raises(
        StateDictMismatch, match=r"missing 2: neck\.reduce_layers\.0\.bn\.running_var"
    ):
        load_checkpoint(path)


def test_unexpected_keys_listed(state_dict: dict[str, torch.Tensor], tmp_path: Path) -> None:
    extra = dict(state_dict, **{"head.extra.weight": torch.zeros(1)})
    path = _save({"state_dict": extra}, tmp_path / "unexpected.pth")
    with pytest.raises(StateDictMismatch, match=r"unexpected 1: head\.extra\.weight"):
        load_checkpoint(path)


def test_wrong_shape_listed(state_dict: dict[str, torch.Tensor], tmp_path: Path) -> None:
    bad = dict(state_dict, **{"head.gau.uv.weight": torch.zeros(1000, 256)})
    path = _save({"state_dict": bad}, tmp_path / "shape.pth")
    with pytest.raises(StateDictMismatch, match=r"shape mismatch 1: head\.gau\.uv\.weight"):
        load_checkpoint(path)


@pytest.mark.parametrize("layout", ["bare", "module.", "student.", "model."])
def test_wrapped_and_bare_layouts(
    state_dict: dict[str, torch.Tensor], tmp_path: Path, layout: str
) -> None:
    if layout == "bare":
        obj: object = dict(state_dict)
    else:
        obj = {"state_dict": {layout + k: v for k, v in state_dict.items()}}
    path = _save(obj, tmp_path / "wrapped.pth")
    model, config = load_checkpoint(path)
    assert config.name == "rtmw-m-256x192"
    assert torch.equal(model.state_dict()["head.cls_x.weight"], state_dict["head.cls_x.weight"])


def test_identified_by_shapes_not_name(rtmw_m_checkpoint: Path, tmp_path: Path) -> None:
    misleading = tmp_path / "rtmw-x_simcc-cocktail14-384x288.pth"
    misleading.write_bytes(rtmw_m_checkpoint.read_bytes())
    assert load_checkpoint(misleading)[1].name == "rtmw-m-256x192"


def test_official_name_with_wrong_bytes(rtmw_m_checkpoint: Path, tmp_path: Path) -> None:
    fake = tmp_path / "rtmw-x_simcc-cocktail14_pt-ucoco_270e-256x192-13a2546d_20231208.pth"
    fake.write_bytes(rtmw_m_checkpoint.read_bytes())
    with pytest.raises(CheckpointError, match="named like the official rtmw-x-256x192"):
        load_checkpoint(fake)


def test_expect_other_config(rtmw_m_checkpoint: Path) -> None:
    with pytest.raises(StateDictMismatch, match="expected rtmw-l-256x192"):
        load_checkpoint(rtmw_m_checkpoint, expect="rtmw-l-256x192")


def test_custom_widths_are_inferred(tmp_path: Path) -> None:
    from rtmw.models import RTMW, RTMWConfig

    config = RTMWConfig("tiny", widen_factor=0.25, deepen_factor=0.33, input_size=(192, 256))
    path = save_checkpoint(RTMW(config), tmp_path / "tiny.pth")
    _, found = load_checkpoint(path)
    assert found.widen_factor == 0.25 and found.stage_blocks == (1, 2, 2, 1)
    assert found.name.startswith("rtmw-custom-w0.25-d0.33")


def test_cli_identifies(rtmw_m_checkpoint: Path) -> None:
    result = CliRunner().invoke(inspect_main, [str(rtmw_m_checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    assert '"model": "rtmw-m-256x192"' in result.output


@pytest.mark.parametrize("kind", ["missing", "rtmpose", "truncated"])
def test_cli_one_error_line(
    kind: str, state_dict: dict[str, torch.Tensor], rtmw_m_checkpoint: Path, tmp_path: Path
) -> None:
    if kind == "missing":
        path = tmp_path / "missing.pth"
    elif kind == "rtmpose":
        path = _save({"state_dict": _rtmpose_like(state_dict)}, tmp_path / "rtmpose.pth")
    else:
        path = tmp_path / "cut.pth"
        path.write_bytes(rtmw_m_checkpoint.read_bytes()[:1000])
    result = CliRunner().invoke(inspect_main, [str(path)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in result.output


def test_random_checkpoint_statistics_are_not_identity(tmp_path: Path) -> None:
    """build() randomises BatchNorm statistics so exported graphs see real arithmetic."""
    model = build("rtmw-m-256x192", seed=4)
    bn = model.backbone.stem[0].bn
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
