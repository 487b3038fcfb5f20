"""``fetal bench``: benchmarks that print figures (speed, memory), never timed tests (targets: :mod:`fetal_lib.bench`)."""

from __future__ import annotations

import argparse
import importlib

def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks that print speed and memory figures")
    parser.set_defaults(_parser=parser)
    from fetal_lib.bench import TARGETS

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
