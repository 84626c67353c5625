"""RTMDet: the person detector of the RTMPose/RTMW pipelines (mmdet 3.x), one module.

CSPNeXt-P5 backbone and CSPNeXtPAFPN neck (shared with RTMW, mmdet's form of the neck:
three levels through ``out_convs``), and ``RTMDetSepBNHead``: per level, stacked 3×3
convs for classification and regression (their conv weights shared across levels when
``share_conv``; BatchNorm always per level), a 1×1 class conv and a 1×1 distance conv.
Attribute names follow mmdet, so ``state_dict()`` keys equal an official checkpoint's
(``bbox_head.cls_convs.0.1.bn.running_var`` …) and files load with ``strict=True``.

The graph ends at the raw head outputs, per level: class logits (N, C, H/s, W/s) and
box distances in input pixels (N, 4, H/s, W/s) (mmdet multiplies by the stride inside
the head, and RTMDet-m/l/x take the exponential first). Decoding — priors, distance to
box, score threshold, NMS — is numpy in :mod:`rtmw.pipeline.detect`, the same for every
backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from torch import Tensor, nn

from rtmw.errors import RtmwError
from rtmw.models.layers import ConvModule, DepthwiseSeparableConvModule
from rtmw.models.rtmw import CSPNeXt, CSPNeXtPAFPN
from rtmw.models.zoo import CSPNeXtP5, OfficialFile

STRIDES = (8, 16, 32)
# mmdet's DetDataPreprocessor of every RTMDet config: BGR kept (bgr_to_rgb=False), the mean
# and std in BGR order; Pad fills with 114 before normalisation
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
PAD_VALUE = 114.0
COCO_PERSON = 0  # the person class of COCO-80 heads (category id 1)


@dataclass(frozen=True)
class PublishedBoxAP:
    """Box AP as published by mmdet / mmpose (COCO val2017; person-only for person heads)."""

    ap: float
    where: str


@dataclass(frozen=True)
class RTMDetConfig(CSPNeXtP5):
    """Everything needed to build one RTMDet model and describe it."""

    name: str
    widen_factor: float
    deepen_factor: float
    input_size: tuple[int, int]  # (width, height) of the network input, mmdet's Resize scale
    num_classes: int
    neck_csp_blocks: int
    use_depthwise: bool = False
    share_conv: bool = True
    # exp() on the distance logits before the stride (RTMDet-m/l/x); not visible in the
    # tensors, so it comes from the published configuration of the size (or the file's cfg)
    exp_on_reg: bool = False
    stacked_convs: int = 2
    expand_ratio: float = 0.5
    published: PublishedBoxAP | None = None
    official: OfficialFile | None = None
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    family: str = "rtmdet"
    task: str = "detect"

    @property
    def neck_in_channels(self) -> tuple[int, int, int]:
        channels = self.stage_channels
        return (channels[1], channels[2], channels[3])

    @property
    def feat_channels(self) -> int:
        """The neck's output width, which every official config also gives the head."""
        return int(256 * self.widen_factor)

    @property
    def person_only(self) -> bool:
        return self.num_classes == 1

    @property
    def person_class(self) -> int:
        return 0 if self.person_only else COCO_PERSON

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(f"cls_score_s{s}" for s in STRIDES) + tuple(f"bbox_pred_s{s}" for s in STRIDES)

    @property
    def detector_record(self) -> dict[str, object]:
        """What decoding needs, as artifact.json records it (rtmw.pipeline.detect reads it)."""
        return {
            "family": self.family,
            "num_classes": self.num_classes,
            "person_class": self.person_class,
            "strides": list(STRIDES),
            "mean_bgr": list(MEAN_BGR),
            "std_bgr": list(STD_BGR),
            "pad_value": PAD_VALUE,
            "exp_on_reg": self.exp_on_reg,
        }


def _conv3x3(cin: int, cout: int, depthwise: bool) -> nn.Module:
    return DepthwiseSeparableConvModule(cin, cout, 3) if depthwise else ConvModule(cin, cout, 3)


class RTMDetSepBNHead(nn.Module):
    """mmdet's RTMDetSepBNHead at inference (no objectness branch, kernel-1 predictions)."""

    def __init__(self, config: RTMDetConfig) -> None:
        super().__init__()
        self.exp_on_reg = config.exp_on_reg
        channels = config.feat_channels
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        self.rtm_cls = nn.ModuleList()
        self.rtm_reg = nn.ModuleList()
        for _ in STRIDES:
            self.cls_convs.append(nn.ModuleList(
                _conv3x3(channels, channels, config.use_depthwise)
                for _ in range(config.stacked_convs)))  # fmt: skip
            self.reg_convs.append(nn.ModuleList(
                _conv3x3(channels, channels, config.use_depthwise)
                for _ in range(config.stacked_convs)))  # fmt: skip
            self.rtm_cls.append(nn.Conv2d(channels, config.num_classes, 1))
            self.rtm_reg.append(nn.Conv2d(channels, 4, 1))
        if config.share_conv and not config.use_depthwise:
            # mmdet shares the conv (not the BatchNorm) of every stacked layer across levels
            for stacks in (self.cls_convs, self.reg_convs):
                first: Any = stacks[0]
                for level in range(1, len(STRIDES)):
                    stack: Any = stacks[level]
                    for i in range(config.stacked_convs):
                        stack[i].conv = first[i].conv

    def forward(self, feats: list[Tensor]) -> tuple[Tensor, ...]:
        scores, distances = [], []
        for level, (x, stride) in enumerate(zip(feats, STRIDES, strict=True)):
            cls_feat, reg_feat = x, x
            cls_stack: Any = self.cls_convs[level]
            reg_stack: Any = self.reg_convs[level]
            for layer in cls_stack:
                cls_feat = layer(cls_feat)
            for layer in reg_stack:
                reg_feat = layer(reg_feat)
            scores.append(self.rtm_cls[level](cls_feat))
            reg = self.rtm_reg[level](reg_feat)
            # a float factor: an integer one becomes an int64 constant that PT2E's
            # histogram observers (litert-int8) cannot take
            distances.append((reg.exp() if self.exp_on_reg else reg) * float(stride))
        return (*scores, *distances)


class RTMDet(nn.Module):
    """Letterboxed, normalised BGR frames (N,3,H,W) → per-level class logits and box
    distances (pixels of the network input), in ``config.output_names`` order."""

    def __init__(self, config: RTMDetConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = CSPNeXt(config, use_depthwise=config.use_depthwise)
        self.neck = CSPNeXtPAFPN(
            config.neck_in_channels,
            num_csp_blocks=config.neck_csp_blocks,
            out_channels=config.feat_channels,
            use_depthwise=config.use_depthwise,
            expand_ratio=config.expand_ratio,
        )
        self.bbox_head = RTMDetSepBNHead(config)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        outputs: tuple[Tensor, ...] = self.bbox_head(list(self.neck(self.backbone(x))))
        return outputs

    def unshare_convs(self) -> RTMDet:
        """Give every level its own copy of the shared head convs (same values, same state
        dict): converters that trace modules (pnnx) cannot take one module called thrice."""
        import copy

        for stacks in (self.bbox_head.cls_convs, self.bbox_head.reg_convs):
            for level in range(1, len(STRIDES)):
                stack: Any = stacks[level]
                for layer in stack:
                    if hasattr(layer, "conv"):
                        layer.conv = copy.deepcopy(layer.conv)
        return self


def _official(file_name: str, url_dir: str) -> OfficialFile:
    # OpenMMLab's publish_model ends the name with the first 8 hex digits of the sha256
    prefix = file_name.rsplit("-", 1)[-1].removesuffix(".pth")
    return OfficialFile(f"{url_dir}/{file_name}", file_name, sha256_prefix=prefix)


MMDET = "https://download.openmmlab.com/mmdetection/v3.0/rtmdet"
MMPOSE_DET = "https://download.openmmlab.com/mmpose/v1/projects/rtmpose"


def _coco80(size: str, widen: float, deepen: float, blocks: int, exp: bool, file: str,
            ap: float) -> RTMDetConfig:  # fmt: skip
    return RTMDetConfig(
        name=f"rtmdet-{size}", widen_factor=widen, deepen_factor=deepen, input_size=(640, 640),
        num_classes=80, neck_csp_blocks=blocks, exp_on_reg=exp,
        published=PublishedBoxAP(ap, "mmdet README, COCO val2017, all 80 classes"),
        official=_official(file, f"{MMDET}/rtmdet_{size}_8xb32-300e_coco"),
        description=f"RTMDet-{size}, COCO-80 head (filtered to person)",
    )  # fmt: skip


DETECTOR_ZOO: dict[str, RTMDetConfig] = {
    c.name: c
    for c in (
        RTMDetConfig(
            name="rtmdet-nano-person", widen_factor=0.25, deepen_factor=0.33,
            input_size=(320, 320), num_classes=1, neck_csp_blocks=1, use_depthwise=True,
            share_conv=False, exp_on_reg=False,
            official=_official("rtmdet_nano_8xb32-100e_coco-obj365-person-05d8511e.pth",
                               MMPOSE_DET),
            description="mmpose's rtmdet_nano_320-8xb32_coco-person (RTMPose's mobile detector)",
        ),
        RTMDetConfig(
            name="rtmdet-m-person", widen_factor=0.75, deepen_factor=0.67,
            input_size=(640, 640), num_classes=1, neck_csp_blocks=2, exp_on_reg=True,
            official=_official("rtmdet_m_8xb32-100e_coco-obj365-person-235e8209.pth",
                               MMPOSE_DET),
            description="mmpose's rtmdet_m_640-8xb32_coco-person (the RTMW demos' detector)",
        ),
        _coco80("tiny", 0.375, 0.167, 1, False,
                "rtmdet_tiny_8xb32-300e_coco_20220902_112414-78e30dcc.pth", 41.1),
        _coco80("s", 0.5, 0.33, 1, False,
                "rtmdet_s_8xb32-300e_coco_20220905_161602-387a891e.pth", 44.6),
        _coco80("m", 0.75, 0.67, 2, True,
                "rtmdet_m_8xb32-300e_coco_20220719_112220-229f527c.pth", 49.4),
        _coco80("l", 1.0, 1.0, 3, True,
                "rtmdet_l_8xb32-300e_coco_20220719_112030-5a0be7c4.pth", 51.5),
        _coco80("x", 1.25, 1.33, 4, True,
                "rtmdet_x_8xb32-300e_coco_20220715_230555-cc79b9ae.pth", 52.8),
    )
}  # fmt: skip


# The demo detector: RTMDet-nano's layout (person head, 320×320), trained with rtmw-train
# on synthetic frames on a 2-core CPU (results/demo-detector-training/); shipped in the
# package so the demo detects people without a download.
DEMO_DETECTOR_NAME = "rtmdet-nano-demo"
_DEMO_DETECTOR_FILE = "rtmdet-nano-demo_synthetic-4000it-320-a8ce3dfc.pth"
_DEMO_DETECTOR_SHA256 = "a8ce3dfc9608b72a451f21e77519790b059c0159c70e5b9964e80683ed59d4d1"
DETECTOR_ZOO[DEMO_DETECTOR_NAME] = replace(
    DETECTOR_ZOO["rtmdet-nano-person"],
    name=DEMO_DETECTOR_NAME,
    published=None,
    official=OfficialFile(
        f"package:rtmw/models/weights/{_DEMO_DETECTOR_FILE}",
        _DEMO_DETECTOR_FILE,
        sha256_prefix=_DEMO_DETECTOR_SHA256[:8],
        sha256=_DEMO_DETECTOR_SHA256,
    ),
    description="demo: RTMDet-nano trained on synthetic frames (not published)",
)


def get_detector_config(name: str) -> RTMDetConfig:
    try:
        return DETECTOR_ZOO[name]
    except KeyError:
        raise RtmwError(
            f"unknown detector {name!r}; known: {', '.join(sorted(DETECTOR_ZOO))}"
        ) from None
