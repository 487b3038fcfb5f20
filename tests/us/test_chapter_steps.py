"""Chapter 3's steps as the notebook calls them: each task's input (and the phantom fallback without
a head finder), the loops over tasks and models, the deployment chosen on validation (never by a CV
found on the machine), and the metrics document."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fetal_lib.errors import FetalInputError
from fetal_lib.us import pipeline, report
from fetal_lib.us.pipeline import ModelRun

SETTINGS = {"head_crop_tasks": "brain_planes", "head_crop_margin": 1.15, "head_crop_size": 72, "head_crop_align": False,
            "input_rows": 64, "input_cols": 80, "head_finder": "", "epochs": 2, "task_epochs": {"planes": 3},
            "learning_rate": 0.001}


def _data(phantom: bool):
    return SimpleNamespace(source=SimpleNamespace(is_phantom=phantom))


def _missing_finder(settings):
    raise FetalInputError("build/models/hc18_unet.keras", "no HC18 model here")


def test_inputs_are_whole_images_without_a_head_cropped_task(monkeypatch):
    monkeypatch.setattr(pipeline, "head_finder", _missing_finder)  # never asked for
    inputs = pipeline.resolve_inputs({**SETTINGS, "head_crop_tasks": ""}, ["planes", "brain_planes"], {})
    assert inputs.finder is None and inputs.note is None
    assert all(c["head_crop"] is None and c["input_rows"] == 64 for c in inputs.settings.values())


def test_a_head_cropped_task_gets_the_finder_and_the_crop_as_input(monkeypatch):
    monkeypatch.setattr(pipeline, "head_finder", lambda settings: "finder")
    inputs = pipeline.resolve_inputs(SETTINGS, ["planes", "brain_planes"], {"planes": _data(False), "brain_planes": _data(False)})
    assert inputs.finder == "finder" and inputs.note is None
    assert inputs.settings["planes"]["head_crop"] is None and inputs.settings["planes"]["input_cols"] == 80
    assert inputs.settings["brain_planes"]["head_crop"] == {"margin": 1.15, "size": 72, "align": False}
    assert inputs.settings["brain_planes"]["input_rows"] == inputs.settings["brain_planes"]["input_cols"] == 72
    assert inputs.settings["planes"]["epochs"] == 3 and inputs.settings["brain_planes"]["epochs"] == 2  # task_epochs


def test_a_phantom_run_without_a_head_finder_classifies_whole_images_and_says_so(monkeypatch):
    monkeypatch.setattr(pipeline, "head_finder", _missing_finder)
    inputs = pipeline.resolve_inputs(SETTINGS, ["planes", "brain_planes"], {"planes": _data(True), "brain_planes": _data(True)})
    assert inputs.finder is None
    assert all(c["head_crop"] is None and (c["input_rows"], c["input_cols"]) == (64, 80) for c in inputs.settings.values())
    assert inputs.note.startswith("PHANTOM run without a head finder (build/models/hc18_unet.keras: no HC18 model here)")


def test_real_data_without_a_head_finder_stops_the_chapter(monkeypatch):
    monkeypatch.setattr(pipeline, "head_finder", _missing_finder)
    with pytest.raises(FetalInputError, match="no HC18 model"):
        pipeline.resolve_inputs(SETTINGS, ["planes", "brain_planes"], {"planes": _data(True), "brain_planes": _data(False)})


def _run(task: str, arch: str, y_val, predicted, k: int = 2) -> ModelRun:
    """A ModelRun whose validation logits predict ``predicted``."""
    logits = np.zeros((len(y_val), k))
    logits[np.arange(len(y_val)), predicted] = 3.0
    fit = SimpleNamespace(seconds=60.0, best_epoch=2, epochs_run=3, train_images_per_s=10.0, history={"m": [0.5]})
    config = SimpleNamespace(to_dict=lambda: {"arch": arch})
    return ModelRun(task, arch, [f"c{i}" for i in range(k)], fit, config, 1.5, np.asarray(y_val), logits,
                    np.zeros(0, int), np.zeros((0, k)), np.zeros(0), [], 0.0)


Y = np.array([0, 1, 0, 1])
RUNS = {("planes", "plain_cnn"): _run("planes", "plain_cnn", Y, Y), ("planes", "xception"): _run("planes", "xception", Y, 1 - Y),
        ("anomaly", "plain_cnn"): _run("anomaly", "plain_cnn", Y, 1 - Y), ("anomaly", "xception"): _run("anomaly", "xception", Y, Y)}
SCORES = [{"task": t, "model": a, "accuracy": 0.1 * i, "auc_macro": 0.2 * i} for i, (t, a) in enumerate(RUNS)]


def test_models_are_trained_tasks_outer_architectures_inner_and_logged(monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "run_model", lambda d, arrays, cfg, arch, seed, init_model=None: calls.append((d.task, arch, cfg["n"], seed))
                        or RUNS[(d.task, arch)])
    lines = []
    datasets = {t: SimpleNamespace(task=t) for t in ("planes", "anomaly")}
    runs = pipeline.run_models(datasets, {"planes": {}, "anomaly": {}}, {"planes": {"n": 1}, "anomaly": {"n": 2}},
                               ["plain_cnn", "xception"], 7, log=lines.append)
    assert calls == [("planes", "plain_cnn", 1, 7), ("planes", "xception", 1, 7), ("anomaly", "plain_cnn", 2, 7), ("anomaly", "xception", 2, 7)]
    assert list(runs) == list(RUNS)
    assert lines[0] == "planes / plain_cnn: kept epoch 2 of 3, 1.0 min, 10.0 images/s, temperature 1.50"
    assert list(pipeline.task_runs(runs, "anomaly", ["xception", "plain_cnn"])) == ["xception", "plain_cnn"]
    assert pipeline.score_of(SCORES, "anomaly", "plain_cnn")["accuracy"] == pytest.approx(0.2)


def test_a_task_init_starts_each_network_from_the_source_tasks_same_architecture(monkeypatch):
    calls = []

    def fake_run(d, arrays, cfg, arch, seed, init_model=None):
        calls.append((d.task, arch, init_model))
        return SimpleNamespace(members=(), fit=SimpleNamespace(model=f"{d.task}/{arch}"))

    monkeypatch.setattr(pipeline, "run_model", fake_run)
    datasets = {t: SimpleNamespace(task=t) for t in ("planes", "brain_planes")}
    per_task = {"planes": {}, "brain_planes": {"init_from": "planes", "split_from": "planes"}}
    pipeline.run_models(datasets, {"planes": {}, "brain_planes": {}}, per_task, ["plain_cnn", "xception"])
    assert calls == [("planes", "plain_cnn", None), ("planes", "xception", None),
                     ("brain_planes", "plain_cnn", "planes/plain_cnn"), ("brain_planes", "xception", "planes/xception")]
    seeds = SimpleNamespace(members=(SimpleNamespace(fit=SimpleNamespace(model="first seed")),), fit=None)
    assert pipeline.trained_network(seeds) == "first seed"


def test_a_task_init_that_could_leak_or_cannot_run_is_refused_before_training():
    with pytest.raises(ValueError, match="must be split as planes"):
        pipeline.check_task_sources({"planes": {}, "brain_planes": {"init_from": "planes", "split_from": None}},
                                    ["planes", "brain_planes"], ["xception"])
    with pytest.raises(ValueError, match="list planes before brain_planes"):
        pipeline.check_task_sources({"planes": {}, "brain_planes": {"init_from": "planes", "split_from": "planes"}},
                                    ["brain_planes", "planes"], ["xception"])
    with pytest.raises(ValueError, match="unknown task"):
        pipeline.task_source({"task_init": {"brain_planes": "plane"}}, "task_init", "brain_planes")
    with pytest.raises(ValueError, match="its own source"):
        pipeline.task_source({"task_split_from": {"planes": "planes"}}, "task_split_from", "planes")
    cfg = pipeline.task_settings({**SETTINGS, "task_split_from": {"brain_planes": "planes"}, "task_init": {"brain_planes": "planes"}},
                                 "brain_planes")
    assert cfg["split_from"] == cfg["init_from"] == "planes"
    assert pipeline.task_settings(SETTINGS, "planes")["init_from"] is None


def test_the_deployed_model_is_the_validation_choice_whatever_cv_exists():
    chosen = pipeline.validation_choices(SCORES, ["planes", "anomaly"], RUNS)
    assert chosen == {"planes": "plain_cnn", "anomaly": "xception"}
    table = report.deployed_table(chosen, RUNS)
    assert table.columns[:3].tolist() == ["task", "deployed model", "chosen by"]
    assert set(table["chosen by"]) == {report.CHOSEN_BY} and table["clears the floor"].all()


def test_the_cv_sentence_says_the_cv_chose_nothing():
    assert "does not need one" in report.cv_sentence(pd.DataFrame(), pd.DataFrame())
    comparison = pd.DataFrame([{"comparable": True, "agrees": True}, {"comparable": True, "agrees": False},
                               {"comparable": False, "agrees": None}])
    text = report.cv_sentence(pd.DataFrame([{"model": "x"}]), comparison)
    assert "did not choose the deployed models" in text and "agrees with the validation choice on 1 of 2 tasks" in text


def test_the_leak_demonstration_is_skipped_when_its_task_is_not_run():
    assert pipeline.leak_demonstration({"leak_task": "anomaly", "leak_arch": "plain_cnn", "n_bootstrap": 10}, {"planes": {}}, None, [],
                                       "", "phantom") is None


def test_the_metrics_document_heads_with_the_deployed_models_figures():
    chosen = {"planes": "plain_cnn", "anomaly": "xception"}
    empty = pd.DataFrame()
    doc = report.metrics_document(["planes", "anomaly"], chosen, SCORES, RUNS, empty, empty, None, {"planes": {"input_rows": 64, "input_cols": 64}},
                                  empty, None, {}, {"planes": None}, empty, {"xception_weights": ""},
                                  SimpleNamespace(to_dict=lambda: {"precision": "float32"}), {}, 0.0)
    assert report.headline_keys(["planes", "anomaly"]) == ["planes_accuracy", "planes_auc_macro", "anomaly_accuracy", "anomaly_auc_macro"]
    assert list(doc)[:4] == report.headline_keys(["planes", "anomaly"])
    assert doc["planes_accuracy"] == pytest.approx(0.0) and doc["anomaly_auc_macro"] == pytest.approx(0.6)
    assert doc["deployed"] == chosen and doc["deployed_chosen_by"] == {t: report.CHOSEN_BY for t in chosen}
    assert doc["inputs"] == {"planes": "whole image 64x64"} and doc["xception_weights"] == "random initialisation"
    assert doc["training_seconds"] == pytest.approx(240.0) and doc["leak_demonstration"] is None and doc["cv"] == {"planes": None}


def test_importing_the_chapter_set_up_imports_no_keras():
    import subprocess

    code = "import sys, fetal_lib.us.chapter; print('keras' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
