"""MedSegDiff-V2: shapes, gradients, size check, noise schedule, DDIM algebra (with an oracle denoiser),
sampling outputs, a tiny overfit, config round trip, conditioning, Grad-CAM."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from fetal_lib.networks.parameters import count_parameters  # noqa: E402
from fetal_lib.networks.torch.medsegdiff import (  # noqa: E402
    DenoiserAtStep, MedSegDiffV2, NBPFilter, SpectralCrossAttention, UncertainSpatialAttention,
    create, make_betas,
)

from stand_ins import assert_finite_gradients  # noqa: E402

# the registry's example (input (2, 32, 48): one image channel + the noisy mask)
EXAMPLE = {"base_width": 8, "depth": 3, "timesteps": 100}
EXAMPLE_PARAMETERS = 125601
TINY = {"base_width": 4, "depth": 2, "timesteps": 1000, "heads": 2, "nbp_hidden": 8, "nbp_blocks": 1}


def _disk(h: int = 32, w: int = 32, r: float = 8.0) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (((yy - h / 2) ** 2 + (xx - w / 2) ** 2) <= r * r).float()[None, None]


@pytest.mark.parametrize("options,channels", [(EXAMPLE, 1), ({**TINY, "patch_size": 1, "in_channels": 3}, 3),
                                              ({**TINY, "concat_image": False, "ssformer_blocks": 2}, 1)])
def test_shapes_and_backward(options, channels):
    torch.manual_seed(0)
    model = create(**options)
    x = torch.rand(2, channels + 1, 32, 48)
    out = model(x, torch.tensor([0, 57]))
    assert out.shape == (2, 1, 32, 48)
    assert model(x).shape == (2, 1, 32, 48)  # t defaults to zeros
    out.pow(2).mean().backward()
    assert_finite_gradients(model)


def test_example_parameter_count():
    assert count_parameters(create(**EXAMPLE)) == EXAMPLE_PARAMETERS


def test_rejects_bad_sizes():
    model = create(**EXAMPLE)  # patch 2 * 2 ** (3 - 1) = 8
    with pytest.raises(ValueError, match=r"\(30, 48\) must be divisible by 8"):
        model(torch.zeros(1, 2, 30, 48))
    with pytest.raises(ValueError, match="image channels"):
        model(torch.zeros(1, 3, 32, 48))
    with pytest.raises(ValueError, match="channel_mult"):
        create(depth=3, channel_mult=(1, 2))


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_noise_schedule(schedule):
    betas = make_betas(schedule, 1000)
    assert ((betas > 0) & (betas < 1)).all()
    abar = create(**{**TINY, "schedule": schedule}).alphas_cumprod
    assert abar.shape == (1000,)
    assert ((abar > 0) & (abar < 1)).all()
    assert (abar[1:] < abar[:-1]).all()
    assert abar[0] > 0.99 and abar[-1] < 0.01


def test_q_sample_inverts():
    model = create(**TINY)
    g = torch.Generator().manual_seed(1)
    x0 = (torch.rand(6, 1, 8, 8, generator=g) > 0.5).float() * 2 - 1
    noise = torch.randn(6, 1, 8, 8, generator=g)
    t = torch.tensor([0, 1, 100, 500, 998, 999])
    x_t = model.q_sample(x0, t, noise)
    abar = model.alphas_cumprod[t].view(-1, 1, 1, 1)
    assert torch.allclose(x_t, abar.sqrt() * x0 + (1 - abar).sqrt() * noise)
    assert torch.allclose(model.predict_x0(x_t, t, noise), x0, atol=1e-4)
    with pytest.raises(ValueError, match="schedule"):
        make_betas("quadratic", 10)


class OracleDenoiser(MedSegDiffV2):
    """Returns the true noise of x_t with respect to a known clean mask, and records its inputs."""

    def __init__(self, x0: torch.Tensor, **options):
        super().__init__(**options)
        self.x0 = x0
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x, t=None):
        x_t = x[:, self.in_channels:]
        x0 = self.x0.repeat_interleave(x.shape[0] // self.x0.shape[0], dim=0)
        abar = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        self.calls.append((x_t.clone(), t.clone()))
        return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()


@pytest.mark.parametrize("steps", [1, 5])
def test_ddim_recovers_the_mask_with_the_true_noise(steps):
    mask = torch.cat([_disk(16, 24, 5.0), 1 - _disk(16, 24, 3.0)])
    model = OracleDenoiser(mask * 2 - 1, **TINY)
    image = torch.rand(2, 1, 16, 24)
    prob, unc = model.sample(image, steps=steps, n_samples=3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(prob, mask, atol=1e-4)
    assert unc.max() < 1e-4
    ts = [int(t[0]) for _, t in model.calls]
    assert ts == model.ddim_timesteps(steps) and ts[0] == 999 and ts[-1] == (999 if steps == 1 else 0)
    # deterministic DDIM keeps the initial noise: every visited x_t is q_sample(x0, t, eps_T)
    x_T, t_T = model.calls[0]
    x0 = model.x0.repeat_interleave(3, dim=0)
    eps_T = (x_T - model.alphas_cumprod[t_T].view(-1, 1, 1, 1).sqrt() * x0) / (1 - model.alphas_cumprod[t_T].view(-1, 1, 1, 1)).sqrt()
    for x_t, t in model.calls:
        assert torch.allclose(x_t, model.q_sample(x0, t, eps_T), atol=1e-4)


class OracleX0(MedSegDiffV2):
    """With ``prediction="x0"``: returns the known clean mask itself."""

    def __init__(self, x0: torch.Tensor, **options):
        super().__init__(**options, prediction="x0")
        self.x0 = x0

    def forward(self, x, t=None):
        return self.x0.repeat_interleave(x.shape[0] // self.x0.shape[0], dim=0)


@pytest.mark.parametrize("steps", [1, 5])
def test_x0_prediction_samples_and_trains_on_the_mask(steps):
    mask = torch.cat([_disk(16, 24, 5.0), 1 - _disk(16, 24, 3.0)])
    oracle = OracleX0(mask * 2 - 1, **TINY)
    prob, unc = oracle.sample(torch.rand(2, 1, 16, 24), steps=steps, n_samples=3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(prob, mask, atol=1e-5) and unc.max() < 1e-5
    # the training target is the clean mask in [-1, 1]: an oracle has zero denoising loss (anchor loss off)
    exact = OracleX0(mask * 2 - 1, **{**TINY, "anchor_weight": 0.0})
    exact.denoise = lambda x, t: (exact.x0.repeat_interleave(x.shape[0] // 2, dim=0), None)
    assert float(exact.training_loss(torch.rand(2, 1, 16, 24), mask)) == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(ValueError, match="prediction must be"):
        MedSegDiffV2(**TINY, prediction="v")


def test_stochastic_ddim_with_the_true_noise_also_recovers_the_mask():
    mask = _disk(16, 24, 5.0)
    model = OracleDenoiser(mask * 2 - 1, **TINY)
    prob, unc = model.sample(torch.rand(1, 1, 16, 24), steps=5, n_samples=2, eta=1.0,
                             generator=torch.Generator().manual_seed(0))
    assert torch.allclose(prob, mask, atol=1e-4) and unc.max() < 1e-4


def test_ddim_timesteps():
    model = create(**TINY)
    assert model.ddim_timesteps(1) == [999]
    assert model.ddim_timesteps(5) == [999, 749, 500, 250, 0]
    assert len(model.ddim_timesteps(5000)) == 1000
    with pytest.raises(ValueError):
        model.ddim_timesteps(0)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sampling_is_deterministic_given_the_generator(eta):
    torch.manual_seed(0)
    model = create(**EXAMPLE)
    image = torch.rand(1, 1, 32, 48)
    a = model.sample(image, steps=3, n_samples=2, eta=eta, generator=torch.Generator().manual_seed(5))
    b = model.sample(image, steps=3, n_samples=2, eta=eta, generator=torch.Generator().manual_seed(5))
    c = model.sample(image, steps=3, n_samples=2, eta=eta, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_sample_outputs():
    torch.manual_seed(0)
    model = create(**EXAMPLE)
    image = torch.rand(2, 1, 32, 48)
    prob, unc = model.sample(image, steps=2, n_samples=3, generator=torch.Generator().manual_seed(0))
    assert prob.shape == unc.shape == (2, 1, 32, 48)
    assert prob.min() >= 0 and prob.max() <= 1 and unc.min() >= 0
    assert not prob.requires_grad  # sampled under no_grad
    prob1, unc1 = model.sample(image, steps=2, n_samples=1, generator=torch.Generator().manual_seed(0))
    assert prob1.shape == (2, 1, 32, 48) and torch.equal(unc1, torch.zeros_like(unc1))


def test_tiny_overfit_lowers_the_noise_loss():
    torch.manual_seed(0)
    model = create(base_width=8, depth=2, timesteps=100, heads=2, anchor_weight=0.0)
    mask = _disk().repeat(8, 1, 1, 1)
    image = mask + 0.1 * torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))

    def evaluate() -> float:
        g = torch.Generator().manual_seed(123)
        with torch.no_grad():
            return sum(float(model.training_loss(image, mask, generator=g)) for _ in range(4)) / 4

    before = evaluate()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        optimiser.zero_grad()
        model.training_loss(image, mask, generator=g).backward()
        optimiser.step()
    after = evaluate()
    assert after < 0.7 * before, (before, after)


def test_anchor_loss_is_added():
    torch.manual_seed(0)
    with_anchor = create(**EXAMPLE)
    without = create(**{**EXAMPLE, "anchor_weight": 0.0})
    without.load_state_dict(with_anchor.state_dict())
    image, mask = torch.rand(2, 1, 32, 48), (torch.rand(2, 1, 32, 48) > 0.5).float()
    a = with_anchor.training_loss(image, mask, generator=torch.Generator().manual_seed(0))
    b = without.training_loss(image, mask, generator=torch.Generator().manual_seed(0))
    assert a.ndim == 0 and a > b > 0


def test_config_rebuilds_the_model():
    torch.manual_seed(0)
    model = create(**{**EXAMPLE, "schedule": "cosine", "channel_mult": (1, 2, 2)})
    again = create(**model.config)
    assert again.config == model.config
    again.load_state_dict(model.state_dict())
    x, t = torch.rand(2, 2, 32, 48), torch.tensor([3, 90])
    with torch.no_grad():
        assert torch.equal(model(x, t), again(x, t))
    assert torch.equal(model.alphas_cumprod, again.alphas_cumprod)


@pytest.mark.parametrize("concat_image", [True, False])
def test_the_condition_matters(concat_image):
    torch.manual_seed(0)
    model = create(**{**EXAMPLE, "concat_image": concat_image})
    x_t, t = torch.randn(2, 1, 32, 48), torch.tensor([10, 60])
    with torch.no_grad():
        a = model(torch.cat([torch.rand(2, 1, 32, 48), x_t], 1), t)
        b = model(torch.cat([torch.rand(2, 1, 32, 48), x_t], 1), t)
        c = model(torch.cat([torch.rand(2, 1, 32, 48), x_t], 1), torch.tensor([11, 61]))
    assert (a - b).abs().max() > 1e-4
    assert not torch.equal(b, c)  # the timestep matters too


def test_anchor_attention_and_spectral_modules():
    usa = UncertainSpatialAttention(out_channels=4, patch=2)
    const = torch.full((1, 1, 8, 8), 0.3)
    assert torch.allclose(usa.smooth(const), const)
    a = _disk(16, 16, 4.0)
    smooth = usa.smooth(a)
    assert smooth.shape == a.shape and (smooth > 0).sum() > (a > 0).sum()  # the anchor spreads
    assert usa(torch.randn(2, 4, 8, 8), torch.randn(2, 1, 16, 16)).shape == (2, 4, 8, 8)

    nbp = NBPFilter(heads=2, time_dim=16, hidden=8, blocks=2)
    temb = torch.randn(3, 16)
    mask = nbp(6, 10, temb)
    assert mask.shape == (3, 2, 6, 6) and ((mask > 0) & (mask < 1)).all()
    assert not torch.allclose(mask[0], mask[1])  # time-dependent

    attn = SpectralCrossAttention(dim=8, heads=2, time_dim=16, nbp_hidden=8, nbp_blocks=1)
    q, ctx = torch.randn(3, 8, 6, 10), torch.randn(3, 8, 6, 10)
    out = attn(q, ctx, temb)
    assert out.shape == q.shape and out.dtype == torch.float32
    assert not torch.allclose(out, attn(q, torch.randn(3, 8, 6, 10), temb))


def test_gradcam_on_the_denoiser_at_a_step():
    pytest.importorskip("captum")
    from fetal_lib.explain.gradcam_torch import gradcam

    torch.manual_seed(0)
    model = create(**EXAMPLE)
    image = torch.rand(3, 1, 32, 48)
    t = 50
    x_t = model.q_sample(torch.zeros(1, 1, 32, 48), torch.tensor([t]), torch.randn(1, 1, 32, 48))
    wrapper = DenoiserAtStep(model, t, x_t)
    logits = wrapper(image)
    assert logits.shape == (3, 1, 32, 48) and torch.isfinite(logits).all()
    maps = gradcam(wrapper, model.gradcam_layer(), image, target="segmentation")
    assert maps.shape == (3, 32, 48)
    assert (maps >= 0).all() and (maps <= 1).all() and maps.dtype.name == "float32"
    import numpy as np

    assert np.isfinite(maps).all()
    assert model.training  # gradcam restores the mode

    view = model.gradcam_view(32, 48)  # the same, its fixed noisy mask drawn from a seed
    assert view.t == 50 and torch.equal(view.x_t, model.gradcam_view(32, 48).x_t)
    maps = gradcam(view, model.gradcam_layer(), image, target="segmentation", normalise=False)
    assert maps.shape == (3, 32, 48) and np.isfinite(maps).all() and (maps >= 0).all()


def test_trains_under_bfloat16_autocast():
    """The seg benchmark trains in bfloat16 autocast on CPUs that have it: the FFT block must run in float32 there."""
    from fetal_lib.networks.torch.medsegdiff import create

    torch.manual_seed(0)
    model = create(base_width=8, depth=3, timesteps=100)
    image = torch.rand(2, 1, 32, 48)
    mask = (torch.rand(2, 1, 32, 48) > 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.training_loss(image, mask)
    loss.float().backward()
    assert torch.isfinite(loss.float())
    assert_finite_gradients(model)
