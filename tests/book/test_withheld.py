"""Withheld-data evaluation records: written with provenance, read back, bad ones named."""

from __future__ import annotations

import json
import re

import pytest

from fetal_lib.book.withheld import check_withheld, load_withheld, problems, write_withheld
from fetal_lib.errors import FetalInputError


def _write(root, name="hc18_hidden", **kw):
    args = dict(description="HC18 hidden test set", n=335, n_unit="images",
                metrics=[{"name": "HC |diff| mean", "value": 2.25, "unit": "mm", "ci95": (2.0, 2.5)}],
                command="fetal hc submission /d/test --pixel-sizes p.csv -o s.csv", chapter="hc18")
    args.update(kw)
    return write_withheld(root, name, **args)


def test_a_record_is_written_with_its_provenance_and_read_back(tmp_path):
    path = _write(tmp_path, model="build/models/hc18_unet.keras", data="the organisers' scores")
    assert path == tmp_path / "withheld" / "hc18_hidden.json"
    doc = json.loads(path.read_text())
    prov = doc["provenance"]
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", prov["git"]["sha"])
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", prov["date_utc"])
    assert prov["command"].startswith("fetal hc submission") and prov["on_phantom"] is False
    assert doc["metrics"] == [{"name": "HC |diff| mean", "value": 2.25, "unit": "mm", "ci95": [2.0, 2.5]}]
    [entry] = load_withheld(tmp_path)
    assert entry.problem is None and entry.doc == doc


def test_an_invalid_record_is_refused_before_writing_naming_the_file(tmp_path):
    with pytest.raises(FetalInputError, match=r"withheld/x\.json: .*'n' must be a positive integer"):
        _write(tmp_path, name="x", n=0)
    with pytest.raises(FetalInputError, match="finite 'value'"):
        _write(tmp_path, name="y", metrics=[{"name": "MAE", "value": float("nan")}])
    with pytest.raises(FetalInputError, match="'name' must be"):
        _write(tmp_path, name="../escape")
    assert not (tmp_path / "withheld").exists() or not list((tmp_path / "withheld").glob("*.json"))


def test_problems_name_each_missing_field():
    assert problems([]) == ["not a JSON object"]
    found = problems({"schema": 1, "name": "a", "description": "d", "n": 3, "metrics": [], "provenance": {}}, "b")
    assert "'name' is 'a' but the file is b.json" in found
    assert "'metrics' must be a non-empty list" in found
    assert {"provenance has no 'command'", "provenance has no 'date_utc'", "provenance has no 'git' commit",
            "provenance.on_phantom must be true or false"} <= set(found)
    with pytest.raises(FetalInputError, match="f.json: not a withheld-evaluation record"):
        check_withheld({}, "f.json")


def test_loading_lists_bad_files_with_their_problem_and_ignores_nothing(tmp_path):
    assert load_withheld(tmp_path) == []
    _write(tmp_path)
    (tmp_path / "withheld" / "broken.json").write_text("{oops")
    (tmp_path / "withheld" / "empty.json").write_text("{}")
    entries = {e.path.name: e for e in load_withheld(tmp_path)}
    assert sorted(entries) == ["broken.json", "empty.json", "hc18_hidden.json"]
    assert "unreadable" in entries["broken.json"].problem and entries["broken.json"].doc is None
    assert "schema" in entries["empty.json"].problem
    assert entries["hc18_hidden.json"].doc is not None
