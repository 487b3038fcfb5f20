"""Book assembly: the generated toc lists only executed chapters; the results table comes from metrics.json."""

from __future__ import annotations

import yaml

from fetal_lib.book.build import results_markdown, write_generated, write_toc
from fetal_lib.book.results import ChapterRun


def test_toc_lists_only_existing_files(tmp_path):
    for page in ("intro.md", "audit.md"):
        (tmp_path / page).write_text("# x\n")
    (tmp_path / "chapters").mkdir()
    for nb in ("05_brain_age_mri.ipynb", "00_data.ipynb", "99_unregistered.ipynb", ".00_data.ipynb.tmp.ipynb"):
        (tmp_path / "chapters" / nb).write_text("{}")
    toc = yaml.safe_load(write_toc(tmp_path).read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert toc["root"] == "intro"
    assert files == ["chapters/00_data", "chapters/05_brain_age_mri", "audit"]
    for f in files:
        assert (tmp_path / f).with_suffix(".ipynb").exists() or (tmp_path / f"{f}.md").exists()


def test_toc_without_chapters_has_intro_and_audit_only(tmp_path):
    (tmp_path / "audit.md").write_text("# a\n")
    toc = yaml.safe_load(write_toc(tmp_path).read_text())
    assert [c["file"] for part in toc["parts"] for c in part["chapters"]] == ["audit"]


def test_results_table_is_read_from_metrics_files(tmp_path):
    assert "No chapter has run yet" in results_markdown({})
    results = tmp_path / "results"
    ChapterRun("hc18", "cpu", "", results / "hc18", 0,
               {"hc18": {"is_phantom": False, "status": "partial (752 of 999 images)", "root": "/d"}}
               ).finish({"mae_mm": 2.123456, "n_test": 150, "per_fold": [1, 2]})
    ChapterRun("data", "smoke", "", results / "data", 0,
               {"hc18": {"is_phantom": True, "status": "phantom", "root": "/p"}}).finish({"n": 3})
    (results / "brain_age").mkdir()
    (results / "brain_age" / "metrics.json").write_text("{oops")
    write_generated(tmp_path, results)
    text = (tmp_path / "generated" / "results.md").read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    assert [r.split("`")[1] for r in rows] == ["data", "hc18", "brain_age"]  # book order
    assert "**PHANTOM**: hc18" in rows[0] and "n = 3" in rows[0]
    assert "mae_mm = 2.123" in rows[1] and "n_test = 150" in rows[1] and "partial (752 of 999 images)" in rows[1]
    assert "unreadable" in rows[2]
    assert "`data`" in (tmp_path / "generated" / "provenance.md").read_text()


def test_build_log_errors_are_found_and_warnings_ignored():
    from fetal_lib.book.build import build_errors

    log = (
        "/b/intro.md:3: CRITICAL: Directive \"include\": file not found: '/b/x.md'\n"
        "/b/a.md:5: ERROR: Unknown interpreted text role \"foo\".\n"
        "/b/c.ipynb: WARNING: image file not readable\n"
        "reading sources... [ 50%] chapters/00_data\n"
    )
    assert [ln.split(":")[0] for ln in build_errors(log)] == ["/b/intro.md", "/b/a.md"]


def test_chapter_list_marks_chapters_without_a_notebook_as_planned(tmp_path):
    from fetal_lib.book.build import chapters_markdown

    (tmp_path / "01_hc18_unet.py").write_text("# %%\n")
    rows = {line.split("`")[1]: line for line in chapters_markdown(tmp_path).splitlines() if "`" in line}
    assert "in this book" in rows["hc18"]
    assert all("**planned**" in rows[c] for c in ("data", "seg_benchmark", "us_classification", "fetal_mri_ga", "brain_age"))
