"""DUCK-Net: the size check, every DUCK branch and the second down-sampling path contributing, the
branches' dilations and kernels (checked on their impulse responses) (shapes, a backward pass and
rebuilding from the config: test_segmenters.py; Grad-CAM: test_segmenter_gradcam.py)."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from fetal_lib.networks.torch.ducknet import DUCKBlock, create  # noqa: E402

from stand_ins import tiny_ducknet as tiny  # noqa: E402

BRANCHES = ["widescope", "midscope", "residual_1", "residual_2", "residual_3", "separated"]


def test_defaults_and_paper_layout():
    model = create()
    assert model.config == {"in_channels": 1, "num_classes": 1, "starting_filters": 4, "depth": 4, "separated_size": 6,
                            "channels_last": True}
    assert 300_000 < sum(p.numel() for p in model.parameters()) < 1_500_000
    paper = create(in_channels=3, starting_filters=17, depth=5)
    assert [b.bn_out.num_features for b in paper.encoder] == [17, 34, 68, 136, 272]
    assert [b.bn_out.num_features for b in paper.decoder] == [136, 68, 34, 17, 17]
    assert [c.out_channels for c in paper.input_path] == [34, 68, 136, 272, 544]
    assert all(c.kernel_size == (2, 2) and c.stride == (2, 2) for c in list(paper.input_path) + list(paper.downsample))


@pytest.mark.parametrize("size", [(36, 48), (32, 44)])
def test_rejects_indivisible_size(size):
    with pytest.raises(ValueError, match=r"must be divisible by 8"):
        tiny()(torch.zeros(1, 1, *size))


def test_channels_last_changes_the_layout_not_the_numbers():
    """Channels-last weights (the default) against the default layout with the same parameters:
    the same state dict keys, the same logits and gradients up to float rounding, and every
    convolution hands the next layer a contiguous (NCHW) tensor."""
    fast = tiny(channels_last=True)
    plain = tiny(channels_last=False)
    plain.load_state_dict(fast.state_dict())
    convs = [m for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert all(c.weight.is_contiguous() for c in plain.modules() if isinstance(c, torch.nn.Conv2d))
    x = torch.randn(2, 1, 32, 48)
    target = (torch.rand(2, 1, 32, 48) > 0.5).float()
    outputs = {}
    for name, model in (("fast", fast), ("plain", plain)):
        y = model(x)
        torch.nn.functional.binary_cross_entropy_with_logits(y, target).backward()
        outputs[name] = (y.detach(), {k: p.grad.clone() for k, p in model.named_parameters()})
    assert outputs["fast"][0].is_contiguous()

    def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:  # float32 rounding through ~150 layers
        return float((a - b).norm() / b.norm())

    assert relative_error(outputs["fast"][0], outputs["plain"][0]) < 1e-5
    # all gradients as one vector (some batch-norm biases feed another batch norm: their gradient is ~0, pure rounding)
    names = list(outputs["plain"][1])
    assert relative_error(torch.cat([outputs["fast"][1][k].flatten() for k in names]),
                          torch.cat([outputs["plain"][1][k].flatten() for k in names])) < 1e-4
    # a card written before the option existed rebuilds the fast layout
    config = {k: v for k, v in plain.config.items() if k != "channels_last"}
    assert create(**config).config["channels_last"] is True


def _zero(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()


@pytest.mark.parametrize("branch", BRANCHES)
def test_every_branch_contributes(branch):
    torch.manual_seed(0)
    block = DUCKBlock(3, 4).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = block(x)
        ablated = copy.deepcopy(block)
        _zero(ablated.branches[branch])
        assert torch.count_nonzero(ablated.branches[branch](ablated.bn_in(x))) == 0  # the branch is silenced
        assert not torch.allclose(ablated(x), before, atol=1e-4)
    # and inside the network: silencing the branch of the first encoder block changes the logits
    model = tiny().eval()
    x = torch.randn(1, 1, 32, 48)
    with torch.no_grad():
        before = model(x)
        _zero(model.encoder[0].branches[branch])
        assert not torch.allclose(model(x), before, atol=1e-5)


def test_second_downsampling_path_is_added_at_every_level():
    model = tiny().eval()
    x = torch.randn(1, 1, 32, 48)
    with torch.no_grad():
        before = model(x)
        for level in range(len(model.input_path)):
            ablated = copy.deepcopy(model)
            _zero(ablated.input_path[level])
            assert not torch.allclose(ablated(x), before, atol=1e-5), level


def _impulse_support(branch: torch.nn.Module, size: int = 31) -> tuple[list[int], list[int]]:
    """Rows and columns (relative to the impulse) where a branch with all-positive weights responds."""
    with torch.no_grad():
        for m in branch.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(0.1)
                m.bias.zero_()
    branch.eval()
    x = torch.zeros(1, 1, size, size)
    c = size // 2
    x[0, 0, c, c] = 1.0
    with torch.no_grad():
        y = branch(x)[0, 0]
    assert y.shape == (size, size)  # 'same' padding
    rows = (y.abs().sum(dim=1) > 0).nonzero().flatten() - c
    cols = (y.abs().sum(dim=0) > 0).nonzero().flatten() - c
    return rows.tolist(), cols.tolist()


def test_dilations_and_kernels_are_as_in_the_paper():
    block = DUCKBlock(1, 1)
    convs = {name: [m for m in b.modules() if isinstance(m, torch.nn.Conv2d)] for name, b in block.branches.items()}
    assert [c.dilation for c in convs["widescope"]] == [(1, 1), (2, 2), (3, 3)]
    assert [c.dilation for c in convs["midscope"]] == [(1, 1), (2, 2)]
    assert all(c.kernel_size == (3, 3) for c in convs["widescope"] + convs["midscope"])
    assert [c.kernel_size for c in convs["separated"]] == [(1, 6), (6, 1)]
    for depth in (1, 2, 3):  # residual units: two 3x3 convolutions and a 1x1 shortcut each
        kernels = [c.kernel_size for c in convs[f"residual_{depth}"]]
        assert kernels == [(1, 1), (3, 3), (3, 3)] * depth
    # receptive fields: widescope 1 + 2 * (1 + 2 + 3) = 13, midscope 1 + 2 * (1 + 2) = 7 (dense: the
    # dilations leave no holes), separated 6 x 6 with the even kernel's extra tap at the end, as Keras' 'same'
    assert _impulse_support(block.branches["widescope"]) == (list(range(-6, 7)), list(range(-6, 7)))
    assert _impulse_support(block.branches["midscope"]) == (list(range(-3, 4)), list(range(-3, 4)))
    assert _impulse_support(block.branches["separated"]) == (list(range(-3, 3)), list(range(-3, 3)))
    assert _impulse_support(block.branches["residual_2"]) == (list(range(-4, 5)), list(range(-4, 5)))
