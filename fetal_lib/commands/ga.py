"""``fetal ga``: gestational age from fetal brain MRI (chapter 4's model).

    fetal ga predict VOLUME... [--mask MASK ...] [--model PATH] [--format csv|json] [-o FILE]

One row per volume: ``image, mask, ga_weeks_days, ga_days, ga_weeks, spread_days,
brain_volume_ml, brain_cropped_by_field_of_view``. ``--mask`` gives the brain masks, one per volume
in the same order (without masks the brain is found by an Otsu threshold, which suits a
skull-stripped volume only). A bad volume (missing, corrupt, not 3-D, a mask of another geometry) is
one line on stderr naming the file and the problem; the others are still predicted and the exit
status is 1. No volume predicted, or no model: exit status 2. ``-o`` writes the table atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fetal_lib.commands.options import add_format
from fetal_lib.commands.us import _emit, _error, _table
from fetal_lib.errors import FetalInputError

COLUMNS = ["image", "mask", "ga_weeks_days", "ga_days", "ga_weeks", "spread_days", "brain_volume_ml", "brain_cropped_by_field_of_view"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ga", help="gestational age from fetal brain MRI (chapter 4): predict",
                                   description="Gestational age from fetal brain MRI (chapter 4): the multi-planar VGG16 with "
                                   "attention, trained by the chapter, applied to your T2-weighted volumes.")
    parser.set_defaults(_parser=parser)
    sub = parser.add_subparsers(dest="ga_command", metavar="ACTION")
    p = sub.add_parser("predict", help="predict GA (weeks+days) of NIfTI volumes",
                       description="Predict the gestational age of each volume: the volume is reoriented, scaled inside its "
                       "brain mask and resampled as in chapter 4, sliced in three planes, and the predictions of the matched "
                       "slice triples are averaged (their spread is reported). Bad volumes are reported on stderr (exit "
                       "status 1) and the others still predicted.")
    p.add_argument("volumes", nargs="+", metavar="VOLUME", help="T2-weighted fetal brain volumes (.nii or .nii.gz)")
    p.add_argument("--mask", action="append", default=[], type=Path, metavar="MASK",
                   help="brain mask of each VOLUME, in the same order (repeat once per volume; default: Otsu threshold)")
    p.add_argument("--model", type=Path, default=None, metavar="PATH", help="trained model with its card (default: build/models/ga_mri.keras)")
    add_format(p, ("csv", "json"), "csv", "csv (default) or json")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the table to this file (atomically) instead of stdout")
    p.set_defaults(func=handle_predict)


def handle_predict(args: argparse.Namespace) -> int:
    from fetal_lib.ga_mri.predictor import GaPredictor

    volumes = [Path(v) for v in args.volumes]
    masks = list(args.mask)
    if masks and len(masks) != len(volumes):
        raise FetalInputError(None, f"{len(masks)} --mask for {len(volumes)} volume(s): give one mask per volume, in order, or none")
    predictor = GaPredictor.load(args.model)  # FetalInputError: exit 2
    rows, failed = [], 0
    for k, image in enumerate(volumes):
        try:
            rows.append(predictor.predict(image, masks[k] if masks else None).row())
        except FetalInputError as err:
            _error(err.path, err.problem)
            failed += 1
    if not rows:
        print(f"fetal: error: none of the {failed} volume(s) could be read; nothing predicted", file=sys.stderr)
        return 2
    for r in rows:
        if r["brain_cropped_by_field_of_view"]:
            print(f"fetal: warning: {r['image']}: the brain extends beyond the field of view; the prediction may be low",
                  file=sys.stderr)
    _emit(_table(rows, COLUMNS, args.format), args.output)
    return 1 if failed else 0
