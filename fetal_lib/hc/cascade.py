"""Chapter 1's cascade: the first U-Net finds the head, a second U-Net outlines the skull at high resolution.

The first stage (:class:`fetal_lib.hc.measure.HCModel`) segments the whole letterboxed image and
its fitted ellipse says where the head is. The second stage segments the skull band around that
ellipse (:mod:`fetal_lib.hc.band`: the image resampled in the ellipse's polar coordinates, a few
times finer than the first stage's input), and its band probabilities are mapped back to original
pixels, where the same post-processing fits the final ellipse. ``combine="mean"`` averages the
mapped-back map with the first stage's instead of replacing it.

The second stage trains on bands around the first stage's own ellipses on the training images,
each drawn afresh with a random jitter of centre, axes and angle, so that it learns to outline
the head from the imperfect ellipses it will be given (:func:`train_refiner`).

A model card names the second stage in its ``cascade`` section; :meth:`HCModel.load
<fetal_lib.hc.measure.HCModel.load>` then returns a :class:`CascadeHCModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fetal_lib.hc import postprocess
from fetal_lib.hc.band import BandConfig, band_to_image, jitter, sample_band
from fetal_lib.hc.measure import CASCADE_KEY, COMBINES, CascadeHCModel, HCModel, scaled  # noqa: F401 (the cascade's model lives with the first stage's)
from fetal_lib.hc.measure import load_cascade as load  # noqa: F401
from fetal_lib.data.hc18 import load_mask
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.hc.train import train_on_batches
from fetal_lib.training import keras_backend
from fetal_lib.transforms.augment import AugmentConfig, random_intensity

@dataclass(frozen=True)
class JitterConfig:
    """Random changes of the first stage's ellipse when a training band is drawn (fractions, degrees)."""

    centre_sd: float = 0.03  # centre moved by N(0, centre_sd * minor semi-axis) per axis
    scale_sd: float = 0.03  # each semi-axis scaled by N(1, scale_sd)
    angle_sd_deg: float = 4.0


def probabilities(cascade: CascadeHCModel, records: Sequence, first_probs: Sequence[np.ndarray] | None = None,
                  progress: bool = False) -> list[np.ndarray]:
    """The cascade's original-size maps of ``records``, reusing the first stage's maps when given."""
    from tqdm import tqdm


    firsts = first_probs if first_probs is not None else [None] * len(records)
    return [cascade.probability_and_first(read_image_gray(r.image_path), p)[0]
            for r, p in tqdm(list(zip(records, firsts)), desc="second stage", disable=not progress, leave=False)]


def first_fits(cascade: CascadeHCModel, first_probs: Sequence[np.ndarray]) -> list:
    """The first stage's head fit of each of its maps ``first_probs`` (None where it found no head), for
    :func:`fetal_lib.hc.pipeline.evaluate`'s check that the two stages agree."""
    return [cascade.locate(None, p)[1] for p in first_probs]


@dataclass
class RefinerData:
    """What the second stage trains on: images, masks and the first stage's ellipses (training images
    where the first stage found a head), and fixed validation bands."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    ellipses: list  # fetal_lib.metrics.biometry.Ellipse, one per image
    x_val: np.ndarray  # (N, rows, cols, 1) bands around the first stage's validation ellipses
    y_val: np.ndarray  # their target bands (fraction of head)
    skipped: list[str]  # training files where the first stage found no head (left out)


def refiner_data(first: HCModel, train_records: Sequence, val_records: Sequence, band: BandConfig,
                 val_first_probs: Sequence[np.ndarray] | None = None, progress: bool = False) -> RefinerData:
    """First-stage ellipses of the training and validation images and the bands the second stage needs."""
    from tqdm import tqdm


    images, masks, ellipses, skipped = [], [], [], []
    for rec in tqdm(train_records, desc="first stage on training images", disable=not progress, leave=False):
        image = read_image_gray(rec.image_path)
        try:
            head = first.fit(first.probability(image))
        except postprocess.NoHeadFound:
            skipped.append(rec.filename)
            continue
        images.append(image)
        masks.append(load_mask(rec))
        ellipses.append(head.ellipse)
    x_val, y_val = [], []
    firsts = val_first_probs if val_first_probs is not None else [None] * len(val_records)
    for rec, prob in zip(val_records, firsts):
        image = read_image_gray(rec.image_path)
        prob = first.probability(image) if prob is None else prob
        try:
            head = first.fit(prob)
        except postprocess.NoHeadFound:
            continue
        x_val.append(sample_band(image, head.ellipse, band))
        y_val.append(sample_band(load_mask(rec), head.ellipse, band))
    if not images or not x_val:
        raise ValueError("the first stage found no head in the training or validation images: nothing to train a second stage on")
    return RefinerData(images, masks, ellipses, np.stack(x_val)[..., None], np.stack(y_val)[..., None], skipped)


def refiner_batches(data: RefinerData, band: BandConfig, jitter_config: JitterConfig, batch_size: int, seed: int,
                    intensity: bool = True, workers: int = 1):
    """Shuffled batches of bands drawn around jittered first-stage ellipses (intensity-augmented)."""
    from fetal_lib.training.keras_batches import SampledBatches  # deferred: imports keras

    augment = AugmentConfig()

    def make(i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        e = jitter(data.ellipses[i], rng, jitter_config.centre_sd, jitter_config.scale_sd, jitter_config.angle_sd_deg)
        x = sample_band(data.images[i], e, band)[..., None]
        y = sample_band(data.masks[i], e, band)[..., None]
        if intensity:
            x = random_intensity(x, augment, rng)
        return x, y

    return SampledBatches(len(data.images), make, batch_size, seed, workers=workers)


def train_refiner(config, data: RefinerData, band: BandConfig, jitter_config: JitterConfig, progress: bool = False, verbose: int = 0):
    """Train the second-stage U-Net (``config``: a :class:`fetal_lib.hc.train.TrainConfig` whose
    ``input_shape`` is the band's); returns the harness's result (best validation-Dice weights)."""

    if tuple(config.input_shape) != band.shape:
        raise ValueError(f"the second stage's input_shape {tuple(config.input_shape)} is not the band's {band.shape}")
    batches = refiner_batches(data, band, jitter_config, config.batch_size, config.seed, intensity=config.augment,
                              workers=keras_backend.loader_workers())
    return train_on_batches(config, batches, len(data.images), data.x_val, data.y_val, progress=progress, verbose=verbose,
                            desc="train second stage")
