"""Losses for head segmentation (Keras 3 ops: the same arithmetic on every backend).

The ``*_per_image`` functions return one loss per image (shape ``(batch,)``): Keras averages
them over the batch, weighted by the per-image sample weights when the dataset yields
``(x, y, weight)`` (see ``TrainConfig.loss_weight``). The scalar versions are their batch means.
"""

from __future__ import annotations


def soft_dice_per_image(y_true, y_pred, smooth: float = 1.0):
    """Soft Dice coefficient of each image (a ``(batch,)`` tensor in [0, 1])."""
    from keras import ops

    axes = (1, 2, 3)
    y_pred = ops.convert_to_tensor(y_pred)  # NumPy inputs become tensors where Keras computes (a GPU's, not the host's)
    y_true = ops.cast(y_true, y_pred.dtype)
    inter = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return (2.0 * inter + smooth) / (total + smooth)


def soft_dice(y_true, y_pred, smooth: float = 1.0):
    """Soft Dice coefficient per image, averaged over the batch (a tensor in [0, 1])."""
    from keras import ops

    return ops.mean(soft_dice_per_image(y_true, y_pred, smooth))


def binary_crossentropy(y_true, y_pred):
    """Per-pixel binary cross-entropy of probabilities, written out as Keras's TensorFlow backend
    computes it (probabilities clipped to [eps, 1 - eps], eps = ``keras.config.epsilon()``).

    Written out because torch's own binary cross-entropy refuses targets outside [0, 1], and the
    source's flawed 0/2 outline targets (the audit arm) must train on every backend as they did."""
    from keras import config, ops

    eps = config.epsilon()
    y_true = ops.convert_to_tensor(y_true)
    p = ops.clip(ops.convert_to_tensor(y_pred), eps, 1.0 - eps)
    return -(y_true * ops.log(p + eps) + (1.0 - y_true) * ops.log(1.0 - p + eps))


def bce_per_image(y_true, y_pred):
    """Binary cross-entropy of each image, averaged over its pixels (``(batch,)``)."""
    from keras import ops

    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    return ops.mean(binary_crossentropy(y_true, y_pred), axis=(1, 2, 3))


def bce_dice_per_image(y_true, y_pred):
    """BCE + (1 - soft Dice) of each image (``(batch,)``)."""
    from keras import ops

    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    return bce_per_image(y_true, y_pred) + (1.0 - soft_dice_per_image(y_true, y_pred))


def bce_dice_loss(y_true, y_pred):
    """Binary cross-entropy plus (1 - soft Dice): BCE for per-pixel calibration, Dice against
    the background dominating the pixel count (a head is ~10-40 % of an HC18 image)."""
    from keras import ops

    return ops.mean(bce_dice_per_image(y_true, y_pred))


def bce_loss(y_true, y_pred):
    """Plain binary cross-entropy, as the source project (targets are not clipped: the
    source's 0/2 outline targets are passed through as they were)."""
    from keras import ops

    return ops.mean(bce_per_image(y_true, y_pred))


def get_loss(name: str):
    """The per-image training loss by name: "bce_dice" (ours) or "bce" (the source's).

    Keras averages the per-image values over the batch (with sample weights if given), which
    without weights equals :func:`bce_dice_loss` / :func:`bce_loss`."""
    losses = {"bce_dice": bce_dice_per_image, "bce": bce_per_image}
    if name not in losses:
        raise ValueError(f"unknown loss {name!r}; choose from {sorted(losses)}")
    return losses[name]
