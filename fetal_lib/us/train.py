"""Training chapter 3's classifiers (Keras 3, TensorFlow or PyTorch backend) through the shared harness.

:func:`train` fits one network (``plain_cnn``, ``separable_cnn`` or ``xception`` from
:mod:`fetal_lib.networks.keras`, all returning logits) on arrays of grey images, with

* Adam and the cross-entropy of softmax(logits) with optional label smoothing (the labels are
  one-hot in the pipeline so that smoothing is available; without smoothing this is exactly the
  sparse categorical cross-entropy of the integer labels);
* balanced class weights (``class_weight="balanced"``): each image weighs N / (K n_c) for its
  class c with n_c images among N in K classes (scikit-learn's "balanced"), passed to Keras as
  per-sample weights, so every class contributes equally to the loss; or class-balanced sampling
  (``class_weight="sampled"``): each epoch draws N training images with replacement, each class
  equally likely in every draw, and the loss is unweighted (the same balance in expectation, by
  repeating the rarer classes' images instead of weighing them up);
* optionally mixup (``mixup`` > 0, :mod:`fetal_lib.transforms.mixup`): each augmented batch blended
  with a permutation of itself, images, one-hot labels and class weights alike;
* the cosine learning-rate decay of the harness (to 5 % of the base rate) and the weights of the
  epoch with the best validation BALANCED accuracy (mean recall over the classes: plain accuracy
  would favour the majority class on these unbalanced sets), by default averaged with the
  neighbouring epochs' (``checkpoint="smoothed"``, :mod:`fetal_lib.training.checkpoint`: on a few
  dozen validation images the single best epoch is often a one-epoch spike);
* the float32 model at the end whatever the training precision.

Augmentation (``augment=True``; :func:`augment_image`, NumPy/OpenCV per image in the batch loader,
for any Keras backend): horizontal flips, rotation within +-10 degrees (``rotation_deg``), scaling 0.9-1.1 and shifts of up to
5 % of the size (chapter 1's :func:`fetal_lib.transforms.augment.affine_matrix`), then chapter 1's
intensity changes -- gain, offset, gamma and mild multiplicative noise, with the ranges of
:class:`fetal_lib.transforms.augment.AugmentConfig`. Horizontal flips are fine for these planes: a
transventricular, transthalamic or transcerebellar plane mirrored left-right is still the same
plane (the head is near-symmetric and the side it lies on in the image depends on how the probe is
held), and a finding such as ventriculomegaly keeps its label. Vertical flips are off, as in
chapter 1: the probe is at the top of every image and the beam direction shapes the echoes.
Rotation is milder than chapter 1's +-15 degrees: the classifier sees the whole plane, and its
orientation in the image is part of how sonographers acquire it.

Inputs: (N, rows, cols, channels) float32 images in [0, 1] (``channels`` 1 for grey ultrasound;
Xception repeats it to 3 inside the model) and integer labels 0..K-1.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from fetal_lib.training.keras import FitResult
from fetal_lib.metrics.classification import classification_report
from fetal_lib.networks.keras import REGISTRY
from fetal_lib.networks.keras import create
from fetal_lib.networks.keras import names, xception
from fetal_lib.training import keras as harness
from fetal_lib.training import keras_backend
from fetal_lib.training.checkpoint import check_mode
from fetal_lib.training.config import TrainConfig as LoopConfig
from fetal_lib.training.keras import dtype_policy
from fetal_lib.training.keras import uses_xla
from fetal_lib.transforms.augment import AugmentConfig
from fetal_lib.transforms.augment import augment_image as augment_one
from fetal_lib.transforms.mixup import check_alpha, mixup_batch
from fetal_lib.us.head_probe import HEAD_INITS

PRECISIONS = ("float32", "mixed_bfloat16")  # Keras names of the training precisions
CLASS_WEIGHTS = ("balanced", "sampled", "none")
LR_FLOOR = 0.05  # the cosine decay ends at 5 % of the base learning rate (fetal_lib.training.schedule)
METRIC = "val_balanced_accuracy"  # the history key of the validation score the best epoch is chosen by


@dataclass
class UsTrainConfig:
    """Everything that defines one training run (sizes in pixels, times in seconds).

    ``options`` are the network's own keyword arguments (e.g. ``{"widths": [16, 32, 64, 128],
    "dropout": 0.3}``); the input shape and class count come from the run. ``weights_path``
    (Xception only) is a local file of backbone weights (e.g. ImageNet's), never downloaded.
    ``precision`` is "float32" or "mixed_bfloat16" (resolve "auto" with
    :func:`fetal_lib.training.precision.resolve` first). ``time_budget_s``: an optional wall-time
    cap (None: off).
    """

    arch: str = "plain_cnn"
    options: dict = field(default_factory=dict)
    input_size: tuple[int, int] = (128, 128)  # (rows, cols)
    channels: int = 1
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 1e-3
    augment: bool = True
    precision: str = "float32"
    # XLA-compiled training step (float32 only). Off by default: on the 2-core CPU it made these networks train
    # SLOWER (128x128, batch 16: plain 131 vs 199, separable 75 vs 209, Xception 2.7 vs 14 images/s), XLA's CPU
    # depthwise and separable convolutions being far slower than oneDNN's.
    jit_compile: bool = False
    label_smoothing: float = 0.0
    # mixup's alpha (fetal_lib.transforms.mixup): each training batch blended with a permutation of itself, one
    # lam ~ Beta(alpha, alpha) per batch, targets and loss weights alike; 0: off
    mixup: float = 0.0
    rotation_deg: float = 10.0  # the augmentation's rotation range, +-degrees (augment_config)
    # the classifier before training: "random" as the architecture builds it, or "probe", a linear probe of the
    # network's starting features on the training images (fetal_lib.us.head_probe; after init_model's copy)
    head_init: str = "random"
    class_weight: str = "balanced"  # "balanced" (loss weights) | "sampled" (class-balanced draws) | "none"
    seed: int = 0
    weights_path: str | None = None
    time_budget_s: float | None = None
    # which epoch's weights are kept (fetal_lib.training.checkpoint): "smoothed", the best validation balanced accuracy
    # averaged with the neighbouring epochs' (a plateau, not a one-epoch spike on 30-80 validation images); "best"; "last"
    checkpoint: str = "smoothed"

    def __post_init__(self) -> None:

        self.input_size = tuple(int(s) for s in self.input_size)
        self.options = dict(self.options or {})
        if self.arch not in names():
            raise ValueError(f"arch must be a registered Keras network ({', '.join(names())}), got {self.arch!r}")
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ValueError(f"input_size must be (rows, cols), got {self.input_size}")
        if self.channels < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"channels, epochs and batch_size must be >= 1, got {self.channels}, {self.epochs}, {self.batch_size}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (resolve 'auto' first), got {self.precision!r}")
        check_mode(self.checkpoint)
        check_class_weight(self.class_weight)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        self.mixup = check_alpha(self.mixup)
        if isinstance(self.rotation_deg, bool) or not isinstance(self.rotation_deg, (int, float)) or not 0 <= self.rotation_deg <= 180:
            raise ValueError(f"rotation_deg must be a number of degrees in [0, 180], got {self.rotation_deg!r}")
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"head_init must be one of {', '.join(HEAD_INITS)}, got {self.head_init!r}")
        if self.weights_path is not None and self.arch != "xception":
            raise ValueError(f"weights_path is for the xception backbone only, not {self.arch!r}")
        if self.weights_path is not None and not xception.is_full_size(self.options):
            raise ValueError(f"the Xception weights {self.weights_path} fit the full network only: the options "
                             f"{self.options} reduce it (give xception the options {{}} to load the weights)")
        if "weights_path" in self.options or {"input_shape", "num_classes", "name"} & set(self.options):
            raise ValueError("options are the network's own settings: input_shape, num_classes and name come from the run, "
                             "weights_path from the config")

    def to_dict(self) -> dict:
        """JSON-ready (tuples as lists); :meth:`from_dict` gives the config back."""
        return {k: _jsonable(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> UsTrainConfig:
        """The config of :meth:`to_dict` (unknown keys refused)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown UsTrainConfig keys: {', '.join(unknown)}")
        return cls(**copy.deepcopy(dict(data)))

    def loop_config(self):
        """What the harness's loop needs (:class:`fetal_lib.training.config.TrainConfig`)."""

        return LoopConfig(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate, lr_floor=LR_FLOOR,
                          time_budget_s=self.time_budget_s, precision="bfloat16" if self.precision == "mixed_bfloat16" else self.precision,
                          compile=self.jit_compile, seed=self.seed, checkpoint=self.checkpoint)

    def augment_config(self):
        """The augmentation this run trains with (:func:`augment_config` with its ``rotation_deg``)."""
        return augment_config(self.rotation_deg)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(rows, cols, channels) of the network input."""
        return (*self.input_size, self.channels)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def augment_config(rotation_deg: float = 10.0):
    """The :class:`~fetal_lib.transforms.augment.AugmentConfig` of the classifiers: horizontal flips only,
    rotation within +-``rotation_deg`` degrees (10 unless a task sets its own), chapter 1's scaling (0.9-1.1),
    shift (5 %) and intensity ranges."""

    return AugmentConfig(flip_lr=True, flip_ud=False, rotation_deg=float(rotation_deg))


TrainResult = FitResult  # the trained float32 model (the checkpoint's chosen epoch's weights) and what happened


def gradcam_layer(arch: str) -> str:
    """The name of the layer Grad-CAM explains in network ``arch`` (its module's ``GRADCAM_LAYER``)."""
    import importlib


    module = importlib.import_module(REGISTRY.entry(arch).factory.split(":")[0])
    try:
        return str(module.GRADCAM_LAYER)
    except AttributeError:
        raise ValueError(f"Keras network {arch!r} names no Grad-CAM layer (GRADCAM_LAYER)") from None


def build_model(config: UsTrainConfig, num_classes: int, precision: str = "float32", load_weights: bool = True):
    """The (uncompiled) network of ``config`` for ``num_classes`` classes, its layers computing in
    ``precision`` (the logits are float32 either way). ``load_weights=False`` skips ``weights_path``
    (the float32 rebuild at the end of training gets the trained weights anyway)."""

    options = dict(config.options)
    if config.weights_path is not None and load_weights:
        options["weights_path"] = config.weights_path
    with dtype_policy(precision):
        return create(config.arch, input_shape=config.input_shape, num_classes=int(num_classes), name=f"us_{config.arch}", **options)


def compile_model(model, config: UsTrainConfig) -> None:
    """Adam + cross-entropy from logits on one-hot labels (with the config's label smoothing);
    XLA as :func:`fetal_lib.training.keras.uses_xla` says."""
    import keras


    loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=float(config.label_smoothing))
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, jit_compile=uses_xla(config.loop_config()))


def class_weights(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Balanced class weights N / (K n_c) over the K classes present in ``y`` (0 for an absent class);
    their mean over the images of ``y`` is 1."""
    y = np.asarray(y).astype(int).ravel()
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes, np.float64)
    weights[present] = y.size / (present.sum() * counts[present])
    return weights


def image_class_weights(y: np.ndarray, num_classes: int) -> np.ndarray:
    """Each image's balanced class weight (:func:`class_weights` of its class): the loss weights of ``"balanced"``
    and the draw weights of ``"sampled"``."""
    labels = np.asarray(y).astype(int).ravel()
    return class_weights(labels, num_classes)[labels]


def check_class_weight(mode: str) -> None:
    """Refuse a class balance other than :data:`CLASS_WEIGHTS` (balanced, sampled or none)."""
    if mode not in CLASS_WEIGHTS:
        raise ValueError(f"class_weight must be one of {', '.join(CLASS_WEIGHTS)}, got {mode!r}")


def sample_weights(y: np.ndarray, num_classes: int, mode: str = "balanced") -> np.ndarray | None:
    """One loss weight per image: the balanced class weight of its class for ``mode="balanced"``, else None
    (``"none"``; ``"sampled"`` balances the draws instead, :func:`draw_weights`)."""
    check_class_weight(mode)
    return image_class_weights(y, num_classes).astype(np.float32) if mode == "balanced" else None


def draw_weights(y: np.ndarray, num_classes: int, mode: str = "balanced") -> np.ndarray | None:
    """One draw weight per image for class-balanced sampling (``mode="sampled"``): the balanced class weight of
    its class, so that each draw picks every class present with the same probability 1/K; None otherwise (each
    epoch a permutation of the images)."""
    check_class_weight(mode)
    return image_class_weights(y, num_classes) if mode == "sampled" else None


def augment_image(image: np.ndarray, config=None, rng: np.random.Generator | None = None) -> np.ndarray:
    """Randomly transform one (rows, cols, channels) image in [0, 1] (see the module docstring), in
    NumPy/OpenCV (:func:`fetal_lib.transforms.augment.augment_image`).

    ``config``: an :class:`~fetal_lib.transforms.augment.AugmentConfig` (default: :func:`augment_config`);
    ``rng``: the generator of the draws (default: a fresh unseeded one).
    """

    return augment_one(np.asarray(image, np.float32), augment_config() if config is None else config,
                       np.random.default_rng() if rng is None else rng)


def training_batches(x: np.ndarray, y: np.ndarray, config: UsTrainConfig, num_classes: int, weights: np.ndarray | None = None,
                     augment: bool | None = None, workers: int = 1):
    """Shuffled (images, one-hot labels[, sample weights]) batches for any Keras backend (a
    :class:`fetal_lib.training.keras_batches.ShuffledBatches`).

    Reshuffled every epoch; every batch is full (``len(x) // batch_size`` batches), so a
    compiled step compiles once; with fewer images than ``batch_size``, one short batch.
    ``augment`` defaults to ``config.augment``; with ``config.mixup`` > 0 each batch is then mixed
    (:func:`fetal_lib.transforms.mixup.mixup_batch`: images, one-hot labels and weights alike). With
    ``config.class_weight == "sampled"`` each epoch draws its images class-balanced, with replacement
    (:func:`draw_weights`).
    """
    from fetal_lib.training.keras_batches import ShuffledBatches  # deferred: imports keras

    onehot = np.eye(num_classes, dtype=np.float32)[np.asarray(y).astype(int).ravel()]
    aug = None
    if config.augment if augment is None else augment:
        settings = config.augment_config()

        def aug(image, label, rng):
            return augment_image(image, settings, rng), label

    mix = None
    if config.mixup > 0:
        alpha = config.mixup

        def mix(images, labels, batch_weights, rng):
            return mixup_batch(images, labels, batch_weights, alpha, rng)

    return ShuffledBatches(np.asarray(x, np.float32), onehot, config.batch_size, config.seed, augment=aug, weights=weights,
                           workers=workers, mix=mix, draw_weights=draw_weights(y, num_classes, config.class_weight))


def check_arrays(config: UsTrainConfig, x: np.ndarray, y: np.ndarray, num_classes: int, what: str = "training") -> None:
    """Refuse arrays that do not fit the config: ValueError saying what is wrong."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 4 or tuple(x.shape[1:]) != config.input_shape:
        raise ValueError(f"{what} images must be (N, {', '.join(map(str, config.input_shape))}), got {x.shape}")
    if len(x) == 0:
        raise ValueError(f"no {what} images")
    if y.shape != (len(x),):
        raise ValueError(f"{what} labels must be ({len(x)},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what} labels must be integers, got {y.dtype}")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"{what} labels must be in 0..{num_classes - 1}, got {y.min()}..{y.max()}")


def predict_logits(model, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """(N, K) float64 logits of ``model`` for (N, rows, cols, channels) images."""
    return np.asarray(model.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0), np.float64)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Mean recall over the classes present in ``y_true`` (as :func:`fetal_lib.metrics.classification.classification_report`)."""

    return float(classification_report(np.asarray(y_true).ravel(), np.asarray(y_pred).ravel(), labels=list(range(num_classes)))["balanced_accuracy"])


def train(
    config: UsTrainConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    num_classes: int,
    progress: bool = False,
    verbose: int = 0,
    init_model=None,
) -> TrainResult:
    """Train one classifier; returns the float32 model with the weights of the epoch that
    ``config.checkpoint`` chooses by validation balanced accuracy (``history["val_balanced_accuracy"]``
    per epoch).

    Args:
        config: the run's settings.
        x_train, y_train: (N, rows, cols, channels) float32 images in [0, 1] and integer labels 0..K-1.
        x_val, y_val: the validation split, scored after every epoch.
        num_classes: K (a class may be absent from a split).
        progress: show a tqdm bar over epochs.
        verbose: Keras verbosity (0 silent, 2 one line per epoch).
        init_model: a trained network of the same architecture (another task's) whose weights start this one,
            except where their shapes differ (the classifier; :func:`fetal_lib.us.transfer.transfer_weights`);
            None: the architecture's own initialisation. With ``config.head_init == "probe"`` the classifier is
            then fitted as a linear probe of the started network's features (:mod:`fetal_lib.us.head_probe`).

    Raises:
        ValueError: arrays that do not fit the config or the class count (before anything is built); an
            ``init_model`` of another architecture.
    """

    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    check_arrays(config, x_train, y_train, num_classes, "training")
    check_arrays(config, x_val, y_val, num_classes, "validation")
    loop = config.loop_config()
    harness.configure(threads=loop.threads, seed=config.seed)
    model = build_model(config, num_classes, config.precision)
    if init_model is not None:
        from fetal_lib.us.transfer import transfer_weights

        transfer_weights(init_model, model)
    if config.head_init == "probe":
        from fetal_lib.us.head_probe import fit_probe_head

        probe = fit_probe_head(model, x_train, y_train, num_classes)
        if progress or verbose:  # on stderr: a command's stdout carries its result only
            print(f"{config.arch}: {probe.describe()}", file=sys.stderr)
    weights = sample_weights(y_train, num_classes, config.class_weight)

    batches = training_batches(x_train, y_train, config, num_classes, weights, workers=keras_backend.loader_workers())
    compile_model(model, config)
    x_val = np.asarray(x_val, np.float32)
    y_val = np.asarray(y_val).astype(int)

    def validate(m) -> float:
        return balanced_accuracy(y_val, predict_logits(m, x_val).argmax(axis=1), num_classes)

    return harness.fit(model, batches, max(1, len(x_train) // config.batch_size), loop, validate, samples_per_epoch=len(x_train),
                       metric=METRIC, rebuild_float32=lambda: build_model(config, num_classes, "float32", load_weights=False),
                       desc=f"train {config.arch}", progress=progress, verbose=verbose)
