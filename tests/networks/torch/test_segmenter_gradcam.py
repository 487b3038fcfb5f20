"""Grad-CAM of every 2-D head segmenter that outputs logits (chapter 2), on its registry example.

Each network's :meth:`gradcam_layer` feeds its 1x1 head directly. With every pixel in the mask
(threshold 0) the explained score is the sum of the logits, so each channel's Grad-CAM weight is
its head weight and the map is exactly ReLU(logit - bias): an independent check that the layer,
the target and Captum's LayerGradCam fit together. Also: maps of the input size in [0, 1], the
training mode restored, and a multi-class target.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")

from fetal_lib.explain import targets  # noqa: E402
from fetal_lib.explain.gradcam_torch import gradcam  # noqa: E402
from fetal_lib.networks import torch as torch_nets  # noqa: E402

LOGIT_SEGMENTERS = ("attention_unet", "unext", "transunet", "ducknet")


def tiny(name: str, **changes):
    entry = torch_nets.REGISTRY.entry(name)
    torch.manual_seed(0)
    return torch_nets.create(name, **{**entry.example_options, **changes}), (2, *entry.example_input_shape)


@pytest.mark.parametrize("name", LOGIT_SEGMENTERS)
def test_gradcam_is_relu_of_logit_minus_bias(name):
    model, shape = tiny(name)
    x = torch.rand(shape)
    maps = gradcam(model, model.gradcam_layer(), x, target="segmentation")
    assert maps.shape == (shape[0], *shape[2:]) and np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert model.training  # restored
    with torch.no_grad():
        model.head.weight.abs_()  # a positive head: a map that is not empty
    maps = gradcam(model, model.gradcam_layer(), x, target=targets.Target("segmentation", threshold=0.0), normalise=False)
    model.eval()
    with torch.no_grad():
        expected = torch.relu(model(x)[:, 0] - model.head.bias[0]).numpy()
    assert expected.max() > 0
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5 * expected.max())


@pytest.mark.parametrize("name", LOGIT_SEGMENTERS)
def test_gradcam_of_one_class_of_several(name):
    model, shape = tiny(name, num_classes=3)
    maps = gradcam(model, model.gradcam_layer(), torch.rand(shape), target=targets.Target("segmentation", class_index=2))
    assert maps.shape == (shape[0], *shape[2:]) and np.isfinite(maps).all()
