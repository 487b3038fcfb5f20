"""The intro's headline tables: labelled, rounded figures with unit, CI and real/PHANTOM, from metrics.json."""

from __future__ import annotations


import pytest

from fetal_lib.book.chapters import discover, spec_of
from fetal_lib.book.execute import read_source
from fetal_lib.book.headlines import HEADLINES, US_TASK_NAMES, headline_rows, results_markdown, significant, unlabelled
from fetal_lib.results import ChapterRun, load_metrics

REAL_HC18 = {"hc18": {"is_phantom": False, "status": "partial", "root": "/d/hc18"}}


@pytest.fixture()
def docs(tmp_path):
    root = tmp_path / "results"
    ChapterRun("hc18", "cpu", "", root / "hc18", 0, REAL_HC18).finish(
        {"hc_abs_diff_mean_mm": 2.512055332, "dice": 0.97553402, "new_figure": 1234.5678,
         "test": {"hc_abs_diff_ci95_mm": [2.162690123, 2.886762604], "n_images": 108}},
        headline=["hc_abs_diff_mean_mm", "dice", "new_figure"])
    ChapterRun("seg_benchmark", "smoke", "", root / "seg_benchmark", 0,
               {"hc18": {"is_phantom": True, "status": "phantom", "root": "/p"}}).finish(
        {"best_architecture_hc_abs_diff_mean_mm": 2.771, "best_architecture": "unext",
         "deployed": {"architecture": "unext", "HC CI low (mm)": 2.3904, "HC CI high (mm)": 3.4162},
         "results": [{"architecture": "unext", "HC CI low (mm)": 2.3904, "HC CI high (mm)": 3.4162},
                     {"architecture": "ducknet", "HC CI low (mm)": 9.0, "HC CI high (mm)": 9.9}]},
        headline=["best_architecture_hc_abs_diff_mean_mm"])
    ChapterRun("data", "cpu", "", root / "data", 0,
               {**REAL_HC18, "fetal_brain_anomaly_us": {"is_phantom": True, "status": "phantom", "root": "/p"}}).finish(
        {"hc18_fit_vs_reference_mae_mm": 0.011918, "anomaly_us_groups_crossing_export_splits": 23})
    ChapterRun("us_classification", "cpu", "", root / "us_classification", 0,
               {"fetal_planes": {"is_phantom": False, "status": "partial", "root": "/d/p"}}).finish(
        {"planes_accuracy": 0.9, "deployed": {"planes": "xception"},
         "scores": [{"task": "planes", "model": "xception", "accuracy_ci": "0.842-0.953", "n_test": 90},
                    {"task": "planes", "model": "plain_cnn", "accuracy_ci": "0.1-0.2", "n_test": 90}]},
        headline=["planes_accuracy"])
    (root / "brain_age").mkdir()
    (root / "brain_age" / "metrics.json").write_text("{oops")
    return load_metrics(root)


def test_a_labelled_figure_is_rounded_with_its_unit_ci_count_and_data(docs) -> None:
    (mean, dice, new) = headline_rows("hc18", docs["hc18"])
    assert mean.label == "HC error, mean |difference|, test split (n = 108 test images)"
    assert (mean.value, mean.ci, mean.data) == ("2.51 mm", "2.16 to 2.89 mm", "real")
    assert (dice.value, dice.ci) == ("0.976", "")
    # a headline without a label is shown under its key with four significant digits, and listed
    assert "new_figure" in new.label and new.value == "1,235"
    assert unlabelled(docs) == {"hc18": ["new_figure"]}


def test_the_ci_is_read_from_the_record_the_metrics_point_at(docs) -> None:
    (seg,) = headline_rows("seg_benchmark", docs["seg_benchmark"])
    assert (seg.value, seg.ci, seg.data) == ("2.77 mm", "2.39 to 3.42 mm", "PHANTOM")
    (planes,) = headline_rows("us_classification", docs["us_classification"])
    assert (planes.value, planes.ci) == ("0.900", "0.842 to 0.953")
    assert "(n = 90 test images)" in planes.label


def test_real_or_phantom_is_decided_per_figure_by_the_datasets_it_rests_on(docs) -> None:
    rows = {r.label.split(",")[0]: r.data for r in headline_rows("data", docs["data"])}
    assert rows["HC of an ellipse fitted to the reference outline vs HC18's reference HC"] == "real"
    assert rows["anomaly ultrasound source images whose copies sit in two of the export's splits"] == "PHANTOM"


def test_results_markdown_lists_chapters_in_book_order_and_links_only_built_pages(docs) -> None:
    text = results_markdown(docs, {"hc18": "chapters/01_hc18_unet"})
    headings = [ln for ln in text.splitlines() if ln.startswith("### ")]
    assert headings == ["### The data", "### Head circumference from ultrasound (HC18 U-Net)", "### Segmentation benchmark",
                        "### Fetal ultrasound classification", "### Brain age from adult MRI"]
    assert text.count("{doc}`") == 1 and "</chapters/01_hc18_unet>" in text
    assert "unreadable" in text.split("### Brain age from adult MRI")[1]
    table = text.split("### Head circumference")[1].split("###")[0]
    assert "| figure | value | 95% CI | data |" in table and "| 2.51 mm | 2.16 to 2.89 mm | real |" in table
    assert "hc_abs_diff_mean_mm" not in text  # no raw key where a label exists
    assert "No chapter has run yet" in results_markdown({})


def test_a_negative_value_that_rounds_to_zero_shows_no_sign() -> None:
    from fetal_lib.book.headlines import _number

    assert [_number(v, 3) for v in (-0.0001, -0.0006, 0.0)] == ["0.000", "-0.001", "0.000"]


def test_significant_digits_never_use_an_exponent() -> None:
    assert [significant(v) for v in (1234.5678, 0.000123456, 2.0, -0.5, 0.0)] == ["1,235", "0.0001235", "2.000", "-0.5000", "0"]


def test_every_task_of_chapter_3_has_a_name() -> None:
    from fetal_lib.us.tasks import TASKS

    assert set(US_TASK_NAMES) == set(TASKS)


@pytest.mark.parametrize("chapter", discover(), ids=lambda c: c.id)
def test_every_headline_a_chapter_declares_has_a_label(chapter) -> None:
    """The headline figures a chapter declares (its spec) are the ones the intro's table labels."""
    declared = set(spec_of(chapter.id).headlines)
    assert declared or chapter.id == "us_classification", f"{chapter.id}: no headline declared in its spec"
    assert declared <= set(HEADLINES[chapter.id]), f"{chapter.id}: no label for {sorted(declared - set(HEADLINES[chapter.id]))}"
