"""How much a network costs: parameters, FLOPs, inference latency and training throughput.

The chapter compares a plain CNN, the same CNN with depthwise-separable convolutions and
Xception on what they cost as well as on what they score. The costs are:

* parameters (:func:`fetal_lib.networks.parameters.count_parameters`): every weight, trainable or not (batch-norm statistics
  included), as ``keras.Model.count_params`` counts them;
* FLOPs of one forward pass of one image (:func:`flops`), counted analytically from each layer's
  input and output shapes and kernel size. Convention: 1 multiply-add (MAC) = 2 FLOPs; only the
  layers that multiply weights with activations are counted -- Conv1D/2D/3D, Conv2DTranspose,
  DepthwiseConv1D/2D, SeparableConv1D/2D (depthwise + pointwise) and Dense; biases, batch
  normalisation, activations, pooling, additions, resizing and the softmax are ignored (they are
  a few per cent of a CNN's arithmetic). For an output of H_o x W_o pixels:

  - Conv2D, kernel k_h x k_w, C_in -> C_out, g groups: H_o W_o k_h k_w (C_in / g) C_out MACs;
  - DepthwiseConv2D, depth multiplier m: H_o W_o k_h k_w C_in m;
  - SeparableConv2D: the depthwise part H_o W_o k_h k_w C_in m plus the pointwise part
    H_o W_o (C_in m) C_out;
  - Conv2DTranspose: H_i W_i k_h k_w C_in (C_out / g) (every input pixel spreads one kernel);
  - Dense, F_in -> F_out: F_in F_out (per position when applied to a feature map).

  This is the convention of most papers' "FLOPs" tables when they say MACs x 2 (some, e.g.
  the MobileNet and Xception papers, report MACs ("mult-adds") themselves: halve ours to compare);
* inference time (:func:`inference_ms_per_image`) and training throughput
  (:func:`training_images_per_s`), measured on this machine after warm-up steps that trace
  (and with XLA compile) the computation.
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np
from fetal_lib.training import keras as harness
from fetal_lib.training.keras import train_epoch
from fetal_lib.training.keras_backend import inference_function
from fetal_lib.us.train import build_model, check_arrays, compile_model, sample_weights, training_batches


def _graph(model):
    """The functional graph of a Functional or Sequential model."""
    import keras

    if isinstance(model, keras.Sequential):
        if getattr(model, "_functional", None) is None:
            raise ValueError(f"Sequential model {model.name!r} is not built: give it an Input first")
        return model._functional
    if not hasattr(model, "_nodes_by_depth"):
        raise ValueError(f"model {model.name!r} is not a Functional or Sequential model; FLOPs are counted from its graph")
    return model


def _static(shape) -> tuple[int, ...]:
    return tuple(int(s) for s in shape)


def _spatial_and_channels(shape: tuple[int, ...], data_format: str) -> tuple[int, int]:
    """(product of the spatial sizes, channels) of a batched feature-map shape."""
    if data_format == "channels_first":
        return math.prod(shape[2:]), shape[1]
    return math.prod(shape[1:-1]), shape[-1]


def layer_macs(layer, input_shape: Sequence[int], output_shape: Sequence[int]) -> int:
    """Multiply-adds of one call of ``layer`` on a batch of one, from its input and output shapes
    (with the batch axis, e.g. ``(1, rows, cols, channels)``); 0 for layers not counted (see the module docstring)."""
    from keras import layers

    inp, out = _static(input_shape), _static(output_shape)
    fmt = getattr(layer, "data_format", "channels_last")
    if isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D)):
        pixels, c_out = _spatial_and_channels(out, fmt)
        _, c_in = _spatial_and_channels(inp, fmt)
        mid = c_in * int(layer.depth_multiplier)
        return pixels * (math.prod(layer.kernel_size) * mid + mid * c_out)
    if isinstance(layer, (layers.DepthwiseConv1D, layers.DepthwiseConv2D)):
        pixels, _ = _spatial_and_channels(out, fmt)
        _, c_in = _spatial_and_channels(inp, fmt)
        return pixels * math.prod(layer.kernel_size) * c_in * int(layer.depth_multiplier)
    if isinstance(layer, (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)):
        pixels_in, c_in = _spatial_and_channels(inp, fmt)
        _, c_out = _spatial_and_channels(out, fmt)
        return pixels_in * math.prod(layer.kernel_size) * c_in * c_out // int(getattr(layer, "groups", 1) or 1)
    if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)):
        pixels, c_out = _spatial_and_channels(out, fmt)
        _, c_in = _spatial_and_channels(inp, fmt)
        return pixels * math.prod(layer.kernel_size) * (c_in // int(layer.groups)) * c_out
    if isinstance(layer, layers.Dense):
        return math.prod(inp[1:-1]) * inp[-1] * out[-1]
    return 0


def _macs(model) -> int:
    """Multiply-adds of one image through ``model``'s graph (static shapes; nested models recursed into)."""
    import keras

    total = 0
    graph = _graph(model)
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            op = node.operation
            if not node.input_tensors:
                continue  # an input layer
            if isinstance(op, keras.Model):
                total += _macs(_with_input_shape(op, _static(node.input_tensors[0].shape[1:])))
                continue
            shape_in = node.input_tensors[0].shape
            shape_out = node.outputs[0].shape
            if any(s is None for s in tuple(shape_in)[1:]) or any(s is None for s in tuple(shape_out)[1:]):
                raise ValueError(f"layer {op.name!r} has an unknown size ({shape_in} -> {shape_out}): give flops() an input_shape")
            total += layer_macs(op, (1, *tuple(shape_in)[1:]), (1, *tuple(shape_out)[1:]))
    return total


def _with_input_shape(model, input_shape: tuple[int, ...] | None):
    """``model`` itself if its input already has ``input_shape`` (without the batch axis), else a
    clone with fresh weights built for it (the original model is left untouched)."""
    import keras

    if len(model.inputs) != 1:
        raise ValueError(f"model {model.name!r} has {len(model.inputs)} inputs; flops() counts single-input models")
    own = tuple(model.inputs[0].shape[1:])
    if input_shape is None or tuple(input_shape) == own:
        return model
    return keras.models.clone_model(model, input_tensors=keras.Input(shape=tuple(int(s) for s in input_shape)))


def flops(model, input_shape: Sequence[int] | None = None) -> int:
    """FLOPs (2 x multiply-adds) of one forward pass of ONE image (see the module docstring's convention).

    Args:
        model: a Functional or Sequential ``keras.Model`` (layers computing in any precision).
        input_shape: the image shape without the batch axis, e.g. (128, 128, 1); None: the model's own
            (which must then be fully known).

    Raises:
        ValueError: a multi-input model, or an unknown size and no ``input_shape``.
    """
    shape = None if input_shape is None else tuple(int(s) for s in input_shape)
    return 2 * _macs(_with_input_shape(model, shape))


def inference_ms_per_image(model, x: np.ndarray, warmup: int = 2, batch_size: int = 1, repeats: int = 3) -> float:
    """Milliseconds per image of the forward pass (``training=False``) on this machine.

    ``x`` is cut into batches of ``batch_size`` (only full batches are timed: a short last batch
    would be traced again); ``warmup`` passes over the first batch trace the graph first; each of
    ``repeats`` passes over all batches is timed and the median is returned. ``batch_size=1``
    gives the latency of one image, larger batches the throughput of batched inference.

    Raises:
        ValueError: no images, or a non-positive batch size or repeat count.
    """

    x = np.asarray(x, np.float32)
    if len(x) == 0 or batch_size < 1 or repeats < 1:
        raise ValueError(f"need images, batch_size >= 1 and repeats >= 1; got {len(x)} images, {batch_size}, {repeats}")
    batch_size = min(batch_size, len(x))
    batches = [np.ascontiguousarray(x[i:i + batch_size]) for i in range(0, len(x) - batch_size + 1, batch_size)]
    forward = inference_function(model)  # the classifier's own forward pass (compiled on TensorFlow)
    for _ in range(max(0, warmup)):
        forward(batches[0])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for batch in batches:
            forward(batch)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000.0 / (len(batches) * batch_size))


def training_images_per_s(config, x: np.ndarray, y: np.ndarray, num_classes: int, steps: int = 4, warmup: int = 1) -> float:
    """Training throughput (images per second) of ``config``'s network, precision, XLA setting,
    class weights and augmentation, from an epoch of ``steps`` timed optimiser steps after one of ``warmup`` steps
    (the first traces and with XLA compiles the training step), fed as the chapter feeds them
    (:func:`fetal_lib.training.keras.train_epoch`, batches made between steps). The model starts from the
    config's initial weights and is thrown away.

    Args:
        config: a :class:`fetal_lib.us.train.UsTrainConfig`.
        x, y: training images (N, rows, cols, channels) and labels; batches cycle through them.
        num_classes: K.
        steps: timed optimiser steps (>= 1).
        warmup: untimed steps before them.
    """

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    check_arrays(config, x, y, num_classes)
    harness.configure(seed=config.seed)
    model = build_model(config, num_classes, config.precision)
    compile_model(model, config)
    weights = sample_weights(y, num_classes, config.class_weight)

    def epoch_of(n_steps: int, first: int):
        """``n_steps`` batches (the images cycled from index ``first``), fed as the chapter feeds them."""
        idx = (first + np.arange(n_steps * config.batch_size)) % len(x)
        return training_batches(x[idx], np.asarray(y)[idx], config, num_classes, None if weights is None else weights[idx])

    if warmup > 0:
        train_epoch(model, epoch_of(warmup, 0))
    timed = epoch_of(steps, warmup * config.batch_size)
    t0 = time.perf_counter()
    train_epoch(model, timed)
    images = steps * config.batch_size
    return float(images / (time.perf_counter() - t0))
