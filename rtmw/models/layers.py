"""Building blocks of RTMW, named so that state-dict keys match mmpose's exactly.

mmcv's ``ConvModule`` stores its parts as ``conv``, ``bn`` and ``activate``; the
blocks below keep those attribute names (and mmpose's module names) so an official
checkpoint loads with ``strict=True`` and no key remapping.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvModule(nn.Module):
    """Conv (no bias) + BatchNorm + activation, mmcv's ConvModule layout."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        act: type[nn.Module] = nn.SiLU,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-5)
        self.activate = act()

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.activate(self.bn(self.conv(x)))
        return out


class DepthwiseSeparableConvModule(nn.Module):
    """Depthwise k×k ConvModule followed by a pointwise 1×1 ConvModule."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1
    ) -> None:
        super().__init__()
        self.depthwise_conv = ConvModule(
            in_channels, in_channels, kernel_size, stride=stride, groups=in_channels
        )
        self.pointwise_conv = ConvModule(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.pointwise_conv(self.depthwise_conv(x))
        return out


class ChannelAttention(nn.Module):
    """Squeeze-style gate: global average pool, 1×1 conv with bias, Hardsigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)
        self.act = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        gate: Tensor = self.act(self.fc(self.global_avgpool(x)))
        return x * gate


class CSPNeXtBlock(nn.Module):
    """3×3 ConvModule then depthwise-separable 5×5, with an optional residual."""

    def __init__(
        self, channels: int, add_identity: bool, kernel_size: int = 5, use_depthwise: bool = False
    ) -> None:
        super().__init__()
        # RTMDet-nano (use_depthwise) makes the 3×3 depthwise-separable too, as mmdet does
        self.conv1: nn.Module = (
            DepthwiseSeparableConvModule(channels, channels, 3)
            if use_depthwise
            else ConvModule(channels, channels, 3)
        )
        self.conv2 = DepthwiseSeparableConvModule(channels, channels, kernel_size)
        self.add_identity = add_identity

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class CSPLayer(nn.Module):
    """Cross-stage-partial layer: main path through blocks, short path, fused by 1×1."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int,
        add_identity: bool,
        channel_attention: bool,
        expand_ratio: float = 0.5,
        use_depthwise: bool = False,
    ) -> None:
        super().__init__()
        mid = int(out_channels * expand_ratio)
        self.main_conv = ConvModule(in_channels, mid, 1)
        self.short_conv = ConvModule(in_channels, mid, 1)
        self.final_conv = ConvModule(2 * mid, out_channels, 1)
        self.blocks = nn.Sequential(
            *[
                CSPNeXtBlock(mid, add_identity, use_depthwise=use_depthwise)
                for _ in range(num_blocks)
            ]
        )
        self.channel_attention = channel_attention
        if channel_attention:
            self.attention = ChannelAttention(2 * mid)

    def forward(self, x: Tensor) -> Tensor:
        short = self.short_conv(x)
        main = self.blocks(self.main_conv(x))
        fused = torch.cat((main, short), dim=1)
        if self.channel_attention:
            fused = self.attention(fused)
        out: Tensor = self.final_conv(fused)
        return out


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: 1×1 reduce, parallel max-pools, concat, 1×1."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...] = (5, 9, 13)
    ) -> None:
        super().__init__()
        mid = in_channels // 2
        self.conv1 = ConvModule(in_channels, mid, 1)
        self.poolings = nn.ModuleList(
            [nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in kernel_sizes]
        )
        self.conv2 = ConvModule(mid * (len(kernel_sizes) + 1), out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        x = torch.cat([x, *(pool(x) for pool in self.poolings)], dim=1)
        out: Tensor = self.conv2(x)
        return out


class ScaleNorm(nn.Module):
    """x · g / max(‖x‖₂ · d^-½, eps).

    The norm is computed in FP32 whatever the input dtype: over hundreds of features
    ‖x‖₂ overflows FP16 (max 65504) long before the normalised result does, which is
    the first thing that breaks in naive FP16 deployments of RTMW.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale = dim**-0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        norm = torch.linalg.vector_norm(x32, dim=-1, keepdim=True) * self.scale
        out: Tensor = x32 / norm.clamp(min=self.eps) * self.g
        return out.to(x.dtype)


class Scale(nn.Module):
    """Learnable per-channel scale on the GAU's residual path."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class RTMCCBlock(nn.Module):
    """Gated attention unit over keypoint tokens (self-attention, no position bias).

    Inputs are (N, K, C) keypoint tokens; attention is relu(q·kᵀ/√s)², which is
    what RTMW was trained with (no softmax), so exports must keep it as is.
    """

    def __init__(
        self,
        num_token: int,
        in_token_dims: int,
        out_token_dims: int,
        expansion_factor: int = 2,
        s: int = 128,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.num_token = num_token
        self.s = s
        self.e = int(in_token_dims * expansion_factor)
        self.o = nn.Linear(self.e, out_token_dims, bias=False)
        self.uv = nn.Linear(in_token_dims, 2 * self.e + self.s, bias=False)
        self.gamma = nn.Parameter(torch.rand((2, self.s)))
        self.beta = nn.Parameter(torch.rand((2, self.s)))
        self.ln = ScaleNorm(in_token_dims, eps=eps)
        self.act_fn = nn.SiLU()
        nn.init.xavier_uniform_(self.uv.weight)
        self.shortcut = in_token_dims == out_token_dims
        if self.shortcut:
            self.res_scale = Scale(in_token_dims)
        self.sqrt_s = math.sqrt(s)

    def attention(self, x: Tensor) -> Tensor:
        x = self.ln(x)
        uv = self.act_fn(self.uv(x))
        u, v, base = torch.split(uv, [self.e, self.e, self.s], dim=2)
        base = base.unsqueeze(2) * self.gamma[None, None, :] + self.beta
        q, k = torch.unbind(base, dim=2)
        qk = torch.bmm(q, k.permute(0, 2, 1))
        kernel = torch.square(F.relu(qk / self.sqrt_s))
        out: Tensor = self.o(u * torch.bmm(kernel, v))
        return out

    def forward(self, x: Tensor) -> Tensor:
        out = self.attention(x)
        if not self.shortcut:
            return out
        residual: Tensor = self.res_scale(x)
        return residual + out


def randomize_batchnorm(model: nn.Module, generator: torch.Generator | None) -> None:
    """BatchNorm statistics away from 0/1, so that random-init files exercise the arithmetic
    of trained ones (build() and build_detector() both use it)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d) and module.running_mean is not None:
                n = module.num_features
                assert module.running_var is not None
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                module.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
