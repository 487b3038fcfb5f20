"""HC18 arrays for training: letterboxed images and targets, cached, and augmented batches
(:func:`training_batches`, NumPy/OpenCV, for any Keras backend).

Every image is decoded and letterboxed once (:func:`load_arrays`, cached as ``.npy`` under
``<build_dir>/cache/hc18``), so training reads small float arrays and preprocessing is never
the bottleneck. Targets:

- ``"filled"`` (ours): the filled head (``fetal_lib.data.hc18.load_mask``), area-resized, so
  boundary pixels carry the fraction of head they cover;
- ``"outline"`` (the source's flaw): the outline annotation itself, resized and scaled to
  0/2 as in the source project.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from fetal_lib.data.hc18 import HC18Record, load_mask
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.transforms.augment import AugmentConfig, augment_pair
from fetal_lib.transforms.letterbox import letterbox
from fetal_lib.io import atomic_path
from fetal_lib.transforms.letterbox import letterbox_geometry

MASK_MODES = ("filled", "outline")


def target_for(record: HC18Record, out_shape: tuple[int, int], mask_mode: str = "filled") -> np.ndarray:
    """The training target of one record at the network size (float32, rows x cols)."""
    if mask_mode == "filled":
        target, _ = letterbox(load_mask(record), out_shape, interpolation="area")
        return target
    if mask_mode == "outline":
        outline = read_image_gray(record.annotation_path) > 0
        target, _ = letterbox(outline, out_shape, interpolation="linear")
        return 2.0 * target  # the source scaled its outline masks to 0/2
    raise ValueError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")


def _cache_key(records: Sequence[HC18Record], out_shape: tuple[int, int], mask_mode: str) -> str:
    h = hashlib.sha256()
    for r in records:
        st = r.image_path.stat()
        h.update(f"{r.image_path}|{st.st_size}|{st.st_mtime_ns}|".encode())
    h.update(f"{out_shape}|{mask_mode}|v1".encode())
    return h.hexdigest()[:16]


def load_arrays(
    records: Sequence[HC18Record],
    out_shape: tuple[int, int],
    mask_mode: str | None = "filled",
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Letterboxed images (N, rows, cols, 1) in [0, 1] and targets (N, rows, cols, 1), float32.

    Args:
        records: HC18 records (targets need training records with annotations).
        out_shape: (rows, cols) network input size.
        mask_mode: "filled", "outline", or None (images only; targets returned as None).
        cache_dir: where to cache the arrays (``None``: no cache).
        progress: show a tqdm bar.
    """
    if cache_dir is not None:
        key = _cache_key(records, out_shape, mask_mode or "none")
        cache = Path(cache_dir) / f"hc18_{key}.npz"
        if cache.is_file():
            with np.load(cache) as data:
                return data["x"], (data["y"] if mask_mode else None)
    from tqdm import tqdm

    x = np.zeros((len(records), *out_shape, 1), np.float32)
    y = np.zeros((len(records), *out_shape, 1), np.float32) if mask_mode else None
    for i, rec in enumerate(tqdm(records, desc="letterbox", disable=not progress, leave=False)):
        x[i, ..., 0], _ = letterbox(read_image_gray(rec.image_path), out_shape)
        if mask_mode:
            y[i, ..., 0] = target_for(rec, out_shape, mask_mode)
    if cache_dir is not None:

        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, x=x, **({"y": y} if mask_mode else {}))
    return x, y


def mm_per_input_pixel(records: Sequence[HC18Record], out_shape: tuple[int, int]) -> np.ndarray:
    """Millimetres per network-input pixel of each record (its pixel size over the letterbox scale).

    A boundary off by one network pixel moves that image's HC by about 2*pi times this, so
    weighting each image's loss by it makes the training loss count errors in mm, as the
    HC metric does, rather than in network pixels.
    """

    out = np.empty(len(records), np.float64)
    for i, rec in enumerate(records):
        shape = read_image_gray(rec.image_path).shape[:2]
        out[i] = rec.pixel_size_mm / letterbox_geometry(shape, out_shape).scale
    return out


def training_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int,
    augment: bool = True,
    config: AugmentConfig = AugmentConfig(),
    weights: np.ndarray | None = None,
    workers: int = 1,
):
    """Shuffled, augmented (:func:`fetal_lib.transforms.augment.augment_pair`) batches for ``model.fit`` on any
    Keras backend: a :class:`fetal_lib.training.keras_batches.ShuffledBatches`.

    Reshuffled every epoch; every batch is full (``len(x) // batch_size`` batches; the few images
    left over differ from epoch to epoch), so a compiled training step compiles once instead of
    again for a short last batch. With fewer images than ``batch_size``, one short batch.
    ``weights`` (one per image) are yielded as a third element, which Keras takes as sample weights.
    """
    from fetal_lib.training.keras_batches import ShuffledBatches  # deferred: imports keras

    def one(image, mask, rng):
        return augment_pair(image, mask, config, rng)

    return ShuffledBatches(x, y, batch_size, seed, augment=one if augment else None, weights=weights, workers=workers)
