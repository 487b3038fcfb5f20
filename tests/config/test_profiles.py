"""Profiles: the committed YAML files and the parameter merge order."""

from __future__ import annotations

import pytest

from fetal_lib.book.chapters import REGISTRY
from fetal_lib.config.profiles import PROFILES, chapter_parameters, load_profile, profile_seed
from fetal_lib.book.chapters import spec_of
from fetal_lib.paths import PROFILE_DIR
from fetal_lib.errors import FetalInputError


@pytest.mark.parametrize("name", PROFILES)
def test_committed_profiles_parse_and_have_known_sections(name):
    doc = load_profile(name)
    assert set(doc) <= {"common", *REGISTRY}, f"unknown sections in profiles/{name}.yaml"


def test_smoke_runs_on_phantoms_and_cpu_on_real_data():
    assert chapter_parameters("smoke", "data", "/r")["data_source"] == "phantom"
    assert chapter_parameters("cpu", "data", "/r")["data_source"] == "auto"


def test_merge_order_common_then_chapter_then_pipeline(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "common: {seed: 3, epochs: 1, profile: wrong}\nhc18: {epochs: 5}\ndata: {n_samples: 2}\n"
    )
    got = chapter_parameters("p", "hc18", tmp_path / "res", data_dir=str(tmp_path), profile_dir=tmp_path)
    assert got == {
        "data_source": "auto", "seed": 3, "epochs": 5, "profile": "p",
        "data_dir": str(tmp_path.resolve()), "results_dir": str(tmp_path / "res"),
    }
    assert chapter_parameters("p", "brain_age", "r", profile_dir=tmp_path)["data_dir"] == ""


def test_profile_seed_is_the_seed_chapter_parameters_resolves(tmp_path):
    (tmp_path / "p.yaml").write_text("common: {seed: 3}\nhc18: {seed: 7}\n")
    (tmp_path / "q.yaml").write_text("hc18: {epochs: 5}\n")
    for profile, chapter, seed in (("p", "hc18", 7), ("p", "seg_benchmark", 3), ("q", "hc18", 0)):
        assert profile_seed(profile, chapter, tmp_path) == seed
        assert chapter_parameters(profile, chapter, "r", profile_dir=tmp_path)["seed"] == seed


def test_bad_profiles_name_the_file(tmp_path):
    with pytest.raises(FetalInputError, match="no such profile"):
        load_profile("nope", tmp_path)
    (tmp_path / "bad.yaml").write_text("common: [1, 2\n")
    with pytest.raises(FetalInputError, match="bad.yaml: invalid YAML"):
        load_profile("bad", tmp_path)
    (tmp_path / "list.yaml").write_text("hc18: [1, 2]\n")
    with pytest.raises(FetalInputError, match="section 'hc18' must be a mapping"):
        load_profile("list", tmp_path)


@pytest.mark.parametrize("name", PROFILES)
def test_budgets_are_epochs_no_wall_time_cap_is_on(name):
    """A wall-clock budget made a slower machine train a worse model: every cap is off, and the
    chapters' defaults (their parameters cells) leave it off too."""
    from fetal_lib.book.chapters import discover
    from fetal_lib.book.execute import parameter_defaults, read_source

    doc = load_profile(name)
    for section, knobs in doc.items():
        for key, value in (knobs or {}).items():
            if key.endswith("time_budget_s"):
                assert not value, f"profiles/{name}.yaml {section}.{key} = {value}: budgets are epochs"
    for chapter in discover():
        for key, value in parameter_defaults(read_source(chapter.source)).items():
            if key.endswith("time_budget_s"):
                assert not value, f"{chapter.source.name}: {key} = {value} in its parameters cell"


@pytest.mark.parametrize("name", PROFILES)
def test_precision_is_auto_wherever_a_profile_sets_it(name):
    doc = load_profile(name)
    for section, knobs in doc.items():
        for key, value in (knobs or {}).items():
            if key.endswith("precision"):
                assert value == "auto", f"profiles/{name}.yaml {section}.{key} = {value}"
    for section in ("hc18", "brain_age"):
        if name != "smoke":  # smoke takes the chapters' defaults, which are auto as well
            assert any(k.endswith("precision") for k in doc.get(section) or {}), f"profiles/{name}.yaml {section}: no precision"


def test_knob_values_live_only_in_the_profiles():
    """One source for every knob's value: the chapters' parameters cells assign None to each
    knob, and every profile sets every knob of every chapter it has a section for."""
    from fetal_lib.book.chapters import discover
    from fetal_lib.book.execute import parameter_defaults, read_source
    from fetal_lib.config.profiles import RUN_PARAMETERS, chapter_knobs
    from fetal_lib.book.chapters import spec_of

    for chapter in discover():
        cell = parameter_defaults(read_source(chapter.source))
        knobs = spec_of(chapter.id).knob_names()
        assert knobs, chapter.source.name
        valued = {k: v for k, v in cell.items() if k not in RUN_PARAMETERS and v is not None}
        assert not valued, f"{chapter.source.name}: knobs with a value in the parameters cell: {valued}"
        for name in PROFILES:
            settings = chapter_knobs(spec_of(chapter.id), name)
            assert list(settings) == knobs


def test_a_profile_that_misses_a_knob_is_named(tmp_path):
    import shutil

    from fetal_lib.config.profiles import chapter_knobs
    from fetal_lib.book.chapters import spec_of

    text = (PROFILE_DIR / "smoke.yaml").read_text().replace("  jit_compile: true\n", "", 1)
    (tmp_path / "smoke.yaml").write_text(text)
    with pytest.raises(FetalInputError, match="section hc18: knob 'jit_compile' is not set"):
        chapter_knobs(spec_of("hc18"), "smoke", profile_dir=tmp_path)
    shutil.copy(PROFILE_DIR / "smoke.yaml", tmp_path / "smoke.yaml")
    assert chapter_knobs(spec_of("hc18"), "smoke", {"epochs": 3, "filters": None}, profile_dir=tmp_path)["epochs"] == 3
    with pytest.raises(ValueError, match="unknown hc18 setting 'colour'"):
        chapter_knobs(spec_of("hc18"), "smoke", {"colour": "red"}, profile_dir=tmp_path)


def test_a_profile_with_several_problems_names_the_first_and_counts_the_rest(tmp_path):
    from fetal_lib.config.profiles import chapter_knobs, profile_problems

    text = (PROFILE_DIR / "smoke.yaml").read_text()
    section = text.index("\nhc18:")
    text = text[:section] + text[section:].replace("  jit_compile: true\n", "  jit_compile: 1\n  colour: red\n", 1)
    (tmp_path / "smoke.yaml").write_text(text)
    problems = profile_problems(spec_of("hc18"), "smoke", tmp_path)
    assert problems == [
        f"profiles/smoke.yaml: section hc18: unknown knob 'colour' (declared: {', '.join(spec_of('hc18').knob_names())})",
        "profiles/smoke.yaml: section hc18: knob 'jit_compile' takes bool, got 1",
    ]
    with pytest.raises(FetalInputError, match=r"section hc18: unknown knob 'colour' .* \(and 1 more\)"):
        chapter_knobs(spec_of("hc18"), "smoke", profile_dir=tmp_path)
    assert profile_problems(spec_of("brain_age"), "smoke", tmp_path) == []  # other chapters' sections untouched
