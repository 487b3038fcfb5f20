"""Chapter 2's steps as the notebook calls them: the loop over architectures, the winner's
deployment, the tables and sentences built from the runs, and the metrics document."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fetal_lib import anchors
from fetal_lib.seg_benchmark import chapter, pipeline, report


def _run(arch: str, val_hc: float, seconds: float = 120.0, diffusion: bool = False):
    fit = SimpleNamespace(seconds=seconds, best_epoch=3, history=[{}] * 4)
    trained = SimpleNamespace(parameters=1234, fit=fit, train_images_per_s=5.0, segmenter=SimpleNamespace(is_diffusion=diffusion),
                              config=SimpleNamespace(initial_epochs=0, to_dict=lambda: {"arch": arch}))
    test_df = pd.DataFrame({"filename": ["1.png"], "dice": [0.9], "cx": [1.0], "angle_rad": [0.0]})
    val_df = pd.DataFrame({"found": [True], "hc_abs_diff_mm": [val_hc], "dice": [0.9]})
    return SimpleNamespace(arch=arch, trained=trained, hc_model=SimpleNamespace(threshold=0.5), test_df=test_df, val_df=val_df)


def test_every_architecture_is_trained_in_order_and_logged(monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "run_arch", lambda data, settings, arch, seed, log=None: calls.append((arch, seed)) or _run(arch, 2.0))
    lines = []
    runs = pipeline.run_archs("data", {}, ["unext", "ducknet"], 3, log=lines.append)
    assert list(runs) == ["unext", "ducknet"] and calls == [("unext", 3), ("ducknet", 3)]
    assert lines == ["--- unext", "unext: 1,234 parameters, 2.0 min, 5.0 images/s, best epoch 3, threshold 0.5",
                     "--- ducknet", "ducknet: 1,234 parameters, 2.0 min, 5.0 images/s, best epoch 3, threshold 0.5"]


@pytest.mark.parametrize("continued_hc, network", [(1.5, "continued to 8 epochs"), (2.5, "benchmark weights"), (None, "benchmark weights")])
def test_the_winner_is_chosen_on_validation_and_the_better_of_its_two_networks_deployed(monkeypatch, continued_hc, network):
    runs = {"unext": _run("unext", 3.0), "ducknet": _run("ducknet", 2.0)}
    rows = [{"architecture": a, "validation HC |diff| mean (mm)": r.val_df["hc_abs_diff_mm"][0]} for a, r in runs.items()]
    continued = None if continued_hc is None else _run("ducknet", continued_hc)
    if continued is not None:
        continued.trained.config.initial_epochs = 4
    monkeypatch.setattr(pipeline, "continue_winner", lambda data, settings, run, seed, log=None: continued)
    monkeypatch.setattr(pipeline, "summary_row", lambda run, seed: {"architecture": run.arch})
    dep = pipeline.deploy_winner("data", {}, runs, rows, 0)
    assert dep.best == "ducknet" and dep.benchmarked is runs["ducknet"] and dep.continued is continued
    assert dep.deployed is (continued if continued_hc == 1.5 else runs["ducknet"])
    assert dep.row == {"architecture": "ducknet", "network": network}


def test_the_profile_can_fix_the_deployed_architecture_whatever_validation_prefers(monkeypatch):
    runs = {"unext": _run("unext", 3.0), "ducknet": _run("ducknet", 2.0)}
    rows = [{"architecture": a, "validation HC |diff| mean (mm)": r.val_df["hc_abs_diff_mm"][0]} for a, r in runs.items()]
    continued = []
    monkeypatch.setattr(pipeline, "continue_winner", lambda data, settings, run, seed, log=None: continued.append(run.arch))
    monkeypatch.setattr(pipeline, "summary_row", lambda run, seed: {"architecture": run.arch})
    dep = pipeline.deploy_winner("data", {"deploy_arch": "unext"}, runs, rows, 0)
    assert (dep.best, dep.validation_best, dep.fixed, continued) == ("unext", "ducknet", True, ["unext"])
    assert dep.deployed is runs["unext"]
    auto = pipeline.deploy_winner("data", {"deploy_arch": "auto"}, runs, rows, 0)
    assert (auto.best, auto.validation_best, auto.fixed) == ("ducknet", "ducknet", False)


def test_a_fixed_architecture_outside_the_benchmark_is_refused_naming_the_knob():
    assert pipeline.fixed_arch({"deploy_arch": "auto"}, ["unext"]) is None
    assert pipeline.fixed_arch({}, ["unext"]) is None
    assert pipeline.fixed_arch({"deploy_arch": " unext "}, ["unext", "ducknet"]) == "unext"
    with pytest.raises(ValueError, match=r"deploy_arch 'transunet' is not among the benchmarked architectures \(unext, ducknet\)"):
        pipeline.fixed_arch({"deploy_arch": "transunet"}, ["unext", "ducknet"])


def test_the_choice_sentence_says_whether_this_runs_validation_agrees_with_the_profile():
    rows = [{"architecture": "unext", "validation HC |diff| mean (mm)": 3.0}, {"architecture": "ducknet", "validation HC |diff| mean (mm)": 2.0}]
    dep = SimpleNamespace(best="unext", validation_best="ducknet", fixed=True)
    text = report.choice_sentence(dep, rows)
    assert "**unext**" in text and "ranks **ducknet** first (2.00 mm against 3.00" in text and "deploy_arch=auto" in text
    assert "ranks it first too (2.00 mm" in report.choice_sentence(SimpleNamespace(best="ducknet", validation_best="ducknet", fixed=True), rows)
    assert report.choice_sentence(SimpleNamespace(best="ducknet", validation_best="ducknet", fixed=False), rows) is None
    row = {"architecture": "unext", "network": "benchmark weights", "validation HC |diff| mean (mm)": 3.0, "Dice": 0.97,
           "HC |diff| mean (mm)": 2.5, "HC CI low (mm)": 2.1, "HC CI high (mm)": 2.9}
    sentence = report.winner_sentence("unext", [row], None, choice=text)
    assert sentence.startswith(text) and "Chosen on validation" not in sentence and "3.00 mm" in sentence
    assert report.winner_sentence("unext", [row], None).startswith("Chosen on validation (lowest mean HC error there, 3.00 mm): **unext**")


def test_the_per_image_table_stacks_the_architectures_without_the_ellipse():
    table = report.per_image_table({"unext": _run("unext", 2.0), "ducknet": _run("ducknet", 2.0)})
    assert table["architecture"].tolist() == ["unext", "ducknet"] and "cx" not in table and "angle_rad" not in table


def test_sentences_built_from_the_data_and_the_anchors():
    data = SimpleNamespace(source=SimpleNamespace(describe=lambda relative: "HC18 (phantom)"),
                           parts={"train": [1, 2, 3], "val": [4], "test": [5]})
    assert chapter.split_sentence(data) == "Data: HC18 (phantom). Split: chapter 1's, by subject: train 3 images, val 1 images, test 1 images."
    assert anchors.get("seg_benchmark.source.medsegdiff_v2.text_dice").text() in report.source_sentence()


def test_no_uncertainty_without_a_diffusion_model_and_no_comparison_without_chapter1(tmp_path):
    assert report.diffusion_uncertainty({"unext": _run("unext", 2.0)}, [], {}) is None
    assert report.chapter1_comparison(pd.DataFrame(), tmp_path, "cpu") == (None, None)


def test_the_metrics_document_heads_with_the_deployed_networks_figures():
    runs = {"unext": _run("unext", 3.0), "ducknet": _run("ducknet", 2.0, seconds=60.0)}
    row = {k: 1.0 for k in report.DEPLOYED_KEYS} | {"architecture": "ducknet", "network": "benchmark weights", "Dice": 0.91,
                                                     "HC |diff| mean (mm)": 2.2}
    dep = SimpleNamespace(best="ducknet", validation_best="unext", fixed=True, row=row, continued=_run("ducknet", 1.0, seconds=30.0))
    results = pd.DataFrame({"architecture": ["unext", "ducknet"], "Dice": [0.95, 0.91]})
    paired = SimpleNamespace(estimate=-0.1, low=-0.3, high=0.1)
    doc = report.metrics_document(runs, results, dep, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), paired,
                                  SimpleNamespace(to_dict=lambda: {"precision": "float32"}), {"best": "x.pt"}, 0.0)
    assert list(doc)[:3] == ["best_architecture_dice", "best_architecture_hc_abs_diff_mean_mm", "best_dice_any_architecture"]
    assert doc["best_architecture_dice"] == 0.91 and doc["best_dice_any_architecture"] == 0.95
    assert doc["best_architecture"] == "ducknet" and list(doc["deployed"]) == list(report.DEPLOYED_KEYS)
    assert doc["validation_best_architecture"] == "unext" and doc["architecture_fixed_by_profile"] is True
    assert doc["vs_chapter1"] == {"mean_difference_mm": -0.1, "ci": [-0.3, 0.1]}
    assert doc["training_seconds"] == pytest.approx(210.0) and doc["model_paths"] == {"best": "x.pt"}
    assert doc["training"]["unext"]["best_epoch"] == 3 and not math.isnan(doc["chapter_seconds"])
    assert np.isfinite(doc["chapter_seconds"])
