"""Samples of chapter 4: one axial, one coronal and one sagittal slice of a volume, with its age.

A volume gives ``n_offsets`` slices per plane (:func:`fetal_lib.ga_mri.volumes.plane_slices`). Its
samples are the matched triples (the i-th offset in every plane, i = 0..n_offsets-1) and, up to
``samples_per_volume``, distinct random triples (offset i in the axial plane, j in the coronal, k
in the sagittal), drawn with a seeded generator: every volume contributes the same number of
samples, and neighbouring samples of one volume share slices. That sharing is what an image-level
(slice-level) split leaks: see :func:`fetal_lib.ga_mri.protocols.random_sample_folds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from fetal_lib.networks.keras.vgg_attention import PLANES

DAYS_PER_WEEK = 7


@dataclass
class SampleSet:
    """Every sample of a set of volumes (N samples, slices of ``size`` x ``size`` pixels).

    Attributes:
        planes: plane -> (N, size, size, 1) float32 slices.
        ga_days: (N,) gestational age of the sample's volume, days.
        group: (N,) the volume's id (``"Gholipour2017/HarvardSTA21_Study1"``): the split unit.
        atlas: (N,) the volume's family (``"Gholipour2017"``, ``"Wu2021"``, ``"FeTA"``).
        offsets: (N, 3) the offset index of each plane's slice.
    """

    planes: dict[str, np.ndarray]
    ga_days: np.ndarray
    group: np.ndarray
    atlas: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return int(self.ga_days.shape[0])

    def subset(self, index: Sequence[int] | np.ndarray) -> SampleSet:
        """The samples at ``index`` (a copy)."""
        idx = np.asarray(index, dtype=int)
        return SampleSet({p: a[idx] for p, a in self.planes.items()}, self.ga_days[idx], self.group[idx], self.atlas[idx],
                         self.offsets[idx])

    def inputs(self) -> list[np.ndarray]:
        """The network's inputs, in :data:`PLANES` order."""
        return [self.planes[p] for p in PLANES]


def triples(n_offsets: int, samples_per_volume: int, rng: np.random.Generator) -> np.ndarray:
    """(samples_per_volume, 3) offset indices: the matched triples first, then distinct random ones.

    Raises:
        ValueError: ``samples_per_volume`` below ``n_offsets`` or above ``n_offsets**3``.
    """
    if n_offsets < 1:
        raise ValueError(f"n_offsets must be >= 1, got {n_offsets}")
    if not n_offsets <= samples_per_volume <= n_offsets**3:
        raise ValueError(f"samples_per_volume must be in {n_offsets}..{n_offsets ** 3} (the matched triples first), got {samples_per_volume}")
    matched = [(i, i, i) for i in range(n_offsets)]
    others = [t for t in np.ndindex(n_offsets, n_offsets, n_offsets) if len(set(t)) > 1]
    pick = rng.choice(len(others), size=samples_per_volume - n_offsets, replace=False)
    return np.array(matched + [others[i] for i in sorted(pick)], dtype=int).reshape(-1, 3)


def build(volume_slices: Sequence[Mapping[str, np.ndarray]], ga_days: Sequence[float], groups: Sequence[str],
          atlases: Sequence[str], samples_per_volume: int, seed: int = 0) -> SampleSet:
    """The samples of every volume.

    Args:
        volume_slices: per volume, plane -> (n_offsets, size, size) slices (all volumes alike).
        ga_days: per volume, gestational age in days.
        groups, atlases: per volume, its id and family.
        samples_per_volume: samples drawn from each volume (see :func:`triples`).
        seed: the triples' generator seed (one generator, volumes in order).

    Raises:
        ValueError: lengths differ, no volume, or volumes of different slice shapes.
    """
    n = len(volume_slices)
    if n == 0 or not len(ga_days) == len(groups) == len(atlases) == n:
        raise ValueError(f"one GA, group and atlas per volume needed: {n} volumes, {len(ga_days)}, {len(groups)}, {len(atlases)}")
    shape = volume_slices[0][PLANES[0]].shape
    rng = np.random.default_rng(seed)
    planes: dict[str, list[np.ndarray]] = {p: [] for p in PLANES}
    y, g, a, off = [], [], [], []
    for k, slices in enumerate(volume_slices):
        for p in PLANES:
            if slices[p].shape != shape:
                raise ValueError(f"volume {groups[k]}: {p} slices {slices[p].shape}, expected {shape} as the first volume")
        t = triples(shape[0], samples_per_volume, rng)
        for j, p in enumerate(PLANES):
            planes[p].append(np.asarray(slices[p], np.float32)[t[:, j]][..., None])
        y += [float(ga_days[k])] * len(t)
        g += [str(groups[k])] * len(t)
        a += [str(atlases[k])] * len(t)
        off.append(t)
    return SampleSet({p: np.concatenate(v) for p, v in planes.items()}, np.asarray(y, np.float64), np.asarray(g),
                     np.asarray(a), np.concatenate(off))
