"""Chapter 4's multi-planar regressor: inputs per plane, attention in [0, 1], days out, ImageNet loading exact for grey."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras")
pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

from fetal_lib.networks.keras import vgg_attention as va  # noqa: E402

SMALL = {"input_shape": (32, 32, 1), "widths": (2, 2, 4, 4, 4), "dense": 4, "batch_norm": True}


def _inputs(n: int = 2, size: int = 32):
    rng = np.random.default_rng(0)
    return [rng.uniform(0, 1, (n, size, size, 1)).astype(np.float32) for _ in va.PLANES]


def test_one_input_per_plane_and_an_untrained_output_at_the_target_mean() -> None:
    import keras

    keras.utils.set_random_seed(0)
    model = va.create(**SMALL, target_mean_days=200.0, target_sd_days=30.0)
    assert [i.name for i in model.inputs] == list(va.PLANES)
    out = model.predict(_inputs(), verbose=0)
    assert out.shape == (2, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out, 200.0)  # the last unit starts at zero: every prediction is the mean
    for p in va.PLANES:
        assert model.get_layer(va.attention_layer(p)).output.shape[1:] == (2, 2, 1)  # block 5 at 32 pixels, before pooling
        assert model.get_layer(va.gradcam_layer(p)).output.shape[1:] == (2, 2, 4)


def test_attention_maps_lie_in_0_1_and_gradcam_follows_the_predicted_age() -> None:
    import keras

    from fetal_lib.ga_mri.explain import attention_maps, gradcam_maps

    keras.utils.set_random_seed(1)
    model = va.create(**SMALL)
    unit = model.get_layer("unit")
    unit.set_weights([np.full_like(w, 0.1) for w in unit.get_weights()])  # non-zero head: gradients reach the planes
    x = _inputs(3)
    att = attention_maps(model, x)
    cam = gradcam_maps(model, x)
    for p in va.PLANES:
        assert att[p].shape == (3, 32, 32) and att[p].min() >= 0 and att[p].max() <= 1
        assert cam[p].shape == (3, 32, 32) and cam[p].min() >= 0 and cam[p].max() <= 1 + 1e-6


def test_impossible_networks_are_refused() -> None:
    with pytest.raises(ValueError, match="grey"):
        va.create(input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="too small"):
        va.create(input_shape=(16, 16, 1))
    with pytest.raises(ValueError, match="five"):
        va.create(widths=(8, 16))
    with pytest.raises(ValueError, match="planes"):
        va.create(planes=("axial", "axial"))
    with pytest.raises(ValueError, match="ImageNet"):
        va.create(widths=(8, 16, 32, 64, 64), weights_path="w.h5")
    with pytest.raises(FileNotFoundError):
        va.create(input_shape=(32, 32, 1), weights_path="/nonexistent/vgg16.h5")


def test_imagenet_weights_on_a_grey_image_equal_vgg16_on_the_image_in_three_channels(tmp_path) -> None:
    """The summed first kernel and the in-model scaling reproduce keras.applications.VGG16 on RGB = grey."""
    import keras

    keras.utils.set_random_seed(2)
    reference = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16_notop.weights.h5"
    reference.save_weights(path)
    model = va.create(input_shape=(32, 32, 1), weights_path=str(path), planes=("axial",))
    grey = np.random.default_rng(3).uniform(0, 1, (2, 32, 32, 1)).astype(np.float32)
    probe = keras.Model(model.inputs, model.get_layer("axial_block1_conv1").output)
    ref_probe = keras.Model(reference.inputs, reference.get_layer("block1_conv1").output)
    # the reference gets the grey image in three channels, each centred by the one mean the model uses
    centred = np.repeat(grey * 255.0 - va.IMAGENET_MEAN, 3, axis=-1)
    # on a CUDA GPU torch convolves in TF32 (10-bit mantissa) by default: outputs near 30 then differ by ~0.03
    from fetal_lib.training import keras_backend

    rtol, atol = (2e-3, 0.1) if keras_backend.gpu() else (1e-4, 1e-3)
    np.testing.assert_allclose(probe.predict(grey, verbose=0), ref_probe.predict(centred, verbose=0), rtol=rtol, atol=atol)
