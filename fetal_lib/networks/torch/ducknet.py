"""DUCK-Net: a U-Net of multi-branch DUCK blocks with a second down-sampling path (2-D segmentation).

After Dumitru, Peteleaza and Craciun (2023), "Using DUCK-Net for polyp image segmentation",
Scientific Reports 13:9803 (doi:10.1038/s41598-023-36940-5) [dumitru2023ducknet], following the
authors' Keras reference code for the details the text leaves open.

The DUCK block (Deep Understanding Convolutional Kernel) normalises its input (BN), runs six
branches in parallel and sums them, then normalises the sum (BN):

- widescope: three 3x3 convolutions with dilation 1, 2 and 3 (receptive field 13x13);
- midscope: two 3x3 convolutions with dilation 1 and 2 (7x7);
- residual x1, x2, x3: one, two and three residual units stacked (two 3x3 convolutions plus a
  1x1 convolution on the shortcut, added, then BN);
- separated: a 1xN then an Nx1 convolution (N = 6).

Every convolution is followed by ReLU and then BN, as in the reference code.

Encoder: level 0 is a DUCK block on the image; each further level takes the previous level's
output down by a strided 2x2 convolution and ADDS the second down-sampling path -- the image
itself taken down by a chain of strided 2x2 convolutions (one per level) -- before its DUCK
block. The bottleneck (1/2**depth) has two residual units at the bottleneck width and two that
halve it. Decoder: nearest-neighbour upsampling x2, addition of the encoder output of that
level, a DUCK block (halving the width, except at full resolution). A 1x1 convolution gives the
logits. Widths: ``starting_filters * 2**level``.

Sizes. The paper uses ``depth=5`` (input down to 1/32) and ``starting_filters`` 17 or 34
(reported as DUCK-Net-17 and DUCK-Net-34; 38.9 M and 155.3 M parameters here with 3 input
channels); pass those for a ``full`` profile. The CPU defaults are ``starting_filters=4``,
``depth=4`` (0.55 M parameters). Even so DUCK-Net is the slow one on a CPU: each DUCK block runs
25 convolutions (17 of them 3x3) and 27 batch normalisations, two blocks work at full resolution
and two at half, and with few channels their cost is memory traffic, not arithmetic, so fewer filters
barely help (a forward and backward of a batch of eight 1x128x192 images: 1.3-2.3 s on one thread
of a busy 2-core machine, against 0.3-0.4 s for TransUNet's defaults).

Memory layout (``channels_last``, default on): every convolution keeps its weights channels-last, so
oneDNN takes its fast path for few channels (a 4-channel 3x3 convolution at 128x192: about 5x faster
forward and backward than in the default layout, measured here), and returns its output in the
default layout, because PyTorch's CPU batch normalisation and the elementwise backward passes are
several times slower on channels-last tensors with 4-8 channels. Same arithmetic, same parameters
and state dict; on a CUDA GPU the input and every activation are channels-last too (the CPU's reason
for NCHW activations does not hold there): the paper's DUCK-Net-17 at 256x256, batch 16, bfloat16
trained at 88 instead of 51 images/s on an H200 (`tests/gpu/layout_variants.py`, 2026-11-26);
the whole network trained 1.3-1.5x faster on the 2-core Xeon (`fetal bench seg
--arch ducknet`).

Differences from the paper: none in the layers; ``depth`` is an option (5 in the paper) so that
small inputs and small budgets fit. Weights start as in the reference code (He-uniform for the
blocks' convolutions, Glorot-uniform for the strided convolutions and the head, zero biases);
batch normalisation keeps PyTorch's defaults (momentum 0.1, eps 1e-5; Keras: 0.01 and 1e-3),
whose running statistics follow a short CPU training more closely. PyTorch counts only
trainable parameters (Keras' ``count_params`` also counts the batch-norm moving statistics).

Input: (batch, in_channels, H, W) with H and W divisible by ``2**depth``.
Output: logits (batch, num_classes, H, W) (one class: a sigmoid foreground; the reference code
ends with the sigmoid, here it is left to the loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(kernel_size: int | tuple[int, int], dilation: int = 1) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding that keeps the size at stride 1; an even kernel
    gets the extra row or column at the end, as Keras/TensorFlow's 'same'."""
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    th, tw = dilation * (kh - 1), dilation * (kw - 1)
    return (tw // 2, tw - tw // 2, th // 2, th - th // 2)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` that returns its output on the CPU in the default (contiguous NCHW) layout, whatever
    the layout its weights compute in, and on a GPU in the layout cuDNN chose (see "Memory layout"
    above). Parameters and state dict as ``nn.Conv2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out if out.is_cuda else out.contiguous()


def he_uniform(conv: nn.Conv2d) -> nn.Conv2d:
    """Keras' 'he_uniform' (U(+-sqrt(6 / fan_in))) weights and zero bias, as the reference code's blocks."""
    nn.init.kaiming_uniform_(conv.weight, nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return conv


def glorot_uniform(conv: nn.Conv2d) -> nn.Conv2d:
    """Keras' default initialisation (Glorot-uniform weights, zero bias): strided convolutions and head."""
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class ConvReLUBN(nn.Sequential):
    """Convolution ('same' padding, with bias), ReLU, batch normalisation (the reference code's order)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int | tuple[int, int] = 3, dilation: int = 1):
        left, right, top, bottom = same_padding(kernel_size, dilation)
        layers: list[nn.Module] = []
        if left == right and top == bottom:
            padding: tuple[int, int] = (top, left)
        else:  # an even kernel: pad explicitly (asymmetric), as Keras does
            layers.append(nn.ZeroPad2d((left, right, top, bottom)))
            padding = (0, 0)
        conv = Conv2d(in_ch, out_ch, kernel_size, padding=padding, dilation=dilation)
        he_uniform(conv)
        layers += [conv, nn.ReLU(inplace=True), nn.BatchNorm2d(out_ch)]
        super().__init__(*layers)


class ResidualUnit(nn.Module):
    """conv3-ReLU-BN, conv3-ReLU-BN, plus a 1x1 conv-ReLU shortcut; the sum is batch-normalised."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.shortcut = nn.Sequential(he_uniform(Conv2d(in_ch, out_ch, 1)), nn.ReLU(inplace=True))
        self.body = nn.Sequential(ConvReLUBN(in_ch, out_ch), ConvReLUBN(out_ch, out_ch))
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.body(x) + self.shortcut(x))


def residual_stack(in_ch: int, out_ch: int, n: int) -> nn.Sequential:
    """``n`` residual units, the first mapping ``in_ch`` to ``out_ch``."""
    return nn.Sequential(*[ResidualUnit(in_ch if i == 0 else out_ch, out_ch) for i in range(n)])


class DUCKBlock(nn.Module):
    """BN, six parallel branches summed, BN (see the module docstring).

    Args:
        in_ch, out_ch: channels in and out (every branch outputs ``out_ch``).
        separated_size: N of the 1xN and Nx1 convolutions of the separated branch (6 in the paper).
    """

    def __init__(self, in_ch: int, out_ch: int, separated_size: int = 6):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(in_ch)
        self.branches = nn.ModuleDict({
            "widescope": nn.Sequential(ConvReLUBN(in_ch, out_ch, 3, 1), ConvReLUBN(out_ch, out_ch, 3, 2), ConvReLUBN(out_ch, out_ch, 3, 3)),
            "midscope": nn.Sequential(ConvReLUBN(in_ch, out_ch, 3, 1), ConvReLUBN(out_ch, out_ch, 3, 2)),
            "residual_1": residual_stack(in_ch, out_ch, 1),
            "residual_2": residual_stack(in_ch, out_ch, 2),
            "residual_3": residual_stack(in_ch, out_ch, 3),
            "separated": nn.Sequential(ConvReLUBN(in_ch, out_ch, (1, separated_size)), ConvReLUBN(out_ch, out_ch, (separated_size, 1))),
        })
        self.bn_out = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_in(x)
        y = None
        for branch in self.branches.values():
            b = branch(x)
            y = b if y is None else y + b
        return self.bn_out(y)


class DUCKNet(nn.Module):
    """DUCK-Net for 2-D segmentation.

    Args:
        in_channels: input channels.
        num_classes: output channels (1: sigmoid foreground; K > 1: softmax classes).
        starting_filters: channels at full resolution; level ``i`` has ``starting_filters * 2**i``
            (paper: 17 or 34).
        depth: number of down-samplings (paper: 5); inputs must be divisible by ``2**depth``.
        separated_size: N of the separated branch's 1xN / Nx1 convolutions (paper: 6).
        channels_last: convolution weights in the channels-last layout (see "Memory layout"); the
            outputs do not depend on it beyond floating-point rounding.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 1, starting_filters: int = 4, depth: int = 4, separated_size: int = 6,
                 channels_last: bool = True):
        super().__init__()
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth = depth
        widths = [starting_filters * 2**i for i in range(depth + 1)]
        # second down-sampling path: the image through a chain of strided 2x2 convolutions
        self.input_path = nn.ModuleList(
            glorot_uniform(Conv2d(in_channels if i == 0 else widths[i], widths[i + 1], 2, stride=2)) for i in range(depth)
        )
        self.encoder = nn.ModuleList(
            DUCKBlock(in_channels if i == 0 else widths[i], widths[i], separated_size) for i in range(depth)
        )
        self.downsample = nn.ModuleList(glorot_uniform(Conv2d(widths[i], widths[i + 1], 2, stride=2)) for i in range(depth))
        self.bottleneck = nn.Sequential(
            residual_stack(widths[depth], widths[depth], 2), residual_stack(widths[depth], widths[depth - 1], 2)
        )
        # decoder, from the coarsest level (depth - 1) up to full resolution
        self.decoder = nn.ModuleList(
            DUCKBlock(widths[i], widths[max(i - 1, 0)], separated_size) for i in reversed(range(depth))
        )
        self.head = glorot_uniform(Conv2d(widths[0], num_classes, 1))
        self.config = {"in_channels": in_channels, "num_classes": num_classes, "starting_filters": starting_filters,
                       "depth": depth, "separated_size": separated_size, "channels_last": channels_last}
        if channels_last:
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2**self.depth
        if x.ndim != 4:
            raise ValueError(f"expected a (batch, channels, H, W) input; got shape {tuple(x.shape)}")
        if any(s % factor for s in x.shape[2:]):
            raise ValueError(f"spatial size {tuple(x.shape[2:])} must be divisible by {factor} (2**depth, depth={self.depth})")
        if x.is_cuda and self.config["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)  # on a GPU the whole network runs channels-last
        p = x
        skips = []
        for i, block in enumerate(self.encoder):
            if i > 0:
                p = self.input_path[i - 1](p)
                x = self.downsample[i - 1](x) + p
            x = block(x)
            skips.append(x)
        p = self.input_path[-1](p)
        x = self.bottleneck(self.downsample[-1](x) + p)
        for block, skip in zip(self.decoder, reversed(skips)):
            x = block(F.interpolate(x, scale_factor=2, mode="nearest") + skip)
        return self.head(x)

    def gradcam_layer(self) -> nn.Module:
        """The last DUCK block of the decoder (full resolution, before the 1x1 head): what Grad-CAM explains."""
        return self.decoder[-1]


def create(**config) -> DUCKNet:
    """Build a :class:`DUCKNet` from a config dict (as saved in a model card)."""
    return DUCKNet(**config)
