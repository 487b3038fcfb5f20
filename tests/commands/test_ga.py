"""`fetal ga predict` end to end through the CLI, on a tiny model saved with its card.

The model is untrained (its last unit starts at zero, so it answers its target mean for every
volume): these tests check the command's path -- reading, preprocessing, the card, the table, bad
input -- not accuracy, which the chapter measures.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
sitk = pytest.importorskip("SimpleITK")

from fetal_lib.cli import main  # noqa: E402

MEAN_DAYS = 203.0  # 29+0


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    import keras

    from fetal_lib.ga_mri.predictor import GaPredictor
    from fetal_lib.ga_mri.volumes import PreprocessConfig
    from fetal_lib.networks.keras import create

    keras.utils.set_random_seed(0)
    options = {"input_shape": (32, 32, 1), "widths": [2, 2, 4, 4, 4], "batch_norm": True, "dense": 4,
               "target_mean_days": MEAN_DAYS, "target_sd_days": 35.0}
    predictor = GaPredictor(create("vgg_attention", **options), PreprocessConfig(size=32, fov_mm=128.0, offsets_mm=(-4.0, 0.0, 4.0)))
    card = {**predictor.card_fields("smoke", options), "name": "test GA model"}
    return predictor.save(tmp_path_factory.mktemp("model") / "ga.keras", card)


def _write(path: Path, array_zyx: np.ndarray, spacing=(2.0, 2.0, 2.0)) -> Path:
    img = sitk.GetImageFromArray(array_zyx)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))
    return path


@pytest.fixture()
def volume(tmp_path) -> tuple[Path, Path, float]:
    """A bright ellipsoid 'brain' and its mask; the mask's volume in mL."""
    z, y, x = np.mgrid[:40, :48, :40]
    inside = ((x - 20) / 14) ** 2 + ((y - 24) / 18) ** 2 + ((z - 20) / 12) ** 2 <= 1
    image = np.where(inside, 800.0, 0.0).astype(np.float32) + np.random.default_rng(0).normal(0, 5, inside.shape).astype(np.float32)
    ml = inside.sum() * 8.0 / 1000.0
    return _write(tmp_path / "t2.nii.gz", image), _write(tmp_path / "mask.nii.gz", inside.astype(np.uint8)), float(ml)


def test_predict_prints_weeks_days_and_the_brain_volume(model_path, volume, capsys, tmp_path) -> None:
    image, mask, ml = volume
    out_csv = tmp_path / "out.csv"
    code, out, err = run_cli(["ga", "predict", image, "--mask", mask, "--model", model_path, "-o", out_csv], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert len(rows) == 1
    assert rows[0]["ga_weeks_days"] == "29+0" and float(rows[0]["ga_days"]) == pytest.approx(MEAN_DAYS, abs=0.05)
    assert float(rows[0]["brain_volume_ml"]) == pytest.approx(ml, abs=0.05)
    assert rows[0]["mask"] == str(mask)


def test_bad_volumes_are_named_and_the_good_one_still_predicted(model_path, volume, capsys, tmp_path) -> None:
    image, mask, _ = volume
    flat = _write(tmp_path / "flat.nii.gz", np.ones((1, 20, 20), np.float32)[0])  # a 2-D image
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(os.urandom(256))
    code, out, err = run_cli(["ga", "predict", image, flat, corrupt, tmp_path / "missing.nii.gz", "--model", model_path], capsys)
    assert code == 1
    assert out.count("\n") == 2  # header + the good volume
    for bad in (flat, corrupt, tmp_path / "missing.nii.gz"):
        assert str(bad) in err
    assert err.count("fetal: error:") == 3


def test_a_mask_of_another_geometry_and_a_missing_model_stop_with_status_2(model_path, volume, capsys, tmp_path) -> None:
    image, mask, _ = volume
    other = _write(tmp_path / "other_mask.nii.gz", np.ones((40, 48, 40), np.uint8), spacing=(1.0, 1.0, 1.0))
    code, out, err = run_cli(["ga", "predict", image, "--mask", other, "--model", model_path], capsys)
    assert code == 2 and out == "" and str(other) in err
    code, out, err = run_cli(["ga", "predict", image, "--model", tmp_path / "none.keras"], capsys)
    assert code == 2 and "fetal book --profile cpu --only fetal_mri_ga" in err
    code, out, err = run_cli(["ga", "predict", image, image, "--mask", mask, "--model", model_path], capsys)
    assert code == 2 and "one mask per volume" in err


def test_predict_reads_a_real_atlas_volume(model_path, capsys) -> None:
    root = os.environ.get("FETAL_DATA_DIR")
    folder = Path(root or "/nonexistent") / "fetal_brain_atlases" / "Neurotypical_Gholipour2017" / "HarvardSTA30_Study1"
    if not (folder / "srr.nii.gz").is_file():
        pytest.skip("the real atlases are not under FETAL_DATA_DIR")
    code, out, err = run_cli(["ga", "predict", folder / "srr.nii.gz", "--mask", folder / "mask.nii.gz", "--model", model_path,
                              "--format", "json"], capsys)
    assert code == 0, err
    import json

    row = json.loads(out)[0]
    mask = sitk.ReadImage(str(folder / "mask.nii.gz"))
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(mask > 0, sitk.sitkUInt8))
    assert row["brain_volume_ml"] == pytest.approx(stats.GetPhysicalSize(1) / 1000.0, abs=0.1)
    assert row["ga_weeks_days"] == "29+0"
