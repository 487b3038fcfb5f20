"""Chapters executed on another machine put in place for the site (`fetal book --import-executed DIR`)."""

from __future__ import annotations

import json

import nbformat
import pytest

from fetal_lib.book.cache import key_path
from fetal_lib.book.imported import import_executed
from fetal_lib.errors import FetalInputError

GPU_MACHINE = {"cpu_model": "AMD EPYC", "cpu_usable": 16, "ram_gib": 128.0, "gpus": ["NVIDIA H200"]}


def _executed(folder, name="01_hc18_unet", chapter="hc18", metrics=True):
    (folder / "chapters").mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# ran on the GPU")]),
                   folder / "chapters" / f"{name}.ipynb")
    if metrics:
        res = folder / "results" / chapter
        (res / "figures").mkdir(parents=True)
        (res / "figures" / "a.png").write_bytes(b"png")
        doc = {"chapter": chapter, "metrics": {"x": 1}, "headline": ["x"],
               "provenance": {"profile": "full", "machine": GPU_MACHINE, "overrides": {"epochs": 2}}}
        (res / "metrics.json").write_text(json.dumps(doc))


def test_a_chapter_run_elsewhere_replaces_this_machines_and_says_where_it_ran(tmp_path):
    _executed(tmp_path / "gpu")
    book, results = tmp_path / "book", tmp_path / "build" / "results"
    (book / "chapters").mkdir(parents=True)
    old = book / "chapters" / "01_hc18_unet.ipynb"
    old.write_text("{}")
    key_path(old).write_text("{}")
    (results / "hc18").mkdir(parents=True)
    (results / "hc18" / "stale.csv").write_text("old")
    got = import_executed(tmp_path / "gpu", book, results)
    assert [c.id for c in got] == ["hc18"]
    assert got[0].line() == ("hc18: 01_hc18_unet.ipynb, profile full on NVIDIA H200 GPU; AMD EPYC, 16 CPU cores, 128 GiB [set epochs=2]; "
                             "fetal_lib not recorded (an older run); chapter source not compared")
    assert nbformat.read(old, as_version=4).cells[0].source == "# ran on the GPU"
    assert not key_path(old).exists()  # the next plain `fetal book` runs it here again
    assert sorted(p.name for p in (results / "hc18").rglob("*")) == ["a.png", "figures", "metrics.json"]
    assert (book / "chapters" / "01_hc18_unet.py").is_file()  # the source offered beside it


def test_an_incomplete_folder_changes_nothing(tmp_path):
    _executed(tmp_path / "gpu")
    _executed(tmp_path / "gpu", "04_fetal_mri_ga", "fetal_mri_ga", metrics=False)
    book, results = tmp_path / "book", tmp_path / "results"
    with pytest.raises(FetalInputError, match="metrics.json.*missing"):
        import_executed(tmp_path / "gpu", book, results)
    assert not results.exists() and not (book / "chapters").exists()
    with pytest.raises(FetalInputError, match="no executed chapter"):
        import_executed(tmp_path / "empty", book, results)
    (tmp_path / "odd" / "chapters").mkdir(parents=True)
    (tmp_path / "odd" / "chapters" / "42_other.ipynb").write_text("{}")
    with pytest.raises(FetalInputError, match="not a chapter notebook"):
        import_executed(tmp_path / "odd", book, results)


def test_the_import_says_whether_the_run_used_this_checkouts_code(tmp_path):
    from fetal_lib.book.chapters import find_source
    from fetal_lib.book.imported import code_match
    from fetal_lib.provenance import package_sha256

    own = find_source("hc18")
    ran = tmp_path / "01_hc18_unet.py"
    ran.write_bytes(own.read_bytes())
    here = package_sha256()
    assert code_match({"fetal_lib_sha256": here}, ran, own, here) == "fetal_lib as in this checkout; chapter source as in this checkout"
    ran.write_bytes(own.read_bytes() + b"# edited there\n")
    assert code_match({"fetal_lib_sha256": "0" * 64}, ran, own, here) == (
        "fetal_lib DIFFERS from this checkout; chapter source DIFFERS from this checkout")
    # what a chapter run records: the same digest, computed independently here over the package's files
    import hashlib
    from pathlib import Path

    import fetal_lib

    root = Path(fetal_lib.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    assert here == digest.hexdigest()
