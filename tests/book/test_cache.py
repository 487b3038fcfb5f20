"""Reuse of executed chapters: the key beside the notebook, what changes it, and the pipeline that reuses."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from fetal_lib.book import cache, pipeline
from fetal_lib.errors import FetalInputError
from tiny_chapters import FINISHING, make_tree, run_tree

GOOD = FINISHING


def _write_run(tmp_path, data=None):
    """A fake finished run: notebook source, executed notebook, metrics.json naming ``data``."""
    source = tmp_path / "00_x.py"
    source.write_text("# %%\nx = 1\n")
    executed = tmp_path / "book" / "00_x.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    executed.write_text("{}")
    metrics = tmp_path / "res" / "metrics.json"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text(json.dumps({"chapter": "x", "provenance": {"data": data or {}}}))
    return source, executed, metrics


def _fake_hc18(root):
    """A folder the hc18 loader would take as real data (its CSV), with one image."""
    folder = root / "hc18"
    folder.mkdir(parents=True)
    (folder / "training_set_pixel_size_and_HC.csv").write_text("filename,pixel size(mm),head circumference (mm)\n")
    (folder / "000_HC.png").write_bytes(b"\x89PNG")
    return folder


def test_the_key_reuses_an_unchanged_run_and_names_what_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path / "build"))
    data_root = tmp_path / "data"
    folder = _fake_hc18(data_root)
    source, executed, metrics = _write_run(tmp_path, {"hc18": {"is_phantom": False}})
    params = {"profile": "p", "data_dir": str(data_root), "data_source": "real", "n": 1}

    assert cache.changes(source, params, executed, metrics) == ["no key"]
    key_file = cache.store_key(source, params, executed, metrics)
    assert key_file == tmp_path / "book" / "00_x.key.json"
    key = json.loads(key_file.read_text())
    assert key["data"]["hc18"]["root"] == str(folder.resolve()) and key["data"]["hc18"]["files"] == 2
    assert key["data"]["hc18"]["is_phantom"] is False
    assert cache.changes(source, params, executed, metrics) == []

    assert cache.changes(source, {**params, "n": 2}, executed, metrics) == ["parameters (n)"]
    assert cache.changes(source, {**params, "data_source": "phantom"}, executed, metrics) == ["parameters (data_source)", "data (hc18)"]
    (folder / "001_HC.png").write_bytes(b"\x89PNG")  # a file added to the dataset
    assert cache.changes(source, params, executed, metrics) == ["data (hc18)"]
    cache.store_key(source, params, executed, metrics)
    source.write_text("# %%\nx = 2\n")
    assert cache.changes(source, params, executed, metrics) == ["source"]
    cache.store_key(source, params, executed, metrics)
    metrics.write_text(metrics.read_text() + " ")  # e.g. the chapter run by hand into the same folder since
    assert cache.changes(source, params, executed, metrics) == ["metrics"]
    cache.store_key(source, params, executed, metrics)
    executed.write_text('{"x": 1}')
    assert cache.changes(source, params, executed, metrics) == ["notebook"]
    cache.store_key(source, params, executed, metrics)
    metrics.unlink()
    assert cache.changes(source, params, executed, metrics) == ["no metrics.json"]


def test_a_change_anywhere_in_the_package_changes_its_hash(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub" / "__pycache__").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.yaml").write_text("k: v\n")
    first = cache.package_sha256(pkg)
    (pkg / "sub" / "__pycache__" / "b.cpython-311.pyc").write_bytes(b"junk")
    assert cache.package_sha256.__wrapped__(pkg) == first  # compiled files do not count
    (pkg / "sub" / "b.yaml").write_text("k: w\n")
    assert cache.package_sha256.__wrapped__(pkg) != first
    assert len(cache.package_sha256()) == 64  # fetal_lib's own


@pytest.fixture()
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path / "build"))
    return make_tree(tmp_path, chapter=GOOD)


@pytest.mark.slow
def test_a_second_run_reuses_force_and_overrides_execute(tree):
    metrics = tree / "build" / "results" / "data" / "metrics.json"
    first = run_tree(tree)
    assert [c for c, _ in first.executed] == ["data"] and not first.reused
    stamp = metrics.stat().st_mtime_ns

    again = run_tree(tree)
    assert again.executed == [] and again.reused == ["data"]
    assert metrics.stat().st_mtime_ns == stamp and "reused (ran" in again.summary[0]

    forced = run_tree(tree, force=True)
    assert [c for c, _ in forced.executed] == ["data"]

    changed = run_tree(tree, only=["data"], overrides={"n": 7})
    assert [c for c, _ in changed.executed] == ["data"]
    doc = json.loads(metrics.read_text())
    assert doc["metrics"]["n"] == 7 and doc["provenance"]["overrides"] == {"n": 7}
    assert "[set n=7]" in changed.summary[0]
    assert run_tree(tree, only=["data"], overrides={"n": 7}).reused == ["data"]
    assert run_tree(tree).executed  # back to the profile's n: runs again

    with pytest.raises(FetalInputError, match=r"00_data.py: --set m: not a parameter of this chapter; known: data_source, n, seed"):
        run_tree(tree, only=["data"], overrides={"m": 1})


@pytest.mark.slow
def test_a_failed_rerun_keeps_the_previous_notebook_results_and_key(tree):
    assert run_tree(tree).ok
    key = cache.key_path(tree / "book" / "chapters" / "00_data.ipynb")
    before = key.read_text()
    (tree / "notebooks" / "00_data.py").write_text(GOOD + "\n# %%\nraise RuntimeError('late')\n")
    assert not run_tree(tree).ok
    assert key.read_text() == before
    (tree / "notebooks" / "00_data.py").write_text(GOOD)
    assert run_tree(tree).reused == ["data"]  # the old run is still the right one for the old source


@pytest.mark.slow
def test_the_data_chapter_on_the_smoke_profile_is_reused(tmp_path, monkeypatch):
    """The real chapter 0 on phantoms: run once, then a second `fetal book` reuses it in seconds."""
    from fetal_lib.book.build import static_pages
    from fetal_lib.paths import BOOK_DIR

    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path / "build"))
    book = tmp_path / "book"
    (book / "chapters").mkdir(parents=True)
    for page in static_pages(BOOK_DIR):
        shutil.copy(page, book / page.name)
    first = pipeline.run("smoke", only=["data"], book_dir=book, build=False, quiet=True)
    assert [c for c, _ in first.executed] == ["data"]
    t0 = time.perf_counter()
    second = pipeline.run("smoke", only=["data"], book_dir=book, build=False, quiet=True)
    assert second.reused == ["data"] and not second.executed
    assert time.perf_counter() - t0 < 30, "checking the key took as long as a run"
    key = json.loads(cache.key_path(book / "chapters" / "00_data.ipynb").read_text())
    assert len(key["data"]) >= 5 and all(d["is_phantom"] for d in key["data"].values())
