"""Grouped K-fold CV of chapter 3's models on a task's training side (fetal_lib.us.cross_validation)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from fetal_lib.us import cross_validation as cv
from fetal_lib.us import tasks as us_tasks


@pytest.fixture(scope="module")
def brain_planes(phantom_root):
    root = phantom_root(us_tasks.DATASET_OF["brain_planes"])
    return us_tasks.load_task("brain_planes", root.parent, "phantom", 0)


def test_every_training_side_image_is_held_out_once_and_the_test_split_never(brain_planes):
    folds = cv.cv_parts(brain_planes, folds=2, seed=0)
    side = set(brain_planes.parts["train"]) | set(brain_planes.parts["val"])
    held = np.concatenate([f["test"] for f in folds])
    assert sorted(held) == sorted(side) and not set(held) & set(brain_planes.parts["test"])
    for f in folds:
        assert not set(np.concatenate(list(f.values()))) & set(brain_planes.parts["test"])
        groups = {name: {brain_planes.items[i].group for i in idx} for name, idx in f.items()}
        assert not groups["train"] & groups["val"] and not groups["train"] & groups["test"] and not groups["val"] & groups["test"]


def test_too_few_groups_for_the_folds_is_an_error(brain_planes):
    with pytest.raises(ValueError, match="too few"):
        cv.cv_parts(brain_planes, folds=50, seed=0)


def _result(rng):
    classes = ["a", "b", "c"]
    rows, folds = [], []
    for arch, skill in (("weak", 0.4), ("strong", 0.8)):
        for fold in range(3):
            y = rng.integers(0, 3, 40)
            p = np.where(rng.random(40) < skill, y, rng.integers(0, 3, 40))
            rows.append(pd.DataFrame({"fold": fold, "arch": arch, "file": [f"{arch}{fold}_{i}.png" for i in range(40)],
                                      "group": [f"g{fold}_{i // 2}" for i in range(40)], "label": [classes[i] for i in y],
                                      "predicted": [classes[i] for i in p], "confidence": 0.9}))
            folds.append({"fold": fold, "arch": arch, "balanced accuracy": balanced_accuracy_score(y, p)})
    return cv.CVResult(pd.concat(rows, ignore_index=True), pd.DataFrame(folds), "t", classes, {})


def test_each_fold_scores_the_mean_of_its_networks_beside_them(brain_planes, monkeypatch):
    from types import SimpleNamespace

    from fetal_lib.us import pipeline

    k = len(brain_planes.classes)

    def fake_run(data, arrays, settings, arch, seed, init_model=None):  # each "network" guesses with its own fixed random probabilities
        test = data.parts["test"]
        rng = np.random.default_rng([len(arch), int(test[0])])
        prob = rng.dirichlet(np.ones(k), len(test))
        return SimpleNamespace(probabilities=lambda calibrated, part: prob, y_test=data.labels("test"),
                               files_test=[data.items[i].path.name for i in test], groups_test=np.asarray(data.groups("test")),
                               fit=SimpleNamespace(best_epoch=1, epochs_run=2))

    def fake_mean(members, arrays):  # the deployed network's mean is checked against NumPy in test_ensemble.py
        assert set(arrays) == {"train", "val", "test"} and len(arrays["test"]) == len(members[0].y_test)
        prob = np.mean([m.probabilities(True, "test") for m in members], axis=0)
        return SimpleNamespace(**{**members[0].__dict__, "probabilities": lambda calibrated, part: prob})

    monkeypatch.setattr(pipeline, "run_model", fake_run)
    monkeypatch.setattr(pipeline, "architectures_mean_run", fake_mean)
    arrays = np.zeros((len(brain_planes.items), 4, 4, 1), np.float32)
    result = cv.cross_validate(brain_planes, arrays, {}, ["plain_cnn", "xception"], folds=2)
    columns = [f"p_{c.lower().replace('-', '_')}" for c in brain_planes.classes]
    df = result.per_image
    assert sorted(df["arch"].unique()) == ["ensemble", "plain_cnn", "xception"]
    members = [df[df["arch"] == a].set_index("file")[columns] for a in ("plain_cnn", "xception")]
    mean = (members[0] + members[1]) / 2
    ens = df[df["arch"] == "ensemble"].set_index("file")
    np.testing.assert_allclose(ens[columns].to_numpy(), mean.loc[ens.index].to_numpy())
    assert (ens["predicted"] == [brain_planes.classes[i] for i in mean.loc[ens.index].to_numpy().argmax(axis=1)]).all()
    row = result.folds[(result.folds["arch"] == "ensemble") & (result.folds["fold"] == 0)].iloc[0]
    fold0 = ens[ens["fold"] == 0]
    assert row["balanced accuracy"] == pytest.approx(balanced_accuracy_score(fold0["label"], fold0["predicted"]))
    assert pd.isna(row["epoch kept"])  # no training of its own
    one = cv.cross_validate(brain_planes, arrays, {}, ["xception"], folds=2)
    assert set(one.per_image["arch"]) == {"xception"}  # one network: no ensemble


def test_each_fold_scores_the_same_networks_through_other_test_time_views_never_the_cv_choice(brain_planes, monkeypatch):
    from types import SimpleNamespace

    from fetal_lib.us import pipeline

    k = len(brain_planes.classes)
    views_seen = []

    def fake_run(data, arrays, settings, arch, seed, init_model=None):
        test = data.parts["test"]
        y = data.labels("test")
        prob = np.eye(k)[(y + 1) % k]  # always wrong
        return SimpleNamespace(probabilities=lambda calibrated, part: prob, y_test=y, network=(arch, int(test[0])),
                               files_test=[data.items[i].path.name for i in test], groups_test=np.asarray(data.groups("test")),
                               fit=SimpleNamespace(best_epoch=3, epochs_run=4))

    def fake_views(run, arrays, tta):  # through the views, the same network is always right
        views_seen.append((run.network, tuple(tta)))
        prob = np.eye(k)[run.y_test]
        return SimpleNamespace(**{**run.__dict__, "probabilities": lambda calibrated, part: prob, "tta": tuple(tta)})

    monkeypatch.setattr(pipeline, "run_model", fake_run)
    monkeypatch.setattr(pipeline, "with_views", fake_views)
    arrays = np.zeros((len(brain_planes.items), 4, 4, 1), np.float32)
    result = cv.cross_validate(brain_planes, arrays, {}, ["xception"], folds=2, also_tta=[("hflip", "zoom"), ()])
    assert list(result.per_image["arch"].unique()) == ["xception", "xception [tta hflip+zoom]", "xception [tta none]"]
    assert len(views_seen) == 4 and {v for _, v in views_seen} == {("hflip", "zoom"), ()}
    assert views_seen[0][0] == views_seen[1][0] != views_seen[2][0]  # each fold's own network, scored twice more
    rows = result.folds.set_index(["fold", "arch"])
    assert rows.loc[(0, "xception [tta none]"), "balanced accuracy"] == 1.0 and rows.loc[(0, "xception"), "balanced accuracy"] == 0.0
    assert rows.loc[(1, "xception [tta hflip+zoom]"), "epoch kept"] == 3
    summary = cv.cv_summary(result, n_boot=50)
    assert summary["archs"]["xception [tta none]"]["balanced_accuracy"] == 1.0
    assert summary["chosen"] == "xception"  # a view variant is not a model of its own


def test_the_summary_pools_out_of_fold_predictions_and_chooses_the_best():
    result = _result(np.random.default_rng(0))
    summary = cv.cv_summary(result, n_boot=200)
    for arch, s in summary["archs"].items():
        df = result.per_image[result.per_image["arch"] == arch]
        assert s["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(df["label"], df["predicted"]))
        assert s["balanced_accuracy_ci95"][0] <= s["balanced_accuracy"] <= s["balanced_accuracy_ci95"][1]
        assert s["images"] == 120
    assert summary["chosen"] == "strong"
    table = cv.summary_table(summary)
    assert table.loc[table["CV choice"], "model"].tolist() == ["strong"]


def _doc(**changes):
    doc = {"metrics": {"chosen": "xception", "folds": 5, "archs": {"plain_cnn": {"images": 300}, "xception": {"images": 300}}},
           "provenance": {"profile": "cpu", "on_phantom": False, "parameters": {"epochs": 20}, "started_utc": "2026-11-27T06:00:00"}}
    for key, value in changes.items():
        section, field = key.split("__")
        doc[section][field] = value
    return doc


@pytest.mark.parametrize("doc, cv_choice, why", [
    (None, None, "none (no `fetal us cv` result"),
    (_doc(), "xception", "5-fold CV"),
    (_doc(provenance__parameters={"epochs": 10}), "xception", "not comparable: another recipe: epochs 10"),
    (_doc(provenance__on_phantom=True), "xception", "not comparable: it ran on a phantom"),
    (_doc(metrics__archs={"xception": {"images": 280}}), "xception", "not comparable: other data"),
    (_doc(metrics__chosen="resnet"), "resnet", "not comparable: its choice 'resnet' is not among"),
])
def test_a_cv_is_compared_with_the_validation_choice_only_for_this_recipe_and_data(doc, cv_choice, why):
    row = cv.compare("brain_planes", "plain_cnn", ["plain_cnn", "xception"], doc, {"epochs": 20}, "cpu", 300, False)
    assert row["deployed (validation split)"] == "plain_cnn"  # the CV never changes the deployed model
    assert row["CV choice"] == cv_choice and why in row["CV"]
    assert row["comparable"] == (why == "5-fold CV")
    assert row["agrees"] is (False if row["comparable"] else None)
    assert cv.compare("brain_planes", "xception", ["plain_cnn", "xception"], _doc(), {"epochs": 20}, "cpu", 300, False)["agrees"] is True


def test_a_cv_of_another_input_is_another_recipe():
    crop = {"margin": 1.15, "size": 160, "align": False}
    old = _doc()  # written before head crops existed: whole images
    row = cv.compare("brain_planes", "plain_cnn", ["plain_cnn", "xception"], old, {"epochs": 20, "head_crop": crop}, "cpu", 300, False)
    assert not row["comparable"] and "head_crop None" in row["CV"]
    cropped = _doc(provenance__parameters={"epochs": 20, "head_crop": crop})
    assert cv.compare("brain_planes", "plain_cnn", ["plain_cnn", "xception"], cropped, {"epochs": 20, "head_crop": crop}, "cpu", 300,
                      False)["comparable"]
    assert cv.input_label({"head_crop": {**crop, "align": True}}) == "head crop 160x160 (margin 1.15, aligned)"
    assert cv.input_label({"input_rows": 128, "input_cols": 128}) == "whole image 128x128"


def test_the_comparison_table_has_a_row_per_task_only_when_some_cv_exists():
    from types import SimpleNamespace

    data = SimpleNamespace(parts={"train": np.arange(250), "val": np.arange(50)}, source=SimpleNamespace(is_phantom=False))
    choices = {"brain_planes": "plain_cnn", "planes": "xception"}
    args = ({"brain_planes": data, "planes": data}, ["plain_cnn", "xception"], {"brain_planes": {"epochs": 20}, "planes": {"epochs": 20}}, "cpu")
    assert cv.comparison_table(choices, {"brain_planes": None, "planes": None}, *args).empty
    table = cv.comparison_table(choices, {"brain_planes": _doc(), "planes": None}, *args)
    assert table["task"].tolist() == ["brain_planes", "planes"]
    assert table["deployed (validation split)"].tolist() == ["plain_cnn", "xception"]
    assert table["comparable"].tolist() == [True, False] and table["agrees"].tolist()[0] is False


def test_variants_of_a_task_are_read_and_tabled(tmp_path):
    for name, params in (("brain_planes", {"head_crop": {"margin": 1.15, "size": 160}}),
                         ("brain_planes.whole", {"input_rows": 128, "input_cols": 128}), ("planes", {})):
        folder = tmp_path / "us_cv" / name
        folder.mkdir(parents=True)
        doc = _doc(provenance__parameters=params)
        doc["metrics"]["summary_table"] = [{"task": name.split(".")[0], "model": "xception", "balanced accuracy": 0.5}]
        doc["provenance"]["compute"] = {"precision": {"precision": "float32"}}
        (folder / "metrics.json").write_text(json.dumps(doc))
    variants = cv.read_variants("brain_planes", tmp_path)
    assert [n for n, _ in variants] == ["brain_planes", "brain_planes.whole"]
    table = cv.variants_table(variants)
    assert table["input"].tolist() == ["head crop 160x160 (margin 1.15)", "whole image 128x128"]
    assert table["results"].tolist() == ["us_cv/brain_planes", "us_cv/brain_planes.whole"]
    assert table["precision"].tolist() == ["float32", "float32"]
    assert cv.read_variants("anomaly", tmp_path) == [] and cv.variants_table([]).empty


def test_the_written_cv_is_read_back(tmp_path):
    folder = cv.results_dir("anomaly", tmp_path)
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(_doc()))
    assert cv.read("anomaly", tmp_path)["metrics"]["chosen"] == "xception"
    assert cv.read("planes", tmp_path) is None


@pytest.mark.slow
@pytest.mark.keras_backends
def test_fetal_us_cv_on_a_phantom_writes_what_the_chapter_reads(phantom_root, tmp_path, capsys, skull_finder_path):
    pytest.importorskip("keras")
    from fetal_lib.cli import main

    root = phantom_root(us_tasks.DATASET_OF["brain_planes"])
    code = main(["us", "cv", "--task", "brain_planes", "--profile", "smoke", "--data-dir", str(root.parent), "--data-source", "phantom",
                 "--folds", "2", "--archs", "plain_cnn,separable_cnn", "--set", "epochs=1", "--set", f"head_finder={skull_finder_path}",
                 # from scratch, on the task's own split: the phantom's 10 planes patients are too few for the smoke
                 # profile's task_init in a CV (the next test)
                 "--set", "task_init={}", "--set", "task_split_from={}", "--also-tta", "zoom",
                 "--results-dir", str(tmp_path / "us_cv" / "brain_planes")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines()[0].startswith("task,model,out-of-fold images")
    doc = cv.read("brain_planes", tmp_path)
    data = us_tasks.load_task("brain_planes", root.parent, "phantom", 0)
    side = len(data.parts["train"]) + len(data.parts["val"])
    assert doc["metrics"]["chosen"] in ("plain_cnn", "separable_cnn", "ensemble") and doc["provenance"]["on_phantom"]
    assert set(doc["metrics"]["archs"]) == {"plain_cnn", "separable_cnn", "ensemble", "plain_cnn [tta zoom]", "separable_cnn [tta zoom]"}
    assert doc["provenance"]["parameters"]["also_tta"] == ["zoom"] and "fold 1 separable_cnn [tta zoom]" in err
    assert {s["images"] for s in doc["metrics"]["archs"].values()} == {side}
    assert "fold 1 separable_cnn" in err and "fold 1 ensemble" in err and "the mean of the fold's networks" in err
    params = doc["provenance"]["parameters"]
    assert params["head_crop"] == {"margin": 1.15, "size": 72, "align": False} and params["input_rows"] == 72
    assert params["heads_found"] == len(data.items) and f"a head found in {len(data.items)} of {len(data.items)}" in err
    assert cv.input_label(params) == "head crop 72x72 (margin 1.15)"
    code = main(["us", "cv", "--task", "brain_planes", "--profile", "smoke", "--data-dir", str(root.parent), "--data-source", "phantom",
                 "--set", f"head_finder={tmp_path / 'absent.keras'}"])
    assert code == 2 and "absent.keras: no HC18 model here" in capsys.readouterr().err
    assert main(["us", "cv", "--task", "brain_planes", "--folds", "1"]) == 2
    assert main(["us", "cv", "--task", "brain_planes", "--also-tta", "hflip,shift"]) == 2
    assert "--also-tta: unknown test-time view 'shift'" in capsys.readouterr().err


def test_with_task_init_each_fold_starts_from_a_source_network_that_never_saw_its_patients(brain_planes, phantom_root, monkeypatch):
    """task_init: per fold and architecture, the source task trains without the fold's held-out and validation
    patients, on its own training part (epoch kept on its validation part), and that network starts the fold's."""
    from types import SimpleNamespace

    from fetal_lib.us import pipeline
    from fetal_lib.us import train as train_mod

    import dataclasses

    planes = us_tasks.load_task("planes", phantom_root(us_tasks.DATASET_OF["planes"]).parent, "phantom", 0)
    everyone = np.arange(len(planes.items))  # the phantom's 10 patients: each part holds them all, so that some are left in a fold
    planes = dataclasses.replace(planes, parts={"train": everyone, "val": everyone[::2], "test": everyone[:0]})
    source_arrays = np.arange(len(planes.items), dtype=np.float32).reshape(-1, 1, 1, 1)  # each image's index as its pixel
    trained, started = [], []

    def fake_train(config, x_train, y_train, x_val, y_val, k, **kw):
        net = object()
        trained.append((config.arch, x_train.ravel().astype(int), x_val.ravel().astype(int), k, net))
        return SimpleNamespace(model=net)

    def fake_run(data, arrays, settings, arch, seed, init_model=None):
        started.append((arch, init_model, set(data.groups("val")) | set(data.groups("test"))))
        test = data.parts["test"]
        prob = np.full((len(test), len(data.classes)), 1 / len(data.classes))
        return SimpleNamespace(probabilities=lambda calibrated, part: prob, y_test=data.labels("test"),
                               files_test=[data.items[i].path.name for i in test], groups_test=np.asarray(data.groups("test")),
                               fit=SimpleNamespace(best_epoch=1, epochs_run=2))

    monkeypatch.setattr(train_mod, "train", fake_train)
    monkeypatch.setattr(pipeline, "run_model", fake_run)
    settings = pipeline.task_settings(pipeline.profile_settings("smoke"), "planes")
    source = cv.SourceTask(planes, source_arrays, settings)
    arrays = np.zeros((len(brain_planes.items), 4, 4, 1), np.float32)
    cv.cross_validate(brain_planes, arrays, {}, ["plain_cnn"], folds=2, init_source=source)
    assert len(trained) == len(started) == 2
    for (arch, train_idx, val_idx, k, net), (run_arch, init, excluded) in zip(trained, started):
        assert arch == run_arch == "plain_cnn" and init is net and k == len(planes.classes)
        assert set(train_idx) <= set(planes.parts["train"]) and set(val_idx) <= set(planes.parts["val"])
        assert not {planes.items[i].group for i in np.concatenate([train_idx, val_idx])} & excluded
        assert set(train_idx) == {i for i in planes.parts["train"] if planes.items[i].group not in excluded}


def test_fetal_us_cv_with_task_init_on_a_phantom(phantom_root, tmp_path, capsys, skull_finder_path):
    pytest.importorskip("keras")
    from fetal_lib.cli import main

    root = phantom_root(us_tasks.DATASET_OF["brain_planes"])
    code = main(["us", "cv", "--task", "brain_planes", "--profile", "smoke", "--data-dir", str(root.parent), "--data-source", "phantom",
                 "--folds", "2", "--archs", "plain_cnn", "--set", "epochs=1", "--set", f"head_finder={skull_finder_path}",
                 "--set", "task_init={brain_planes: planes}", "--results-dir", str(tmp_path / "us_cv" / "brain_planes")])
    err = capsys.readouterr().err  # the phantom's 10 patients leave no planes validation patient in a fold: said, exit 2
    assert code == 2 and "start from planes's, trained per fold" in err
    assert "task_init: no planes val image is left without the fold's held-out and validation patients (10 planes patients" in err
    assert "--set 'task_init={}' runs the CV from scratch" in err
    code = main(["us", "cv", "--task", "brain_planes", "--profile", "smoke", "--data-dir", str(root.parent), "--data-source", "phantom",
                 "--set", "task_init={brain_planes: plane}"])
    assert code == 2 and "unknown task(s) plane" in capsys.readouterr().err
