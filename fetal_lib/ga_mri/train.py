"""Training chapter 4's regressor (Keras 3) through the shared harness.

:func:`train` fits ``vgg_attention`` (:mod:`fetal_lib.networks.keras.vgg_attention`) on samples of
three slices with

* the Huber loss on gestational age in days (``huber_delta_days``: errors below it are squared,
  above it linear), Adam, the harness's cosine decay to 5 % of the base rate;
* a fixed number of epochs and the LAST epoch's weights: no validation split is taken from a
  training fold of a few dozen volumes to pick an epoch (the source's early stopping and
  ReduceLROnPlateau need one); the per-epoch score in the history is the MAE on at most
  ``CURVE_SAMPLES`` of the training samples themselves, a fixed subset (a learning curve, not a model
  choice; predicting every training sample each epoch took about a quarter of the chapter's time);
* augmentation (``augment=True``, NumPy per sample in the batch loader, any Keras backend): each plane's slice flipped left-right at random
  where the plane has a left-right axis (axial and coronal; not sagittal, whose horizontal axis is
  anterior-posterior), and a random gain (0.9-1.1) and gamma (0.8-1.25) per slice. No scaling: the
  field of view is fixed in mm, and brain size is the age signal.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from fetal_lib.networks.keras.vgg_attention import PLANES
from fetal_lib.training.keras import FitResult
from fetal_lib.networks.keras import create
from fetal_lib.training import keras as harness
from fetal_lib.training import keras_backend
from fetal_lib.training.config import TrainConfig
from fetal_lib.training.keras import dtype_policy
from fetal_lib.training.keras_reuse import CompiledNetwork, copy_variables, reuses

PRECISIONS = ("float32", "mixed_bfloat16")
LR_FLOOR = 0.05
METRIC = "train_mae_days_negative"  # history key: minus the training-sample MAE (days), higher is better
FLIP_PLANES = ("axial", "coronal")
CURVE_SAMPLES = 64  # training samples the per-epoch learning curve is scored on (a fixed subset)
COMPILED = CompiledNetwork()  # the chapter's 13 trainings trace the training step once (fetal_lib.training.keras_reuse)


@dataclass
class GaTrainConfig:
    """One training run. ``options``: the network's own keyword arguments (widths, batch_norm, dense,
    dropout, target_mean_days, target_sd_days); ``weights_path``: a local ImageNet VGG16 file."""

    options: dict = field(default_factory=dict)
    size: int = 64  # pixels per side of every slice
    epochs: int = 30
    batch_size: int = 8
    learning_rate: float = 1e-4
    huber_delta_days: float = 1.0
    augment: bool = True
    precision: str = "float32"
    jit_compile: bool = False
    seed: int = 0
    weights_path: str | None = None
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        self.options = dict(self.options or {})
        if self.size < 32 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"size >= 32, epochs >= 1 and batch_size >= 1 needed, got {self.size}, {self.epochs}, {self.batch_size}")
        if self.learning_rate <= 0 or self.huber_delta_days <= 0:
            raise ValueError(f"learning_rate and huber_delta_days must be > 0, got {self.learning_rate}, {self.huber_delta_days}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (resolve 'auto' first), got {self.precision!r}")
        if {"input_shape", "name", "weights_path", "planes"} & set(self.options):
            raise ValueError("options are the network's own widths and head: input_shape, planes, name and weights_path come from the run")

    def to_dict(self) -> dict:
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> GaTrainConfig:
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown GaTrainConfig keys: {', '.join(unknown)}")
        return cls(**copy.deepcopy(dict(data)))

    def network_options(self) -> dict:
        """The registry options of the network this config trains (what a model card stores)."""
        return {"input_shape": (self.size, self.size, 1), **self.options}

    def loop_config(self):

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate, lr_floor=LR_FLOOR,
                           time_budget_s=self.time_budget_s, precision="bfloat16" if self.precision == "mixed_bfloat16" else "float32",
                           compile=self.jit_compile, seed=self.seed, checkpoint="last")


def build_model(config: GaTrainConfig, precision: str = "float32", load_weights: bool = True):
    """The uncompiled ``vgg_attention`` network of ``config``, its layers computing in ``precision``."""

    options = config.network_options()
    if config.weights_path and load_weights:
        options["weights_path"] = config.weights_path
    with dtype_policy(precision):
        return create("vgg_attention", name="ga_vgg_attention", **options)


def check_inputs(config: GaTrainConfig, planes: dict[str, np.ndarray], y: np.ndarray | None = None, what: str = "training") -> int:
    """The number of samples; ValueError when a plane is missing or its slices do not fit the config."""
    n = None
    for p in PLANES:
        if p not in planes:
            raise ValueError(f"{what} samples lack the {p} plane")
        a = np.asarray(planes[p])
        if a.ndim != 4 or a.shape[1:] != (config.size, config.size, 1):
            raise ValueError(f"{what} {p} slices must be (N, {config.size}, {config.size}, 1), got {a.shape}")
        if n is not None and len(a) != n:
            raise ValueError(f"{what} planes hold different sample counts")
        n = len(a)
    if not n:
        raise ValueError(f"no {what} samples")
    if y is not None and np.asarray(y).shape != (n,):
        raise ValueError(f"{what} ages must be ({n},), got {np.asarray(y).shape}")
    return int(n)


def augment_planes(planes: dict, rng: np.random.Generator) -> dict:
    """One sample's slices ({plane: (size, size, 1)}), each flipped left-right at random where the plane
    has a left-right axis (axial, coronal) and given a random gain (0.9-1.1, clipped to [0, 2]) and
    gamma (0.8-1.25); float32 copies."""
    out = {}
    for p in sorted(planes):
        image = np.asarray(planes[p], np.float32)
        if p in FLIP_PLANES and rng.random() < 0.5:
            image = image[:, ::-1]
        image = np.clip(image * np.float32(rng.uniform(0.9, 1.1)), 0.0, 2.0)
        out[p] = (image ** np.float32(rng.uniform(0.8, 1.25))).astype(np.float32)
    return out


def training_batches(planes: dict[str, np.ndarray], y: np.ndarray, config: GaTrainConfig, workers: int = 1):
    """Shuffled ({plane: slices}, days) batches for any Keras backend, reshuffled every epoch,
    augmented (:func:`augment_planes`) per the config."""
    from fetal_lib.training.keras_batches import ShuffledBatches  # deferred: imports keras

    def aug(sample, days, rng):
        return augment_planes(sample, rng), days

    return ShuffledBatches({p: np.asarray(planes[p], np.float32) for p in PLANES}, np.asarray(y, np.float32).reshape(-1, 1),
                           config.batch_size, config.seed, augment=aug if config.augment else None, workers=workers)


def curve_subset(n: int, seed: int = 0, size: int = CURVE_SAMPLES) -> np.ndarray:
    """Sorted indices of the (at most ``size``) training samples the learning curve is scored on."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def predict_days(model, planes: dict[str, np.ndarray], batch_size: int = 32) -> np.ndarray:
    """(N,) predicted gestational age in days."""
    out = model.predict([np.asarray(planes[p], np.float32) for p in PLANES], batch_size=batch_size, verbose=0)
    return np.asarray(out, np.float64).reshape(-1)


def train(config: GaTrainConfig, planes: dict[str, np.ndarray], ga_days: np.ndarray, progress: bool = False,
          verbose: int = 0) -> FitResult:
    """Train one regressor on ``planes`` (plane -> (N, size, size, 1)) and ages in days; returns the
    float32 model of the last epoch and its history (``train_mae_days_negative`` per epoch).

    Raises:
        ValueError: inputs that do not fit the config (before anything is built).
    """
    import keras


    n = check_inputs(config, planes, ga_days)
    loop = config.loop_config()

    def compiled(load_weights: bool = True):
        model = build_model(config, config.precision, load_weights=load_weights)
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=keras.losses.Huber(delta=float(config.huber_delta_days)),
                      jit_compile=harness.uses_xla(loop))
        return model

    harness.configure(threads=loop.threads, seed=config.seed)
    if reuses():  # TensorFlow: the training step traced once per process (fetal_lib.training.keras_reuse)
        model = COMPILED.for_recipe(recipe_key(config), lambda: compiled(load_weights=False))
        harness.configure(threads=loop.threads, seed=config.seed)  # seeded again: building it drew random numbers
        fresh = build_model(config, config.precision)  # the starting weights (the seed's), handed back trained
        COMPILED.restart(fresh)
    else:
        model = fresh = compiled()
    y = np.asarray(ga_days, np.float64)
    curve = curve_subset(n, config.seed)
    curve_planes = {p: np.asarray(planes[p])[curve] for p in PLANES}

    def validate(m) -> float:
        return -float(np.mean(np.abs(predict_days(m, curve_planes) - y[curve])))


    batches = training_batches(planes, y, config, workers=keras_backend.loader_workers())
    result = harness.fit(model, batches, max(1, n // config.batch_size), loop, validate, samples_per_epoch=n,
                         metric=METRIC, rebuild_float32=lambda: build_model(config, "float32", load_weights=False),
                         desc="train vgg_attention", progress=progress, verbose=verbose)
    if result.model is model and model is not fresh:  # a network of its own: the next training restarts the compiled one
        copy_variables(fresh, model)
        result.model = fresh
    return result


def recipe_key(config: GaTrainConfig) -> str:
    """What the compiled network depends on: the config but its seed, epochs and wall-time cap (the starting weights
    come from a newly built network; the epochs are the loop's), and the Keras backend."""
    import json

    kept = {k: v for k, v in config.to_dict().items() if k not in ("seed", "epochs", "time_budget_s")}
    return json.dumps({**kept, "keras_backend": keras_backend.name()}, sort_keys=True, default=str)
