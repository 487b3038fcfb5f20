"""The Keras 3 training harness: threads and seeds, precision policy, the cosine schedule as a
callback, and an epoch loop with validation, a best/smoothed/last-epoch checkpoint
(:mod:`fetal_lib.training.checkpoint`), optional wall-time cap,
a tqdm line per epoch (and a line per epoch to ``$FETAL_EPOCH_LOG``: fetal_lib.training.progress), and a float32 model at the end whatever the training precision.

The chapter builds and compiles its model (its loss is its own) and hands over its training
batches (a ``keras.utils.PyDataset``, :mod:`fetal_lib.training.keras_batches`) and a validation score; the loop does the rest.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

from fetal_lib.training.checkpoint import CheckpointSelector
from fetal_lib.training.config import TrainConfig
from fetal_lib.training.progress import report_epoch
from fetal_lib.training import keras_backend
from fetal_lib.training.schedule import cosine_lr, training_progress

KERAS_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "mixed_bfloat16": "mixed_bfloat16"}


def configure(threads: int = 2, seed: int = 0) -> None:
    """Use ``threads`` CPU threads in the Keras backend, seed Python/NumPy/the backend (call before
    building a model): :func:`fetal_lib.training.keras_backend.configure`."""

    keras_backend.configure(threads, seed)


def device() -> str:
    """Where Keras computes: ``"GPU:0 (<name>)"`` when the backend sees a GPU, else ``"CPU"``."""

    return keras_backend.device()


@contextmanager
def dtype_policy(precision: str):
    """Keras's global dtype policy for ``precision`` ("float32", "bfloat16" or "mixed_bfloat16") inside the block."""
    import keras

    if precision not in KERAS_POLICIES:
        raise ValueError(f"precision must be one of float32, mixed_bfloat16, got {precision!r}")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(KERAS_POLICIES[precision])
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def uses_xla(config: TrainConfig) -> bool:
    """Whether the training step is XLA-compiled: asked for, in float32 only (XLA on CPU has no fast
    bfloat16 convolutions), and on the TensorFlow backend (on torch, ``compile`` is ignored)."""

    return bool(config.compile) and config.precision == "float32" and keras_backend.compiles_with_xla()


def schedule_callback(base_lr: float, total_steps: int, time_budget_s: float | None, floor: float = 0.0, constant: bool = False,
                      clock: Callable[[], float] = time.perf_counter):
    """A Keras callback: cosine decay (to ``floor`` x ``base_lr``) over steps or wall time, whichever runs out first.

    ``.progress`` tells the loop when the decay is complete. The clock starts after the first
    step, which traces (and with XLA compiles) the training step: that one-off cost differs
    between networks and machines and would otherwise make equal caps unequal. ``clock`` gives
    seconds (tests inject their own).
    """
    import keras


    class Schedule(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.step = 0
            self.progress = 0.0
            self.start: float | None = None

        def _update_progress(self) -> None:
            elapsed = clock() - self.start if self.start is not None else 0.0
            self.progress = training_progress(self.step / max(total_steps, 1), elapsed, time_budget_s)

        def on_train_batch_begin(self, batch, logs=None) -> None:
            self._update_progress()
            if not constant:
                self.model.optimizer.learning_rate.assign(cosine_lr(base_lr, self.progress, floor))
            self.step += 1

        def on_train_batch_end(self, batch, logs=None) -> None:
            if self.start is None:  # the first step (tracing, compilation) is not charged to the cap
                self.start = clock()

        def on_epoch_end(self, epoch, logs=None) -> None:
            self._update_progress()

    return Schedule()


def train_epoch(model, batches, schedule=None, epoch: int = 0, verbose: int = 0) -> float:
    """Epoch ``epoch`` (from 0) of ``batches`` (a ``keras.utils.PyDataset`` of ``(x, y[, sample_weight])`` batches, or
    anything ``model.fit`` takes) by ``model.fit``; returns the epoch's mean training loss. ``schedule``: a
    :func:`schedule_callback`. Batches that draw per epoch (:class:`~fetal_lib.training.keras_batches.EpochBatches`:
    shuffled or sampled) are set to ``epoch`` first, on every backend (until 2026-11-29 the harness set it only for
    shuffled batches, and chapter 1's second stage drew epoch 0's order and jitter in every epoch).

    On TensorFlow a ``PyDataset`` made in the training thread is fed by
    :func:`fetal_lib.training.keras_backend.on_demand_dataset`: each batch made when the step asks for it, the
    weights bit for bit those of ``fit`` on the ``PyDataset`` itself, without the read-ahead with which
    ``fit`` ran whole epochs at one of two speeds on 2 cores. Elsewhere (Keras on torch; loader threads
    for a GPU) ``fit`` takes the batches as they are.
    """
    from fetal_lib.training.keras_batches import EpochBatches  # deferred: imports keras

    if isinstance(batches, EpochBatches):
        batches.set_epoch(epoch)
    feed = batches
    if keras_backend.name() == "tensorflow" and keras_backend.fed_on_demand(batches):
        feed = keras_backend.on_demand_dataset(batches)
    result = model.fit(feed, epochs=epoch + 1, initial_epoch=epoch, verbose=verbose, shuffle=False,
                       callbacks=[] if schedule is None else [schedule])
    return float(result.history["loss"][-1])


@dataclass
class FitResult:
    """A trained Keras model (float32) and what happened (seconds of wall time)."""

    model: Any
    history: dict = field(default_factory=dict)  # per-epoch lists: loss, the validation metric, seconds (since start)
    epochs_run: int = 0
    best_epoch: int = 0
    seconds: float = 0.0  # whole loop, validation included
    train_seconds: float = 0.0  # optimiser epochs only
    train_images_per_s: float = 0.0  # training samples per second of optimiser time
    time_capped: bool = False  # the wall-time cap ended training before config.epochs
    device: str = "CPU"


def fit(
    model,
    batches,
    steps_per_epoch: int,
    config: TrainConfig,
    validate: Callable[[Any], float],
    samples_per_epoch: int = 0,
    metric: str = "val_score",
    rebuild_float32: Callable[[], Any] | None = None,
    desc: str = "train",
    progress: bool = False,
    verbose: int = 0,
    clock: Callable[[], float] = time.perf_counter,
) -> FitResult:
    """Train a compiled model for ``config.epochs`` epochs (or until the optional cap).

    Args:
        model: a compiled ``keras.Model`` (built under ``dtype_policy(config.precision)``).
        batches: a ``keras.utils.PyDataset`` (or anything ``model.fit`` takes) giving one epoch.
        steps_per_epoch: optimiser steps in one epoch (for the schedule).
        config: the loop's settings.
        validate: score of the model on the validation data, higher is better (e.g. Dice).
        samples_per_epoch: training samples (images) in one epoch, for ``train_images_per_s``.
        metric: the history key of that score.
        rebuild_float32: builds the same network in float32; with a bfloat16 policy the trained
            float32 weights are moved into it, so the returned model is plain float32.
        desc: the progress bar's label.
        progress: a tqdm bar with one step per epoch.
        verbose: Keras verbosity (0 silent, 2 one line per epoch).
        clock: seconds for the cap and the timings (tests inject their own).
    """
    total_steps = max(1, steps_per_epoch) * config.epochs
    schedule = schedule_callback(config.learning_rate, total_steps, config.cap_s, config.lr_floor, config.lr_schedule == "constant", clock)
    history: dict[str, list] = {"loss": [], metric: [], "seconds": []}
    selector = CheckpointSelector(config.checkpoint)
    start = clock()
    train_seconds = 0.0
    epochs_run = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.epochs, desc=desc, unit="epoch")
    for epoch in range(config.epochs):
        t0 = clock()
        loss = train_epoch(model, batches, schedule, epoch, verbose)
        train_seconds += clock() - t0
        epochs_run += 1
        score = float(validate(model))
        history["loss"].append(loss)
        history[metric].append(score)
        history["seconds"].append(clock() - start)
        selector.offer(epoch + 1, score, model.get_weights)
        report_epoch(desc, epoch + 1, config.epochs, clock() - start, loss=history["loss"][-1], **{metric: score})
        if bar is not None:
            bar.update(1)
            bar.set_postfix({"loss": f"{history['loss'][-1]:.3f}", metric: f"{score:.3f}"})
        if schedule.progress >= 1.0:  # step count or cap reached: the decay is complete
            break
    if bar is not None:
        bar.close()
    best_epoch, best_weights = selector.finish()
    if best_weights is not None:
        model.set_weights(best_weights)
    if config.precision != "float32" and rebuild_float32 is not None:
        trained, model = model, rebuild_float32()
        model.set_weights(trained.get_weights())
    return FitResult(
        model=model,
        history=history,
        epochs_run=epochs_run,
        best_epoch=int(best_epoch),
        seconds=clock() - start,
        train_seconds=train_seconds,
        train_images_per_s=epochs_run * samples_per_epoch / train_seconds if train_seconds > 0 else 0.0,
        time_capped=epochs_run < config.epochs,
        device=device(),
    )
