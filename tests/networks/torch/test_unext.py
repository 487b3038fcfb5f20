"""2-D UNeXt: shapes, backward, size check, rebuild from config, shifted MLP, receptive fields (Grad-CAM: test_segmenter_gradcam.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from fetal_lib.networks.parameters import count_parameters  # noqa: E402
from fetal_lib.networks.torch.unext import TokMLPBlock, UNeXt, create, shift_groups  # noqa: E402

from stand_ins import check_same_architecture, check_segmenter  # noqa: E402

TINY = (4, 8, 8, 16, 16)


@pytest.mark.parametrize("shape,num_classes", [((32, 64), 1), ((64, 96), 2)])
def test_shapes_and_backward(shape, num_classes):
    torch.manual_seed(0)
    check_segmenter(UNeXt(in_channels=1, num_classes=num_classes, widths=TINY), shape, num_classes, backward=True)


def test_rejects_indivisible_size():
    model = UNeXt(widths=TINY)
    with pytest.raises(ValueError, match=r"divisible by 32.*\(1, 1, 48, 64\)"):
        model(torch.zeros(1, 1, 48, 64))


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="C1..C5"):
        UNeXt(widths=(8, 16, 32))
    with pytest.raises(ValueError, match="odd"):
        UNeXt(widths=TINY, shift_size=4)


def test_create_rebuilds_from_config():
    model = create(in_channels=3, num_classes=2, widths=TINY, mlp_ratio=2.0, shift_size=3)
    check_same_architecture(model, create(**model.config))


def test_parameter_counts():
    assert 300_000 <= count_parameters(create()) <= 1_000_000
    # the authors' released widths, with three input channels: the paper's 1.47 M parameters
    assert round(count_parameters(create(in_channels=3, widths=(16, 32, 128, 160, 256))) / 1e6, 2) == 1.47


@pytest.mark.parametrize("dim", [2, 3])
def test_shift_moves_each_group_by_its_offset(dim):
    # 5 channels, one per group: an impulse in channel k moves by k - 2 along dim, zeros fill
    x = torch.zeros(1, 5, 9, 9)
    x[:, :, 4, 4] = 1.0
    y = shift_groups(x, dim, 5)
    for k in range(5):
        expected = torch.zeros(9, 9)
        row, col = (4 + k - 2, 4) if dim == 2 else (4, 4 + k - 2)
        expected[row, col] = 1.0
        assert torch.equal(y[0, k], expected)
    # at the border the impulse leaves the map (no wrap-around)
    x = torch.zeros(1, 5, 6, 6)
    x[:, :, 0, 0] = 1.0
    y = shift_groups(x, dim, 5)
    assert y[0, :2].sum() == 0 and y[0, 2:].sum() == 3
    # groups of several channels (10 channels: 2 per group) move together
    x = torch.zeros(1, 10, 9, 9)
    x[:, :, 4, 4] = 1.0
    y = shift_groups(x, 3, 5)
    assert y[0, 8, 4, 6] == 1 and y[0, 9, 4, 6] == 1 and y[0, 0, 4, 2] == 1


def _changed_region(block: TokMLPBlock, size: int = 15, at: int = 7) -> torch.Tensor:
    torch.manual_seed(1)
    x = torch.randn(1, block.mlp.fc1.in_channels, size, size)
    x2 = x.clone()
    x2[:, :, at, at] += 3.0 * torch.randn(x.shape[1])  # not a constant: LayerNorm would remove it
    with torch.no_grad():
        return (block(x2) - block(x)).abs().amax(dim=(0, 1)) > 1e-6


@pytest.mark.parametrize("shift_size,radius", [(1, 1), (5, 3), (7, 4)])
def test_tok_mlp_block_mixes_tokens_within_the_shift_plus_dwconv(shift_size, radius):
    # a token perturbation reaches exactly the (2r+1)^2 box, r = shift_size // 2 + 1 (the
    # depth-wise 3x3 conv alone: r = 1); the shifts widen what one block mixes
    block = TokMLPBlock(dim=14, shift_size=shift_size)
    for m in block.mlp.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=0.5)
    changed = _changed_region(block)
    expected = torch.zeros(15, 15, dtype=torch.bool)
    expected[7 - radius: 8 + radius, 7 - radius: 8 + radius] = True
    assert torch.equal(changed, expected)


def test_output_depends_on_far_away_pixels():
    # through the 1/32 bottleneck and its Tok-MLP blocks, the top-left output pixel sees the
    # bottom-right input pixel of a 64x96 image
    torch.manual_seed(0)
    model = UNeXt(widths=TINY).eval()
    x = torch.randn(1, 1, 64, 96, requires_grad=True)
    model(x)[0, 0, 0, 0].backward()
    assert x.grad[0, 0, -1, -1].abs() > 0
    assert x.grad[0, 0, 48:, 72:].abs().sum() > 0
