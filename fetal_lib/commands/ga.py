"""``fetal ga``: gestational age from fetal brain MRI (chapter 4's model): predict, train.

    fetal ga predict VOLUME... [--mask MASK ...] [--model PATH] [--format csv|json] [-o FILE]
    fetal ga predict --images-dir DIR [--masks-dir DIR] [--otsu-without-mask] [--model PATH] [--format csv|json] [-o FILE]
    fetal ga train [--profile cpu] [--data-dir DIR] [--data-source real] [--model PATH] [--seed N] [--set KEY=VALUE ...]
    fetal ga prepare-volumes -o FILE [--profile cpu] [--data-dir DIR] [--data-source real] [--set KEY=VALUE ...]

``predict`` prints one row per volume: ``image, mask, ga_weeks_days, ga_days, ga_weeks, spread_days,
brain_volume_ml, brain_cropped_by_field_of_view``. ``--mask`` gives the brain masks, one per volume
in the same order (without masks the brain is found by an Otsu threshold, which suits a
skull-stripped volume only). ``--images-dir`` predicts every volume of a folder, each with its mask
found by the naming rule of :mod:`fetal_lib.ga_mri.batch` (FeTA's BIDS ``sub-<ID>_rec-<rec>_T2w``
with ``..._desc-brain_mask``, ``..._mask`` or ``..._dseg``; the atlases' ``<name>/srr`` with
``mask``; ``NAME`` with ``NAME_mask``), beside it or under ``--masks-dir``; a volume without a mask is
an error unless ``--otsu-without-mask``. A progress bar over the volumes goes to stderr (on a terminal).
A bad volume (missing, corrupt, not 3-D, a mask of another geometry, no mask found) is one line on
stderr naming the file and the problem; the others are still predicted and the exit status is 1.
No volume predicted, no model, or contradictory arguments: exit status 2. ``-o`` writes the table
atomically.

``train`` trains the deployed model as the chapter does (:func:`fetal_lib.ga_mri.deploy.train_deployable`):
protocol 1's folds by volume for the floor (the network must beat the training volumes' mean age;
else nothing is written and the exit status is 1), then the network on every volume, saved with its
card. It prints a JSON summary. TensorFlow is imported only when a sub-command runs.

``prepare-volumes`` reads and prepares the profile's volumes as the chapter does and writes them to one
file (:mod:`fetal_lib.ga_mri.volume_file`), which the chapter reads with ``--set volumes_file=FILE`` on a
machine without SimpleITK (the GPU check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fetal_lib.commands.output import emit, table_text, warnings_of
from fetal_lib.config.options import (
    add_actions, add_chapter_profile, add_data_dir, add_data_source, add_format, add_seed, add_settings,
)
from fetal_lib.errors import FetalInputError

COLUMNS = ["image", "mask", "ga_weeks_days", "ga_days", "ga_weeks", "spread_days", "brain_volume_ml", "brain_cropped_by_field_of_view"]
CHAPTER = "fetal_mri_ga"
MODEL_HELP = "trained model with its card (default: build/models/ga_mri.keras)"


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = add_actions(subparsers, "ga", dest="ga_command",
                      help="gestational age from fetal brain MRI (chapter 4): predict, train",
                      description="Gestational age from fetal brain MRI (chapter 4): the multi-planar VGG16 with "
                      "attention, trained by the chapter (or `fetal ga train`), applied to your T2-weighted volumes.")
    p = sub.add_parser("predict", help="predict GA (weeks+days) of NIfTI volumes, or of every volume of a folder",
                       description="Predict the gestational age of each volume: the volume is reoriented, scaled inside its "
                       "brain mask and resampled as in chapter 4, sliced in three planes, and the predictions of the matched "
                       "slice triples are averaged (their spread is reported). Give VOLUME... (with --mask, in the same order), "
                       "or --images-dir DIR: every NIfTI volume under DIR, each paired with its mask by name, beside it or at the "
                       "same place under --masks-dir: sub-<ID>_rec-<rec>_T2w with sub-<ID>_rec-<rec>_desc-brain_mask, _mask or "
                       "_dseg (the FeTA BIDS layout); <name>/srr with <name>/mask or parcellation (the atlases' layout); NAME "
                       "with NAME_mask or NAME_dseg. Files named as masks or label maps are not volumes. Bad volumes, and "
                       "volumes without a mask, are reported on stderr (exit status 1) and the others still predicted.")
    p.add_argument("volumes", nargs="*", metavar="VOLUME", help="T2-weighted fetal brain volumes (.nii or .nii.gz)")
    p.add_argument("--mask", action="append", default=[], type=Path, metavar="MASK",
                   help="brain mask of each VOLUME, in the same order (repeat once per volume; default: Otsu threshold)")
    p.add_argument("--images-dir", type=Path, default=None, metavar="DIR",
                   help="batch: predict every volume under DIR (searched recursively), instead of VOLUME...")
    p.add_argument("--masks-dir", type=Path, default=None, metavar="DIR",
                   help="batch: the masks are under DIR at the volumes' places (or at its top level), not beside the volumes")
    p.add_argument("--otsu-without-mask", action="store_true",
                   help="batch: a volume without a mask gets the Otsu threshold's brain (skull-stripped volumes only) "
                   "instead of an error")
    p.add_argument("--model", type=Path, default=None, metavar="PATH", help=MODEL_HELP)
    add_format(p, ("csv", "json"), "csv", "csv (default) or json")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the table to this file (atomically) instead of stdout")
    p.set_defaults(func=handle_predict)

    t = sub.add_parser("train", help="train the chapter's deployed model outside the book, and save it",
                       description="Train the model `fetal ga predict` uses with the chapter's recipe (the profile's "
                       "fetal_mri_ga knobs): prepare and slice every volume, train and test the network in protocol 1's folds by "
                       "volume (the profile's folds, stratified by GA) and check the chapter's sanity floor (its MAE per volume "
                       "must beat predicting the training volumes' mean age; else nothing is written, a previous model is kept "
                       "and the exit status is 1), then train the network on every volume for the profile's epochs and save it "
                       "with its card (protocol 1's MAE is its expected error). That is folds + 1 trainings; the chapter "
                       "measures much more (baselines, leak, families). Prints a JSON summary.")
    add_chapter_profile(t, CHAPTER)
    add_data_dir(t)
    add_data_source(t, "the profile's dataset")
    t.add_argument("--model", type=Path, default=None, metavar="PATH", help="where to save (default: build/models/ga_mri.keras)")
    add_seed(t, "seed of the folds, the samples and the training (default 0, as the chapter)")
    add_settings(t, "override a fetal_mri_ga knob of the profile, e.g. --set epochs=5 or --set dataset=feta (repeatable)")
    t.set_defaults(func=handle_train)

    v = sub.add_parser("prepare-volumes", help="prepare the chapter's volumes into one file, for a machine without SimpleITK",
                       description="Read and prepare every volume of the profile's dataset as chapter 4 does (SimpleITK: "
                       "reoriented, scaled inside the brain mask, resampled onto the grid of the knobs size, fov_mm and "
                       "offsets_mm, sliced in three planes) and write the slices with each volume's age and tissue volumes "
                       "to one compressed file (atomically). The chapter reads it with --set volumes_file=FILE where "
                       "SimpleITK is missing (the GPU check); the file must match the chapter's grid knobs there.")
    v.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="the .npz to write")
    add_chapter_profile(v, CHAPTER)
    add_data_dir(v)
    add_data_source(v, "the profile's dataset")
    add_settings(v, "override a fetal_mri_ga knob of the profile, e.g. --set offsets_mm=-8,0,8 (repeatable)")
    v.set_defaults(func=handle_prepare_volumes)


def _pairs(args: argparse.Namespace) -> list:
    """The (volume, mask) pairs to predict: from VOLUME... and --mask, or from --images-dir."""
    from fetal_lib.ga_mri.batch import VolumePair, pair_folder  # deferred: loaded when the command runs

    volumes = [Path(v) for v in args.volumes]
    masks = list(args.mask)
    if args.images_dir is None:
        for given, option in ((args.masks_dir, "--masks-dir"), (args.otsu_without_mask, "--otsu-without-mask")):
            if given:
                raise FetalInputError(None, f"{option} goes with --images-dir DIR (for VOLUME... give --mask, once per volume)")
        if not volumes:
            raise FetalInputError(None, "nothing to predict: give VOLUME... or --images-dir DIR")
        if masks and len(masks) != len(volumes):
            raise FetalInputError(None, f"{len(masks)} --mask for {len(volumes)} volume(s): give one mask per volume, in order, or none")
        return [VolumePair(v, masks[k] if masks else None) for k, v in enumerate(volumes)]
    if volumes:
        raise FetalInputError(None, f"give either VOLUME... or --images-dir DIR, not both ({len(volumes)} VOLUME(s) and "
                                    f"--images-dir {args.images_dir})")
    if masks:
        raise FetalInputError(None, "--mask is for VOLUME...; with --images-dir the masks are found by name (see --help), "
                                    "or under --masks-dir DIR")
    pairs = pair_folder(args.images_dir, args.masks_dir)  # FetalInputError: missing folder, no volume
    if args.otsu_without_mask:
        for pair in pairs:
            if pair.mask is None:
                print(f"fetal: warning: {pair.image}: no brain mask; the brain is found by an Otsu threshold", file=sys.stderr)
        pairs = [VolumePair(p.image, p.mask) for p in pairs]
    return pairs


def handle_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fetal_lib.ga_mri.batch import predict_pairs  # deferred: loaded when the command runs
    from fetal_lib.ga_mri.predictor import GaPredictor  # deferred: loaded when the command runs

    pairs = _pairs(args)
    predictor = GaPredictor.load(args.model)  # FetalInputError: exit 2
    rows, failed = predict_pairs(predictor, pairs, lambda err: tqdm.write(f"fetal: error: {err}", file=sys.stderr),
                                 progress=None if len(pairs) > 1 else False)
    if not rows:
        print(f"fetal: error: none of the {failed} volume(s) could be predicted; nothing written", file=sys.stderr)
        return 2
    for r in rows:
        if r["brain_cropped_by_field_of_view"]:
            print(f"fetal: warning: {r['image']}: the brain extends beyond the field of view; the prediction may be low",
                  file=sys.stderr)
    emit(table_text(rows, COLUMNS, args.format, warnings_of(rows)), args.output)
    if args.output is not None:
        print(f"{len(rows)} volume(s) written to {args.output}; {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def _settings(args: argparse.Namespace) -> dict | None:
    """The profile's fetal_mri_ga knobs with the command's ``--set`` overrides (None: a bad override, already reported)."""
    from fetal_lib.bench import profile_overrides  # deferred: loaded when the command runs
    from fetal_lib.ga_mri import pipeline  # deferred: imports pandas

    overrides = profile_overrides(CHAPTER, args.settings)
    return None if overrides is None else pipeline.profile_settings(args.profile, overrides)


def handle_train(args: argparse.Namespace) -> int:
    from fetal_lib.ga_mri import deploy  # deferred: imports pandas
    from fetal_lib.ga_mri.predictor import default_model_path  # deferred: loaded when the command runs

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        summary = deploy.train_deployable(settings, args.profile, args.data_dir, args.data_source, args.seed,
                                          args.model or default_model_path(), log=lambda line: print(line, file=sys.stderr, flush=True))
    except ValueError as exc:  # a knob the recipe cannot use (unknown dataset, too few volumes for the folds ...)
        print(f"fetal: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


def handle_prepare_volumes(args: argparse.Namespace) -> int:
    from fetal_lib.ga_mri import pipeline, volume_file  # deferred: imports pandas

    settings = _settings(args)
    if settings is None:
        return 2
    try:
        prep = pipeline.preprocess_config(settings)
        source, volumes, notes = pipeline.load_volumes(settings["dataset"], args.data_dir, args.data_source, prep,
                                                        progress=sys.stderr.isatty())
    except ValueError as exc:  # an unknown dataset, a grid the knobs cannot make, no volume with an image
        print(f"fetal: error: {exc}", file=sys.stderr)
        return 2
    path = volume_file.save(args.output, source, volumes, notes, prep)
    print(f"{len(volumes)} volumes ({source.describe()}) on a {prep.size}-pixel grid, {len(prep.offsets_mm)} offsets "
          f"-> {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0
