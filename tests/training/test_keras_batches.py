"""Training batches for Keras on any backend (fetal_lib.training.keras_batches): order, seeding, inputs."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`


def _ids(batches) -> list[list[int]]:
    return [batches[i][0][:, 0].astype(int).tolist() for i in range(len(batches))]


def test_each_epoch_is_a_seeded_permutation_of_full_batches():
    from fetal_lib.training.keras_batches import ShuffledBatches

    x = np.arange(10, dtype=np.float32)[:, None]
    batches = ShuffledBatches(x, x, batch_size=4, seed=3)
    assert len(batches) == 2  # 10 // 4 full batches; the 2 left over differ between epochs
    epoch0 = _ids(batches)
    assert len({i for b in epoch0 for i in b}) == 8
    batches.set_epoch(1)
    epoch1 = _ids(batches)
    assert epoch1 != epoch0
    again = ShuffledBatches(x, x, batch_size=4, seed=3)
    assert _ids(again) == epoch0  # same seed and epoch: same order
    again.on_epoch_end()  # Keras's calls are ignored: the loop sets the epoch
    assert _ids(again) == epoch0
    again.set_epoch(1)
    assert _ids(again) == epoch1
    assert _ids(ShuffledBatches(x, x, batch_size=4, seed=4)) != epoch0
    small = ShuffledBatches(x[:3], x[:3], batch_size=4, seed=0)
    assert len(small) == 1 and small[0][0].shape == (3, 1)  # fewer samples than a batch: one short batch
    with pytest.raises(IndexError):
        small[1]


def test_augmentation_draws_are_seeded_by_seed_epoch_and_batch():
    from fetal_lib.training.keras_batches import ShuffledBatches

    x = np.zeros((8, 2), np.float32)

    def noise(sample, target, rng):
        return sample + rng.standard_normal(sample.shape).astype(np.float32), target

    a = ShuffledBatches(x, x, 4, seed=0, augment=noise)
    b = ShuffledBatches(x, x, 4, seed=0, augment=noise)
    np.testing.assert_array_equal(a[1][0], b[1][0])  # repeatable, in any order of access
    assert not np.allclose(a[0][0], a[1][0])
    first = a[0][0].copy()
    a.set_epoch(1)
    assert not np.allclose(a[0][0], first)  # new draws every epoch
    np.testing.assert_array_equal(a[0][1], 0)  # targets untouched by this augmentation


def test_several_named_inputs_and_weights_stay_together():
    from fetal_lib.training.keras_batches import ShuffledBatches

    n = 9
    inputs = {"axial": np.arange(n, dtype=np.float32)[:, None], "coronal": 10 + np.arange(n, dtype=np.float32)[:, None]}
    y = 100 + np.arange(n, dtype=np.float32)
    w = 1000 + np.arange(n, dtype=np.float32)
    batches = ShuffledBatches(inputs, y, 3, seed=1, weights=w)
    for i in range(len(batches)):
        x, t, wb = batches[i]
        ids = x["axial"][:, 0]
        np.testing.assert_array_equal(x["coronal"][:, 0], 10 + ids)
        np.testing.assert_array_equal(t, 100 + ids)
        np.testing.assert_array_equal(wb, 1000 + ids)
    with pytest.raises(ValueError, match="different sample counts"):
        ShuffledBatches({"a": np.zeros((3, 1)), "b": np.zeros((4, 1))}, np.zeros(3), 2, 0)
    with pytest.raises(ValueError, match="2 targets for 3 samples"):
        ShuffledBatches(np.zeros((3, 1)), np.zeros(2), 2, 0)


@pytest.mark.slow
def test_the_harness_trains_the_same_model_twice_from_the_same_seed():
    """The loop sets each epoch's order and draws, so a run repeats exactly on this backend."""
    import keras

    from fetal_lib.training import keras as harness
    from fetal_lib.training.config import TrainConfig
    from fetal_lib.training.keras_batches import ShuffledBatches

    rng = np.random.default_rng(0)
    x = rng.random((12, 6, 6, 1)).astype(np.float32)
    y = (x > 0.5).astype(np.float32)

    def noise(sample, target, r):
        return np.clip(sample + 0.1 * r.standard_normal(sample.shape).astype(np.float32), 0, 1), target

    def run():
        harness.configure(threads=1, seed=0)
        model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")])
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
        batches = ShuffledBatches(x, y, 4, seed=0, augment=noise)
        config = TrainConfig(epochs=3, learning_rate=1e-2, threads=1, seed=0)
        result = harness.fit(model, batches, len(batches), config, lambda m: 0.0)
        return result.model.get_weights(), batches.epoch

    (w1, e1), (w2, e2) = run(), run()
    assert e1 == e2 == 2
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_sampled_batches_follow_the_same_order_and_seeding_rules():
    from fetal_lib.training.keras_batches import SampledBatches, ShuffledBatches

    def make(i, rng):
        return np.full((2, 2, 1), float(i), np.float32), np.full((2, 2, 1), rng.random(), np.float32)

    batches = SampledBatches(10, make, batch_size=4, seed=7)
    shuffled = ShuffledBatches(np.arange(10, dtype=np.float32)[:, None], np.zeros((10, 1)), batch_size=4, seed=7)
    assert len(batches) == 2
    for epoch in (0, 3):
        batches.set_epoch(epoch)
        shuffled.set_epoch(epoch)
        x, y = batches[1]
        np.testing.assert_array_equal(x[:, 0, 0, 0], shuffled[1][0][:, 0])  # the same permutation
        np.testing.assert_array_equal(y, batches[1][1])  # the same draws for (seed, epoch, batch)
    with pytest.raises(IndexError):
        batches[2]
    with pytest.raises(ValueError, match="no samples"):
        SampledBatches(0, make, 4, 0)


@pytest.mark.slow
def test_the_harness_sets_the_epoch_of_sampled_batches_too():
    """Each epoch draws its own order and samples (chapter 1's second stage: new jitter every epoch)."""
    import keras

    from fetal_lib.training import keras as harness
    from fetal_lib.training.config import TrainConfig
    from fetal_lib.training.keras_batches import SampledBatches

    drawn: list[float] = []

    def make(i, rng):
        value = rng.random()
        drawn.append(value)
        return np.full((4,), value, np.float32), np.zeros((1,), np.float32)

    batches = SampledBatches(8, make, batch_size=4, seed=0)
    harness.configure(threads=1, seed=0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    harness.fit(model, batches, len(batches), TrainConfig(epochs=3, learning_rate=0.0, threads=1, seed=0), lambda m: 0.0)
    assert batches.epoch == 2
    expected = set()
    for epoch in range(3):
        batches.set_epoch(epoch)
        expected |= {float(v) for i in range(len(batches)) for v in batches[i][0][:, 0]}
    assert expected <= {float(np.float32(v)) for v in drawn} and len(expected) == 3 * 8  # three epochs' draws, all different
    harness.train_epoch(model, batches, epoch=5)  # where the epoch is set: every caller of train_epoch (fetal bench too)
    assert batches.epoch == 5


def test_a_batch_mix_runs_after_augmentation_on_the_batch_and_its_weights_with_the_batch_generator():
    from fetal_lib.training.keras_batches import ShuffledBatches

    x = np.arange(8, dtype=np.float32)[:, None]
    w = np.arange(1, 9, dtype=np.float32)
    seen = []

    def plus_one(sample, target, rng):
        return sample + 1, target

    def reverse(inputs, targets, weights, rng):
        seen.append(inputs.copy())
        return inputs[::-1], targets[::-1] * 0, weights[::-1] + float(rng.integers(100, 101))

    batches = ShuffledBatches(x, x, 4, seed=0, augment=plus_one, weights=w, mix=reverse)
    plain = ShuffledBatches(x, x, 4, seed=0, weights=w)
    inputs, targets, weights = batches[0]
    np.testing.assert_array_equal(seen[0], plain[0][0] + 1)  # the mix sees the augmented batch
    np.testing.assert_array_equal(inputs, (plain[0][0] + 1)[::-1])
    np.testing.assert_array_equal(targets, 0)
    np.testing.assert_array_equal(weights, plain[0][2][::-1] + 100)
    unweighted = ShuffledBatches(x, x, 4, seed=0, mix=lambda i, t, ww, rng: (i, t, ww))
    assert len(unweighted[0]) == 2  # no weights in, none out


def test_draw_weights_make_each_epoch_a_seeded_draw_with_replacement_in_proportion_to_them():
    from scipy.stats import chisquare

    from fetal_lib.training.keras_batches import ShuffledBatches

    # 30 samples of class 0, 10 of class 1, 5 of class 2 (the sample's class is its input); weights 1/n_c
    classes = np.repeat([0, 1, 2], [30, 10, 5]).astype(np.float32)
    weights = np.array([1 / 30, 1 / 10, 1 / 5])[classes.astype(int)]
    x = np.arange(len(classes), dtype=np.float32)[:, None]
    drawn = []
    for epoch in range(60):
        batches = ShuffledBatches(x, x, batch_size=5, seed=1, draw_weights=weights)
        batches.set_epoch(epoch)
        assert len(batches) == 9  # as many batches as a permutation gives
        ids = [i for b in _ids(batches) for i in b]
        drawn += ids
    counts = np.bincount(classes[np.array(drawn)].astype(int), minlength=3)
    assert chisquare(counts).pvalue > 1e-3  # each class drawn equally often (60 x 45 draws)
    assert len(set(drawn[:45])) < 45  # with replacement: repeats within one epoch
    assert np.bincount(np.array(drawn), minlength=45)[:30].max() < np.bincount(np.array(drawn), minlength=45)[40:].min()
    a = ShuffledBatches(x, x, batch_size=5, seed=1, draw_weights=weights)
    b = ShuffledBatches(x, x, batch_size=5, seed=1, draw_weights=weights)
    assert _ids(a) == _ids(b)  # same seed and epoch: same draws
    a.set_epoch(1)
    assert _ids(a) != _ids(b)
    with pytest.raises(ValueError, match="3 draw weights for 45 samples"):
        ShuffledBatches(x, x, batch_size=5, seed=1, draw_weights=weights[:3])
    with pytest.raises(ValueError, match="draw weights must be finite"):
        ShuffledBatches(x, x, batch_size=5, seed=1, draw_weights=-weights)
