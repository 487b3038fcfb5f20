"""The generated audit page, from fixture metrics.json files: real, phantom, missing, unreadable."""

from __future__ import annotations

import pytest

from fetal_lib import anchors
from fetal_lib.book.audit_map import CLAIMS, FLAWS
from fetal_lib.book.audit_map import Figure
from fetal_lib.book.audit_page import (audit_markdown, chapter_links, claims_markdown, flaws_markdown, read_figure,
                                       section_id)
from fetal_lib.results import ChapterRun, load_metrics
from fetal_lib.book.withheld import load_withheld, write_withheld

REAL_HC18 = {"hc18": {"is_phantom": False, "status": "complete", "root": "/d/hc18"}}
SEG_ARCHS = ("medsegdiff_v2", "ducknet", "attention_unet", "unext", "transunet")


def _rows(table: str) -> list[str]:
    return [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("|---")][1:]


@pytest.fixture()
def results(tmp_path):
    """A results root: hc18 and fetal_mri_ga real, seg_benchmark phantom, data partly phantom,
    us_classification unreadable, brain_age never run."""
    root = tmp_path / "results"
    ChapterRun("hc18", "cpu", "", root / "hc18", 0, REAL_HC18).finish({
        "dice": 0.9755,
        "test": {"hc_abs_diff_mean_mm": 2.5, "hc_abs_diff_sd_mm": 2.0, "hc_abs_diff_ci95_mm": [2.1, 2.9],
                 "n_images": 108, "dice_mean": 0.9755},
        "audit": [{"arm": "ours", "HC |diff| mean (mm)": 3.0, "Dice": 0.969},
                  {"arm": "source block", "HC |diff| mean (mm)": 4.5, "Dice": 0.96},
                  {"arm": "source masks", "HC |diff| mean (mm)": 76.0, "Dice": 0.39}],
    })  # no pixel_accuracy_all_background: an older run
    ChapterRun("seg_benchmark", "smoke", "", root / "seg_benchmark", 0,
               {"hc18": {"is_phantom": True, "status": "phantom", "root": "/p"}}).finish({
        "best_architecture": "unext",
        "results": [{"architecture": a, "Dice": 0.9123, "IoU": 0.8123, "recall": 0.9, "mAP": 0.8, "training (min)": 1.0}
                    for a in SEG_ARCHS],
    })
    ChapterRun("fetal_mri_ga", "cpu", "", root / "fetal_mri_ga", 0,
               {"fetal_brain_atlases": {"is_phantom": False, "status": "complete", "root": "/d/a"}}).finish({
        "results": [{"protocol": "by volume", "model": "network", "scored per": "volume", "n": 31, "MAE (days)": 3.64,
                     "MAE 95% CI": "2.39-5.30", "R2": 0.973, "R2 95% CI": "0.956-0.987"},
                    {"protocol": "by volume", "model": "network", "scored per": "sample", "n": 310, "MAE (days)": 4.21,
                     "MAE 95% CI": "3.12-5.67", "R2": 0.967, "R2 95% CI": "0.952-0.980"}],
    })
    ChapterRun("data", "cpu", "", root / "data", 0,
               {**REAL_HC18, "fetal_brain_anomaly_us": {"is_phantom": True, "status": "phantom", "root": "/p"}}).finish({
        "hc18_fit_vs_reference_mae_mm": 0.0123, "anomaly_us_groups_crossing_export_splits": 23, "anomaly_us_groups": 139,
    })
    (root / "us_classification").mkdir(parents=True)
    (root / "us_classification" / "metrics.json").write_text("{not json")
    return root


@pytest.fixture()
def book(tmp_path):
    """A book folder in which chapters 1 and 4 were executed."""
    (tmp_path / "book" / "chapters").mkdir(parents=True)
    for stem in ("01_hc18_unet", "04_fetal_mri_ga"):
        (tmp_path / "book" / "chapters" / f"{stem}.ipynb").write_text("{}")
    return tmp_path / "book"


def _claim_rows(results, book) -> dict[str, str]:
    rows = _rows(claims_markdown(load_metrics(results), chapter_links(book)))
    assert len(rows) == len(CLAIMS)
    return {f"{c.source}/{c.what}": row for c, row in zip(CLAIMS, rows)}


def test_a_real_run_shows_each_claim_beside_our_figure_with_ci_n_and_link(results, book):
    rows = _claim_rows(results, book)
    zeng = rows["zeng2021/on the HC18 challenge's test set"]
    published = anchors.get("hc18.zeng2021.hc_abs_diff").text().replace(" +- ", " ± ")
    assert published in zeng and anchors.get("hc18.zeng2021.dice").text() in zeng
    assert "{cite}`zeng2021dagvnet`" in zeng and "none known" in zeng
    assert "HC absolute difference: 2.50 ± 2.00 mm (95 % CI 2.10 to 2.90; n = 108 test images)" in zeng
    assert "Dice: 0.9755 (n = 108 test images)" in zeng
    assert '<a href="chapters/01_hc18_unet.html#test-split">Chapter 1, Test split</a>' in zeng
    assert "profile `cpu`" in zeng
    ga = rows["ga_source/stratified cross-validation on its private scans"]
    assert "MAE: 3.64 days (95 % CI 2.39 to 5.30; n = 31 volumes)" in ga  # the per-volume row, not the per-sample one
    assert "R2: 0.973 (95 % CI 0.956 to 0.987; n = 31 volumes)" in ga
    assert "slice-level split" in ga and 'href="chapters/04_fetal_mri_ga.html#results"' in ga


def test_phantom_missing_and_unreadable_runs_say_so_and_show_no_number(results, book):
    rows = _claim_rows(results, book)
    seg = [row for key, row in rows.items() if key.startswith("seg_source/")]
    assert len(seg) == len(SEG_ARCHS) + 1
    for row in seg:
        assert "**PHANTOM** run (profile `smoke`, synthetic `hc18`): no figure shown" in row
        assert "0.9123" not in row and "(not in this build)" in row
    assert "`build/results/us_classification/metrics.json` unreadable" in rows[
        "planes_paper/best CNN of the dataset paper, its standard planes"]
    res_unet = rows["brain_age_source/its Res-U-Net, on its validation subjects"]
    holdout = rows["brain_age_source/age from its three tissue volumes, one hold-out split"]
    for row in (res_unet, holdout):
        assert "not run yet (no `build/results/brain_age/metrics.json`)" in row
    assert "{cite}`imperial_mli_brainage`" in res_unet and anchors.get("brain_age.source.val_dice_wm").text() in res_unet
    assert "_the same source_" in holdout and anchors.get("brain_age.source.holdout_mae").text() in holdout


def test_rows_of_one_source_say_what_repeats_only_once(results, book):
    rows = _claim_rows(results, book)
    seg = [row.split(" | ") for key, row in rows.items() if key.startswith("seg_source/")]
    first, rest = seg[0], seg[1:]
    assert "**the explainable fetal biometry benchmark**" in first[0] and "{cite}`fetal_biometry_xai_source`" in first[0]
    assert first[1] != "as above" and first[3] != "as above"
    for cells in rest:
        assert cells[0].startswith("| _the same source_, ") and "{cite}" not in cells[0]
        assert cells[3] == "as above"  # the same protocol
    assert [c[1] == "as above" for c in rest] == [True] * (len(SEG_ARCHS) - 1) + [False]  # the text row's own flaw
    assert "none known" in rows["zeng2021/a conventional U-Net, as that paper reports it"].split(" | ")[1]


def test_a_section_the_run_left_empty_reads_not_measured():
    docs = {"seg_benchmark": {"metrics": {"vs_chapter1": None, "best": 0.5},
                              "provenance": {"profile": "cpu", "data": REAL_HC18}}}
    assert read_figure(Figure("seg_benchmark", "vs_chapter1.mean_difference_mm", datasets=("hc18",)), docs) == (
        False, "not measured in this run")
    assert read_figure(Figure("seg_benchmark", "best", "mm", 1, ci="vs_chapter1.ci"), docs) == (True, "0.5 mm")
    assert read_figure(Figure("seg_benchmark", "best", datasets=("fetal_planes",)), docs) == (
        False, "`fetal_planes` not used in this run")


def test_flaws_show_what_each_chapter_measured_per_dataset(results, book):
    text = flaws_markdown(load_metrics(results), chapter_links(book))
    rows = _rows(text)
    assert len(rows) == len(FLAWS) + text.count("### ") - 1  # each source's table has its own header row
    by_flaw = {f.flaw: next(r for r in rows if r.startswith(f"| {f.flaw.replace('|', chr(92) + '|')} |")) for f in FLAWS}
    block = by_flaw[FLAWS[0].flaw]
    assert "ours, HC error: 3.00 mm" in block and "source block, HC error: 4.50 mm" in block
    assert 'href="chapters/01_hc18_unet.html#audit-what-each-flaw-of-the-source-costs"' in block
    assert "`fetal_lib.networks.keras.unet`" in block
    pixel = by_flaw["pixel accuracy reported"]
    assert "not in this run's metrics (no 'pixel_accuracy_all_background' in the metrics)" in pixel
    # the data chapter ran hc18 for real and the anomaly set on a phantom: one figure shown, the other not
    assert "mean absolute difference: 0.012 mm" in by_flaw["the pixel size applied twice when converting the HC to mm"]
    roboflow = by_flaw["copies of one source image in the export's own train, valid and test folders"]
    assert "**PHANTOM**" in roboflow and "23" not in roboflow.split("|")[3]
    assert "(not in this build)" in roboflow  # the data chapter is not executed in this book


def test_withheld_section_lists_records_or_says_there_are_none(results, book):
    docs, links = load_metrics(results), chapter_links(book)
    assert "_No withheld-data evaluation found under `build/results/withheld/`._" in audit_markdown(docs, [], links)
    metric = [{"name": "HC |diff| mean", "value": 2.25, "unit": "mm", "ci95": [2.0, 2.5]}]
    write_withheld(results, "hc18_hidden", "HC18 hidden test set", 335, metric, "fetal hc submission T", n_unit="images",
                   chapter="hc18", model="build/models/hc18_unet.keras")
    write_withheld(results, "phantom_try", "a dry run", 4, metric, "fetal hc submission P", on_phantom=True)
    (results / "withheld" / "zz_bad.json").write_text('{"schema": 2}')
    text = audit_markdown(docs, load_withheld(results), links)
    section = text.split("## Withheld-data evaluations")[1].split("## Decisions the deployed models rest on")[0]
    rows = _rows(section)
    assert len(rows) == 3
    assert "**hc18_hidden** (chapter 1): HC18 hidden test set" in rows[0]
    assert "HC \\|diff\\| mean: 2.25 mm (95 % CI 2 to 2.5)" in rows[0] and "335 images" in rows[0]
    assert "`fetal hc submission T`" in rows[0] and "model `build/models/hc18_unet.keras`" in rows[0]
    assert "**PHANTOM** data: no figure shown" in rows[1] and "2.25" not in rows[1]
    assert rows[2].startswith("| `zz_bad.json` |") and "schema is 2" in rows[2]
    assert "No withheld-data evaluation found" not in text


def test_the_build_writes_the_page_beside_the_other_generated_files(results, book):
    from fetal_lib.book.build import write_generated

    paths = write_generated(book, results)
    page = book / "generated" / "audit.md"
    assert page in paths
    assert page.read_text() == audit_markdown(load_metrics(results), load_withheld(results), chapter_links(book))


def test_section_ids_are_the_ones_sphinx_gives_the_chapter_headings():
    # ids read from a built book's HTML (chapters 1 and 2)
    assert section_id("Audit: what each flaw of the source costs") == "audit-what-each-flaw-of-the-source-costs"
    assert section_id("MedSegDiff-V2's uncertainty beside its error") == "medsegdiff-v2-s-uncertainty-beside-its-error"
    assert section_id("The model for `fetal hc measure`") == "the-model-for-fetal-hc-measure"


def test_the_decisions_table_has_one_row_per_declared_decision(results, book):
    from fetal_lib.book.audit_page import chapter_name, decisions_markdown
    from fetal_lib.book.chapters import SPECS

    text = audit_markdown(load_metrics(results), load_withheld(results), chapter_links(book))
    section = text.split("## Decisions the deployed models rest on")[1]
    assert section.endswith(decisions_markdown())
    rows = _rows(section)
    declared = [(spec, d) for spec in SPECS.values() for d in spec.decisions]
    assert len(rows) == len(declared) and declared
    for row, (spec, d) in zip(rows, declared):
        cells = [c.strip() for c in row.strip("| ").split(" | ")]
        assert cells[0] == chapter_name(spec.id)
        assert cells[1:5] == [c.replace("|", "\\|") for c in (d.setting, d.how, d.data, d.evidence)]
        assert cells[5] == f"`{d.command}`"
