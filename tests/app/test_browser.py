"""`fetal app` in a real headless browser (Debian's Chromium driven by playwright).

The app runs in a subprocess with the tiny models (``conftest.app_server``); for each tab a real file
from the data root is uploaded, the upload preview awaited, the request submitted and the answer read
from the page, then compared with the library's own answer for the same file and the same model. A
screenshot of each answer is saved under the test's tmp dir. Bad input through the page gets a clear
message and the next request still works. A route guard records any request the page makes to a host
other than 127.0.0.1 (the test fails if there is one); the server runs under a socket guard
(``netguard.py``) checked when it stops.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

ANSWER_TIMEOUT_MS = 120_000


@pytest.fixture()
def page(browser, app_server):
    """A fresh page of the app; fails the test if the page asked any host but 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    outside: list[str] = []

    def guard(route) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlparse(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", guard)
    p = context.new_page()
    p.on("websocket", lambda ws: None if urlparse(ws.url).hostname == "127.0.0.1" else outside.append(ws.url))
    p.goto(app_server.url)
    p.wait_for_selector("#tabs")
    yield p
    context.close()
    assert not outside, f"the page asked hosts other than 127.0.0.1: {outside}"


# ----------------------------------------------------------------------------- driving the page


def open_tab(page, title: str) -> None:
    page.get_by_role("tab", name=title).click()


def upload(page, elem_id: str, path: Path, preview: str | None = None) -> None:
    """Upload a file into a component and wait until the page shows it (and its preview, if any)."""
    page.locator(f"#{elem_id} input[type=file]").set_input_files(str(path))
    page.locator(f"#{elem_id}").get_by_text(path.name).first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    if preview:
        page.wait_for_selector(f"#{preview} img", timeout=ANSWER_TIMEOUT_MS)


def submit(page, prefix: str, expect: str) -> str:
    """Click the tab's button and return the answer's text once it contains ``expect``."""
    page.locator(f"#{prefix}-submit").click()
    page.wait_for_function("([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
                           arg=[f"#{prefix}-result", expect], timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_function("(sel) => !document.querySelector(sel + ' .pending')", arg=f"#{prefix}-result")
    return page.locator(f"#{prefix}-result").inner_text()


def upload_volume_and_mask(page, prefix: str, volume_id: str, volume: Path, mask: Path) -> None:
    """Upload an MRI tab's volume (awaiting its preview) and its brain mask."""
    upload(page, f"{prefix}-{volume_id}", volume, preview=f"{prefix}-preview")
    upload(page, f"{prefix}-mask", mask)


def table(page, prefix: str) -> dict[str, str]:
    """The answer's table: first column -> second column."""
    rows = page.locator(f"#{prefix}-result table tr").all()
    cells = [[c.inner_text().strip() for c in r.locator("td").all()] for r in rows]
    return {c[0]: c[1] for c in cells if len(c) == 2}


def number(text: str) -> float:
    return float(re.search(r"-?\d+(?:\.\d+)?", text).group())


def shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def no_upload_left(app_server, *names: str) -> None:
    left = [p for p in app_server.uploaded_files() if p.name in names]
    assert not left, f"uploads not deleted after use: {left}"


# ----------------------------------------------------------------------------- one test per tab


def test_head_circumference(page, app_server, hc18_image, tmp_path) -> None:
    from fetal_lib.hc.measure import HCModel
    from fetal_lib.metrics.biometry import bpd_mm, ga_weeks_from_hc_hadlock, ofd_mm

    image, pixel = hc18_image
    upload(page, "hc-image", image, preview="hc-preview")
    page.locator("#hc-pixel-size input").fill(repr(pixel))
    text = submit(page, "hc", "HC (head circumference)")
    shot(page, tmp_path, "head_circumference")
    m = HCModel.load(app_server.models_dir / "hc18_unet.keras").measure(image, pixel)
    got = table(page, "hc")
    assert number(got["HC (head circumference)"]) == pytest.approx(m.hc_mm, abs=0.005)
    assert number(got["BPD (biparietal diameter, 2b)"]) == pytest.approx(bpd_mm(m.ellipse, pixel), abs=0.005)
    assert number(got["OFD (occipitofrontal diameter, 2a)"]) == pytest.approx(ofd_mm(m.ellipse, pixel), abs=0.005)
    assert number(got["GA from HC (Hadlock 1984)"]) == pytest.approx(ga_weeks_from_hc_hadlock(m.hc_mm), abs=0.005)
    assert image.name in text
    for elem in ("hc-ellipse", "hc-gradcam"):
        assert page.locator(f"#{elem} img").count() == 1
    card = page.locator("#hc-card").inner_text()
    assert "Test HC model (bright = head)" in card and "Research software, not a medical device" in card
    assert re.search(r"Date: \d{4}-\d\d-\d\d", card) and "Data: none: a model with fixed weights" in card
    no_upload_left(app_server, image.name)


def test_ultrasound_classification(page, app_server, planes_image, tmp_path) -> None:
    from fetal_lib.us.classifier import UsClassifier

    open_tab(page, "Ultrasound classification")
    upload(page, "us-image", planes_image, preview="us-preview")
    submit(page, "us", "Probability")
    shot(page, tmp_path, "ultrasound_classification")
    classifier = UsClassifier.load(app_server.models_dir / "us_planes.keras", "planes")
    (row,), errors = classifier.predict_paths([planes_image])
    assert errors == []
    got = table(page, "us")
    assert set(got) == set(classifier.classes)
    for cls, col in zip(classifier.classes, classifier.probability_columns):
        assert float(got[cls]) == pytest.approx(row[col], abs=5e-5)
    assert page.locator("#us-result h3").inner_text().startswith(row["predicted"])
    assert page.locator("#us-gradcam img").count() == 1
    assert "Test planes classifier (brightness)" in page.locator("#us-card").inner_text()
    no_upload_left(app_server, planes_image.name)


def test_gestational_age_from_mri(page, app_server, atlas_volume, tmp_path) -> None:
    from fetal_lib.ga_mri.predictor import GaPredictor

    volume, mask = atlas_volume
    open_tab(page, "Gestational age from MRI")
    upload_volume_and_mask(page, "ga", "volume", volume, mask)
    submit(page, "ga", "Gestational age")
    shot(page, tmp_path, "gestational_age")
    row = GaPredictor.load(app_server.models_dir / "ga_mri.keras").predict(volume, mask).row()
    got = table(page, "ga")
    assert got["Gestational age"].startswith(f"{row['ga_weeks_days']} weeks+days ({row['ga_days']:.1f} days")
    assert number(got["Brain volume (mask)"]) == pytest.approx(row["brain_volume_ml"], abs=0.05)
    assert number(got["Spread over the slice triples (SD)"]) == pytest.approx(row["spread_days"], abs=0.05)
    assert page.locator("#ga-attention img").count() == 1
    no_upload_left(app_server, volume.name, mask.name)


def test_brain_age(page, app_server, brain_age_subject, tmp_path) -> None:
    from fetal_lib.brain_age.predict import load_predictor

    image, mask = brain_age_subject
    open_tab(page, "Brain age")
    upload_volume_and_mask(page, "ba", "image", image, mask)
    submit(page, "ba", "Predicted age")
    shot(page, tmp_path, "brain_age")
    expected = load_predictor(app_server.models_dir / "brain_age")(image, mask)
    got = table(page, "ba")
    assert number(got["Predicted age"]) == pytest.approx(expected["predicted_age_years"], abs=0.005)
    for tissue, key in (("CSF", "csf_ml"), ("GM", "gm_ml"), ("WM", "wm_ml")):
        assert number(got[tissue]) == pytest.approx(expected[key], abs=0.005)
    assert page.locator("#ba-segmentation img").count() == 1
    assert "Test brain-age models" in page.locator("#ba-card").inner_text()
    no_upload_left(app_server, image.name, mask.name)


# ----------------------------------------------------------------------------- bad input, then a good request


def _text_as(path: Path) -> Path:
    path.write_text("this is text, not an image")
    return path


def test_bad_input_on_the_ultrasound_tabs_then_a_good_request(page, app_server, hc18_image, planes_image, tmp_path) -> None:
    image, pixel = hc18_image
    notes = _text_as(tmp_path / "notes.png")
    upload(page, "hc-image", notes)
    page.get_by_text("Cannot read this file.").first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert "notes.png: not a readable image" in page.locator("#hc-upload-message").inner_text()
    page.locator("#hc-pixel-size input").fill("0.1")
    assert "notes.png: not a readable image" in submit(page, "hc", "Cannot measure")
    upload(page, "hc-image", image, preview="hc-preview")
    page.locator("#hc-pixel-size input").fill("-0.2")
    text = submit(page, "hc", "Cannot measure")
    assert f"{image.name}: pixel size must be a positive number of mm" in text
    shot(page, tmp_path, "hc_negative_pixel_size")
    upload(page, "hc-image", image, preview="hc-preview")
    page.locator("#hc-pixel-size input").fill(repr(pixel))
    assert submit(page, "hc", "HC (head circumference)").startswith("HC ")

    open_tab(page, "Ultrasound classification")
    upload(page, "us-image", _text_as(tmp_path / "scan.jpg"))
    assert "scan.jpg: not a readable image" in submit(page, "us", "Cannot classify")
    page.get_by_label("Brain plane: normal or abnormal").check()
    upload(page, "us-image", planes_image, preview="us-preview")
    submit(page, "us", "Probability")
    assert set(table(page, "us")) == {"normal", "abnormal"}
    no_upload_left(app_server, "notes.png", "scan.jpg", image.name, planes_image.name)


def test_bad_input_on_the_mri_tabs_then_a_good_request(page, app_server, atlas_volume, brain_age_subject, tmp_path) -> None:
    import SimpleITK as sitk

    volume, mask = atlas_volume
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(np.random.default_rng(0).bytes(400))
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(volume))[:, :, 40], str(flat))
    other = tmp_path / "other_mask.nii.gz"
    sitk.WriteImage(sitk.Image([20, 20, 20], sitk.sitkUInt8) + 1, str(other))

    open_tab(page, "Gestational age from MRI")
    upload(page, "ga-volume", corrupt)
    assert "corrupt.nii.gz: not a readable NIfTI" in submit(page, "ga", "Cannot predict the gestational age")
    upload(page, "ga-volume", flat)
    assert "flat.nii.gz: expected a 3D volume, got 2D" in submit(page, "ga", "Cannot predict the gestational age")
    upload_volume_and_mask(page, "ga", "volume", volume, other)
    text = submit(page, "ga", "Cannot predict the gestational age")
    assert "other_mask.nii.gz: mask does not match the image srr.nii.gz" in text
    shot(page, tmp_path, "ga_mask_of_another_geometry")
    upload_volume_and_mask(page, "ga", "volume", volume, mask)
    assert submit(page, "ga", "Gestational age").startswith("GA ")

    image, brain_mask = brain_age_subject
    open_tab(page, "Brain age")
    upload(page, "ba-image", flat)
    upload(page, "ba-mask", brain_mask)
    assert "flat.nii.gz: expected a 3D volume, got 2D" in submit(page, "ba", "Cannot predict the brain age")
    upload_volume_and_mask(page, "ba", "image", image, other)
    assert "other_mask.nii.gz: mask does not match image" in submit(page, "ba", "Cannot predict the brain age")
    upload_volume_and_mask(page, "ba", "image", image, brain_mask)
    assert submit(page, "ba", "Predicted age").startswith("Predicted brain age")
    no_upload_left(app_server, "corrupt.nii.gz", "flat.nii.gz", "other_mask.nii.gz", volume.name, mask.name, image.name,
                   brain_mask.name)


def test_an_upload_over_the_limit_is_refused_in_the_page(page, app_server, planes_image, tmp_path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(np.random.default_rng(1).bytes(int((app_server.max_upload_mb + 1) * 1024 * 1024)))
    open_tab(page, "Ultrasound classification")
    page.locator("#us-image input[type=file]").set_input_files(str(big))
    page.get_by_text("exceed the maximum allowed size").first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    shot(page, tmp_path, "upload_over_the_limit")
    assert not any(p.name == "big.png" for p in app_server.uploaded_files())
    upload(page, "us-image", planes_image, preview="us-preview")
    assert "Probability" in submit(page, "us", "Probability")


@pytest.mark.skipif(not os.environ.get("FETAL_APP_SCREENSHOT"),
                    reason="set FETAL_APP_SCREENSHOT=book/images/fetal_app.png to remake the README's screenshot")
def test_readme_screenshot(page, app_server, phantom_root) -> None:
    """The README's picture: the head-circumference tab on a phantom image (no patient data), written
    only when FETAL_APP_SCREENSHOT names the file (``make`` never sets it)."""
    target = os.environ["FETAL_APP_SCREENSHOT"]
    import csv

    import cv2

    root = phantom_root("hc18")
    with open(root / "training_set_pixel_size_and_HC.csv", newline="") as fh:
        first = next(csv.DictReader(fh))
    image = root / "training_set" / first["filename"]
    upload(page, "hc-image", image, preview="hc-preview")
    page.locator("#hc-pixel-size input").fill(first["pixel size(mm)"])
    submit(page, "hc", "HC (head circumference)")
    raw = Path(str(target) + ".raw.png")
    page.screenshot(path=str(raw), full_page=False)
    picture = cv2.imread(str(raw))
    raw.unlink()
    picture = cv2.resize(picture, (picture.shape[1] * 3 // 4, picture.shape[0] * 3 // 4), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(target), picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert Path(target).stat().st_size < 300_000
