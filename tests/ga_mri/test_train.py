"""Training chapter 4's regressor: inputs refused before building; a tiny network learns age from brain size."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

pytest.importorskip("keras")

from fetal_lib.ga_mri.train import GaTrainConfig, predict_days, train  # noqa: E402
from fetal_lib.networks.keras.vgg_attention import PLANES  # noqa: E402

SMALL = {"widths": [4, 4, 8, 8, 8], "batch_norm": True, "dense": 8, "dropout": 0.0}


def _discs(ga_days: np.ndarray, size: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """A bright disc per plane whose radius grows with age (a phantom brain)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    out = {}
    for p in PLANES:
        radius = 4 + 10 * (np.asarray(ga_days) - 140) / 140
        img = (np.hypot(yy, xx)[None] <= radius[:, None, None]).astype(np.float32)
        out[p] = (img + rng.normal(0, 0.05, img.shape)).astype(np.float32)[..., None]
    return out


def test_train_refuses_inputs_that_do_not_fit_before_building() -> None:
    config = GaTrainConfig(options=SMALL, size=32, epochs=1)
    good = _discs(np.array([150.0, 200.0]))
    with pytest.raises(ValueError, match="lack the sagittal"):
        train(config, {p: good[p] for p in PLANES[:2]}, np.array([150.0, 200.0]))
    with pytest.raises(ValueError, match=r"\(N, 32, 32, 1\)"):
        train(config, {p: good[p][:, :16] for p in PLANES}, np.array([150.0, 200.0]))
    with pytest.raises(ValueError, match="ages"):
        train(config, good, np.array([150.0]))
    with pytest.raises(ValueError, match="precision"):
        GaTrainConfig(precision="auto")
    with pytest.raises(ValueError, match="options"):
        GaTrainConfig(options={"input_shape": (32, 32, 1)})


@pytest.mark.slow
def test_a_tiny_network_learns_age_from_brain_size() -> None:
    rng = np.random.default_rng(0)
    y = rng.uniform(140, 280, 96)
    x = _discs(y)
    config = GaTrainConfig(options=SMALL, size=32, epochs=25, batch_size=8, learning_rate=3e-3, huber_delta_days=1.0,
                           augment=True, seed=0)
    fit = train(config, x, y)
    assert fit.epochs_run == 25 and fit.best_epoch == 25  # the last epoch is kept
    y_new = np.linspace(150, 270, 24)
    err = np.mean(np.abs(predict_days(fit.model, _discs(y_new, seed=1)) - y_new))
    assert err < 0.5 * np.mean(np.abs(y_new - y.mean()))  # well below predicting the training mean


def test_the_learning_curve_is_scored_on_a_fixed_subset_of_the_training_samples() -> None:
    from fetal_lib.ga_mri.train import CURVE_SAMPLES, curve_subset

    small = curve_subset(10, seed=0)
    assert small.tolist() == list(range(10))  # fewer samples than the subset: all of them
    big = curve_subset(310, seed=3)
    assert big.size == CURVE_SAMPLES and len(set(big.tolist())) == CURVE_SAMPLES and big.min() >= 0 and big.max() < 310
    assert (np.diff(big) > 0).all() and (curve_subset(310, seed=3) == big).all()  # sorted, and the same for the same seed


@pytest.mark.slow
def test_a_second_training_reuses_the_compiled_network_and_trains_what_a_new_one_trains() -> None:
    """Chapter 4 trains one network 13 times: the compiled network is restarted (its training step traced once),
    each result is a network of its own, and the weights are those of a network built, compiled and trained anew."""
    import keras

    from fetal_lib.ga_mri import train as ga_train
    from fetal_lib.training import keras as harness

    y = np.random.default_rng(0).uniform(140, 280, 20)
    x = _discs(y)
    config = GaTrainConfig(options={**SMALL, "dropout": 0.5}, size=32, epochs=2, batch_size=8, learning_rate=3e-3, seed=0)
    ga_train.COMPILED.clear()
    first = train(config, x, y)
    kept = [np.array(w) for w in first.model.get_weights()]
    second = train(config, x, y)
    assert second.model is not first.model
    if not ga_train.reuses():  # Keras on torch: nothing to trace, a new network each time (an unseeded dropout draws
        assert ga_train.COMPILED.model is None  # from torch's global generator, so two trainings in one process differ)
        return
    assert ga_train.COMPILED.reused == 1 and ga_train.COMPILED.model not in (first.model, second.model)
    for got, want in zip(first.model.get_weights(), kept):  # the first result is not restarted by the second training
        np.testing.assert_array_equal(got, want)
    for got, want in zip(second.model.get_weights(), kept):  # the same training twice: the same weights
        np.testing.assert_array_equal(got, want)

    # the independent reference: built, compiled and trained by the harness directly (the code before the reuse)
    loop = config.loop_config()
    harness.configure(threads=loop.threads, seed=config.seed)
    model = ga_train.build_model(config, config.precision)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=keras.losses.Huber(delta=config.huber_delta_days),
                  jit_compile=harness.uses_xla(loop))
    ref = harness.fit(model, ga_train.training_batches(x, y, config), len(y) // config.batch_size, loop, lambda m: 0.0)
    for got, want in zip(ref.model.get_weights(), kept):
        np.testing.assert_array_equal(got, want)
