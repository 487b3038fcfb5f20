"""The one place that knows which Keras 3 backend runs (TensorFlow or PyTorch), one function per need.

Model, loss and explanation code is written with ``keras`` and ``keras.ops`` and runs on either
backend; what cannot be written that way lives here:

* :func:`choose`: which backend a process should use when the user did not say (``KERAS_BACKEND``
  unset): PyTorch where torch sees a CUDA GPU and TensorFlow sees none (the usual GPU workstation
  with this project's ``tensorflow-cpu`` pin), TensorFlow otherwise; :func:`apply_choice` sets it
  for this process and its children (the ``fetal`` commands call it before Keras is imported);
* :func:`name`: the backend Keras was imported with (``KERAS_BACKEND``; it cannot change afterwards);
* :func:`gpu`: the GPU Keras computes on (for the precision rule), :func:`loader_workers`: batch
  loader threads, :func:`compiles_with_xla`: whether ``jit_compile`` means XLA here, :func:`describe`:
  backend and device for provenance and model cards;
* :func:`configure`: CPU threads of the backend and every seed;
* :func:`device`: where Keras computes (``"CPU"`` or ``"GPU:0 (<name>)"``);
* :func:`inference_function`: a model's forward pass in inference mode, compiled where the backend
  compiles (``tf.function`` on TensorFlow), returning NumPy;
* :func:`value_and_gradient`: a scalar function's value and its gradient with respect to a tensor
  the function itself produces (Grad-CAM's gradient of a score with respect to a layer's activations);
* :func:`to_numpy`: a backend tensor as a NumPy array;
* :func:`on_demand_dataset` (with :func:`fed_on_demand`, :func:`element_spec`): how a training epoch is fed
  to TensorFlow's ``fit`` (see "Feeding TensorFlow" below).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
from fetal_lib.devices import GpuInfo
from fetal_lib.devices import gpu_info
from fetal_lib.machine import thread_count

BACKENDS = ("tensorflow", "torch")
ENV = "KERAS_BACKEND"


def _torch_sees_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def tensorflow_sees_gpu() -> bool:
    """TensorFlow is installed and sees a GPU (never with this project's ``tensorflow-cpu`` pin)."""
    import importlib.util

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if importlib.util.find_spec("tensorflow") is None:
            return False
        import tensorflow as tf
    except ImportError:
        return False
    return bool(tf.config.list_physical_devices("GPU"))


def choose(environ: dict | None = None, torch_sees_cuda: Callable[[], bool] = _torch_sees_cuda,
           tensorflow_sees_gpu: Callable[[], bool] = tensorflow_sees_gpu) -> tuple[str, str]:
    """``(backend, reason)``: ``KERAS_BACKEND`` when set (``tensorflow`` or ``torch``; anything else is
    refused), else ``auto``: torch where torch sees a CUDA GPU and TensorFlow sees none, else TensorFlow.

    Raises:
        ValueError: ``KERAS_BACKEND`` names a backend this project does not run on.
    """
    environ = os.environ if environ is None else environ
    requested = (environ.get(ENV) or "auto").strip().lower()
    if requested != "auto":
        if requested not in BACKENDS:
            raise ValueError(f"{ENV}={requested!r} is not supported here; use tensorflow, torch or auto")
        return requested, f"{ENV}={requested} set by the user"
    if torch_sees_cuda():
        if tensorflow_sees_gpu():
            return "tensorflow", "auto: TensorFlow sees a GPU"
        return "torch", "auto: torch sees a CUDA GPU and TensorFlow none, so Keras runs on torch (on the GPU)"
    return "tensorflow", "auto: no CUDA GPU visible to torch, so Keras runs on TensorFlow (the CPU default)"


def apply_choice(environ: dict | None = None) -> tuple[str, str]:
    """Set ``KERAS_BACKEND`` to :func:`choose`'s answer for this process and the processes it starts
    (chapter kernels, JupyterLab); returns ``(backend, reason)``. When Keras is already imported, its
    backend stays (it cannot change) and the reason says so."""
    import sys

    environ = os.environ if environ is None else environ
    if "keras" in sys.modules and environ is os.environ:
        backend = name()
        environ[ENV] = backend
        return backend, "Keras was already imported with this backend"
    backend, reason = choose(environ)
    environ[ENV] = backend
    return backend, reason


def name() -> str:
    """The backend Keras runs on: ``"tensorflow"`` or ``"torch"`` (others are refused)."""
    import keras

    backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise RuntimeError(f"Keras backend {backend!r} is not supported here; use KERAS_BACKEND=tensorflow or torch")
    return backend


def configure(threads: int = 2, seed: int = 0) -> None:
    """Use ``threads`` CPU threads in the backend, at most the cores this process may use (quiet TensorFlow's start-up log) and seed Python,
    NumPy and the backend (call before building a model)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if name() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(thread_count(threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # already initialised: the first call's setting stays
    else:
        import torch

        torch.set_num_threads(thread_count(threads))
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


def gpu():
    """The CUDA GPU Keras computes on (a :class:`fetal_lib.devices.GpuInfo`), or None on the CPU."""
    if name() == "torch":

        return gpu_info()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None

    details = tf.config.experimental.get_device_details(gpus[0])
    capability = tuple(details.get("compute_capability") or (0, 0))
    return GpuInfo(str(details.get("device_name", gpus[0].name)), 0.0, (int(capability[0]), int(capability[1])), len(gpus))


def compiles_with_xla() -> bool:
    """Whether ``jit_compile=True`` means XLA here (TensorFlow). On torch it would mean ``torch.compile``,
    which this project does not use for Keras models."""
    return name() == "tensorflow"


def loader_workers() -> int:
    """Threads that prepare (augment) training batches: 2 when a GPU trains (it must not wait for the
    CPU), 1 on the CPU (the batch is made in the training thread; on 2 cores a second thread competes
    with the arithmetic)."""
    return 1 if device() == "CPU" else 2


def describe() -> dict[str, str]:
    """``{"keras_backend": ..., "keras_version": ..., "keras_device": ...}`` for provenance and model cards."""
    import keras

    return {"keras_backend": name(), "keras_version": str(keras.__version__), "keras_device": device()}


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


# --- Feeding TensorFlow -------------------------------------------------------------------------------
# How a Keras training epoch is fed on TensorFlow: a ``keras.utils.PyDataset`` as a ``tf.data`` pipeline
# that makes each batch when the training step asks for it, with no read-ahead.
#
# Keras's own adapter wraps a single-worker ``PyDataset`` in the same ``from_generator`` pipeline, with
# ``prefetch(AUTOTUNE)`` on top. On 2 CPU cores that read-ahead (the batch's augmentation in a tf.data
# thread while both cores compute the step) made TensorFlow's ``fit`` run whole epochs at one of two
# speeds (chapter 3's Xception in ``mixed_bfloat16`` on the AVX-512 BF16 EPYC at 89-90 or 50 images/s,
# chapter 1's U-Net held to AVX2 and one core at 0.40 or 0.64 s a step, 2026-11-29). Without it the batch
# is made between steps, as a ``train_on_batch`` loop makes it; unlike that loop, the training step is
# traced exactly as ``fit`` traces it (the same element spec, inside the same iterator function), so the
# trained weights are those of ``fit`` on the ``PyDataset``, bit for bit (tests/training/test_keras_feed.py).

SPEC_BATCHES = 2  # batches read for the element spec, as Keras's adapter reads them (NUM_BATCHES_FOR_TENSOR_SPEC)


def fed_on_demand(batches: Any) -> bool:
    """Whether ``batches`` is a sequence of batches made in the training thread (a ``PyDataset`` with one
    worker and no processes): those are fed by :func:`on_demand_dataset` on TensorFlow. Loader threads
    (a GPU's, :func:`fetal_lib.training.keras_backend.loader_workers`) keep Keras's own feed."""
    return (hasattr(batches, "__getitem__") and hasattr(batches, "__len__")
            and int(getattr(batches, "workers", 1) or 1) <= 1 and not getattr(batches, "use_multiprocessing", False))


def _as_tuple(batch: Any) -> Any:
    if isinstance(batch, dict):
        return batch
    if isinstance(batch, (list, tuple)):
        return tuple(batch)
    return (batch,)


def element_spec(batches: list) -> Any:
    """The ``tf.TensorSpec`` structure of ``batches`` (a few batches of one epoch), as Keras's adapter makes it:
    the batch axis ``None`` (a dynamic batch: the step traced once for any batch size), another axis ``None``
    where the batches differ. (A ``train_on_batch`` step is traced for the batch's static shape, so TensorFlow
    optimises a different graph: its weights differed from ``fit``'s by rounding, 6e-8 after one float32 SGD step of
    a small U-Net, enough for a chapter's trained models to drift apart.)"""
    import keras
    import tensorflow as tf

    def merged(*arrays):
        arrays = [np.asarray(a) for a in arrays]
        shape = [dims[0] if len(set(dims)) == 1 else None for dims in zip(*[a.shape for a in arrays])]
        if shape:
            shape[0] = None
        return tf.TensorSpec(shape, keras.backend.standardize_dtype(arrays[0].dtype))

    return tf.nest.map_structure(merged, *[_as_tuple(b) for b in batches])


def on_demand_dataset(batches: Any):
    """One epoch of ``batches`` (``len(batches)`` batches, ``batches[i]`` made when the step asks for it) as a
    ``tf.data.Dataset`` of known length, with no prefetch, no autotuning and one private thread."""
    import tensorflow as tf

    n = len(batches)
    if n == 0:
        raise ValueError("no training batches: the epoch is empty")
    spec = element_spec([batches[i] for i in range(min(SPEC_BATCHES, n))])

    def generate():
        for i in range(n):
            yield _as_tuple(batches[i])

    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec).with_options(options)
    return dataset.apply(tf.data.experimental.assert_cardinality(n))
