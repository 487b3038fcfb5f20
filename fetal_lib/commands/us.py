"""``fetal us``: classify fetal ultrasound images (chapter 3's models), or train one.

    fetal us classify IMAGE... [--task T] [--model PATH] [--format csv|json] [-o FILE]
    fetal us train [--task T] [--profile cpu] [--data-dir DIR] [--data-source real] [--arch NAME]
                   [--seed N] [--set KEY=VALUE ...] [--model PATH]
    fetal us cv --task T [--folds 5] [--archs ARCHS] [--profile cpu] [--data-dir DIR] [--set KEY=VALUE ...]

``cv`` cross-validates the chapter's architectures on a task's training side (grouped folds; the
test split untouched) and writes ``build/results/us_cv/<task>/``, which chapter 3 shows beside the
model its validation split chose, for comparison (it never deploys by it). With two or more
architectures each fold also scores their mean (``ensemble``: their calibrated probabilities averaged,
no training of its own), and the per-image table holds every candidate's class probabilities.
Another recipe's CV written to ``build/results/us_cv/<task>.<variant>/`` (``--results-dir``; e.g.
``--set head_crop_tasks=`` for whole images) is shown beside it in the chapter, never deployed.

``classify`` prints one row per image: ``filename,predicted,confidence,p_<class>...`` (the
probabilities are calibrated: softmax of the logits over the model's temperature). A bad image
(missing, not an image, empty) is one line on stderr naming the file and the problem; the others
are still classified and the exit status is 1. If no image can be read, or the model is missing,
the exit status is 2. The table is written atomically with ``-o``. A model trained on head crops
(the brain sub-planes: its card's ``input.head_crop``) finds the fetal head with the HC18 network
saved beside it (``us_<task>.head.keras``) and classifies the crop; its rows add ``head_found``, and
an image without a head is classified whole with a warning on stderr.

``train`` trains one model as chapter 3 does (the profile's ``us_classification:`` knobs, the
grouped split), fits its temperature on the validation split, and saves it with its card only if
its validation balanced accuracy beats chance (1/K) by :data:`fetal_lib.us.floor.FLOOR_MARGIN` (the
chapter's floor too); otherwise nothing is
written and the exit status is 1. TensorFlow is imported only when a sub-command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fetal_lib.commands.output import emit, report_error, table_text, warnings_of
from fetal_lib.errors import FetalInputError
from fetal_lib.config.options import (
    add_actions, add_chapter_profile, add_data_dir, add_data_source, add_format, add_seed, add_settings,
)
from fetal_lib.us.classifier import classifier_archs
from fetal_lib.us.floor import FLOOR_MARGIN
from fetal_lib.us.tasks import TASK_DESCRIPTIONS, TASKS

CHAPTER = "us_classification"
TASK_HELP = "; ".join(f"{t}: {d}" for t, d in TASK_DESCRIPTIONS.items())


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = add_actions(subparsers, "us", dest="us_command",
                      help="fetal ultrasound classification (chapter 3): classify images, train a model",
                      description="Fetal ultrasound classification (chapter 3): classify your own images with a "
                      "trained model (standard plane, brain plane, normal vs abnormal brain, anomaly type), or "
                      "train one as the chapter does. Tasks: " + TASK_HELP + ".")

    c = sub.add_parser("classify", help="classify images; prints filename,predicted,confidence,p_<class>...",
                       description="Classify each image with a trained model and print one row per image: filename, "
                       "predicted class, its calibrated probability (confidence) and one probability column per class. "
                       "Bad images are reported on stderr (exit status 1) and the others still classified.")
    c.add_argument("images", nargs="+", metavar="IMAGE", help="ultrasound image files (PNG, JPEG ...), grey or colour (converted to grey)")
    c.add_argument("--task", choices=TASKS, default=None,
                   help="what to classify (default: the --model's own task, else planes); its model is build/models/us_<task>.keras")
    c.add_argument("--model", type=Path, default=None, metavar="PATH", help="trained model with its card (default: build/models/us_<task>.keras)")
    add_format(c, ("csv", "json"), "csv", "csv (default) or json (adds the warnings of each image)")
    c.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the table to this file (atomically) instead of stdout")
    c.set_defaults(func=handle_classify)

    t = sub.add_parser("train", help="train one classifier outside the book (same recipe as chapter 3)",
                       description="Train one network on a task's grouped split (patients or source images never on two "
                       "sides) with the profile's us_classification knobs, keep its best validation epoch, fit its "
                       "temperature on validation, check it beats chance on validation (balanced accuracy >= 1/K + "
                       f"{FLOOR_MARGIN:g}; else nothing is saved and the exit status is 1), score the test split, and save "
                       "the model with its card. Prints a JSON summary.")
    t.add_argument("--task", choices=TASKS, default="planes", help="the task (default planes)")
    add_chapter_profile(t, CHAPTER)
    add_data_dir(t)
    add_data_source(t, "the task's data set")
    t.add_argument("--arch", default=None, metavar="NAME",
                   help="network: plain_cnn, separable_cnn or xception (default: the first of the profile's archs)")
    add_seed(t, "seed of the split and the training (default 0, as the chapter)")
    add_settings(t, "override a us_classification knob of the profile, e.g. --set epochs=5 (repeatable)")
    t.add_argument("--model", type=Path, default=None, metavar="PATH", help="where to save (default: build/models/us_<task>.keras)")
    t.set_defaults(func=handle_train)

    v = sub.add_parser("cv", help="grouped K-fold CV of the chapter's models on a task's training side (chooses the deployed one)",
                       description="Cross-validate each architecture on the training side of a task's grouped split (the "
                       "chapter's train and validation parts; its test split untouched), every image scored once out of fold, "
                       "and write build/results/us_cv/<task>/ (metrics.json with the CV choice, tables), which chapter 3 shows beside "
                       "the model its validation split chose (for comparison only). With two or more networks each fold also scores "
                       "their mean (ensemble: calibrated probabilities averaged). Prints the summary table.")
    v.add_argument("--task", choices=TASKS, required=True, help="the task")
    v.add_argument("--folds", type=int, default=5, metavar="K", help="grouped folds (default 5)")
    v.add_argument("--archs", default=None, metavar="ARCHS", help="comma-separated networks to compare (default: the profile's archs)")
    add_chapter_profile(v, CHAPTER)
    add_data_dir(v)
    add_data_source(v, "the task's data set")
    add_seed(v, "seed of the split, the folds and the training (default 0, as the chapter)")
    add_settings(v, "override a us_classification knob of the profile (repeatable)")
    v.add_argument("--results-dir", type=Path, default=None, metavar="DIR", help="where to write (default build/results/us_cv/<task>)")
    v.add_argument("--also-tta", action="append", default=[], metavar="VIEWS",
                   help="also score every fold's networks through these test-time views instead of the profile's tta, as a "
                   "row of its own (comma-separated: hflip, zoom, rotate; '' for none; repeatable); never the CV's choice")
    v.set_defaults(func=handle_cv)


# ----------------------------------------------------------------------------- helpers


# ----------------------------------------------------------------------------- classify


def _model_task(model: Path | None, task: str | None) -> str | None:
    """The task to check the model against: ``--task`` if given, else None (the model's own)."""
    return task if (task is not None or model is not None) else "planes"


def handle_classify(args: argparse.Namespace) -> int:
    from fetal_lib.us.classifier import UsClassifier, read_images  # deferred: loaded when the command runs

    ready, errors = read_images(args.images)  # cheap checks first: bad input is reported before the model loads
    for path, problem in errors:
        report_error(path, problem)
    if not ready:
        print(f"fetal: error: none of the {len(errors)} image(s) could be read; nothing classified", file=sys.stderr)
        return 2
    classifier = UsClassifier.load(args.model, _model_task(args.model, args.task))  # FetalInputError: exit 2
    rows = classifier.predict_images(ready)
    for row in rows:
        for warning in row["warnings"]:
            print(f"fetal: warning: {row['filename']}: {warning}", file=sys.stderr)
    emit(table_text(rows, classifier.columns, args.format, warnings_of(rows)), args.output)
    return 1 if errors else 0


# ----------------------------------------------------------------------------- train


def _task_data(args: argparse.Namespace, settings: dict):
    """``args.task``'s settings, its head finder (None without head crops) and its data, with Keras
    configured for ``args.seed``."""
    from fetal_lib.training.keras import configure  # deferred: loaded when the command runs
    from fetal_lib.us import pipeline  # deferred: loaded when the command runs
    from fetal_lib.us.tasks import load_task  # deferred: loaded when the command runs

    configure(threads=2, seed=args.seed)
    try:
        settings = pipeline.task_settings(settings, args.task)
    except ValueError as exc:
        raise FetalInputError(None, f"--set: {exc}") from None
    finder = pipeline.head_finder(settings) if settings["head_crop"] else None  # FetalInputError: exit 2
    data = load_task(args.task, args.data_dir, args.data_source, args.seed)
    if settings["split_from"]:  # split as the chapter splits it
        data = pipeline.align_splits({args.task: data}, settings,
                                     lambda t: load_task(t, args.data_dir, args.data_source, args.seed))[args.task]
    print(data.source.describe(), file=sys.stderr)
    return settings, finder, data


def handle_train(args: argparse.Namespace) -> int:
    from fetal_lib.bench import profile_overrides  # deferred: loaded when the command runs
    from fetal_lib.paths import build_dir  # deferred: loaded when the command runs
    from fetal_lib.training.floor import check  # deferred: loaded when the command runs
    from fetal_lib.us import pipeline  # deferred: loaded when the command runs
    from fetal_lib.us.calibration import fit_temperature  # deferred: loaded when the command runs
    from fetal_lib.us.classifier import UsClassifier, default_model_path, scores  # deferred: loaded when the command runs
    from fetal_lib.us.test_views import parse_tta  # deferred: loaded when the command runs
    from fetal_lib.us.floor import deployment_floor  # deferred: loaded when the command runs
    from fetal_lib.us.train import train  # deferred: loaded when the command runs

    overrides = profile_overrides(CHAPTER, args.settings)
    if overrides is None:
        return 2
    settings = pipeline.profile_settings(args.profile, overrides)
    arch = args.arch or (pipeline.split_names(settings["archs"]) or ["plain_cnn"])[0]
    if arch not in classifier_archs():
        print(f"fetal: error: --arch: unknown network {arch!r}; known: {', '.join(classifier_archs())}", file=sys.stderr)
        return 2
    try:
        tta = parse_tta(pipeline.task_tta(settings, args.task))  # the task's own views (task_tta), else tta
    except ValueError as exc:
        print(f"fetal: error: --set tta: {exc}", file=sys.stderr)
        return 2
    settings, finder, data = _task_data(args, settings)
    print(f"task {data.task}: {len(data.classes)} classes ({', '.join(data.classes)}); split (images/groups): "
          + ", ".join(f"{p} {len(v)}/{len(set(data.groups(p)))}" for p, v in data.parts.items()), file=sys.stderr)
    for note in data.notes:
        print(f"note: {note}", file=sys.stderr)
    if int(settings.get("seeds") or 1) > 1:
        print(f"warning: task_seeds gives {data.task} {settings['seeds']} networks per architecture; `fetal us train` trains one "
              "(seed --seed): the chapter and `fetal us cv` average the seeds", file=sys.stderr)
    if settings["init_from"]:
        print(f"warning: task_init starts {data.task}'s networks from {settings['init_from']}'s; `fetal us train` trains one from its "
              "own initialisation: the chapter and `fetal us cv` start it from the other task", file=sys.stderr)
    size = (int(settings["input_rows"]), int(settings["input_cols"]))
    cache = build_dir() / "cache" / "us"
    x = {p: pipeline.load_inputs(data.part(p), settings, cache, finder, progress=sys.stderr.isatty())[0] for p in data.parts}
    y = {p: data.labels(p) for p in data.parts}
    k = len(data.classes)
    try:
        config = pipeline.train_config(settings, arch, args.seed)
    except (ValueError, FileNotFoundError) as exc:
        print(f"fetal: error: {arch}: {exc}", file=sys.stderr)
        return 2
    print(f"training {arch} ({config.epochs} epochs, input {size[0]}x{size[1]}, {config.precision}) ...", file=sys.stderr)
    fit = train(config, x["train"], y["train"], x["val"], y["val"], k, progress=True)
    classifier = UsClassifier(fit.model, data.task, data.classes, size, 1.0, arch=arch, options=config.options,
                              tta=tta, head_crop=pipeline.head_crop_spec(settings, data.task), finder=finder)
    logits_val = classifier.logits_arrays(x["val"])
    classifier.temperature = float(fit_temperature(logits_val, y["val"]))
    validation = {"before_temperature": scores(logits_val, y["val"], k, 1.0),
                  "after_temperature": scores(logits_val, y["val"], k, classifier.temperature)}
    floor = deployment_floor(k)
    check({floor.metric: validation["after_temperature"]["balanced_accuracy"]}, [floor],
          f"The {data.task} classifier ({arch}, {fit.epochs_run} epochs, kept epoch {fit.best_epoch} by the {config.checkpoint} rule)",
          f"Chance is 1/{k}; train longer (--set epochs=N), check the data (`fetal data verify`), or try another --arch.")
    test = scores(classifier.logits_arrays(x["test"]), y["test"], k, classifier.temperature) if "test" in x else None
    training = {**config.to_dict(), "epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch, "seconds": round(fit.seconds, 1),
                "train_images_per_s": round(fit.train_images_per_s, 2)}
    card = {
        **classifier.card_fields(args.profile),
        "name": f"Fetal ultrasound classifier, {data.task} ({arch}), fetal us train",
        "intended_use": "Research and teaching. Not a medical device.",
        "limitations": [f"Trained on {data.source.describe()}.",
                        "Probabilities are calibrated on the validation split of the same data set; other machines, "
                        "operators or populations may be classified less well and less honestly."],
        "data": data.summary(),
        "split": {"method": "grouped by patient or source image, stratified by class", "seed": args.seed,
                  **{f"n_{p}": int(len(v)) for p, v in data.parts.items()}},
        "training": training,
        "metrics": {"validation": validation, "test": test, "floor": floor.describe()},
        "settings": settings,
    }
    path = classifier.save(args.model or default_model_path(data.task), card)
    print(json.dumps({"model": str(path), "task": data.task, "arch": arch, "classes": data.classes,
                      "temperature": classifier.temperature, "validation": validation, "test": test,
                      "training": {k_: training[k_] for k_ in ("epochs_run", "best_epoch", "seconds", "train_images_per_s")}},
                     indent=2))
    return 0


# ----------------------------------------------------------------------------- cv


def handle_cv(args: argparse.Namespace) -> int:
    import contextlib

    from fetal_lib.bench import profile_overrides  # deferred: loaded when the command runs
    from fetal_lib.results import ChapterRun, data_status  # deferred: loaded when the command runs
    from fetal_lib.paths import build_dir  # deferred: loaded when the command runs
    from fetal_lib.us import cross_validation as cv  # deferred: loaded when the command runs
    from fetal_lib.us import pipeline  # deferred: loaded when the command runs
    from fetal_lib.us.test_views import parse_tta  # deferred: loaded when the command runs

    overrides = profile_overrides(CHAPTER, args.settings)
    if overrides is None:
        return 2
    if args.folds < 2:
        print(f"fetal: error: --folds: needs at least 2 folds, got {args.folds}", file=sys.stderr)
        return 2
    settings = pipeline.profile_settings(args.profile, overrides)
    try:
        also_tta = [parse_tta(views) for views in args.also_tta]
    except ValueError as exc:
        print(f"fetal: error: --also-tta: {exc}", file=sys.stderr)
        return 2
    archs = pipeline.split_names(args.archs or settings["archs"])
    unknown = [a for a in archs if a not in classifier_archs()]
    if unknown or not archs:
        print(f"fetal: error: --archs: unknown network(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(classifier_archs())}",
              file=sys.stderr)
        return 2
    profile_settings = settings
    settings, finder, data = _task_data(args, settings)
    cache = build_dir() / "cache" / "us"
    arrays, found = pipeline.load_inputs(data.items, settings, cache, finder, progress=sys.stderr.isatty())
    if found is not None:
        print(f"head crop: a head found in {int(found.sum())} of {len(found)} images (the others are classified whole)", file=sys.stderr)
    init_source = None
    if settings["init_from"]:  # task_init: each fold's networks start from the source task's, trained per fold without its patients
        from fetal_lib.us.tasks import load_task  # deferred: loaded when the command runs

        source_settings = pipeline.task_settings(profile_settings, settings["init_from"])
        source_data = load_task(settings["init_from"], args.data_dir, args.data_source, args.seed)
        source_arrays, _ = pipeline.load_inputs(source_data.items, source_settings, cache, finder, progress=sys.stderr.isatty())
        init_source = cv.SourceTask(source_data, source_arrays, source_settings)
        print(f"task_init: every fold's networks start from {source_data.task}'s, trained per fold on its training part "
              "without the fold's held-out and validation patients", file=sys.stderr)
    out_dir = args.results_dir or cv.results_dir(args.task)
    run = ChapterRun(f"us_cv_{args.task}", args.profile, args.data_dir or "", out_dir, args.seed, data_status([data.source]),
                     parameters={**settings, "task": args.task, "folds": args.folds, "archs": ",".join(archs),
                                 "head_finder_sha256": finder.sha256 if finder else None,
                                 "heads_found": None if found is None else int(found.sum()),
                                 "also_tta": [",".join(views) for views in also_tta]},
                     compute={"precision": pipeline.precision_choice(settings).to_dict()})

    def report(row: dict) -> None:
        kept = f"epoch {row['epoch kept']} of {row['epochs run']}" if row["epoch kept"] is not None else "the mean of the fold's networks"
        print(f"fold {row['fold']} {row['arch']}: balanced accuracy {row['balanced accuracy']:.3f} on {row['images']} held-out images "
              f"({kept})", file=sys.stderr)

    try:
        result = cv.cross_validate(data, arrays, settings, archs, args.folds, args.seed, on_fold=report, init_source=init_source,
                                   also_tta=also_tta)
    except ValueError as exc:
        print(f"fetal: error: {exc}", file=sys.stderr)
        return 2
    summary = cv.cv_summary(result, seed=args.seed)
    table = cv.summary_table(summary)
    run.table(result.per_image, "per_image", show=False)
    run.table(result.folds, "folds", show=False)
    run.table(table, "summary", show=False)
    headline = {f"{a}_balanced_accuracy": s["balanced_accuracy"] for a, s in summary["archs"].items()}
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the table only
        run.finish({**headline, **summary, "folds_table": result.folds.to_dict("records"), "summary_table": table.to_dict("records")},
                   headline=list(headline))
    sys.stdout.write(table.to_csv(index=False, lineterminator="\n"))
    return 0
