"""The ``fetal`` command.

Each sub-command lives in ``fetal_lib/commands/<name>.py`` and exposes
``register(subparsers)``; the handler it sets with ``set_defaults(func=...)`` takes the
parsed arguments and returns an exit status. Heavy libraries (TensorFlow, PyTorch) are
imported inside handlers only, so ``fetal --help`` and ``fetal data verify`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from fetal_lib import __version__
from fetal_lib.commands import CommandImportError, _import_command  # noqa: F401 (CommandImportError: what main reports)
from fetal_lib.errors import FetalInputError
from fetal_lib.training.floor import BelowFloorError

# Module names under fetal_lib.commands, in the order they appear in --help.
COMMAND_MODULES = ["doctor", "data", "book", "lab", "hc", "seg", "us", "ga", "brain_age", "bench", "app"]
# commands that run Keras (or start kernels that do): the Keras backend is chosen before they import it
KERAS_COMMANDS = {"doctor", "book", "lab", "hc", "us", "ga", "bench", "app"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fetal",
        description="Fetal and brain imaging compendium: data, chapters, measurements.",
    )
    parser.add_argument("--version", action="version", version=f"fetal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = _import_command(f"fetal_lib.commands.{name}", name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # `fetal` or `fetal data` alone: show the help of the deepest parser reached.
        (getattr(args, "_parser", None) or parser).print_help()
        return 2
    try:
        if args.command in KERAS_COMMANDS:
            from fetal_lib.training import keras_backend  # deferred: loaded when the command runs
            from fetal_lib.training.chapter_backend import AUTO_MARK, user_choice  # deferred: loaded when the command runs

            chosen_by_user = user_choice(os.environ)
            try:
                keras_backend.apply_choice()  # KERAS_BACKEND, else auto (torch where only torch sees a GPU)
            except ValueError as err:
                raise FetalInputError(None, str(err)) from None
            if not chosen_by_user:
                os.environ[AUTO_MARK] = os.environ[keras_backend.ENV]  # a chapter with a rule of its own (chapter 1) may choose again
        return int(func(args) or 0)
    except FetalInputError as err:
        print(f"fetal: error: {err}", file=sys.stderr)
        return 2
    except BelowFloorError as err:
        print(f"fetal: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fetal: interrupted; no partial result was written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
