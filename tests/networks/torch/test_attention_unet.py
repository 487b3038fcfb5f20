"""2-D Attention U-Net: shapes, backward, size check, rebuild from config, attention gates (Grad-CAM: test_segmenter_gradcam.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from fetal_lib.networks.parameters import count_parameters  # noqa: E402
from fetal_lib.networks.torch.attention_unet import AttentionGate, AttentionUNet, create  # noqa: E402

from stand_ins import check_same_architecture, check_segmenter  # noqa: E402


@pytest.mark.parametrize("depth,shape,num_classes", [(3, (32, 48), 1), (4, (64, 40), 3)])
def test_shapes_and_backward(depth, shape, num_classes):
    torch.manual_seed(0)
    check_segmenter(AttentionUNet(in_channels=1, num_classes=num_classes, base_width=2, depth=depth), shape, num_classes, backward=True)


def test_rejects_indivisible_size():
    model = AttentionUNet(base_width=2, depth=3)
    with pytest.raises(ValueError, match=r"divisible by 4.*\(1, 1, 30, 48\)"):
        model(torch.zeros(1, 1, 30, 48))


def test_create_rebuilds_from_config():
    model = create(in_channels=2, num_classes=3, base_width=3, depth=3)
    check_same_architecture(model, create(**model.config))


def test_cpu_default_size():
    assert 300_000 <= count_parameters(create()) <= 1_000_000


def test_attention_coefficients_have_skip_shapes_and_lie_in_unit_interval():
    torch.manual_seed(0)
    model = AttentionUNet(base_width=2, depth=4)
    model(torch.randn(3, 1, 32, 48))
    assert len(model.last_attention) == 3
    for level, alpha in enumerate(model.last_attention):  # finest first, as the skips
        assert alpha.shape == (3, 1, 32 // 2**level, 48 // 2**level)
        assert float(alpha.min()) >= 0.0 and float(alpha.max()) <= 1.0
        assert not alpha.requires_grad


def test_gate_multiplies_each_pixel_by_one_coefficient():
    torch.manual_seed(0)
    gate = AttentionGate(skip_ch=4, gate_ch=6)
    x, g = torch.randn(2, 4, 8, 12), torch.randn(2, 6, 4, 6)
    gated, alpha = gate(x, g)
    assert alpha.shape == (2, 1, 8, 12)
    assert torch.allclose(gated, x * alpha)
    # the coefficients follow the gating signal: another g, other coefficients
    _, alpha2 = gate(x, torch.randn(2, 6, 4, 6))
    assert not torch.allclose(alpha, alpha2)
    # a very negative psi bias closes the gate (skip suppressed), a very positive one opens it
    with torch.no_grad():
        gate.psi.bias.fill_(-50.0)
    assert gate(x, g)[0].abs().max() < 1e-12
    with torch.no_grad():
        gate.psi.bias.fill_(50.0)
    assert torch.allclose(gate(x, g)[0], x)
