"""Chapter 1's cascade: the second look at the head, its card, `fetal hc measure` with it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`
from scipy import special

pytest.importorskip("keras")

from fetal_lib.data.hc18 import filled_ellipse  # noqa: E402
from fetal_lib.errors import FetalInputError  # noqa: E402
from fetal_lib.hc.band import BandConfig  # noqa: E402
from fetal_lib.hc.cascade import CASCADE_KEY, CascadeHCModel, JitterConfig, RefinerData, refiner_batches  # noqa: E402
from fetal_lib.hc.measure import HCModel  # noqa: E402
from fetal_lib.model_card import save_keras  # noqa: E402

from .conftest import make_intensity_model  # noqa: E402

BAND = BandConfig(rows=32, cols=64, pad=8, half_width=0.3)
A, B, ANGLE = 200.0, 160.0, 25.0


def exact_hc(a, b, pixel):
    return 4.0 * a * special.ellipe(1.0 - (b / a) ** 2) * pixel


def head_image(shape=(540, 800)):
    return np.where(filled_ellipse(shape, 390.0, 280.0, A, B, ANGLE), 220, 15).astype(np.uint8)


@pytest.fixture(scope="module")
def cascade_model(intensity_model_path):
    first = HCModel.load(intensity_model_path)
    return CascadeHCModel(first, make_intensity_model(BAND.shape), {"band": BAND.to_dict(), "threshold": 0.5})


def test_the_cascade_measures_the_head_with_both_ellipses(cascade_model):
    m = cascade_model.measure_array(head_image(), 0.1, "x.png")
    assert m.hc_mm == pytest.approx(exact_hc(A, B, 0.1), rel=0.01)
    assert m.first_ellipse is not None and m.hc_first_stage_mm == pytest.approx(exact_hc(A, B, 0.1), rel=0.02)
    assert [colour for _, colour in m.drawn_ellipses()] == [(255, 150, 0), (0, 255, 0)]
    assert not any("disagree" in w for w in m.warnings)


def test_the_stages_disagreeing_is_flagged_by_the_circumference_change():
    from fetal_lib.hc.measure import MAX_STAGE_DISAGREEMENT, stage_checks
    from fetal_lib.metrics.biometry import Ellipse

    first = Ellipse(400.0, 270.0, 200.0, 160.0, 0.4)
    assert stage_checks(first, first) == [] and MAX_STAGE_DISAGREEMENT == 0.03
    assert stage_checks(Ellipse(401.0, 271.0, 200.0 * 1.02, 160.0 * 1.02, 0.4), first) == []  # 2 %: agrees
    (warning,) = stage_checks(Ellipse(400.0, 270.0, 200.0 * 0.95, 160.0 * 0.95, 0.4), first)
    assert "the two stages disagree" in warning and "-5.0 %" in warning
    # the check is on the circumference: a turned ellipse of the same axes agrees
    assert not any("disagree" in w for w in stage_checks(first, Ellipse(400.0, 270.0, 200.0, 160.0, 0.0)))


def test_the_mean_combination_averages_the_two_maps(cascade_model):
    image = head_image()
    refined, first_head = cascade_model.probability_and_first(image)
    first_prob = cascade_model.first.probability(image)
    mean = CascadeHCModel(cascade_model.first, cascade_model.refiner, {"band": BAND.to_dict(), "combine": "mean"})
    np.testing.assert_allclose(mean.probability(image), 0.5 * (refined + first_prob), atol=1e-5)
    assert first_head is not None


def test_no_head_from_the_first_stage_is_no_head(cascade_model):
    with pytest.raises(FetalInputError, match="no head found"):
        cascade_model.measure_array(np.zeros((540, 800), np.uint8), 0.1, "blank.png")


def test_a_second_stage_of_another_input_size_is_refused(intensity_model_path):
    first = HCModel.load(intensity_model_path)
    with pytest.raises(ValueError, match="second stage takes inputs"):
        CascadeHCModel(first, make_intensity_model((64, 96)), {"band": BAND.to_dict()})
    with pytest.raises(ValueError, match="combine"):
        CascadeHCModel(first, make_intensity_model(BAND.shape), {"band": BAND.to_dict(), "combine": "max"})


def _save_cascade(tmp_path, first_path):
    first = HCModel.load(first_path)
    refiner_path = tmp_path / "refine.keras"
    save_keras(make_intensity_model(BAND.shape), refiner_path, {"name": "refiner"})
    target = tmp_path / "hc18_unet.keras"
    cascade = CascadeHCModel(first, make_intensity_model(BAND.shape), {"band": BAND.to_dict(), "threshold": 0.45})
    save_keras(first.model, target, {"name": "t", "inference": first.settings(),
                                     CASCADE_KEY: {"model": refiner_path.name, "inference": cascade.settings()}})
    return target, refiner_path


def test_a_card_naming_a_second_stage_loads_the_cascade(intensity_model_path, tmp_path):
    target, refiner_path = _save_cascade(tmp_path, intensity_model_path)
    loaded = HCModel.load(target)
    assert isinstance(loaded, CascadeHCModel) and loaded.threshold == 0.45 and loaded.band == BAND
    assert type(HCModel.load(target, first_stage_only=True)) is HCModel
    refiner_path.unlink()
    with pytest.raises(FetalInputError, match="refine.keras.*second-stage model the card names is missing"):
        HCModel.load(target)


def test_fetal_hc_measure_uses_the_cascade_and_draws_both_ellipses(intensity_model_path, tmp_path, capsys):
    import cv2

    from fetal_lib.cli import main

    target, _ = _save_cascade(tmp_path, intensity_model_path)
    image_path = tmp_path / "001_HC.png"
    cv2.imwrite(str(image_path), head_image())
    assert main(["hc", "measure", str(image_path), "--pixel-size", "0.1", "--model", str(target), "--format", "json",
                 "--overlay", str(tmp_path / "overlays")]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["hc_mm"] == pytest.approx(exact_hc(A, B, 0.1), rel=0.01) and "hc_first_stage_mm" in row
    overlay = cv2.cvtColor(cv2.imread(str(tmp_path / "overlays" / "001_HC_hc.png")), cv2.COLOR_BGR2RGB)
    assert ((overlay == (0, 255, 0)).all(axis=-1)).any()  # the measured ellipse, green (drawn over the first stage's: here they coincide)
    assert main(["hc", "measure", str(image_path), "--pixel-size", "0.1", "--model", str(target), "--format", "json", "--first-stage"]) == 0
    assert "hc_first_stage_mm" not in json.loads(capsys.readouterr().out)[0]


def test_training_bands_are_seeded_and_follow_the_jittered_ellipse():
    from fetal_lib.metrics.biometry import Ellipse

    image = head_image()
    mask = image > 100
    ellipse = Ellipse(390.0, 280.0, A, B, math.radians(ANGLE))
    data = RefinerData([image, image], [mask, mask], [ellipse, ellipse], np.zeros((1, *BAND.shape, 1)), np.zeros((1, *BAND.shape, 1)), [])
    batches = refiner_batches(data, BAND, JitterConfig(), batch_size=2, seed=3, intensity=False)
    x, y = batches[0]
    assert x.shape == y.shape == (2, *BAND.shape, 1)
    np.testing.assert_array_equal(x, batches[0][0])
    assert not np.array_equal(x[0], x[1])  # two draws of the jitter
    # without intensity changes the image band and the mask band agree: bright is head
    assert np.mean((x > 0.5) == (y > 0.5)) > 0.97
    batches.set_epoch(1)
    assert not np.array_equal(x, batches[0][0])


def test_the_second_stages_grad_cam_lies_in_the_band_and_is_empty_without_a_head(intensity_model_path):
    from fetal_lib.hc.band import band_to_image
    from fetal_lib.hc.explain import gradcam_second_stage
    from fetal_lib.hc.train import TrainConfig, build_model

    first = HCModel.load(intensity_model_path)
    unet = build_model(TrainConfig(input_shape=BAND.shape, filters=2, depth=2))  # the second stage's architecture, untrained
    cascade = CascadeHCModel(first, unet, {"band": BAND.to_dict()})
    image = head_image()
    heat = gradcam_second_stage(cascade, image)
    assert heat.shape == image.shape and heat.min() >= 0.0 and heat.max() <= 1.0
    _, head = cascade.locate(image)
    in_band = band_to_image(np.ones(BAND.shape, np.float32), head.ellipse, BAND, image.shape, inside=0.0) > 0
    assert not heat[~in_band].any()
    assert not gradcam_second_stage(cascade, np.zeros((540, 800), np.uint8)).any()
