"""``fetal brain-age``: tissue volumes and predicted brain age from a T1 MRI and its brain mask.

``fetal brain-age predict T1.nii.gz --mask MASK.nii.gz [--model DIR] [--format text|json]``
``fetal brain-age predict --images-dir DIR --masks-dir DIR -o results.csv [--model DIR]``
``fetal brain-age train [--profile cpu] [--data-dir DIR] [--model DIR]``

Torch and SimpleITK are imported inside the handler only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fetal_lib.config.options import (
    add_actions, add_data_dir, add_data_source, add_device, add_format, add_profile, add_seed, checked_device,
)
from fetal_lib.errors import FetalInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = add_actions(
        subparsers,
        "brain-age",
        help="brain MRI: tissue volumes (mL) and predicted age (years)",
        description="Brain age from T1 MRI (Cam-CAN layout): 3D Res-U-Net tissue segmentation, tissue volumes, age regression.",
        dest="brain_age_command",
    )
    p = sub.add_parser(
        "predict",
        help="segment CSF/GM/WM, report volumes (mL) and predicted age (years)",
        description=(
            "Preprocess (normalise inside the mask, 3 mm, 64^3), segment with the trained Res-U-Net, report "
            "tissue volumes in mL and the predicted age in years. Single subject: IMAGE and --mask. Batch: "
            "--images-dir and --masks-dir with files named sub-<ID>_T1w_unbiased.nii.gz and "
            "sub-<ID>_T1w_brain_mask.nii.gz, and -o results.csv (subject_id,csf_ml,gm_ml,wm_ml,"
            "predicted_age_years). A bad subject prints one line and the others still run; the exit "
            "status is 2 if any input was bad."
        ),
    )
    p.add_argument("image", nargs="?", metavar="IMAGE", help="single subject: T1 volume (NIfTI)")
    p.add_argument("--image", dest="image_option", help=argparse.SUPPRESS)  # old spelling of IMAGE
    p.add_argument("--mask", metavar="MASK", help="single subject: brain mask of IMAGE (same geometry)")
    p.add_argument("--images-dir", metavar="DIR", help="batch: folder of sub-<ID>_T1w_unbiased.nii.gz")
    p.add_argument("--masks-dir", metavar="DIR", help="batch: folder of sub-<ID>_T1w_brain_mask.nii.gz")
    p.add_argument("-o", "--output", metavar="CSV", help="batch: CSV to write (atomically)")
    p.add_argument("--model", default=None, metavar="DIR", help="model folder (default: <build>/models/brain_age)")
    add_format(p, ("text", "json"), "text", "single subject: text (default) or json; a batch always writes CSV")
    p.add_argument("--threads", type=int, default=2, metavar="N", help="CPU threads for the network (default 2)")
    add_device(p)
    p.set_defaults(func=_predict, _parser=p)

    t = sub.add_parser(
        "train",
        help="train the chapter's segmenter and deployed regressor outside the book, and save them",
        description=(
            "Train the Res-U-Net segmenters (seg_cv_folds folds over the image subjects, the profile's epochs and "
            "precision; the deployed segmenter averages their class probabilities), check their out-of-fold Dice "
            "against the sanity floor (real data: every tissue's Dice at least 0.75; below it nothing is written), fit "
            "the deployed regressor as the chapter does, and save both with a model card. The chapter measures much "
            "more (domain shift, the nested estimate): this command only trains and saves what `fetal brain-age predict` uses."
        ),
    )
    add_profile(t, "knobs from profiles/<name>.yaml brain_age: (default cpu)")
    add_data_dir(t)
    add_data_source(t, "the brain-age data")
    t.add_argument("--model", default=None, metavar="DIR", help="model folder to write (default: <build>/models/brain_age)")
    add_seed(t, "seed of the training (default 0, as the chapter)")
    add_device(t, "the profile's device knob (auto)")
    t.set_defaults(func=_train, _parser=t)


def _image(args: argparse.Namespace) -> str | None:
    """IMAGE, or the old ``--image`` spelling of it."""
    given = [p for p in (args.image, args.image_option) if p is not None]
    if len(given) == 2 and given[0] != given[1]:
        raise FetalInputError(None, f"two images given ({given[0]} and {given[1]}): give one IMAGE")
    return given[0] if given else None


def _predict(args: argparse.Namespace) -> int:
    device = checked_device(args.device)
    args.image = _image(args)
    single = args.image is not None or args.mask is not None
    batch = args.images_dir is not None or args.masks_dir is not None
    if single == batch:
        raise FetalInputError(None, "give either IMAGE and --mask, or --images-dir, --masks-dir and -o")
    if single:
        if not (args.image and args.mask):
            raise FetalInputError(None, "IMAGE and --mask go together")
    elif not (args.images_dir and args.masks_dir and args.output):
        raise FetalInputError(None, "batch mode needs --images-dir, --masks-dir and -o results.csv")
    elif args.format != "text":
        raise FetalInputError(None, f"--format {args.format} is for a single subject; a batch writes CSV to -o")

    from fetal_lib.brain_age.predict import batch_csv, format_text, load_predictor, run_batch  # deferred: loaded when the command runs
    from fetal_lib.io import write_text_atomic  # deferred: loaded when the command runs

    if single:
        # check the inputs before loading the models, so a bad file is named first
        from fetal_lib.brain_age.preprocess import load_checked  # deferred: loaded when the command runs

        load_checked(args.image, args.mask)
        predictor = load_predictor(args.model, threads=args.threads, device=device)
        result = predictor(args.image, args.mask)
        print(json.dumps(result, indent=2) if args.format == "json" else format_text(result))
        return 0

    predictor = load_predictor(args.model, threads=args.threads, device=device)
    rows, errors = run_batch(
        predictor, args.images_dir, args.masks_dir, progress=sys.stderr.isatty(),
        on_error=lambda err: print(f"fetal: error: {err}", file=sys.stderr),
    )
    write_text_atomic(Path(args.output), batch_csv(rows))
    print(f"{len(rows)} subject(s) written to {args.output}; {len(errors)} failed", file=sys.stderr)
    return 2 if errors else 0


def _train(args: argparse.Namespace) -> int:
    from fetal_lib.config.profiles import chapter_knobs  # deferred: loaded when the command runs
    from fetal_lib.book.chapters import spec_of  # deferred: loaded when the command runs
    from fetal_lib.brain_age.pipeline import train_deployable  # deferred: loaded when the command runs
    from fetal_lib.brain_age.predict import default_model_dir  # deferred: loaded when the command runs

    settings = chapter_knobs(spec_of("brain_age"), args.profile)
    settings = {**settings, "device": checked_device(args.device, str(settings.get("device") or "auto"))}
    summary = train_deployable(settings, args.profile, args.data_dir, args.data_source, args.seed, args.model or default_model_dir(),
                               progress=sys.stderr.isatty(), log=lambda line: print(line, file=sys.stderr, flush=True))
    if summary["time_capped"]:
        print(f"fetal: warning: the wall-time cap ended training after {summary['epochs_run']} of {summary['epochs']} epochs", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return 0
