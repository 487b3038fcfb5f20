"""`fetal hc measure|submission|train` end to end through the CLI.

Two models:

* an *intensity* model saved in tmp_path: one 1x1 convolution with a steep sigmoid, so its
  "probability" is 1 where the image is bright. On synthetic images of a bright filled ellipse
  it segments the ellipse exactly, so the whole command (letterbox, network, back-mapping,
  ellipse fit, HC, CSV/JSON, overlays, errors) is checked against an analytic HC, without
  training anything; on a black image it finds no head.
* the trained model ``build/models/hc18_unet.keras`` (from `fetal hc train --profile cpu` or the
  cpu chapter) on real HC18 images with known HC; skipped with the reason if it is absent.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import special

pytest.importorskip("tensorflow")

from stand_ins import run_cli  # noqa: E402
from fetal_lib.data.hc18 import filled_ellipse  # noqa: E402

COLUMNS = ["filename", "center_x_mm", "center_y_mm", "semi_axes_a_mm", "semi_axes_b_mm", "angle_rad", "hc_mm"]
ELLIPSES = {  # name: (cx, cy, a, b, angle_deg, pixel size mm)
    "head_a.png": (400.0, 270.0, 220.0, 170.0, 20.0, 0.12),
    "head_b.png": (350.0, 250.0, 120.0, 100.0, -40.0, 0.07),
}


def exact_hc(a: float, b: float, pixel: float) -> float:
    return 4.0 * a * special.ellipe(1.0 - (b / a) ** 2) * pixel


@pytest.fixture(scope="module")
def intensity_model(tmp_path_factory) -> Path:
    import keras

    inputs = keras.Input((256, 384, 1))
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([np.full((1, 1, 1, 1), 40.0, np.float32), np.array([-20.0], np.float32)])
    path = tmp_path_factory.mktemp("model") / "intensity.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    import cv2

    folder = tmp_path_factory.mktemp("images")
    for name, (cx, cy, a, b, angle, _) in ELLIPSES.items():
        img = np.where(filled_ellipse((540, 800), cx, cy, a, b, angle), 230, 10).astype(np.uint8)
        cv2.imwrite(str(folder / name), img)
    cv2.imwrite(str(folder / "blank.png"), np.zeros((540, 800), np.uint8))
    (folder / "not_an_image.png").write_text("hello")
    with open(folder / "pixel_sizes.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(["filename", "pixel size(mm)", "note"])
        for name, spec in ELLIPSES.items():
            w.writerow([name, spec[-1], "x"])
        w.writerow(["blank.png", "0.1", ""])
        w.writerow(["bad_pixel.png", "-1", ""])
    cv2.imwrite(str(folder / "bad_pixel.png"), np.zeros((540, 800), np.uint8))
    return folder


def test_measure_csv_matches_analytic_hc(intensity_model, images, capsys, tmp_path):
    code, out, err = run_cli(["hc", "measure", images / "head_a.png", images / "head_b.png",
                              "--pixel-sizes", images / "pixel_sizes.csv", "--model", intensity_model,
                              "--overlay", tmp_path / "ov"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == COLUMNS
    for row in rows:
        cx, cy, a, b, angle, pixel = ELLIPSES[row["filename"]]
        assert float(row["hc_mm"]) == pytest.approx(exact_hc(a, b, pixel), rel=0.01)
        assert float(row["semi_axes_a_mm"]) == pytest.approx(a * pixel, rel=0.015)
        assert float(row["semi_axes_b_mm"]) == pytest.approx(b * pixel, rel=0.015)
        assert float(row["center_x_mm"]) == pytest.approx(cx * pixel, abs=2 * pixel)
        assert float(row["center_y_mm"]) == pytest.approx(cy * pixel, abs=2 * pixel)
        assert float(row["angle_rad"]) == pytest.approx(math.radians(angle) % math.pi, abs=0.03)
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == ["head_a_hc.png", "head_b_hc.png"]


def test_measure_json_and_single_pixel_size(intensity_model, images, capsys):
    code, out, err = run_cli(["hc", "measure", images / "head_b.png", "--pixel-size", "0.07",
                              "--model", intensity_model, "--format", "json"], capsys)
    assert code == 0, err
    items = json.loads(out)
    assert items[0]["filename"] == "head_b.png"
    assert items[0]["hc_mm"] == pytest.approx(exact_hc(120.0, 100.0, 0.07), rel=0.01)
    assert items[0]["hc_uncalibrated_mm"] == pytest.approx(items[0]["hc_mm"])  # this model has no calibration


def test_batch_with_bad_files_still_measures_the_others(intensity_model, images, capsys):
    code, out, err = run_cli(["hc", "measure", images / "head_a.png", images / "missing.png", images / "not_an_image.png",
                              images / "blank.png", images / "bad_pixel.png", images / "head_b.png",
                              "--pixel-sizes", images / "pixel_sizes.csv", "--model", intensity_model], capsys)
    assert code == 2
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["filename"] for r in rows] == ["head_a.png", "head_b.png"]
    lines = [line for line in err.splitlines() if line.startswith("fetal: error:")]
    assert len(lines) == 4, err
    assert any("missing.png" in line and "not found" in line for line in lines)
    assert any("not_an_image.png" in line and "not a readable image" in line for line in lines)
    assert any("blank.png" in line and "no head found" in line for line in lines)
    assert any("bad_pixel.png" in line and "positive" in line for line in lines)


@pytest.mark.parametrize("pixel_args,problem", [(["--pixel-size", "0"], "positive"), (["--pixel-size", "abc"], "not a number"), ([], "no pixel size")])
def test_bad_or_missing_pixel_size(intensity_model, images, capsys, pixel_args, problem):
    code, out, err = run_cli(["hc", "measure", images / "head_a.png", *pixel_args, "--model", intensity_model], capsys)
    assert code == 2
    assert err.strip().startswith("fetal: error:") and "head_a.png" in err and problem in err
    assert len(err.strip().splitlines()) == 1


def test_file_missing_from_pixel_size_csv(intensity_model, images, capsys, tmp_path):
    csv_path = tmp_path / "sizes.csv"
    csv_path.write_text("filename,pixel size(mm)\nother.png,0.1\n")
    code, _, err = run_cli(["hc", "measure", images / "head_a.png", "--pixel-sizes", csv_path, "--model", intensity_model], capsys)
    assert code == 2 and "head_a.png" in err and "no pixel size" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("name,size\nhead_a.png,0.1\n")
    code, _, err = run_cli(["hc", "measure", images / "head_a.png", "--pixel-sizes", bad, "--model", intensity_model], capsys)
    assert code == 2 and "bad.csv" in err and "missing column" in err


def test_missing_model_says_how_to_make_one(images, capsys, tmp_path):
    code, out, err = run_cli(["hc", "measure", images / "head_a.png", "--pixel-size", "0.1", "--model", tmp_path / "none.keras"], capsys)
    assert code == 2
    assert "none.keras" in err and "fetal hc train" in err
    assert len(err.strip().splitlines()) == 1


def test_output_file_is_written_atomically(intensity_model, images, capsys, tmp_path):
    target = tmp_path / "out.csv"
    code, out, err = run_cli(["hc", "measure", images / "head_a.png", "--pixel-size", "0.12", "--model", intensity_model, "-o", target], capsys)
    assert code == 0 and out == ""
    assert target.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_submission(intensity_model, images, capsys, tmp_path):
    test_dir = tmp_path / "test_set"
    test_dir.mkdir()
    for name in ELLIPSES:
        (test_dir / name).write_bytes((images / name).read_bytes())
    sizes = tmp_path / "test_set_pixel_size.csv"
    sizes.write_text("filename,pixel size(mm)\r\n" + "".join(f"{n},{s[-1]}\r\n" for n, s in ELLIPSES.items()))
    out_csv = tmp_path / "submission.csv"
    code, _, err = run_cli(["hc", "submission", test_dir, "--pixel-sizes", sizes, "-o", out_csv, "--model", intensity_model], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(out_csv.open()))
    assert list(rows[0]) == COLUMNS[:-1] and len(rows) == 2
    # the old spelling --test-dir still works (hidden from --help)
    code, _, err = run_cli(["hc", "submission", "--test-dir", test_dir, "--pixel-sizes", sizes, "-o", tmp_path / "old.csv", "--model", intensity_model], capsys)
    assert code == 0 and (tmp_path / "old.csv").read_text() == out_csv.read_text(), err
    # one image missing: nothing written without --allow-missing
    (test_dir / "head_b.png").unlink()
    out2 = tmp_path / "submission2.csv"
    code, _, err = run_cli(["hc", "submission", test_dir, "--pixel-sizes", sizes, "-o", out2, "--model", intensity_model], capsys)
    assert code == 2 and "head_b.png" in err and not out2.exists()


def test_submission_without_a_test_folder_is_one_clear_error(capsys, tmp_path):
    code, out, err = run_cli(["hc", "submission", "--pixel-sizes", tmp_path / "sizes.csv", "-o", tmp_path / "s.csv"], capsys)
    assert code == 2 and out == "" and err == "fetal: error: missing TEST_DIR: the folder of the test images\n"
    code, _, err = run_cli(["hc", "submission", tmp_path / "a", "--test-dir", tmp_path / "b", "--pixel-sizes", tmp_path / "sizes.csv",
                            "-o", tmp_path / "s.csv"], capsys)
    assert code == 2 and "two test folders given" in err
    code, _, err = run_cli(["hc", "submission", tmp_path / "absent", "--pixel-sizes", tmp_path / "sizes.csv", "-o", tmp_path / "s.csv"], capsys)
    assert code == 2 and err == f"fetal: error: {tmp_path / 'absent'}: test folder not found\n"


def _trained_model() -> Path:
    from fetal_lib.hc.measure import default_model_path

    path = default_model_path()
    if not path.is_file():
        pytest.skip(f"no trained model at {path}: run `fetal hc train --profile cpu` (or the cpu chapter) first")
    return path


def test_measure_real_images_with_known_hc(real_dataset, capsys):
    """The trained model on real HC18 test-split images: error within the chapter's own figures."""
    from fetal_lib.data import hc18
    from fetal_lib.model_card import read_card

    model_path = _trained_model()
    card = read_card(model_path)
    assert card is not None, "model card missing beside the model"
    root = real_dataset("hc18")
    records = {r.filename: r for r in hc18.load(root, "train")}
    test_files = [f for f in card["split"]["test_files"] if f in records][:10]
    assert len(test_files) >= 5
    code, out, err = run_cli(["hc", "measure", *[records[f].image_path for f in test_files],
                              "--pixel-sizes", root / hc18.TRAIN_CSV, "--model", model_path], capsys)
    rows = {r["filename"]: r for r in csv.DictReader(io.StringIO(out))}
    errors = [abs(float(rows[f]["hc_mm"]) - records[f].hc_mm) for f in test_files if f in rows]
    assert len(errors) >= len(test_files) - 1  # at most one image without a head found
    metrics = card["metrics"]
    # the median over these images within the chapter's test median + its SD
    assert float(np.median(errors)) <= metrics["hc_abs_diff_median_mm"] + metrics["hc_abs_diff_sd_mm"]
    # these images are in the chapter's test split: none may exceed its worst test error
    assert max(errors) <= metrics["hc_abs_diff_max_mm"] + 0.05


@pytest.mark.slow
def test_train_validation_only_on_phantom_reports_validation_and_saves_nothing(capsys, tmp_path, phantom_root):
    """`fetal hc train --validation-only --set ...` (smoke profile, phantom): the overrides reach the
    run, the validation split is reported, the test split is not, and no model is written."""
    model_path = tmp_path / "never.keras"
    code, out, err = run_cli(["hc", "train", "--profile", "smoke", "--data-dir", phantom_root("hc18").parent, "--data-source", "phantom",
                              "--model", model_path, "--validation-only", "--set", "augment_vflip=false", "--set", "loss_weight=mm_per_pixel",
                              "--set", "epochs=2"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["settings"]["augment_vflip"] is False and report["settings"]["loss_weight"] == "mm_per_pixel"
    assert report["settings"]["epochs"] == 2
    assert "test" not in report and report["validation"]["n_images"] > 0
    assert set(report["validation"]["by_hc_range"]) and report["thresholds"]
    assert not model_path.exists()


def test_train_rejects_a_bad_override(capsys):
    code, _, err = run_cli(["hc", "train", "--validation-only", "--set", "colour=red"], capsys)
    assert code == 2 and "unknown hc18 setting 'colour'" in err


@pytest.mark.slow
def test_train_below_the_floor_deploys_nothing_and_keeps_the_old_model(capsys, tmp_path, phantom_root):
    """A deliberately untrained model (learning rate 0) on the phantom breaks the phantom floor:
    the command fails with the reason, and the previously deployed model and card are untouched."""
    model_path = tmp_path / "deployed.keras"
    model_path.write_bytes(b"the previously deployed model")
    card = tmp_path / "deployed.card.json"
    card.write_text('{"name": "previous"}')
    code, out, err = run_cli(["hc", "train", "--profile", "smoke", "--data-dir", phantom_root("hc18").parent, "--data-source", "phantom",
                              "--model", model_path, "--set", "learning_rate=0", "--epochs", "1"], capsys)
    assert code == 1 and out == ""
    assert "below its sanity floor on the validation split" in err and "needs hc_abs_diff_mean_mm <= 50 mm" in err and "NOT deployed" in err
    assert model_path.read_bytes() == b"the previously deployed model" and card.read_text() == '{"name": "previous"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deployed.card.json", "deployed.keras"]
