"""Grad-CAM where the answer is known: a network that only sees one quadrant of its input.

Each network multiplies its feature maps by a fixed mask of the top-right quadrant before
anything reaches the output, so the output depends on that quadrant alone; a correct
Grad-CAM (right layer, right target, right orientation when upsampled) puts nearly all of
its mass there. Top-right is not symmetric under a transpose, so swapped axes would fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fetal_lib.explain import gradcam_keras, gradcam_torch
from fetal_lib.explain.overlay import overlay
from fetal_lib.explain.targets import Target

SIZE = 32


def _quadrant_mask(shape: tuple[int, ...]) -> np.ndarray:
    """1 in the top-right quadrant of the last two axes (rows < half, cols >= half)."""
    mask = np.zeros(shape, np.float32)
    mask[..., : shape[-2] // 2, shape[-1] // 2 :] = 1.0
    return mask


def _mass_in_quadrant(maps: np.ndarray) -> np.ndarray:
    inside = (maps * _quadrant_mask(maps.shape)).reshape(maps.shape[0], -1).sum(axis=1)
    return inside / maps.reshape(maps.shape[0], -1).sum(axis=1)


# ---------------------------------------------------------------- torch


class _Masked(nn.Module):
    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.register_buffer("mask", torch.from_numpy(_quadrant_mask(shape)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


class _QuadrantNet(nn.Module):
    """conv -> ReLU -> 2x pooling -> quadrant mask (the explained layer) -> head."""

    def __init__(self, head: str, dims: int = 2):
        super().__init__()
        conv, pool = (nn.Conv2d, nn.MaxPool2d) if dims == 2 else (nn.Conv3d, nn.MaxPool3d)
        self.features = nn.Sequential(conv(1, 6, 3, padding=1), nn.ReLU(), pool(2))
        self.masked = _Masked((SIZE // 2,) * dims)
        self.head_kind = head
        if head == "segmentation":
            self.head = conv(6, 1, 1)
            self.up = nn.Upsample(scale_factor=2)
        else:
            self.head = nn.Linear(6, 3 if head == "class" else 1)
        with torch.no_grad():  # positive weights: the explained score grows with the features
            for p in self.parameters():
                p.abs_()
            if head == "segmentation":
                self.head.bias.fill_(-0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.masked(self.features(x))
        if self.head_kind == "segmentation":
            return self.up(self.head(f))
        out = self.head(f.flatten(2).mean(dim=2))
        return out[:, 0] if self.head_kind == "regression" else out


@pytest.mark.parametrize("target", ["class", "segmentation", "regression"])
def test_torch_gradcam_puts_the_mass_where_the_network_looks(target: str) -> None:
    torch.manual_seed(0)
    net = _QuadrantNet(target)
    x = torch.rand(3, 1, SIZE, SIZE)
    maps = gradcam_torch.gradcam(net, net.masked, x, target=target)
    assert maps.shape == (3, SIZE, SIZE) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    assert np.all(_mass_in_quadrant(maps) > 0.9), _mass_in_quadrant(maps)
    assert net.training, "the model's mode is restored"


def test_torch_gradcam_in_3d() -> None:
    torch.manual_seed(0)
    net = _QuadrantNet("segmentation", dims=3)
    maps = gradcam_torch.gradcam(net, net.masked, torch.rand(2, 1, SIZE, SIZE, SIZE), target="segmentation")
    assert maps.shape == (2, SIZE, SIZE, SIZE)
    assert np.all(_mass_in_quadrant(maps) > 0.9)


def test_torch_gradcam_multiclass_segmentation_needs_a_class() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1))
    with pytest.raises(ValueError, match="needs class_index"):
        gradcam_torch.gradcam(net, net[0], torch.rand(1, 1, 8, 8), target="segmentation")
    with pytest.raises(ValueError, match="target must be one of"):
        gradcam_torch.gradcam(net, net[0], torch.rand(1, 1, 8, 8), target="saliency")


def test_torch_gradcam_of_the_brain_age_segmenter_runs_on_a_volume() -> None:
    from fetal_lib.networks.torch.resunet3d import create

    net = create(base_width=4, depth=3)
    maps = gradcam_torch.gradcam(net, net.decoders[-1], torch.rand(1, 1, 16, 16, 16), Target("segmentation", class_index=2))
    assert maps.shape == (1, 16, 16, 16) and np.isfinite(maps).all()


# ---------------------------------------------------------------- keras


def _keras_quadrant_net(head: str):
    import keras
    from keras import layers

    inputs = keras.Input((SIZE, SIZE, 1))
    x = layers.Conv2D(6, 3, padding="same", activation="relu", kernel_initializer="ones", name="conv")(inputs)
    x = layers.MaxPooling2D(2)(x)
    mask = keras.ops.convert_to_tensor(_quadrant_mask((SIZE // 2, SIZE // 2))[None, :, :, None])
    x = layers.Lambda(lambda t: t * mask, name="masked")(x)
    if head == "segmentation":
        x = layers.Conv2D(1, 1, kernel_initializer="ones", bias_initializer=keras.initializers.Constant(-0.05), name="logit_conv")(x)
        outputs = layers.Activation("sigmoid", name="probability")(layers.UpSampling2D(2)(x))
    elif head == "class":
        x = layers.GlobalAveragePooling2D()(x)
        outputs = layers.Dense(3, activation="softmax", kernel_initializer="ones", name="classes")(x)
    else:
        x = layers.GlobalAveragePooling2D()(x)
        outputs = layers.Dense(1, kernel_initializer="ones", name="age")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.keras_backends
@pytest.mark.parametrize("target", ["class", "segmentation", "regression"])
def test_keras_gradcam_puts_the_mass_where_the_network_looks(target: str) -> None:
    net = _keras_quadrant_net(target)
    images = np.random.default_rng(0).uniform(0, 1, (3, SIZE, SIZE, 1)).astype(np.float32)
    maps = gradcam_keras.gradcam(net, "masked", images, target=target)
    assert maps.shape == (3, SIZE, SIZE) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() == pytest.approx(1.0)
    assert np.all(_mass_in_quadrant(maps) > 0.9), _mass_in_quadrant(maps)


@pytest.mark.keras_backends
def test_keras_gradcam_of_the_hc18_unet_with_its_sigmoid_output() -> None:
    from fetal_lib.networks.keras.unet import build_unet

    net = build_unet((32, 32, 1), filters=4, depth=2)
    images = np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 1)).astype(np.float32)
    maps = gradcam_keras.gradcam(net, "dec0_relu2", images, Target("segmentation", threshold=0.0))
    assert maps.shape == (2, 32, 32) and np.isfinite(maps).all()
    assert net.layers[-1].activation.__name__ == "sigmoid", "the final activation is restored"


@pytest.mark.keras_backends
def test_keras_gradcam_names_a_missing_layer() -> None:
    net = _keras_quadrant_net("class")
    with pytest.raises(ValueError, match="no layer 'nope'"):
        gradcam_keras.gradcam(net, "nope", np.zeros((1, SIZE, SIZE, 1), np.float32))


# ---------------------------------------------------------------- overlay


def test_overlay_leaves_cold_pixels_unchanged_and_colours_hot_ones() -> None:
    image = np.tile(np.linspace(0, 200, 16), (16, 1))
    heat = np.zeros((8, 8))
    heat[:4, 4:] = 1.0  # resized to 16x16
    out = overlay(image, heat, alpha=0.5)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    grey = np.round(np.linspace(0, 1, 16) * 255)
    np.testing.assert_allclose(out[15, :, 0], grey, atol=1)  # bottom row: cold
    assert not np.allclose(out[0, 12], out[0, 12].mean())  # top-right: coloured
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, heat, alpha=2)
