"""Benchmarks behind ``fetal bench NAME``: the registry of targets and what they share.

Each target lives beside its pipeline as ``fetal_lib/<pipeline>/bench.py`` with
``add_arguments(parser)`` and ``run(args) -> int``, and reports through :func:`emit`: a JSON
document with ``--format json``, otherwise (``--format text``) one line per figure. Benchmarks print figures measured on
the machine at hand; nothing asserts a speed (timed tests flake on shared machines).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from typing import Any, Iterable
from fetal_lib.book.chapters import spec_of
from fetal_lib.config.profiles import parse_overrides

# bench name -> (module holding add_arguments(parser) and run(args), one-line summary)
TARGETS: dict[str, tuple[str, str]] = {
    "hc": ("fetal_lib.bench.hc", "HC18 U-Net: inference ms/image (with post-processing), training images/s"),
    "seg": ("fetal_lib.bench.seg_benchmark", "chapter-2 segmenters: parameters, training images/s, inference ms/image, peak memory"),
    "us": ("fetal_lib.bench.us", "chapter-3 classifiers: parameters, FLOPs, inference ms/image, training images/s"),
    "ga": ("fetal_lib.bench.ga_mri", "chapter-4 GA regressor: parameters, training samples/s, inference ms/volume, chapter training time"),
    "brain-age": ("fetal_lib.bench.brain_age", "brain-age predict: seconds per subject, peak memory"),
    "other-work": ("fetal_lib.bench.other_work", "the chapters' work other than training (image I/O, post-processing, SciPy, NumPy, a float32 forward pass): ms"),
}


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def profile_overrides(chapter_id: str, items: Iterable[str] | None) -> dict[str, Any] | None:
    """A benchmark's ``--set KEY=VALUE`` items as overrides of ``chapter_id``'s knobs, or None after
    printing the one-line error (the caller returns exit status 2)."""

    try:
        return parse_overrides(spec_of(chapter_id), list(items or []))
    except ValueError as exc:
        print(f"fetal: error: --set: {exc}", file=sys.stderr)
        return None


FORMAT_HELP = "text (default: one line per figure) or json"


def add_keras_training_options(parser: argparse.ArgumentParser, train_images: int | None, train_steps: int, set_help: str) -> None:
    """A Keras chapter's training benchmark options: ``--train-images N`` (where ``train_images`` is
    given), ``--train-steps N``, ``--threads N`` and ``--set KEY=VALUE`` (``set_help`` says what it overrides)."""
    if train_images is not None:
        parser.add_argument("--train-images", type=int, default=train_images, metavar="N",
                            help=f"images in the training benchmark (default {train_images})")
    parser.add_argument("--train-steps", type=int, default=train_steps, metavar="N", help=f"timed training batches (default {train_steps})")
    parser.add_argument("--threads", type=int, default=2, metavar="N", help="CPU threads of the Keras backend (default 2)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help=set_help)


def emit(result: dict[str, Any], fmt: str, lines: Iterable[str]) -> int:
    """Print ``result`` as JSON (``fmt == "json"``), or the human-readable ``lines``; returns the exit status 0."""
    if fmt == "json":
        print(json.dumps(result, indent=2))
    else:
        for line in lines:
            print(line)
    sys.stdout.flush()
    return 0
