"""The deployed classifier: calibrated probabilities, batches with bad files, save/load with its card, refusals.

A *brightness* network stands in for a trained one: global average pooling then one dense layer
whose logits make a dark image class 0, a mid-grey one class 1 and a bright one class 2, so every
answer is known without training.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

pytest.importorskip("keras")

from fetal_lib.errors import FetalInputError  # noqa: E402
from fetal_lib.model_card import card_path, read_card  # noqa: E402
from fetal_lib.us.classifier import UsClassifier, column_name, default_model_path, scores, softmax  # noqa: E402
from stand_ins import brightness_model  # noqa: E402

CLASSES = ["dark", "grey", "bright"]
LEVELS = {"dark": 25, "grey": 128, "bright": 230}


def square(value: int, side: int = 64) -> np.ndarray:
    return np.full((side, side), value, np.uint8)


@pytest.fixture(scope="module")
def classifier():
    return UsClassifier(brightness_model((32, 32)), "anomaly", CLASSES, (32, 32), temperature=1.0)


def test_probabilities_and_temperature(classifier):
    images = [square(LEVELS[c]) for c in CLASSES]
    prob = classifier.probabilities(images)
    assert prob.shape == (3, 3)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, atol=1e-9)
    assert list(prob.argmax(axis=1)) == [0, 1, 2]
    warm = UsClassifier(classifier.model, "anomaly", CLASSES, (32, 32), temperature=3.0).probabilities(images)
    assert list(warm.argmax(axis=1)) == [0, 1, 2]  # the temperature moves confidence, never the class
    assert np.all(warm.max(axis=1) < prob.max(axis=1))
    logits = classifier.logits_arrays(np.stack([np.full((32, 32, 1), v / 255, np.float32) for v in LEVELS.values()]))
    np.testing.assert_allclose(softmax(logits, 3.0), warm, atol=1e-6)


def test_predict_paths_reports_bad_files_and_classifies_the_rest(classifier, tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), square(230, 50))
    cv2.imwrite(str(tmp_path / "b.jpg"), cv2.cvtColor(square(25, 40), cv2.COLOR_GRAY2BGR))
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    paths = [tmp_path / "a.png", tmp_path / "missing.png", tmp_path / "text.png", tmp_path / "empty.png", tmp_path / "b.jpg"]
    rows, errors = classifier.predict_paths(paths)
    assert [r["filename"] for r in rows] == [str(tmp_path / "a.png"), str(tmp_path / "b.jpg")]
    assert [r["predicted"] for r in rows] == ["bright", "dark"]
    assert list(rows[0])[:6] == classifier.columns == ["filename", "predicted", "confidence", "p_dark", "p_grey", "p_bright"]
    for r in rows:
        assert sum(r[c] for c in classifier.probability_columns) == pytest.approx(1.0)
        assert r["confidence"] == max(r[c] for c in classifier.probability_columns)
    assert [(p.name, "not found" in m or "empty" in m or "not a readable image" in m) for p, m in errors] == [
        ("missing.png", True), ("text.png", True), ("empty.png", True)]


def test_save_and_load_with_card(classifier, tmp_path):
    clf = UsClassifier(classifier.model, "anomaly", CLASSES, (32, 32), temperature=1.7)
    path = clf.save(tmp_path / "us_anomaly.keras", {**clf.card_fields("cpu"), "metrics": {"test": {"accuracy": 1.0}}})
    card = read_card(path)
    assert card["framework"] == "keras" and card["task"] == "anomaly" and card["classes"] == CLASSES
    assert card["inference"]["temperature"] == pytest.approx(1.7) and card["input"]["rows"] == 32
    assert card["architecture"] is None  # not a registered network: the file's own architecture is loaded
    assert card["metrics"]["test"]["accuracy"] == 1.0 and card_path(path).with_suffix(".md").is_file()
    loaded = UsClassifier.load(path, "anomaly")
    assert loaded.classes == CLASSES and loaded.temperature == pytest.approx(1.7) and loaded.input_size == (32, 32)
    images = [square(v) for v in LEVELS.values()]
    np.testing.assert_allclose(loaded.probabilities(images), clf.probabilities(images), atol=1e-6)
    assert UsClassifier.load(path).task == "anomaly"  # no task asked: the model's own


def test_registered_network_is_rebuilt_from_its_card(tmp_path):
    from fetal_lib.networks.keras import create

    model = create("plain_cnn", input_shape=(32, 32, 1), num_classes=3, widths=(4, 8))
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype(np.float32)
    clf = UsClassifier(model, "brain_planes", ["tc", "tt", "tv"], (32, 32), 1.2, options={"widths": [4, 8]})
    assert clf.arch == "plain_cnn"  # from the model's registered name
    path = clf.save(tmp_path / "m.keras", clf.card_fields("smoke"))
    card = read_card(path)
    assert card["architecture"]["name"] == "plain_cnn"
    assert card["architecture"]["options"] == {"widths": [4, 8], "input_shape": [32, 32, 1], "num_classes": 3}
    loaded = UsClassifier.load(path, "brain_planes")
    np.testing.assert_allclose(loaded.logits_arrays(x), clf.logits_arrays(x), atol=1e-5)
    # options unknown: the card says so, and loading falls back to the file's own architecture
    vague = UsClassifier(model, "brain_planes", ["tc", "tt", "tv"], (32, 32))
    path2 = vague.save(tmp_path / "vague.keras", vague.card_fields("smoke"))
    assert read_card(path2)["architecture"]["options_complete"] is False
    np.testing.assert_allclose(UsClassifier.load(path2).logits_arrays(x), clf.logits_arrays(x), atol=1e-5)


def test_load_refusals(classifier, tmp_path):
    with pytest.raises(FetalInputError) as err:
        UsClassifier.load(tmp_path / "none.keras", "brain_planes")
    assert "fetal us train --task brain_planes" in str(err.value) and "fetal book --profile cpu --only us_classification" in str(err.value)
    path = classifier.save(tmp_path / "m.keras", classifier.card_fields("cpu"))
    with pytest.raises(FetalInputError) as err:
        UsClassifier.load(path, "planes")
    assert "'anomaly'" in str(err.value) and "'planes'" in str(err.value) and "m.keras" in str(err.value)
    with pytest.raises(FetalInputError, match="unknown task"):
        UsClassifier.load(path, "nonsense")
    card = read_card(path)
    for change, words in (({"framework": "torch"}, "framework 'torch'"), ({"task": None}, "not an ultrasound classifier"),
                          ({"classes": ["a", "b"]}, "3 outputs but its card lists 2 classes")):
        card_path(path).write_text(json.dumps({**card, **change}))
        with pytest.raises(FetalInputError, match=words):
            UsClassifier.load(path)
    card_path(path).unlink()
    with pytest.raises(FetalInputError, match="model card missing"):
        UsClassifier.load(path)


def test_scores_columns_and_default_path(monkeypatch, tmp_path):
    logits = np.array([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0], [0.0, 5.0]])
    s = scores(logits, np.array([0, 1, 1, 1]), 2)
    assert s["accuracy"] == 0.75 and s["balanced_accuracy"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert 0.0 <= s["ece"] <= 1.0 and s["nll"] > 0
    assert column_name("Fetal brain") == "p_fetal_brain" and column_name("Trans-thalamic") == "p_trans_thalamic"
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    assert default_model_path("planes") == tmp_path / "models" / "us_planes.keras"
    with pytest.raises(FetalInputError, match="unknown task"):
        default_model_path("plane")


def left_bright_model(size=(32, 32)):
    """Logits (mean of the left half, mean of the right half): a mirror swaps them exactly."""
    import keras

    inputs = keras.Input((*size, 1))
    half = size[1] // 2
    left = keras.layers.GlobalAveragePooling2D()(keras.layers.Cropping2D(((0, 0), (0, size[1] - half)))(inputs))
    right = keras.layers.GlobalAveragePooling2D()(keras.layers.Cropping2D(((0, 0), (half, 0)))(inputs))
    return keras.Model(inputs, keras.layers.Concatenate()([left, right]), name="left_right")


def test_mirror_tta_averages_the_logits_of_the_image_and_its_mirror(tmp_path):
    model = left_bright_model()
    x = np.zeros((2, 32, 32, 1), np.float32)
    x[0, :, :16] = 0.8  # bright on the left
    x[1, :, 16:] = 0.4  # dimmer, on the right
    plain = UsClassifier(model, "anomaly", ["left", "right"], (32, 32))
    mirrored = UsClassifier(model, "anomaly", ["left", "right"], (32, 32), tta="hflip")
    direct = plain.logits_arrays(x)
    np.testing.assert_allclose(direct, [[0.8, 0.0], [0.0, 0.4]], atol=1e-6)
    # the mirror swaps left and right, so the average is the same for both outputs: an independent reference
    np.testing.assert_allclose(mirrored.logits_arrays(x), [[0.4, 0.4], [0.2, 0.2]], atol=1e-6)
    path = mirrored.save(tmp_path / "m.keras", mirrored.card_fields("cpu"))
    assert read_card(path)["inference"]["tta"] == ["hflip"]
    assert UsClassifier.load(path).tta == ("hflip",)
    assert UsClassifier.load(plain.save(tmp_path / "p.keras", plain.card_fields("cpu"))).tta == ()


def test_unknown_test_time_views_are_refused():
    from fetal_lib.us.test_views import parse_tta

    assert parse_tta("hflip") == ("hflip",) and parse_tta("") == () and parse_tta(["hflip"]) == ("hflip",)
    assert parse_tta("hflip,zoom,rotate") == ("hflip", "zoom", "rotate")
    with pytest.raises(ValueError, match="unknown test-time view 'vflip'; known: hflip, zoom, rotate"):
        parse_tta("hflip,vflip")
