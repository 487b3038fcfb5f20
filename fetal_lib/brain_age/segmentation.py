"""Training and inference of the 3D Res-U-Net tissue segmenter (background, CSF, GM, WM).

Works in the preprocessed space of :mod:`fetal_lib.brain_age.preprocess` (3 mm, 64^3,
normalised inside the brain mask). Cross-entropy loss and Adam (lr 1e-3) as in the source
(``loss="ce_dice"`` adds a soft Dice term over the three tissues, which counters the
under-segmentation of thin CSF that plain cross-entropy learns first),
with the learning rate annealed to 0 by a cosine schedule over the planned steps or the time
budget, whichever runs out first, so that a busy machine still ends on a decayed rate
(``lr_schedule="constant"`` is the source's);
with ``nn_channel`` the image resampled by nearest neighbour is a second intensity channel
(the reference labels on the 3 mm grid are nearest-neighbour samples, and this channel holds the
intensity of exactly the source voxel each label comes from);
with ``mask_channel`` the brain mask is a last input channel (it is an input of
``fetal brain-age predict`` anyway, and tells the network where the brain ends);
training takes random crops (``crop`` voxels a side) with left-right flips and a small
intensity jitter (tensors in the channels-last 3D layout, which the CPU convolutions run faster
on: 10.3 s instead of 12.3 s an epoch on a 2-core machine here), inference runs on the whole 64^3 volume. Predicted labels farther than
``MARGIN_MM`` from the brain mask are set to background (the reference segmentations label
CSF up to ~14 mm outside the mask, never farther).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fetal_lib.machine import thread_count
from fetal_lib.io import atomic_path, write_json_atomic
from fetal_lib.training.torch import FitResult
from fetal_lib.allocator import keep_freed_memory
from fetal_lib.devices import resolve_device
from fetal_lib.devices import to_host, to_network
from fetal_lib.errors import FetalInputError
from fetal_lib.networks.torch import create
from fetal_lib.training import torch as harness
from fetal_lib.training.config import TrainConfig as LoopConfig

LABELS = (1, 2, 3)
LABEL_NAMES = {1: "csf", 2: "gm", 3: "wm"}
MARGIN_MM = 15.0


@dataclass
class TrainConfig:
    """Knobs of segmentation training (sizes in voxels of the 3 mm grid, time in seconds)."""

    base_width: int = 8
    depth: int = 4
    norm: bool = True
    nn_channel: bool = False  # feed the nearest-neighbour-resampled image as a second intensity channel
    mask_channel: bool = False  # feed the brain mask as the last input channel
    loss: str = "ce"  # "ce" (the source's) or "ce_dice" (cross-entropy + soft Dice over CSF, GM, WM)
    epochs: int = 10
    batch_size: int = 2
    crop: int | None = 48  # None: whole volumes
    lr: float = 1e-3
    lr_schedule: str = "cosine"  # "cosine" (to 0 at the last step or at the time budget) or "constant" (the source's)
    flip: bool = True
    intensity_jitter: float = 0.1
    threads: int = 2
    seed: int = 0
    time_budget_s: float | None = None  # optional wall-time cap (s; None = off): stop after the epoch that passes it
    precision: str = "float32"  # "float32" | "bfloat16" (CPU autocast; resolved from "auto" by fetal_lib.training.precision); weights stay float32
    channels_last: bool = True  # channels-last 3D memory layout: same numbers, ~1.2x faster convolutions on CPU
    val_every: int = 1  # score the validation set every this many epochs (and after the last)
    device: str = "auto"  # "auto" (CUDA when torch sees a GPU), "cpu" or "cuda" (fetal_lib.devices)

    def intensity_names(self) -> tuple[str, ...]:
        """The intensity channels the network reads, in order (see ``Preprocessed.intensities``)."""
        return ("image", "image_nn") if self.nn_channel else ("image",)

    def input_names(self) -> tuple[str, ...]:
        """All input channels in order: the intensity channels, then ``"mask"`` if read."""
        return self.intensity_names() + (("mask",) if self.mask_channel else ())

    def loop_config(self):
        """What the harness's loop needs (:class:`fetal_lib.training.config.TrainConfig`): the last
        epoch is kept (validation is for information), cosine decay to 0."""

        return LoopConfig(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.lr, lr_schedule=self.lr_schedule,
                          lr_floor=0.0, time_budget_s=self.time_budget_s, precision=self.precision, threads=self.threads,
                          seed=self.seed, device=self.device, val_every=self.val_every, checkpoint="last")

    def network_config(self) -> dict:
        return {"in_channels": len(self.input_names()), "num_classes": 4, "base_width": self.base_width, "depth": self.depth, "norm": self.norm}


TrainResult = FitResult  # the trained network (eval mode, last epoch) and its per-epoch history


def network_input(images: np.ndarray, masks: np.ndarray | None, in_channels: int) -> np.ndarray:
    """(N, C, D, H, W) float32 network input: the intensity channels, then the brain mask (0/1) if the
    network reads one more channel than there are intensity channels.

    ``images`` is (N, D, H, W) for one intensity channel or (N, C, D, H, W) for several.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4:
        images = images[:, None]
    n_intensity = images.shape[1]
    if in_channels == n_intensity:
        return images
    if in_channels == n_intensity + 1:
        if masks is None:
            raise ValueError("this segmenter reads the brain mask as an input channel: pass masks")
        return np.concatenate([images, (np.asarray(masks) > 0).astype(np.float32)[:, None]], axis=1)
    raise ValueError(f"this segmenter reads {in_channels} input channels; got {n_intensity} intensity channel(s)")


def _crop_batch(rng: np.random.Generator, images: np.ndarray, masks: np.ndarray | None, segs: np.ndarray, idx: Sequence[int], cfg: TrainConfig):
    """A training batch ((B, C, d, h, w) float32, (B, d, h, w) int64): random crop, flip, intensity jitter.

    ``images`` is (N, D, H, W) or (N, C, D, H, W); every intensity channel gets the same jitter.
    """
    xs, ms, ys = [], [], []
    for i in idx:
        x, y = images[i], segs[i]
        m = masks[i] if masks is not None else np.zeros_like(y)
        if cfg.crop is not None and cfg.crop < min(y.shape):
            starts = [int(rng.integers(0, s - cfg.crop + 1)) for s in y.shape]
            sl = tuple(slice(s, s + cfg.crop) for s in starts)
            x, m, y = x[(Ellipsis,) + sl], m[sl], y[sl]
        if cfg.flip and rng.random() < 0.5:
            x, m, y = x[..., ::-1], m[..., ::-1], y[..., ::-1]
        if cfg.intensity_jitter:
            j = cfg.intensity_jitter
            x = x * (1 + rng.uniform(-j, j)) + rng.uniform(-j, j)
        xs.append(np.ascontiguousarray(x, dtype=np.float32))
        ms.append(np.ascontiguousarray(m))
        ys.append(np.ascontiguousarray(y, dtype=np.int64))
    return network_input(np.stack(xs), np.stack(ms), len(cfg.input_names())), np.stack(ys)


def soft_dice_loss(logits, target, labels: Sequence[int] = LABELS):
    """1 - mean soft Dice over ``labels`` (batch pooled), from logits (B, K, ...) and integer targets (B, ...)."""
    import torch
    import torch.nn.functional as F

    proba = torch.softmax(logits, 1)
    onehot = F.one_hot(target, proba.shape[1]).movedim(-1, 1).to(proba.dtype)
    dims = (0,) + tuple(range(2, proba.ndim))
    inter = (proba * onehot).sum(dims)
    denom = proba.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + 1.0) / (denom + 1.0)
    return 1.0 - dice[list(labels)].mean()


def train(
    images: np.ndarray,
    segs: np.ndarray,
    cfg: TrainConfig,
    masks: np.ndarray | None = None,
    val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a Res-U-Net on preprocessed volumes.

    Args:
        images: (N, D, H, W) float32 normalised images, or (N, C, D, H, W) with the channels of
            ``cfg.intensity_names()``.
        segs: (N, D, H, W) labels 0..3.
        cfg: training configuration.
        masks: (N, D, H, W) brain masks; required with ``cfg.mask_channel``.
        val: optional (images, masks, segs) scored (Dice per tissue) every ``cfg.val_every`` epochs and after the last.
        progress: show a tqdm bar per epoch.
        log: called with a line for the first and last epochs and every ``val_every`` epochs.

    Returns:
        The trained model (eval mode) and a per-epoch history (loss, seconds, val Dice).
    """
    import torch
    import torch.nn.functional as F


    if cfg.mask_channel and masks is None:
        raise ValueError("cfg.mask_channel is set: pass the brain masks")
    n_intensity = 1 if np.ndim(images) == 4 else np.shape(images)[1]
    if n_intensity != len(cfg.intensity_names()):
        raise ValueError(f"images have {n_intensity} intensity channel(s); the config reads {', '.join(cfg.intensity_names())}")
    if cfg.loss not in ("ce", "ce_dice"):
        raise ValueError(f"unknown loss {cfg.loss!r}; choose 'ce' or 'ce_dice'")
    loop = cfg.loop_config()
    keep_freed_memory()  # without it a third of the CPU time goes to page faults (see fetal_lib.allocator)
    harness.configure(cfg.threads, cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = create("resunet3d", **cfg.network_config())
    model.input_names = cfg.input_names()
    layout = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    n = len(images)

    def epoch_batches(epoch: int):
        order = rng.permutation(n)
        for i in range(0, n, cfg.batch_size):
            x, y = _crop_batch(rng, images, masks, segs, order[i : i + cfg.batch_size], cfg)
            yield torch.from_numpy(x).contiguous(memory_format=layout), torch.from_numpy(y)

    def loss_fn(logits, y):
        loss = F.cross_entropy(logits, y)
        return loss + soft_dice_loss(logits, y) if cfg.loss == "ce_dice" else loss

    def validate(m) -> dict[str, float]:
        d = mean_dice(predict(m, val[0], val[1]), val[2])
        return {f"val_dice_{LABEL_NAMES[k]}": v for k, v in d.items()}

    return harness.fit(model, epoch_batches, -(-n // cfg.batch_size), loss_fn, loop, validate if val is not None else None,
                       desc="seg epoch", progress=progress, log=log)


def predict_proba(model, images: np.ndarray, masks: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
    """Softmax probabilities (N, 4, D, H, W) for (N, D, H, W) or (N, C, D, H, W) images (and masks, if the
    network reads them), one volume at a time, on the network's device (results back on the CPU)."""
    import torch


    if threads:
        torch.set_num_threads(thread_count(threads))
    model.eval()
    in_channels = int(getattr(model, "config", {}).get("in_channels", 1))
    out = []
    with torch.inference_mode():
        for i, x in enumerate(images):
            m = None if masks is None else np.asarray(masks)[i : i + 1]
            inp = network_input(np.asarray(x)[None], m, in_channels)
            # channels-last 3D is the faster layout for the CPU convolutions (results are the same)
            x_t = to_network(torch.from_numpy(np.ascontiguousarray(inp)), model).contiguous(memory_format=torch.channels_last_3d)
            out.append(to_host(torch.softmax(model(x_t).float(), 1)[0]).numpy())
    return np.stack(out)


def allowed_region(mask: np.ndarray, spacing_mm: float | Sequence[float] = 3.0, margin_mm: float = MARGIN_MM) -> np.ndarray:
    """Voxels within ``margin_mm`` of the brain mask (bool, same shape)."""
    from scipy import ndimage

    m = np.asarray(mask) > 0
    if not m.any():
        return m
    return ndimage.distance_transform_edt(~m, sampling=spacing_mm) <= margin_mm


def constrained_proba(model, images: np.ndarray, masks: np.ndarray, threads: int | None = None, spacing_mm: float = 3.0,
                      tta: bool = False) -> np.ndarray:
    """Class probabilities (N, 4, D, H, W) float32, with voxels farther than MARGIN_MM from the
    brain mask set to certain background; (4, D, H, W) for a single subject (a (D, H, W) mask).
    With ``tta`` the probabilities are the mean of the volume's and of its left-right mirror's
    (mirrored back; left-right is the last array axis of the MNI-aligned grid, and training flips it too)."""
    images = np.asarray(images)
    single = np.ndim(masks) == 3  # one subject: (D, H, W) or (C, D, H, W) images with a (D, H, W) mask
    if single:
        images, masks = images[None], np.asarray(masks)[None]
    proba = predict_proba(model, images, masks, threads)
    if tta:
        mirrored = predict_proba(model, np.ascontiguousarray(images[..., ::-1]), np.ascontiguousarray(np.asarray(masks)[..., ::-1]), threads)
        proba = np.ascontiguousarray(0.5 * (proba + mirrored[..., ::-1]), dtype=np.float32)
    for p, m in zip(proba, np.asarray(masks)):
        outside = ~allowed_region(m, spacing_mm)
        p[:, outside] = 0.0
        p[0, outside] = 1.0
    return proba[0] if single else proba


def labels_of(proba: np.ndarray) -> np.ndarray:
    """Label map(s) uint8 from class probabilities: argmax over the class axis (axis -4)."""
    return np.asarray(proba).argmax(axis=-4).astype(np.uint8)


def predict(model, images: np.ndarray, masks: np.ndarray, threads: int | None = None, spacing_mm: float = 3.0,
            tta: bool = False) -> np.ndarray:
    """Label maps (N, D, H, W) uint8: argmax of the network (with ``tta``, of its mean with the
    left-right mirror's, see :func:`constrained_proba`), background farther than MARGIN_MM from the mask."""
    return labels_of(constrained_proba(model, images, masks, threads, spacing_mm, tta))


def mean_dice(pred: np.ndarray, ref: np.ndarray) -> dict[int, float]:
    """Mean over subjects of the Dice per tissue label."""
    from fetal_lib.metrics.segmentation import dice, per_label  # deferred: imports scipy

    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.ndim == 3:
        pred, ref = pred[None], ref[None]
    rows = [per_label(p, r, LABELS, dice) for p, r in zip(pred, ref)]
    return {k: float(np.mean([r[k] for r in rows])) for k in LABELS}


def _default_input_names(in_channels: int) -> tuple[str, ...]:
    """Input channels of a model saved before ``inputs`` was recorded: the image, then the mask."""
    return ("image", "mask")[: int(in_channels)]


def input_names(model) -> tuple[str, ...]:
    """The input channels a trained segmenter reads, in order (``"image"``, ``"image_nn"``, ``"mask"``)."""
    names = getattr(model, "input_names", None)
    return tuple(names) if names else _default_input_names(model.config["in_channels"])


def intensity_names(model) -> tuple[str, ...]:
    """The intensity channels a trained segmenter reads (its inputs without the mask)."""
    return tuple(n for n in input_names(model) if n != "mask")


def save(model, directory: str | Path, extra: dict | None = None) -> Path:
    """Write ``segmenter.pt`` (state dict) and ``segmenter.json`` (network config; ``members``: the
    number of averaged networks of a :func:`fetal_lib.brain_age.fold_ensemble.mean_probability_ensemble`) atomically."""
    import torch

    from fetal_lib.brain_age.fold_ensemble import is_ensemble, members_of

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / "segmenter.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    config = {k: v for k, v in members_of(model)[0].config.items() if k != "members"}
    write_json_atomic(directory / "segmenter.json", {"network": "resunet3d", "config": config, "inputs": list(input_names(model)),
                                                     "members": len(members_of(model)) if is_ensemble(model) else 0, **(extra or {})})
    return directory / "segmenter.pt"


def load(directory: str | Path, threads: int = 2, device: str = "auto"):
    """Load the segmenter saved by :func:`save` (eval mode; an ensemble when it was saved as one) onto ``device``
    (``auto``: the GPU when torch sees one).

    Raises:
        NoGpuError: ``device`` is ``cuda`` and there is no GPU (checked before anything is read).
        FetalInputError: the model files are missing or unreadable.
    """
    import torch

    from fetal_lib.brain_age.fold_ensemble import mean_probability_ensemble

    where = resolve_device(device)
    directory = Path(directory)
    for name in ("segmenter.json", "segmenter.pt"):
        if not (directory / name).is_file():
            raise FetalInputError(directory / name, "trained segmenter not found (run the brain_age chapter, cpu profile, to train it)")
    try:
        meta = json.loads((directory / "segmenter.json").read_text())
        names = tuple(meta.get("inputs") or _default_input_names(meta["config"]["in_channels"]))
        members = [create(meta.get("network", "resunet3d"), **meta["config"]) for _ in range(max(1, int(meta.get("members") or 0)))]
        for member in members:
            member.input_names = names
        model = mean_probability_ensemble(members) if meta.get("members") else members[0]
        model.load_state_dict(torch.load(directory / "segmenter.pt", map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - any corruption becomes one line
        raise FetalInputError(directory / "segmenter.pt", f"unreadable segmenter ({type(exc).__name__}: {exc})") from None
    model.input_names = names
    torch.set_num_threads(thread_count(threads))
    model = model.to(where).to(memory_format=torch.channels_last_3d)
    model.eval()
    return model


def config_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)
