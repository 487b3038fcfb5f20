"""Metric paths: keys, record filters, references, and CIs in either form."""

from __future__ import annotations

import pytest

from fetal_lib.book.metric_path import MetricPathEmpty, MetricPathError, interval, keys, number, parse, references, resolve

METRICS = {
    "test": {"hc_abs_diff_mean_mm": 2.5, "ci": [2.1, 2.9]},
    "deployed": {"planes": "xception"},
    "best": "b",
    "scores": [
        {"task": "planes", "model": "plain_cnn", "accuracy": 0.7},
        {"task": "planes", "model": "xception", "accuracy": 0.9},
        {"task": "anomaly", "model": "xception", "accuracy": 0.8},
    ],
    "results": [{"arch": "a", "HC |diff| mean (mm)": 3.0}, {"arch": "b", "HC |diff| mean (mm)": 2.0},
                {"arch": "b", "HC |diff| mean (mm)": 9.0, "dup": True}],
    "flags": [{"seen": True, "n": 1}],
}


def test_nested_keys_and_filtered_records_resolve():
    assert resolve(METRICS, "test.hc_abs_diff_mean_mm") == 2.5
    assert resolve(METRICS, "scores[task=anomaly, model=xception].accuracy") == 0.8
    assert resolve(METRICS, "scores[task=planes,model=@deployed.planes].accuracy") == 0.9
    assert resolve(METRICS, "flags[seen=True].n") == 1  # compared as text


@pytest.mark.parametrize("path,fragment", [
    ("test.nope", "no 'test.nope'"),
    ("scores[task=brain].accuracy", "0 records"),
    ("results[arch=b].HC |diff| mean (mm)", "2 records"),
    ("best[x=1]", "not a list"),
    ("scores[task=planes, model=@deployed.missing].accuracy", "no 'deployed.missing'"),
])
def test_a_path_that_names_nothing_says_which_part(path, fragment):
    with pytest.raises(MetricPathError, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        resolve(METRICS, path)


def test_a_null_section_on_the_way_is_empty_not_missing():
    metrics = {"vs_chapter1": None, "leak": None}
    with pytest.raises(MetricPathEmpty, match="'vs_chapter1' is empty"):
        resolve(metrics, "vs_chapter1.ci")
    with pytest.raises(MetricPathEmpty, match="'leak' is empty"):
        resolve(metrics, "leak[split=x].MAE")
    assert resolve(metrics, "vs_chapter1") is None  # the null itself is a value


@pytest.mark.parametrize("bad", ["a[b", "a]b", "a[b]c", "a[b=]", "a[=c]", "a..b"])
def test_malformed_paths_are_refused(bad):
    with pytest.raises(MetricPathError):
        parse(bad)


def test_keys_and_references_list_every_name_a_path_reads():
    path = "scores[task=planes, model=@deployed.planes].accuracy_ci"
    assert keys(path) == ["scores", "task", "model", "deployed", "planes", "accuracy_ci"]
    assert references(path) == ["deployed.planes"]
    assert keys("a.b c (mm)") == ["a", "b c (mm)"]


def test_intervals_from_lists_and_text_with_negative_ends():
    assert interval([2.1, 2.9]) == (2.1, 2.9)
    assert interval("2.39-5.30") == (2.39, 5.30)
    assert interval("-0.194-0.002") == (-0.194, 0.002)
    assert interval("-0.671--0.000") == (-0.671, -0.0)
    assert interval("") is None and interval(None) is None and interval([1.0, None]) is None


def test_numbers_exclude_bools_text_and_nan():
    assert number(3) == 3.0 and number("2.5") == 2.5
    assert number(True) is None and number("n/a") is None and number(float("nan")) is None and number(None) is None
