"""Each chapter's declaration (``fetal_lib/<chapter>/spec.py``) against the profiles, the notebooks'
parameters cells, the ``--set`` parser and the rest of the book."""

from __future__ import annotations

import ast

import pytest

from fetal_lib.book.chapters import SPECS, find_source
from fetal_lib.config.chapter_spec import ChapterSpec, Decision, Knob
from fetal_lib.config.profiles import PROFILES, RUN_PARAMETERS, parse_overrides, profile_problems
from fetal_lib.paths import MANIFEST_DIR

# A valid --set text per knob type (str knobs with choices take their first word).
_TEXT = {bool: "false", int: "3", float: "0.5", str: "word", dict: "{a: 1}", list: "[1, 2]"}
_VALUE = {bool: False, int: 3, float: 0.5, str: "word", dict: {"a": 1}, list: [1, 2]}


def _ordered_assignments(source: str) -> list[str]:
    """The names a parameters cell assigns, in order."""
    names = []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("cid", list(SPECS))
def test_every_committed_profile_matches_every_declaration(profile, cid):
    assert profile_problems(SPECS[cid], profile) == []


def _write_profile(tmp_path, section: str) -> None:
    (tmp_path / "p.yaml").write_text(f"common: {{seed: 0}}\nt:\n{section}")


SPEC = ChapterSpec("t", 9, "a test chapter", (Knob("epochs", int, "training budget", "epochs"),
                                              Knob("rate", float, "a rate"),
                                              Knob("mode", str, "a mode", "", ("a", "b"))))


def test_an_unknown_knob_is_one_line_naming_profile_chapter_and_knob(tmp_path):
    _write_profile(tmp_path, "  epochs: 3\n  rate: 1\n  mode: a\n  colour: red\n")
    problems = profile_problems(SPEC, "p", tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("profiles/p.yaml: section t: unknown knob 'colour'")


def test_a_missing_knob_is_one_line_naming_profile_chapter_and_knob(tmp_path):
    _write_profile(tmp_path, "  epochs: 3\n  mode: b\n")
    assert profile_problems(SPEC, "p", tmp_path) == [
        "profiles/p.yaml: section t: knob 'rate' is not set (every profile sets every knob of the chapter)"]


def test_a_wrong_type_or_word_is_one_line_naming_profile_chapter_and_knob(tmp_path):
    _write_profile(tmp_path, "  epochs: 2.5\n  rate: 0.1\n  mode: a\n")
    assert profile_problems(SPEC, "p", tmp_path) == ["profiles/p.yaml: section t: knob 'epochs' takes int, got 2.5"]
    _write_profile(tmp_path, "  epochs: 2\n  rate: 0.1\n  mode: c\n")
    assert profile_problems(SPEC, "p", tmp_path) == ["profiles/p.yaml: section t: knob 'mode' takes one of a|b, got 'c'"]


@pytest.mark.parametrize("cid", list(SPECS))
def test_the_parameters_cell_assigns_the_knobs_in_order_after_the_run_parameters(cid):
    from fetal_lib.book.execute import parameter_names, read_source

    source = find_source(cid)
    assert source is not None, f"no notebook for {cid}"
    nb = read_source(source)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", []))
    names = _ordered_assignments(cell.source)
    assert parameter_names(nb) == set(names)
    assert set(names[:len(RUN_PARAMETERS)]) == set(RUN_PARAMETERS), f"{source.name}: the run parameters come first"
    assert names[len(RUN_PARAMETERS):] == SPECS[cid].knob_names(), f"{source.name}: knobs differ from the spec's"


@pytest.mark.parametrize("cid", list(SPECS))
def test_the_set_parser_accepts_exactly_the_declared_knobs(cid):
    spec = SPECS[cid]
    for knob in spec.knobs:
        text, value = (knob.choices[0], knob.choices[0]) if knob.choices else (_TEXT[knob.type], _VALUE[knob.type])
        assert parse_overrides(spec, [f"{knob.name}={text}"]) == {knob.name: value}, knob.name
        if knob.choices:
            with pytest.raises(ValueError, match=f"{knob.name} takes one of"):
                parse_overrides(spec, [f"{knob.name}=not-a-choice"])
    with pytest.raises(ValueError, match=f"unknown {cid} setting 'not_a_knob'"):
        parse_overrides(spec, ["not_a_knob=1"])
    for run_parameter in RUN_PARAMETERS:
        with pytest.raises(ValueError):
            parse_overrides(spec, [f"{run_parameter}=1"])


@pytest.mark.parametrize("cid", list(SPECS))
def test_every_knob_says_what_it_does_on_one_line(cid):
    for knob in SPECS[cid].knobs:
        assert knob.meaning.strip() and "\n" not in knob.meaning, f"{cid}.{knob.name}: no one-line meaning"
        assert not knob.meaning.lstrip().startswith("#"), f"{cid}.{knob.name}"
        if knob.type is str and knob.choices:
            assert all(isinstance(c, str) and c for c in knob.choices), f"{cid}.{knob.name}"


def test_units_are_not_guessed_from_names():
    for cid, spec in SPECS.items():
        for knob in spec.knobs:
            if knob.name.endswith("batch_size"):
                assert knob.unit != "pixels", f"{cid}.{knob.name}"
            if knob.name.endswith("_s"):
                assert knob.unit == "s", f"{cid}.{knob.name}"
            if knob.name.endswith("_mm"):
                assert knob.unit == "mm", f"{cid}.{knob.name}"
            if knob.type is bool or knob.type is dict:
                assert knob.unit == "", f"{cid}.{knob.name}"


def test_knob_accepts_its_type_and_choices():
    assert Knob("n", int, "m").accepts(3) and not Knob("n", int, "m").accepts(3.0) and not Knob("n", int, "m").accepts(True)
    assert Knob("x", float, "m").accepts(3) and Knob("x", float, "m").accepts(0.5) and not Knob("x", float, "m").accepts(False)
    assert Knob("b", bool, "m").accepts(False) and not Knob("b", bool, "m").accepts(0)
    mode = Knob("mode", str, "m", "", ("a", "b"))
    assert mode.accepts("a") and not mode.accepts("c") and not mode.accepts(1)
    assert Knob("s", str, "m").accepts("") and Knob("d", dict, "m").accepts({}) and not Knob("l", list, "m").accepts({})
    with pytest.raises(TypeError):
        Knob("n", int, "m", "", ("a",))
    with pytest.raises(TypeError):
        Knob("t", tuple, "m")


def test_choices_agree_with_the_code_that_reads_them():
    from fetal_lib.brain_age import nested, regression
    from fetal_lib.hc.measure import COMBINES
    from fetal_lib.training.checkpoint import CHECKPOINTS
    from fetal_lib.training.precision import choices
    from fetal_lib.us.tasks import TASKS
    from fetal_lib.us.train import CLASS_WEIGHTS

    assert set(SPECS["hc18"].knob("second_combine").choices) == {"auto", *COMBINES}
    assert SPECS["hc18"].knob("precision").choices == choices("keras")
    assert SPECS["seg_benchmark"].knob("precision").choices == choices("torch")
    assert SPECS["brain_age"].knob("seg_precision").choices == choices("torch")
    assert set(SPECS["us_classification"].knob("checkpoint").choices) == set(CHECKPOINTS)
    assert SPECS["us_classification"].knob("class_weight").choices == CLASS_WEIGHTS
    assert SPECS["us_classification"].knob("leak_task").choices == TASKS
    assert SPECS["brain_age"].knob("deploy_model").choices == regression.ALL_MODELS
    assert SPECS["brain_age"].knob("deploy_features").choices == nested.FEATURES
    assert SPECS["brain_age"].knob("feature_correction").choices == nested.CORRECTIONS
    assert SPECS["brain_age"].knob("reg_training_set").choices == nested.TRAINING_SETS


def test_needs_datasets_and_headlines_are_known():
    from fetal_lib.book.headlines import HEADLINES

    manifests = {p.stem for p in MANIFEST_DIR.glob("*.yaml")}
    for cid, spec in SPECS.items():
        assert set(spec.needs) <= set(SPECS) - {cid}, f"{cid}: needs {spec.needs}"
        assert spec.datasets and set(spec.datasets) <= manifests, f"{cid}: datasets {spec.datasets}"
        assert list(spec.headlines) == list(HEADLINES[cid]), f"{cid}: headlines differ from the intro table's"
        assert all(m and not m.startswith("/") for m in spec.models), cid
    assert SPECS["us_classification"].needs == ("hc18",)


def test_the_prerequisites_come_from_the_declarations():
    from fetal_lib.book.prerequisites import NEEDS

    assert NEEDS == {cid: spec.needs[0] for cid, spec in SPECS.items() if spec.needs}


@pytest.mark.parametrize("cid", list(SPECS))
def test_every_decision_is_build_or_profile_with_a_fetal_command(cid):
    for d in SPECS[cid].decisions:
        assert d.how in ("build", "profile"), d
        assert d.command.startswith("fetal "), d
        assert d.setting and d.data and d.evidence, d
    with pytest.raises(ValueError, match="how must be"):
        Decision("epochs", "guess", "data", "evidence", "fetal x")


def test_each_chapter_that_deploys_a_model_declares_its_decisions():
    for cid, spec in SPECS.items():
        if spec.models:
            assert any(d.how == "build" for d in spec.decisions), cid
            assert any(d.how == "profile" for d in spec.decisions), cid
