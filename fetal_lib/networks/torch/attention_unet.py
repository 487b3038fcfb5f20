"""2-D Attention U-Net: a U-Net whose skip connections pass through additive attention gates.

After Oktay et al. (2018), "Attention U-Net: Learning Where to Look for the Pancreas"
(arXiv:1804.03999, :cite:`oktay2018attention`). The encoder and decoder are those of a U-Net:
at each level a double convolution (conv3x3-BN-ReLU, twice), max-pooling (2x2) on the way
down, bilinear upsampling (x2) on the way up, concatenation with the encoder's features of
the same level, and another double convolution. The difference is that each skip
connection ``x`` is first multiplied by attention coefficients computed from ``x`` and a
*gating signal* ``g``, the decoder's features one level coarser (the bottleneck for the
deepest skip)::

    q     = ReLU(W_x x + W_g g + b_g)        # W_x: 2x2 conv, stride 2 (to g's grid); W_g: 1x1 conv
    alpha = sigmoid(psi q + b_psi)           # psi: 1x1 conv to one channel, alpha in [0, 1]
    x_hat = upsample(alpha) * x              # bilinear to x's size, one coefficient per pixel

(the "grid attention" of the paper, with an intermediate width of half the skip's
channels, as in the authors' code). The coefficients of the last forward pass are kept in
``model.last_attention`` (finest first, each (B, 1, h, w) with the skip's h, w) for display.
A 1x1 convolution gives the per-pixel logits.

Widths: ``base_width`` channels at the first level, doubling at each level down, over
``depth`` levels (``depth - 1`` poolings). The paper's (3-D) network has five levels of
16, 32, 64, 128, 256 channels (the released code's 64..1024 divided by its
``feature_scale=4``): the full profile is ``base_width=16, depth=5`` (2.03 M parameters
in 2-D, one input channel). The CPU default ``base_width=8, depth=5`` has a quarter (0.51 M).

Input: (batch, in_channels, H, W) with H, W divisible by ``2 ** (depth - 1)``.
Output: logits (batch, num_classes, H, W); ``num_classes=1`` is a sigmoid foreground.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from fetal_lib.networks.torch.unet_levels import encode, encoder_blocks, level_widths


class DoubleConv(nn.Module):
    """(conv3x3-BN-ReLU) twice: the U-Net block."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class AttentionGate(nn.Module):
    """Additive attention gate: ``x * upsample(sigmoid(psi(ReLU(W_x x + W_g g))))``.

    Args:
        skip_ch: channels of the skip connection ``x``.
        gate_ch: channels of the gating signal ``g`` (half ``x``'s height and width).
        inter_ch: channels of the intermediate map ``q`` (default: ``skip_ch // 2``, at least 1).
    """

    def __init__(self, skip_ch: int, gate_ch: int, inter_ch: int | None = None):
        super().__init__()
        inter_ch = inter_ch or max(1, skip_ch // 2)
        self.w_x = nn.Conv2d(skip_ch, inter_ch, kernel_size=2, stride=2, bias=False)
        self.w_g = nn.Conv2d(gate_ch, inter_ch, kernel_size=1, bias=True)
        self.psi = nn.Conv2d(inter_ch, 1, kernel_size=1, bias=True)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The gated skip (same shape as ``x``) and the coefficients (B, 1, *x's size)."""
        theta = self.w_x(x)
        phi = self.w_g(g)
        if phi.shape[2:] != theta.shape[2:]:
            phi = F.interpolate(phi, size=theta.shape[2:], mode="bilinear", align_corners=False)
        alpha = torch.sigmoid(self.psi(F.relu(theta + phi)))
        alpha = F.interpolate(alpha, size=x.shape[2:], mode="bilinear", align_corners=False)
        return x * alpha, alpha


class AttentionUNet(nn.Module):
    """2-D Attention U-Net.

    Args:
        in_channels: input channels (1 for ultrasound).
        num_classes: output channels (1: sigmoid foreground; K > 1: softmax classes).
        base_width: channels at the first level; doubles at each level down.
        depth: number of resolution levels (``depth - 1`` poolings), at least 2.

    After a forward pass, ``last_attention`` holds the attention coefficients of each gated
    skip, finest level first, detached: a list of (B, 1, h, w) tensors in [0, 1].
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 1, base_width: int = 8, depth: int = 5):
        super().__init__()
        widths = level_widths(base_width, depth)
        self.depth = depth
        self.encoders = encoder_blocks(in_channels, widths, DoubleConv)
        prev = widths[-1]
        self.gates = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for w in reversed(widths[:-1]):  # coarsest skip first
            self.gates.append(AttentionGate(w, prev))
            self.decoders.append(DoubleConv(prev + w, w))
            prev = w
        self.head = nn.Conv2d(prev, num_classes, 1)
        self.last_attention: list[torch.Tensor] = []
        self.config = {"in_channels": in_channels, "num_classes": num_classes, "base_width": base_width, "depth": depth}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** (self.depth - 1)
        if x.ndim != 4 or any(s % factor for s in x.shape[2:]):
            raise ValueError(f"AttentionUNet needs (B, C, H, W) input with H and W divisible by {factor} "
                             f"({self.depth - 1} poolings); got shape {tuple(x.shape)}")
        x, skips = encode(x, self.encoders, F.max_pool2d)
        attention = []
        for gate, dec, skip in zip(self.gates, self.decoders, reversed(skips)):
            gated, alpha = gate(skip, x)
            attention.append(alpha.detach())
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, gated], dim=1))
        self.last_attention = attention[::-1]
        return self.head(x)

    def gradcam_layer(self) -> nn.Module:
        """The last decoder block (full resolution, just before the 1x1 head), for Grad-CAM."""
        return self.decoders[-1]


def create(**config) -> AttentionUNet:
    """Build an :class:`AttentionUNet` from a config dict (as saved in a model card)."""
    return AttentionUNet(**config)
