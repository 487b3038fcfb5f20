"""``fetal bench``: benchmarks that print figures (speed, memory), never timed tests.

Each target lives beside its pipeline as ``fetal_lib/<pipeline>/bench.py`` with
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib

# bench name -> module holding add_arguments(parser) and run(args)
TARGETS = {
    "hc": ("fetal_lib.hc.bench", "HC18 U-Net: inference ms/image (with post-processing), training images/s"),
    "brain-age": ("fetal_lib.brain_age.bench", "brain-age predict: seconds per subject, peak memory"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks that print speed and memory figures")
    parser.set_defaults(_parser=parser)
    targets = parser.add_subparsers(dest="bench_target", metavar="TARGET")
    for name, (module_name, summary) in TARGETS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # pipeline not written yet
            raise
        sub = targets.add_parser(name, help=summary, description=summary)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
