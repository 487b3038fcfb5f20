"""The head crop of brain-plane images: geometry against SciPy and moments, the finder, the cache,
and a head-cropped classifier saved, loaded and run through ``fetal us classify``.

A *skull* network (``stand_ins.skull_model``) stands in for chapter 1's U-Net: its probability is
the image thresholded at mid-grey, so a bright filled ellipse on a dark background is found
exactly where it was drawn.
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

pytest.importorskip("keras")

from fetal_lib.errors import FetalInputError  # noqa: E402
from fetal_lib.io import file_sha256  # noqa: E402
from fetal_lib.metrics.biometry import Ellipse  # noqa: E402
from fetal_lib.us import head_crop  # noqa: E402
from fetal_lib.us.head_crop import HeadCropSpec, HeadFinder, crop_head  # noqa: E402

from stand_ins import brightness_model, skull_model  # noqa: E402


def head_image(shape=(300, 400), cx=210.0, cy=140.0, a=90.0, b=70.0, angle_deg=25.0) -> np.ndarray:
    image = np.full(shape, 20, np.uint8)
    cv2.ellipse(image, ((cx, cy), (2 * a, 2 * b), angle_deg), 200, -1, cv2.LINE_AA)
    return image


@pytest.fixture(scope="module")
def finder():
    from fetal_lib.hc.measure import HCModel

    return HeadFinder(HCModel(skull_model(), {"tta": []}))


def _moments(crop: np.ndarray):
    m = cv2.moments((crop > 0.5).astype(np.uint8), binaryImage=True)
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    mu20, mu02, mu11 = m["mu20"] / m["m00"], m["mu02"] / m["m00"], m["mu11"] / m["m00"]
    common = math.sqrt(((mu20 - mu02) / 2) ** 2 + mu11**2)
    major = 2 * math.sqrt((mu20 + mu02) / 2 + common)  # semi-axis of the ellipse of these moments
    angle = 0.5 * math.degrees(math.atan2(2 * mu11, mu20 - mu02))
    return cx, cy, major, angle


def test_crop_is_the_box_scipy_samples_when_enlarging() -> None:
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 80)).astype(np.uint8)
    ellipse = Ellipse(41.0, 27.5, 12.0, 9.0, 0.3)
    spec = HeadCropSpec(margin=1.25, size=48, align=False)
    crop = crop_head(image, ellipse, spec)
    half = spec.margin * ellipse.a
    step = 2 * half / spec.size  # original pixels per crop pixel
    u = (np.arange(spec.size) - (spec.size - 1) / 2) * step
    rows, cols = np.meshgrid(ellipse.cy + u, ellipse.cx + u, indexing="ij")
    reference = map_coordinates(image.astype(np.float64) / 255, [rows, cols], order=1, mode="constant", cval=0.0)
    inner = slice(2, -2)  # the border rows mix in the zero outside differently
    np.testing.assert_allclose(crop[inner, inner], reference[inner, inner], atol=1e-4)


@pytest.mark.parametrize("align", [False, True])
def test_crop_centres_and_scales_the_head(align: bool) -> None:
    image = head_image(angle_deg=35.0)
    ellipse = Ellipse(210.0, 140.0, 90.0, 70.0, math.radians(35.0))
    spec = HeadCropSpec(margin=1.2, size=96, align=align)
    crop = crop_head(image, ellipse, spec)
    assert crop.shape == (96, 96) and crop.dtype == np.float32 and 0.0 <= crop.min() and crop.max() <= 1.0
    cx, cy, major, angle = _moments(crop)
    assert cx == pytest.approx(47.5, abs=0.5) and cy == pytest.approx(47.5, abs=0.5)
    assert major == pytest.approx(96 / (2 * 1.2), rel=0.03)  # the major semi-axis is size / (2 margin) crop pixels
    assert angle == pytest.approx(0.0 if align else 35.0, abs=1.5)


def test_outside_the_image_is_black_and_bad_specs_are_refused() -> None:
    image = np.full((100, 100), 255, np.uint8)
    crop = crop_head(image, Ellipse(5.0, 50.0, 30.0, 20.0, 0.0), HeadCropSpec(1.5, 64))
    assert crop[:, :5].max() == 0.0 and crop[:, -10:].min() == pytest.approx(1.0)
    for bad in ({"margin": 0.1}, {"margin": float("nan")}, {"size": 8}):
        with pytest.raises(ValueError):
            HeadCropSpec(**{"margin": 1.15, "size": 64, **bad})
    assert HeadCropSpec.from_dict(HeadCropSpec(1.3, 80, True).to_dict()) == HeadCropSpec(1.3, 80, True)


def test_plausible_heads() -> None:
    assert head_crop.plausible(Ellipse(50, 40, 30, 20, 0.0), (80, 100))
    assert not head_crop.plausible(Ellipse(120, 40, 30, 20, 0.0), (80, 100))  # centre outside
    assert not head_crop.plausible(Ellipse(50, 40, 5, 4, 0.0), (80, 100))  # 10 px of 80: too small
    assert not head_crop.plausible(Ellipse(50, float("nan"), 30, 20, 0.0), (80, 100))


def test_finder_finds_the_drawn_head_and_none_in_a_blank_image(finder) -> None:
    found = finder.find(head_image())
    assert found is not None
    assert (found.cx, found.cy) == pytest.approx((210.0, 140.0), abs=3.0)
    assert found.a == pytest.approx(90.0, rel=0.05) and found.b == pytest.approx(70.0, rel=0.05)
    assert finder.find(np.full((300, 400), 20, np.uint8)) is None
    x, head = head_crop.head_input(np.full((300, 400), 20, np.uint8), finder, HeadCropSpec(1.15, 64))
    from fetal_lib.us.arrays import to_input

    assert head is None and np.array_equal(x, to_input(np.full((300, 400), 20, np.uint8), (64, 64)))  # whole image instead


def test_load_head_arrays_flags_and_caches(tmp_path) -> None:
    from fetal_lib.hc.measure import HCModel
    from fetal_lib.model_card import save_keras

    path = save_keras(skull_model(), tmp_path / "finder.keras", {"name": "skull", "inference": {"tta": []}})
    finder = HeadFinder.load(path)
    assert finder.sha256 == file_sha256(path) and isinstance(finder.hc_model, HCModel)
    cv2.imwrite(str(tmp_path / "head.png"), head_image())
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((300, 400), 20, np.uint8))
    items = [tmp_path / "head.png", tmp_path / "blank.png"]
    spec = HeadCropSpec(1.15, 64)
    cache = tmp_path / "cache"
    x, found = head_crop.load_head_arrays(items, finder, spec, cache)
    assert x.shape == (2, 64, 64, 1) and found.tolist() == [True, False]
    stored = list(cache.glob("us_head_*.npz"))
    assert len(stored) == 1
    x2, found2 = head_crop.load_head_arrays(items, finder, spec, cache)
    assert np.array_equal(x, x2) and found2.tolist() == [True, False]
    head_crop.load_head_arrays(items, finder, HeadCropSpec(1.3, 64), cache)
    assert len(list(cache.glob("us_head_*.npz"))) == 2  # another margin: another key
    with pytest.raises(FetalInputError, match="no HC18 model here"):
        HeadFinder.load(tmp_path / "absent.keras")


def test_head_cropped_classifier_saves_its_finder_and_flags_images_without_a_head(tmp_path, capsys) -> None:
    from fetal_lib.hc.measure import HCModel
    from fetal_lib.model_card import read_card, save_keras
    from fetal_lib.us.classifier import UsClassifier

    source = save_keras(skull_model(), tmp_path / "hc18_unet.keras",
                        {"name": "skull", "inference": {"tta": []}, "cascade": {"model": "hc18_refine.keras"}})
    finder = HeadFinder.load(source)
    spec = HeadCropSpec(1.15, 48)
    with pytest.raises(ValueError, match="head finder"):
        UsClassifier(brightness_model((48, 48)), "brain_planes", ["dark", "grey", "bright"], (48, 48), head_crop=spec)
    clf = UsClassifier(brightness_model((48, 48)), "brain_planes", ["dark", "grey", "bright"], (48, 48), head_crop=spec, finder=finder)
    model_path = clf.save(tmp_path / "models" / "us_brain_planes.keras", {"profile": "cpu"})
    head_path = tmp_path / "models" / "us_brain_planes.head.keras"
    card = read_card(model_path)
    assert card["input"]["head_crop"]["finder"] == head_path.name
    assert card["input"]["head_crop"]["finder_sha256"] == file_sha256(head_path)
    assert card["input"]["head_crop"]["finder_copied_from"]["sha256"] == file_sha256(source)
    assert "cascade" not in read_card(head_path)  # the copy is the first stage alone

    loaded = UsClassifier.load(model_path, "brain_planes")
    assert loaded.head_crop == spec and isinstance(loaded.finder.hc_model, HCModel)
    cv2.imwrite(str(tmp_path / "head.png"), head_image())
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((300, 400), 20, np.uint8))
    rows, errors = loaded.predict_paths([tmp_path / "head.png", tmp_path / "blank.png"])
    assert errors == [] and [r["head_found"] for r in rows] == [True, False]
    assert loaded.columns[-1] == "head_found"
    # the crop is about half head (mean ~0.4: grey); the whole image is a sixth head (mean ~0.19: dark)
    assert rows[0]["predicted"] == "grey" and clf.probabilities([head_image()]).argmax() == 1
    assert UsClassifier(clf.model, "brain_planes", ["dark", "grey", "bright"], (48, 48)).probabilities([head_image()]).argmax() == 0
    assert head_crop.NO_HEAD_WARNING in rows[1]["warnings"] and rows[1]["predicted"] == "dark"

    from fetal_lib.cli import main

    code = main(["us", "classify", str(tmp_path / "head.png"), str(tmp_path / "blank.png"), "--model", str(model_path),
                 "--format", "json"])
    out = capsys.readouterr()
    assert code == 0 and f"{tmp_path / 'blank.png'}: {head_crop.NO_HEAD_WARNING}" in out.err
    assert [r["head_found"] for r in json.loads(out.out)] == [True, False]

    head_path.unlink()
    with pytest.raises(FetalInputError, match="head finder") as err:
        UsClassifier.load(model_path, "brain_planes")
    assert err.value.path == head_path
    clf.save(model_path, {"profile": "cpu"})  # the finder back ...
    UsClassifier(brightness_model((48, 48)), "brain_planes", ["dark", "grey", "bright"], (48, 48)).save(model_path, {"profile": "cpu"})
    assert not head_path.exists() and "head_crop" not in read_card(model_path)["input"]  # ... and gone with a whole-image model


def test_the_app_explains_a_head_cropped_classifier_on_the_crop(finder) -> None:
    import keras

    from fetal_lib.app import tab_us
    from fetal_lib.us.classifier import UsClassifier

    inputs = keras.Input((48, 48, 1))
    features = keras.layers.Conv2D(4, 3, padding="same", name="last_conv")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(features)))
    clf = UsClassifier(model, "brain_planes", ["a", "b", "c"], (48, 48), head_crop=HeadCropSpec(1.15, 48), finder=finder)
    heat, note = tab_us._gradcam(clf, head_image(), 0)
    assert note is None and heat.shape == (48, 48, 3)  # drawn on the crop the network saw
    heat, note = tab_us._gradcam(clf, np.full((300, 400), 20, np.uint8), 0)
    assert note is None and heat.shape == (300, 400, 3)  # no head: the whole image, as classified


def test_task_settings_give_a_cropped_task_the_crop_as_its_input(tmp_path, finder) -> None:
    from fetal_lib.us import pipeline

    settings = {**pipeline.profile_settings("cpu"), "head_crop_tasks": "brain_planes", "head_crop_size": 96}
    brain, planes = pipeline.task_settings(settings, "brain_planes"), pipeline.task_settings(settings, "planes")
    assert brain["head_crop"] == {"margin": settings["head_crop_margin"], "size": 96, "align": settings["head_crop_align"]}
    assert (brain["input_rows"], brain["input_cols"]) == (96, 96) and pipeline.train_config(brain, "plain_cnn").input_size == (96, 96)
    assert planes["head_crop"] is None and planes["input_rows"] == settings["input_rows"]
    cv2.imwrite(str(tmp_path / "head.png"), head_image())
    x, found = pipeline.load_inputs([tmp_path / "head.png"], brain, None, finder)
    assert x.shape == (1, 96, 96, 1) and found.tolist() == [True]
    x, found = pipeline.load_inputs([tmp_path / "head.png"], planes)
    assert x.shape == (1, settings["input_rows"], settings["input_cols"], 1) and found is None
    with pytest.raises(ValueError, match="head finder"):
        pipeline.load_inputs([tmp_path / "head.png"], brain)


def test_the_chapter_counts_heads_found_per_part() -> None:
    from fetal_lib.us.report import head_crop_table

    x = np.zeros((3, 8, 8, 1), np.float32)
    table = head_crop_table({"brain_planes": {"train": (x, np.array([True, True, False])), "test": (x[:1], np.array([True]))},
                             "planes": {"train": (x, None)}})
    assert table[["task", "part", "images", "head found", "classified whole (no head)"]].values.tolist() == [
        ["brain_planes", "train", 3, 2, 1], ["brain_planes", "test", 1, 1, 0]]
    assert table["head found (%)"].tolist() == pytest.approx([200 / 3, 100.0])
