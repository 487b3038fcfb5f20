"""Chapter 4 as library calls: volumes prepared and sliced, the regressor trained under each
protocol, the baselines under the same folds, the scores with CIs, the deployed model.

Data: the atlases (:mod:`fetal_lib.data.fetal_brain_atlases`) or a FeTA-style BIDS set
(:mod:`fetal_lib.data.feta_bids`); preprocessing: :mod:`fetal_lib.ga_mri.volumes`; samples:
:mod:`fetal_lib.ga_mri.samples`; training: :mod:`fetal_lib.ga_mri.train`; protocols:
:mod:`fetal_lib.ga_mri.protocols`; the deployed model's floor, card and training outside the book
(``fetal ga train``): :mod:`fetal_lib.ga_mri.deploy`. The knobs' values live in
``profiles/<profile>.yaml`` ``fetal_mri_ga:``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fetal_lib.ga_mri.grid import PreprocessConfig
from fetal_lib.ga_mri.samples import DAYS_PER_WEEK, SampleSet
from fetal_lib.ga_mri.spec import SPEC
from fetal_lib.config.profiles import chapter_knobs
from fetal_lib.data import sources
from fetal_lib.ga_mri import baselines
from fetal_lib.ga_mri import baselines, protocols
from fetal_lib.ga_mri import samples
from fetal_lib.ga_mri.train import GaTrainConfig
from fetal_lib.metrics.regression import mae
from fetal_lib.metrics.regression import mae, r2
from fetal_lib.metrics.uncertainty import bootstrap_ci
from fetal_lib.training.precision import resolve_knobs_for_keras

CHAPTER = "fetal_mri_ga"
DATASETS = SPEC.knob("dataset").choices  # the datasets the chapter can read (declared in its spec)


def profile_settings(profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chapter's knobs as ``profiles/<profile>.yaml`` ``fetal_mri_ga:`` sets them, then ``overrides``."""

    return chapter_knobs(SPEC, profile, overrides)


def precision_choice(settings: dict[str, Any], flags=None):
    """The Keras training precision the ``precision`` knob resolves to where Keras computes (its GPU, else this CPU or ``flags``)."""

    return resolve_knobs_for_keras(settings, flags)


def preprocess_config(settings: dict[str, Any]):
    """The :class:`~fetal_lib.ga_mri.grid.PreprocessConfig` of the knobs ``size``, ``fov_mm``, ``offsets_mm``."""

    offsets = settings["offsets_mm"]
    offsets = [float(o) for o in (offsets.split(",") if isinstance(offsets, str) else offsets)]
    return PreprocessConfig(size=int(settings["size"]), fov_mm=float(settings["fov_mm"]), offsets_mm=tuple(offsets))


def train_config(settings: dict[str, Any], seed: int = 0):
    """The :class:`~fetal_lib.ga_mri.train.GaTrainConfig` of the knobs."""

    return GaTrainConfig(
        options=dict(settings.get("arch_options") or {}),
        **SPEC.typed(settings, "size", "epochs", "batch_size", "learning_rate", "huber_delta_days", "augment", "jit_compile"),
        precision=precision_choice(settings).precision,
        seed=int(seed),
        weights_path=str(settings.get("vgg16_weights") or "") or None,
    )


@dataclass
class Volume:
    """One prepared volume (an atlas time point or a subject)."""

    id: str  # split group: "<family>/<name>"
    atlas: str
    name: str
    ga_weeks: float
    slices: dict[str, np.ndarray]  # plane -> (n_offsets, size, size)
    brain_volume_ml: float
    tissue_ml: dict[str, float]
    cropped: bool
    prepared: Any = field(repr=False, default=None)

    @property
    def ga_days(self) -> float:
        return float(self.ga_weeks) * DAYS_PER_WEEK


def load_volumes(dataset: str, data_dir: str, data_source: str, config, progress: bool = True):
    """Resolve ``dataset``, read and prepare every volume that has an image.

    Returns:
        (the :class:`~fetal_lib.data.sources.DatasetSource`, list of :class:`Volume`, notes: what was skipped and why).

    Raises:
        ValueError: an unknown dataset. FetalInputError: a bad file (named).
    """
    from tqdm.auto import tqdm

    from fetal_lib.ga_mri import volumes as vol  # deferred: imports SimpleITK

    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    source = sources.resolve(dataset, data_dir or None, source=data_source)
    if dataset == "feta":
        from fetal_lib.data import feta_bids as loader  # local: another import in this function's module binds the same name
    else:
        from fetal_lib.data import fetal_brain_atlases as loader  # local: another import in this function's module binds the same name
    labels = dict(getattr(loader, "LABELS", {}))
    labels.pop(0, None)
    records = loader.load(source.root)
    out, notes = [], []
    for r in tqdm(records, desc="prepare volumes", unit="volume", disable=not progress):
        if r.srr_path is None:
            notes.append(f"{r.name}: no T2 image in the release (its mask and parcellation alone cannot feed the network); left out.")
            continue
        # FeTA has no brain mask: its label map (> 0) is the brain
        image, mask = vol.read_volume(r.srr_path, r.mask_path if r.mask_path is not None else r.parcellation_path)
        prepared = vol.prepare(image, mask, config)
        tissue = vol.tissue_volumes_ml(r.parcellation_path, labels) if r.parcellation_path is not None else {}
        out.append(Volume(f"{r.atlas}/{r.name}", r.atlas, r.name, float(r.ga_weeks), vol.plane_slices(prepared, config.offsets_mm),
                          float(prepared.brain_volume_ml), tissue, bool(prepared.cropped), prepared))
    if not out:
        raise ValueError(f"no volume with an image under {source.root}")
    return source, out, notes


def volume_table(volumes: Sequence[Volume]) -> pd.DataFrame:
    """One row per volume: family, name, GA (weeks), brain and tissue volumes (mL), cropped by the field of view."""
    rows = []
    for v in volumes:
        rows.append({"volume": v.name, "family": v.atlas, "ga_weeks": v.ga_weeks, "brain_volume_ml": round(v.brain_volume_ml, 1),
                     **{f"{k} (mL)": round(x, 1) for k, x in v.tissue_ml.items()}, "cropped": v.cropped})
    return pd.DataFrame(rows)


def build_samples(volumes: Sequence[Volume], samples_per_volume: int, seed: int = 0) -> SampleSet:
    """The samples of every volume (:func:`fetal_lib.ga_mri.samples.build`)."""

    return samples.build([v.slices for v in volumes], [v.ga_days for v in volumes], [v.id for v in volumes],
                         [v.atlas for v in volumes], int(samples_per_volume), seed)


@dataclass
class ProtocolRun:
    """The network under one protocol: out-of-fold predictions of every tested sample."""

    name: str
    fold_names: list[str]
    folds: list[tuple[np.ndarray, np.ndarray]]
    predicted_days: np.ndarray  # (N,) NaN where a sample was never tested
    fold_of: np.ndarray  # (N,) the fold that tested it (-1 never)
    histories: list[dict]
    seconds: float
    train_images_per_s: float
    models: list[Any] = field(default_factory=list, repr=False)

    def tested(self) -> np.ndarray:
        return np.flatnonzero(self.fold_of >= 0)


def run_protocol(name: str, samples: SampleSet, folds: Sequence[tuple[np.ndarray, np.ndarray]], settings: dict[str, Any],
                 seed: int = 0, fold_names: Sequence[str] | None = None, keep_models: bool = False) -> ProtocolRun:
    """Train the regressor on every fold's training samples and predict its test samples."""
    from fetal_lib.ga_mri.train import predict_days, train  # looked up at call time: a test replaces it

    config = train_config(settings, seed)
    pred = np.full(len(samples), np.nan)
    fold_of = np.full(len(samples), -1)
    histories, models, speeds = [], [], []
    t0 = time.perf_counter()
    names = list(fold_names) if fold_names is not None else [f"fold {k + 1}" for k in range(len(folds))]
    for k, (tr, te) in enumerate(folds):
        part = samples.subset(tr)
        fit = train(config, part.planes, part.ga_days, progress=True)
        pred[te] = predict_days(fit.model, samples.subset(te).planes)
        fold_of[te] = k
        histories.append({"fold": names[k], "epochs": fit.epochs_run, "seconds": fit.seconds, **fit.history})
        speeds.append(fit.train_images_per_s)
        if keep_models:
            models.append(fit.model)
    return ProtocolRun(name, names, [(np.asarray(a), np.asarray(b)) for a, b in folds], pred, fold_of, histories,
                       time.perf_counter() - t0, float(np.mean(speeds)) if speeds else 0.0, models)


@dataclass
class ByVolume:
    """Protocol 1 (folds by volume): the network's run, its per-volume predictions, its scores (per
    volume and per sample, with CIs) and the baselines under the same folds."""

    folds: list[tuple[np.ndarray, np.ndarray]]
    run: ProtocolRun
    volumes: pd.DataFrame  # per_volume(): group, family, ga_days, predicted_days, n_samples
    network: dict[str, Any]  # scores() per volume
    network_per_sample: dict[str, Any]  # scores() per sample
    baseline_rows: list[dict]
    baseline_pred: dict[str, np.ndarray]  # baseline -> predicted days per volume (the order of the volumes)
    ga_days: np.ndarray  # per volume, the order of the volumes

    def baseline_mae_days(self, name: str) -> float:
        """A baseline's MAE (days) over the volumes it predicted."""

        p = self.baseline_pred[name]
        ok = np.isfinite(p)
        return float(mae(self.ga_days[ok], p[ok]))


def by_volume(samples: SampleSet, volumes: Sequence[Volume], settings: dict[str, Any], seed: int = 0,
              keep_models: bool = False) -> ByVolume:
    """Protocol 1 as the chapter runs it: the knobs ``folds`` (stratified by ``ga_bins`` bins of GA)
    and ``n_bootstrap``; the network trained and tested in every fold, the baselines fitted on the
    same training volumes."""

    n_boot = int(settings["n_bootstrap"])
    folds = protocols.grouped_folds(samples.group, samples.ga_days, int(settings["folds"]), seed, int(settings["ga_bins"]))
    run = run_protocol("protocol 1: by volume", samples, folds, settings, seed, keep_models=keep_models)
    vol = per_volume(samples, run.predicted_days)
    network = scores(vol["ga_days"], vol["predicted_days"], vol["group"], n_boot, seed)
    per_sample = scores(samples.ga_days, run.predicted_days, samples.group, n_boot, seed)
    vfolds = baselines.volume_folds(samples.group, np.array([v.id for v in volumes]), folds)
    base_rows, base_pred = baseline_rows("by volume", volumes, vfolds, n_boot, seed)
    return ByVolume(run.folds, run, vol, network, per_sample, base_rows, base_pred, np.array([v.ga_days for v in volumes]))


def per_volume(samples: SampleSet, predicted_days: np.ndarray, matched_only: bool = True) -> pd.DataFrame:
    """Predictions averaged per volume over its tested samples: group, family, ga_days, predicted_days, n_samples.

    ``matched_only``: average the matched triples only (the same offset in every plane), as
    ``fetal ga predict`` does, so that the volume-level figure is the deployed tool's.
    """
    tested = np.isfinite(predicted_days)
    if matched_only:
        tested &= (samples.offsets == samples.offsets[:, :1]).all(axis=1)
    df = pd.DataFrame({"group": samples.group[tested], "family": samples.atlas[tested], "ga_days": samples.ga_days[tested],
                       "predicted_days": predicted_days[tested]})
    out = df.groupby("group", sort=True).agg(family=("family", "first"), ga_days=("ga_days", "first"),
                                             predicted_days=("predicted_days", "mean"), n_samples=("predicted_days", "size"))
    return out.reset_index()


def scores(y_days: np.ndarray, predicted_days: np.ndarray, groups: np.ndarray | None = None, n_boot: int = 1000,
           seed: int = 0) -> dict[str, Any]:
    """MAE (days) and R2 with 95 % bootstrap CIs (whole groups resampled when ``groups`` is given)."""

    y, p = np.asarray(y_days, float), np.asarray(predicted_days, float)
    m = bootstrap_ci(mae, y, p, n_boot=n_boot, seed=seed, groups=groups)
    r = bootstrap_ci(r2, y, p, n_boot=n_boot, seed=seed, groups=groups)
    return {"n": int(len(y)), "n_groups": int(len(np.unique(groups))) if groups is not None else int(len(y)),
            "mae_days": m.estimate, "mae_ci": [m.low, m.high], "r2": r.estimate, "r2_ci": [r.low, r.high]}


def fold_table(protocol: str, run: "ProtocolRun", samples: SampleSet) -> pd.DataFrame:
    """One row per fold of a protocol's run: its name, test volumes, and the network's MAE (days)
    and R2 on them, scored per volume (each volume's matched triples averaged, as :func:`per_volume`);
    then the mean and SD over the folds. R2 on a fold of few volumes spanning few weeks is unstable."""

    per_vol = per_volume(samples, run.predicted_days)
    rows = []
    for name, (_, te) in zip(run.fold_names, run.folds):
        part = per_vol[per_vol["group"].isin(set(samples.group[te]))]
        y, p = part["ga_days"].to_numpy(float), part["predicted_days"].to_numpy(float)
        rows.append({"protocol": protocol, "fold": name, "test volumes": int(len(part)),
                     "GA range (weeks)": f"{y.min() / 7:.0f}-{y.max() / 7:.0f}" if len(y) else "-",
                     "MAE (days)": mae(y, p) if len(y) else float("nan"), "R2": r2(y, p) if len(y) > 1 else float("nan")})
    table = pd.DataFrame(rows)
    if len(table) > 1:
        for stat, fn in (("mean over folds", np.nanmean), ("SD over folds", lambda v: np.nanstd(v, ddof=1))):
            table.loc[len(table)] = {"protocol": protocol, "fold": stat, "test volumes": np.nan, "GA range (weeks)": "",
                                     "MAE (days)": float(fn(table["MAE (days)"].to_numpy(float)[:len(rows)])),
                                     "R2": float(fn(table["R2"].to_numpy(float)[:len(rows)]))}
    table["test volumes"] = table["test volumes"].astype("Int64")  # whole numbers; empty on the summary rows
    return table


def row(protocol: str, model: str, unit: str, s: dict[str, Any]) -> dict[str, Any]:
    """One results-table row."""
    return {"protocol": protocol, "model": model, "scored per": unit, "n": s["n"], "volumes": s["n_groups"],
            "MAE (days)": round(s["mae_days"], 2), "MAE 95% CI": f"{s['mae_ci'][0]:.2f}-{s['mae_ci'][1]:.2f}",
            "R2": round(s["r2"], 3), "R2 95% CI": f"{s['r2_ci'][0]:.3f}-{s['r2_ci'][1]:.3f}"}


def baseline_rows(protocol: str, volumes: Sequence[Volume], volume_folds, n_boot: int, seed: int) -> tuple[list[dict], dict]:
    """The baselines under ``volume_folds`` (indices into ``volumes``): table rows and their per-volume predictions."""

    bv = np.array([v.brain_volume_ml for v in volumes])
    keys = sorted({k for v in volumes for k in v.tissue_ml})
    tissue = np.array([[v.tissue_ml.get(k, 0.0) for k in keys] for v in volumes]) if keys else bv.reshape(-1, 1)
    y = np.array([v.ga_days for v in volumes])
    ids = np.array([v.id for v in volumes])
    rows, preds = [], {}
    for name in baselines.NAMES:
        if name == "tissue_ridge" and not keys:
            continue
        p = baselines.predict_folds(name, bv, tissue, y, volume_folds)
        ok = np.isfinite(p)
        preds[name] = p
        rows.append(row(protocol, name, "volume", scores(y[ok], p[ok], ids[ok], n_boot, seed)))
    return rows, preds


def leak_gap(grouped: dict[str, Any], leaked: dict[str, Any]) -> pd.DataFrame:
    """The network's MAE and R2 per sample under the grouped and the random-sample protocol, and the gap."""
    return pd.DataFrame([
        {"split": "by volume (protocol 1)", "MAE (days)": round(grouped["mae_days"], 2),
         "MAE 95% CI": f"{grouped['mae_ci'][0]:.2f}-{grouped['mae_ci'][1]:.2f}", "R2": round(grouped["r2"], 3)},
        {"split": "samples at random (one volume on both sides)", "MAE (days)": round(leaked["mae_days"], 2),
         "MAE 95% CI": f"{leaked['mae_ci'][0]:.2f}-{leaked['mae_ci'][1]:.2f}", "R2": round(leaked["r2"], 3)},
        {"split": "flattery of the random split", "MAE (days)": round(grouped["mae_days"] - leaked["mae_days"], 2),
         "MAE 95% CI": "", "R2": round(leaked["r2"] - grouped["r2"], 3)},
    ])


def train_deployed(samples: SampleSet, settings: dict[str, Any], seed: int = 0):
    """The regressor trained on every volume with the same recipe (the one ``fetal ga predict`` uses)."""
    from fetal_lib.ga_mri.train import train  # looked up at call time: a test replaces it

    return train(train_config(settings, seed), samples.planes, samples.ga_days, progress=True)


def floor_ok(network_mae_days: float, mean_baseline_mae_days: float) -> bool:
    """The deployment floor: the network's grouped-CV MAE must beat predicting the training mean age."""
    return bool(np.isfinite(network_mae_days) and network_mae_days < mean_baseline_mae_days)
