"""Losses for head segmentation (Keras 3 ops; TensorFlow is imported when called)."""

from __future__ import annotations


def soft_dice(y_true, y_pred, smooth: float = 1.0):
    """Soft Dice coefficient per image, averaged over the batch (a tensor in [0, 1])."""
    from keras import ops

    axes = (1, 2, 3)
    inter = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return ops.mean((2.0 * inter + smooth) / (total + smooth))


def bce_dice_loss(y_true, y_pred):
    """Binary cross-entropy plus (1 - soft Dice): BCE for per-pixel calibration, Dice against
    the background dominating the pixel count (a head is ~10-40 % of an HC18 image)."""
    from keras import ops

    y_true = ops.cast(y_true, y_pred.dtype)
    bce = ops.mean(ops.binary_crossentropy(y_true, y_pred))
    return bce + (1.0 - soft_dice(y_true, y_pred))


def bce_loss(y_true, y_pred):
    """Plain binary cross-entropy, as the source project (targets are not clipped: the
    source's 0/2 outline targets are passed through as they were)."""
    from keras import ops

    y_true = ops.cast(y_true, y_pred.dtype)
    return ops.mean(ops.binary_crossentropy(y_true, y_pred))


def get_loss(name: str):
    """Loss by name: "bce_dice" (ours) or "bce" (the source's)."""
    losses = {"bce_dice": bce_dice_loss, "bce": bce_loss}
    if name not in losses:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(losses)}")
    return losses[name]
