"""The encoder of a plain U-Net, shared by the 2-D Attention U-Net and the 3-D Res-U-Net: one block a
level, widths doubling at each level down, max-pooling between levels, the skips kept."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def level_widths(base_width: int, depth: int) -> list[int]:
    """Channels of each of ``depth`` levels: ``base_width`` doubled at each level down.

    Raises:
        ValueError: ``depth`` below 2 (a U-Net has at least one pooling).
    """
    if depth < 2:
        raise ValueError("depth must be at least 2")
    return [base_width * 2**i for i in range(depth)]


def encoder_blocks(in_channels: int, widths: list[int], block: Callable[[int, int], nn.Module]) -> nn.ModuleList:
    """``block(in, out)`` for each level, from ``in_channels`` to ``widths[-1]`` channels."""
    encoders = nn.ModuleList()
    prev = in_channels
    for w in widths:
        encoders.append(block(prev, w))
        prev = w
    return encoders


def encode(x: torch.Tensor, encoders: nn.ModuleList, pool: Callable[[torch.Tensor, int], torch.Tensor]
           ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``x`` through every encoder block, pooled (``pool(x, 2)``) after each but the last; returns the
    deepest features and the skips, finest first."""
    skips = []
    for i, enc in enumerate(encoders):
        x = enc(x)
        if i < len(encoders) - 1:
            skips.append(x)
            x = pool(x, 2)
    return x, skips
