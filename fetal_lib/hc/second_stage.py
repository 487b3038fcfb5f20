"""Chapter 1's second stage, trained and chosen: the cascade (:mod:`fetal_lib.hc.cascade`) or the first stage alone.

:func:`train_second_stage` trains the second U-Net on the training split's images (bands around
the first stage's own ellipses, jittered), then scores each way of using it on the validation
split, each at its own validation-chosen threshold: the refined map alone, or averaged with the
first stage's. The deployed model is whichever of these and the first stage alone has the lowest
validation mean HC error, provided it clears the sanity floor (:data:`fetal_lib.hc.pipeline.FLOORS`);
a second stage below the floor is never deployed. The test split takes no part.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any


from fetal_lib.hc.band import BandConfig
from fetal_lib.hc.cascade import COMBINES, CascadeHCModel, JitterConfig
from fetal_lib.hc.pipeline import train_config as first_config
from fetal_lib.model_card import card_path, save_keras
from fetal_lib.model_card import common_fields
from fetal_lib.training.floor import failures

FIRST_ONLY = "first stage alone"


def variant_name(combine: str) -> str:
    return f"cascade ({combine})"


def band_config(settings: dict[str, Any]) -> BandConfig:
    """The band the profile's ``second_band_*`` knobs describe."""
    return BandConfig(rows=int(settings["second_band_rows"]), cols=int(settings["second_band_cols"]),
                      pad=int(settings["second_band_pad"]), half_width=float(settings["second_band_half_width"]))


def combines(settings: dict[str, Any]) -> list[str]:
    """The ways of using the second stage that validation chooses among (``second_combine``: auto = all)."""
    value = str(settings["second_combine"])
    if value == "auto":
        return list(COMBINES)
    if value not in COMBINES:
        raise ValueError(f"second_combine must be auto or one of {', '.join(COMBINES)}, got {value!r}")
    return [value]


def train_config(settings: dict[str, Any], seed: int, band: BandConfig):
    """The second U-Net's :class:`~fetal_lib.hc.train.TrainConfig`: the main model's, at the band's size
    and the ``second_*`` width, epochs and learning rate (no flips: the band has no mirror symmetry)."""

    return first_config(settings, seed, input_shape=band.shape, filters=int(settings["second_filters"]),
                        epochs=int(settings["second_epochs"]), learning_rate=float(settings["second_learning_rate"]),
                        time_budget_s=None)


@dataclass
class SecondStage:
    """The trained second stage, the validation table that chose how to deploy it, and the choice."""

    result: Any  # fetal_lib.training.keras.FitResult of the second U-Net
    config: Any  # its fetal_lib.hc.train.TrainConfig
    band: BandConfig
    candidates: dict[str, CascadeHCModel]  # variant name -> cascade (threshold chosen on validation)
    val_results: dict[str, Any]  # variant name -> pipeline.evaluate() on validation (first stage included)
    choice_table: Any  # DataFrame: one row per variant
    chosen: str  # FIRST_ONLY or a variant name
    skipped: list[str] = field(default_factory=list)  # training images where the first stage found no head
    seconds: float = 0.0  # data, training and validation scoring

    @property
    def deployed(self) -> CascadeHCModel | None:
        """The cascade to deploy, or None when the first stage alone is."""
        return self.candidates.get(self.chosen)

    @property
    def explained(self) -> CascadeHCModel:
        """The cascade whose second stage the chapter explains: the refined map alone, else the first variant."""
        return self.candidates.get(variant_name("refined")) or next(iter(self.candidates.values()))


def train_second_stage(data, trained, settings: dict[str, Any], seed: int, is_phantom: bool, progress: bool = False,
                       val_first_probs=None) -> SecondStage:
    """Train the second stage on ``data``'s training split and choose its use on the validation split.

    Args:
        data: the chapter's :class:`~fetal_lib.hc.pipeline.HCData`.
        trained: the first stage (:class:`~fetal_lib.hc.pipeline.TrainedHC`, with its validation results).
        settings: the chapter's knobs (``second_*``, ``threshold_grid``).
        seed: the run's seed; is_phantom: which sanity floor applies.
        val_first_probs: the first stage's validation maps, if already computed.
    """
    import pandas as pd

    from fetal_lib.hc import cascade, pipeline  # deferred: imports scipy

    t0 = time.perf_counter()
    band = band_config(settings)
    first = trained.model
    val_records = data.part("val")
    if val_first_probs is None:
        val_first_probs = pipeline.probabilities(first, val_records, progress)
    refiner_data = cascade.refiner_data(first, data.part("train"), val_records, band, val_first_probs, progress)
    config = train_config(settings, seed, band)
    jitter = JitterConfig(centre_sd=float(settings["second_jitter"]), scale_sd=float(settings["second_jitter"]))
    result = cascade.train_refiner(config, refiner_data, band, jitter, progress=progress)
    scales = pipeline.parse_grid(str(settings["second_scales"]))
    grid = pipeline.parse_grid(settings["threshold_grid"])
    floors = pipeline.FLOORS["phantom" if is_phantom else "real"]
    candidates: dict[str, CascadeHCModel] = {}
    val_results = {FIRST_ONLY: trained.val_results}
    rows = [_row(FIRST_ONLY, first.threshold, trained.val_results, failures(pipeline.floor_scores(trained.val_results), floors))]
    for combine in combines(settings):
        name = variant_name(combine)
        model = CascadeHCModel(first, result.model, {"band": band.to_dict(), "scales": scales, "combine": combine})
        probs = cascade.probabilities(model, val_records, val_first_probs, progress)
        model.threshold, _ = pipeline.choose_threshold(model, val_records, grid, probs)
        val_results[name] = pipeline.evaluate(model, val_records, probs, first_fits=cascade.first_fits(model, val_first_probs))
        candidates[name] = model
        rows.append(_row(name, model.threshold, val_results[name], failures(pipeline.floor_scores(val_results[name]), floors)))
    table = pd.DataFrame(rows)
    eligible = table[table["clears floor"]]
    chosen = str(eligible.loc[eligible["HC |diff| mean (mm)"].idxmin(), "variant"]) if len(eligible) else FIRST_ONLY
    table["deployed"] = table["variant"] == chosen
    return SecondStage(result, config, band, candidates, val_results, table, chosen, refiner_data.skipped, time.perf_counter() - t0)


def _row(name: str, threshold: float, df, below: list) -> dict[str, Any]:
    found = df[df["found"]]
    return {
        "variant": name,
        "threshold": float(threshold),
        "HC |diff| mean (mm)": float(found["hc_abs_diff_mm"].mean()) if len(found) else math.nan,
        "HC |diff| median (mm)": float(found["hc_abs_diff_mm"].median()) if len(found) else math.nan,
        "Dice": float(df["dice"].mean()),
        "no head found": int((~df["found"]).sum()),
        "clears floor": not below,
    }


def card_section(stage: SecondStage, model_file: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The first stage's card section naming the deployed second stage, with how it was trained and chosen."""
    r = stage.result
    return {"model": model_file, "inference": stage.deployed.settings(), "training": {
        **stage.config.to_dict(), "epochs_run": r.epochs_run, "best_epoch": r.best_epoch, "seconds": round(r.seconds, 1),
        "train_images_per_s": round(r.train_images_per_s, 2), "jitter": float(settings["second_jitter"]),
        "trained_on": "bands around the first stage's ellipses on the training split, jittered afresh at every draw",
        "skipped_training_images": stage.skipped,
    }, "choice": {"on": "validation split", "table": stage.choice_table.to_dict("records")}}


def timing_line(stage: SecondStage, typical_a_px: float | None = None) -> str:
    """One line: the second stage's training, its band (and, given a typical major semi-axis in
    original pixels, how many original pixels one radial band sample spans), and what was deployed."""
    r = stage.result
    b = stage.band
    step = f", one radial sample = {2 * b.half_width * typical_a_px / b.rows:.2f} original pixels for a semi-axis of {typical_a_px:.0f}" \
        if typical_a_px else ""
    return (f"second stage: {r.epochs_run} epochs (best {r.best_epoch}), {r.seconds:.0f} s, {r.train_images_per_s:.1f} bands/s; "
            f"band {b.rows}x{b.cols + 2 * b.pad} (rho {1 - b.half_width:g}-{1 + b.half_width:g}{step}); deployed: {stage.chosen}")


REFINER_FILE = "hc18_refine.keras"  # the second stage, beside the first stage's file


def refiner_card(stage: SecondStage, profile: str, first_file: str) -> dict[str, Any]:
    """The second U-Net's own card (its architecture, so it rebuilds on any backend, and its input)."""

    cfg = stage.config
    common = common_fields(
        "keras", "unet",
        {"input_shape": [*cfg.input_shape, 1], "filters": cfg.filters, "depth": cfg.depth, "block": cfg.block, "name": f"hc18_unet_{cfg.block}"},
        {"shape": [*cfg.input_shape, 1], "layout": "band rows (radius), band columns (angle), channels",
         "values": "grey image / 255 resampled in the skull band around the first stage's ellipse (fetal_lib.hc.band)",
         "band": stage.band.to_dict()},
        profile,
    )
    return {**common, "name": "HC18 second stage (skull band around the first stage's ellipse -> head probability)",
            "part_of": first_file, "intended_use": f"Only as the second stage of {first_file}'s cascade (its card's 'cascade' section)."}


def save(first_model, card: dict[str, Any], model_path, stage: SecondStage | None, settings: dict[str, Any], profile: str):
    """Save the first stage with ``card`` at ``model_path`` and, when a cascade is deployed, the second
    stage beside it (:data:`REFINER_FILE`, with its own card) and the card's ``cascade`` section naming it.

    The second stage is written first, so a card never names a file that is not there; a second stage
    left from an earlier run is removed when this run deploys none. Returns the first stage's path.
    """
    from pathlib import Path

    from fetal_lib.hc.cascade import CASCADE_KEY  # deferred: imports scipy

    model_path = Path(model_path)
    refiner_path = model_path.with_name(REFINER_FILE)
    card = dict(card)
    if stage is not None and stage.deployed is not None:
        save_keras(stage.deployed.refiner, refiner_path, refiner_card(stage, profile, model_path.name))
        card[CASCADE_KEY] = card_section(stage, refiner_path.name, settings)
    saved = save_keras(first_model, model_path, card)
    if CASCADE_KEY not in card:
        for stale in (refiner_path, card_path(refiner_path), card_path(refiner_path).with_suffix(".md")):
            stale.unlink(missing_ok=True)
    return saved
