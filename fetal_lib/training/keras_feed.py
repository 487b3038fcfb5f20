"""How a Keras training epoch is fed on TensorFlow: a ``keras.utils.PyDataset`` as a ``tf.data`` pipeline
that makes each batch when the training step asks for it, with no read-ahead.

Keras's own adapter wraps a single-worker ``PyDataset`` in the same ``from_generator`` pipeline, with
``prefetch(AUTOTUNE)`` on top. On 2 CPU cores that read-ahead (the batch's augmentation in a tf.data
thread while both cores compute the step) made TensorFlow's ``fit`` run whole epochs at one of two
speeds (chapter 3's Xception in ``mixed_bfloat16`` on the AVX-512 BF16 EPYC at 89-90 or 50 images/s,
chapter 1's U-Net held to AVX2 and one core at 0.40 or 0.64 s a step, 2026-11-29). Without it the batch
is made between steps, as a ``train_on_batch`` loop makes it; unlike that loop, the training step is
traced exactly as ``fit`` traces it (the same element spec, inside the same iterator function), so the
trained weights are those of ``fit`` on the ``PyDataset``, bit for bit (tests/training/test_keras_feed.py).
"""

from __future__ import annotations

from typing import Any

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
    import numpy as np
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
