"""Options shared by the ``fetal`` sub-commands, so they are spelled, named and explained one way.

The style every command follows (``tests/test_cli.py`` walks the parsers and checks it):

* ``--format`` chooses what is printed: ``csv|json`` for a table, ``text|json`` for a report
  meant to be read (never a ``--json`` flag);
* ``--data-dir DIR`` is the data root wherever a command reads one (never ``--dest``);
* ``--profile`` takes its choices from the profile registry (:data:`fetal_lib.config.profiles.PROFILES`);
* ``--data-source`` defaults to ``real``, as ``fetal hc train`` and ``fetal brain-age train``;
* files a command works on are positional arguments; metavars are upper-case words
  (``DIR``, ``CSV``, ``MM``, ``S``, ``N``, ``KEY=VALUE``); every option has help text.

This module is not a command (it is not listed in :data:`fetal_lib.cli.COMMAND_MODULES`) and
imports nothing heavy.
"""

from __future__ import annotations

import argparse

from fetal_lib.config.profiles import PROFILES
from fetal_lib.data.sources import SOURCES
from fetal_lib.devices import NoGpuError, resolve_device
from fetal_lib.errors import FetalInputError

DATA_DIR_HELP = "data root (default: $FETAL_DATA_DIR, else ./data)"


def add_actions(subparsers: argparse._SubParsersAction, name: str, help: str, description: str, dest: str,
                metavar: str = "ACTION") -> argparse._SubParsersAction:
    """A command made of actions (``fetal hc measure``, ``fetal hc train`` ...): its sub-parsers, under
    ``args.<dest>``; the command alone prints its own help."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(_parser=parser)
    return parser.add_subparsers(dest=dest, metavar=metavar)


def add_seed(parser: argparse.ArgumentParser, help: str, default: int | None = 0) -> argparse.Action:
    """``--seed N``; ``help`` says what it seeds."""
    return parser.add_argument("--seed", type=int, default=default, metavar="N", help=help)


def add_settings(parser: argparse.ArgumentParser, help: str) -> argparse.Action:
    """``--set KEY=VALUE`` (repeatable) into ``args.settings``: knobs of the chapter's profile to override."""
    return parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings", help=help)


def add_data_dir(parser: argparse.ArgumentParser, note: str = "") -> argparse.Action:
    """``--data-dir DIR``; ``note`` is appended to the help (e.g. "; ignored by smoke (phantoms)")."""
    return parser.add_argument("--data-dir", default=None, metavar="DIR", help=DATA_DIR_HELP + note)


def add_profile(parser: argparse.ArgumentParser, help: str) -> argparse.Action:
    """``--profile {smoke,cpu,...}`` from the profile registry, default ``cpu``."""
    return parser.add_argument("--profile", choices=PROFILES, default="cpu", help=help)


def add_chapter_profile(parser: argparse.ArgumentParser, chapter: str) -> argparse.Action:
    """``--profile`` whose ``chapter:`` section gives the command its knobs (default ``cpu``)."""
    return add_profile(parser, f"knobs from profiles/<name>.yaml {chapter}: (default cpu)")


def add_data_source(parser: argparse.ArgumentParser, dataset: str) -> argparse.Action:
    """``--data-source {auto,real,phantom}``, default ``real`` (fail if ``dataset`` is absent)."""
    return parser.add_argument("--data-source", choices=SOURCES, default="real",
                               help=f"real (default: fail if {dataset} is absent), auto (phantom if absent), phantom")


def add_format(parser: argparse.ArgumentParser, choices: tuple[str, ...], default: str | None, help: str) -> argparse.Action:
    """``--format {choices}``: what the command prints (or writes with ``-o``)."""
    return parser.add_argument("--format", choices=choices, default=default, help=help)


DEVICE_CHOICES = ("auto", "cpu", "cuda")


def add_device(parser: argparse.ArgumentParser, default_note: str = "auto") -> argparse.Action:
    """``--device {auto,cpu,cuda}`` for a PyTorch network (default None: ``default_note`` says what that means)."""
    return parser.add_argument("--device", choices=DEVICE_CHOICES, default=None,
                               help=f"where the PyTorch network runs: auto (a CUDA GPU when torch sees one, else the CPU), "
                                    f"cpu or cuda (an error without a GPU); default: {default_note}")


def checked_device(value: str | None, default: str = "auto") -> str:
    """``--device`` (or ``default`` when not given) checked on this machine before anything is read or written.

    Returns the value as given (``auto`` stays ``auto``), so it can be passed on and recorded.

    Raises:
        FetalInputError: ``cuda`` on a machine where torch sees no GPU (one line naming it).
    """

    requested = value or default
    try:
        resolve_device(requested)
    except NoGpuError as exc:
        raise FetalInputError(None, f"--device {requested}: {exc}") from None
    return requested
