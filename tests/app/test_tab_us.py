"""fetal_lib.app.tab_us: the classification is `fetal us classify`'s (and the brightness network's
known answer); bad images are refused with one line naming the file."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from fetal_lib.app import tab_us
from fetal_lib.app.uploads import UploadFolder
from fetal_lib.errors import FetalInputError
from stand_ins import cli_json


SLOT = ("us", "planes")  # the slot fixture (conftest.py)


def _brightness_answer(path, classes, size=(48, 64), temperature=2.0) -> np.ndarray:
    """Independent reference: the mean of the letterboxed input (zero padding), then the network's logits."""
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).astype(np.float64)
    scale = min(size[0] / grey.shape[0], size[1] / grey.shape[1])
    inner = cv2.resize(grey, (round(grey.shape[1] * scale), round(grey.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    m = inner.sum() / 255.0 / (size[0] * size[1])
    c = np.linspace(0.1, 0.9, len(classes))
    z = 100 * (2 * c * m - c**2) / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


def test_the_answer_is_fetal_us_classify_s(slot, models_dir, planes_image, capsys) -> None:
    a = tab_us.predict(slot, planes_image)
    row = cli_json(["us", "classify", planes_image, "--model", models_dir / "us_planes.keras", "--format", "json"], capsys)[0]
    assert a.predicted == row["predicted"] and a.confidence == pytest.approx(row["confidence"], abs=1e-12)
    for cls, col in zip(slot.model.classes, slot.model.probability_columns):
        assert a.probabilities[cls] == pytest.approx(row[col], abs=1e-12)
    reference = _brightness_answer(planes_image, slot.model.classes)
    assert a.predicted == slot.model.classes[int(reference.argmax())]
    assert list(a.probabilities.values()) == pytest.approx(reference.tolist(), abs=0.02)
    assert sum(a.probabilities.values()) == pytest.approx(1.0)
    image = cv2.imread(str(planes_image), cv2.IMREAD_GRAYSCALE)
    assert a.gradcam_rgb.shape == (*image.shape, 3) and a.card.name == "Test planes classifier (brightness)"
    md = tab_us.answer_markdown(a)
    assert all(f"| {c} | {p:.4f} |" in md for c, p in a.probabilities.items())


def test_every_task_has_its_model(slots) -> None:
    assert {s.key: len(s.model.classes) for s in slots["us"]} == {"planes": 4, "brain_planes": 3, "anomaly": 2, "anomaly_type": 4}


def test_gradcam_layer() -> None:
    from fetal_lib.networks.keras import create
    from fetal_lib.us.classifier import UsClassifier

    plain = UsClassifier(create("plain_cnn", input_shape=(32, 32, 1), num_classes=2, widths=[2, 2]), "anomaly",
                         ["normal", "abnormal"], (32, 32), arch="plain_cnn")
    assert tab_us.gradcam_layer_of(plain) == "last_conv"


def test_bad_images(slot, tmp_path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(FetalInputError, match="not a readable image") as info:
        tab_us.predict(slot, tmp_path / "notes.png")
    assert info.value.path.name == "notes.png"
    with pytest.raises(FetalInputError, match="empty"):
        tab_us.predict(slot, tmp_path / "empty.jpg")


def test_respond_answers_then_deletes_the_upload(slot, planes_image, tmp_path) -> None:
    uploads = UploadFolder.create(tmp_path)
    upload = uploads.root / "u1" / planes_image.name
    upload.parent.mkdir()
    shutil.copy(planes_image, upload)
    md, probabilities, gradcam, card, *cleared = tab_us.respond(slot, uploads, str(upload))
    assert md.startswith("### ") and abs(sum(probabilities.values()) - 1) < 1e-9 and gradcam is not None
    assert cleared == [None, None] and uploads.files() == []
    md, probabilities, *_ = tab_us.respond(slot, uploads, str(upload))
    assert md.startswith("**Cannot classify.**") and probabilities is None
