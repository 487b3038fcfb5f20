"""What DUCK-Net and TransUNet both pass at their tiny sizes: shapes, a backward pass, and rebuilding
the same network from the config a model card stores (their own checks: test_ducknet.py, test_transunet.py)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from fetal_lib.networks.torch import ducknet, transunet  # noqa: E402

from stand_ins import check_backward_on_a_random_mask, check_segmenter, tiny_ducknet, tiny_transunet  # noqa: E402

# name -> (the seeded tiny builder, the module's create)
SEGMENTERS = {"ducknet": (tiny_ducknet, ducknet.create), "transunet": (tiny_transunet, transunet.create)}


@pytest.mark.parametrize("name", SEGMENTERS)
@pytest.mark.parametrize("size", [(32, 48), (64, 64)])
@pytest.mark.parametrize("num_classes", [1, 3])
def test_shapes(name, size, num_classes):
    tiny, _ = SEGMENTERS[name]
    check_segmenter(tiny(num_classes=num_classes, in_channels=2), size, num_classes, in_channels=2)


@pytest.mark.parametrize("name", SEGMENTERS)
def test_backward_gives_finite_gradients_to_every_weight(name):
    tiny, _ = SEGMENTERS[name]
    check_backward_on_a_random_mask(tiny())


@pytest.mark.parametrize("name", SEGMENTERS)
def test_config_rebuilds_the_same_model(name):
    tiny, create = SEGMENTERS[name]
    model = tiny(num_classes=2).eval()
    config = json.loads(json.dumps(model.config))  # as stored in a model card
    again = create(**config).eval()
    assert again.config == model.config
    again.load_state_dict(model.state_dict())
    x = torch.randn(1, 1, 32, 48)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
