"""`fetal us classify|train` and `fetal bench us` end to end through the CLI.

The classify tests use a *brightness* network saved with a card in tmp_path (global average pooling
and one dense layer: known answers, nothing trained). The train tests run the smoke profile's tiny
networks on phantoms (marked slow); the floor test swaps the training for a network that always
answers the same class, which must never be saved.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorflow")

from fetal_lib.cli import main  # noqa: E402
from fetal_lib.us.classifier import UsClassifier  # noqa: E402
from stand_ins import brightness_model, run_cli  # noqa: E402
from fetal_lib.us.tasks import PLANE_CLASSES, TASKS  # noqa: E402


@pytest.fixture(scope="module")
def planes_model(tmp_path_factory) -> Path:
    clf = UsClassifier(brightness_model((48, 64), 4), "planes", PLANE_CLASSES, (48, 64), temperature=2.0)
    return clf.save(tmp_path_factory.mktemp("model") / "us_planes.keras", clf.card_fields("cpu"))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for name, value in (("dark.png", 25), ("bright.png", 230)):
        cv2.imwrite(str(folder / name), np.full((60, 80), value, np.uint8))
    (folder / "text.png").write_text("hello, I am text")
    (folder / "empty.png").write_bytes(b"")
    return folder


def _rows(out: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(out)))


def test_classify_real_images(planes_model, real_dataset, capsys):
    paths = sorted((real_dataset("fetal_planes") / "images").glob("*.jpg"))[:3]
    code, out, err = run_cli(["us", "classify", *paths, "--model", planes_model], capsys)
    assert code == 0, err
    rows = _rows(out)
    columns = ["filename", "predicted", "confidence", "p_fetal_abdomen", "p_fetal_brain", "p_fetal_femur", "p_fetal_thorax"]
    assert list(rows[0]) == columns and len(rows) == 3
    assert [r["filename"] for r in rows] == [str(p) for p in paths]
    for r in rows:
        probs = [float(r[c]) for c in columns[3:]]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert r["predicted"] in PLANE_CLASSES and float(r["confidence"]) == pytest.approx(max(probs), abs=1e-6)


def test_bad_images_are_named_and_the_others_classified(planes_model, images, capsys):
    argv = ["us", "classify", images / "dark.png", images / "missing.png", images / "text.png", images / "empty.png",
            images / "bright.png", "--model", planes_model]
    code, out, err = run_cli(argv, capsys)
    assert code == 1
    rows = _rows(out)
    assert [Path(r["filename"]).name for r in rows] == ["dark.png", "bright.png"]
    assert [r["predicted"] for r in rows] == ["Fetal abdomen", "Fetal thorax"]  # darkest and brightest classes
    lines = [line for line in err.splitlines() if line.startswith("fetal: error:")]
    assert len(lines) == 3, err
    assert any("missing.png" in line and "not found" in line for line in lines)
    assert any("text.png" in line and "not a readable image" in line for line in lines)
    assert any("empty.png" in line and "empty" in line for line in lines)


def test_nothing_readable_is_status_2(planes_model, images, capsys):
    code, out, err = run_cli(["us", "classify", images / "text.png", images / "missing.png", "--model", planes_model], capsys)
    assert code == 2 and out == ""
    assert "text.png" in err and "missing.png" in err and "nothing classified" in err


def test_unknown_task_lists_the_known_ones(images, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["us", "classify", str(images / "dark.png"), "--task", "heart"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "heart" in err and all(t in err for t in TASKS)


def test_a_model_of_another_task_is_refused(planes_model, images, capsys):
    code, out, err = run_cli(["us", "classify", images / "dark.png", "--task", "anomaly", "--model", planes_model], capsys)
    assert code == 2 and out == ""
    assert "'planes'" in err and "'anomaly'" in err and "us_planes.keras" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_model_says_how_to_train_one(images, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    code, _, err = run_cli(["us", "classify", images / "dark.png", "--task", "brain_planes"], capsys)
    assert code == 2
    assert "us_brain_planes.keras" in err and "fetal us train --task brain_planes" in err
    assert "fetal book --profile cpu --only us_classification" in err


def test_json_and_atomic_output(planes_model, images, capsys, tmp_path):
    target = tmp_path / "out" / "classes.json"
    code, out, err = run_cli(["us", "classify", images / "bright.png", "--model", planes_model, "--format", "json", "-o", target], capsys)
    assert code == 0 and out == "", err
    items = json.loads(target.read_text())
    assert items[0]["predicted"] == "Fetal thorax" and items[0]["warnings"] == []
    assert sum(items[0][f"p_{c.lower().replace(' ', '_')}"] for c in PLANE_CLASSES) == pytest.approx(1.0)
    assert [p.name for p in target.parent.iterdir()] == ["classes.json"]


def test_bench_us_without_training(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    code, out, err = run_cli(["bench", "us", "--profile", "smoke", "--data-source", "phantom", "--arch", "plain_cnn,separable_cnn",
                              "--skip-train", "--n-images", "4", "--batch", "2", "--format", "json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    archs = {r["arch"]: r for r in result["architectures"]}
    assert set(archs) == {"plain_cnn", "separable_cnn"}
    for r in archs.values():
        assert r["parameters"] > 0 and r["gflops_per_image"] > 0 and r["inference_ms_per_image_batch1"] > 0
    assert archs["separable_cnn"]["parameters"] < archs["plain_cnn"]["parameters"]
    code, _, err = run_cli(["bench", "us", "--arch", "resnet", "--profile", "smoke", "--data-source", "phantom"], capsys)
    assert code == 2 and "resnet" in err


@pytest.mark.slow
def test_train_below_the_floor_saves_nothing(capsys, tmp_path, monkeypatch):
    """A network that always answers one class has balanced accuracy 1/K: refused, exit 1, no file."""
    import keras

    from fetal_lib.training.keras import FitResult
    from fetal_lib.us import train as us_train

    def constant_training(config, x_train, y_train, x_val, y_val, num_classes, progress=False, verbose=0):
        inputs = keras.Input((*config.input_size, 1))
        logits = keras.layers.Dense(num_classes)(keras.layers.GlobalAveragePooling2D()(inputs))
        model = keras.Model(inputs, logits)
        model.layers[-1].set_weights([np.zeros((1, num_classes), np.float32), np.eye(num_classes, dtype=np.float32)[0] * 3])
        return FitResult(model=model, epochs_run=1, best_epoch=1)

    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(us_train, "train", constant_training)
    target = tmp_path / "m.keras"
    code, out, err = run_cli(["us", "train", "--task", "planes", "--profile", "smoke", "--data-source", "phantom",
                              "--model", target], capsys)
    assert code == 1 and out == ""
    assert "below its sanity floor" in err and "NOT deployed" in err
    assert not target.exists() and not list(tmp_path.glob("m.*"))


@pytest.mark.slow
def test_train_saves_a_model_that_classify_uses(capsys, tmp_path, monkeypatch):
    """The smoke profile's tiny plain CNN on the phantom (floor margin lowered: two epochs on ~40
    images prove the path, not the model); brain planes are head crops, found by a stand-in finder."""
    from fetal_lib.model_card import save_keras
    from fetal_lib.us import floor as us_floor
    from stand_ins import skull_model

    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(us_floor, "FLOOR_MARGIN", -1.0)
    target = tmp_path / "models" / "brain.keras"
    code, out, err = run_cli(["us", "train", "--task", "brain_planes", "--profile", "smoke", "--data-source", "phantom",
                              "--arch", "separable_cnn", "--set", "epochs=1", "--model", target], capsys)
    assert code == 2 and "hc18_unet.keras: no HC18 model here to find the fetal head" in err  # the crop needs chapter 1's model
    finder = save_keras(skull_model(), tmp_path / "finder.keras", {"name": "skull", "inference": {"tta": []}})
    code, out, err = run_cli(["us", "train", "--task", "brain_planes", "--profile", "smoke", "--data-source", "phantom",
                              "--arch", "separable_cnn", "--set", "epochs=1", "--set", f"head_finder={finder}", "--model", target],
                             capsys)
    assert code == 0, err
    assert "task_seeds gives brain_planes 2 networks per architecture; `fetal us train` trains one" in err  # the smoke profile's
    summary = json.loads(out)
    assert summary["model"] == str(target) and summary["arch"] == "separable_cnn" and summary["task"] == "brain_planes"
    for when in ("before_temperature", "after_temperature"):
        assert set(summary["validation"][when]) >= {"accuracy", "balanced_accuracy", "ece"}
    assert summary["validation"]["before_temperature"]["accuracy"] == summary["validation"]["after_temperature"]["accuracy"]
    assert summary["temperature"] > 0 and summary["test"]["n"] > 0
    card = json.loads(target.with_name("brain.card.json").read_text())
    assert card["task"] == "brain_planes" and card["architecture"]["name"] == "separable_cnn"
    assert card["data"]["split"] == "grouped" and "PHANTOM" in card["data"]["dataset"]
    image = next((tmp_path / "phantoms" / "fetal_planes" / "images").glob("*Plane3*.jpg"))
    code, out, err = run_cli(["us", "classify", image, "--model", target], capsys)
    assert code == 0, err
    row = _rows(out)[0]
    assert row["predicted"] in card["classes"] and row["head_found"] == "True"
    assert card["input"]["head_crop"]["finder"] == "brain.head.keras" and target.with_name("brain.head.keras").is_file()
    code, _, err = run_cli(["us", "train", "--profile", "smoke", "--data-source", "phantom", "--arch", "unet"], capsys)
    assert code == 2 and "unet" in err and "plain_cnn" in err
    code, _, err = run_cli(["us", "train", "--profile", "smoke", "--data-source", "phantom", "--arch", "ensemble"], capsys)
    assert code == 2 and "unknown network 'ensemble'" in err  # the mean of trained networks is not trained on its own


@pytest.mark.slow
def test_bench_us_training_figure(capsys, tmp_path, monkeypatch):
    """A few optimiser steps of the profile's recipe per network (slow: it trains)."""
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    code, out, err = run_cli(["bench", "us", "--profile", "smoke", "--data-source", "phantom", "--arch", "plain_cnn",
                              "--n-images", "2", "--train-images", "8", "--train-steps", "1"], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert "PHANTOM" in lines[0] and lines[-1].startswith("plain_cnn:") and "training" in lines[-1] and "images/s" in lines[-1]


def test_train_refuses_an_unknown_test_time_view_before_loading_data(capsys):
    from fetal_lib.cli import main

    code = main(["us", "train", "--task", "planes", "--profile", "smoke", "--set", "tta=vflip"])
    captured = capsys.readouterr()
    assert code == 2 and "unknown test-time view 'vflip'" in captured.err and captured.out == ""
