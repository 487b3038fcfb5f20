"""2D U-Net (Ronneberger et al. 2015) in Keras 3, as in the HC18 source project, with its flaw switchable.

The source's ``conv2d_block`` is two 3x3 convolutions, each followed by BatchNorm and ReLU.
Its bug: the second convolution reads the *block input* instead of the first convolution's
output, so the first convolution is computed and thrown away (the block is one conv deep).
``block="corrected"`` chains them (conv -> BN -> ReLU -> conv -> BN -> ReLU);
``block="source"`` reproduces the bug, for the audit. (Keras drops the dead first
convolution from the functional graph, so the source's network really is one convolution
per block, with fewer parameters.)

Encoder: ``depth`` blocks with 2x2 max-pooling, widths ``filters * 2**level``; a bottleneck
block; decoder: 2x2 transposed convolutions, skip concatenation, one block per level;
a 1x1 convolution with sigmoid gives a foreground probability per pixel.
"""

from __future__ import annotations

from typing import Literal

BlockKind = Literal["corrected", "source"]


def conv2d_block(x, filters: int, block: BlockKind = "corrected", name: str = "block"):
    """Two 3x3 conv + BatchNorm + ReLU; ``block="source"`` feeds the block input to both convs."""
    from keras import layers

    if block not in ("corrected", "source"):
        raise ValueError(f"block must be 'corrected' or 'source', got {block!r}")
    first = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv1")(x)
    first = layers.BatchNormalization(name=f"{name}_bn1")(first)
    first = layers.Activation("relu", name=f"{name}_relu1")(first)
    second_input = first if block == "corrected" else x  # the source's bug: x instead of first
    second = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv2")(second_input)
    second = layers.BatchNormalization(name=f"{name}_bn2")(second)
    return layers.Activation("relu", name=f"{name}_relu2")(second)


def build_unet(
    input_shape: tuple[int, int, int] = (256, 256, 1),
    filters: int = 16,
    depth: int = 4,
    block: BlockKind = "corrected",
    dropout: float = 0.0,
    name: str = "unet",
):
    """Build an uncompiled U-Net returning a per-pixel sigmoid probability map.

    Args:
        input_shape: (rows, cols, channels); rows and cols must be divisible by ``2**depth``.
        filters: channel width of the first level (doubles per level).
        depth: number of pooling steps.
        block: "corrected" (ours) or "source" (the source project's conv2d_block bug).
        dropout: spatial dropout rate after each pooling (0 disables).
        name: model name.

    Returns:
        ``keras.Model`` mapping (batch, rows, cols, channels) -> (batch, rows, cols, 1) in [0, 1].

    Raises:
        ValueError: the input size is not divisible by ``2**depth`` or an argument is out of range.
    """
    import keras
    from keras import layers

    rows, cols = int(input_shape[0]), int(input_shape[1])
    if depth < 1 or filters < 1:
        raise ValueError(f"depth and filters must be >= 1, got depth={depth}, filters={filters}")
    step = 2**depth
    if rows % step or cols % step:
        raise ValueError(f"input size {rows}x{cols} must be divisible by 2**depth = {step}")

    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    skips = []
    for level in range(depth):
        x = conv2d_block(x, filters * 2**level, block, name=f"enc{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
        if dropout > 0:
            x = layers.SpatialDropout2D(dropout, name=f"drop{level}")(x)
    x = conv2d_block(x, filters * 2**depth, block, name="bottleneck")
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(filters * 2**level, 2, strides=2, padding="same", name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = conv2d_block(x, filters * 2**level, block, name=f"dec{level}")
    outputs = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name="probability")(x)
    return keras.Model(inputs, outputs, name=name)
