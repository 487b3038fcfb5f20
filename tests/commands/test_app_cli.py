"""`fetal app`: options, help, and bad options as one line with exit status 2 (the server itself is
tested in tests/app/)."""

from __future__ import annotations

import pytest

from fetal_lib.cli import main


def test_help(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["app", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--host HOST", "--port PORT", "--models-dir DIR", "--max-upload-mb MB", "127.0.0.1", "7860"):
        assert option in out


@pytest.mark.parametrize("argv, words", [(["--port", "0"], "--port must be 1-65535"),
                                         (["--max-upload-mb", "-1"], "--max-upload-mb must be a positive")])
def test_bad_options(argv, words, capsys, tmp_path, monkeypatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["app", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fetal: error: ") and words in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # refused before the app made its temporary folder
