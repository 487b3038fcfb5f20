"""Grad-CAM for Keras 3 networks on any backend: the score and the maps in ``keras.ops``, the gradient
from :func:`fetal_lib.training.keras_backend.value_and_gradient` (``tf.GradientTape`` on TensorFlow,
``torch.autograd`` on PyTorch).

Inputs are channels-last, (N, rows, cols, channels). If the model's last layer ends in a
sigmoid or softmax, the explained score is taken before it (the logit), as Grad-CAM
prescribes; otherwise the output is used as it is (a sigmoid segmentation's mask is then
``output > threshold``).
"""

from __future__ import annotations

import numpy as np

from fetal_lib.explain import targets
from fetal_lib.training.keras_backend import to_numpy, value_and_gradient


def _logit_model(model, layer):
    """A function images -> (layer activations, logits) and whether it found a final activation."""
    import keras

    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    final = {keras.activations.sigmoid: "sigmoid", keras.activations.softmax: "softmax"}.get(activation)
    if final is None:
        grad_model = keras.Model(model.inputs, [layer.output, model.outputs[0]])
        return (lambda x: grad_model(x, training=False)), None
    grad_model = keras.Model(model.inputs, [layer.output, last.input])

    def forward(x):
        acts, before_last = grad_model(x, training=False)
        if isinstance(last, keras.layers.Activation):
            return acts, before_last
        last.activation = keras.activations.linear
        try:
            return acts, last(before_last)
        finally:
            last.activation = activation

    return forward, final


def gradcam(model, layer: str, images: np.ndarray, target: targets.Target | str = "class", normalise: bool = True) -> np.ndarray:
    """Grad-CAM maps of the layer named ``layer`` for a batch, upsampled to the image size.

    Args:
        model: a functional or sequential ``keras.Model``.
        layer: name of the layer whose output is explained (a 2-D feature map).
        images: (N, rows, cols, channels) float batch, or a list of such batches for a model with
            several inputs (the maps then take the first input's size).
        target: a :class:`~fetal_lib.explain.targets.Target` or its kind; normalise: maps scaled to [0, 1].

    Returns:
        (N, rows, cols) float32 array, non-negative.

    Raises:
        ValueError: no layer of that name, or a target the output cannot give.
    """
    import keras
    from keras import ops


    try:
        layer_obj = model.get_layer(layer)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no layer {layer!r}") from None
    target = targets.as_target(target)
    first = images[0] if isinstance(images, (list, tuple)) else images
    size = (int(np.shape(first)[1]), int(np.shape(first)[2]))
    forward, final = _logit_model(model, layer_obj)

    def scored(x):
        acts, logits = forward(x)
        logits = ops.cast(logits, "float32")
        n_outputs = int(logits.shape[-1]) if len(logits.shape) > 1 else 1
        targets.check(target.kind, target.class_index, n_outputs)
        return acts, _target_score(logits, target.kind, target.class_index, target.threshold, final)

    acts, grads = value_and_gradient(scored, list(images) if isinstance(images, (list, tuple)) else images)
    weights = ops.mean(grads, axis=(1, 2), keepdims=True)
    cam = ops.relu(ops.sum(weights * acts, axis=-1))
    cam = keras.ops.image.resize(cam[..., None], size, interpolation="bilinear", antialias=False, data_format="channels_last")[..., 0]
    maps = np.maximum(to_numpy(cam), 0.0).astype(np.float32)
    return targets.scale_per_map(maps) if normalise else maps


def _target_score(logits, target: str, class_index: int | None, threshold: float, final: str | None):
    """Sum over the batch of each input's explained score (inputs do not interact in inference)."""
    from keras import ops

    n = logits.shape[0]
    flat = ops.reshape(logits, (n, -1))
    if target == "regression":
        return ops.sum(flat[:, class_index or 0])
    if target == "class":
        if class_index is None:
            return ops.sum(ops.max(flat, axis=1))  # the predicted class's logit
        return ops.sum(flat[:, int(class_index)])
    if logits.shape[-1] == 1:
        channel = logits[..., 0]
        probability = ops.sigmoid(channel) if final == "sigmoid" else channel
        mask = ops.stop_gradient(ops.cast(probability > threshold, "float32"))
    else:
        channel = logits[..., class_index]
        mask = ops.stop_gradient(ops.cast(ops.argmax(logits, axis=-1) == class_index, "float32"))
    return ops.sum(channel * mask)
