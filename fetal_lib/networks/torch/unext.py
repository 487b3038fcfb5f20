"""2-D UNeXt: a light U-shaped network with convolutional stages and tokenised shifted-MLP stages.

After Valanarasu and Patel (2022), "UNeXt: MLP-based Rapid Medical Image Segmentation
Network" (MICCAI 2022, arXiv:2203.04967, :cite:`valanarasu2022unext`). Five stages down, five
up, with widths C1..C5:

* Convolutional encoder, three stages: conv3x3-BN, max-pool 2x2, ReLU (C1, C2, C3 channels
  at 1/2, 1/4, 1/8 of the input size).
* Tokenised MLP encoder, two stages: an overlapping patch embedding (conv3x3, stride 2, then
  LayerNorm over the channels of each token) to C4 at 1/16 and C5 at 1/32 (the bottleneck),
  each followed by a Tok-MLP block.
* Decoder mirroring it: at each stage conv3x3-BN, bilinear upsampling x2, ReLU, and the
  encoder's features of the same size *added* (not concatenated). The two coarse decoder
  stages (C4 at 1/16, C3 at 1/8) are followed by a Tok-MLP block; the last decoder stage
  (C1 at full size) has no skip and no BN. A 1x1 convolution gives the per-pixel logits.

Tok-MLP block (on tokens ``T``, one per pixel of the feature map)::

    X = LN(T)
    X = shift_W(X)                    # channels split in ``shift_size`` groups, group k moved
                                      # by offset k - shift_size // 2 along the width (zeros fill)
    X = GELU(DWConv3x3(fc1(X)))       # channel MLP, then a depth-wise conv (positional cue)
    X = fc2(shift_H(X))               # the same shift along the height, then channel MLP
    out = LN(T + X)                   # residual, LayerNorm

The shifts give each token's channel MLP a view of its axial neighbours: one block mixes
tokens within ``shift_size // 2 + 1`` of each other along each axis.

Widths: the paper's C1..C5 = 32, 64, 128, 160, 256 (``widths=(32, 64, 128, 160, 256)``;
1.58 M parameters with one input channel); the authors' released code uses 16, 32, 128, 160,
256, which gives the 1.47 M parameters the paper reports (three input channels). The CPU
default is 16, 32, 64, 96, 128 (0.47 M parameters).

Input: (batch, in_channels, H, W) with H, W divisible by 32 (three max-poolings and two
stride-2 patch embeddings). Output: logits (batch, num_classes, H, W).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F

DOWNSAMPLING = 32  # 2 ** (3 poolings + 2 strided patch embeddings)


def shift_groups(x: torch.Tensor, dim: int, shift_size: int) -> torch.Tensor:
    """Split the channels (axis 1) into ``shift_size`` groups and move group ``k`` by
    ``k - shift_size // 2`` along ``dim`` (2: height, 3: width), filling with zeros.

    With C channels the groups are ``torch.tensor_split(x, shift_size, dim=1)`` (sizes
    differing by at most one; empty groups when C < shift_size).
    """
    pad = shift_size // 2
    size = x.shape[dim]
    out = []
    for k, group in enumerate(torch.tensor_split(x, shift_size, dim=1)):
        offset = k - pad
        if offset == 0 or group.shape[1] == 0:
            out.append(group)
            continue
        # pad `offset` zeros before (offset > 0) or after (offset < 0) along dim, keep `size`
        spec = [0, 0, 0, 0]  # F.pad order: (W_left, W_right, H_top, H_bottom)
        side = (3 - dim) * 2  # 0 for the width, 2 for the height
        if offset > 0:
            spec[side] = offset
            out.append(F.pad(group, spec).narrow(dim, 0, size))
        else:
            spec[side + 1] = -offset
            out.append(F.pad(group, spec).narrow(dim, -offset, size))
    return torch.cat(out, dim=1)


class ShiftedMLP(nn.Module):
    """shift_W -> fc1 -> DWConv3x3 -> GELU -> shift_H -> fc2, on a (B, C, H, W) map.

    The channel MLPs (``fc1``, ``fc2``) are 1x1 convolutions, the same as linear layers on
    the tokens; ``hidden`` is their inner width (the paper: the block's width).
    """

    def __init__(self, dim: int, hidden: int | None = None, shift_size: int = 5):
        super().__init__()
        hidden = hidden or dim
        self.shift_size = shift_size
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = shift_groups(x, 3, self.shift_size)
        x = F.gelu(self.dwconv(self.fc1(x)))
        x = shift_groups(x, 2, self.shift_size)
        return self.fc2(x)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of each pixel (token) of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class TokMLPBlock(nn.Module):
    """Tok-MLP block: ``LN(x + ShiftedMLP(LN(x)))`` on a (B, C, H, W) map (tokens = pixels)."""

    def __init__(self, dim: int, mlp_ratio: float = 1.0, shift_size: int = 5):
        super().__init__()
        self.norm_in = ChannelLayerNorm(dim)
        self.mlp = ShiftedMLP(dim, max(1, int(dim * mlp_ratio)), shift_size)
        self.norm_out = ChannelLayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_out(x + self.mlp(self.norm_in(x)))


class PatchEmbed(nn.Module):
    """Overlapping patch embedding: conv3x3 with stride 2, then LayerNorm per token."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)
        self.norm = ChannelLayerNorm(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class ConvDown(nn.Module):
    """Encoder stage: conv3x3-BN, max-pool 2x2, ReLU."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(F.max_pool2d(self.bn(self.conv(x)), 2))


class ConvUp(nn.Module):
    """Decoder stage: conv3x3-(BN), bilinear upsampling x2, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, norm: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_ch) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))


class UNeXt(nn.Module):
    """2-D UNeXt.

    Args:
        in_channels: input channels (1 for ultrasound).
        num_classes: output channels (1: sigmoid foreground; K > 1: softmax classes).
        widths: C1..C5, the channels of the three convolutional and two tokenised stages.
        mlp_ratio: inner width of the shifted MLPs relative to the block width (paper: 1).
        shift_size: number of channel groups in the shifts (offsets ``-shift_size // 2`` ..
            ``shift_size // 2``; paper: 5).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 1, widths: Sequence[int] = (16, 32, 64, 96, 128),
                 mlp_ratio: float = 1.0, shift_size: int = 5):
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) != 5:
            raise ValueError(f"widths must give C1..C5 (5 numbers); got {widths}")
        if shift_size < 1 or shift_size % 2 == 0:
            raise ValueError(f"shift_size must be odd and positive (offsets symmetric about 0); got {shift_size}")
        c1, c2, c3, c4, c5 = widths
        self.enc1 = ConvDown(in_channels, c1)
        self.enc2 = ConvDown(c1, c2)
        self.enc3 = ConvDown(c2, c3)
        self.embed4 = PatchEmbed(c3, c4)
        self.block4 = TokMLPBlock(c4, mlp_ratio, shift_size)
        self.embed5 = PatchEmbed(c4, c5)
        self.block5 = TokMLPBlock(c5, mlp_ratio, shift_size)
        self.dec5 = ConvUp(c5, c4)
        self.dblock4 = TokMLPBlock(c4, mlp_ratio, shift_size)
        self.dec4 = ConvUp(c4, c3)
        self.dblock3 = TokMLPBlock(c3, mlp_ratio, shift_size)
        self.dec3 = ConvUp(c3, c2)
        self.dec2 = ConvUp(c2, c1)
        self.dec1 = ConvUp(c1, c1, norm=False)
        self.head = nn.Conv2d(c1, num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m is not self.head:
                nn.init.trunc_normal_(m.weight, std=0.02)  # the MLPs' linear layers, as the authors'
                nn.init.zeros_(m.bias)
        self.config = {"in_channels": in_channels, "num_classes": num_classes, "widths": widths,
                       "mlp_ratio": mlp_ratio, "shift_size": shift_size}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or any(s % DOWNSAMPLING for s in x.shape[2:]):
            raise ValueError(f"UNeXt needs (B, C, H, W) input with H and W divisible by {DOWNSAMPLING} "
                             f"(3 poolings + 2 strided patch embeddings); got shape {tuple(x.shape)}")
        t1 = self.enc1(x)  # C1, 1/2
        t2 = self.enc2(t1)  # C2, 1/4
        t3 = self.enc3(t2)  # C3, 1/8
        t4 = self.block4(self.embed4(t3))  # C4, 1/16
        out = self.block5(self.embed5(t4))  # C5, 1/32
        out = self.dblock4(self.dec5(out) + t4)
        out = self.dblock3(self.dec4(out) + t3)
        out = self.dec3(out) + t2
        out = self.dec2(out) + t1
        return self.head(self.dec1(out))

    def gradcam_layer(self) -> nn.Module:
        """The last decoder stage (full resolution, just before the 1x1 head), for Grad-CAM."""
        return self.dec1


def create(**config) -> UNeXt:
    """Build a :class:`UNeXt` from a config dict (as saved in a model card)."""
    return UNeXt(**config)
