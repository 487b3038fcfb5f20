"""Training one chapter-2 architecture on letterboxed HC18 arrays with the shared torch harness
(:func:`fetal_lib.training.torch.fit`): Adam, the cosine schedule of chapter 1 (ending at
:data:`fetal_lib.hc.train.LR_FLOOR` of the base rate), chapter 1's augmentation and loss, a
fixed number of epochs, and the weights of the epoch with the best validation Dice.

The segmentation networks learn from BCE + soft Dice on their logits. The diffusion model
(MedSegDiff-V2) learns by denoising the mask at a random step
(:meth:`~fetal_lib.networks.torch.medsegdiff.MedSegDiffV2.training_loss`: the noise, as its paper,
or the clean mask, as its ``prediction`` option says); it sees the same augmented batches.

``initial`` continues a trained network (chapter 2's winner trained on to chapter 1's budget)
with a fresh cosine schedule instead of starting from random weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from fetal_lib.networks.parameters import count_parameters
from fetal_lib.torch_segmenter import DIFFUSION, Sampling, TorchSegmenter
from fetal_lib.hc.train import LR_FLOOR
from fetal_lib.networks import torch as torch_nets
from fetal_lib.training import torch as harness
from fetal_lib.training.config import TrainConfig
from fetal_lib.transforms.augment import AugmentConfig


@dataclass
class SegTrainConfig:
    """One architecture's training run (sizes in pixels, rates per optimiser step)."""

    arch: str
    options: dict[str, Any] = field(default_factory=dict)  # the network's constructor options (widths)
    input_shape: tuple[int, int] = (128, 192)  # (rows, cols) of the letterboxed input, as chapter 1
    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-3
    augment: bool = True
    augment_vflip: bool = False
    precision: str = "float32"  # "float32" | "bfloat16" (torch autocast; resolved from "auto" by fetal_lib.training.precision)
    val_every: int = 1
    sampling: Sampling = field(default_factory=Sampling)  # the diffusion model's DDIM sampling at inference
    val_samples: int = 1  # DDIM samples per validation image while training (the diffusion model only)
    seed: int = 0
    threads: int = 2
    device: str = "auto"  # "auto" (CUDA when torch sees a GPU), "cpu" or "cuda" (fetal_lib.devices)
    initial_epochs: int = 0  # epochs the starting weights had already trained (0: from random weights)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["input_shape"] = list(self.input_shape)
        return out

    def loop_config(self):
        """What the harness's loop needs (:class:`fetal_lib.training.config.TrainConfig`)."""

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate, lr_floor=LR_FLOOR,
                           precision=self.precision, seed=self.seed, threads=self.threads, device=self.device,
                           val_every=self.val_every, checkpoint="best")

    def augment_config(self):

        return AugmentConfig(flip_ud=bool(self.augment_vflip))


def build_network(config: SegTrainConfig):
    """The untrained network of ``config`` from the torch registry (one input channel, one output)."""

    return torch_nets.create(config.arch, **config.options)


def _diffusion_loss_view(net):
    """A module whose forward is the diffusion model's training loss on ``cat(image, mask)``."""
    from torch import nn

    class DiffusionLoss(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.net = inner

        def forward(self, x):
            return self.net.training_loss(x[:, :-1], x[:, -1:])

    return DiffusionLoss(net)


@dataclass
class SegTrainResult:
    """A trained segmenter and what its training did (seconds of wall time)."""

    segmenter: TorchSegmenter
    fit: Any  # fetal_lib.training.torch.FitResult
    config: SegTrainConfig
    train_images_per_s: float
    parameters: int


def mean_dice(prob: np.ndarray, ref: np.ndarray, threshold: float = 0.5) -> float:
    """Mean per-image Dice of probabilities against binary references, (N, rows, cols, 1) each."""
    from fetal_lib.metrics.segmentation import dice  # deferred: imports scipy

    return float(np.mean([dice(p > threshold, r > 0.5) for p, r in zip(prob, ref)]))


def train(config: SegTrainConfig, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
          progress: bool = False, log: Callable[[str], None] | None = None, initial=None) -> SegTrainResult:
    """Train ``config.arch`` on (N, rows, cols, 1) images in [0, 1] and filled masks; validation Dice
    (threshold 0.5) every ``val_every`` epochs chooses the kept weights.

    ``initial``: a trained network of the same architecture to continue from (copied, never
    changed; a fresh cosine schedule over ``config.epochs``), instead of random weights.

    The training set, its shuffling and its augmentation live on the device that trains
    (``config.device``): on a GPU, batches are cut and augmented there (a few hundred MB at most),
    with the same distributions as on the CPU, so the GPU never waits for the host."""
    import copy

    import torch

    from fetal_lib.seg_benchmark.augment import augment_batch  # deferred: imports torch
    from fetal_lib.seg_benchmark.losses import bce_dice_from_logits  # deferred: imports torch

    harness.configure(config.threads, config.seed)
    device = harness.select_device(config.device)
    net = copy.deepcopy(initial) if initial is not None else build_network(config)
    diffusion = config.arch in DIFFUSION
    x_t = torch.from_numpy(np.ascontiguousarray(x_train.transpose(0, 3, 1, 2), dtype=np.float32)).to(device)
    y_t = torch.from_numpy(np.ascontiguousarray(y_train.transpose(0, 3, 1, 2), dtype=np.float32)).to(device)
    n, bs = len(x_t), int(config.batch_size)
    steps = max(1, n // bs)
    generator = torch.Generator(device=device).manual_seed(int(config.seed))
    aug = config.augment_config()

    def epoch_batches(epoch: int):
        order = torch.randperm(n, generator=generator, device=device)
        for k in range(steps):
            idx = order[k * bs : (k + 1) * bs]
            xb, yb = x_t[idx], y_t[idx]
            if config.augment:
                xb, yb = augment_batch(xb, yb, aug, generator)
            yb = (yb > 0.5).float() if diffusion else yb
            yield (torch.cat([xb, yb], dim=1) if diffusion else xb), yb

    rows, cols = config.input_shape
    val_sampling = Sampling(steps=config.sampling.steps, n_samples=config.val_samples, seed=config.sampling.seed)

    def validate(model) -> dict[str, float]:
        inner = model.net if diffusion else model
        probe = TorchSegmenter(inner, config.arch, config.options, rows, cols, val_sampling)
        return {"val_dice": mean_dice(probe.predict_nhwc(x_val), y_val)}

    trained = _diffusion_loss_view(net) if diffusion else net
    loss_fn = (lambda out, target: out) if diffusion else bce_dice_from_logits
    fit = harness.fit(trained, epoch_batches, steps, loss_fn, config.loop_config(), validate, lambda row: row["val_dice"],
                      desc=f"train {config.arch}", progress=progress, log=log)
    net = fit.model.net if diffusion else fit.model
    net.eval()
    train_seconds = sum(row["seconds"] for row in fit.history)
    segmenter = TorchSegmenter(net, config.arch, dict(config.options), rows, cols, config.sampling)
    return SegTrainResult(segmenter, fit, config, steps * bs * len(fit.history) / max(train_seconds, 1e-9), count_parameters(net))
