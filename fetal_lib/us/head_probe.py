"""A network's classifier fitted as a linear probe on its starting features, before fine-tuning (issue 50).

A network started from another task's trained network (``task_init``) keeps every layer but the
classifier, which starts random. Fine-tuning everything at once then sends the random head's large
early gradients into the copied features. LP-FT (Kumar et al., ICLR 2022, "Fine-tuning can distort
pretrained features and underperform out-of-distribution") first fits the head alone on the frozen
features (a linear probe), then fine-tunes the whole network from there.

Here, ``task_head_init: probe`` fits the probe in closed form. The training images are run through
the started network once, without augmentation, up to the classifier's input (the pooled features).
A multinomial logistic regression (scikit-learn, L2 with C = :data:`PROBE_C`, balanced class weights
as the loss's) is fitted to them. Its coefficients and intercepts become the classifier's kernel and
bias, so that the network's logits at epoch 0 are the probe's. Training then goes on as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The per-task values of ``task_head_init``: the classifier as the architecture builds it, or a linear probe.
HEAD_INITS = ("random", "probe")
#: The probe's inverse L2 strength: scikit-learn's default, fixed before any run (not tuned).
PROBE_C = 1.0
#: The layer whose input is the probe's features and whose weights it sets (every classifier here names it so).
CLASSIFIER = "logits"


@dataclass(frozen=True)
class ProbeReport:
    """What :func:`fit_probe_head` did."""

    images: int
    features: int
    classes: tuple[int, ...]  # the class indices whose kernel columns and biases the probe set (those in the labels)
    balanced_accuracy: float  # the probe's own, on the images it was fitted on (how separable the features are)

    def describe(self) -> str:
        return (f"classifier fitted as a linear probe on {self.features} features of {self.images} images "
                f"(balanced accuracy on them {self.balanced_accuracy:.3f})")


def feature_model(model, layer: str = CLASSIFIER):
    """A Keras model from ``model``'s inputs to the input of its layer ``layer`` (the classifier's features)."""
    import keras

    return keras.Model(model.inputs, model.get_layer(layer).input, name=f"{model.name}_features")


def features(model, x: np.ndarray, batch_size: int = 32, layer: str = CLASSIFIER) -> np.ndarray:
    """(N, D) float64 features of ``model`` at its classifier's input for (N, rows, cols, channels) images."""
    out = feature_model(model, layer).predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0)
    return np.asarray(out, np.float64).reshape(len(x), -1)


def probe_weights(feats: np.ndarray, y: np.ndarray, num_classes: int, c: float = PROBE_C) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """The (D, K) kernel columns and (K,) biases of a linear classifier fitted to ``feats`` and labels ``y``, for the
    classes present in ``y``, and those classes.

    A multinomial logistic regression with balanced class weights; with two classes present, its one logit
    split as -z/2, +z/2, whose softmax is the regression's sigmoid.

    Raises:
        ValueError: fewer than two classes in ``y``, or labels outside 0..num_classes-1.
    """
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y).astype(int).ravel()
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must be in 0..{num_classes - 1}, got {y.min()}..{y.max()}")
    present = tuple(int(k) for k in np.unique(y))
    if len(present) < 2:
        raise ValueError(f"a linear probe needs at least two classes among the training images, got {list(present)}")
    reg = LogisticRegression(C=float(c), class_weight="balanced", max_iter=5000)
    reg.fit(np.asarray(feats, np.float64), y)
    coef, intercept = np.asarray(reg.coef_), np.asarray(reg.intercept_)
    if len(present) == 2:
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    return coef.T, intercept, present


def fit_probe_head(model, x: np.ndarray, y: np.ndarray, num_classes: int, batch_size: int = 32) -> ProbeReport:
    """Set ``model``'s classifier (its layer :data:`CLASSIFIER`) to a linear probe of its features on images ``x``
    with labels ``y`` (:func:`probe_weights`); a class absent from ``y`` keeps its column as built.

    Raises:
        ValueError: fewer than two classes in ``y``; a classifier whose kernel is not (features, num_classes).
    """
    from fetal_lib.metrics.classification import classification_report

    feats = features(model, x, batch_size)
    dense = model.get_layer(CLASSIFIER)
    kernel, bias = (np.array(w) for w in dense.get_weights())
    if kernel.shape != (feats.shape[1], num_classes):
        raise ValueError(f"{model.name}: classifier kernel {kernel.shape}, expected ({feats.shape[1]}, {num_classes})")
    w, b, present = probe_weights(feats, y, num_classes)
    kernel[:, list(present)] = w
    bias[list(present)] = b
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    predicted = (feats @ kernel + bias).argmax(axis=1)
    report = classification_report(np.asarray(y).astype(int).ravel(), predicted, labels=list(range(num_classes)))
    return ProbeReport(len(feats), feats.shape[1], present, float(report["balanced_accuracy"]))
