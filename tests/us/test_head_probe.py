"""A classifier fitted as a linear probe of its network's starting features (fetal_lib.us.head_probe), against
scikit-learn's logistic regression."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

pytestmark = pytest.mark.keras_backends  # also run on KERAS_BACKEND=torch by `make test` (a GPU machine's backend)

from sklearn.linear_model import LogisticRegression  # noqa: E402

from fetal_lib.networks.keras import create  # noqa: E402
from fetal_lib.us import head_probe  # noqa: E402
from fetal_lib.us.train import UsTrainConfig  # noqa: E402


def _images(n: int = 45, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.random((n, 24, 24, 1)).astype(np.float32) * 0.5
    for k in range(classes):  # each class a brighter band of its own rows
        x[y == k, 6 * k:6 * k + 6] += 0.5
    return x, y


def _net(classes: int, seed: int = 0):
    keras.utils.set_random_seed(seed)
    return create("plain_cnn", input_shape=(24, 24, 1), num_classes=classes, name="us_plain_cnn", widths=[4, 8])


def _reference(feats: np.ndarray, y: np.ndarray) -> LogisticRegression:
    return LogisticRegression(C=head_probe.PROBE_C, class_weight="balanced", max_iter=5000).fit(feats, y)


def test_the_classifier_becomes_scikit_learns_logistic_regression_on_the_features():
    x, y = _images()
    model = _net(3)
    feats = head_probe.features(model, x)
    before = [w.copy() for layer in model.layers[:-1] for w in layer.get_weights()]
    report = head_probe.fit_probe_head(model, x, y, 3)
    ref = _reference(feats, y)
    logits = np.asarray(model.predict(x, verbose=0), np.float64)
    np.testing.assert_allclose(logits, ref.decision_function(feats), atol=1e-4)
    assert (report.images, report.features, report.classes) == (45, feats.shape[1], (0, 1, 2))
    from sklearn.metrics import balanced_accuracy_score
    assert report.balanced_accuracy == pytest.approx(balanced_accuracy_score(y, ref.predict(feats)))
    after = [w for layer in model.layers[:-1] for w in layer.get_weights()]
    assert len(before) == len(after) > 0
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)  # only the classifier changed
    assert "linear probe on" in report.describe()


def test_two_classes_split_the_one_logit_so_that_the_softmax_is_the_regressions_probability():
    x, y = _images(classes=2)
    model = _net(2)
    feats = head_probe.features(model, x)
    head_probe.fit_probe_head(model, x, y, 2)
    logits = np.asarray(model.predict(x, verbose=0), np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, _reference(feats, y).predict_proba(feats), atol=1e-4)


def test_a_class_absent_from_the_labels_keeps_its_column_and_too_few_classes_are_refused():
    x, y = _images(classes=3)
    keep = y != 1
    model = _net(3)
    kernel, bias = (w.copy() for w in model.layers[-1].get_weights())
    report = head_probe.fit_probe_head(model, x[keep], y[keep], 3)
    assert report.classes == (0, 2)
    new_kernel, new_bias = model.layers[-1].get_weights()
    np.testing.assert_array_equal(new_kernel[:, 1], kernel[:, 1])
    assert new_bias[1] == bias[1] and not np.allclose(new_kernel[:, 0], kernel[:, 0])
    with pytest.raises(ValueError, match="at least two classes"):
        head_probe.fit_probe_head(_net(3), x[y == 0], y[y == 0], 3)


@pytest.mark.slow
def test_train_fits_the_probe_after_the_copied_weights_and_only_when_asked(monkeypatch):
    from fetal_lib.us import train as train_mod

    calls = []
    real = head_probe.fit_probe_head

    def spy(model, x, y, num_classes, batch_size=32):
        calls.append((model.layers[1].get_weights()[0].copy(), len(x), num_classes))
        return real(model, x, y, num_classes, batch_size)

    monkeypatch.setattr(head_probe, "fit_probe_head", spy)
    x, y = _images()
    source = create("plain_cnn", input_shape=(24, 24, 1), num_classes=4, name="us_plain_cnn", widths=[4, 8])
    config = UsTrainConfig(arch="plain_cnn", options={"widths": [4, 8]}, input_size=(24, 24), epochs=1, batch_size=8,
                           augment=False, head_init="probe")
    train_mod.train(config, x, y, x[:9], y[:9], 3, init_model=source)
    assert len(calls) == 1 and calls[0][1:] == (45, 3)
    np.testing.assert_array_equal(calls[0][0], source.layers[1].get_weights()[0])  # probed on the copied features
    train_mod.train(UsTrainConfig(**{**config.to_dict(), "input_size": (24, 24), "head_init": "random"}), x, y, x[:9], y[:9], 3)
    assert len(calls) == 1
    with pytest.raises(ValueError, match="head_init must be one of random, probe"):
        UsTrainConfig(head_init="linear")


def test_task_head_init_reaches_the_train_config_and_the_cv_recipe():
    from fetal_lib.us import cross_validation as cv
    from fetal_lib.us import pipeline

    settings = {**pipeline.profile_settings("smoke"), "task_head_init": {"brain_planes": "probe"}}
    brain = pipeline.task_settings(settings, "brain_planes")
    assert brain["head_init"] == "probe" and pipeline.task_settings(settings, "planes")["head_init"] == "random"
    assert pipeline.train_config(brain, "plain_cnn").head_init == "probe"
    for bad in ("linear", True, 1):
        with pytest.raises(ValueError, match="brain_planes: the classifier's start must be one of random, probe"):
            pipeline.task_head_init({**settings, "task_head_init": {"brain_planes": bad}}, "brain_planes")
    # a CV written before the knob existed started its classifiers as built
    old = {k: v for k, v in brain.items() if k != "head_init"}
    doc = {"provenance": {"profile": "smoke", "parameters": old}}
    assert cv.recipe_differences(doc, pipeline.task_settings({**settings, "task_head_init": {}}, "brain_planes"), "smoke") == []
    assert cv.recipe_differences(doc, brain, "smoke") == ["head_init 'random' (this run: 'probe')"]
