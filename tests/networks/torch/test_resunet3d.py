"""3D Res-U-Net: output shape, a backward pass, parameter count, input-size check."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from fetal_lib.networks.parameters import count_parameters  # noqa: E402
from fetal_lib.networks.torch.resunet3d import ResBlock3d, ResUNet3d, create  # noqa: E402

from stand_ins import assert_finite_gradients  # noqa: E402


@pytest.mark.parametrize("depth,size", [(2, 8), (3, 16), (4, 24)])
def test_shapes_and_backward(depth, size):
    torch.manual_seed(0)
    model = ResUNet3d(in_channels=1, num_classes=4, base_width=2, depth=depth)
    x = torch.randn(2, 1, size, size, size, requires_grad=False)
    y = model(x)
    assert y.shape == (2, 4, size, size, size)
    loss = torch.nn.functional.cross_entropy(y, torch.randint(0, 4, (2, size, size, size)))
    loss.backward()
    assert_finite_gradients(model)


def test_parameter_count_matches_layers():
    # one residual block by hand: two 3x3x3 convs (no bias, with BN) + a 1x1x1 shortcut (with bias)
    block = ResBlock3d(1, 2, norm=True)
    expected = (1 * 2 * 27) + (2 * 2 * 27) + 2 * 2 + 2 * 2 + (1 * 2 + 2)
    assert count_parameters(block) == expected
    model = create(in_channels=1, num_classes=4, base_width=2, depth=2, norm=False)
    enc = [ResBlock3d(1, 2, False), ResBlock3d(2, 4, False)]
    dec = ResBlock3d(4 + 2, 2, False)
    head = 2 * 4 + 4
    assert count_parameters(model) == sum(count_parameters(b) for b in enc) + count_parameters(dec) + head


def test_residual_shortcut_is_used():
    block = ResBlock3d(1, 1, norm=False)
    for conv in (block.conv1, block.conv2):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    torch.nn.init.ones_(block.shortcut.weight)
    torch.nn.init.zeros_(block.shortcut.bias)
    x = torch.rand(1, 1, 4, 4, 4)
    assert torch.allclose(block(x), x)


def test_rejects_indivisible_size():
    model = ResUNet3d(base_width=2, depth=3)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.zeros(1, 1, 10, 12, 12))
