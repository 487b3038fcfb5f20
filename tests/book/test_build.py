"""Book assembly: the generated toc lists only executed chapters; the results table comes from metrics.json."""

from __future__ import annotations

import yaml

from fetal_lib.book.build import write_generated, write_toc
from fetal_lib.results import ChapterRun


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


def test_results_are_read_from_metrics_files(tmp_path):
    results = tmp_path / "results"
    ChapterRun("hc18", "cpu", "", results / "hc18", 0,
               {"hc18": {"is_phantom": False, "status": "partial (752 of 999 images)", "root": "/d"}}
               ).finish({"dice": 0.912345, "n_test": 150, "per_fold": [1, 2]}, headline=["dice"])
    ChapterRun("data", "smoke", "", results / "data", 0,
               {"hc18": {"is_phantom": True, "status": "phantom", "root": "/p"}}).finish({"verify_problems": 3})
    (results / "brain_age").mkdir()
    (results / "brain_age" / "metrics.json").write_text("{oops")
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "01_hc18_unet.ipynb").write_text("{}")
    write_generated(tmp_path, results)
    text = (tmp_path / "generated" / "results.md").read_text()
    sections = text.split("### ")[1:]
    assert [s.splitlines()[0] for s in sections] == ["The data", "Head circumference from ultrasound (HC18 U-Net)",
                                                     "Brain age from adult MRI"]  # book order
    assert "**PHANTOM**: hc18" in sections[0] and "| 3 |  | **PHANTOM** |" in sections[0]
    assert "</chapters/01_hc18_unet>" in sections[1] and "chapters/00_data" not in sections[0]  # only built pages linked
    assert "| 0.912 |  | real |" in sections[1] and "partial (752 of 999 images)" in sections[1]
    assert "unreadable" in sections[2]
    assert "`data`" in (tmp_path / "generated" / "provenance.md").read_text()


def test_the_data_root_s_own_figures_are_real_where_any_dataset_was_real(tmp_path):
    from fetal_lib.book.headlines import headline_rows

    results = tmp_path / "results"
    ChapterRun("data", "cpu", "", results / "data", 0,
               {"hc18": {"is_phantom": False, "status": "complete", "root": "/d"}, "feta": {"is_phantom": True, "status": "phantom", "root": "/p"}}
               ).finish({"verify_problems": 0, "split_groups_crossing": 0}, headline=["verify_problems", "split_groups_crossing"])
    import json

    rows = headline_rows("data", json.loads((results / "data" / "metrics.json").read_text()))
    assert [r.data for r in rows] == ["real", "real and PHANTOM"]  # verify read the real data; the splits both kinds


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
