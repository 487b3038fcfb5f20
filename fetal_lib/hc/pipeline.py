"""The HC18 experiment as library calls: data and split, training, threshold choice, evaluation.

Used by the chapter (``notebooks/01_hc18_unet.py``) and by ``fetal hc train``, so both train the
same model the same way. The knobs' values come from the ``hc18:`` section of
``profiles/<profile>.yaml`` (:func:`profile_settings`), the one place they live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from fetal_lib.data.hc18 import HC18Record
from fetal_lib.training import precision as precision_mod
from fetal_lib.training.floor import Floor
from fetal_lib.hc.spec import SPEC
from fetal_lib.config.profiles import chapter_knobs
from fetal_lib.config.profiles import parse_overrides as parse
from fetal_lib.data import hc18
from fetal_lib.data.hc18 import load_mask
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.data.sources import resolve
from fetal_lib.data.splits import check_disjoint, grouped_split
from fetal_lib.hc.dataset import load_arrays
from fetal_lib.hc.dataset import mm_per_input_pixel
from fetal_lib.hc.figures import HC_BIN_LABELS, hc_bin
from fetal_lib.hc.train import TrainConfig
from fetal_lib.metrics.uncertainty import bootstrap_ci
from fetal_lib.model_card import common_fields
from fetal_lib.paths import build_dir
from fetal_lib.training.floor import check

# The sanity floor of the deployed model, on the validation split (fetal_lib.training.floor):
# below it the chapter and `fetal hc train` stop and deploy nothing. Real HC18: a working
# model scores Dice 0.97 and an HC error near 2 mm; the published cpu profile, cut short by a
# wall clock on a CPU that emulates bfloat16, deployed Dice 0.83 and 35 mm. The phantom floor
# is what the smoke model clears and an untrained one does not: on the phantom's validation
# image the smoke profile's model scores Dice 0.94 and 10 mm, an untrained one (learning rate 0)
# Dice 0.53 (the ellipse fitted to any blob overlaps the head) and 125 mm.
FLOORS: dict[str, tuple[Floor, ...]] = {
    "real": (Floor("dice_mean", 0.95, "min"), Floor("hc_abs_diff_mean_mm", 5.0, "max", "mm")),
    "phantom": (Floor("dice_mean", 0.7, "min"), Floor("hc_abs_diff_mean_mm", 50.0, "max", "mm")),
}
FLOOR_ADVICE = ("Look at the training line (epochs run, images/s, precision): if a wall-time cap (time_budget_s) cut "
                "training short, remove it or give more epochs; on a CPU without native bfloat16 train in float32 "
                "(precision=auto does; `fetal doctor` shows what this machine resolves to).")

SPLIT_FRACTIONS = (0.7, 0.15, 0.15)


def profile_settings(profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chapter's knobs as ``profiles/<profile>.yaml`` ``hc18:`` sets them, then ``overrides``
    (the profile is the one place their values live; the chapter's parameters cell names them)."""

    return chapter_knobs(SPEC, profile, overrides)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["augment_vflip=false", "epochs=12"]`` -> typed overrides of the hc18 knobs.

    Raises:
        ValueError: not ``KEY=VALUE``, an unknown key, a value of the wrong type, or a word not
            among the knob's declared choices (:data:`fetal_lib.hc.spec.SPEC`).
    """

    return parse(SPEC, items)


def precision_choice(settings: dict[str, Any], flags=None) -> "precision_mod.PrecisionChoice":
    """The Keras training precision the ``precision`` setting resolves to where Keras computes (its GPU, else this CPU or ``flags``)."""
    return precision_mod.resolve_knobs_for_keras(settings, flags)


def train_config(settings: dict[str, Any], seed: int = 0, audit: bool = False, **changes) -> "TrainConfig":
    """The :class:`~fetal_lib.hc.train.TrainConfig` of the main model (or of an audit arm)."""

    prefix = "audit_" if audit else ""
    config = TrainConfig(
        input_shape=(int(settings[f"{prefix}input_rows"]), int(settings[f"{prefix}input_cols"])),
        filters=int(settings[f"{prefix}filters"]),
        epochs=int(settings[f"{prefix}epochs"]),
        time_budget_s=float(settings[f"{prefix}time_budget_s"]) if settings.get(f"{prefix}time_budget_s") else None,
        **SPEC.typed(settings, "depth", "batch_size", "learning_rate", "augment", "augment_vflip", "loss_weight", "jit_compile"),
        precision=precision_choice(settings).precision,
        seed=int(seed),
    )
    for key, value in changes.items():
        setattr(config, key, value)
    return config


@dataclass
class HCData:
    """The resolved dataset, its training records and the subject-level split."""

    source: Any  # fetal_lib.data.sources.DatasetSource
    records: list[HC18Record]
    parts: dict[str, np.ndarray]  # "train" / "val" / "test" -> indices into records

    def part(self, name: str) -> list[HC18Record]:
        return [self.records[i] for i in self.parts[name]]

    def with_training_subjects(self, fraction: float, seed: int = 0) -> HCData:
        """This split with its training part cut to a seeded ``fraction`` of its subjects (every image of a subject
        drawn, at least one subject); validation and test untouched. ``fraction`` 1 gives this split itself.

        Raises:
            ValueError: ``fraction`` not in (0, 1]."""
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"the share of training subjects must be in (0, 1], got {fraction!r}")
        if float(fraction) == 1.0:
            return self
        train = np.asarray(self.parts["train"])
        subjects = np.unique([self.records[i].subject_id for i in train])
        keep = np.random.default_rng(seed).choice(subjects, max(1, int(round(fraction * subjects.size))), replace=False)
        kept = set(keep.tolist())
        return HCData(self.source, self.records, {**self.parts, "train": np.array([i for i in train if self.records[i].subject_id in kept])})


def load_data(data_dir: str | None = None, data_source: str = "auto", seed: int = 0, max_images: int = 0) -> HCData:
    """Resolve HC18 (real or phantom), read its training records, split them by subject.

    The split is 70/15/15 % of the *subjects* (``NNN_HC`` and ``NNN_2HC`` together), stratified
    by HC tercile so each part spans the trimesters. ``max_images > 0`` keeps the first subjects
    (in file order) up to that many images, for quick runs.
    """

    source = resolve("hc18", data_dir or None, data_source)
    records = hc18.load(source.root, "train")
    if max_images and max_images < len(records):
        records = records[: int(max_images)]
        last = records[-1].subject_id
        records = [r for r in records if r.subject_id != last] or records
    groups = [r.subject_id for r in records]
    parts = grouped_split(groups, SPLIT_FRACTIONS, seed=seed, stratify=[r.hc_mm for r in records], stratify_bins=3)
    check_disjoint(groups, parts)
    return HCData(source, records, parts)


def probabilities(model, records: Sequence[HC18Record], progress: bool = False) -> list[np.ndarray]:
    """Original-size head-probability maps of ``records`` (with the model's TTA)."""
    return probabilities_and_first_fits(model, records, progress)[0]


def probabilities_and_first_fits(model, records: Sequence[HC18Record], progress: bool = False) -> tuple[list[np.ndarray], list]:
    """:func:`probabilities` of ``records`` and, for a cascade, its first stage's head fit of each (None where the
    model has one stage or its first stage found no head): what :func:`evaluate` needs for the stages' check."""
    from tqdm import tqdm

    both = getattr(model, "probability_and_first", None)
    pairs = [both(read_image_gray(r.image_path)) if both is not None else (model.probability(read_image_gray(r.image_path)), None)
             for r in tqdm(records, desc="predict", disable=not progress, leave=False)]
    return [p for p, _ in pairs], [f for _, f in pairs]


def evaluate(model, records: Sequence[HC18Record], probs: Sequence[np.ndarray] | None = None, threshold: float | None = None,
             progress: bool = False, first_fits: Sequence | None = None):
    """Per-image results on annotated records: HC (mm), Dice, IoU, recall, precision, HD95 (mm), checks.

    ``hc_pred_mm`` and the ellipse columns are after the model's size calibration (if it has
    one), as ``fetal hc measure`` reports them; ``hc_raw_mm`` is the HC of the raw fit. Dice,
    IoU and HD95 compare the segmented head region with the reference mask.
    A record with no head found gets NaN HC, Dice 0, IoU 0, HD95 inf and ``found=False``.
    ``warnings`` holds the fit's plausibility checks and, for a cascade, the stages' check
    (:func:`fetal_lib.hc.measure.stage_checks`, as ``fetal hc measure`` reports it): computed here when
    ``probs`` is None, else from ``first_fits`` (the first stage's head fit of each record, or None).

    Returns:
        ``pandas.DataFrame``, one row per record.
    """
    import pandas as pd
    from tqdm import tqdm

    from fetal_lib.hc.postprocess import NoHeadFound  # deferred: imports scipy
    from fetal_lib.metrics.biometry import head_circumference_mm  # deferred: imports scipy
    from fetal_lib.metrics.segmentation import dice, hd95_mm, iou, precision, recall  # deferred: imports scipy

    from fetal_lib.hc.measure import stage_checks  # deferred: imports scipy

    if probs is None:
        probs, first_fits = probabilities_and_first_fits(model, records, progress)
    firsts = list(first_fits) if first_fits is not None else [None] * len(records)
    rows = []
    for rec, prob, first in tqdm(list(zip(records, probs, firsts)), desc="evaluate", disable=not progress, leave=False):
        ref = load_mask(rec)
        row: dict[str, Any] = {"filename": rec.filename, "subject_id": rec.subject_id, "pixel_size_mm": rec.pixel_size_mm, "hc_ref_mm": rec.hc_mm}
        try:
            head = model.fit(prob, threshold=threshold)
        except NoHeadFound:
            row.update(found=False, hc_pred_mm=math.nan, hc_raw_mm=math.nan, dice=0.0, iou=0.0, recall=0.0, precision=0.0, hd95_mm=math.inf, agreement=0.0, warnings="no head found")
        else:
            e = model.calibrate(head.ellipse, rec.pixel_size_mm)
            row.update(
                found=True,
                hc_pred_mm=head_circumference_mm(e, rec.pixel_size_mm),
                hc_raw_mm=head_circumference_mm(head.ellipse, rec.pixel_size_mm),
                dice=dice(head.mask, ref),
                iou=iou(head.mask, ref),
                recall=recall(head.mask, ref),
                precision=precision(head.mask, ref),
                hd95_mm=hd95_mm(head.mask, ref, spacing=rec.pixel_size_mm),
                agreement=head.agreement,
                warnings="; ".join(list(head.warnings) + (stage_checks(head.ellipse, first.ellipse) if first is not None else [])),
                cx=e.cx, cy=e.cy, a=e.a, b=e.b, angle_rad=e.angle_rad,
            )
        rows.append(row)
    df = pd.DataFrame(rows)
    df["hc_diff_mm"] = df["hc_pred_mm"] - df["hc_ref_mm"]
    df["hc_abs_diff_mm"] = df["hc_diff_mm"].abs()
    df["flagged"] = df["warnings"].astype(str).str.len() > 0
    return df


def hc_at_thresholds(model, records: Sequence[HC18Record], grid: Sequence[float], probs: Sequence[np.ndarray] | None = None) -> dict[float, np.ndarray]:
    """HC (mm) of the raw fit of each record at each threshold of ``grid`` (NaN where no head is found):
    threshold -> array in the order of ``records``."""
    from fetal_lib.hc.postprocess import NoHeadFound  # deferred: imports scipy
    from fetal_lib.metrics.biometry import head_circumference_mm  # deferred: imports scipy

    if probs is None:
        probs = probabilities(model, records)
    out = {}
    for t in grid:
        hcs = []
        for rec, prob in zip(records, probs):
            try:
                hcs.append(head_circumference_mm(model.fit(prob, threshold=float(t)).ellipse, rec.pixel_size_mm))
            except NoHeadFound:
                hcs.append(math.nan)
        out[float(t)] = np.asarray(hcs, dtype=float)
    return out


def threshold_errors(hc, ref) -> tuple[np.ndarray, np.ndarray]:
    """The errors a threshold is judged by (mm): |HC difference|, where a missed head (NaN) counts as its
    reference HC (the worst case, so a threshold cannot win by failing on hard images), and the signed
    difference (NaN where missed)."""
    hc, ref = np.asarray(hc, float), np.asarray(ref, float)
    found = np.isfinite(hc)
    return np.where(found, np.abs(hc - ref), ref), np.where(found, hc - ref, np.nan)


#: How a threshold is chosen on validation images: ``"abs"``, the lowest mean |HC difference| (a miss counted as its
#: reference HC); ``"signed"``, the smallest |mean signed difference| over the images where a head was found (a
#: threshold that finds none is never chosen): a rule that targets the model's own bias.
THRESHOLD_CRITERIA = ("abs", "signed")


def threshold_score(hc, ref, criterion: str = "abs") -> float:
    """What ``criterion`` (:data:`THRESHOLD_CRITERIA`) minimises over the thresholds, for the raw HCs ``hc`` (mm, NaN
    where no head was found) against ``ref`` (mm)."""
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(f"threshold criterion must be one of {', '.join(THRESHOLD_CRITERIA)}, got {criterion!r}")
    absolute, signed = threshold_errors(hc, ref)
    if criterion == "abs":
        return float(np.mean(absolute))
    found = np.isfinite(signed)
    return abs(float(np.mean(signed[found]))) if found.any() else math.inf


def threshold_range(step: float, low: float = 0.3, high: float = 0.8) -> tuple[float, ...]:
    """The thresholds ``low``, ``low + step``, ... ``high`` (rounded to 3 decimals)."""
    n = int(round((high - low) / step))
    return tuple(round(low + step * i, 3) for i in range(n + 1))


def choose_threshold(model, records: Sequence[HC18Record], grid: Sequence[float], probs: Sequence[np.ndarray] | None = None,
                     criterion: str = "abs"):
    """The threshold (from ``grid``) that ``criterion`` prefers on ``records`` (validation; :func:`threshold_score`):
    by default the lowest mean |HC difference|; the first of equals.

    The HC is that of the raw fit (before any size calibration, which is fitted afterwards at
    the chosen threshold). A record with no head found counts as an error of its reference HC
    (the worst case), so a threshold cannot win by failing on hard images.

    Returns:
        (best threshold, DataFrame of threshold, mean/median |HC diff| mm, mean signed diff mm, failures).
    """
    import pandas as pd

    ref = np.asarray([rec.hc_mm for rec in records], dtype=float)
    table, scores = [], []
    for t, hc in hc_at_thresholds(model, records, grid, probs).items():
        errors, signed = threshold_errors(hc, ref)
        scores.append(threshold_score(hc, ref, criterion))
        table.append({"threshold": t, "mean_abs_diff_mm": float(np.mean(errors)), "median_abs_diff_mm": float(np.median(errors)),
                      "mean_diff_mm": float(np.nanmean(signed)) if np.isfinite(signed).any() else math.nan,
                      "no_head_found": int(np.isnan(signed).sum())})
    df = pd.DataFrame(table)
    best = float(df["threshold"].iloc[int(np.argmin(scores))])
    return best, df


def final_threshold_rule(settings: dict) -> tuple[tuple[float, ...], str] | None:
    """The ``final_threshold_step`` / ``final_threshold_criterion`` knobs as (grid over 0.3-0.8, criterion), or None
    (step 0: the deployed model keeps the threshold it was chosen at from ``threshold_grid``)."""
    step = float(settings.get("final_threshold_step") or 0.0)
    if step <= 0:
        return None
    criterion = str(settings.get("final_threshold_criterion") or "abs")
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(f"final_threshold_criterion must be one of {', '.join(THRESHOLD_CRITERIA)}, got {criterion!r}")
    return threshold_range(step), criterion


def apply_final_threshold(model, records: Sequence[HC18Record], settings: dict, val_df=None,
                          probs: Sequence[np.ndarray] | None = None, first_fits: Sequence | None = None):
    """Set the deployed ``model``'s threshold on ``records`` (validation) by the final rule of ``settings``
    (:func:`final_threshold_rule`), after the first stage or the cascade was chosen at its ``threshold_grid`` threshold.
    ``probs``/``first_fits``: the model's maps of ``records`` (:func:`probabilities_and_first_fits`), if already made.

    Returns (the :func:`choose_threshold` table or None, :func:`evaluate` of ``records`` at the model's threshold):
    with the rule off, no table and ``val_df`` (the model's validation results) as they were."""
    rule = final_threshold_rule(settings)
    if rule is None:
        return None, val_df
    probs, firsts = (probs, first_fits) if probs is not None else probabilities_and_first_fits(model, records)
    model.threshold, table = choose_threshold(model, records, rule[0], probs, rule[1])
    return table, evaluate(model, records, probs, first_fits=firsts)


def signed_by_range(df) -> dict[str, Any]:
    """Per reference-HC range (a proxy for the trimester): image count, mean |HC diff| and mean
    signed HC diff (mm, predicted - reference), of the records where a head was found."""

    found = df[df["found"]]
    bins = hc_bin(found["hc_ref_mm"])
    out = {}
    for label in HC_BIN_LABELS:
        part = found[bins == label]
        out[label] = {
            "n": int(len(part)),
            "hc_abs_diff_mean_mm": float(part["hc_abs_diff_mm"].mean()) if len(part) else math.nan,
            "hc_diff_mean_mm": float(part["hc_diff_mm"].mean()) if len(part) else math.nan,
        }
    return {"by_hc_range": out}


def error_table(results: dict[str, Any], n_boot: int = 1000, seed: int = 0) -> "pd.DataFrame":
    """One row per split of :func:`evaluate` results: images, HC |diff| mean and median, signed
    mean (mm, predicted - reference) with its 95 % CI (resampling subjects where a ``subject_id`` column
    says which, else images), Dice, |diff| mean per reference-HC range, and where the results carry the
    plausibility checks (``flagged``) how many fits they flag and the |diff| mean of the flagged and of
    the other fits.

    Set beside each other, the training split's row (the model's own training images) and the
    held-out rows tell overfitting (training error well below held-out) from underfitting
    (about equal), whatever the absolute level.
    """
    import pandas as pd

    rows = []
    for split, df in results.items():
        found = df[df["found"]]
        row = {
            "split": split,
            "images": int(len(df)),
            "no head found": int((~df["found"]).sum()),
            "HC |diff| mean (mm)": float(found["hc_abs_diff_mm"].mean()) if len(found) else math.nan,
            "HC |diff| median (mm)": float(found["hc_abs_diff_mm"].median()) if len(found) else math.nan,
            "signed mean (mm)": float(found["hc_diff_mm"].mean()) if len(found) else math.nan,
            "signed 95% CI (mm)": _signed_ci(found, n_boot, seed),
            "Dice": float(df["dice"].mean()),
        }
        if "flagged" in df.columns:
            flagged = found["flagged"].astype(bool)
            row["flagged"] = int(df["flagged"].astype(bool).sum())
            row["|diff| mean, flagged (mm)"] = float(found.loc[flagged, "hc_abs_diff_mm"].mean()) if flagged.any() else math.nan
            row["|diff| mean, not flagged (mm)"] = float(found.loc[~flagged, "hc_abs_diff_mm"].mean()) if (~flagged).any() else math.nan
        by_range = signed_by_range(df)["by_hc_range"]
        for label, part in by_range.items():
            row[f"|diff| mean, {label.split(' (')[0]} (mm)"] = part["hc_abs_diff_mean_mm"]
        row["images per HC range"] = "/".join(str(part["n"]) for part in by_range.values())
        rows.append(row)
    return pd.DataFrame(rows)


def _signed_ci(found, n_boot: int, seed: int) -> str:
    """``"low to high"`` (mm): the 95 % bootstrap CI of the mean signed HC error; empty with fewer than 2 images."""
    from fetal_lib.metrics.uncertainty import bootstrap_ci

    diffs = found["hc_diff_mm"].to_numpy(float)
    if len(diffs) < 2:
        return ""
    groups = found["subject_id"].astype(str).to_numpy() if "subject_id" in found.columns else None
    ci = bootstrap_ci(lambda d: float(np.mean(d)), diffs, n_boot=n_boot, seed=seed, groups=groups)
    return f"{ci.low:+.2f} to {ci.high:+.2f}"


def fit_verdict(train_mean_mm: float, test_mean_mm: float) -> str:
    """Over- or underfitting, judged by the mean HC error (mm) on the training images against the test split.

    The validation split is not used: it chose the epoch and the threshold, so it is not held out
    from the model's selection. Below 0.8 x the test error the model overfits; above 1.25 x the
    test subjects are easier than the training ones; in between it fits its training images no
    more closely than unseen subjects.
    """
    if not (math.isfinite(train_mean_mm) and math.isfinite(test_mean_mm)) or test_mean_mm <= 0:
        return "not judged (an error is missing)"
    ratio = train_mean_mm / test_mean_mm
    if ratio < 0.8:
        return "well below the test error: the model overfits its training subjects"
    if ratio > 1.25:
        return "well above the test error: the test subjects happen to be easier than the training ones"
    return "about equal to the test error: the model does not overfit; it fits its training images no more closely than unseen subjects"


def summarize(df, groups: Sequence[str] | None = None, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Test-split summary: HC |diff| mean, SD, median, cluster-bootstrap 95 % CI of the mean;
    Dice, IoU, HD95 means; counts of failures and flagged fits."""

    found = df[df["found"]]
    abs_diff = found["hc_abs_diff_mm"].to_numpy(float)
    out: dict[str, Any] = {"n_images": int(len(df)), "n_no_head_found": int((~df["found"]).sum()), "n_flagged": int(df["flagged"].sum())}
    if abs_diff.size:
        g = np.asarray(found["subject_id"] if groups is None else groups)
        ci = bootstrap_ci(lambda v: float(np.mean(v)), abs_diff, n_boot=n_boot, seed=seed, groups=g if len(np.unique(g)) > 1 else None)
        out.update(
            hc_abs_diff_mean_mm=float(abs_diff.mean()),
            hc_abs_diff_sd_mm=float(abs_diff.std(ddof=1)) if abs_diff.size > 1 else 0.0,
            hc_abs_diff_median_mm=float(np.median(abs_diff)),
            hc_abs_diff_ci95_mm=[float(ci.low), float(ci.high)],
            hc_diff_mean_mm=float(found["hc_diff_mm"].mean()),
            hc_abs_diff_max_mm=float(abs_diff.max()),
        )
    hd = df["hd95_mm"].to_numpy(float)
    out.update(
        dice_mean=float(df["dice"].mean()),
        iou_mean=float(df["iou"].mean()),
        hd95_mean_mm=float(np.mean(hd[np.isfinite(hd)])) if np.isfinite(hd).any() else math.nan,
        hd95_median_mm=float(np.median(hd)),
    )
    return out


@dataclass
class TrainedHC:
    """A trained model with its settings, validation threshold table and training result."""

    model: Any  # fetal_lib.hc.measure.HCModel
    result: Any  # fetal_lib.hc.train.TrainResult
    config: Any  # fetal_lib.hc.train.TrainConfig
    threshold_table: Any  # DataFrame
    val_results: Any = None  # DataFrame: evaluate() on the validation split at the chosen threshold


def train_model(data: HCData, config, tta: str = "hflip", threshold_grid: Sequence[float] = (0.5,), cache: bool = True, progress: bool = False, verbose: int = 0, calibrate: bool = False) -> TrainedHC:
    """Train on the train part; on the validation part pick the threshold, then (``calibrate``)
    fit the size calibration of the ellipse (:mod:`fetal_lib.hc.calibration`) at that threshold.

    Returns a :class:`TrainedHC` whose model carries both; the test split is not used."""
    from fetal_lib.hc.calibration import fit_size_calibration  # deferred: imports scipy
    from fetal_lib.hc.measure import HCModel  # deferred: imports scipy
    from fetal_lib.hc.train import train  # looked up at call time: a test replaces it

    cache_dir = build_dir() / "cache" / "hc18" if cache else None
    train_recs, val_recs = data.part("train"), data.part("val")
    x_tr, y_tr = load_arrays(train_recs, config.input_shape, config.mask_mode, cache_dir, progress)
    x_va, y_va = load_arrays(val_recs, config.input_shape, "filled", cache_dir, progress)
    weights = None
    if config.loss_weight == "mm_per_pixel":

        weights = mm_per_input_pixel(train_recs, config.input_shape)
    elif config.loss_weight != "none":
        raise ValueError(f"loss_weight must be 'none' or 'mm_per_pixel', got {config.loss_weight!r}")
    result = train(config, x_tr, y_tr, x_va, y_va, verbose=verbose, progress=progress, sample_weights=weights)
    tta_list = [t for t in str(tta).split(",") if t.strip()] if tta else []
    model = HCModel(result.model, {"tta": [t.strip() for t in tta_list]})
    probs = probabilities(model, val_recs)
    best, table = choose_threshold(model, val_recs, threshold_grid, probs)
    model.threshold = best
    val_df = evaluate(model, val_recs, probs)
    if calibrate:
        model.calibration = fit_size_calibration(val_df["hc_raw_mm"], val_df["hc_ref_mm"])
        if model.calibration is not None:
            val_df = evaluate(model, val_recs, probs)
    return TrainedHC(model, result, config, table, val_df)


def decide_calibration(model, val_records: Sequence[HC18Record], val_df, mode: str, seed: int = 0):
    """The size calibration of the deployed ``model`` decided on its validation results ``val_df``
    (:func:`fetal_lib.hc.calibration.validation_decision`, ``mode`` auto | always | never); when deployed, the
    model carries it and the validation results are computed again with it.

    Returns (the :class:`~fetal_lib.hc.calibration.CalibrationChoice`, the validation results of the model as deployed,
    with the evidence's leave-one-subject-out HC as column ``hc_loso_mm``)."""
    from fetal_lib.hc.calibration import validation_decision  # deferred: imports scipy

    choice = validation_decision(val_df, mode, seed=seed)
    model.calibration = choice.fit if choice.deploy else None
    out = evaluate(model, val_records) if choice.deploy else val_df.copy()  # one row per record, in order, either way
    out["hc_loso_mm"] = choice.loso_mm.to_numpy(float) if choice.loso_mm is not None else np.nan
    return choice, out


def floor_scores(val_df) -> dict[str, float]:
    """The scores :data:`FLOORS` judge, from :func:`evaluate`'s validation table: mean Dice, and the mean
    |HC difference| (mm) of the images where a head was found."""
    found = val_df[val_df["found"]]
    return {"dice_mean": float(val_df["dice"].mean()),
            "hc_abs_diff_mean_mm": float(found["hc_abs_diff_mm"].mean()) if len(found) else math.nan}


def check_floor(trained: TrainedHC, is_phantom: bool) -> dict[str, float]:
    """Validation scores of ``trained``; raises ``BelowFloorError`` if they break :data:`FLOORS`.

    Call it before saving: a model below the floor is never deployed.
    """

    scores = floor_scores(trained.val_results)
    r = trained.result
    what = (f"The HC18 U-Net ({r.epochs_run} of {trained.config.epochs} epochs, {r.train_images_per_s:.1f} training images/s, "
            f"{trained.config.precision}{', cut short by the wall-time cap' if r.time_capped else ''})")
    check(scores, FLOORS["phantom" if is_phantom else "real"], what, FLOOR_ADVICE)
    return scores


def parse_grid(text: str | Sequence[float]) -> list[float]:
    """``"0.3,0.5"`` -> ``[0.3, 0.5]``."""
    if isinstance(text, str):
        return [float(v) for v in text.split(",") if v.strip()]
    return [float(v) for v in text]


def model_card(trained: TrainedHC, data: HCData, profile: str, settings: dict, test_summary: dict, seed: int,
               calibration=None) -> dict:
    """The model card dict (see :mod:`fetal_lib.model_card`); ``calibration``: the deployed model's
    :class:`~fetal_lib.hc.calibration.CalibrationChoice` (the calibration itself is in the deployed model's inference settings)."""

    src = data.source
    cfg = trained.config
    common = common_fields(
        "keras", "unet",
        {"input_shape": [*cfg.input_shape, 1], "filters": cfg.filters, "depth": cfg.depth, "block": cfg.block, "name": f"hc18_unet_{cfg.block}"},
        {"shape": [*cfg.input_shape, 1], "layout": "rows, cols, channels", "values": "grey image / 255, letterboxed (aspect kept, zero padding)"},
        profile,
    )
    return {
        **common,
        "name": "HC18 U-Net (fetal head segmentation -> ellipse -> head circumference)",
        "intended_use": "Research and teaching: head circumference (mm) on 2D fetal ultrasound standard planes like HC18's. Not a medical device.",
        "limitations": "Trained on HC18 (one centre, Voluson scanners); one head per image; the pixel size must be given. "
        "Fits flagged by the checks (ellipse disagreeing with the mask, implausible axis ratio, a head cut by the image border, "
        "a cascade's two stages disagreeing) deserve a look.",
        "data": {
            "dataset": "HC18 (van den Heuvel et al., PLOS ONE 2018; Zenodo 1327317), CC BY 4.0",
            "source": src.describe() if hasattr(src, "describe") else str(src),
            "is_phantom": bool(getattr(src, "is_phantom", False)),
            "n_images": len(data.records),
            "n_subjects": len({r.subject_id for r in data.records}),
        },
        "split": {
            "method": "grouped by subject (NNN_HC and NNN_kHC together), stratified by HC tercile, fractions 70/15/15",
            "seed": seed,
            **{f"n_{k}": int(len(v)) for k, v in data.parts.items()},
            "test_files": [data.records[i].filename for i in data.parts["test"]],
        },
        "training": {
            "profile": profile,
            **trained.config.to_dict(),
            "epochs_run": trained.result.epochs_run,
            "best_epoch": trained.result.best_epoch,
            "seconds": round(trained.result.seconds, 1),
            "train_images_per_s": round(trained.result.train_images_per_s, 2),
            "time_capped": trained.result.time_capped,
            "precision_reason": precision_choice(settings).reason,
        },
        "inference": trained.model.settings(),
        "threshold_choice": "lowest mean |HC difference| on the validation split over " + ",".join(f"{t:g}" for t in trained.threshold_table["threshold"])
                            + ("" if final_threshold_rule(settings) is None else
                               f"; then the deployed model's threshold set again there: {settings['final_threshold_criterion']} criterion "
                               f"over 0.3-0.8 in steps of {float(settings['final_threshold_step']):g}"),
        "calibration": {
            "deployed": bool(calibration.deploy) if calibration is not None else trained.model.calibration is not None,
            "what": "relative HC error as a Huber line in the predicted HC, fitted on the validation split at the chosen threshold "
                    "(fetal_lib.hc.calibration); the semi-axes are scaled by 1/(1+r); carried by the deployed model's inference settings",
            "decision": calibration.decision if calibration is not None else None,
        },
        "metrics": {"split": "test", **test_summary},
        "settings": settings,
    }
