"""``fetal bench``: benchmarks that print figures (speed, memory), never timed tests (targets: :mod:`fetal_lib.bench`)."""

from __future__ import annotations

import argparse

from fetal_lib.bench import TARGETS
from fetal_lib.commands import _import_command

DESCRIPTION = ("Benchmarks that print speed and memory figures measured on this machine (judge a speed target here, "
               "never from a figure measured elsewhere). Targets: " + "; ".join(f"{k}: {v}" for k, (_, v) in TARGETS.items()) + ".")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks that print speed and memory figures", description=DESCRIPTION)
    parser.set_defaults(_parser=parser)
    targets = parser.add_subparsers(dest="bench_target", metavar="TARGET")
    for name, (module_name, summary) in TARGETS.items():
        module = _import_command(module_name, f"bench {name}")
        sub = targets.add_parser(name, help=summary, description=summary)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
