"""Grad-CAM for Keras 3 networks (TensorFlow backend), with ``tf.GradientTape``.

Inputs are channels-last, (N, rows, cols, channels). If the model's last layer ends in a
sigmoid or softmax, the explained score is taken before it (the logit), as Grad-CAM
prescribes; otherwise the output is used as it is (a sigmoid segmentation's mask is then
``output > threshold``).
"""

from __future__ import annotations

import numpy as np

from fetal_lib.explain import targets


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
    import tensorflow as tf

    try:
        layer_obj = model.get_layer(layer)
    except ValueError:
        raise ValueError(f"model {model.name!r} has no layer {layer!r}") from None
    target = targets.as_target(target)
    if isinstance(images, (list, tuple)):
        x = [tf.convert_to_tensor(np.asarray(a, dtype=np.float32)) for a in images]
        size = (int(x[0].shape[1]), int(x[0].shape[2]))
    else:
        x = tf.convert_to_tensor(np.asarray(images, dtype=np.float32))
        size = (int(x.shape[1]), int(x.shape[2]))
    forward, final = _logit_model(model, layer_obj)
    with tf.GradientTape() as tape:
        acts, logits = forward(x)
        logits = tf.cast(logits, tf.float32)
        n_outputs = int(logits.shape[-1]) if logits.shape.rank > 1 else 1
        targets.check(target.kind, target.class_index, n_outputs)
        score = _target_score(tf, logits, target.kind, target.class_index, target.threshold, final)
    grads = tape.gradient(score, acts)
    acts, grads = tf.cast(acts, tf.float32), tf.cast(grads, tf.float32)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * acts, axis=-1))
    cam = tf.image.resize(cam[..., None], size, method="bilinear")[..., 0]
    maps = np.maximum(cam.numpy(), 0.0).astype(np.float32)
    return targets.scale_per_map(maps) if normalise else maps


def _target_score(tf, logits, target: str, class_index: int | None, threshold: float, final: str | None):
    """Sum over the batch of each input's explained score (inputs do not interact in inference)."""
    n = tf.shape(logits)[0]
    if target == "regression":
        return tf.reduce_sum(tf.reshape(logits, (n, -1))[:, class_index or 0])
    if target == "class":
        flat = tf.reshape(logits, (n, -1))
        index = tf.argmax(flat, axis=1) if class_index is None else tf.fill((n,), tf.cast(class_index, tf.int64))
        return tf.reduce_sum(tf.gather(flat, index, axis=1, batch_dims=1))
    if logits.shape[-1] == 1:
        channel = logits[..., 0]
        probability = tf.sigmoid(channel) if final == "sigmoid" else channel
        mask = tf.stop_gradient(tf.cast(probability > threshold, tf.float32))
    else:
        channel = logits[..., class_index]
        mask = tf.stop_gradient(tf.cast(tf.argmax(logits, axis=-1) == class_index, tf.float32))
    return tf.reduce_sum(channel * mask)
