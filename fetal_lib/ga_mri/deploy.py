"""Chapter 4's deployed model: its sanity floor, its card, and its training outside the book.

The recipe, shared by the chapter's last section and ``fetal ga train``:

1. protocol 1 (:func:`fetal_lib.ga_mri.pipeline.by_volume`: folds by volume, stratified by GA) gives
   the network's MAE per volume (days) on volumes it did not see, and the training-mean baseline's
   under the same folds;
2. the floor (:func:`check_floor`): the network must beat predicting the training volumes' mean
   age (:func:`fetal_lib.ga_mri.pipeline.floor_ok`); below it nothing is written;
3. the network trained on every volume with the same knobs (the profile's epochs, the last epoch
   kept) is saved with its card (:func:`card`), protocol 1's MAE recorded as its expected error.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from fetal_lib.ga_mri import pipeline
from fetal_lib.training.floor import BelowFloorError, Floor
from fetal_lib.ga_mri.predictor import GaPredictor
from fetal_lib.ga_mri.predictor import GaPredictor, default_model_path
from fetal_lib.paths import shown

if TYPE_CHECKING:
    from fetal_lib.ga_mri.chapter import ChapterStart

FLOOR_METRIC = "protocol-1 network MAE per volume"
FLOOR_ADVICE = ("The floor is the MAE of predicting the training volumes' mean age, under the same folds. Train longer "
                "(--set epochs=N), check the data (`fetal data verify`), or read chapter 4's results "
                "(`fetal book --only fetal_mri_ga`): on few volumes the network may not learn age.")
NAME = "Gestational age from fetal brain MRI (multi-planar VGG16 with attention, chapter 4)"


def floor(p1: pipeline.ByVolume) -> Floor:
    """The bound protocol 1's network must beat: the training-mean baseline's MAE per volume (days)."""
    return Floor(FLOOR_METRIC, round(p1.baseline_mae_days("training_mean"), 4), "max", "days")


def passes_floor(p1: pipeline.ByVolume) -> bool:
    """True if protocol 1's network beats the training mean (strictly)."""
    return pipeline.floor_ok(float(p1.network["mae_days"]), p1.baseline_mae_days("training_mean"))


def check_floor(p1: pipeline.ByVolume, what: str) -> None:
    """Raise :class:`~fetal_lib.training.floor.BelowFloorError` (``what``: the network, for the message)
    unless :func:`passes_floor`."""
    if not passes_floor(p1):
        raise BelowFloorError(what, [(floor(p1), p1.network["mae_days"])], FLOOR_ADVICE)


def _limitations(source, n_volumes: int) -> str:
    if source.is_phantom:
        return ("Trained on a PHANTOM (synthetic volumes): for testing the software only; its predictions say nothing about "
                "fetal brains.")
    if source.name == "fetal_brain_atlases":
        return ("Trained on spatio-temporal atlas templates (population averages), not individual scans; GA labels in whole "
                f"weeks; {n_volumes} volumes.")
    return f"Trained on {n_volumes} individual scans ({source.name}); GA labels as its participants table gives them."


def card(predictor, profile: str, settings: dict[str, Any], seed: int, source, volumes: Sequence[pipeline.Volume], fit,
         p1: pipeline.ByVolume, trained_by: str) -> dict[str, Any]:
    """The deployed model's card (see :mod:`fetal_lib.model_card`): the preprocessing, the data, the
    recipe, protocol 1's MAE (days) and R2 as the expected error, and the floor it passed."""
    config = pipeline.train_config(settings, seed)
    net = p1.network
    return {
        **predictor.card_fields(profile, config.network_options()),
        "name": NAME,
        "intended_use": "Research and teaching. Not a medical device.",
        "limitations": _limitations(source, len(volumes)),
        "data": {"source": source.describe(), "volumes": [v.id for v in volumes]},
        "split": {"method": "deployed: every volume; expected error from protocol 1 (folds by volume, stratified by GA)",
                  "folds": len(p1.folds), "seed": seed},
        "training": {**config.to_dict(), "seconds": fit.seconds, "epochs_run": fit.epochs_run, "trained_by": trained_by},
        "metrics": {"protocol1_mae_days": float(net["mae_days"]), "protocol1_mae_ci": f"{net['mae_ci'][0]:.2f}-{net['mae_ci'][1]:.2f}",
                    "protocol1_r2": float(net["r2"]), "training_mean_mae_days": p1.baseline_mae_days("training_mean"),
                    "floor": floor(p1).describe().replace("<=", "<")},
        "settings": dict(settings),
    }


def train_deployable(settings: dict[str, Any], profile: str, data_dir: str | None, data_source: str, seed: int,
                     model_path: str | Path, log: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """What ``fetal ga train`` does (module docstring): load and slice the volumes of the ``dataset``
    knob, run protocol 1, check the floor (``BelowFloorError``: nothing is written), train on every
    volume and save the predictor and its card atomically at ``model_path``.

    Returns:
        A summary: the model path, the data, the counts, protocol 1's and the training mean's MAE
        (days), the training's epochs and seconds.

    Raises:
        BelowFloorError: below the floor. FetalInputError: missing data or a bad file (named).
        ValueError: a knob the recipe cannot use.
    """
    from fetal_lib.training.keras import configure  # looked up at call time: a test replaces it

    t0 = time.perf_counter()
    configure(threads=2, seed=seed)
    prep = pipeline.preprocess_config(settings)
    source, volumes, notes = pipeline.load_volumes(str(settings["dataset"]), data_dir or "", data_source, prep, progress=progress)
    log(source.describe())
    for note in notes:
        log(f"note: {note}")
    samples = pipeline.build_samples(volumes, int(settings["samples_per_volume"]), seed)
    config = pipeline.train_config(settings, seed)
    log(f"{len(volumes)} volumes, {len(samples)} samples of {prep.size}x{prep.size} pixels per plane; protocol 1: "
        f"{int(settings['folds'])} folds by volume, then the deployed network: {config.epochs} epochs each, {config.precision}")
    p1 = pipeline.by_volume(samples, volumes, settings, seed)
    mean_mae = p1.baseline_mae_days("training_mean")
    log(f"protocol 1: network MAE {p1.network['mae_days']:.2f} days per volume (95% CI {p1.network['mae_ci'][0]:.2f}-"
        f"{p1.network['mae_ci'][1]:.2f}), training mean {mean_mae:.2f} days")
    check_floor(p1, f"The GA network ({config.epochs} epochs, {config.precision}) in protocol 1's {len(p1.folds)} folds by volume")
    fit = pipeline.train_deployed(samples, settings, seed)
    predictor = GaPredictor(fit.model, prep)
    path = predictor.save(model_path, card(predictor, profile, settings, seed, source, volumes, fit, p1, "fetal ga train"))
    if source.is_phantom:
        log(f"fetal: warning: {path} was trained on a PHANTOM: for testing the software only")
    return {"model": str(path), "data": source.describe(), "phantom": bool(source.is_phantom), "profile": profile,
            "n_volumes": len(volumes), "n_samples": len(samples), "folds": len(p1.folds),
            "protocol1_mae_days": float(p1.network["mae_days"]), "protocol1_mae_ci": [float(c) for c in p1.network["mae_ci"]],
            "protocol1_r2": float(p1.network["r2"]), "training_mean_mae_days": mean_mae,
            "training": {"epochs": config.epochs, "epochs_run": fit.epochs_run, "precision": config.precision,
                         "deployed_seconds": round(fit.seconds, 1), "protocol1_seconds": round(p1.run.seconds, 1)},
            "seconds": round(time.perf_counter() - t0, 1)}


def from_book(ch: "ChapterStart", samples, p1: pipeline.ByVolume, results) -> tuple[Path | None, Any]:
    """The chapter's last step: below the floor, a warning in the run and nothing deployed; else, with
    the knob ``save_model`` and real data, the network trained on every volume saved with its card at
    :func:`fetal_lib.ga_mri.predictor.default_model_path` (``results``: the chapter's results table, for the
    warning). Returns (the saved path or None, the deployed fit or None)."""
    from fetal_lib.ga_mri.report import results_row  # deferred: imports pandas

    if not passes_floor(p1):
        net, mean = results_row(results, "by volume", "network", "volume"), results_row(results, "by volume", "training_mean")
        ch.run.warn(f"Protocol 1's network ({net['MAE (days)']} days) does not beat the training mean ({mean['MAE (days)']} days): "
                    "no model deployed.")
        return None, None
    if not (ch.settings["save_model"] and not ch.source.is_phantom):
        print("model not saved (phantom data or save_model=False)")
        return None, None
    fit = pipeline.train_deployed(samples, ch.settings, ch.seed)
    predictor = GaPredictor(fit.model, ch.prep)
    saved = predictor.save(default_model_path(), card(predictor, ch.profile, ch.settings, ch.seed, ch.source, ch.volumes, fit, p1,
                                                      "fetal book"))
    print(f"saved {shown(saved)}")
    return saved, fit
