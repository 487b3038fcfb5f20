"""``fetal hc``: measure head circumference on your own images, write an HC18 submission, train.

    fetal hc measure IMAGE... (--pixel-size MM | --pixel-sizes CSV) [--model PATH] [--first-stage] [--overlay DIR] [--format csv|json] [-o FILE]
    fetal hc submission TEST_DIR --pixel-sizes CSV -o CSV [--model PATH] [--first-stage] [--allow-missing]

A model whose card names a second stage (chapter 1's cascade, ``fetal_lib.hc.cascade``) measures
with both stages; ``--first-stage`` measures with the first alone.
    fetal hc train [--profile cpu] [--data-dir DIR] [--model PATH] [--epochs N] [--time-budget S (optional cap; off)]
                   [--set KEY=VALUE ...] [--validation-only]
    fetal hc cv [--profile cpu] [--folds N] [--data-dir DIR] [--set KEY=VALUE ...] [--format json|csv] [-o CSV]

Bad input (missing or non-image file, missing or non-positive pixel size, no head found) is
reported as one line per file on stderr (``fetal: error: <file>: <problem>``); the other
images are still measured and reported, and the exit status is 2 if any image failed.
TensorFlow is imported only when a sub-command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fetal_lib.commands.output import check_writable, emit, report_error, table_text
from fetal_lib.config.options import (
    add_actions, add_chapter_profile, add_data_dir, add_data_source, add_device, add_format, add_seed, add_settings,
    checked_device,
)
from fetal_lib.errors import FetalInputError

CHAPTER = "hc18"


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = add_actions(subparsers, "hc", dest="hc_command",
                      help="fetal head circumference (HC18 U-Net): measure, submission, train, cv",
                      description="Fetal head circumference (HC18 U-Net): measure it on your own images, "
                      "write an HC18 submission, train the model, or cross-validate its recipe.")

    m = sub.add_parser("measure", help="measure HC (mm) on images; prints HC18 columns + hc_mm",
                       description="Fit the head ellipse on each image and print the HC18 submission columns "
                       "(filename,center_x_mm,center_y_mm,semi_axes_a_mm,semi_axes_b_mm,angle_rad) plus hc_mm.")
    m.add_argument("images", nargs="+", metavar="IMAGE", help="ultrasound image files (PNG, JPEG ...)")
    px = m.add_mutually_exclusive_group()
    px.add_argument("--pixel-size", type=str, metavar="MM", help="pixel size in mm, for every image")
    px.add_argument("--pixel-sizes", type=Path, metavar="CSV",
                    help="CSV in HC18's format (filename,pixel size(mm); extra columns ignored), matched by file name")
    m.add_argument("--model", type=Path, default=None, metavar="PATH", help="trained model (default: build/models/hc18_unet.keras)")
    m.add_argument("--overlay", type=Path, metavar="DIR",
                   help="write <name>_hc.png with the fitted ellipse drawn (a two-stage model: the first stage's in orange too)")
    m.add_argument("--first-stage", action="store_true",
                   help="measure with the first stage alone where the model's card names a second stage (chapter 1's cascade)")
    add_device(m, "auto; used by a chapter-2 .pt model (a Keras model runs where Keras puts it)")
    add_format(m, ("csv", "json"), "csv", "csv (default) or json (adds warnings, ellipse_mask_iou, hc_uncalibrated_mm and, "
               "for a two-stage model, hc_first_stage_mm)")
    m.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the table to this file (atomically) instead of stdout")
    m.set_defaults(func=handle_measure)

    s = sub.add_parser("submission", help="write the HC18 submission CSV for a test set",
                       description="Measure every image listed in the pixel-size CSV and write the HC18 submission CSV.")
    s.add_argument("test_dir", type=Path, nargs="?", metavar="TEST_DIR", help="folder of the test images (required)")
    s.add_argument("--test-dir", type=Path, dest="test_dir_option", help=argparse.SUPPRESS)  # old spelling of TEST_DIR
    s.add_argument("--pixel-sizes", type=Path, required=True, metavar="CSV", help="test_set_pixel_size.csv")
    s.add_argument("-o", "--output", type=Path, required=True, metavar="CSV", help="submission CSV to write")
    s.add_argument("--model", type=Path, default=None, metavar="PATH", help="trained model (default: build/models/hc18_unet.keras)")
    s.add_argument("--allow-missing", action="store_true", help="write the file even if some images failed (rows left out)")
    s.add_argument("--first-stage", action="store_true", help="the first stage alone where the model's card names a second stage")
    s.set_defaults(func=handle_submission)

    t = sub.add_parser("train", help="train the HC18 U-Net outside the book (same model as the chapter)",
                       description="Train on the HC18 training images (subject-level split), choose the threshold on the "
                       "validation split, report the test split, save the model and its card.")
    add_chapter_profile(t, CHAPTER)
    add_data_dir(t)
    add_data_source(t, "HC18")
    t.add_argument("--model", type=Path, default=None, metavar="PATH", help="where to save (default: build/models/hc18_unet.keras)")
    t.add_argument("--epochs", type=int, default=None, metavar="N", help="override the profile's epochs")
    t.add_argument("--time-budget", type=float, default=None, metavar="S",
                   help="optional wall-time cap (s) on top of the epochs (default: the profile's, off); a cap that cuts training short is reported")
    add_seed(t, "seed of the split and the training (default 0, as the chapter)")
    add_settings(t, "override any hc18 knob of the profile, e.g. --set augment_vflip=false (repeatable)")
    t.add_argument("--validation-only", action="store_true",
                   help="report the validation split only (the test split is not touched) and save nothing: for comparing settings")
    t.set_defaults(func=handle_train)

    c = sub.add_parser("cv", help="subject-level K-fold cross-validation of the training recipe (measures it; saves no model)",
                       description="Train and score the profile's recipe in K subject-level folds, so every annotated image is "
                       "scored once by a model that never saw its subject. Prints a JSON summary (pooled HC error, the fold "
                       "means, the chapter's test images against the others, the size-calibration decision taken on the "
                       "images outside the chapter's test split), or with --format csv the per-fold table, and writes the "
                       "summary with its provenance to "
                       "build/results/hc18_cv/, where chapter 1 reads it; no model is saved. "
                       "Each fold takes as long as one `fetal hc train` (`fetal doctor` predicts that for this machine).")
    add_chapter_profile(c, CHAPTER)
    c.add_argument("--folds", type=int, default=5, metavar="N", help="number of subject-level folds (default 5)")
    add_data_dir(c)
    add_data_source(c, "HC18")
    add_seed(c, "seed of the folds and the training (default 0; the chapter's split uses the same seed)")
    add_settings(c, "override any hc18 knob of the profile (repeatable)")
    add_format(c, ("json", "csv"), "json", "json (default: the summary, the settings and the folds) or csv (the per-fold table)")
    c.add_argument("-o", "--output", type=Path, default=None, metavar="CSV",
                   help="also write the per-image results of every fold (written atomically)")
    c.add_argument("--results-dir", type=Path, default=None, metavar="DIR",
                   help="where the summary, tables and provenance go (default: build/results/hc18_cv, read by chapter 1)")
    c.set_defaults(func=handle_cv)


# ----------------------------------------------------------------------------- helpers


def _resolve_pixel_sizes(images: list[Path], pixel_size: str | None, pixel_sizes: Path | None) -> dict[Path, object]:
    """Per image: its pixel size (raw, checked when measured) or None if none was given."""
    if pixel_size is not None:
        return {p: pixel_size for p in images}
    if pixel_sizes is not None:
        from fetal_lib.hc.measure import read_pixel_sizes  # deferred: imports scipy

        table = read_pixel_sizes(pixel_sizes)  # FetalInputError naming the CSV if unusable
        return {p: table.get(p.name) for p in images}
    return {p: None for p in images}


def _measure_many(model_path: Path | None, items: list[tuple[Path, object]], overlay: Path | None = None, progress: bool = False,
                  device: str = "auto", first_stage_only: bool = False):
    """Measure each (image, pixel size); returns (measurements, number of failed images)."""
    from fetal_lib.data.imaging import read_image_gray  # deferred: loaded when the command runs
    from fetal_lib.hc.measure import HCModel, check_pixel_size  # deferred: imports scipy

    # cheap checks first, so bad input is reported even before the model loads
    ready, failed = [], 0
    for path, pixel in items:
        try:
            image = read_image_gray(path)
            ready.append((path, check_pixel_size(path, pixel), image))
        except FetalInputError as err:
            report_error(err.path, err.problem)
            failed += 1
    if not ready:
        return [], failed
    model = HCModel.load(model_path, device=device, first_stage_only=first_stage_only)  # FetalInputError (missing model) aborts: nothing can be measured
    from tqdm import tqdm

    results = []
    for path, pixel, image in tqdm(ready, desc="measure", unit="image", disable=not progress or len(ready) < 2):
        try:
            m = model.measure_array(image, pixel, filename=str(path))
        except FetalInputError as err:
            report_error(path, err.problem)
            failed += 1
            continue
        m.filename = path.name
        for warning in m.warnings:
            print(f"fetal: warning: {path}: {warning}", file=sys.stderr)
        if overlay is not None:
            _write_overlay(overlay, path, image, m)
        results.append((path, m))
    return results, failed


def _write_overlay(folder: Path, path: Path, image, m) -> None:
    import cv2

    from fetal_lib.hc.measure import draw_overlay  # deferred: imports scipy
    from fetal_lib.io import atomic_path  # deferred: loaded when the command runs

    rgb = draw_overlay(image, m.drawn_ellipses(), label=f"HC {m.hc_mm:.1f} mm")
    target = folder / f"{path.stem}_hc.png"
    with atomic_path(target, suffix=".png") as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise FetalInputError(target, "could not write the overlay image")


# ----------------------------------------------------------------------------- handlers


def handle_measure(args: argparse.Namespace) -> int:
    from fetal_lib.hc.measure import COLUMNS  # deferred: imports scipy

    device = checked_device(args.device)
    images = [Path(p) for p in args.images]
    pixels = _resolve_pixel_sizes(images, args.pixel_size, args.pixel_sizes)
    results, failed = _measure_many(args.model, list(pixels.items()), args.overlay, progress=sys.stderr.isatty(), device=device,
                                    first_stage_only=args.first_stage)
    if results or args.output is None:
        rows = [m.row() for _, m in results]
        extra = [{"warnings": m.warnings, "ellipse_mask_iou": round(m.agreement, 4), "hc_uncalibrated_mm": m.hc_uncalibrated_mm,
                  **({"hc_first_stage_mm": m.hc_first_stage_mm} if m.first_ellipse is not None else {})} for _, m in results]
        emit(table_text(rows, COLUMNS, args.format, extra), args.output)
    return 2 if failed else 0


def _test_dir(args: argparse.Namespace) -> Path:
    """TEST_DIR, or the old ``--test-dir`` spelling of it."""
    given = [d for d in (args.test_dir, args.test_dir_option) if d is not None]
    if not given:
        raise FetalInputError(None, "missing TEST_DIR: the folder of the test images")
    if len(given) == 2 and given[0] != given[1]:
        raise FetalInputError(None, f"two test folders given ({given[0]} and {given[1]}): give one TEST_DIR")
    return given[0]


def handle_submission(args: argparse.Namespace) -> int:
    from fetal_lib.hc.measure import HC18_COLUMNS, read_pixel_sizes  # deferred: imports scipy

    test_dir = _test_dir(args)
    if not test_dir.is_dir():
        raise FetalInputError(test_dir, "test folder not found")
    table = read_pixel_sizes(args.pixel_sizes)
    items = [(test_dir / name, pixel) for name, pixel in table.items()]
    results, failed = _measure_many(args.model, items, progress=sys.stderr.isatty(), first_stage_only=args.first_stage)
    if failed and not args.allow_missing:
        print(f"fetal: error: {args.output}: not written: {failed} of {len(items)} image(s) failed (see above; --allow-missing writes the rest)", file=sys.stderr)
        return 2
    emit(table_text([m.row() for _, m in results], HC18_COLUMNS, "csv"), args.output)
    print(f"wrote {args.output} ({len(results)} rows)", file=sys.stderr)
    return 2 if failed else 0


def handle_train(args: argparse.Namespace) -> int:
    from fetal_lib.hc import pipeline  # deferred: loaded when the command runs
    from fetal_lib.hc.measure import default_model_path  # deferred: imports scipy

    overrides = {"epochs": args.epochs, "time_budget_s": args.time_budget}
    try:
        overrides.update(pipeline.parse_overrides(args.settings))
    except ValueError as exc:
        print(f"fetal: error: --set: {exc}", file=sys.stderr)
        return 2
    settings = pipeline.profile_settings(args.profile, overrides)
    from fetal_lib.training import chapter_backend  # deferred: loaded when the command runs

    backend, why = chapter_backend.apply_for_chapter(settings)  # as chapter 1 chooses (before Keras is imported)
    print(f"Keras on {backend}: {why}", file=sys.stderr)
    data = pipeline.load_data(args.data_dir, args.data_source, args.seed, int(settings["max_images"]))
    print(data.source.describe(), file=sys.stderr)
    print("split (images): " + ", ".join(f"{k} {len(v)}" for k, v in data.parts.items()), file=sys.stderr)
    config = pipeline.train_config(settings, args.seed)
    trained = pipeline.train_model(data, config, settings["tta"], pipeline.parse_grid(settings["threshold_grid"]),
                                   progress=True)
    print(f"precision: {config.precision} ({pipeline.precision_choice(settings).reason})", file=sys.stderr)
    print(f"threshold (validation): {trained.model.threshold:g}; epochs run {trained.result.epochs_run} of {config.epochs}, "
          f"{trained.result.train_images_per_s:.1f} train images/s", file=sys.stderr)
    if trained.result.time_capped:
        print(f"fetal: warning: the wall-time cap ({settings['time_budget_s']:g} s) ended training after {trained.result.epochs_run} "
              f"of {config.epochs} epochs", file=sys.stderr)
    if args.validation_only:
        val = pipeline.summarize(trained.val_results, seed=args.seed)
        table = trained.threshold_table.to_dict("records")
        r = trained.result
        training = {"epochs_run": r.epochs_run, "best_epoch": r.best_epoch, "seconds": round(r.seconds, 1), "train_images_per_s": round(r.train_images_per_s, 2)}
        print(json.dumps({"settings": settings, "training": training, "validation": {**val, **pipeline.signed_by_range(trained.val_results)},
                          "thresholds": table, "threshold": trained.model.threshold}, indent=2))
        return 0
    pipeline.check_floor(trained, data.source.is_phantom)  # BelowFloorError: nothing is saved
    stage = None
    if settings["second_stage"]:
        from fetal_lib.hc.second_stage import timing_line, train_second_stage  # deferred: imports scipy

        stage = train_second_stage(data, trained, settings, args.seed, data.source.is_phantom, progress=True)
        print(timing_line(stage), file=sys.stderr)
        print(stage.choice_table.to_string(index=False), file=sys.stderr)
    deployed = stage.deployed if stage is not None and stage.deployed is not None else trained.model
    val_df = stage.val_results[stage.chosen] if stage is not None else trained.val_results
    table, val_df = pipeline.apply_final_threshold(deployed, data.part("val"), settings, val_df)
    if table is not None:
        print(f"final threshold (validation, {settings['final_threshold_criterion']} criterion): {deployed.threshold:g}", file=sys.stderr)
    from fetal_lib.hc.report import calibration_choice_line  # deferred: imports pandas

    calibration, _ = pipeline.decide_calibration(deployed, data.part("val"), val_df, settings["calibrate"], args.seed)
    print(calibration_choice_line(calibration), file=sys.stderr)
    df = pipeline.evaluate(deployed, data.part("test"), progress=True)
    summary = pipeline.summarize(df, seed=args.seed)
    card = pipeline.model_card(trained, data, args.profile, settings, summary, args.seed, calibration)
    from fetal_lib.hc.second_stage import save  # deferred: imports scipy

    path = save(trained.model.model, card, args.model or default_model_path(), stage, settings, args.profile)
    print(json.dumps({"model": str(path), "deployed": stage.chosen if stage is not None else "first stage",
                      "size_calibration": calibration.deploy, "test": summary}, indent=2))
    return 0


def handle_cv(args: argparse.Namespace) -> int:
    from fetal_lib.hc import pipeline  # deferred: loaded when the command runs
    from fetal_lib.hc.cross_validation import cross_validate, cv_summary  # deferred: loaded when the command runs

    try:
        overrides = pipeline.parse_overrides(args.settings)
    except ValueError as exc:
        print(f"fetal: error: --set: {exc}", file=sys.stderr)
        return 2
    if args.folds < 2:
        print(f"fetal: error: --folds: needs at least 2 folds, got {args.folds}", file=sys.stderr)
        return 2
    if args.output is not None:  # fail now, not after an hour of training
        check_writable(args.output)  # FetalInputError: exit 2
    settings = pipeline.profile_settings(args.profile, overrides)
    from fetal_lib.training import chapter_backend  # deferred: loaded when the command runs

    backend, why = chapter_backend.apply_for_chapter(settings)  # as chapter 1 chooses (before Keras is imported)
    print(f"Keras on {backend}: {why}", file=sys.stderr)
    data = pipeline.load_data(args.data_dir, args.data_source, args.seed, int(settings["max_images"]))
    print(data.source.describe(), file=sys.stderr)
    from fetal_lib.results import ChapterRun, data_status  # deferred: loaded when the command runs
    from fetal_lib.paths import build_dir  # deferred: loaded when the command runs

    results_dir = args.results_dir or build_dir() / "results" / "hc18_cv"
    run = ChapterRun("hc18_cv", args.profile, args.data_dir or "", results_dir, args.seed, data_status([data.source]),
                     parameters={**settings, "folds": args.folds},
                     compute={"precision": pipeline.precision_choice(settings).to_dict()})

    def report(row: dict) -> None:
        from tqdm import tqdm

        tqdm.write(f"fold {row['fold']}: {row['held-out images']} held-out images, HC |diff| mean {row['HC |diff| mean (mm)']:.2f} mm, "
                   f"median {row['HC |diff| median (mm)']:.2f} mm ({row['epochs run']} epochs, threshold {row['threshold']:g})", file=sys.stderr)

    try:
        result = cross_validate(data, settings, args.folds, args.seed, progress=True, on_fold=report)
    except ValueError as exc:
        print(f"fetal: error: {exc}", file=sys.stderr)
        return 2
    if args.output is not None:
        from fetal_lib.io import atomic_path  # deferred: loaded when the command runs

        with atomic_path(args.output) as tmp:
            result.per_image.to_csv(tmp, index=False)
    summary = cv_summary(result, args.seed)
    run.table(result.per_image, "per_image", show=False)
    run.table(result.folds, "folds", show=False)
    run.table(result.validation, "validation_thresholds", show=False)  # each fold's validation HC per threshold: rules judged out of fold
    import contextlib

    pooled = summary["pooled"]
    headline = {"hc_abs_diff_mean_mm": pooled.get("hc_abs_diff_mean_mm"), "hc_abs_diff_median_mm": pooled.get("hc_abs_diff_median_mm"),
                "dice": pooled.get("dice_mean")}
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the summary (or the fold table) only
        run.finish({**headline, **summary, "folds_table": result.folds.to_dict("records")}, headline=list(headline))
    if args.format == "csv":
        sys.stdout.write(result.folds.to_csv(index=False, lineterminator="\n"))
    else:
        print(json.dumps({"settings": settings, "summary": summary, "folds": result.folds.to_dict("records")}, indent=2))
    return 0

