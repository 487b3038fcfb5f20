"""`fetal book --only CHAPTER --set KEY=VALUE`: the one --set parser, and the record of a run that is not its profile's."""

from __future__ import annotations

import json

import pytest

from fetal_lib.config import overrides
from fetal_lib.config.profiles import chapter_knobs, parse_overrides, parse_value
from fetal_lib.book.chapters import spec_of
from fetal_lib.results import ChapterRun
from fetal_lib.cli import main


@pytest.mark.parametrize("text, reference, expected", [
    ("3", 20, 3), ("1e3", 20, 1000), ("2e-3", 0.001, 0.002), ("5", 0.5, 5.0), (".5", 0.5, 0.5),
    ("false", True, False), ("YES", False, True), ("off", True, False), ("1", False, True),
    ("hflip,vflip", "hflip", "hflip,vflip"), ("", "hflip", ""), ("'true'", "x", "true"), ("-4,0,4", "-4,0,4", "-4,0,4"),
    ("{widths: [4, 8]}", {"widths": [2]}, {"widths": [4, 8]}), ("[1, 2]", [3], [1, 2]),
    ("null", None, None), ("7", None, 7),
])
def test_values_read_as_yaml_scalars_typed_like_the_profile(text, reference, expected):
    got = parse_value("k", text, reference)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("text, reference, problem", [
    ("maybe", True, "true or false"), ("many", 3, "a number"), ("2.5", 3, "a whole number"),
    ("x", {"a": 1}, "YAML mapping"), ("{a: 1}", [1], "YAML list"),
])
def test_values_of_the_wrong_type_are_refused(text, reference, problem):
    with pytest.raises(ValueError, match=problem):
        parse_value("k", text, reference)


def test_book_overrides_take_every_knob_and_seed_and_data_source_but_not_the_paths():
    knobs = spec_of("hc18").knob_names()
    got = parse_overrides(spec_of("hc18"), ["epochs=3", "seed=4", "data_source=phantom", "augment=no"], run_parameters=True)
    assert got == {"epochs": 3, "seed": 4, "data_source": "phantom", "augment": False}
    with pytest.raises(ValueError) as info:
        parse_overrides(spec_of("hc18"), ["epochz=3"], run_parameters=True)
    message = str(info.value)
    assert "unknown hc18 setting 'epochz'" in message
    assert all(name in message for name in [*knobs, "seed", "data_source"])  # the known ones are listed
    for key, hint in [("data_dir", "--data-dir"), ("profile", "--profile"), ("results_dir", "<build>/results")]:
        with pytest.raises(ValueError, match=hint):
            parse_overrides(spec_of("hc18"), [f"{key}=x"], run_parameters=True)
    with pytest.raises(ValueError, match="data_source takes one of auto, real, phantom"):
        parse_overrides(spec_of("hc18"), ["data_source=fake"], run_parameters=True)
    with pytest.raises(ValueError, match="unknown hc18 setting 'seed'"):  # the commands that train take knobs only
        parse_overrides(spec_of("hc18"), ["seed=4"])


def test_cli_refuses_bad_settings_before_running(capsys):
    assert main(["book", "--profile", "smoke", "--only", "data", "--set", "colour=red", "--no-build"]) == 2
    err = capsys.readouterr().err
    assert "unknown data setting 'colour'; known: data_source, n_samples, seed" in err
    assert main(["book", "--profile", "smoke", "--set", "epochs=3", "--no-build"]) == 2
    assert "give exactly one --only CHAPTER" in capsys.readouterr().err
    assert main(["book", "--profile", "smoke", "--only", "data,hc18", "--set", "seed=1", "--no-build"]) == 2
    assert "give exactly one --only CHAPTER" in capsys.readouterr().err
    assert main(["book", "--profile", "smoke", "--only", "hc18", "--set", "epochs", "--no-build"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_a_run_off_its_profile_is_found_recorded_and_shown_at_the_top(tmp_path, monkeypatch):
    monkeypatch.delenv(overrides.ENV_VAR, raising=False)
    settings = chapter_knobs(spec_of("data"), "smoke")
    same = ChapterRun(spec_of("data"), "smoke", "", tmp_path / "a", 0, {}, parameters=settings)
    assert same.overrides == {} and "not the profile's" not in same.banner_markdown()

    # edited by hand (papermill -p, JupyterLab): found against the profile
    edited = ChapterRun(spec_of("data"), "smoke", "", tmp_path / "b", 3, {}, parameters={**settings, "n_samples": settings["n_samples"] + 1})
    assert edited.overrides == {"n_samples": settings["n_samples"] + 1, "seed": 3}
    # passed by `fetal book --set` through the kernel's environment
    monkeypatch.setenv(overrides.ENV_VAR, json.dumps({"data": {"data_source": "real"}, "hc18": {"epochs": 1}}))
    run = ChapterRun(spec_of("data"), "smoke", "", tmp_path / "c", 0, {}, parameters=settings)
    assert run.overrides == {"data_source": "real"}
    assert "**not the profile's**: `data_source = 'real'` (set on top of profile `smoke`)" in run.banner_markdown()
    run.finish({"x": 1})
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["provenance"]["overrides"] == {"data_source": "real"}


def test_detection_never_fails_a_chapter(monkeypatch):
    monkeypatch.setenv(overrides.ENV_VAR, "{not json")
    assert overrides.detect("data", "no_such_profile", {"n_samples": 1}, 5) == {}
    assert overrides.detect("hc18_cv", "smoke", {"epochs": 1}, 5) == {}  # not a book chapter
    assert overrides.environment("data", {}) == {}


def test_the_readme_shows_one_valid_set_example_per_chapter():
    import shlex

    from fetal_lib.book.chapters import REGISTRY
    from fetal_lib.cli import build_parser
    from fetal_lib.commands.book import parse_settings
    from fetal_lib.paths import REPO_ROOT

    lines = [ln for ln in (REPO_ROOT / "docs" / "reproduce.md").read_text().splitlines() if ln.startswith("fetal book ") and "--set" in ln and "[" not in ln]
    chapters = []
    for line in lines:
        args = build_parser().parse_args(shlex.split(line)[1:])
        assert parse_settings(args.only, args.settings), line
        chapters += args.only
    assert sorted(chapters) == sorted(REGISTRY)
