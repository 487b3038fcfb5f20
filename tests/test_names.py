"""Comma-separated name lists from profiles and --set."""

import pytest

from fetal_lib.names import checked_names, split_names


def test_split_names_accepts_text_and_lists_and_drops_blanks():
    assert split_names(" a, b ,,c ") == ["a", "b", "c"] and split_names(["a", " b", ""]) == ["a", "b"] and split_names("") == []


def test_checked_names_names_the_unknown_one_and_the_known_ones():
    assert checked_names("x,y", ("x", "y", "z"), "thing") == ["x", "y"]
    with pytest.raises(ValueError, match=r"unknown thing 'w'; known: x, y \(or none\)"):
        checked_names("x,w", ("x", "y"), "thing", " (or none)")
