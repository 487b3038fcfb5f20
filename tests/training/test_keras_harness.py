"""The Keras harness: the schedule callback, the precision policy, and the epoch loop's
checkpoint, cap and float32 hand-back, on tiny models with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

from fetal_lib.training.config import TrainConfig
from fetal_lib.training.keras import dtype_policy, fit, schedule_callback, uses_xla
from fetal_lib.training.schedule import cosine_lr


class FakeClock:
    """Seconds that pass only when a test says so (no wall clock, so no flakes on a busy machine)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fit_with(callback, n_batches: int, clock: FakeClock | None = None, seconds_per_batch: float = 0.0, first_batch_s: float = 0.0):
    import keras

    class Tick(keras.callbacks.Callback):  # runs after the schedule's own hooks
        def on_train_batch_begin(self, batch, logs=None):
            if clock is not None and batch == 0:
                clock.now += first_batch_s

        def on_train_batch_end(self, batch, logs=None):
            if clock is not None:
                clock.now += seconds_per_batch

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    x = np.zeros((n_batches, 2), np.float32)
    model.fit(x, x[:, :1], batch_size=1, epochs=1, verbose=0, callbacks=[callback, Tick()], shuffle=False)
    return float(model.optimizer.learning_rate.numpy())


@pytest.mark.slow
def test_step_progress_decays_over_the_planned_steps() -> None:
    callback = schedule_callback(1e-3, total_steps=4, time_budget_s=None, floor=0.05)
    last_lr = _fit_with(callback, n_batches=4)
    assert callback.progress == pytest.approx(1.0)
    assert last_lr == pytest.approx(cosine_lr(1e-3, 3 / 4, 0.05), rel=1e-5)  # lr set before the 4th batch


@pytest.mark.slow
def test_time_budget_finishes_the_decay_early() -> None:
    clock = FakeClock()
    callback = schedule_callback(1e-3, total_steps=10_000, time_budget_s=0.2, floor=0.05, clock=clock)
    last_lr = _fit_with(callback, n_batches=6, clock=clock, seconds_per_batch=0.06)
    assert callback.progress == pytest.approx(1.0)  # 5 x 0.06 s after the first step > 0.2 s
    assert math.isclose(last_lr, 0.05e-3, rel_tol=1e-5)


@pytest.mark.slow
def test_first_step_compile_time_is_not_charged_to_the_budget() -> None:
    """Tracing/XLA compilation happens in the first step; a slow first step must not use up the budget."""
    clock = FakeClock()
    callback = schedule_callback(1e-3, total_steps=10_000, time_budget_s=0.2, floor=0.05, clock=clock)
    _fit_with(callback, n_batches=3, clock=clock, first_batch_s=0.3, seconds_per_batch=0.01)
    # the clock starts when the first step ends: its 0.3 s are not counted, the 3 x 0.01 s ticked after are
    assert callback.progress == pytest.approx(0.03 / 0.2)


def test_dtype_policy_sets_and_restores_the_global_policy() -> None:
    import keras

    before = keras.mixed_precision.global_policy().name
    with dtype_policy("mixed_bfloat16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == before
    with pytest.raises(ValueError, match="precision must be one of"):
        with dtype_policy("float8"):
            pass
    assert keras.mixed_precision.global_policy().name == before


def _tiny(precision: str = "float32"):
    import keras

    with dtype_policy(precision):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="dense")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def _data():
    from fetal_lib.training.keras_batches import ShuffledBatches

    x = np.random.default_rng(0).normal(0, 1, (16, 2)).astype(np.float32)
    return ShuffledBatches(x, x[:, :1] * 2, batch_size=4, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint,expected_epoch", [("best", 2), ("last", 7), ("smoothed", 5)])
def test_fit_keeps_the_best_the_last_or_the_smoothed_best_epoch(checkpoint: str, expected_epoch: int) -> None:
    model = _tiny()
    values = [0.1, 0.9, 0.2, 0.6, 0.7, 0.65, 0.3]  # a spike at 2; the best mean of three neighbours at 5
    scores = iter(values)
    weights_by_epoch = []

    def validate(m) -> float:
        weights_by_epoch.append([w.copy() for w in m.get_weights()])
        return next(scores)

    result = fit(model, _data(), 4, TrainConfig(epochs=7, checkpoint=checkpoint), validate, metric="val_r")
    assert result.best_epoch == expected_epoch and result.epochs_run == 7 and not result.time_capped
    assert result.history["val_r"] == values and len(result.history["loss"]) == 7
    for got, want in zip(result.model.get_weights(), weights_by_epoch[expected_epoch - 1]):
        np.testing.assert_array_equal(got, want)
    assert result.device == "CPU"


@pytest.mark.slow
def test_fit_with_a_cap_says_it_was_cut_short() -> None:
    clock = FakeClock()

    def validate(m) -> float:
        clock.now += 0.25  # each epoch's validation takes 0.25 s by this clock
        return 0.0

    result = fit(_tiny(), _data(), 4, TrainConfig(epochs=50, time_budget_s=0.2), validate, clock=clock)
    assert result.time_capped and result.epochs_run == 2  # the schedule's clock starts after the first step


@pytest.mark.slow
def test_fit_in_bfloat16_hands_back_a_float32_model() -> None:
    model = _tiny("mixed_bfloat16")
    result = fit(model, _data(), 4, TrainConfig(epochs=2, precision="bfloat16"), lambda m: 0.0, rebuild_float32=_tiny)
    assert result.model.get_layer("dense").dtype_policy.name == "float32"
    np.testing.assert_array_equal(result.model.get_weights()[0], model.get_weights()[0])


def test_xla_only_in_float32() -> None:
    import keras

    assert uses_xla(TrainConfig(compile=True)) is (keras.backend.backend() == "tensorflow")  # XLA is TensorFlow's
    assert uses_xla(TrainConfig(compile=True, precision="bfloat16")) is False
    assert uses_xla(TrainConfig(compile=False)) is False


def test_config_refuses_unresolved_or_unknown_settings() -> None:
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        TrainConfig(precision="auto")
    with pytest.raises(ValueError, match="checkpoint"):
        TrainConfig(checkpoint="middle")
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)


def test_train_epoch_runs_each_batch_once_in_order_with_the_schedule_and_returns_the_mean_loss() -> None:
    """model.fit (on TensorFlow fed on demand: tests/training/test_keras_feed.py): every batch once, in order,
    sample weights passed, the schedule's steps counted, and the epoch's mean loss."""
    import keras

    from fetal_lib.training.keras import schedule_callback, train_epoch
    from fetal_lib.training.keras_batches import ShuffledBatches

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((12, 4), dtype=np.float32)
    y = rng.random((12, 1), dtype=np.float32)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")  # learning rate 0: the loss of fixed weights
    batches = ShuffledBatches(x, y, 4, seed=0, weights=np.ones(12))
    batches.set_epoch(0)
    schedule = schedule_callback(0.0, total_steps=6, time_budget_s=None, constant=True)
    loss = train_epoch(model, batches, schedule)
    expected = float(np.mean([np.mean((model.predict(batches[i][0], verbose=0) - batches[i][1]) ** 2) for i in range(len(batches))]))
    assert loss == pytest.approx(expected, rel=1e-4) and schedule.step == len(batches) == 3
    assert schedule.progress == pytest.approx(0.5)  # 3 of 6 steps
