"""A compiled Keras network restarted for another training (fetal_lib.training.keras_reuse): the same weights as a
newly built and compiled network, bit for bit; copying variables refuses another network."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

keras = pytest.importorskip("keras")

from fetal_lib.training.keras_reuse import CompiledNetwork, copy_variables  # noqa: E402


def _net(width: int = 4):
    return keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
                             keras.layers.BatchNormalization(), keras.layers.Flatten(), keras.layers.Dropout(0.5),
                             keras.layers.Dense(1)])


def _compiled(width: int = 4):
    model = _net(width)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def test_copying_variables_refuses_another_network() -> None:
    keras.utils.set_random_seed(0)
    a, b, other = _net(), _net(), _net(width=5)
    copy_variables(a, b)
    for got, want in zip(a.variables, b.variables):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    with pytest.raises(ValueError, match="not the same network"):
        copy_variables(a, other)


@pytest.mark.slow
def test_a_restarted_network_trains_what_a_new_one_trains() -> None:
    """Dropout too (its masks drawn from the layer's seed state). TensorFlow only: there it is used
    (fetal_lib.training.keras_reuse.reuses)."""
    from fetal_lib.training.keras_reuse import reuses

    if not reuses():
        pytest.skip("restarting a compiled network is used on TensorFlow only (on torch an unseeded dropout draws from torch's generator)")
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 6, 6, 1), dtype=np.float32), rng.random((16, 1), dtype=np.float32)

    def trained(model) -> list[np.ndarray]:
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        return [np.array(w) for w in model.get_weights()]

    reference = {}
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        reference[seed] = trained(_compiled())
    kept = CompiledNetwork()
    for seed in (1, 2, 1):
        first = kept.for_recipe("recipe", _compiled)
        keras.utils.set_random_seed(seed)
        assert kept.restart(_net()) is first
        for got, want in zip(trained(first), reference[seed]):
            np.testing.assert_array_equal(got, want)
    assert kept.reused == 2
    assert kept.for_recipe("another recipe", _compiled) is not first and kept.reused == 2  # another key: built anew
