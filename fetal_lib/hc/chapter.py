"""Chapter 1 (``notebooks/01_hc18_unet.py``) as one call per step: the set-up, the main model, the
second stage, the test split, the recipe's cross-validation, the size calibration, the saved model and
the metrics of ``metrics.json``.

Each step prints or shows what the chapter reads under its cell and returns what later cells use; the
notebook records the tables and figures (``run.table`` / ``run.figure``). The steps run in the chapter's
order and draw no random number of their own: training and the bootstrap intervals draw from the seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from IPython.display import Markdown, display

from fetal_lib import anchors
from fetal_lib.hc import cascade, pipeline, report
from fetal_lib.hc import second_stage as second
from fetal_lib.hc.calibration import SizeCalibration, fit_size_calibration, leave_one_group_out
from fetal_lib.hc.measure import default_model_path
from fetal_lib.hc.spec import SPEC
from fetal_lib.paths import shown
from fetal_lib.results import ChapterRun, data_status
from fetal_lib.training import chapter_backend, keras_backend
from fetal_lib.training.keras import configure as configure_keras  # imports no Keras: apply_choice() runs first

HEADLINE = ("hc_abs_diff_mean_mm", "hc_abs_diff_sd_mm", "hc_abs_diff_median_mm", "dice", "iou", "hd95_mm")


@dataclass
class ChapterStart:
    """What the chapter's cells use after the set-up."""

    run: ChapterRun
    settings: dict[str, Any]  # every knob, resolved from the profile (and any override)
    data: pipeline.HCData  # HC18's training records and their subject-level split
    profile: str
    seed: int
    results_dir: Path
    precision: Any  # fetal_lib.training.precision.PrecisionChoice of the main model
    keras_choice: tuple[str, str]  # (backend, why)
    t_start: float  # time.perf_counter() at the start (for chapter_seconds)

    @property
    def is_phantom(self) -> bool:
        return bool(self.data.source.is_phantom)


def start(params: Mapping[str, Any]) -> ChapterStart:
    """The set-up: resolve the knobs (``params``: the parameters cell's names, e.g. ``globals()``; a knob left
    None takes the profile's value), choose the Keras backend before Keras is imported
    (:func:`fetal_lib.training.chapter_backend.apply_for_chapter`: TensorFlow on the CPU, where it measured
    faster), configure Keras (threads, seed), resolve the training precision, load HC18 and split it by subject, start the
    :class:`~fetal_lib.results.ChapterRun` and show its banner, the backend and the data."""
    profile, data_dir, seed = params["profile"], params["data_dir"], params["seed"]
    t_start = time.perf_counter()
    settings = pipeline.profile_settings(profile, {name: params.get(name) for name in SPEC.knob_names()})
    keras_choice = chapter_backend.apply_for_chapter(settings)  # the user's KERAS_BACKEND, a GPU's rule, else by the precision
    configure_keras(threads=2, seed=seed)
    precision = pipeline.precision_choice(settings)
    data = pipeline.load_data(data_dir, params["data_source"], seed, int(settings["max_images"]))
    run = ChapterRun(SPEC, profile, data_dir, params["results_dir"], seed, data_status([data.source]), parameters=settings,
                     compute={"precision": precision.to_dict(), "keras": {**keras_backend.describe(), "choice": keras_choice[1]}})
    run.banner()
    display(Markdown(f"Keras runs on **{keras_backend.name()}** ({keras_backend.device()}): {keras_choice[1]}."))
    display(Markdown(f"Data: {data.source.describe(relative=True)}"))
    return ChapterStart(run, settings, data, profile, seed, Path(params["results_dir"]), precision, keras_choice, t_start)


def train_main(ch: ChapterStart) -> tuple[pipeline.TrainedHC, dict[str, float]]:
    """Train the main model, choose its threshold on validation, print its training line; warn (in the
    banner too) when a wall-time cap cut it short; check the sanity floor on validation (raises below it).

    Returns the trained model and its validation scores against the floor."""
    s = ch.settings
    config = pipeline.train_config(s, ch.seed)
    trained = pipeline.train_model(ch.data, config, s["tta"], pipeline.parse_grid(s["threshold_grid"]))  # calibration: deployed()
    r = trained.result
    print(f"epochs run {r.epochs_run} of {config.epochs} (best {r.best_epoch}), {r.seconds:.0f} s, "
          f"{r.train_images_per_s:.1f} training images/s ({config.precision}); threshold {trained.model.threshold:g}")
    if r.time_capped:
        ch.run.warn(f"The wall-time cap `time_budget_s = {s['time_budget_s']:g}` ended the main model's training after "
                    f"{r.epochs_run} of {config.epochs} epochs: this model is not the one the profile specifies, "
                    "and another machine would train a different one. Set `time_budget_s = 0` to train every epoch.")
    floor_scores = pipeline.check_floor(trained, ch.is_phantom)
    print(f"sanity floor on validation ({report.floor_sentence(ch.is_phantom)}) passed: "
          + ", ".join(f"{k} {v:.3f}" for k, v in floor_scores.items()))
    return trained, floor_scores


def train_second(ch: ChapterStart, trained: pipeline.TrainedHC) -> second.SecondStage | None:
    """Train the second stage and choose its use on validation (None when ``second_stage`` is off);
    prints its training line and the training images it left out."""
    if not ch.settings["second_stage"]:
        return None
    stage = second.train_second_stage(ch.data, trained, ch.settings, ch.seed, ch.is_phantom)
    found_val = trained.val_results[trained.val_results["found"]]
    median_a = float(np.median(found_val["a"])) if len(found_val) and "a" in found_val else None  # validation heads' major semi-axis (px)
    print(second.timing_line(stage, median_a))
    if stage.skipped:
        print(f"{len(stage.skipped)} training images left out (the first stage found no head): {', '.join(stage.skipped[:10])}")
    return stage


@dataclass
class Deployed:
    """The model the chapter deploys (the first stage or a cascade), chosen on validation, with its size calibration."""

    model: Any  # fetal_lib.hc.measure.HCModel or CascadeHCModel
    val_results: Any  # DataFrame: pipeline.evaluate() on validation (after the calibration, when deployed)
    name: str  # second_stage.FIRST_ONLY or the cascade's variant name
    calibration: Any = None  # fetal_lib.hc.calibration.CalibrationChoice
    threshold_table: Any = None  # the final threshold rule's validation table (pipeline.choose_threshold), None when it is off


def deployed(ch: ChapterStart, trained: pipeline.TrainedHC, stage: second.SecondStage | None) -> Deployed:
    """The deployed model: the cascade validation chose, else the first stage alone; its threshold set on validation by
    the final rule where the profile turns it on (:func:`pipeline.apply_final_threshold`); then the size calibration
    decided for that model on validation (:func:`pipeline.decide_calibration`), each printed in one line."""
    if stage is None:
        out = Deployed(trained.model, trained.val_results, second.FIRST_ONLY)
    else:
        out = Deployed(stage.deployed if stage.deployed is not None else trained.model, stage.val_results[stage.chosen], stage.chosen)
    if pipeline.final_threshold_rule(ch.settings) is not None:
        chosen_at = out.model.threshold
        out.threshold_table, out.val_results = pipeline.apply_final_threshold(out.model, ch.data.part("val"), ch.settings, out.val_results)
        print(report.final_threshold_line(out.threshold_table, chosen_at, out.model.threshold, ch.settings))
    out.calibration, out.val_results = pipeline.decide_calibration(out.model, ch.data.part("val"), out.val_results,
                                                                   ch.settings["calibrate"], ch.seed)
    print(report.calibration_choice_line(out.calibration))
    return out


@dataclass
class TestScores:
    """The deployed model on the test split: per image, the summary, and the evaluation's wall time."""

    records: list
    per_image: Any  # DataFrame from pipeline.evaluate()
    summary: dict[str, Any]  # pipeline.summarize()
    seconds: float

    @property
    def ms_per_image(self) -> float:
        return 1000 * self.seconds / max(1, len(self.records))


def score_test(ch: ChapterStart, model) -> TestScores:
    """Evaluate ``model`` on the test split (timed) and summarise it (subject-bootstrap CI with the run's seed)."""
    records = ch.data.part("test")
    t0 = time.perf_counter()
    df = pipeline.evaluate(model, records)
    seconds = time.perf_counter() - t0
    return TestScores(records, df, pipeline.summarize(df, seed=ch.seed), seconds)


def stages_on_test(ch: ChapterStart, trained: pipeline.TrainedHC, stage: second.SecondStage | None, test: TestScores):
    """The first stage alone and each way of using the second stage on the test split
    (:func:`fetal_lib.hc.report.stage_table`, with a ``deployed`` column); None without a second stage."""
    if stage is None:
        return None
    first_probs = pipeline.probabilities(trained.model, test.records)
    results = {second.FIRST_ONLY: pipeline.evaluate(trained.model, test.records, first_probs)}
    for name, candidate in stage.candidates.items():
        results[name] = (test.per_image if name == stage.chosen else
                         pipeline.evaluate(candidate, test.records, cascade.probabilities(candidate, test.records, first_probs),
                                           first_fits=cascade.first_fits(candidate, first_probs)))
    table = report.stage_table(results, second.FIRST_ONLY, ch.seed)
    table["deployed"] = table["model"] == stage.chosen
    return table


@dataclass
class RecipeCV:
    """A ``fetal hc cv`` run of the recipe (its ``metrics.json``) and where its recipe differs from this chapter's."""

    doc: dict[str, Any]
    differences: list[str]

    @property
    def decision(self) -> dict[str, Any] | None:
        """Its decision on the size calibration, if it took one."""
        return self.doc["metrics"].get("calibration_decision")


def recipe_cv(ch: ChapterStart) -> RecipeCV | None:
    """The recipe's cross-validation beside this chapter's results (``build/results/hc18_cv/``), or None."""
    doc = report.read_cv(ch.results_dir.parent)
    return None if doc is None else RecipeCV(doc, report.cv_recipe_differences(doc, ch.settings, ch.profile))


def error_by_split(ch: ChapterStart, model: Deployed, test: TestScores):
    """:func:`fetal_lib.hc.pipeline.error_table` of the deployed model on its own training images (those of a seeded
    ``error_train_fraction`` of the training part's subjects, the run's seed), on validation and on test."""
    fraction = float(ch.settings.get("error_train_fraction", 1.0))
    seen = ch.data.with_training_subjects(fraction, ch.seed).part("train")
    label = "train (seen in training)"
    if fraction < 1.0:
        n_all = len({r.subject_id for r in ch.data.part("train")})
        label += f", {len({r.subject_id for r in seen})} of {n_all} subjects"
    train_df = pipeline.evaluate(model.model, seen)
    return pipeline.error_table({label: train_df, "validation": model.val_results, "test": test.per_image})


@dataclass
class SizeCalibrationCheck:
    """The size calibration on validation (the deployed model's, else fitted here to show it) and what it does."""

    fit: SizeCalibration | None  # None: too few validation images with a head
    deployed: bool
    val_found: Any  # DataFrames: the images with a head found
    test_found: Any
    table: Any = None  # report.calibration_table(), None without a fit
    splits: dict[str, Any] = field(default_factory=dict)  # {"validation": val_found, "test": test_found} for the figure


def size_calibration(model: Deployed, test: TestScores) -> SizeCalibrationCheck:
    """The calibration fitted on the deployed model's validation results (deployed or not), with its table on
    validation (in-sample and leave-one-subject-out: the build's decision already computed it) and test."""
    val_found = model.val_results[model.val_results["found"]]
    cal = model.model.calibration or (model.calibration.fit if model.calibration is not None else
                                      fit_size_calibration(val_found["hc_raw_mm"], val_found["hc_ref_mm"]))
    check = SizeCalibrationCheck(cal, model.model.calibration is not None, val_found, None)
    if cal is None:
        return check
    check.test_found = test.per_image[test.per_image["found"]]
    loso = val_found["hc_loso_mm"].to_numpy(float) if "hc_loso_mm" in val_found else np.full(len(val_found), np.nan)
    val_loso = loso if np.isfinite(loso).all() else leave_one_group_out(val_found["hc_raw_mm"], val_found["hc_ref_mm"], val_found["subject_id"])
    check.table = report.calibration_table(val_found, check.test_found, cal, val_loso)
    check.splits = {"validation": val_found, "test": check.test_found}
    return check


def save_model(ch: ChapterStart, trained: pipeline.TrainedHC, stage: second.SecondStage | None, test: TestScores,
               calibration=None) -> Path | None:
    """Save the first stage with its card (and a deployed second stage beside it) when ``save_model`` is
    on and the data are real; prints what was saved. Returns the first stage's path, or None."""
    card = pipeline.model_card(trained, ch.data, ch.profile, ch.settings, test.summary, ch.seed, calibration)
    if not (ch.settings["save_model"] and not ch.is_phantom):
        print("model not saved (phantom data or save_model=False)")
        return None
    path = second.save(trained.model.model, card, default_model_path(), stage, ch.settings, ch.profile)
    print(f"saved {shown(path)}" + (f" and its second stage {second.REFINER_FILE}" if stage is not None and stage.deployed is not None else ""))
    return path


def metrics(ch: ChapterStart, trained: pipeline.TrainedHC, floor_scores: Mapping[str, float], stage: second.SecondStage | None,
            model: Deployed, test: TestScores, stages_test, cv: RecipeCV | None, calibration: SizeCalibrationCheck,
            split_errors, audit_table, pixel_accuracy, model_path: Path | None) -> dict[str, Any]:
    """The chapter's ``metrics.json`` metrics (the :data:`HEADLINE` keys first), from the steps' results."""
    s = test.summary
    r = trained.result
    headline = {
        "hc_abs_diff_mean_mm": s.get("hc_abs_diff_mean_mm", np.nan),
        "hc_abs_diff_sd_mm": s.get("hc_abs_diff_sd_mm", np.nan),
        "hc_abs_diff_median_mm": s.get("hc_abs_diff_median_mm", np.nan),
        "dice": s["dice_mean"],
        "iou": s["iou_mean"],
        "hd95_mm": s["hd95_mean_mm"],
    }
    cal = calibration.fit
    return {
        **headline,
        "test": s,
        "validation_threshold": model.model.threshold,
        "deployed": model.name,
        "second_stage": ({"validation": stage.choice_table.to_dict("records"), "test": stages_test.to_dict("records"),
                          "training": {"epochs_run": stage.result.epochs_run, "best_epoch": stage.result.best_epoch,
                                       "seconds": stage.result.seconds, "train_images_per_s": stage.result.train_images_per_s,
                                       **stage.config.to_dict()},
                          "band": stage.band.to_dict(), "skipped_training_images": stage.skipped, "seconds": stage.seconds}
                         if stage is not None else None),
        "size_calibration": {"deployed": bool(model.model.calibration is not None), "fit": cal.to_dict() if cal else None,
                             "table": calibration.table.to_dict("records") if calibration.table is not None else None,
                             "decision": model.calibration.decision if model.calibration is not None else None,
                             "cv_decision": cv.decision if cv is not None else None},
        "recipe_cv": ({"started_utc": cv.doc["provenance"]["started_utc"], "same_recipe": not cv.differences,
                       "hc_abs_diff_mean_mm": cv.doc["metrics"]["pooled"].get("hc_abs_diff_mean_mm")} if cv is not None else None),
        "training": {"epochs_run": r.epochs_run, "best_epoch": r.best_epoch, "seconds": r.seconds,
                     "train_images_per_s": r.train_images_per_s, "time_capped": r.time_capped,
                     "precision_choice": ch.precision.to_dict(), "validation_floor_scores": dict(floor_scores),
                     **trained.config.to_dict()},
        "training_seconds": r.seconds + (stage.result.seconds if stage is not None else 0.0) + float(audit_table["train s"].sum()),
        "error_by_split": split_errors.to_dict("records"),
        "inference_ms_per_image_eval": test.ms_per_image,
        "audit": audit_table.to_dict("records"),
        "pixel_accuracy_all_background": pixel_accuracy.set_index("target").iloc[:, 0].to_dict(),
        "anchors": {a.key: a.to_dict() for a in anchors.for_chapter("hc18")},
        "model_path": str(model_path) if model_path else None,
        "chapter_seconds": time.perf_counter() - ch.t_start,
    }
