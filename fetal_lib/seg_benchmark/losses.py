"""Chapter 1's loss in torch: binary cross-entropy plus (1 - soft Dice), per image, averaged over
the batch (:func:`fetal_lib.hc.losses.bce_dice_per_image`), computed from logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_dice_from_logits(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Mean over the batch of BCE + (1 - soft Dice) of (N, 1, rows, cols) logits against targets in [0, 1]."""
    target = target.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(1, 2, 3))
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(1, 2, 3))
    total = prob.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
    dice = (2.0 * inter + smooth) / (total + smooth)
    return (bce + 1.0 - dice).mean()
