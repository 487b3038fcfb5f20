"""Training the HC18 U-Net: sample weights, precision, augmentation settings (the loop itself: tests/training)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`



def test_keras_weights_the_per_image_loss_by_the_sample_weights() -> None:
    """The per-image loss with (x, y, w) batches gives sum(w * loss) / batch, as train() relies on."""
    import keras

    from fetal_lib.hc.dataset import training_batches
    from fetal_lib.hc.losses import bce_dice_per_image, get_loss

    rng = np.random.default_rng(0)
    x = rng.random((4, 8, 8, 1)).astype(np.float32)
    y = (rng.random((4, 8, 8, 1)) > 0.5).astype(np.float32)
    w = np.array([0.1, 0.2, 3.0, 0.7], np.float32)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")])
    model.compile(loss=get_loss("bce_dice"))
    pred = model.predict(x, verbose=0)
    per_image = keras.ops.convert_to_numpy(bce_dice_per_image(y, pred))  # a tensor where Keras computes (a GPU: not np.asarray)
    ds = training_batches(x, y, 4, seed=0, augment=False, weights=w)
    xb, yb, wb = ds[0]
    order = [int(np.argmin(np.abs(x - xi).sum(axis=(1, 2, 3)))) for xi in xb]
    expected = float(np.sum(w[order] * per_image[order]) / 4)
    assert model.evaluate(ds, verbose=0) == pytest.approx(expected, rel=1e-4)
    assert model.evaluate(training_batches(x, y, 4, seed=0, augment=False), verbose=0) == pytest.approx(per_image.mean(), rel=1e-4)


def test_train_rejects_bad_sample_weights() -> None:
    from fetal_lib.hc.train import TrainConfig, train

    x = np.zeros((4, 32, 32, 1), np.float32)
    with pytest.raises(ValueError, match="finite and positive"):
        train(TrainConfig(input_shape=(32, 32), filters=2, epochs=1), x, x, x, x, sample_weights=np.array([1.0, 0.0, 1.0, 1.0]))


@pytest.mark.slow
def test_mixed_bfloat16_training_returns_a_float32_model_with_the_trained_weights() -> None:
    """Mixed precision trains in bfloat16 but hands back a float32 network: its weights are the
    trained ones and its output matches the mixed network's to bfloat16 precision."""
    import keras

    from fetal_lib.hc.train import TrainConfig, build_model, train

    rng = np.random.default_rng(0)
    x = rng.random((8, 32, 32, 1)).astype(np.float32)
    y = (x > 0.5).astype(np.float32)
    config = TrainConfig(input_shape=(32, 32), filters=4, depth=2, epochs=2, batch_size=4, precision="mixed_bfloat16")
    mixed = build_model(config, "mixed_bfloat16")
    assert mixed.get_layer("enc0_conv1").dtype_policy.name == "mixed_bfloat16"
    assert mixed.output.dtype == "float32"  # the probability layer stays float32
    result = train(config, x, y, x[:4], y[:4])
    assert keras.mixed_precision.global_policy().name == "float32"
    assert all(layer.dtype_policy.name == "float32" for layer in result.model.layers)
    assert result.epochs_run == 2 and result.train_images_per_s > 0
    mixed.set_weights(result.model.get_weights())
    np.testing.assert_allclose(mixed.predict(x, verbose=0), result.model.predict(x, verbose=0), atol=0.05)


def test_augment_config_follows_the_vertical_flip_setting() -> None:
    from fetal_lib.transforms.augment import AugmentConfig
    from fetal_lib.hc.pipeline import profile_settings, train_config
    from fetal_lib.hc.train import TrainConfig

    assert TrainConfig(augment_vflip=False).augment_config().flip_ud is False
    assert TrainConfig(augment_vflip=True).augment_config() == AugmentConfig()
    # the cpu profile's training (and so its bench) never flips upside down
    assert train_config(profile_settings("cpu")).augment_config().flip_ud is False
