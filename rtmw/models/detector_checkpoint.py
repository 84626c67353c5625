"""Reading and writing RTMDet checkpoints in mmdet's saved format.

The same safe reader as RTMW's (``rtmw.models.checkpoint.read_checkpoint``: tensors and
plain metadata only); the configuration is read from tensor shapes, the one switch the
tensors cannot show (``exp_on_reg``) from the published configuration of the size or the
file's own ``meta.cfg``, and the model is loaded with ``strict=True``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from rtmw.errors import CheckpointError, NotRTMWError, StateDictMismatch
from rtmw.models.checkpoint import (
    CheckpointContents,
    _check_official_pin,
    _count_blocks,
    _first,
    _mismatch_report,
    load_strictly,
    read_checkpoint,
)
from rtmw.models.layers import randomize_batchnorm
from rtmw.models.rtmdet import (
    DETECTOR_ZOO,
    RTMDet,
    RTMDetConfig,
    get_detector_config,
)

logger = logging.getLogger(__name__)

COCO_CLASSES_FIRST = ("person", "bicycle", "car")  # what a COCO-80 dataset_meta starts with


def is_detector_state(state: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith("bbox_head.") for k in state)


def detector_layout(config: RTMDetConfig) -> dict[str, tuple[int, ...]]:
    """Every state-dict key and shape of a configuration, built on the meta device."""
    with torch.device("meta"):
        model = RTMDet(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _reject_other_families(state: Mapping[str, torch.Tensor], source: str) -> None:
    keys = list(state)
    if any(k.startswith("head.") for k in keys) and not is_detector_state(state):
        raise NotRTMWError(
            f"{source}: an mmpose pose checkpoint (head.* tensors), not a detector: give it "
            "as the pose model; a detector is an mmdet RTMDet checkpoint (bbox_head.*)"
        )
    if not is_detector_state(state) or not any(k.startswith("backbone.") for k in keys):
        raise CheckpointError(
            f"{source}: not an mmdet detector checkpoint (no backbone./bbox_head. tensors; "
            f"first keys: {_first(keys)})"
        )
    if "bbox_head.rtm_cls.0.weight" not in state or "neck.out_convs.0.conv.weight" not in state:
        depthwise = "neck.out_convs.0.depthwise_conv.conv.weight" in state
        if not depthwise or "bbox_head.rtm_cls.0.weight" not in state:
            heads = _first(k for k in keys if k.startswith("bbox_head."))
            raise NotRTMWError(
                f"{source}: an mmdet detector of another family (bbox_head keys: {heads}); "
                "rtmw runs RTMDet (CSPNeXtPAFPN neck + RTMDetSepBNHead)"
            )


def _shared_convs(state: Mapping[str, torch.Tensor]) -> bool:
    """mmdet's share_conv: levels 1 and 2 hold the very tensors of level 0."""
    level0 = state.get("bbox_head.cls_convs.0.0.conv.weight")
    others = [state.get(f"bbox_head.cls_convs.{n}.0.conv.weight") for n in (1, 2)]
    if level0 is None or any(o is None for o in others):
        return False
    return all(torch.equal(level0, o) for o in others if o is not None)


def _exp_on_reg_from_meta(meta: Mapping[str, Any]) -> bool | None:
    """mmengine saves the training config's text in meta['cfg']; it says exp_on_reg."""
    text = meta.get("cfg")
    if not isinstance(text, str):
        return None
    found = re.findall(r"exp_on_reg\s*=\s*(True|False)", text)
    return found[-1] == "True" if found else None


def identify_detector(
    state: Mapping[str, torch.Tensor],
    source: str = "state dict",
    meta: Mapping[str, Any] | None = None,
) -> RTMDetConfig:
    """Name the RTMDet configuration a state dict belongs to, from tensor shapes."""
    _reject_other_families(state, source)
    stem = state.get("backbone.stem.2.conv.weight")
    if stem is None:
        raise StateDictMismatch(f"{source}: RTMDet layout incomplete: no backbone.stem.2")
    num_classes = int(state["bbox_head.rtm_cls.0.weight"].shape[0])
    widen = int(stem.shape[0]) / 64
    blocks = tuple(_count_blocks(state, s) for s in range(1, 5))
    neck_block = re.compile(r"^neck\.top_down_blocks\.0\.blocks\.(\d+)\.")
    neck_blocks = len({m.group(1) for k in state if (m := neck_block.match(k))})
    depthwise = "backbone.stage1.0.depthwise_conv.conv.weight" in state
    shared = _shared_convs(state) and not depthwise
    fits = [
        c for c in DETECTOR_ZOO.values()
        if c.stem_channels == int(stem.shape[0]) and c.stage_blocks == blocks
        and c.num_classes == num_classes and c.use_depthwise == depthwise
        and c.neck_csp_blocks == neck_blocks and c.share_conv == shared
    ]  # fmt: skip
    exp_from_meta = _exp_on_reg_from_meta(meta or {})
    if fits:
        # same tensors, several names (the demo detector is RTMDet-nano's layout): the name
        # the file was saved under (rtmw's meta) wins, else the published one
        named = [c for c in fits if c.name == (meta or {}).get("rtmw_config")]
        config = (named or fits)[0]
    else:
        known = sorted({c.deepen_factor for c in DETECTOR_ZOO.values()})
        deepen = next((d for d in known
                       if replace(next(iter(DETECTOR_ZOO.values())), deepen_factor=d).stage_blocks
                       == blocks), blocks[1] / 6)  # fmt: skip
        config = RTMDetConfig(
            name=f"rtmdet-custom-w{widen:g}-d{deepen:g}-c{num_classes}",
            widen_factor=widen, deepen_factor=deepen, input_size=(640, 640),
            num_classes=num_classes, neck_csp_blocks=max(neck_blocks, 1),
            use_depthwise=depthwise, share_conv=shared,
            # the published configs apply exp() from RTMDet-m up (widen ≥ 0.75)
            exp_on_reg=widen >= 0.75,
            description="inferred from tensor shapes; not a published configuration",
        )  # fmt: skip
    if exp_from_meta is not None and exp_from_meta != config.exp_on_reg:
        config = replace(config, exp_on_reg=exp_from_meta)
    report = _mismatch_report(state, detector_layout(config))
    if report:
        raise StateDictMismatch(f"{source}: tensors do not match RTMDet exactly ({report})")
    return config


def detector_from_contents(
    contents: CheckpointContents, *, expect: str | None = None
) -> tuple[RTMDet, RTMDetConfig]:
    """Identify, build and strictly load the detector held by already-read contents."""
    _check_official_pin(contents, DETECTOR_ZOO.values())
    config = identify_detector(contents.state_dict, str(contents.path), contents.meta)
    if expect is not None and config.name != get_detector_config(expect).name:
        raise StateDictMismatch(
            f"{contents.path}: expected {expect}, but the tensors are {config.name}"
        )
    return load_strictly(RTMDet(config), config, contents)


def load_detector(path: str | Path, *, expect: str | None = None) -> tuple[RTMDet, RTMDetConfig]:
    """Load an mmdet-format RTMDet checkpoint: (model in eval mode, its configuration)."""
    return detector_from_contents(read_checkpoint(path), expect=expect)


def build_detector(name: str | RTMDetConfig, *, seed: int | None = None) -> RTMDet:
    """A randomly initialised detector of a zoo configuration, in eval mode."""
    config = name if isinstance(name, RTMDetConfig) else get_detector_config(name)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    if seed is not None:
        torch.manual_seed(seed)
    model = RTMDet(config)
    randomize_batchnorm(model, generator)
    return model.eval()


def detection_dataset_meta(num_classes: int) -> dict[str, Any]:
    """``dataset_meta`` as mmdet stores it (class names; COCO-80 abbreviated past person)."""
    if num_classes == 1:
        return {"classes": ("person",), "palette": [(220, 20, 60)]}
    names = (*COCO_CLASSES_FIRST, *(f"class_{i}" for i in range(len(COCO_CLASSES_FIRST),
                                                                num_classes)))  # fmt: skip
    return {"classes": names, "palette": [(0, 0, 0)] * num_classes}


def save_detector_checkpoint(
    model: RTMDet, path: str | Path, *, meta: Mapping[str, Any] | None = None
) -> Path:
    """Write ``{"meta", "state_dict"}`` exactly as mmdet's runner saves it (shared head
    convs appear under every level's key, as in mmdet's files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = model.config
    full_meta: dict[str, Any] = {
        "mmengine_version": "0.10.3",
        "mmdet_version": "3.3.0",
        "time": _dt.datetime.now(tz=_dt.timezone.utc).strftime("%Y%m%d_%H%M%S"),
        "epoch": 0,
        "iter": 0,
        "seed": 0,
        "experiment_name": f"rtmw_{config.name}",
        "dataset_meta": detection_dataset_meta(config.num_classes),
        "rtmw_config": config.name,
    }
    full_meta.update(meta or {})
    state_dict = OrderedDict((k, v.detach().cpu()) for k, v in model.state_dict().items())
    tmp = path.with_name(path.name + ".partial")
    torch.save({"meta": full_meta, "state_dict": state_dict}, tmp)
    tmp.replace(path)
    return path


def demo_detector_checkpoint() -> Path:
    """The packaged demo detector's weights (mmdet format), refused if modified."""
    from rtmw.models.checkpoint import packaged_weights
    from rtmw.models.rtmdet import DEMO_DETECTOR_NAME

    return packaged_weights(DEMO_DETECTOR_NAME, get_detector_config(DEMO_DETECTOR_NAME).official)
