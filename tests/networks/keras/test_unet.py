"""U-Net: shapes, output range, the source's block bug reproduced, a training step."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

from fetal_lib.networks.keras.unet import build_unet  # noqa: E402


@pytest.fixture(scope="module")
def models():
    return {kind: build_unet((32, 48, 1), filters=4, depth=2, block=kind) for kind in ("corrected", "source")}


def test_output_shape_and_range(models):
    x = np.random.default_rng(0).random((2, 32, 48, 1), dtype=np.float32)
    for model in models.values():
        y = keras.ops.convert_to_numpy(model(x, training=False))
        assert y.shape == (2, 32, 48, 1)
        assert np.all((y >= 0) & (y <= 1))


def test_corrected_block_chains_convs_source_block_does_not(models):
    # Level 1: block input has 4 channels (pooled level 0), block width 8.
    corrected = models["corrected"].get_layer("enc1_conv2").kernel.shape
    source = models["source"].get_layer("enc1_conv2").kernel.shape
    assert tuple(corrected) == (3, 3, 8, 8)  # reads conv1's 8 channels
    assert tuple(source) == (3, 3, 4, 8)  # reads the block input's 4 channels (the bug)
    # In the source block the first conv is dead: Keras prunes it from the graph ...
    source_names = {layer.name for layer in models["source"].layers}
    assert "enc0_conv1" not in source_names and "enc0_conv2" in source_names
    assert models["source"].count_params() < models["corrected"].count_params()
    # ... while in the corrected block it feeds the output.
    m = models["corrected"]
    x = np.random.default_rng(1).random((1, 32, 48, 1), dtype=np.float32)
    before = keras.ops.convert_to_numpy(m(x, training=False))
    layer = m.get_layer("enc0_conv1")
    saved = layer.get_weights()
    layer.set_weights([w + 1.0 for w in saved])
    after = keras.ops.convert_to_numpy(m(x, training=False))
    layer.set_weights(saved)
    assert not np.allclose(before, after)


@pytest.mark.slow
def test_training_step_reduces_loss():
    import keras

    model = build_unet((16, 16, 1), filters=2, depth=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((4, 16, 16, 1), dtype=np.float32)
    y = (x > 0.5).astype(np.float32)
    first = float(model.train_on_batch(x, y))
    for _ in range(10):
        last = float(model.train_on_batch(x, y))
    assert np.isfinite(first) and last < first


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        build_unet((30, 48, 1), depth=2)
    with pytest.raises(ValueError, match="block"):
        build_unet((32, 32, 1), depth=1, block="other")
