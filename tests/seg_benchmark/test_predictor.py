"""TorchSegmenter: probabilities, save and load with a card, refusal of foreign cards, and
`fetal hc measure`'s HCModel measuring through a torch network in original pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import special

torch = pytest.importorskip("torch")

from fetal_lib.data.hc18 import filled_ellipse  # noqa: E402
from fetal_lib.errors import FetalInputError  # noqa: E402
from fetal_lib.hc.measure import HCModel  # noqa: E402
from fetal_lib.model_card import card_path, save_torch  # noqa: E402
from fetal_lib.networks import torch as torch_nets  # noqa: E402
from fetal_lib.torch_segmenter import TorchSegmenter  # noqa: E402


def _tiny(arch="attention_unet", options=None):
    torch.manual_seed(0)
    options = options or {"base_width": 2, "depth": 3}
    return TorchSegmenter(torch_nets.create(arch, **options).eval(), arch, options, 32, 48)


def _save(seg, path, inference=None):
    card = {**seg.card_fields("smoke"), "inference": inference or {"threshold": 0.5, "tta": ["hflip"]}}
    return save_torch(seg.net, path, card)


def test_save_and_load_give_identical_probabilities(tmp_path):
    seg = _tiny()
    path = _save(seg, tmp_path / "m.pt")
    assert card_path(path).name == "m.card.json" and card_path(path).is_file()
    again = TorchSegmenter.load(path)
    x = np.random.default_rng(0).uniform(0, 1, (3, 32, 48, 1)).astype(np.float32)
    p = seg.predict_nhwc(x)
    assert p.shape == (3, 32, 48, 1) and (p >= 0).all() and (p <= 1).all()
    np.testing.assert_array_equal(p, again.predict_nhwc(x))
    model = HCModel.load(path)
    assert model.input_shape == (32, 48) and model.tta == ["hflip"]


def test_foreign_cards_are_refused_by_name(tmp_path):
    seg = _tiny()
    path = _save(seg, tmp_path / "m.pt")
    card = json.loads(card_path(path).read_text())
    card_path(path).write_text(json.dumps({**card, "framework": "keras"}))
    with pytest.raises(FetalInputError, match="keras model, not a torch one"):
        TorchSegmenter.load(path)
    card_path(path).write_text(json.dumps({**card, "architecture": {"name": "resunet3d", "options": {}}}))
    with pytest.raises(FetalInputError, match="'resunet3d' is not a 2-D head segmentation network; known: attention_unet"):
        TorchSegmenter.load(path)
    card_path(path).unlink()
    with pytest.raises(FetalInputError, match="model card beside the weights is missing"):
        TorchSegmenter.load(path)
    with pytest.raises(FetalInputError, match="no model file here"):
        TorchSegmenter.load(tmp_path / "absent.pt")


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = _save(_tiny(), tmp_path / "m.pt")
    card = json.loads(card_path(path).read_text())
    card["architecture"]["options"] = {"base_width": 4, "depth": 3}
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(FetalInputError, match="not readable as weights of attention_unet"):
        TorchSegmenter.load(path)


class _Bright(torch.nn.Module):
    """Probability ~1 where the image is bright (> 0.5): a 1x1 convolution with a steep slope."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(40.0)
            self.conv.bias.fill_(-20.0)

    def forward(self, x):
        return self.conv(x)


def test_hc_measured_through_a_torch_network_in_original_pixels():
    seg = TorchSegmenter(_Bright().eval(), "attention_unet", {}, 128, 192)
    model = HCModel(seg, {"tta": ["hflip"]})
    shape, (cx, cy, a, b, angle) = (540, 800), (360.0, 280.0, 200.0, 160.0, 35.0)
    image = np.where(filled_ellipse(shape, cx, cy, a, b, angle), 220, 15).astype(np.uint8)
    m = model.measure_array(image, 0.1, "x.png")
    exact = 4.0 * a * special.ellipe(1.0 - (b / a) ** 2) * 0.1
    assert m.hc_mm == pytest.approx(exact, rel=0.01)
    assert m.ellipse.cx == pytest.approx(cx, abs=2.0) and m.ellipse.cy == pytest.approx(cy, abs=2.0)
