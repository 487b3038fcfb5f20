"""The one place that knows which Keras 3 backend runs (TensorFlow or PyTorch), one function per need.

Model, loss and explanation code is written with ``keras`` and ``keras.ops`` and runs on either
backend; what cannot be written that way lives here:

* :func:`name`: the backend Keras was imported with (``KERAS_BACKEND``; it cannot change afterwards);
* :func:`configure`: CPU threads of the backend and every seed;
* :func:`device`: where Keras computes (``"CPU"`` or ``"GPU:0 (<name>)"``);
* :func:`inference_function`: a model's forward pass in inference mode, compiled where the backend
  compiles (``tf.function`` on TensorFlow), returning NumPy;
* :func:`value_and_gradient`: a scalar function's value and its gradient with respect to a tensor
  the function itself produces (Grad-CAM's gradient of a score with respect to a layer's activations);
* :func:`to_numpy`: a backend tensor as a NumPy array.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

BACKENDS = ("tensorflow", "torch")


def name() -> str:
    """The backend Keras runs on: ``"tensorflow"`` or ``"torch"`` (others are refused)."""
    import keras

    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise RuntimeError(f"Keras backend {backend!r} is not supported here; use KERAS_BACKEND=tensorflow or torch")
    return backend


def configure(threads: int = 2, seed: int = 0) -> None:
    """Use ``threads`` CPU threads in the backend (quiet TensorFlow's start-up log) and seed Python,
    NumPy and the backend (call before building a model)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if name() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # already initialised: the first call's setting stays
    else:
        import torch

        torch.set_num_threads(int(threads))
    keras.utils.set_random_seed(int(seed))


def device() -> str:
    """Where Keras computes: ``"GPU:0 (<name>)"`` when the backend sees a GPU, else ``"CPU"``."""
    if name() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return "CPU"
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU:0 ({details.get('device_name', gpus[0].name)})"
    import torch

    return f"GPU:0 ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "CPU"


def to_numpy(value: Any) -> np.ndarray:
    """A backend tensor (or a NumPy array) as a NumPy array (on the CPU)."""
    import keras

    return np.asarray(keras.ops.convert_to_numpy(value))


def inference_function(model) -> Callable[[np.ndarray], np.ndarray]:
    """``f(batch) -> NumPy`` running ``model`` in inference mode: a retracing-averse ``tf.function`` on
    TensorFlow (as before), a no-grad call on torch."""
    if name() == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda batch: compiled(batch).numpy()
    import torch

    def forward(batch):
        with torch.no_grad():
            return to_numpy(model(batch, training=False))

    return forward


def value_and_gradient(forward: Callable[[Any], tuple[Any, Any]], inputs: Any) -> tuple[Any, Any]:
    """``forward(inputs) -> (watched, score)``, where ``score`` is a scalar computed from ``watched``;
    returns ``(watched, d score / d watched)`` as float32 backend tensors.

    ``inputs``: a NumPy array or a list of them (a model with several inputs); they are watched, so
    ``watched`` may depend on them alone or on the model's weights too."""
    import keras

    if isinstance(inputs, (list, tuple)):
        x = [keras.ops.convert_to_tensor(np.asarray(a, dtype=np.float32)) for a in inputs]
    else:
        x = keras.ops.convert_to_tensor(np.asarray(inputs, dtype=np.float32))
    if name() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            watched, score = forward(x)
        grads = tape.gradient(score, watched)
        return tf.cast(watched, tf.float32), tf.cast(grads, tf.float32)
    import torch

    for t in (x if isinstance(x, list) else [x]):
        t.requires_grad_(True)
    with torch.enable_grad():
        watched, score = forward(x)
        (grads,) = torch.autograd.grad(score, watched)
    return watched.detach().float(), grads.detach().float()
