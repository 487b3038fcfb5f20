"""MedSegDiff-V2: conditional diffusion segmentation with an anchor condition and a spectrum-space transformer.

After Wu, Ji, Fu, Xu, Jin and Xu, "MedSegDiff-V2: Diffusion-Based Medical Image Segmentation with
Transformer", AAAI 2024 (arXiv:2301.11798), bib key ``wu2024medsegdiffv2``. A small, plain-torch
version for CPU training.

How it works. The segmentation mask ``x0`` (scaled to [-1, 1]) is noised by the DDPM forward process,
``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``, and a denoising U-Net predicts ``eps`` from ``x_t``,
the timestep ``t`` and the image. As in the paper, the image enters through a separate **condition
model** (a segmentation U-Net on the image) in two places:

* **Anchor condition** (the paper's uncertain spatial attention, U-SA): the condition model's own
  segmentation ``f_c`` (its sigmoid probability, the "anchor") is smoothed by a Gaussian kernel with a
  learnable standard deviation and combined as ``f_anc = max(f_c * k_Gauss, f_c)``; the first-stage
  diffusion features become ``f_d0' = sigmoid(conv1x1(f_anc)) * f_d0 + f_d0``.
* **Semantic condition** (SS-Former): at the bottleneck, the condition model's deepest embedding ``c``
  and the diffusion embedding ``e`` interact through ``ssformer_blocks`` blocks, each made of two
  cross-attentions computed on the 2-D FFT (``rfft2``) of the embeddings: first the noise is encoded into
  the condition (queries from ``c``, keys/values from ``e``), then the condition back into the noise
  space (queries from ``e``, keys/values from the updated ``c``), then a feed-forward layer on ``e``.
  In each cross-attention the context's spectrum is multiplied by a time-dependent **neural band-pass
  filter** (NBP-Filter): a small MLP on the frequency coordinates ``(f_y, f_x, |f|)`` whose hidden
  layers are modulated (FiLM) by the time embedding, ending in a sigmoid mask per head and frequency.
* A sinusoidal timestep embedding followed by a two-layer MLP is added inside every residual block of
  the diffusion U-Net (guided-diffusion's ``use_scale_shift_norm=False`` form).

Training loss (:meth:`MedSegDiffV2.training_loss`): ``t`` uniform in ``[0, timesteps)``, MSE between the
predicted and the true noise, plus ``anchor_weight`` times the anchor loss (soft Dice + binary cross
entropy) on the condition model's own segmentation. Sampling (:meth:`MedSegDiffV2.sample`): DDIM
(Song et al. 2021) with ``steps`` steps from pure noise, ``n_samples`` samples per image in one batch;
the per-pixel mean of the samples is the probability and their standard deviation the uncertainty.
Grad-CAM: :meth:`MedSegDiffV2.gradcam_layer` is the condition model's last encoder stage and
:class:`DenoiserAtStep` (or :meth:`MedSegDiffV2.gradcam_view`) turns the denoiser into a map
image -> logits-like x0 estimate at a fixed step and fixed noisy mask.
Noise schedule: **linear** betas by default (``1e-4 .. 0.02`` scaled by ``1000 / timesteps``, as the
official MedSegDiff code uses), ``schedule="cosine"`` gives Nichol and Dhariwal's cosine schedule.

Kept from the paper: the two networks (condition model + denoising U-Net) trained jointly end to end;
the anchor condition with a learnable Gaussian kernel, the max with the unsmoothed anchor and the
sigmoid-gated residual product on the first stage; the SS-Former at the bottleneck with its two
cross-attentions per block (noise -> condition, condition -> noise) computed in the frequency domain;
a time-dependent NBP-Filter on the spectrum; the anchor loss (Dice + cross entropy) on the condition
model's output; epsilon prediction with an MSE loss, 1000 training steps; sampling an ensemble of
masks and averaging them.

Simplified (to fit a few minutes of CPU training):

* Patch stem: by default (``patch_size=2``) both U-Nets work at half resolution after a lossless
  space-to-depth (``pixel_unshuffle``) of their input and return to full resolution with
  ``pixel_shuffle``; ``patch_size=1`` gives the paper's full-resolution first stage.
* One residual block per level, no self-attention blocks inside the U-Net (the official code uses two
  residual blocks per level and self-attention at 16x16), no dropout, a fixed variance (the official
  code learns the variance, ``learn_sigma``, with the hybrid loss) and an additive time embedding.
* The condition model is a small convolutional U-Net (conv-GroupNorm-LeakyReLU, two convolutions per
  level) instead of the paper's segmentation backbone (nnU-Net's ``Generic_UNet`` with 32 base features
  and 5 poolings in the official code).
* The diffusion U-Net's input is the image concatenated with ``x_t`` (``concat_image=True``), as in
  the official code; ``concat_image=False`` feeds only ``x_t``, so the image enters only through the
  anchor and the SS-Former, as drawn in the paper's figure.
* The SS-Former's attention formula is our reading of the paper: tokens are the frequency bins of the
  ``rfft2`` of 1x1-projected, GroupNorm-ed embeddings, with real and imaginary parts concatenated
  (scores are ``Re(q . conj(k)) / sqrt(2 d)``), softmax attention over the context's frequencies, values
  are the context's spectrum; the NBP mask multiplies the context's spectrum (keys and values); the
  output spectrum goes back by ``irfft2`` and a 1x1 projection into a residual.
* The anchor loss is added at every step with weight ``anchor_weight`` (the paper adds it every
  alpha-th step) and uses binary cross entropy; a mean and a standard deviation over the samples replace
  the paper's ensemble fusion; DDIM with a few steps replaces the official code's 1000-step DDPM (or
  DPM-solver) sampling.

Sizes. The official code (``num_channels 128``, ``num_res_blocks 2``, self-attention at 16x16,
256x256 inputs, channel multipliers ``(1, 1, 2, 2, 4, 4)``, 1000 steps, linear schedule; condition
model ``Generic_UNet`` with 32 base features and 5 poolings) is far larger (not instantiated here). The CPU
default here (``base_width=16``, ``depth=4``, ``channel_mult=(1, 2, 4, 4)``, condition widths
8-16-32-32, ``patch_size=2``, one SS-Former block with 4 heads, NBP-Filters with 2 hidden layers of 32)
has 785,745 parameters (condition model 76,644, SS-Former 72,136). :func:`paper_config`
(``base_width=128``, ``channel_mult=(1, 1, 2, 2, 4, 4)``, condition widths 32-64-128-256-480-480,
``patch_size=1``, 4 SS-Former blocks with 8 heads, NBP-Filters with 4 hidden layers of 64) approximates
the paper's widths with this module's one-block-per-level layout: 78,940,483 parameters.

Input of ``forward``: (batch, in_channels + 1, H, W), the image channels followed by the noisy mask
``x_t``, and ``t`` a (batch,) long tensor (default zeros); H and W divisible by
``patch_size * 2 ** (depth - 1)``. Output: the predicted noise (batch, 1, H, W).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
import torch.nn.functional as F

from fetal_lib.devices import random_normal


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups (as many as divide ``channels``)."""
    return nn.GroupNorm(math.gcd(channels, 8), channels)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (batch, dim) of integer timesteps (as in DDPM / guided-diffusion)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def make_betas(schedule: str, timesteps: int) -> torch.Tensor:
    """Noise variances beta_1..beta_T (float64): ``"linear"`` (DDPM, scaled to T) or ``"cosine"``."""
    if schedule == "linear":
        scale = 1000.0 / timesteps
        betas = torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
    elif schedule == "cosine":
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        abar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = 1 - abar[1:] / abar[:-1]
    else:
        raise ValueError(f"schedule must be 'linear' or 'cosine'; got {schedule!r}")
    return betas.clamp(1e-8, 0.999)


class TimeEmbedding(nn.Module):
    """Sinusoidal timestep embedding followed by Linear-SiLU-Linear (``dim`` -> ``4 dim``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, 4 * dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.dim))


class ResBlock(nn.Module):
    """GN-SiLU-conv3, + projected time embedding, GN-SiLU-conv3, plus a (1x1) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, time_dim: int):
        super().__init__()
        self.norm1 = _norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time = nn.Linear(time_dim, out_ch)
        self.norm2 = _norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.shortcut = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 convolution."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class ConvBlock(nn.Module):
    """Two (conv3-GroupNorm-LeakyReLU) layers, the nnU-Net stage of the condition model."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, padding=1), _norm(out_ch), nn.LeakyReLU(0.01),
            nn.Conv2d(out_ch, out_ch, 3, padding=1), _norm(out_ch), nn.LeakyReLU(0.01),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ConditionUNet(nn.Module):
    """The condition model: a small segmentation U-Net on the image.

    Returns its own segmentation logits (batch, 1, H, W) (the anchor, supervised by the anchor loss)
    and its deepest embedding (batch, widths[-1], H / (patch 2^(depth-1)), ...) for the SS-Former.
    """

    def __init__(self, in_channels: int, widths: Sequence[int], patch: int):
        super().__init__()
        self.patch = patch
        self.encoders = nn.ModuleList()
        prev = in_channels * patch * patch
        for w in widths:
            self.encoders.append(ConvBlock(prev, w))
            prev = w
        self.decoders = nn.ModuleList()
        for w in reversed(list(widths[:-1])):
            self.decoders.append(ConvBlock(prev + w, w))
            prev = w
        self.head = nn.Conv2d(prev, patch * patch, 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.pixel_unshuffle(image, self.patch)
        skips = []
        for i, enc in enumerate(self.encoders):
            x = enc(x)
            if i < len(self.encoders) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        deepest = x
        for dec, skip in zip(self.decoders, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, skip], dim=1))
        return F.pixel_shuffle(self.head(x), self.patch), deepest


class UncertainSpatialAttention(nn.Module):
    """Anchor condition: ``f_d0 * sigmoid(conv1x1(max(gauss(a), a))) + f_d0`` with ``a`` the anchor.

    The Gaussian kernel ((2 radius + 1) taps, separable, replicate padding) has a learnable standard
    deviation (in full-resolution pixels); ``a`` is the condition model's sigmoid probability, brought
    to the first stage's resolution by space-to-depth.
    """

    def __init__(self, out_channels: int, patch: int, radius: int = 3, sigma: float = 1.0):
        super().__init__()
        self.patch = patch
        self.radius = radius
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))
        self.gate = nn.Conv2d(patch * patch, out_channels, 1)

    def smooth(self, a: torch.Tensor) -> torch.Tensor:
        """The anchor convolved with the (normalised) Gaussian kernel."""
        r = self.radius
        taps = torch.arange(-r, r + 1, dtype=a.dtype, device=a.device)
        k = torch.exp(-0.5 * (taps / self.log_sigma.exp()) ** 2)
        k = k / k.sum()
        a = F.conv2d(F.pad(a, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        return F.conv2d(F.pad(a, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))

    def forward(self, features: torch.Tensor, anchor_logits: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(anchor_logits)
        f_anc = F.pixel_unshuffle(torch.maximum(self.smooth(a), a), self.patch)
        return features * torch.sigmoid(self.gate(f_anc)) + features


class NBPFilter(nn.Module):
    """Neural band-pass filter: a mask in (0, 1) per head over the ``rfft2`` frequencies.

    An MLP on the frequency coordinates (f_y, f_x, |f|), scaled to [-1, 1], with ``blocks`` hidden
    layers (Linear-LayerNorm, FiLM by the time embedding, ReLU), then a sigmoid per head.
    """

    def __init__(self, heads: int, time_dim: int, hidden: int = 32, blocks: int = 2):
        super().__init__()
        if blocks < 1:
            raise ValueError("nbp_blocks must be at least 1")
        self.inp = nn.Linear(3, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(blocks))
        self.films = nn.ModuleList(nn.Linear(time_dim, 2 * hidden) for _ in range(blocks))
        self.out = nn.Linear(hidden, heads)
        nn.init.constant_(self.out.bias, 2.0)  # start mostly open (sigmoid(2) = 0.88)

    def forward(self, h: int, w: int, temb: torch.Tensor) -> torch.Tensor:
        """Mask (batch, heads, h, w // 2 + 1) for an h x w map."""
        fy = torch.fft.fftfreq(h, device=temb.device, dtype=temb.dtype) * 2
        fx = torch.fft.rfftfreq(w, device=temb.device, dtype=temb.dtype) * 2
        gy, gx = torch.meshgrid(fy, fx, indexing="ij")
        coords = torch.stack([gy, gx, torch.sqrt(gy**2 + gx**2) / math.sqrt(2)], dim=-1).reshape(1, -1, 3)
        x = self.inp(coords)
        for lin, norm, film in zip(self.layers, self.norms, self.films):
            scale, shift = film(F.silu(temb)).chunk(2, dim=-1)
            x = F.relu(norm(lin(x)) * (1 + scale[:, None]) + shift[:, None])
        mask = torch.sigmoid(self.out(x))  # (batch, h * wf, heads)
        return mask.transpose(1, 2).reshape(temb.shape[0], -1, h, fx.numel())


class SpectralCrossAttention(nn.Module):
    """Cross-attention in the frequency domain, the context's spectrum band-passed by an NBP-Filter.

    ``query`` and ``context`` (batch, dim, h, w) are GroupNorm-ed, projected (1x1), transformed by
    ``rfft2``; each frequency bin is a token (real and imaginary parts concatenated); the output
    spectrum returns to space by ``irfft2`` and a 1x1 projection.
    """

    def __init__(self, dim: int, heads: int, time_dim: int, nbp_hidden: int, nbp_blocks: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads ({heads}) must divide the bottleneck width ({dim})")
        self.heads = heads
        self.norm_q = _norm(dim)
        self.norm_kv = _norm(dim)
        self.to_q = nn.Conv2d(dim, dim, 1)
        self.to_k = nn.Conv2d(dim, dim, 1)
        self.to_v = nn.Conv2d(dim, dim, 1)
        self.nbp = NBPFilter(heads, time_dim, nbp_hidden, nbp_blocks)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, query: torch.Tensor, context: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        # The FFT and complex numbers have no bfloat16: under autocast the block computes in float32.
        with torch.autocast(query.device.type, enabled=False):
            return self._forward(query.float(), context.float(), temb.float())

    def _forward(self, query: torch.Tensor, context: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        b, c, h, w = query.shape
        d = c // self.heads
        ctx = self.norm_kv(context)
        q = torch.fft.rfft2(self.to_q(self.norm_q(query)), norm="ortho")
        k = torch.fft.rfft2(self.to_k(ctx), norm="ortho")
        v = torch.fft.rfft2(self.to_v(ctx), norm="ortho")
        wf = q.shape[-1]
        mask = self.nbp(h, w, temb).reshape(b, self.heads, 1, h * wf)

        def tokens(z: torch.Tensor, band: torch.Tensor | None = None) -> torch.Tensor:
            z = z.reshape(b, self.heads, d, h * wf)
            if band is not None:
                z = z * band
            return torch.cat([z.real, z.imag], dim=2).transpose(2, 3)  # (b, heads, tokens, 2d)

        out = F.scaled_dot_product_attention(tokens(q), tokens(k, mask), tokens(v, mask)).transpose(2, 3)
        spectrum = torch.complex(out[:, :, :d], out[:, :, d:]).reshape(b, c, h, wf)
        return self.proj(torch.fft.irfft2(spectrum, s=(h, w), norm="ortho"))


class SSFormerBlock(nn.Module):
    """One SS-Former block: noise -> condition, condition -> noise, then a feed-forward on the noise."""

    def __init__(self, dim: int, heads: int, time_dim: int, nbp_hidden: int, nbp_blocks: int):
        super().__init__()
        self.noise_to_condition = SpectralCrossAttention(dim, heads, time_dim, nbp_hidden, nbp_blocks)
        self.condition_to_noise = SpectralCrossAttention(dim, heads, time_dim, nbp_hidden, nbp_blocks)
        self.ffn = nn.Sequential(_norm(dim), nn.Conv2d(dim, 2 * dim, 1), nn.GELU(), nn.Conv2d(2 * dim, dim, 1))

    def forward(self, e: torch.Tensor, c: torch.Tensor, temb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = c + self.noise_to_condition(c, e, temb)
        e = e + self.condition_to_noise(e, c, temb)
        return e + self.ffn(e), c


def _widths(base: int, mult: Sequence[int] | None, depth: int, name: str) -> list[int]:
    if mult is None:
        mult = [min(2**i, 4) for i in range(depth)]
    if len(mult) != depth:
        raise ValueError(f"{name} has {len(mult)} entries; depth is {depth}")
    return [base * int(m) for m in mult]


class MedSegDiffV2(nn.Module):
    """MedSegDiff-V2 denoiser, noise schedule, training loss and DDIM sampler.

    Args:
        in_channels: image channels (the input of ``forward`` has one more: the noisy mask).
        base_width: channels of the diffusion U-Net's first level.
        depth: resolution levels of both U-Nets (``depth - 1`` downsamplings).
        timesteps: diffusion steps T used in training.
        schedule: ``"linear"`` (default, as the official code) or ``"cosine"`` beta schedule.
        channel_mult: width multipliers per level (default ``min(2**i, 4)``: 1, 2, 4, 4, ...).
        cond_width, cond_channel_mult: the condition U-Net's first width (default ``base_width // 2``) and
            multipliers (default: as the diffusion U-Net).
        patch_size: space-to-depth factor of the stems (1: full-resolution first stage).
        ssformer_blocks, heads: SS-Former blocks and attention heads.
        nbp_hidden, nbp_blocks: width and number of hidden layers of the NBP-Filters.
        concat_image: also feed the image to the diffusion U-Net's input (as the official code).
        anchor_weight: weight of the anchor loss (Dice + BCE on the condition model's output).
        prediction: what the denoiser outputs: "epsilon" (the noise, as the paper and DDPM) or "x0"
            (the clean mask itself, as several later segmentation diffusion models; it learns in far
            fewer steps). ``forward`` returns that output; :meth:`x0_and_eps` turns it into both.
    """

    def __init__(self, in_channels: int = 1, base_width: int = 16, depth: int = 4, timesteps: int = 1000,
                 schedule: str = "linear", channel_mult: Sequence[int] | None = None, cond_width: int | None = None,
                 cond_channel_mult: Sequence[int] | None = None, patch_size: int = 2, ssformer_blocks: int = 1,
                 heads: int = 4, nbp_hidden: int = 32, nbp_blocks: int = 2, concat_image: bool = True,
                 anchor_weight: float = 1.0, prediction: str = "epsilon"):
        super().__init__()
        if prediction not in ("epsilon", "x0"):
            raise ValueError(f"prediction must be 'epsilon' or 'x0', got {prediction!r}")
        if depth < 2:
            raise ValueError("depth must be at least 2")
        if timesteps < 2:
            raise ValueError("timesteps must be at least 2")
        if patch_size < 1 or ssformer_blocks < 1:
            raise ValueError("patch_size and ssformer_blocks must be at least 1")
        self.config = {
            "in_channels": in_channels, "base_width": base_width, "depth": depth, "timesteps": timesteps,
            "schedule": schedule, "channel_mult": channel_mult, "cond_width": cond_width,
            "cond_channel_mult": cond_channel_mult, "patch_size": patch_size, "ssformer_blocks": ssformer_blocks,
            "heads": heads, "nbp_hidden": nbp_hidden, "nbp_blocks": nbp_blocks, "concat_image": concat_image,
            "anchor_weight": anchor_weight, "prediction": prediction,
        }
        self.prediction = prediction
        self.in_channels = in_channels
        self.depth = depth
        self.timesteps = timesteps
        self.patch = patch_size
        self.concat_image = concat_image
        self.anchor_weight = anchor_weight
        widths = _widths(base_width, channel_mult, depth, "channel_mult")
        cond_widths = _widths(cond_width or max(base_width // 2, 4), cond_channel_mult, depth, "cond_channel_mult")
        time_dim = 4 * base_width

        betas = make_betas(schedule, timesteps)
        alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)

        self.time_embed = TimeEmbedding(base_width)
        self.condition = ConditionUNet(in_channels, cond_widths, patch_size)
        stem_in = (in_channels + 1 if concat_image else 1) * patch_size * patch_size
        self.stem = nn.Conv2d(stem_in, widths[0], 3, padding=1)
        self.anchor = UncertainSpatialAttention(widths[0], patch_size)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        prev = widths[0]
        for i, w in enumerate(widths):
            self.encoders.append(ResBlock(prev, w, time_dim))
            prev = w
            if i < depth - 1:
                self.downs.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
        self.mid1 = ResBlock(prev, prev, time_dim)
        self.cond_proj = nn.Conv2d(cond_widths[-1], prev, 1)
        self.ssformer = nn.ModuleList(
            SSFormerBlock(prev, heads, time_dim, nbp_hidden, nbp_blocks) for _ in range(ssformer_blocks))
        self.mid2 = ResBlock(prev, prev, time_dim)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.ups.append(Upsample(prev, prev))
            self.decoders.append(ResBlock(prev + w, w, time_dim))
            prev = w
        self.out_norm = _norm(prev)
        self.out_conv = nn.Conv2d(prev, patch_size * patch_size, 3, padding=1)

    # ----------------------------------------------------------------- network
    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels + 1:
            raise ValueError(f"expected (batch, {self.in_channels + 1}, H, W) (image channels + noisy mask); got {tuple(x.shape)}")
        factor = self.patch * 2 ** (self.depth - 1)
        if any(s % factor for s in x.shape[2:]):
            raise ValueError(f"spatial size {tuple(x.shape[2:])} must be divisible by {factor}")

    def denoise(self, x: torch.Tensor, t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted noise (batch, 1, H, W) and the condition model's anchor logits (batch, 1, H, W)."""
        self._check(x)
        if t is None:
            t = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        image, x_t = x[:, :self.in_channels], x[:, self.in_channels:]
        temb = self.time_embed(t)
        anchor_logits, deepest = self.condition(image)
        h = self.stem(F.pixel_unshuffle(x if self.concat_image else x_t, self.patch))
        h = self.anchor(h, anchor_logits)
        skips = []
        for i, block in enumerate(self.encoders):
            h = block(h, temb)
            if i < self.depth - 1:
                skips.append(h)
                h = self.downs[i](h)
        e, c = self.mid1(h, temb), self.cond_proj(deepest)
        for block in self.ssformer:
            e, c = block(e, c, temb)
        h = self.mid2(e, temb)
        for up, block, skip in zip(self.ups, self.decoders, reversed(skips)):
            h = block(torch.cat([up(h), skip], dim=1), temb)
        out = self.out_conv(F.silu(self.out_norm(h)))
        return F.pixel_shuffle(out, self.patch), anchor_logits

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted noise epsilon (batch, 1, H, W) for ``x`` = (image, x_t) at timesteps ``t``."""
        return self.denoise(x, t)[0]

    def gradcam_layer(self) -> nn.Module:
        """The condition model's last encoder stage (its deepest embedding: it feeds the SS-Former and,
        through the condition decoder, the anchor)."""
        return self.condition.encoders[-1]

    def gradcam_view(self, rows: int, cols: int, t: int | None = None, seed: int = 0) -> "DenoiserAtStep":
        """A :class:`DenoiserAtStep` for (rows, cols) images: the x0 estimate at step ``t`` (default
        ``timesteps // 2``) from a fixed noisy mask, ``q_sample`` of an undecided mask (x0 = 0, i.e.
        probability 0.5) with noise drawn from ``seed``."""
        t = self.timesteps // 2 if t is None else int(t)
        noise = torch.randn((1, 1, rows, cols), generator=torch.Generator().manual_seed(int(seed)))
        noise = noise.to(self.alphas_cumprod.device)
        x_t = self.q_sample(torch.zeros_like(noise), torch.tensor([t], device=noise.device), noise)
        return DenoiserAtStep(self, t, x_t)

    # --------------------------------------------------------------- diffusion
    def _at(self, values: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return values.to(t.device)[t].view(-1, 1, 1, 1)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
        abar = self._at(self.alphas_cumprod, t)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def x0_and_eps(self, x_t: torch.Tensor, t: torch.Tensor, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The clean-mask estimate (clipped to [-1, 1]) and the noise consistent with it, from the
        denoiser's output ``out`` (noise or clean mask, as ``prediction`` says) at ``x_t``."""
        abar = self._at(self.alphas_cumprod, t)
        x0 = (out if self.prediction == "x0" else (x_t - (1 - abar).sqrt() * out) / abar.sqrt()).clamp(-1, 1)
        return x0, (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The clean mask implied by ``x_t`` and the noise ``eps``: (x_t - sqrt(1 - abar) eps) / sqrt(abar)."""
        abar = self._at(self.alphas_cumprod, t)
        return (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()

    def training_loss(self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """MSE between the prediction and its target (the noise, or the clean mask with ``prediction="x0"``) at a uniform
        random t, plus the weighted anchor loss.

        Args:
            image: (batch, in_channels, H, W); mask: (batch, 1, H, W) in {0, 1};
            generator: for the timesteps and the noise.
        """
        if mask.ndim != 4 or mask.shape[1] != 1:
            raise ValueError(f"mask must be (batch, 1, H, W); got {tuple(mask.shape)}")
        mask = mask.to(image.dtype)
        x0 = mask * 2 - 1
        where = generator.device if generator is not None else image.device
        t = torch.randint(0, self.timesteps, (image.shape[0],), generator=generator, device=where).to(image.device)
        noise = random_normal(x0.shape, generator, like=image)
        out, anchor_logits = self.denoise(torch.cat([image, self.q_sample(x0, t, noise)], dim=1), t)
        loss = F.mse_loss(out, x0 if self.prediction == "x0" else noise)
        if self.anchor_weight:
            loss = loss + self.anchor_weight * anchor_loss(anchor_logits, mask)
        return loss

    def ddim_timesteps(self, steps: int) -> list[int]:
        """The ``steps`` timesteps DDIM visits, from T - 1 down to 0 (evenly spaced, rounded)."""
        if steps < 1:
            raise ValueError("steps must be at least 1")
        ts = torch.linspace(self.timesteps - 1, 0, min(steps, self.timesteps), dtype=torch.float64).round().long()
        return [int(v) for v in torch.unique_consecutive(ts)]

    @torch.no_grad()
    def sample(self, image: torch.Tensor, steps: int = 5, n_samples: int = 4, eta: float = 0.0,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """DDIM sampling of ``n_samples`` masks per image from pure noise.

        Each final x0 estimate is mapped to [0, 1] by (x0 + 1) / 2 (clipped).

        Returns:
            probability (batch, 1, H, W), the mean over samples, and uncertainty (batch, 1, H, W),
            their per-pixel standard deviation (zero for one sample).
        """
        if n_samples < 1:
            raise ValueError("n_samples must be at least 1")
        b, _, h, w = image.shape
        images = image.repeat_interleave(n_samples, dim=0)
        # noise drawn where the generator lives, then moved to the image's device (one seed, the same noise on every device)
        x = random_normal((b * n_samples, 1, h, w), generator, like=image)
        ts = self.ddim_timesteps(steps)
        x0 = x
        for i, step in enumerate(ts):
            t = torch.full((b * n_samples,), step, dtype=torch.long, device=image.device)
            x0, eps = self.x0_and_eps(x, t, self(torch.cat([images, x], dim=1), t))  # eps consistent with the clipped x0
            if i == len(ts) - 1:
                break
            abar = self.alphas_cumprod[step]
            abar_prev = self.alphas_cumprod[ts[i + 1]]
            sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)).sqrt()
            x = abar_prev.sqrt() * x0 + (1 - abar_prev - sigma**2).clamp_min(0).sqrt() * eps
            if eta > 0:
                x = x + sigma * random_normal(x.shape, generator, like=x)
        probs = ((x0 + 1) / 2).clamp(0, 1).reshape(b, n_samples, 1, h, w)
        return probs.mean(dim=1), probs.std(dim=1, correction=0)


def anchor_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Soft Dice (per image, smoothed by 1) + binary cross entropy of the anchor logits."""
    prob = torch.sigmoid(logits).flatten(1)
    target = mask.flatten(1)
    dice = (2 * (prob * target).sum(1) + 1) / (prob.sum(1) + target.sum(1) + 1)
    return (1 - dice).mean() + F.binary_cross_entropy_with_logits(logits, mask)


class DenoiserAtStep(nn.Module):
    """``forward(image)`` -> logits-like (batch, 1, H, W): ``logit_scale`` times the model's x0 estimate
    at a fixed timestep ``t`` and fixed noisy mask ``x_t`` (for Grad-CAM with target "segmentation":
    the "predicted mask" is then x0 > 0, i.e. a mask probability above 0.5).

    ``x_t`` is (1 or batch, 1, H, W); a single one is shared by every image, a larger one is cut to the
    batch (Grad-CAM first probes with one image). A sensible choice is pure noise at an intermediate
    step: ``model.q_sample(torch.zeros(...), t, noise)``.
    """

    def __init__(self, model: MedSegDiffV2, t: int, x_t: torch.Tensor, logit_scale: float = 4.0):
        super().__init__()
        self.model = model
        self.t = int(t)
        self.logit_scale = logit_scale
        self.register_buffer("x_t", x_t.detach().clone(), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        n = image.shape[0]
        x_t = self.x_t.to(image)
        if x_t.shape[0] == 1:
            x_t = x_t.expand(n, -1, -1, -1)
        elif x_t.shape[0] >= n:
            x_t = x_t[:n]
        else:
            raise ValueError(f"x_t has {x_t.shape[0]} masks for a batch of {n} images")
        t = torch.full((n,), self.t, dtype=torch.long, device=image.device)
        out = self.model(torch.cat([image, x_t], dim=1), t)
        if self.model.prediction == "x0":
            return self.logit_scale * out
        return self.logit_scale * self.model.predict_x0(x_t, t, out)


def paper_config(in_channels: int = 1) -> dict:
    """Options approximating the paper's / official code's widths (256x256 inputs; see the module docstring)."""
    return {"in_channels": in_channels, "base_width": 128, "depth": 6, "channel_mult": (1, 1, 2, 2, 4, 4),
            "cond_width": 32, "cond_channel_mult": (1, 2, 4, 8, 15, 15), "patch_size": 1, "ssformer_blocks": 4,
            "heads": 8, "nbp_hidden": 64, "nbp_blocks": 4}


def create(**config) -> MedSegDiffV2:
    """Build a :class:`MedSegDiffV2` from a config dict (as saved in a model card)."""
    return MedSegDiffV2(**config)
