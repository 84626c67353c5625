"""RTMW: CSPNeXt-P5 backbone, CSPNeXtPAFPN neck and the RTMW SimCC head.

One readable module for the whole architecture. Attribute names follow mmpose so
that ``model.state_dict()`` has the same keys as an official checkpoint
(``backbone.stage1.1.blocks.0.conv2.depthwise_conv.bn.weight`` and so on).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from rtmw.models.layers import (
    ConvModule,
    CSPLayer,
    DepthwiseSeparableConvModule,
    RTMCCBlock,
    ScaleNorm,
    SPPBottleneck,
)
from rtmw.models.zoo import P5_STAGES, RTMWConfig


class BackboneConfig(Protocol):
    """What CSPNeXt needs of a configuration (RTMW's and RTMDet's both have it)."""

    @property
    def stem_channels(self) -> int: ...
    @property
    def stage_channels(self) -> tuple[int, ...]: ...
    @property
    def stage_blocks(self) -> tuple[int, ...]: ...
    @property
    def expand_ratio(self) -> float: ...


class CSPNeXt(nn.Module):
    """CSPNeXt backbone, arch P5, channel attention on; returns strides 8, 16, 32.

    ``use_depthwise`` (RTMDet-nano) makes the stage down-sampling convs and the blocks'
    3×3 convs depthwise-separable, as mmdet's CSPNeXt does; the stem stays dense.
    """

    stage1: nn.Sequential
    stage2: nn.Sequential
    stage3: nn.Sequential
    stage4: nn.Sequential

    def __init__(self, config: BackboneConfig, *, use_depthwise: bool = False) -> None:
        super().__init__()
        stem = config.stem_channels
        self.stem = nn.Sequential(
            ConvModule(3, stem // 2, 3, stride=2),
            ConvModule(stem // 2, stem // 2, 3),
            ConvModule(stem // 2, stem, 3),
        )
        in_channels = stem
        for index, ((_, _, _, add_identity, use_spp), out_channels, num_blocks) in enumerate(
            zip(P5_STAGES, config.stage_channels, config.stage_blocks, strict=True)
        ):
            down: nn.Module = (
                DepthwiseSeparableConvModule(in_channels, out_channels, 3, stride=2)
                if use_depthwise
                else ConvModule(in_channels, out_channels, 3, stride=2)
            )
            layers: list[nn.Module] = [down]
            if use_spp:
                layers.append(SPPBottleneck(out_channels, out_channels))
            layers.append(
                CSPLayer(
                    out_channels,
                    out_channels,
                    num_blocks=num_blocks,
                    add_identity=add_identity,
                    channel_attention=True,
                    expand_ratio=config.expand_ratio,
                    use_depthwise=use_depthwise,
                )
            )
            self.add_module(f"stage{index + 1}", nn.Sequential(*layers))
            in_channels = out_channels

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.stem(x)
        x = self.stage1(x)
        c3 = self.stage2(x)
        c4 = self.stage3(c3)
        c5 = self.stage4(c4)
        return c3, c4, c5


class CSPNeXtPAFPN(nn.Module):
    """Top-down then bottom-up fusion of strides 8/16/32.

    RTMW (mmpose's form) takes strides 16 and 32 as they are. RTMDet (mmdet's form) gives
    ``out_channels``: every level then passes a 3×3 ``out_convs`` conv and all three are
    returned; ``use_depthwise`` (RTMDet-nano) makes the down-sampling and output convs and
    the CSP blocks depthwise-separable.
    """

    def __init__(
        self,
        in_channels: tuple[int, int, int],
        num_csp_blocks: int = 2,
        *,
        out_channels: int | None = None,
        use_depthwise: bool = False,
        expand_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels

        def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Module:
            if use_depthwise:
                return DepthwiseSeparableConvModule(cin, cout, 3, stride=stride)
            return ConvModule(cin, cout, 3, stride=stride)

        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.reduce_layers = nn.ModuleList()
        self.top_down_blocks = nn.ModuleList()
        for idx in range(len(in_channels) - 1, 0, -1):
            self.reduce_layers.append(ConvModule(in_channels[idx], in_channels[idx - 1], 1))
            self.top_down_blocks.append(
                CSPLayer(
                    in_channels[idx - 1] * 2,
                    in_channels[idx - 1],
                    num_blocks=num_csp_blocks,
                    add_identity=False,
                    channel_attention=False,
                    expand_ratio=expand_ratio,
                    use_depthwise=use_depthwise,
                )
            )
        self.downsamples = nn.ModuleList()
        self.bottom_up_blocks = nn.ModuleList()
        for idx in range(len(in_channels) - 1):
            self.downsamples.append(conv3x3(in_channels[idx], in_channels[idx], stride=2))
            self.bottom_up_blocks.append(
                CSPLayer(
                    in_channels[idx] * 2,
                    in_channels[idx + 1],
                    num_blocks=num_csp_blocks,
                    add_identity=False,
                    channel_attention=False,
                    expand_ratio=expand_ratio,
                    use_depthwise=use_depthwise,
                )
            )
        self.out_convs: nn.ModuleList | None = None
        if out_channels is not None:
            self.out_convs = nn.ModuleList(conv3x3(c, out_channels) for c in in_channels)

    def forward(self, inputs: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, ...]:
        """RTMW's form: strides 16 and 32; mmdet's (with ``out_convs``): all three levels.
        Called as a module either way, so exported node names sit under ``/neck/`` (the
        INT8 policies and the sensitivity scan find the neck by that prefix)."""
        outs = self.fuse(inputs)
        if self.out_convs is not None:
            return tuple(outs)
        return outs[1], outs[2]

    def fuse(self, inputs: tuple[Tensor, Tensor, Tensor]) -> list[Tensor]:
        """All three fused levels (through ``out_convs`` when the neck has them)."""
        levels = len(self.in_channels)
        inner_outs = [inputs[-1]]
        for idx in range(levels - 1, 0, -1):
            step = levels - 1 - idx
            feat_high = self.reduce_layers[step](inner_outs[0])
            inner_outs[0] = feat_high
            fused = torch.cat([self.upsample(feat_high), inputs[idx - 1]], 1)
            inner_outs.insert(0, self.top_down_blocks[step](fused))

        outs = [inner_outs[0]]
        for idx in range(levels - 1):
            down = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat([down, inner_outs[idx + 1]], 1)))
        if self.out_convs is not None:
            outs = [conv(out) for conv, out in zip(self.out_convs, outs, strict=True)]
        return outs


class RTMWHead(nn.Module):
    """Hierarchical SimCC head: stride-32 and upsampled stride-16 keypoint tokens, GAU.

    Order of concatenations follows mmpose's source (the upsampled stride-32 branch
    comes before the stride-16 map; the stride-32 tokens come first in the GAU input).
    """

    def __init__(self, config: RTMWConfig) -> None:
        super().__init__()
        in_channels = config.head_in_channels
        kernel = config.final_layer_kernel_size
        fw, fh = config.featuremap_size
        flatten_dims = fw * fh
        hidden = config.gau_hidden_dims
        num_keypoints = config.num_keypoints
        pixel_shuffle = 2
        self.ps = nn.PixelShuffle(pixel_shuffle)
        self.conv_dec = ConvModule(
            in_channels // pixel_shuffle**2, in_channels // 4, kernel, act=nn.ReLU
        )
        self.final_layer = ConvModule(in_channels, num_keypoints, kernel, act=nn.ReLU)
        self.final_layer2 = ConvModule(
            in_channels // pixel_shuffle + in_channels // 4, num_keypoints, kernel, act=nn.ReLU
        )
        self.mlp = nn.Sequential(
            ScaleNorm(flatten_dims), nn.Linear(flatten_dims, hidden // 2, bias=False)
        )
        self.mlp2 = nn.Sequential(
            ScaleNorm(flatten_dims * pixel_shuffle**2),
            nn.Linear(flatten_dims * pixel_shuffle**2, hidden // 2, bias=False),
        )
        self.gau = RTMCCBlock(
            num_keypoints,
            hidden,
            hidden,
            expansion_factor=config.gau_expansion_factor,
            s=config.gau_s,
        )
        simcc_w, simcc_h = config.simcc_size
        self.cls_x = nn.Linear(hidden, simcc_w, bias=False)
        self.cls_y = nn.Linear(hidden, simcc_h, bias=False)
        # RTMW3DHead: one more classifier on the same GAU tokens, over root-relative depth
        simcc_d = config.simcc_depth
        self.cls_z = nn.Linear(hidden, simcc_d, bias=False) if simcc_d is not None else None

    def forward(self, feats: tuple[Tensor, Tensor]) -> tuple[Tensor, ...]:
        enc_b, enc_t = feats  # stride 16, stride 32
        tokens_t = self.mlp(torch.flatten(self.final_layer(enc_t), 2))
        dec_t = self.conv_dec(self.ps(enc_t))
        enc_b = torch.cat([dec_t, enc_b], dim=1)
        tokens_b = self.mlp2(torch.flatten(self.final_layer2(enc_b), 2))
        tokens = self.gau(torch.cat([tokens_t, tokens_b], dim=2))
        if self.cls_z is not None:
            return self.cls_x(tokens), self.cls_y(tokens), self.cls_z(tokens)
        return self.cls_x(tokens), self.cls_y(tokens)


class RTMW(nn.Module):
    """Top-down whole-body pose model: NCHW normalised crops → (simcc_x, simcc_y), and
    simcc_z for RTMW3D configurations (``config.depth_size`` set)."""

    def __init__(self, config: RTMWConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.stage_channels
        self.backbone = CSPNeXt(config)
        self.neck = CSPNeXtPAFPN(
            (channels[1], channels[2], channels[3]), num_csp_blocks=config.neck_csp_blocks
        )
        self.head = RTMWHead(config)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        simcc: tuple[Tensor, ...] = self.head(self.neck(self.backbone(x)))
        return simcc
