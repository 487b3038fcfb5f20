"""Shared by the tests: tiny Keras networks whose every answer is known without training, and the
checks every torch segmenter passes (output shape, finite gradients)."""

from __future__ import annotations

import numpy as np


def brightness_model(size=(32, 48), k: int = 3):
    """A classifier by mean intensity: logit j = 100 (2 c_j m - c_j^2) for the mean m, so the class
    whose centre c_j (evenly spaced in 0.1..0.9) is nearest to m wins."""
    import keras

    inputs = keras.Input((*size, 1))
    logits = keras.layers.Dense(k)(keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, logits, name="brightness")
    centres = np.linspace(0.1, 0.9, k)
    model.layers[-1].set_weights([(200 * centres)[None, :].astype(np.float32), (-100 * centres**2).astype(np.float32)])
    return model


def skull_model(size=(64, 96), threshold: float = 0.5):
    """A stand-in for chapter 1's U-Net: one 1x1 convolution with a steep sigmoid, so its head
    probability is the image thresholded at ``threshold`` (a bright head on a dark background is found where it is)."""
    import keras

    inputs = keras.Input((*size, 1))
    out = keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)
    model = keras.Model(inputs, out, name="skull")
    model.layers[-1].set_weights([np.full((1, 1, 1, 1), 40.0, np.float32), np.array([-40.0 * threshold], np.float32)])
    return model


def assert_finite_gradients(model) -> None:
    """Every trainable weight of a torch module has a finite gradient (after ``backward``)."""
    import torch

    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


def check_segmenter(model, size: tuple[int, int], num_classes: int, in_channels: int = 1, backward: bool = False) -> None:
    """A 2-D segmenter maps a batch of 2 random images of ``size`` to ``num_classes`` logit maps of that
    size; with ``backward``, their mean square gives every trainable weight a finite gradient."""
    import torch

    y = model(torch.randn(2, in_channels, *size))
    assert y.shape == (2, num_classes, *size)
    if backward:
        y.square().mean().backward()
        assert_finite_gradients(model)


def check_backward_on_a_random_mask(model, size: tuple[int, int] = (32, 48)) -> None:
    """Binary cross-entropy of a one-channel segmenter against a random mask gives every weight a finite gradient."""
    import torch

    x = torch.randn(2, 1, *size)
    target = (torch.rand(2, 1, *size) > 0.5).float()
    torch.nn.functional.binary_cross_entropy_with_logits(model(x), target).backward()
    assert_finite_gradients(model)


def check_same_architecture(model, again) -> None:
    """``again`` (rebuilt from ``model``'s config) has the same config, parameter shapes and parameter count."""
    from fetal_lib.networks.parameters import count_parameters

    assert again.config == model.config
    assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]
    assert count_parameters(again) == count_parameters(model)


# The tiny sizes of the 2-D segmenters whose tests share test_segmenters.py.
DUCKNET_TINY = {"starting_filters": 2, "depth": 3}
TRANSUNET_TINY = {"encoder_widths": (4, 8, 8, 16), "hidden_size": 16, "num_layers": 1, "num_heads": 2, "mlp_dim": 32,
                  "head_width": 16, "decoder_widths": (8, 8, 4, 4)}


def tiny_ducknet(**options):
    """A seeded DUCK-Net of 2 starting filters and depth 3 (``options`` on top)."""
    import torch

    from fetal_lib.networks.torch.ducknet import create

    torch.manual_seed(0)
    return create(**{**DUCKNET_TINY, **options})


def tiny_transunet(**options):
    """A seeded TransUNet of :data:`TRANSUNET_TINY` for 32x48 inputs (``options`` on top)."""
    import torch

    from fetal_lib.networks.torch.transunet import create

    torch.manual_seed(0)
    return create(**{"img_size": (32, 48), **TRANSUNET_TINY, **options})


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """``fetal <argv>`` run in-process (``argv`` items may be paths): its exit status, stdout and stderr."""
    from fetal_lib.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(argv, capsys):
    """What ``fetal <argv>`` prints as JSON (its exit status asserted 0)."""
    import json

    code, out, _ = run_cli(argv, capsys)
    assert code == 0
    return json.loads(out)
