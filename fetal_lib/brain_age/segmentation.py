"""Training and inference of the 3D Res-U-Net tissue segmenter (background, CSF, GM, WM).

Works in the preprocessed space of :mod:`fetal_lib.brain_age.preprocess` (3 mm, 64^3,
normalised inside the brain mask). Cross-entropy loss and Adam (lr 1e-3) as in the source,
with the learning rate annealed to 0 by a cosine schedule (``lr_schedule="constant"`` is the source's);
training takes random crops (``crop`` voxels a side) with left-right flips and a small
intensity jitter, inference runs on the whole 64^3 volume. Predicted labels farther than
``MARGIN_MM`` from the brain mask are set to background (the reference segmentations label
CSF up to ~14 mm outside the mask, never farther).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fetal_lib.io import atomic_path, write_json_atomic

LABELS = (1, 2, 3)
LABEL_NAMES = {1: "csf", 2: "gm", 3: "wm"}
MARGIN_MM = 15.0


@dataclass
class TrainConfig:
    """Knobs of segmentation training (sizes in voxels of the 3 mm grid, time in seconds)."""

    base_width: int = 8
    depth: int = 4
    norm: bool = True
    epochs: int = 10
    batch_size: int = 2
    crop: int | None = 48  # None: whole volumes
    lr: float = 1e-3
    lr_schedule: str = "cosine"  # "cosine" (per step, to 0 at the last epoch) or "constant" (the source's)
    flip: bool = True
    intensity_jitter: float = 0.1
    threads: int = 2
    seed: int = 0
    time_budget_s: float | None = None  # stop after the epoch that passes this budget

    def network_config(self) -> dict:
        return {"in_channels": 1, "num_classes": 4, "base_width": self.base_width, "depth": self.depth, "norm": self.norm}


@dataclass
class TrainResult:
    model: object
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _crop_batch(rng: np.random.Generator, images: np.ndarray, segs: np.ndarray, idx: Sequence[int], cfg: TrainConfig):
    xs, ys = [], []
    for i in idx:
        x, y = images[i], segs[i]
        if cfg.crop is not None and cfg.crop < min(x.shape):
            starts = [int(rng.integers(0, s - cfg.crop + 1)) for s in x.shape]
            sl = tuple(slice(s, s + cfg.crop) for s in starts)
            x, y = x[sl], y[sl]
        if cfg.flip and rng.random() < 0.5:
            x, y = x[..., ::-1], y[..., ::-1]
        if cfg.intensity_jitter:
            j = cfg.intensity_jitter
            x = x * (1 + rng.uniform(-j, j)) + rng.uniform(-j, j)
        xs.append(np.ascontiguousarray(x, dtype=np.float32))
        ys.append(np.ascontiguousarray(y, dtype=np.int64))
    return np.stack(xs)[:, None], np.stack(ys)


def train(
    images: np.ndarray,
    segs: np.ndarray,
    cfg: TrainConfig,
    val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a Res-U-Net on preprocessed volumes.

    Args:
        images: (N, D, H, W) float32 normalised images.
        segs: (N, D, H, W) labels 0..3.
        cfg: training configuration.
        val: optional (images, masks, segs) scored (Dice per tissue) after each epoch.
        progress: show a tqdm bar per epoch.
        log: called with one line per epoch.

    Returns:
        The trained model (eval mode) and a per-epoch history (loss, seconds, val Dice).
    """
    import torch
    import torch.nn.functional as F

    from fetal_lib.networks.torch.resunet3d import ResUNet3d

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = ResUNet3d(**cfg.network_config())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n = len(images)
    steps = cfg.epochs * -(-n // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1)) if cfg.lr_schedule == "cosine" else None
    history: list[dict] = []
    t_start = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        order = rng.permutation(n)
        batches = [order[i : i + cfg.batch_size] for i in range(0, n, cfg.batch_size)]
        it = batches
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(batches, desc=f"seg epoch {epoch + 1}/{cfg.epochs}", leave=False)
        losses = []
        for idx in it:
            x, y = _crop_batch(rng, images, segs, idx, cfg)
            opt.zero_grad()
            loss = F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            losses.append(float(loss.detach()))
        row = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0}
        if val is not None:
            pred = predict(model, val[0], val[1])
            d = mean_dice(pred, val[2])
            row.update({f"val_dice_{LABEL_NAMES[k]}": v for k, v in d.items()})
        history.append(row)
        if log is not None:
            log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if cfg.time_budget_s is not None and time.perf_counter() - t_start > cfg.time_budget_s:
            break
    model.eval()
    return TrainResult(model=model, history=history, seconds=time.perf_counter() - t_start)


def predict_proba(model, images: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Softmax probabilities (N, 4, D, H, W) for (N, D, H, W) images, one volume at a time."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    model.eval()
    out = []
    with torch.inference_mode():
        for x in images:
            logits = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None])
            out.append(torch.softmax(logits, 1)[0].numpy())
    return np.stack(out)


def allowed_region(mask: np.ndarray, spacing_mm: float | Sequence[float] = 3.0, margin_mm: float = MARGIN_MM) -> np.ndarray:
    """Voxels within ``margin_mm`` of the brain mask (bool, same shape)."""
    from scipy import ndimage

    m = np.asarray(mask) > 0
    if not m.any():
        return m
    return ndimage.distance_transform_edt(~m, sampling=spacing_mm) <= margin_mm


def predict(model, images: np.ndarray, masks: np.ndarray, threads: int | None = None, spacing_mm: float = 3.0) -> np.ndarray:
    """Label maps (N, D, H, W) uint8: argmax of the network, background farther than MARGIN_MM from the mask."""
    images = np.asarray(images)
    single = images.ndim == 3
    if single:
        images, masks = images[None], np.asarray(masks)[None]
    proba = predict_proba(model, images, threads)
    labels = proba.argmax(1).astype(np.uint8)
    for lab, m in zip(labels, np.asarray(masks)):
        lab[~allowed_region(m, spacing_mm)] = 0
    return labels[0] if single else labels


def mean_dice(pred: np.ndarray, ref: np.ndarray) -> dict[int, float]:
    """Mean over subjects of the Dice per tissue label."""
    from fetal_lib.metrics.segmentation import dice, per_label

    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.ndim == 3:
        pred, ref = pred[None], ref[None]
    rows = [per_label(p, r, LABELS, dice) for p, r in zip(pred, ref)]
    return {k: float(np.mean([r[k] for r in rows])) for k in LABELS}


def save(model, directory: str | Path, extra: dict | None = None) -> Path:
    """Write ``segmenter.pt`` (state dict) and ``segmenter.json`` (network config) atomically."""
    import torch

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / "segmenter.pt") as tmp:
        torch.save(model.state_dict(), tmp)
    write_json_atomic(directory / "segmenter.json", {"network": "resunet3d", "config": model.config, **(extra or {})})
    return directory / "segmenter.pt"


def load(directory: str | Path, threads: int = 2):
    """Load the segmenter saved by :func:`save` (eval mode).

    Raises:
        FetalInputError: the model files are missing or unreadable.
    """
    import torch

    from fetal_lib.errors import FetalInputError
    from fetal_lib.networks.torch.resunet3d import ResUNet3d

    directory = Path(directory)
    for name in ("segmenter.json", "segmenter.pt"):
        if not (directory / name).is_file():
            raise FetalInputError(directory / name, "trained segmenter not found (run the brain_age chapter, cpu profile, to train it)")
    try:
        meta = json.loads((directory / "segmenter.json").read_text())
        model = ResUNet3d(**meta["config"])
        model.load_state_dict(torch.load(directory / "segmenter.pt", map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - any corruption becomes one line
        raise FetalInputError(directory / "segmenter.pt", f"unreadable segmenter ({type(exc).__name__}: {exc})") from None
    torch.set_num_threads(threads)
    model.eval()
    return model


def config_dict(cfg: TrainConfig) -> dict:
    return asdict(cfg)
