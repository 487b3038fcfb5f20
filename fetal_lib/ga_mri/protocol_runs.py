"""Chapter 4's protocols 2 and 3 as the chapter runs them, and the rows and fold tables of all three.

Protocol 1 (folds by volume) is :func:`fetal_lib.ga_mri.pipeline.by_volume` (``fetal ga train`` runs
it too); the folds of each protocol are :mod:`fetal_lib.ga_mri.protocols`. Scores are MAE (days) and
R2 with 95 % bootstrap CIs over volumes (:func:`fetal_lib.ga_mri.pipeline.scores`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fetal_lib.ga_mri import baselines, pipeline, protocols
from fetal_lib.ga_mri.samples import SampleSet


def by_volume_rows(p1: pipeline.ByVolume) -> list[dict[str, Any]]:
    """Protocol 1's results rows: the network scored per volume and per sample, then the baselines."""
    return [pipeline.row("by volume", "network", "volume", p1.network),
            pipeline.row("by volume", "network", "sample", p1.network_per_sample), *p1.baseline_rows]


@dataclass
class AcrossFamilies:
    """Protocol 2: train on one atlas family, test on the other."""

    run: pipeline.ProtocolRun
    volumes: pd.DataFrame  # pipeline.per_volume of the run: group, family, ga_days, predicted_days, n_samples
    rows: list[dict[str, Any]]  # per direction: the network per volume, then the baselines under the same fold


def across_families(samples: SampleSet, volumes: Sequence[pipeline.Volume], settings: dict[str, Any],
                    seed: int = 0) -> AcrossFamilies | None:
    """Protocol 2 (the knob ``n_bootstrap``), or None when the samples hold one atlas family only."""
    if len(set(samples.atlas.tolist())) <= 1:
        return None
    n_boot = int(settings["n_bootstrap"])
    ids = np.array([v.id for v in volumes])
    folds, names = protocols.cross_family_folds(samples.atlas)
    run = pipeline.run_protocol("protocol 2: across families", samples, folds, settings, seed, fold_names=names)
    per_vol = pipeline.per_volume(samples, run.predicted_days)
    rows: list[dict[str, Any]] = []
    for k, name in enumerate(names):
        part = per_vol[per_vol["group"].isin(set(samples.group[folds[k][1]]))]
        rows.append(pipeline.row(name, "network", "volume",
                                 pipeline.scores(part["ga_days"], part["predicted_days"], part["group"], n_boot, seed)))
        rows += pipeline.baseline_rows(name, volumes, baselines.volume_folds(samples.group, ids, [folds[k]]), n_boot, seed)[0]
    return AcrossFamilies(run, per_vol, rows)


@dataclass
class SamplesAtRandom:
    """Protocol 3: samples (not volumes) split into folds at random, the leak."""

    run: pipeline.ProtocolRun
    scores: dict[str, Any]  # pipeline.scores per sample, CIs over volumes

    @property
    def row(self) -> dict[str, Any]:
        return pipeline.row("samples at random (leaky)", "network", "sample", self.scores)


def samples_at_random(samples: SampleSet, settings: dict[str, Any], seed: int = 0) -> SamplesAtRandom:
    """Protocol 3 with the knobs ``folds`` and ``n_bootstrap``."""
    folds = protocols.random_sample_folds(len(samples), int(settings["folds"]), seed)
    run = pipeline.run_protocol("protocol 3: samples at random", samples, folds, settings, seed)
    return SamplesAtRandom(run, pipeline.scores(samples.ga_days, run.predicted_days, samples.group, int(settings["n_bootstrap"]), seed))


def per_fold(p1: pipeline.ByVolume, cross: AcrossFamilies | None, samples: SampleSet) -> pd.DataFrame:
    """:func:`fetal_lib.ga_mri.pipeline.fold_table` of protocol 1, then of protocol 2 where it ran."""
    tables = [pipeline.fold_table("by volume", p1.run, samples)]
    if cross is not None:
        tables.append(pipeline.fold_table("across families", cross.run, samples))
    return pd.concat(tables, ignore_index=True)
