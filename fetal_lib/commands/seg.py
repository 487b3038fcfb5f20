"""``fetal seg``: chapter 2's head-segmentation networks (HC18) outside the book: train one, evaluate it.

    fetal seg train --arch NAME [--profile cpu] [--data-dir DIR] [--data-source real] [--seed N]
                    [--set KEY=VALUE ...] [--model PATH] [--continue-from PATH]
    fetal seg evaluate --arch NAME [--model PATH] [--split test|val] [--profile cpu] [--data-dir DIR]
                       [--data-source real] [--seed N] [--format text|json]

``train`` does what the chapter does for one architecture (:func:`fetal_lib.seg_benchmark.pipeline.run_arch`:
chapter 1's subject-level split, the profile's ``seg_benchmark:`` knobs, the best validation epoch,
the threshold chosen on validation, the test split scored once), stops at the sanity floor
(exit 1, nothing written), and saves the network with its model card to
``build/models/seg_benchmark/<arch>.pt``, where ``fetal hc measure --model`` reads it. With
``--continue-from`` it trains a saved network on for ``epochs`` more epochs (a fresh cosine
schedule), as the chapter continues its validation winner. ``evaluate`` scores a saved network on
the test split, or on the validation split (``--split val``), where decisions are taken. PyTorch is
imported only when a sub-command runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

from fetal_lib.commands.output import check_writable, log
from fetal_lib.config.options import (
    add_actions, add_chapter_profile, add_data_dir, add_data_source, add_device, add_format, add_profile, add_seed,
    add_settings, checked_device,
)
from fetal_lib.errors import FetalInputError
from fetal_lib.seg_benchmark.options import NOT_SETTABLE, check_archs, registered_archs, settings_from_args  # noqa: F401

CHAPTER = "seg_benchmark"
ARCH_HELP = "architecture (registry name), e.g. attention_unet or unext"
# Knobs --set cannot change: a mapping (edit the profile) or one that --arch chooses.


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = add_actions(subparsers, "seg", dest="seg_command",
                      help="chapter 2's HC18 segmentation networks: train one, evaluate it",
                      description="Chapter 2's HC18 head-segmentation benchmark outside the book: train one "
                      "architecture as the chapter does and save it for `fetal hc measure --model`, or score "
                      "a saved one on the test split. Speed figures: `fetal bench seg`.")

    t = sub.add_parser("train", help="train one architecture as chapter 2 does; save it with its model card",
                       description="Train one architecture on the HC18 training images (chapter 1's subject-level split), keep "
                       "the best validation epoch, choose the threshold on the validation split, score the test split, "
                       "and save the network with its model card (build/models/seg_benchmark/<arch>.pt by default). "
                       "A network below the sanity floor on validation is not saved (exit status 1). Prints a JSON summary.")
    t.add_argument("--arch", required=True, metavar="NAME", help=ARCH_HELP + " (required)")
    add_chapter_profile(t, CHAPTER)
    add_data_dir(t)
    add_data_source(t, "HC18")
    add_seed(t, "seed of the split and the training (default 0, as the chapter)")
    add_settings(t, "override a seg_benchmark knob of the profile, e.g. --set epochs=4 (repeatable; not arch_options)")
    t.add_argument("--model", type=Path, default=None, metavar="PATH",
                   help="where to save, a .pt file (default: build/models/seg_benchmark/<arch>.pt)")
    t.add_argument("--continue-from", type=Path, default=None, metavar="PATH", dest="continue_from",
                   help="a saved network of this architecture (a .pt file with its card) to train on for the profile's "
                        "epochs (--set epochs=N) on a fresh cosine schedule, as the chapter continues its winner")
    add_device(t, "the profile's device knob (auto)")
    t.set_defaults(func=handle_train)

    e = sub.add_parser("evaluate", help="score a saved network on the test split (Dice, IoU, mAP, HC error in mm)",
                       description="Load a network saved by `fetal seg train` (or the chapter) and score it on the test split "
                       "(or, with --split val, the validation split) of chapter 1's subject-level split with the threshold and test-time flips of its model card: "
                       "Dice, IoU, recall, precision, mAP, HD95, and the HC error in mm (mean, SD, median, "
                       "subject-bootstrap 95 % CI of the mean).")
    e.add_argument("--arch", required=True, metavar="NAME", help=ARCH_HELP + "; must be the one the model card names")
    e.add_argument("--model", type=Path, default=None, metavar="PATH",
                   help="the saved network, a .pt file with its card beside it (default: build/models/seg_benchmark/<arch>.pt)")
    e.add_argument("--split", choices=("test", "val"), default="test",
                   help="test (default) or val: the validation split, on which decisions are taken")
    add_profile(e, "profile whose max_images sets the data the split is made of (default cpu)")
    add_data_dir(e)
    add_data_source(e, "HC18")
    e.add_argument("--seed", type=int, default=None, metavar="N",
                   help="seed of the split (default: the one the model card records, else 0)")
    add_format(e, ("text", "json"), "text", "text (default: a few lines) or json")
    add_device(e)
    e.set_defaults(func=handle_evaluate)


# ----------------------------------------------------------------------------- shared with `fetal bench seg`


def default_model_path(arch: str) -> Path:
    """``<build_dir>/models/seg_benchmark/<arch>.pt``, where the chapter saves it too."""
    from fetal_lib.paths import build_dir  # deferred: loaded when the command runs

    return build_dir() / "models" / "seg_benchmark" / f"{arch}.pt"


def _one_arch(text: str) -> str:
    names = check_archs(text)
    if len(names) != 1:
        raise FetalInputError(None, f"--arch: give one architecture, got {', '.join(names)} (`fetal bench seg --arch` takes a list)")
    return names[0]


def _model_path(path: Path | None, arch: str) -> Path:
    path = Path(path) if path is not None else default_model_path(arch)
    if path.suffix != ".pt":
        raise FetalInputError(path, "a chapter-2 network is saved as a .pt file (its card goes beside it as <name>.card.json)")
    return path


def _clean(value):
    """JSON-ready: NaN/inf -> None, numpy scalars -> Python ones, recursively."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----------------------------------------------------------------------------- handlers


def continuation_start(path: Path, arch: str, settings: dict[str, Any]):
    """The saved network at ``path`` as a :class:`~fetal_lib.seg_benchmark.pipeline.Start` for ``arch``
    under ``settings``, and its architecture options (which the continued network keeps).

    Raises:
        FetalInputError: the file or its card is missing or foreign, or the network is of another
            architecture or input size, or its card does not say how many epochs trained it.
    """
    from fetal_lib.model_card import card_path, read_card  # deferred: loaded when the command runs
    from fetal_lib.seg_benchmark.pipeline import Start  # deferred: loaded when the command runs
    from fetal_lib.torch_segmenter import TorchSegmenter  # deferred: loaded when the command runs

    seg = TorchSegmenter.load(path, device=str(settings.get("device") or "auto"))  # refuses a missing file or a missing or foreign card, naming it
    card = read_card(path) or {}
    if seg.arch != arch:
        raise FetalInputError(card_path(path), f"the model card names architecture {seg.arch!r}, but --arch is {arch!r}; "
                                               f"a network continues as its own architecture")
    size = (int(settings["input_rows"]), int(settings["input_cols"]))
    if (seg.rows, seg.cols) != size:
        raise FetalInputError(card_path(path), f"the network reads {seg.rows}x{seg.cols} images, the profile "
                                               f"{size[0]}x{size[1]}; pass --set input_rows={seg.rows} --set input_cols={seg.cols}")
    training = card.get("training") or {}
    try:
        behind = int(training.get("initial_epochs") or 0) + int(training["epochs"])
    except (KeyError, TypeError, ValueError):
        raise FetalInputError(card_path(path), "the model card does not say how many epochs trained this network "
                                               "(training.epochs); save it with `fetal seg train` or the chapter") from None
    return Start(seg.net, behind), dict(seg.options)


def handle_train(args: argparse.Namespace) -> int:
    arch = _one_arch(args.arch)
    path = _model_path(args.model, arch)
    settings = settings_from_args(args.profile, args.settings,
                                  {"archs": "this command trains the one architecture --arch names"})
    settings = {**settings, "device": checked_device(args.device, str(settings.get("device") or "auto"))}
    start = None
    if args.continue_from is not None:
        start, options = continuation_start(Path(args.continue_from), arch, settings)
        settings = {**settings, "arch_options": {**(settings.get("arch_options") or {}), arch: options}}
    check_writable(path)  # fail now, not after the training

    from fetal_lib.hc import pipeline as hc_pipeline  # deferred: loaded when the command runs
    from fetal_lib.model_card import save_torch  # deferred: loaded when the command runs
    from fetal_lib.seg_benchmark import pipeline  # deferred: loaded when the command runs

    data = hc_pipeline.load_data(args.data_dir, args.data_source, args.seed, int(settings["max_images"]))
    log(data.source.describe())
    log("split (images): " + ", ".join(f"{k} {len(v)}" for k, v in data.parts.items()))
    log(f"device: {pipeline.device_choice(settings)}")
    log(f"precision: {pipeline.train_config(settings, arch, args.seed).precision} ({pipeline.precision_choice(settings).reason})")
    if start is not None:
        log(f"continuing {args.continue_from} ({start.epochs} epochs behind it) for {settings['epochs']} more epochs")
    run = pipeline.run_arch(data, settings, arch, args.seed, progress=sys.stderr.isatty(), log=log, initial=start)
    fit = run.trained.fit
    log(f"{arch}: {run.trained.parameters:,} parameters, {fit.seconds / 60:.1f} min, {run.trained.train_images_per_s:.1f} "
         f"training images/s, best epoch {fit.best_epoch} of {len(fit.history)}, threshold (validation) {run.hc_model.threshold:g}")
    pipeline.check_floor(run, data.source.is_phantom)  # BelowFloorError (exit 1): nothing is saved
    row = pipeline.summary_row(run, args.seed)
    card = pipeline.model_card(run, data, args.profile, settings, row, args.seed)
    saved = save_torch(run.trained.segmenter.net, path, card)
    if data.source.is_phantom:
        print("fetal: warning: trained on a phantom: this model only shows that the path runs; it cannot measure real heads",
              file=sys.stderr)
    print(json.dumps(_clean({"model": str(saved), "architecture": arch, "data": data.source.describe(), "test": row}), indent=2))
    return 0


def _split_warning(card: dict, data, seed: int) -> str | None:
    """Why the test split here may hold images the model was trained on (None if it matches the card)."""
    split = card.get("split") or {}
    here = {f"n_{k}": len(v) for k, v in data.parts.items()}
    differences = []
    if "seed" in split and int(split["seed"]) != int(seed):
        differences.append(f"seed {seed} here, {split['seed']} in training")
    recorded = {k: split[k] for k in here if k in split}
    if recorded and recorded != {k: here[k] for k in recorded}:
        differences.append("sizes " + "/".join(str(here[k]) for k in recorded) + " here, "
                           + "/".join(str(v) for v in recorded.values()) + " in training")
    card_data = card.get("data") or {}
    if "is_phantom" in card_data and bool(card_data["is_phantom"]) != bool(data.source.is_phantom):
        differences.append(f"{'phantom' if card_data['is_phantom'] else 'real'} data in training, "
                           f"{'phantom' if data.source.is_phantom else 'real'} here")
    if not differences:
        return None
    return ("this split differs from the one the model was trained with (" + "; ".join(differences)
            + "): its test images may include images the model has seen")


def evaluate_summary(df, seed: int = 0) -> dict[str, Any]:
    """The figures of one network on one split: the chapter's results columns (:func:`pipeline.test_scores`)."""
    from fetal_lib.seg_benchmark import pipeline  # deferred: loaded when the command runs

    return {"images": int(len(df)), **pipeline.test_scores(df, seed), "flagged": int(df["flagged"].sum())}


SPLIT_NAMES = {"test": "test", "val": "validation"}


def _mm(value) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else f"{float(value):.2f} mm"


def handle_evaluate(args: argparse.Namespace) -> int:
    arch = _one_arch(args.arch)
    path = _model_path(args.model, arch)
    device = checked_device(args.device)
    if not path.is_file():
        raise FetalInputError(path, f"no saved network here; train one with `fetal seg train --arch {arch}` "
                                    f"(or `fetal book --profile cpu --only seg_benchmark`), or pass --model PATH")

    from fetal_lib.hc import pipeline as hc_pipeline  # deferred: loaded when the command runs
    from fetal_lib.hc.measure import HCModel  # deferred: imports scipy
    from fetal_lib.model_card import card_path, read_card  # deferred: loaded when the command runs
    from fetal_lib.seg_benchmark import pipeline  # deferred: loaded when the command runs

    model = HCModel.load(path, device=device)  # refuses a missing or foreign card, naming it
    card = read_card(path) or {}
    saved_arch = getattr(model.model, "arch", None) or (card.get("architecture") or {}).get("name")
    if saved_arch != arch:
        raise FetalInputError(card_path(path), f"the model card names architecture {saved_arch!r}, but --arch is {arch!r}; "
                                               f"pass --arch {saved_arch}, or --model a {arch!r} model")
    settings = pipeline.profile_settings(args.profile)
    seed = args.seed if args.seed is not None else int((card.get("split") or {}).get("seed", 0))
    data = hc_pipeline.load_data(args.data_dir, args.data_source, seed, int(settings["max_images"]))
    log(data.source.describe())
    warning = _split_warning(card, data, seed)
    if warning:
        print(f"fetal: warning: {warning}", file=sys.stderr)
    df = pipeline.add_ap_column(hc_pipeline.evaluate(model, data.part(args.split), progress=sys.stderr.isatty()))
    scores = evaluate_summary(df, seed)
    result = {"model": str(path), "architecture": arch, "data": data.source.describe(), "split": args.split, "seed": seed,
              "threshold": model.threshold, "tta": list(model.tta), args.split: scores}
    if args.format == "json":
        print(json.dumps(_clean(result), indent=2))
        return 0
    print(f"{arch} ({path}) on the {SPLIT_NAMES[args.split]} split: {scores['images']} images, seed {seed}, threshold {model.threshold:g}, "
          f"test-time flips: {', '.join(model.tta) or 'none'}")
    print(f"Dice {scores['Dice']:.4f}  IoU {scores['IoU']:.4f}  recall {scores['recall']:.4f}  precision {scores['precision']:.4f}  "
          f"mAP {scores['mAP']:.4f}  HD95 {_mm(scores['HD95 (mm)'])}")
    print(f"HC |diff|: mean {_mm(scores['HC |diff| mean (mm)'])} (95 % CI {_mm(scores['HC CI low (mm)'])} to "
          f"{_mm(scores['HC CI high (mm)'])}), SD {_mm(scores['HC |diff| SD (mm)'])}, median {_mm(scores['HC |diff| median (mm)'])}")
    print(f"no head found: {scores['no head found']} of {scores['images']}; flagged fits: {scores['flagged']}")
    print(f"data: {result['data']}")
    return 0
