"""Shuffled, augmented training batches for Keras on any backend (a ``keras.utils.PyDataset``).

:class:`ShuffledBatches` holds the training arrays in memory and gives ``(inputs, targets[,
sample weights])`` batches of NumPy arrays, which Keras feeds to TensorFlow, PyTorch or JAX
alike. Each epoch visits the samples in a fresh order (a permutation drawn from the run's seed and
the epoch number); every batch is full (``len // batch_size`` batches, the few samples left over
differ from epoch to epoch) so a compiled training step compiles once; with fewer samples than
``batch_size``, one short batch. Augmentation runs per sample in NumPy/OpenCV with a generator
seeded from (seed, epoch, batch index): the same run draws the same augmentations on every
backend and with any number of loader threads. :class:`SampledBatches` follows the same rules for
samples made on demand from their source (chapter 1's second stage resamples each training band).

With ``draw_weights`` an epoch is instead ``len`` samples drawn WITH replacement, each with probability
proportional to its weight (class-balanced sampling: weights 1 / n_c make every class equally likely in
every draw), again from (seed, epoch).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import keras
import numpy as np

# augment(inputs, targets, rng) -> (inputs, targets) for ONE sample (inputs: an array or {name: array})
SampleAugment = Callable[[Any, np.ndarray, np.random.Generator], tuple[Any, np.ndarray]]
# mix(inputs, targets, weights or None, rng) -> (inputs, targets, weights) for a whole batch (e.g. mixup), after augment
BatchMix = Callable[[Any, np.ndarray, Any, np.random.Generator], tuple[Any, np.ndarray, Any]]


def _count(inputs: Any) -> int:
    if isinstance(inputs, Mapping):
        counts = {len(v) for v in inputs.values()}
        if len(counts) != 1:
            raise ValueError(f"the inputs hold different sample counts: {sorted(counts)}")
        return counts.pop()
    return len(inputs)


def _take(inputs: Any, index: np.ndarray) -> Any:
    if isinstance(inputs, Mapping):
        return {k: v[index] for k, v in inputs.items()}
    return inputs[index]


def _sample(inputs: Any, i: int) -> Any:
    if isinstance(inputs, Mapping):
        return {k: v[i] for k, v in inputs.items()}
    return inputs[i]


def _stack(samples: list) -> Any:
    if isinstance(samples[0], Mapping):
        return {k: np.stack([s[k] for s in samples]).astype(np.float32, copy=False) for k in samples[0]}
    return np.stack(samples).astype(np.float32, copy=False)


def _probabilities(weights: np.ndarray, n: int) -> np.ndarray:
    """``weights`` as draw probabilities (summing to 1); ValueError for a wrong length, a negative or non-finite
    weight, or all zero."""
    w = np.asarray(weights, np.float64).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"{w.shape[0]} draw weights for {n} samples")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("draw weights must be finite, >= 0 and not all 0")
    return w / w.sum()


class EpochBatches(keras.utils.PyDataset):
    """The order of ``n`` samples per epoch, from (seed, epoch); the loop sets the epoch.

    ``draw_weights``: None for a permutation of the ``n`` samples; else (n,) non-negative weights, and an epoch is
    ``n`` samples drawn with replacement with probabilities proportional to them.
    """

    def __init__(self, n: int, batch_size: int, seed: int, workers: int = 1, draw_weights: np.ndarray | None = None) -> None:
        super().__init__(workers=int(workers), use_multiprocessing=False, max_queue_size=4)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if n == 0:
            raise ValueError("no samples to batch")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.draw_probabilities = None if draw_weights is None else _probabilities(draw_weights, self.n)
        self.epoch = 0
        self.order = self._order(0)

    def _order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        if self.draw_probabilities is None:
            return rng.permutation(self.n)
        return rng.choice(self.n, size=self.n, replace=True, p=self.draw_probabilities)

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order and augmentation draws."""
        self.epoch = int(epoch)
        self.order = self._order(self.epoch)

    def on_epoch_end(self) -> None:
        """Ignored (see :class:`ShuffledBatches`): the loop calls :meth:`set_epoch`."""

    @property
    def num_batches(self) -> int:
        return max(1, self.n // self.batch_size)

    def __len__(self) -> int:
        return self.num_batches

    def _chosen(self, index: int) -> np.ndarray:
        if not 0 <= index < self.num_batches:
            raise IndexError(f"batch {index} of {self.num_batches}")
        return self.order[index * self.batch_size:(index + 1) * self.batch_size]

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])


class SampledBatches(EpochBatches):
    """Shuffled batches of samples made on demand: ``make(i, rng) -> (input, target)`` for sample ``i``.

    For training data that is resampled from its source at every draw (chapter 1's second stage
    samples the skull band of a jittered ellipse from the original image), with the same order and
    seeding rules as :class:`ShuffledBatches`.
    """

    def __init__(self, n: int, make: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]], batch_size: int,
                 seed: int, workers: int = 1) -> None:
        super().__init__(n, batch_size, seed, workers)
        self.make = make

    def __getitem__(self, index: int):
        chosen = self._chosen(index)
        rng = self._rng(index)
        pairs = [self.make(int(i), rng) for i in chosen]
        return _stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]).astype(np.float32, copy=False)


class ShuffledBatches(EpochBatches):
    """One epoch of shuffled batches; :meth:`set_epoch` chooses the epoch (its order and augmentation).

    The training loop sets the epoch (:func:`fetal_lib.training.keras.fit` does, before every epoch):
    Keras's own ``on_epoch_end`` calls are ignored, because how often Keras makes them differs between
    backends (TensorFlow also calls it when it inspects the first batch), which would make the draws
    depend on the backend.

    Args:
        inputs: (N, ...) float32 array, or {input name: (N, ...) array} for a model with several inputs.
        targets: (N, ...) array.
        batch_size: samples per batch.
        seed: the run's seed (order and augmentation).
        augment: a per-sample function ``(inputs, target, rng) -> (inputs, target)``, or None.
        weights: optional (N,) sample weights, yielded as a batch's third element.
        workers: loader threads (1: batches are made in the training loop's thread).
        mix: a whole-batch function ``(inputs, targets, weights or None, rng) -> (inputs, targets, weights)``
            applied after ``augment`` with the same generator (e.g. :func:`fetal_lib.transforms.mixup.mixup_batch`), or None.
        draw_weights: optional (N,) weights: each epoch draws N samples with replacement, in proportion to them
            (see :class:`EpochBatches`); None: each epoch a permutation.
    """

    def __init__(self, inputs: Any, targets: np.ndarray, batch_size: int, seed: int, augment: SampleAugment | None = None,
                 weights: np.ndarray | None = None, workers: int = 1, mix: BatchMix | None = None,
                 draw_weights: np.ndarray | None = None) -> None:
        n = _count(inputs)
        super().__init__(n, batch_size, seed, workers, draw_weights)
        if isinstance(inputs, Mapping):
            self.inputs = {k: np.asarray(v, np.float32) for k, v in inputs.items()}
        else:
            self.inputs = np.asarray(inputs, np.float32)
        self.targets = np.asarray(targets, np.float32)
        if len(self.targets) != n:
            raise ValueError(f"{len(self.targets)} targets for {n} samples")
        if weights is not None:
            weights = np.asarray(weights, np.float32).reshape(-1)
            if weights.shape[0] != n:
                raise ValueError(f"{weights.shape[0]} sample weights for {n} images")
        self.weights = weights
        self.augment = augment
        self.mix = mix

    def __getitem__(self, index: int):
        chosen = self._chosen(index)
        x = _take(self.inputs, chosen)
        y = self.targets[chosen]
        w = None if self.weights is None else self.weights[chosen]
        rng = self._rng(index) if self.augment is not None or self.mix is not None else None
        if self.augment is not None:
            pairs = [self.augment(_sample(x, i), y[i], rng) for i in range(len(chosen))]
            x = _stack([p[0] for p in pairs])
            y = np.stack([p[1] for p in pairs]).astype(np.float32, copy=False)
        if self.mix is not None:
            x, y, w = self.mix(x, y, w, rng)
        if w is None:
            return x, y
        return x, y, w
