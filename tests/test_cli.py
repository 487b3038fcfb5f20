"""The `fetal` command: version, help everywhere, and no heavy imports on light commands."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fetal_lib import __version__
from fetal_lib.cli import build_parser, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fetal {__version__}"


def _all_parsers(parser, prefix=()):
    yield prefix, parser
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, prefix + (name,))


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    seen = []
    for path, _ in _all_parsers(build_parser()):
        with pytest.raises(SystemExit) as exit_info:
            main([*path, "--help"])
        assert exit_info.value.code == 0, path
        assert "usage: fetal" in capsys.readouterr().out
        seen.append(" ".join(path))
    assert "data verify" in seen and "book" in seen


def test_group_without_subcommand_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data"]) == 2
    assert "verify" in capsys.readouterr().out


def test_import_and_help_do_not_load_tensorflow_or_torch() -> None:
    code = (
        "import sys, contextlib, io\n"
        "import fetal_lib, fetal_lib.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: fetal_lib.cli.main(['--help'])\n"
        "    except SystemExit: pass\n"
        "heavy = [m for m in ('tensorflow', 'torch', 'keras', 'gradio') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "", f"heavy modules imported: {out.strip()}"


def test_a_command_that_fails_to_import_is_an_error_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    from fetal_lib import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "no_such_command"])
    with pytest.raises(cli.CommandImportError, match=r"'no_such_command' command could not be loaded .*ModuleNotFoundError"):
        cli.build_parser()


def test_a_bench_target_that_fails_to_import_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from fetal_lib import bench, cli

    monkeypatch.setitem(bench.TARGETS, "ghost", ("fetal_lib.ghost.bench", "nothing"))
    with pytest.raises(cli.CommandImportError, match="'bench ghost' command could not be loaded"):
        cli.build_parser()


# ----------------------------------------------------------------------------- one style for every command

# Old spellings that still parse but are hidden from --help (help=argparse.SUPPRESS): no others.
DEPRECATED_ALIASES = {("data", "fetch"): {"--dest"}, ("hc", "submission"): {"--test-dir"}, ("brain-age", "predict"): {"--image"}}
METAVAR = re.compile(r"^[A-Z]+(?:[_=][A-Z]+)*$")  # DIR, CSV, MM, S, N, KEY=VALUE, TEST_DIR


def _options():
    """(path, action) for every action of every ``fetal`` parser, sub-command actions excluded."""
    for path, p in _all_parsers(build_parser()):
        for action in p._actions:
            if not isinstance(action, argparse._SubParsersAction):
                yield path, action


def test_every_option_has_help_and_only_the_listed_aliases_are_hidden() -> None:
    for path, action in _options():
        name = "/".join(action.option_strings) or action.dest
        if action.help == argparse.SUPPRESS:
            assert set(action.option_strings) <= DEPRECATED_ALIASES.get(path, set()), f"fetal {' '.join(path)}: {name} is hidden"
        else:
            assert action.help and action.help.strip(), f"fetal {' '.join(path)}: {name} has no help"


def test_every_subcommand_has_help_and_a_description() -> None:
    for path, parser in _all_parsers(build_parser()):
        assert parser.description, f"fetal {' '.join(path)} has no description"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert action.metavar and METAVAR.match(action.metavar), path
                for choice in action._choices_actions:
                    assert choice.help, f"fetal {' '.join(path)} {choice.dest} has no help"


def test_one_metavar_style() -> None:
    for path, action in _options():
        if action.nargs == 0 or action.choices is not None or action.help == argparse.SUPPRESS:
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.metavar is not None and METAVAR.match(action.metavar), f"fetal {' '.join(path)}: {name} metavar {action.metavar!r}"


def test_no_json_or_dest_flag_and_format_everywhere() -> None:
    formats = {}
    for path, action in _options():
        assert "--json" not in action.option_strings, f"fetal {' '.join(path)}: --json (use --format json)"
        if "--dest" in action.option_strings:
            assert action.help == argparse.SUPPRESS and action.dest == "data_dir", path
        if action.dest == "data_dir":
            assert action.option_strings in (["--data-dir"], ["--dest"]), path
            assert action.help == argparse.SUPPRESS or action.metavar == "DIR", path
        if action.option_strings == ["--format"]:
            assert "json" in action.choices and set(action.choices) <= {"text", "csv", "json"}, path
            assert action.default in action.choices, path
            formats[" ".join(path)] = tuple(action.choices)
    # every command that prints a table or a report
    assert set(formats) >= {"doctor", "data verify", "hc measure", "hc cv", "brain-age predict", "bench hc", "bench brain-age",
                            "seg evaluate", "bench seg", "us classify", "bench us"}
    assert formats["us classify"] == ("csv", "json")
    assert formats["hc measure"] == ("csv", "json") and formats["hc cv"] == ("json", "csv")


def test_profile_choices_come_from_the_registry_and_data_source_defaults_to_real() -> None:
    from fetal_lib.config.profiles import PROFILES
    from fetal_lib.data.sources import SOURCES

    profiles, sources = [], {}
    for path, action in _options():
        if action.dest == "profile":
            assert tuple(action.choices) == PROFILES and action.default in PROFILES, path
            profiles.append(" ".join(path))
        if action.dest == "data_source":
            assert tuple(action.choices) == SOURCES, path
            sources[" ".join(path)] = (action.default, action.help)
    assert {"book", "doctor", "hc train", "hc cv", "brain-age train", "bench hc"} <= set(profiles)
    assert sources["bench hc"] == sources["hc train"] == sources["hc cv"] and sources["hc train"][0] == "real"
    assert sources["bench brain-age"] == sources["brain-age train"] and sources["brain-age train"][0] == "real"
    # no profile tuple typed in a command: it would drift from profiles/
    root = Path(__file__).parents[1] / "fetal_lib"
    for path in [*root.glob("commands/*.py"), *root.glob("bench/*.py"), root / "cli.py"]:
        assert '"smoke", "cpu"' not in path.read_text(), path


def test_hc_help_lists_cv_and_bench_has_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["hc", "--help"])
    assert re.search(r"^\s+cv\s+\S", capsys.readouterr().out, re.MULTILINE)
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    assert "Benchmarks that print speed and memory figures" in out


def test_help_never_shows_the_old_spellings(capsys: pytest.CaptureFixture[str]) -> None:
    for path, _ in _all_parsers(build_parser()):
        with pytest.raises(SystemExit):
            main([*path, "--help"])
        out = capsys.readouterr().out
        for old in ("--json", "--dest", "--test-dir", "--image "):
            assert old not in out, f"fetal {' '.join(path)} --help shows {old}"
