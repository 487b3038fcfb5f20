"""TensorFlow's on-demand feed (fetal_lib.training.keras_backend.on_demand_dataset): every batch once, in order, made when the step
asks for it, and the same weights as ``model.fit`` on the PyDataset itself, bit for bit (float32, float32 with
XLA, mixed_bfloat16; sample weights, augmentation, a dict of inputs)."""

from __future__ import annotations

import numpy as np
import pytest

from fetal_lib.training.keras_backend import SPEC_BATCHES, fed_on_demand

pytestmark = pytest.mark.keras_backends  # the TensorFlow-only tests skip on torch


class _Batches:
    def __init__(self, workers: int = 1, use_multiprocessing: bool = False) -> None:
        self.workers, self.use_multiprocessing = workers, use_multiprocessing

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        return np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32)


def test_only_batches_made_in_the_training_thread_are_fed_on_demand() -> None:
    assert fed_on_demand(_Batches())
    assert not fed_on_demand(_Batches(workers=2))  # a GPU's loader threads keep Keras's own feed
    assert not fed_on_demand(_Batches(use_multiprocessing=True))
    assert not fed_on_demand(iter([]))  # not a sequence: model.fit takes it as it is


tensorflow_only = pytest.mark.skipif("__import__('fetal_lib.training.keras_backend', fromlist=['name']).name() != 'tensorflow'",
                                     reason="the on-demand feed is TensorFlow's (on torch, fit takes the PyDataset)")


@tensorflow_only
def test_element_spec_has_a_dynamic_batch_axis_and_merges_dimensions_that_differ() -> None:
    from fetal_lib.training.keras_backend import element_spec

    a = ({"axial": np.zeros((8, 4, 5, 1), np.float32)}, np.zeros((8, 1), np.float32), np.ones(8, np.float32))
    b = ({"axial": np.zeros((8, 4, 6, 1), np.float32)}, np.zeros((8, 1), np.float32), np.ones(8, np.float32))
    spec = element_spec([a, b])
    assert spec[0]["axial"].shape.as_list() == [None, 4, None, 1]
    assert spec[1].shape.as_list() == [None, 1] and spec[2].shape.as_list() == [None]
    assert spec[1].dtype.name == "float32"


@tensorflow_only
def test_on_demand_dataset_yields_every_batch_once_in_order_without_reading_ahead() -> None:
    import keras

    from fetal_lib.training.keras import train_epoch

    made: list[int] = []
    seen_at_step: list[int] = []

    class Counting(keras.utils.PyDataset):
        def __len__(self) -> int:
            return 6

        def __getitem__(self, index: int):
            made.append(index)
            return np.full((2, 3), index, np.float32), np.full((2, 1), index, np.float32)

    class Watch(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen_at_step.append(len(made))

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    train_epoch(model, Counting(), schedule=Watch())
    assert made[SPEC_BATCHES:] == list(range(6))  # after the batches read for the element spec: each once, in order
    # no read-ahead: when step k begins, the spec's batches and at most batches 0..k have been made
    assert all(n <= SPEC_BATCHES + k + 1 for k, n in enumerate(seen_at_step)) and len(seen_at_step) == 6


def _conv_net(policy: str, xla: bool):
    import keras

    from fetal_lib.training.keras import dtype_policy

    keras.utils.set_random_seed(0)
    with dtype_policy(policy):
        image = keras.Input((12, 16, 1), name="image")
        extra = keras.Input((3,), name="extra")
        h = keras.layers.Conv2D(6, 3, padding="same", use_bias=False)(image)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.Activation("relu")(h)
        h = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        h = keras.layers.Concatenate()([h, extra])
        out = keras.layers.Dense(1, dtype="float32")(h)
        model = keras.Model({"image": image, "extra": extra}, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=xla)
    return model


@pytest.mark.slow
@tensorflow_only
@pytest.mark.parametrize("policy, xla", [("float32", False), ("float32", True), ("mixed_bfloat16", False)])
def test_train_epoch_gives_the_weights_of_fit_on_the_py_dataset_bit_for_bit(policy: str, xla: bool) -> None:
    from fetal_lib.training.keras import schedule_callback, train_epoch
    from fetal_lib.training.keras_batches import ShuffledBatches

    rng = np.random.default_rng(0)
    inputs = {"image": rng.random((20, 12, 16, 1), dtype=np.float32), "extra": rng.random((20, 3), dtype=np.float32)}
    targets = rng.random((20, 1), dtype=np.float32)

    def augment(sample, target, r):
        return {"image": sample["image"] * r.uniform(0.8, 1.2), "extra": sample["extra"]}, target

    def trained(feed_by_train_epoch: bool) -> list[np.ndarray]:
        model = _conv_net(policy, xla)
        batches = ShuffledBatches(inputs, targets, 4, seed=0, augment=augment, weights=np.linspace(0.5, 2.0, 20))
        schedule = schedule_callback(1e-2, total_steps=3 * len(batches), time_budget_s=None)
        for epoch in range(3):
            batches.set_epoch(epoch)
            if feed_by_train_epoch:
                train_epoch(model, batches, schedule, epoch)
            else:
                model.fit(batches, epochs=epoch + 1, initial_epoch=epoch, verbose=0, shuffle=False, callbacks=[schedule])
        return model.get_weights()

    for got, want in zip(trained(True), trained(False)):
        np.testing.assert_array_equal(got, want)
