"""HCModel: image -> original-size probability -> ellipse in original pixels -> HC18 row."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`
from scipy import special

pytest.importorskip("keras")

from fetal_lib.data.hc18 import filled_ellipse  # noqa: E402
from fetal_lib.errors import FetalInputError  # noqa: E402
from fetal_lib.hc.measure import HCModel, check_pixel_size, read_pixel_sizes  # noqa: E402
from fetal_lib.model_card import card_path, read_card  # noqa: E402
from fetal_lib.model_card import save_keras as save_model  # noqa: E402


def exact_hc(a, b, pixel):
    return 4.0 * a * special.ellipe(1.0 - (b / a) ** 2) * pixel


@pytest.fixture(scope="module")
def model(intensity_model_path):
    return HCModel.load(intensity_model_path)


@pytest.mark.parametrize("shape", [(540, 800), (563, 799), (541, 738)])
def test_measure_array_in_original_pixels(model, shape):
    cx, cy, a, b, angle = shape[1] * 0.45, shape[0] * 0.52, 200.0, 160.0, 35.0
    image = np.where(filled_ellipse(shape, cx, cy, a, b, angle), 220, 15).astype(np.uint8)
    prob = model.probability(image)
    assert prob.shape == shape
    m = model.measure_array(image, 0.1, "x.png")
    assert m.hc_mm == pytest.approx(exact_hc(a, b, 0.1), rel=0.01)
    assert m.ellipse.cx == pytest.approx(cx, abs=2.0) and m.ellipse.cy == pytest.approx(cy, abs=2.0)
    assert m.ellipse.angle_rad == pytest.approx(math.radians(angle), abs=0.03)
    row = m.row()
    assert list(row) == ["filename", "center_x_mm", "center_y_mm", "semi_axes_a_mm", "semi_axes_b_mm", "angle_rad", "hc_mm"]
    assert row["center_x_mm"] == pytest.approx(m.ellipse.cx * 0.1)


def test_flip_tta_is_flip_equivariant(model):
    rng = np.random.default_rng(0)
    x = rng.random((1, 128, 192, 1)).astype(np.float32)
    p = model.predict_network(x)
    pf = model.predict_network(x[:, :, ::-1].copy())
    np.testing.assert_allclose(p[:, :, ::-1], pf, atol=1e-5)


def test_no_head_is_an_input_error(model):
    with pytest.raises(FetalInputError, match="no head found"):
        model.measure_array(np.zeros((540, 800), np.uint8), 0.1, "blank.png")


@pytest.mark.parametrize("value", [0, -0.1, float("nan"), "abc", None])
def test_bad_pixel_sizes(value):
    with pytest.raises(FetalInputError) as err:
        check_pixel_size("img.png", value)
    assert str(err.value).startswith("img.png:")


def test_missing_model_says_how_to_make_one(tmp_path):
    with pytest.raises(FetalInputError, match="fetal hc train"):
        HCModel.load(tmp_path / "none.keras")
    junk = tmp_path / "junk.keras"
    junk.write_text("not a model")
    with pytest.raises(FetalInputError, match="not a readable Keras model"):
        HCModel.load(junk)


def test_pixel_size_csv(tmp_path):
    path = tmp_path / "sizes.csv"
    path.write_text("filename,pixel size(mm),extra\r\n000_HC.png,0.2358,a\r\n001_HC.png,bad,b\r\n")
    sizes = read_pixel_sizes(path)
    assert sizes["000_HC.png"] == pytest.approx(0.2358)
    with pytest.raises(FetalInputError):
        check_pixel_size("001_HC.png", sizes["001_HC.png"])


def test_model_card_round_trip_sets_inference(intensity_model_path, tmp_path):
    base = HCModel.load(intensity_model_path)
    target = tmp_path / "models" / "m.keras"
    save_model(base.model, target, {"name": "t", "inference": {"threshold": 0.35, "tta": [], "min_agreement": 0.8, "min_axis_ratio": 0.5}})
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.card.json", "m.card.md", "m.keras"]
    assert read_card(target)["name"] == "t" and card_path(target).name == "m.card.json"
    loaded = HCModel.load(target)
    assert loaded.threshold == 0.35 and loaded.tta == [] and loaded.min_agreement == 0.8


def test_calibration_from_the_card_is_applied(intensity_model_path, tmp_path):
    from fetal_lib.hc.calibration import SizeCalibration

    base = HCModel.load(intensity_model_path)
    cal = SizeCalibration(intercept=0.03, slope_per_mm=0.0, centre_mm=150.0, hc_min_mm=50.0, hc_max_mm=350.0, n_images=100)
    target = tmp_path / "cal.keras"
    save_model(base.model, target, {"name": "t", "inference": {**base.settings(), "hc_calibration": cal.to_dict()}})
    calibrated = HCModel.load(target)
    assert calibrated.calibration == cal and calibrated.settings()["hc_calibration"] == cal.to_dict()
    image = np.where(filled_ellipse((540, 800), 380, 280, 200, 160, 20), 220, 15).astype(np.uint8)
    m = calibrated.measure_array(image, 0.1, "x.png")
    assert m.hc_uncalibrated_mm == pytest.approx(exact_hc(200, 160, 0.1), rel=0.01)
    assert m.hc_mm == pytest.approx(m.hc_uncalibrated_mm / 1.03, rel=1e-9)
    assert m.row()["semi_axes_a_mm"] == pytest.approx(max(m.ellipse.a, m.ellipse.b) * 0.1, rel=1e-6)


def test_bad_calibration_record_names_the_card(intensity_model_path, tmp_path):
    base = HCModel.load(intensity_model_path)
    target = tmp_path / "badcal.keras"
    save_model(base.model, target, {"name": "t", "inference": {"hc_calibration": {"intercept": 0.0}}})
    with pytest.raises(FetalInputError, match="badcal.card.json.*inference settings are not valid"):
        HCModel.load(target)
