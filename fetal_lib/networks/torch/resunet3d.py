"""3D Res-U-Net for brain tissue segmentation (background, CSF, GM, WM).

After the Imperial College "Machine Learning for Imaging" brain-age coursework: an encoder
of residual blocks (two 3x3x3 convolutions with ReLU, plus a 1x1x1 convolution on the
shortcut), max-pooling between levels, and a decoder that upsamples (trilinear), concatenates
the encoder's skip connection and applies another residual block. A 1x1x1 convolution gives
the per-voxel class logits. Batch normalisation after each 3x3x3 convolution is an option
(on by default: it lets the small CPU budget train in a few epochs).

Input: (batch, in_channels, D, H, W) with D, H, W divisible by ``2 ** (depth - 1)``.
Output: logits (batch, num_classes, D, H, W).
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from fetal_lib.networks.torch.unet_levels import encode, encoder_blocks, level_widths


class ResBlock3d(nn.Module):
    """conv3-(BN)-ReLU-conv3-(BN) + conv1x1x1(x), then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, norm: bool = True):
        super().__init__()
        self.conv1 = nn.Conv3d(in_ch, out_ch, 3, padding=1, bias=not norm)
        self.conv2 = nn.Conv3d(out_ch, out_ch, 3, padding=1, bias=not norm)
        self.bn1 = nn.BatchNorm3d(out_ch) if norm else nn.Identity()
        self.bn2 = nn.BatchNorm3d(out_ch) if norm else nn.Identity()
        self.shortcut = nn.Conv3d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResUNet3d(nn.Module):
    """3D Res-U-Net.

    Args:
        in_channels: input channels (1 for a T1 volume).
        num_classes: output classes (4: background, CSF, GM, WM).
        base_width: channels at the first level; doubles at each level down.
        depth: number of resolution levels (``depth - 1`` poolings).
        norm: batch normalisation after each 3x3x3 convolution.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 4, base_width: int = 8, depth: int = 4, norm: bool = True):
        super().__init__()
        widths = level_widths(base_width, depth)
        self.depth = depth
        self.encoders = encoder_blocks(in_channels, widths, lambda c_in, c_out: ResBlock3d(c_in, c_out, norm))
        prev = widths[-1]
        self.decoders = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.decoders.append(ResBlock3d(prev + w, w, norm))
            prev = w
        self.head = nn.Conv3d(prev, num_classes, 1)
        self.config = {"in_channels": in_channels, "num_classes": num_classes, "base_width": base_width, "depth": depth, "norm": norm}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** (self.depth - 1)
        if any(s % factor for s in x.shape[2:]):
            raise ValueError(f"spatial size {tuple(x.shape[2:])} must be divisible by {factor}")
        x, skips = encode(x, self.encoders, F.max_pool3d)
        for dec, skip in zip(self.decoders, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[2:], mode="trilinear", align_corners=False)
            x = dec(torch.cat([x, skip], dim=1))
        return self.head(x)


def create(**config) -> ResUNet3d:
    """Build a :class:`ResUNet3d` from a config dict (as saved in a model card)."""
    return ResUNet3d(**config)
