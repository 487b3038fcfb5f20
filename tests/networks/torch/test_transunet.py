"""TransUNet: the size check, resized position embeddings, global token mixing by the attention
(shapes, a backward pass and rebuilding from the config: test_segmenters.py; Grad-CAM: test_segmenter_gradcam.py)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from fetal_lib.networks.torch.transunet import TransUNet, create  # noqa: E402

from stand_ins import TRANSUNET_TINY as TINY, tiny_transunet as tiny  # noqa: E402


def test_defaults_and_paper_sizes_build():
    model = create()
    assert model.config["in_channels"] == 1 and model.config["num_classes"] == 1
    n = sum(p.numel() for p in model.parameters())
    assert 300_000 < n < 1_500_000
    assert model(torch.zeros(1, 1, 128, 192)).shape == (1, 1, 128, 192)


@pytest.mark.parametrize("size", [(40, 48), (32, 50)])
def test_rejects_indivisible_size(size):
    with pytest.raises(ValueError, match=r"must be divisible by 16"):
        tiny()(torch.zeros(1, 1, *size))


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        create(hidden_size=10, num_heads=4)
    with pytest.raises(ValueError, match="img_size"):
        create(img_size=(100, 192))


def test_position_embeddings_are_resized_for_another_input_size():
    torch.manual_seed(0)
    model = create(img_size=(128, 192), **TINY).eval()
    assert model.position_embedding.shape == (1, 8 * 12, 16)
    assert model.position_embeddings((8, 12)) is model.position_embedding  # the built grid: unchanged
    resized = model.position_embeddings((4, 6))
    assert resized.shape == (1, 4 * 6, 16)
    # bilinear resizing keeps a constant embedding constant
    with torch.no_grad():
        model.position_embedding.copy_(torch.arange(16.0).expand(1, 96, 16))
    assert torch.allclose(model.position_embeddings((4, 6)), torch.arange(16.0).expand(1, 24, 16))
    with torch.no_grad():
        y = model(torch.randn(1, 1, 64, 96))
    assert y.shape == (1, 1, 64, 96) and torch.isfinite(y).all()


def test_attention_mixes_tokens_across_the_whole_image():
    """The output at the opposite corner depends on the top-left pixel through the attention, and
    only through it: with the attention's output projections zeroed, the rest of the network (CNN,
    token-wise norms and MLPs, decoder) reaches about 100 pixels, too little to connect the
    corners of a 128x192 image. Checked on the exact input gradient (a finite change at one
    pixel moves the far logits by less than float32 rounding at initialisation)."""
    torch.manual_seed(0)
    model = create(img_size=(128, 192), **TINY).eval()
    x = torch.rand(1, 1, 128, 192)

    def corner_gradients(m: TransUNet) -> tuple[float, float]:
        """d(sum of the logits in the bottom-right corner) and d(... top-left corner) / d(top-left pixel)."""
        xx = x.clone().requires_grad_()
        y = m(xx)
        far, = torch.autograd.grad(y[..., 64:, 144:].sum(), xx, retain_graph=True)
        near, = torch.autograd.grad(y[..., :16, :16].sum(), xx)
        return float(far[0, 0, 0, 0]), float(near[0, 0, 0, 0])

    far, near = corner_gradients(model)
    assert far != 0.0 and near != 0.0
    for layer in model.layers:
        with torch.no_grad():
            layer.attn.out_proj.weight.zero_()
            layer.attn.out_proj.bias.zero_()
    far, near = corner_gradients(model)
    assert far == 0.0 and near != 0.0
