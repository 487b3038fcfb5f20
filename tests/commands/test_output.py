"""The sub-commands' tables and messages (fetal_lib.commands.output)."""

from __future__ import annotations

import json

import pytest

from fetal_lib.commands.output import check_writable, emit, format_value, table_text, warnings_of
from fetal_lib.errors import FetalInputError

ROWS = [{"filename": "a.png", "hc_mm": 171.25000001, "n": 3, "warnings": ["grey"]},
        {"filename": "b.png", "hc_mm": float("nan"), "n": 4}]


def test_a_float_cell_keeps_six_decimals_without_trailing_zeros() -> None:
    assert [format_value(v) for v in (1.5, 2.0, 1 / 3, float("inf"), 7, "x")] == ["1.5", "2", "0.333333", "nan", "7", "x"]


def test_the_csv_table_has_the_columns_only_and_the_json_one_adds_the_extras() -> None:
    assert table_text(ROWS, ("filename", "hc_mm"), "csv") == "filename,hc_mm\na.png,171.25\nb.png,nan\n"
    items = json.loads(table_text(ROWS, ["filename", "n"], "json", warnings_of(ROWS)))
    assert items == [{"filename": "a.png", "n": 3, "warnings": ["grey"]}, {"filename": "b.png", "n": 4, "warnings": []}]


def test_emit_writes_stdout_or_the_file(tmp_path, capsys) -> None:
    emit("x\n", None)
    assert capsys.readouterr().out == "x\n"
    emit("y\n", tmp_path / "sub" / "t.csv")
    assert (tmp_path / "sub" / "t.csv").read_text() == "y\n"


def test_check_writable_refuses_a_folder(tmp_path) -> None:
    check_writable(tmp_path / "new" / "out.csv")
    assert (tmp_path / "new").is_dir()
    with pytest.raises(FetalInputError, match="is a folder"):
        check_writable(tmp_path)
