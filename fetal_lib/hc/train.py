"""Training the HC18 U-Net (Keras 3 on TensorFlow): a fixed number of epochs.

:func:`train` fits one model on pre-letterboxed arrays (``fetal_lib.hc.dataset``) and keeps the
weights of the epoch with the best validation Dice. The epochs are the budget, so every
machine trains the same model and only the wall time differs. An optional wall-time cap
(``time_budget_s``, off in the published profiles) stops training after the epoch that
exhausts it; :attr:`TrainResult.time_capped` then says that it cut the run short.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from fetal_lib.training.keras import FitResult
from fetal_lib.hc.dataset import training_batches
from fetal_lib.hc.losses import get_loss
from fetal_lib.networks.keras import create
from fetal_lib.training import keras as harness
from fetal_lib.training import keras_backend
from fetal_lib.training.config import TrainConfig as LoopConfig
from fetal_lib.training.keras import dtype_policy
from fetal_lib.training.keras import uses_xla
from fetal_lib.transforms.augment import AugmentConfig


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

    def loop_config(self):
        """What the harness's loop needs (:class:`fetal_lib.training.config.TrainConfig`)."""

        return LoopConfig(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate, lr_floor=LR_FLOOR,
                          time_budget_s=self.time_budget_s, precision="bfloat16" if self.precision == "mixed_bfloat16" else self.precision,
                          compile=self.jit_compile, seed=self.seed, checkpoint="best")

    def augment_config(self):
        """The :class:`~fetal_lib.transforms.augment.AugmentConfig` this run trains with (training and bench alike)."""

        return AugmentConfig(flip_ud=bool(self.augment_vflip))


TrainResult = FitResult  # the trained float32 model (best validation-Dice weights) and what happened


PRECISIONS = ("float32", "mixed_bfloat16")  # Keras names of the training precisions
LR_FLOOR = 0.05  # the cosine decay ends at 5 % of the base learning rate (fetal_lib.training.schedule)


def build_model(config: TrainConfig, precision: str = "float32"):
    """The (uncompiled) U-Net of ``config``, its layers computing in ``precision``
    (the output probability is float32 either way)."""

    with dtype_policy(precision):
        return create("unet", input_shape=(*config.input_shape, 1), filters=config.filters, depth=config.depth, block=config.block, name=f"hc18_unet_{config.block}")


def compile_model(model, config: TrainConfig) -> None:
    """Adam + the config's loss; XLA as :func:`fetal_lib.training.keras.uses_xla` says."""
    import keras


    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=get_loss(config.loss), jit_compile=uses_xla(config.loop_config()))


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

    if sample_weights is not None:
        sample_weights = np.asarray(sample_weights, np.float64)
        if not (np.isfinite(sample_weights).all() and (sample_weights > 0).all()):
            raise ValueError("sample weights must be finite and positive")
        sample_weights = sample_weights / sample_weights.mean()
    batches = training_batches(x_train, y_train, config.batch_size, config.seed, augment=config.augment, config=config.augment_config(),
                               weights=sample_weights, workers=keras_backend.loader_workers())
    return train_on_batches(config, batches, len(x_train), x_val, y_val, progress=progress, verbose=verbose,
                            desc=f"train {config.block}/{config.mask_mode}")


def train_on_batches(config: TrainConfig, batches, n_samples: int, x_val: np.ndarray, y_val: np.ndarray, progress: bool = False,
                     verbose: int = 0, desc: str = "train") -> TrainResult:
    """Train the U-Net of ``config`` on a ``PyDataset`` of ``n_samples`` samples per epoch (:func:`train`'s
    loop; chapter 1's second stage gives its own batches); best validation-Dice weights."""

    if config.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {config.precision!r}")
    loop = config.loop_config()
    harness.configure(seed=config.seed)
    model = build_model(config, config.precision)
    compile_model(model, config)
    val_ref = y_val > 0.5

    def validate(m) -> float:
        return _mean_dice(m.predict(x_val, batch_size=16, verbose=0) > 0.5, val_ref)

    return harness.fit(model, batches, max(1, n_samples // config.batch_size), loop, validate, samples_per_epoch=n_samples,
                       metric="val_dice", rebuild_float32=lambda: build_model(config), desc=desc, progress=progress, verbose=verbose)


def _mean_dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean per-image Dice of boolean (N, rows, cols, 1) arrays (1.0 when both are empty)."""
    from fetal_lib.metrics.segmentation import dice  # deferred: imports scipy

    return float(np.mean([dice(p, r) for p, r in zip(pred, ref)]))
