"""Starting one task's network from another task's (fetal_lib.us.transfer)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

pytestmark = pytest.mark.keras_backends  # also run on KERAS_BACKEND=torch by `make test` (a GPU machine's backend)

from fetal_lib.networks.keras import create  # noqa: E402
from fetal_lib.us.transfer import transfer_weights  # noqa: E402


def _net(arch: str, classes: int, seed: int, size: int = 32, **options):
    keras.utils.set_random_seed(seed)
    return create(arch, input_shape=(size, size, 1), num_classes=classes, name=f"us_{arch}", **options)


def test_every_layer_but_the_classifier_is_copied():
    source, target = _net("plain_cnn", 4, 0, widths=[4, 8]), _net("plain_cnn", 3, 1, widths=[4, 8])
    fresh = [w.copy() for w in target.layers[-1].get_weights()]
    report = transfer_weights(source, target)
    assert report.kept == (target.layers[-1].name,) and report.copied
    for src, dst in zip(source.layers[:-1], target.layers[:-1]):
        for a, b in zip(src.get_weights(), dst.get_weights()):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(fresh, target.layers[-1].get_weights()):
        np.testing.assert_array_equal(a, b)  # the classifier keeps its own initialisation
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype(np.float32)
    features = keras.Model(target.inputs, target.layers[-2].output)
    reference = keras.Model(source.inputs, source.layers[-2].output)
    np.testing.assert_allclose(features.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_another_architecture_is_refused():
    with pytest.raises(ValueError, match="not the same architecture"):
        transfer_weights(_net("plain_cnn", 4, 0, widths=[4, 8]), _net("separable_cnn", 3, 0, widths=[4, 8]))
    with pytest.raises(ValueError, match="not the same architecture"):
        transfer_weights(_net("plain_cnn", 4, 0, widths=[4, 8]), _net("plain_cnn", 3, 0, widths=[4, 8, 16]))


def test_another_input_size_is_the_same_network_and_another_width_is_not():
    """The networks pool globally, so one trained on whole images starts one for crops of another size."""
    assert transfer_weights(_net("plain_cnn", 4, 0, widths=[4, 8]), _net("plain_cnn", 3, 0, size=40, widths=[4, 8])).copied
    with pytest.raises(ValueError, match="differ in shape"):
        transfer_weights(_net("plain_cnn", 4, 0, widths=[4, 8]), _net("plain_cnn", 4, 0, widths=[4, 16]))
