"""Training the HC18 U-Net (Keras 3 on TensorFlow): a fixed number of epochs.

:func:`train` fits one model on pre-letterboxed arrays (``fetal_lib.hc.dataset``) and keeps the
weights of the epoch with the best validation Dice. The epochs are the budget, so every
machine trains the same model and only the wall time differs. An optional wall-time cap
(``time_budget_s``, off in the published profiles) stops training after the epoch that
exhausts it; :attr:`TrainResult.time_capped` then says that it cut the run short.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class TrainConfig:
    """Everything that defines one training run (sizes in pixels, times in seconds)."""

    input_shape: tuple[int, int] = (128, 192)  # (rows, cols) of the letterboxed input
    filters: int = 16
    depth: int = 4
    block: str = "corrected"  # "corrected" (ours) | "source" (the source's conv2d_block bug)
    mask_mode: str = "filled"  # "filled" (ours) | "outline" (the source's 0/2 outline masks)
    loss: str = "bce_dice"  # "bce_dice" (ours) | "bce" (the source's)
    augment: bool = True
    augment_vflip: bool = True  # vertical flips (the probe, at the top of every HC18 image, then lies at the bottom)
    loss_weight: str = "none"  # "none" | "mm_per_pixel": weight each image's loss by its mm per input pixel
    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-3
    time_budget_s: float | None = None  # optional wall-time cap (s; None = off): the cosine decay completes by then
    jit_compile: bool = True  # XLA-compiled training step (float32 only: XLA on CPU has no fast bfloat16 convolutions)
    precision: str = "float32"  # "float32" | "mixed_bfloat16": bfloat16 activations, float32 weights (resolved from "auto" by fetal_lib.training.precision)
    seed: int = 0

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def augment_config(self):
        """The :class:`~fetal_lib.hc.augment.AugmentConfig` this run trains with (training and bench alike)."""
        from fetal_lib.hc.augment import AugmentConfig

        return AugmentConfig(flip_ud=bool(self.augment_vflip))


@dataclass
class TrainResult:
    """The trained model (best validation Dice weights) and what happened."""

    model: object
    history: dict = field(default_factory=dict)  # per-epoch lists: loss, val_loss, val_dice, seconds
    epochs_run: int = 0
    best_epoch: int = 0
    seconds: float = 0.0
    train_images_per_s: float = 0.0
    time_capped: bool = False  # the wall-time cap ended training before the configured epochs


def configure_tf(threads: int = 2, seed: int = 0) -> None:
    """Quiet TensorFlow, use ``threads`` CPU threads, seed Python/NumPy/TF (call before training)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised: the first call's setting stays
    keras.utils.set_random_seed(int(seed))


PRECISIONS = ("float32", "mixed_bfloat16")


@contextmanager
def dtype_policy(precision: str):
    """Keras's global dtype policy set to ``precision`` inside the block, restored after."""
    import keras

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_model(config: TrainConfig, precision: str = "float32"):
    """The (uncompiled) U-Net of ``config``, its layers computing in ``precision``
    (the output probability is float32 either way)."""
    from fetal_lib.networks.keras.unet import build_unet

    with dtype_policy(precision):
        return build_unet((*config.input_shape, 1), filters=config.filters, depth=config.depth, block=config.block, name=f"hc18_unet_{config.block}")


def uses_xla(config: TrainConfig) -> bool:
    """Whether the training step is XLA-compiled: asked for, and in float32 only."""
    return bool(config.jit_compile) and config.precision == "float32"


def compile_model(model, config: TrainConfig) -> None:
    """Adam + the config's loss; XLA as :func:`uses_xla` says."""
    import keras

    from fetal_lib.hc.losses import get_loss

    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=get_loss(config.loss), jit_compile=uses_xla(config))


def cosine_lr(base_lr: float, progress: float, alpha: float = 0.05) -> float:
    """Cosine decay from ``base_lr`` to ``alpha * base_lr`` as ``progress`` goes 0 -> 1."""
    progress = min(max(progress, 0.0), 1.0)
    return base_lr * (alpha + (1.0 - alpha) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def budget_cosine_callback(base_lr: float, total_steps: int, time_budget_s: float | None, alpha: float = 0.05):
    """A Keras callback: cosine learning-rate decay over steps OR wall time, whichever runs out first.

    Progress is ``max(step / total_steps, elapsed / time_budget_s)``, so on a slow or busy
    machine the decay still completes within the time budget instead of being cut short at
    a high learning rate. ``.progress`` tells the training loop when to stop. The clock starts
    after the first step, which traces (and with XLA compiles) the training step: that one-off
    cost differs between networks and machines and would otherwise make equal budgets unequal.
    """
    import keras

    class BudgetCosine(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.step = 0
            self.progress = 0.0
            self.start: float | None = None

        def on_train_batch_begin(self, batch, logs=None) -> None:
            fraction = self.step / max(total_steps, 1)
            if time_budget_s and self.start is not None:
                fraction = max(fraction, (time.perf_counter() - self.start) / time_budget_s)
            self.progress = min(fraction, 1.0)
            self.model.optimizer.learning_rate.assign(cosine_lr(base_lr, self.progress, alpha))
            self.step += 1

        def on_train_batch_end(self, batch, logs=None) -> None:
            if self.start is None:  # the first step (tracing, compilation) is not charged to the budget
                self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None) -> None:
            fraction = self.step / max(total_steps, 1)
            if time_budget_s and self.start is not None:
                fraction = max(fraction, (time.perf_counter() - self.start) / time_budget_s)
            self.progress = min(fraction, 1.0)

    return BudgetCosine()


def train(
    config: TrainConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    verbose: int = 0,
    progress: bool = False,
    sample_weights: np.ndarray | None = None,
) -> TrainResult:
    """Train a U-Net; returns the model with the weights of its best validation-Dice epoch.

    Args:
        config: the run's settings.
        x_train, y_train: (N, rows, cols, 1) float32 images in [0, 1] and targets.
        x_val, y_val: validation arrays; ``y_val`` is scored as a filled mask (> 0.5) whatever
            the training targets, so every variant is selected on the same criterion.
        verbose: Keras verbosity (0 silent, 2 one line per epoch).
        progress: show a tqdm bar over epochs.
        sample_weights: one loss weight per training image (``None``: equal weights); they
            are divided by their mean, so the loss keeps its scale.
    """
    from fetal_lib.hc.dataset import tf_batches

    configure_tf(seed=config.seed)
    model = build_model(config, config.precision)
    if sample_weights is not None:
        sample_weights = np.asarray(sample_weights, np.float64)
        if not (np.isfinite(sample_weights).all() and (sample_weights > 0).all()):
            raise ValueError("sample weights must be finite and positive")
        sample_weights = sample_weights / sample_weights.mean()
    augment_config = config.augment_config()
    batches = tf_batches(x_train, y_train, config.batch_size, config.seed, augment=config.augment, config=augment_config, weights=sample_weights)
    steps = max(1, len(x_train) // config.batch_size) * max(1, config.epochs)
    compile_model(model, config)
    schedule = budget_cosine_callback(config.learning_rate, steps, config.time_budget_s)
    val_ref = (y_val > 0.5).astype(np.float32)

    history: dict[str, list] = {"loss": [], "val_dice": [], "seconds": []}
    best = {"dice": -1.0, "epoch": 0, "weights": None}
    start = time.perf_counter()
    train_time = 0.0
    epochs_run = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.epochs, desc=f"train {config.block}/{config.mask_mode}", unit="epoch")
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        fit = model.fit(batches, epochs=epoch + 1, initial_epoch=epoch, verbose=verbose, shuffle=False, callbacks=[schedule])
        train_time += time.perf_counter() - t0
        pred = model.predict(x_val, batch_size=16, verbose=0)
        dice = _mean_dice(pred > 0.5, val_ref > 0.5)
        epochs_run += 1
        history["loss"].append(float(fit.history["loss"][-1]))
        history["val_dice"].append(dice)
        history["seconds"].append(time.perf_counter() - start)
        if dice > best["dice"]:
            best = {"dice": dice, "epoch": epoch + 1, "weights": model.get_weights()}
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", val_dice=f"{dice:.3f}")
        if schedule.progress >= 1.0:  # step count or time budget reached: the decay is complete
            break
    if bar is not None:
        bar.close()
    if best["weights"] is not None:
        model.set_weights(best["weights"])
    if config.precision != "float32":
        # Mixed precision keeps float32 weights: hand them to a float32 network, so inference
        # and the saved model are plain float32 whatever the training precision.
        trained, model = model, build_model(config)
        model.set_weights(trained.get_weights())
    return TrainResult(
        model=model,
        history=history,
        epochs_run=epochs_run,
        best_epoch=int(best["epoch"]),
        seconds=time.perf_counter() - start,
        train_images_per_s=(epochs_run * len(x_train) / train_time) if train_time > 0 else 0.0,
        time_capped=epochs_run < config.epochs,
    )


def _mean_dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean per-image Dice of boolean (N, rows, cols, 1) arrays (1.0 when both are empty)."""
    inter = np.logical_and(pred, ref).sum(axis=(1, 2, 3))
    total = pred.sum(axis=(1, 2, 3)) + ref.sum(axis=(1, 2, 3))
    return float(np.mean(np.where(total > 0, 2.0 * inter / np.maximum(total, 1), 1.0)))
