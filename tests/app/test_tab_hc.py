"""fetal_lib.app.tab_hc: the head-circumference answer is `fetal hc measure`'s, and bad input is refused
with one line naming the file (no browser: the handler functions themselves)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy import special

from fetal_lib.app import tab_hc
from fetal_lib.app.uploads import UploadFolder
from fetal_lib.errors import FetalInputError
from stand_ins import cli_json


SLOT = ("hc", "hc18_unet")  # the slot fixture (conftest.py)


def test_the_answer_is_fetal_hc_measure_s(slot, models_dir, hc18_image, capsys) -> None:
    path, pixel = hc18_image
    a = tab_hc.predict(slot, path, pixel)
    row = cli_json(["hc", "measure", path, "--pixel-size", repr(pixel), "--model", models_dir / "hc18_unet.keras", "--format", "json"],
                   capsys)[0]
    assert a.hc_mm == pytest.approx(row["hc_mm"], rel=1e-12) and a.row["semi_axes_a_mm"] == pytest.approx(row["semi_axes_a_mm"])
    # independent references: the ellipse's exact perimeter, its axes, Hadlock's formula written out
    big, small = row["semi_axes_a_mm"], row["semi_axes_b_mm"]
    assert a.hc_mm == pytest.approx(4 * big * special.ellipe(1 - (small / big) ** 2), rel=1e-4)
    assert (a.ofd_mm, a.bpd_mm) == (pytest.approx(2 * big), pytest.approx(2 * small))
    cm = a.hc_mm / 10
    assert a.ga_weeks == pytest.approx(8.96 + 0.540 * cm + 0.0003 * cm**3)
    assert a.ellipse_rgb.shape == a.gradcam_rgb.shape == (540, 800, 3) and a.gradcam_rgb.dtype == np.uint8
    assert a.card.name == "Test HC model (bright = head)" and a.card.metrics["hc_abs_diff_mean_mm"] == 2.5
    md = tab_hc.answer_markdown(a)
    assert f"| HC (head circumference) | {a.hc_mm:.2f} mm |" in md and "Check this fit" in md  # the fit's warnings are shown


def test_the_winner_is_absent_with_the_command_that_makes_it(slots) -> None:
    winner = next(s for s in slots["hc"] if s.key == "seg_winner")
    assert not winner.ready and "best.pt" in winner.problem and "fetal book --profile cpu --only seg_benchmark" in winner.problem


@pytest.mark.parametrize("pixel, words", [(None, "no pixel size given"), ("", "no pixel size given"), (float("nan"), "no pixel size"),
                                          (-0.1, "pixel size must be a positive number"), ("abc", "is not a number")])
def test_bad_pixel_sizes(slot, hc18_image, pixel, words) -> None:
    with pytest.raises(FetalInputError, match=words) as info:
        tab_hc.predict(slot, hc18_image[0], pixel)
    assert info.value.path.name == hc18_image[0].name


def test_a_non_image_and_an_image_without_a_head(slot, tmp_path) -> None:
    import cv2

    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(FetalInputError, match="not a readable image"):
        tab_hc.predict(slot, tmp_path / "notes.png", 0.1)
    cv2.imwrite(str(tmp_path / "black.png"), np.zeros((300, 400), np.uint8))
    with pytest.raises(FetalInputError, match="no head found") as info:
        tab_hc.predict(slot, tmp_path / "black.png", 0.1)
    assert info.value.path.name == "black.png"


def test_respond_answers_then_deletes_the_upload(slot, hc18_image, tmp_path) -> None:
    uploads = UploadFolder.create(tmp_path)
    upload = uploads.root / "h1" / hc18_image[0].name
    upload.parent.mkdir()
    shutil.copy(hc18_image[0], upload)
    md, ellipse, gradcam, card, file_value, preview = tab_hc.respond(slot, uploads, str(upload), hc18_image[1])
    assert md.startswith("### HC ") and ellipse is not None and gradcam is not None
    assert "Test HC model" in card and "not a medical device" in card
    assert file_value is None and preview is None and uploads.files() == []
    md, *rest = tab_hc.respond(slot, uploads, str(upload), hc18_image[1])  # the same upload again: gone
    assert md.startswith("**Cannot measure.**") and "upload the file again" in md and rest[0] is None
    md, *_ = tab_hc.respond(slot, uploads, None, 0.1)
    assert md == "**Cannot measure.** no file: upload an ultrasound image first"


def test_the_chapter_2_winner_is_served_when_present(tmp_path) -> None:
    """A torch segmenter saved as seg_benchmark/best.pt (chapter 2's winner) is offered and explained."""
    torch = pytest.importorskip("torch")
    from fetal_lib.model_card import save_torch
    from fetal_lib.networks import torch as torch_nets
    from fetal_lib.torch_segmenter import TorchSegmenter

    torch.manual_seed(0)
    options = {"base_width": 2, "depth": 3}
    seg = TorchSegmenter(torch_nets.create("attention_unet", **options).eval(), "attention_unet", options, 32, 48)
    save_torch(seg.net, tmp_path / "seg_benchmark" / "best.pt", {**seg.card_fields("smoke"), "name": "Test winner"})
    hc, winner = tab_hc.load_models(tmp_path)
    assert not hc.ready and "fetal hc train" in hc.problem
    assert winner.ready and winner.card.name == "Test winner"
    image = (np.random.default_rng(0).random((60, 90)) * 255).astype(np.uint8)
    heat, note = tab_hc._gradcam(winner.model, image)
    assert note is None and heat.shape == (60, 90, 3)


def test_a_network_grad_cam_cannot_explain_still_measures(slot, tmp_path) -> None:
    """Grad-CAM is an extra: a network without the explained layer is measured, and the page says why there is no map."""
    import keras

    from fetal_lib.app.slots import Slot
    from fetal_lib.data.hc18 import filled_ellipse
    from fetal_lib.hc.measure import HCModel

    inputs = keras.Input((128, 192, 1))
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([np.full((1, 1, 1, 1), 40.0, np.float32), np.array([-20.0], np.float32)])
    bare = Slot("bare", "bare", slot.path, HCModel(model), slot.card)
    import cv2

    cv2.imwrite(str(tmp_path / "ellipse.png"), np.where(filled_ellipse((270, 400), 200.0, 135.0, 100.0, 80.0, 30.0), 220, 15)
                .astype(np.uint8))
    a = tab_hc.predict(bare, tmp_path / "ellipse.png", 0.1)
    assert a.gradcam_rgb is None and any("Grad-CAM not available" in n for n in a.notes)
    assert a.hc_mm == pytest.approx(4 * 10.0 * special.ellipe(1 - 0.8**2), rel=0.02)  # a = 100 px, b = 80 px at 0.1 mm
