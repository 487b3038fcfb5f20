"""The `fetal` command: version, help everywhere, and no heavy imports on light commands."""

from __future__ import annotations

import subprocess
import sys

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
        "heavy = [m for m in ('tensorflow', 'torch', 'keras') if m in sys.modules]\n"
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
