"""The chapter pipeline on tiny notebooks: execution, failure isolation, parameter checks."""

from __future__ import annotations

import json
import sys

import pytest

from fetal_lib.cli import main
from fetal_lib.errors import FetalInputError
from tiny_chapters import PARAMETERS, make_tree, run_tree

GOOD = '''# %% [markdown]
# # Tiny

''' + PARAMETERS + '''n = 1

# %%
import os, sys
from fetal_lib.results import ChapterRun
run = ChapterRun("data", profile, data_dir, results_dir, seed, {})
run.finish({"n": n, "seed": seed, "exe": sys.executable, "cwd": os.getcwd(),
            "mpl": os.environ.get("MPLBACKEND"), "source": data_source})
'''

FAILING = PARAMETERS + '''
# %%
x = 1

# %%
raise ValueError("boom")
'''


@pytest.fixture()
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path / "build"))
    return make_tree(tmp_path)


@pytest.mark.slow
def test_good_chapter_runs_and_failing_chapter_leaves_previous_outputs(tree):
    (tree / "notebooks" / "00_data.py").write_text(GOOD)
    (tree / "notebooks" / "01_hc18_tiny.py").write_text(FAILING)
    old_nb = tree / "book" / "chapters" / "01_hc18_tiny.ipynb"
    old_nb.write_text("OLD NOTEBOOK")
    old_res = tree / "build" / "results" / "hc18" / "metrics.json"
    old_res.parent.mkdir(parents=True)
    old_res.write_text("OLD RESULT")

    report = run_tree(tree)

    assert [cid for cid, _ in report.executed] == ["data"]
    assert len(report.failed) == 1
    msg = report.failed[0]
    assert "'hc18'" in msg and "ValueError: boom" in msg and 'raise ValueError("boom")' in msg
    assert old_nb.read_text() == "OLD NOTEBOOK" and old_res.read_text() == "OLD RESULT"
    assert (tree / "build" / "failed" / "01_hc18_tiny.ipynb").is_file()

    doc = json.loads((tree / "build" / "results" / "data" / "metrics.json").read_text())
    m = doc["metrics"]
    assert m["n"] == 3 and m["seed"] == 5 and m["source"] == "auto"  # profile merged; default source of a non-smoke profile
    assert m["exe"] == sys.executable, "the kernel is not this venv's Python"
    assert m["mpl"] == "Agg"
    executed = json.loads((tree / "book" / "chapters" / "00_data.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])
    assert not (tree / "build" / ".previous" / "hc18").exists()
    assert not (tree / "book" / "_toc.yml").exists()  # the book is not touched after a failure


def test_missing_parameters_cell_or_unknown_profile_key_fail_before_running(tree):
    (tree / "notebooks" / "00_data.py").write_text(GOOD.replace(' tags=["parameters"]', ""))
    with pytest.raises(FetalInputError, match='00_data.py: no cell tagged "parameters"'):
        run_tree(tree)
    (tree / "notebooks" / "00_data.py").write_text(GOOD)
    (tree / "profiles" / "p.yaml").write_text("data: {n: 3, typo_knob: 1}\n")
    with pytest.raises(FetalInputError, match="typo_knob"):
        run_tree(tree)
    assert not (tree / "book" / "chapters" / "00_data.ipynb").exists()


def test_cli_rejects_unknown_chapter_and_profile(capsys):
    assert main(["book", "--profile", "smoke", "--only", "hc19", "--no-build"]) == 2
    assert "unknown chapter 'hc19'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["book", "--profile", "gpu"])
    assert exit_info.value.code == 2


PHANTOM_CHAPTER = GOOD.replace(
    'run = ChapterRun("data", profile, data_dir, results_dir, seed, {})',
    'run = ChapterRun("data", profile, data_dir, results_dir, seed, '
    '{"hc18": {"is_phantom": True, "status": "phantom", "root": "/tmp"}, "brain_age": {"is_phantom": False, "status": "complete", "root": "/d"}})',
).replace('run.finish({"n": n,', 'run.finish({"n": n, "dice": 0.5,')


@pytest.mark.slow
def test_the_run_ends_with_a_line_per_chapter_saying_real_or_phantom(tree):
    (tree / "notebooks" / "00_data.py").write_text(PHANTOM_CHAPTER)
    report = run_tree(tree)
    assert report.ok and len(report.summary) == 1
    line = report.summary[0]
    assert line.startswith("data: PHANTOM (hc18) + real (brain_age); ") and " s; " in line and "dice 0.5" in line


@pytest.mark.slow
def test_require_real_fails_a_build_that_fell_back_to_a_phantom(tree):
    (tree / "notebooks" / "00_data.py").write_text(PHANTOM_CHAPTER)
    report = run_tree(tree, require_real=True)
    assert not report.ok and "chapter 'data' ran on PHANTOM data and --require-real was given" in report.failed[0]
    assert (tree / "build" / "results" / "data" / "metrics.json").is_file()  # its results stay
    (tree / "notebooks" / "00_data.py").write_text(GOOD)  # no dataset at all: nothing to fall back from
    assert run_tree(tree, require_real=True).ok


@pytest.mark.slow
def test_executing_without_a_site_build_needs_no_sphinx(tree, monkeypatch, capsys):
    """A GPU machine has no Sphinx: `fetal book --no-build` there ran the chapter, then failed writing the
    site's pages (docutils). The chapter is what that machine is for; the pages are written where it is imported."""
    from tiny_chapters import FINISHING

    (tree / "notebooks" / "00_data.py").write_text(FINISHING)
    for name in ("docutils", "docutils.nodes"):
        monkeypatch.setitem(sys.modules, name, None)  # import docutils now raises ModuleNotFoundError
    report = run_tree(tree, quiet=False)
    assert report.ok and [cid for cid, _ in report.executed] == ["data"]
    assert (tree / "book" / "chapters" / "00_data.ipynb").is_file()
    assert "the site's pages are not written here (docutils is not installed)" in capsys.readouterr().err
