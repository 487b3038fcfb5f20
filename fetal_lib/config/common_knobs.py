"""The knobs several chapters declare, defined once: each factory returns the :class:`Knob` with its
type and unit fixed, and the meaning a chapter gives it (a default where chapters say the same).

A chapter's ``spec.py`` calls them in its own order, under its own names (``name=`` for a prefixed
knob such as ``seg_epochs``); what differs per chapter (the meaning, the unit of a batch) stays there.
"""

from __future__ import annotations

from fetal_lib.config.chapter_spec import Knob
from fetal_lib.config.options import DEVICE_CHOICES
from fetal_lib.training.precision import choices as precision_choices

# What ``auto`` means for each framework's ``precision`` knob (the torch one autocasts).
PRECISION_MEANINGS = {
    "keras": "training arithmetic: auto (bfloat16 only where the device computes it natively and, on a CPU, "
             "a probe measured it faster), float32 or mixed_bfloat16",
    "torch": "training arithmetic: auto (bfloat16 autocast only where the device computes it natively and, "
             "on a CPU, a probe measured it faster), float32 or bfloat16",
}
TIME_BUDGET_MEANING = "optional wall-time cap on top of the epochs; 0 is off (the published profiles leave it off)"


def archs(meaning: str) -> Knob:
    """``archs``: the networks a chapter trains (comma-separated registry names)."""
    return Knob("archs", str, meaning)


def arch_options(meaning: str) -> Knob:
    """``arch_options``: the networks' constructor options (a mapping)."""
    return Knob("arch_options", dict, meaning)


def input_rows(meaning: str, name: str = "input_rows") -> Knob:
    """Rows of a network's input, in pixels."""
    return Knob(name, int, meaning, "pixels")


def input_cols(meaning: str, name: str = "input_cols") -> Knob:
    """Columns of a network's input, in pixels."""
    return Knob(name, int, meaning, "pixels")


def channels(name: str, meaning: str) -> Knob:
    """A network's width (channels at its first level)."""
    return Knob(name, int, meaning, "channels")


def levels(name: str, meaning: str) -> Knob:
    """A network's depth (resolution levels)."""
    return Knob(name, int, meaning, "levels")


def epochs(meaning: str, name: str = "epochs") -> Knob:
    """A training budget, in epochs."""
    return Knob(name, int, meaning, "epochs")


def batch_size(meaning: str = "training images per step", unit: str = "images", name: str = "batch_size") -> Knob:
    """Training samples per step (``unit``: what one sample is: images, crops, triples)."""
    return Knob(name, int, meaning, unit)


def learning_rate(meaning: str = "the optimiser's learning rate", name: str = "learning_rate") -> Knob:
    """The optimiser's learning rate (no unit)."""
    return Knob(name, float, meaning, "")


def time_budget_s(meaning: str = TIME_BUDGET_MEANING, name: str = "time_budget_s") -> Knob:
    """An optional wall-time cap on a training, in s (0 is off)."""
    return Knob(name, float, meaning, "s")


def augment(meaning: str, name: str = "augment") -> Knob:
    """Whether training samples are augmented (``meaning`` says how)."""
    return Knob(name, bool, meaning)


def precision(framework: str, meaning: str | None = None, name: str = "precision") -> Knob:
    """The training arithmetic of ``framework`` (``keras`` or ``torch``): its choices from
    :func:`fetal_lib.training.precision.choices`."""
    return Knob(name, str, meaning or PRECISION_MEANINGS[framework], "", precision_choices(framework))


def device() -> Knob:
    """``device``: where a PyTorch network trains and predicts (auto, cpu or cuda)."""
    return Knob("device", str, "where the networks train and predict: auto (CUDA when torch sees a GPU, else the CPU), cpu or cuda",
                "", DEVICE_CHOICES)


def jit_compile(meaning: str = "XLA-compiled training step") -> Knob:
    """``jit_compile``: whether Keras compiles the training step with XLA."""
    return Knob("jit_compile", bool, meaning)


def val_every(meaning: str, name: str = "val_every") -> Knob:
    """How often (in epochs) a training is scored on validation."""
    return Knob(name, int, meaning, "epochs")


def tta(meaning: str) -> Knob:
    """``tta``: the test-time views averaged (comma-separated words)."""
    return Knob("tta", str, meaning)


def threshold_grid() -> Knob:
    """``threshold_grid``: the probability thresholds tried on validation."""
    return Knob("threshold_grid", str, "probability thresholds tried on the validation split, comma-separated")


def max_images() -> Knob:
    """``max_images``: a cap on the training images (0: every one)."""
    return Knob("max_images", int, "training images used; 0 means every one", "images")


def folds(name: str, meaning: str) -> Knob:
    """A number of cross-validation folds."""
    return Knob(name, int, meaning, "folds")


def n_bootstrap() -> Knob:
    """``n_bootstrap``: resamples of every confidence interval."""
    return Knob("n_bootstrap", int, "bootstrap resamples of every confidence interval", "resamples")


def save(name: str, meaning: str) -> Knob:
    """``save_model`` or ``save_models``: whether the chapter writes its deployed models (``meaning``: where)."""
    return Knob(name, bool, meaning)
