"""Chapter registry: discovery of existing notebooks and --only parsing."""

from __future__ import annotations

import pytest

from fetal_lib.book.chapters import REGISTRY, discover, parse_only, select
from fetal_lib.errors import FetalInputError


def _notebooks(tmp_path, *names):
    for name in names:
        (tmp_path / name).write_text("# %%\n")
    return tmp_path


def test_discover_skips_absent_chapters_and_keeps_book_order(tmp_path):
    nb = _notebooks(tmp_path, "05_brain_age_mri.py", "00_data.py", "README.md", "99_other.py")
    found = discover(nb)
    assert [(c.id, c.stem) for c in found] == [("data", "00_data"), ("brain_age", "05_brain_age_mri")]
    assert found[0].executed_name == "00_data.ipynb"


def test_parse_only_repeatable_and_comma_lists():
    assert parse_only(None) is None and parse_only([]) is None
    assert parse_only(["data,hc18", "brain_age", "data"]) == ["data", "hc18", "brain_age"]
    with pytest.raises(FetalInputError, match="unknown chapter 'hc19'"):
        parse_only(["hc19"])


def test_select_only_and_missing_notebook_is_an_error(tmp_path):
    nb = _notebooks(tmp_path, "00_data.py", "01_hc18_unet.py")
    assert [c.id for c in select(["hc18"], nb)] == ["hc18"]
    assert [c.id for c in select(None, nb)] == ["data", "hc18"]
    with pytest.raises(FetalInputError, match="brain_age"):
        select(["brain_age"], nb)


def test_registry_numbers_are_unique():
    numbers = [n for n, _ in REGISTRY.values()]
    assert len(set(numbers)) == len(numbers)
