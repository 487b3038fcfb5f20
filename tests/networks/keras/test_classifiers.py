"""Chapter 3's classifiers: logits, like-with-like topology of the two CNNs, Grad-CAM on the named
layer, Xception's grey input and its local weights (the registry test covers shapes, parameter
counts, gradients and save/load)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

from fetal_lib.networks.keras import plain_cnn, separable_cnn, xception  # noqa: E402


def _images(n: int, rows: int, cols: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, rows, cols, channels)).astype(np.float32)


def test_the_cnns_return_logits_and_share_their_topology() -> None:
    import keras

    plain = plain_cnn.create((32, 32, 1), num_classes=4, widths=(4, 8, 16))
    separable = separable_cnn.create((32, 32, 1), num_classes=4, widths=(4, 8, 16))
    out = keras.ops.convert_to_numpy(plain(_images(3, 32, 32), training=False))
    assert out.shape == (3, 4) and not np.allclose(out.sum(axis=1), 1.0)  # logits, not probabilities
    assert plain.get_layer("logits").activation is keras.activations.linear
    assert [layer.name for layer in plain.layers] == [layer.name for layer in separable.layers]
    kinds = {layer.name: type(layer).__name__ for layer in separable.layers}
    assert kinds["block0_conv"] == "Conv2D"  # a separable convolution of one channel would be rank one
    assert kinds["block1_conv"] == kinds["block2_conv"] == "SeparableConv2D"
    assert type(plain.get_layer("block2_conv")).__name__ == "Conv2D"
    all_separable = separable_cnn.create((32, 32, 1), num_classes=4, widths=(4, 8, 16), first_plain=False)
    assert type(all_separable.get_layer("block0_conv")).__name__ == "SeparableConv2D"
    assert separable.count_params() < plain.count_params()


def test_the_logits_stay_float32_in_mixed_precision() -> None:
    from fetal_lib.training.keras import dtype_policy

    with dtype_policy("mixed_bfloat16"):
        model = separable_cnn.create((16, 16, 1), num_classes=3, widths=(4, 8))
    assert model.get_layer("block1_conv").dtype_policy.name == "mixed_bfloat16"
    assert model.output.dtype == "float32"


@pytest.mark.parametrize("module", [plain_cnn, separable_cnn])
def test_gradcam_explains_the_last_conv_block(module) -> None:
    from fetal_lib.explain.gradcam_keras import gradcam

    model = module.create((32, 32, 1), num_classes=3, widths=(4, 8))
    assert module.GRADCAM_LAYER == "last_conv"
    assert model.get_layer("last_conv").output.shape[1:] == (16, 16, 8)  # before the last pooling
    maps = gradcam(model, module.GRADCAM_LAYER, _images(2, 32, 32), target="class")
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


def test_the_cnns_refuse_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="too small"):
        plain_cnn.create((8, 8, 1), widths=(4, 8, 16, 32))
    with pytest.raises(ValueError, match="num_classes"):
        separable_cnn.create((32, 32, 1), num_classes=1)
    with pytest.raises(ValueError, match="widths"):
        plain_cnn.create((32, 32, 1), widths=())


def test_xception_refuses_what_it_cannot_take_before_building() -> None:
    with pytest.raises(ValueError, match="at least 71x71"):
        xception.create((64, 64, 1))
    with pytest.raises(ValueError, match="1 .* or 3 input channels"):
        xception.create((71, 71, 2))
    with pytest.raises(FileNotFoundError, match="/nowhere/xception_notop.h5"):
        xception.create((71, 71, 1), weights_path="/nowhere/xception_notop.h5")


def test_xception_repeats_a_grey_input_and_gradcam_finds_its_last_block() -> None:
    from fetal_lib.explain.gradcam_keras import gradcam

    grey = xception.create((71, 71, 1), num_classes=2)
    rgb = xception.create((71, 71, 3), num_classes=2)
    assert grey.count_params() == rgb.count_params()  # the repetition and the rescaling have no weights
    rgb.set_weights(grey.get_weights())
    x = _images(2, 71, 71)
    np.testing.assert_allclose(grey.predict(x, verbose=0), rgb.predict(np.repeat(x, 3, axis=-1), verbose=0), rtol=1e-5, atol=1e-5)
    assert grey.get_layer(xception.GRADCAM_LAYER).output.shape[1:] == (3, 3, 2048)
    maps = gradcam(grey, xception.GRADCAM_LAYER, x, target="class")
    assert maps.shape == (2, 71, 71) and np.isfinite(maps).all()


def test_xception_loads_local_imagenet_style_weights_into_its_backbone(tmp_path) -> None:
    """A file laid out as Keras's ImageNet ``..._notop.h5`` (legacy HDF5, the backbone's layers in
    order) lands in the backbone; the head stays as initialised; a file of another network is refused."""
    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(1)
    reference = keras.applications.Xception(include_top=False, weights=None, input_shape=(71, 71, 3), pooling="avg")
    path = tmp_path / "xception_notop.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    model = xception.create((71, 71, 1), num_classes=2, weights_path=path)
    for name in ("block1_conv1", "block7_sepconv2", "block14_sepconv2_bn"):
        for got, want in zip(model.get_layer(name).get_weights(), reference.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    # the grey image, rescaled to [-1, 1] and repeated, gives the reference's ImageNet-style features
    x = _images(1, 71, 71)
    features = keras.Model(model.inputs, model.get_layer("logits").input)
    np.testing.assert_allclose(features.predict(x, verbose=0), reference.predict(np.repeat(2 * x - 1, 3, axis=-1), verbose=0),
                               rtol=1e-4, atol=1e-5)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, plain_cnn.create((32, 32, 3), widths=(4, 8)))
    with pytest.raises(ValueError, match="do not fit the Xception backbone"):
        xception.create((71, 71, 1), weights_path=other)
    with pytest.raises(ValueError, match="fit the full Xception only"):  # ImageNet weights fit the full size only
        xception.create((71, 71, 1), weights_path=path, width=0.5)


def test_the_scaled_builder_at_full_size_is_keras_xception() -> None:
    """At width 1 and 8 middle blocks, the builder of the reduced networks has Keras's layers in
    Keras's order and names: Keras's weights fit it and give the same features."""
    import keras

    keras.utils.set_random_seed(2)
    reference = keras.applications.Xception(include_top=False, weights=None, input_shape=(71, 71, 3), pooling="avg")
    inputs = keras.Input((71, 71, 3))
    ours = xception._scaled_backbone(inputs, inputs, 1.0, 8, name="ours")

    def weighted(model):
        return [(type(layer).__name__, [tuple(w.shape) for w in layer.weights]) for layer in model.layers if layer.weights]

    assert weighted(ours) == weighted(reference)
    named = {layer.name for layer in reference.layers if layer.name.startswith("block")}
    assert named <= {layer.name for layer in ours.layers}
    ours.set_weights(reference.get_weights())
    x = np.random.default_rng(0).uniform(-1, 1, (2, 71, 71, 3)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_a_reduced_xception_is_thinner_and_shallower_and_refuses_bad_sizes() -> None:
    full = xception.create((71, 71, 1), num_classes=3)
    reduced = xception.create((71, 71, 1), num_classes=3, width=0.5, middle_blocks=4)
    assert reduced.get_layer(xception.GRADCAM_LAYER).output.shape[-1] == 1024  # 2048 x 0.5
    assert reduced.get_layer("block4_sepconv2").output.shape[-1] == 368  # 728 x 0.5 = 364, to a multiple of 8
    middle = {layer.name.split("_")[0] for layer in reduced.layers if layer.name.endswith("_sepconv3")}
    assert middle == {"block5", "block6", "block7", "block8"}
    assert reduced.count_params() < full.count_params() / 4
    assert [xception.scaled_width(c, 0.25) for c in (32, 728, 2048)] == [8, 184, 512]
    for bad in ({"width": 0.0}, {"width": 1.5}, {"middle_blocks": 9}, {"middle_blocks": 2.5}):
        with pytest.raises(ValueError, match="width|middle_blocks"):
            xception.create((71, 71, 1), **bad)
