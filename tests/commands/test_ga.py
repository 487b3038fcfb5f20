"""`fetal ga predict` (one volume, several, a folder) and `fetal ga train` end to end through the CLI.

The predict tests use a tiny model saved with its card. It is untrained (its last unit starts at
zero, so it answers its target mean for every volume): they check the command's path -- reading,
preprocessing, pairing volumes with masks, the card, the table, bad input -- not accuracy, which the
chapter measures. The train tests run the smoke profile on the atlas phantom (marked slow).
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

from stand_ins import run_cli  # noqa: E402

MEAN_DAYS = 203.0  # 29+0


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
    assert code == 2 and "fetal ga train --profile cpu" in err and "fetal book --profile cpu --only fetal_mri_ga" in err
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


# ----------------------------------------------------------------------------- a folder of volumes


def _link(target: Path, link: Path) -> Path:
    """A symbolic link to a real data file: the test reads the data where it lies, nothing is copied."""
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return link


def _mask_ml(path: Path) -> float:
    """Brain volume (mL) of a mask, measured by SimpleITK's label statistics (an independent reference)."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(sitk.ReadImage(str(path)) > 0, sitk.sitkUInt8))
    return stats.GetPhysicalSize(1) / 1000.0


def test_batch_over_real_atlas_volumes_goes_on_past_a_corrupt_one_and_one_without_mask(model_path, real_dataset, capsys, tmp_path) -> None:
    atlases = real_dataset("fetal_brain_atlases")
    images = tmp_path / "images"
    chosen = [atlases / "Neurotypical_Gholipour2017" / "HarvardSTA23_Study1", atlases / "Neurotypical_Wu2021" / "Chinese30_Study1"]
    for folder in chosen:
        for name in ("srr.nii.gz", "mask.nii.gz"):
            _link(folder / name, images / folder.name / name)
    corrupt = images / "Broken_Study1" / "srr.nii.gz"
    corrupt.parent.mkdir()
    corrupt.write_bytes(os.urandom(4096))
    _link(chosen[0] / "mask.nii.gz", corrupt.with_name("mask.nii.gz"))
    unmasked = _link(chosen[1] / "srr.nii.gz", images / "NoMask_Study1" / "srr.nii.gz")
    out_csv = tmp_path / "out" / "ga.csv"
    code, out, err = run_cli(["ga", "predict", "--images-dir", images, "--model", model_path, "-o", out_csv], capsys)
    assert code == 1 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("fetal: error:")]
    assert len(errors) == 2
    assert str(corrupt) in errors[0] and "not a readable NIfTI" in errors[0]
    assert str(unmasked) in errors[1] and "no brain mask found" in errors[1] and "mask.nii.gz" in errors[1]
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert [Path(r["image"]).parent.name for r in rows] == ["Chinese30_Study1", "HarvardSTA23_Study1"]  # path order
    for r in rows:
        folder = next(f for f in chosen if f.name == Path(r["image"]).parent.name)
        assert Path(r["mask"]) == images / folder.name / "mask.nii.gz"
        assert float(r["brain_volume_ml"]) == pytest.approx(_mask_ml(folder / "mask.nii.gz"), abs=0.1)
        assert r["ga_weeks_days"] == "29+0"
    assert "2 volume(s) written" in err and "2 failed" in err
    assert sorted(p.name for p in out_csv.parent.iterdir()) == ["ga.csv"]  # no temporary file left


def _bids_volume(root: Path, subject: str, semi_axes: tuple[float, float, float]) -> tuple[Path, Path, float]:
    """A FeTA-style T2 (an ellipsoid 'brain') and its dseg (two labels); the brain's volume in mL."""
    z, y, x = np.mgrid[:40, :48, :40]
    a, b, c = semi_axes
    inside = ((x - 20) / a) ** 2 + ((y - 24) / b) ** 2 + ((z - 20) / c) ** 2 <= 1
    labels = np.where(inside, np.where(x < 20, 2, 3), 0).astype(np.uint8)
    image = np.where(inside, 600.0, 0.0).astype(np.float32) + np.random.default_rng(1).normal(0, 5, inside.shape).astype(np.float32)
    anat = root / subject / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    return (_write(anat / f"{subject}_rec-mial_T2w.nii.gz", image), _write(anat / f"{subject}_rec-mial_dseg.nii.gz", labels),
            float(inside.sum() * 8.0 / 1000.0))


def test_batch_pairs_feta_bids_volumes_with_their_dseg_in_a_masks_folder(model_path, capsys, tmp_path) -> None:
    images, masks = tmp_path / "images", tmp_path / "derivatives"
    expected = {}
    for subject, axes in (("sub-001", (10.0, 14.0, 9.0)), ("sub-002", (14.0, 18.0, 12.0))):
        t2, dseg, ml = _bids_volume(images, subject, axes)
        target = masks / dseg.relative_to(images)
        target.parent.mkdir(parents=True)
        dseg.rename(target)
        expected[str(t2)] = (str(target), ml)
    (images / "participants.tsv").write_text("participant_id\tGestational age\nsub-001\t25\nsub-002\t30\n")
    code, out, err = run_cli(["ga", "predict", "--images-dir", images, "--model", model_path, "--format", "json"], capsys)
    # none beside the volumes: two lines naming them and one saying nothing was predicted
    assert code == 2 and out == "" and err.count("no brain mask found") == 2 and "nothing written" in err
    code, out, err = run_cli(["ga", "predict", "--images-dir", images, "--masks-dir", masks, "--model", model_path,
                              "--format", "json"], capsys)
    assert code == 0, err
    import json

    rows = json.loads(out)
    assert {r["image"]: (r["mask"], pytest.approx(r["brain_volume_ml"], abs=0.05)) for r in rows} == \
        {k: (m, ml) for k, (m, ml) in expected.items()}
    code, out, err = run_cli(["ga", "predict", "--images-dir", images, "--otsu-without-mask", "--model", model_path], capsys)
    assert code == 0, err
    assert err.count("fetal: warning:") == 2 and "Otsu" in err
    assert all(r["mask"].startswith("none") for r in csv.DictReader(io.StringIO(out)))


def test_an_interrupted_batch_writes_nothing_and_a_failed_one_keeps_the_old_table(model_path, volume, capsys, tmp_path,
                                                                                  monkeypatch) -> None:
    from fetal_lib.ga_mri.predictor import GaPredictor

    image, mask, _ = volume
    folder = tmp_path / "batch"
    for k in range(3):
        _link(image, folder / f"case{k}.nii.gz")
        _link(mask, folder / f"case{k}_mask.nii.gz")
    out_csv = tmp_path / "results" / "ga.csv"
    out_csv.parent.mkdir()
    out_csv.write_text("the previous table\n")
    calls = []
    real_predict = GaPredictor.predict

    def interrupted(self, image_path, mask_path=None):
        calls.append(image_path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_predict(self, image_path, mask_path)

    monkeypatch.setattr(GaPredictor, "predict", interrupted)
    code, _, err = run_cli(["ga", "predict", "--images-dir", folder, "--model", model_path, "-o", out_csv], capsys)
    assert code == 130 and "interrupted" in err
    monkeypatch.undo()
    corrupt = tmp_path / "bad"
    corrupt.mkdir()
    (corrupt / "x.nii.gz").write_bytes(b"not a volume")
    code, _, err = run_cli(["ga", "predict", "--images-dir", corrupt, "--otsu-without-mask", "--model", model_path, "-o", out_csv], capsys)
    assert code == 2 and "nothing written" in err
    assert out_csv.read_text() == "the previous table\n" and sorted(p.name for p in out_csv.parent.iterdir()) == ["ga.csv"]


@pytest.mark.parametrize("argv, message", [
    (["VOLUME", "--images-dir", "DIR"], "give either VOLUME... or --images-dir DIR, not both"),
    (["--images-dir", "DIR", "--mask", "MASK"], "--mask is for VOLUME..."),
    (["VOLUME", "--masks-dir", "DIR"], "--masks-dir goes with --images-dir DIR"),
    (["VOLUME", "--otsu-without-mask"], "--otsu-without-mask goes with --images-dir DIR"),
    ([], "nothing to predict: give VOLUME... or --images-dir DIR"),
    (["--images-dir", "NOPE"], "NOPE: folder not found"),
])
def test_contradictory_arguments_are_refused_before_anything_runs(argv, message, volume, capsys, tmp_path) -> None:
    image, _, _ = volume
    names = {"VOLUME": str(image), "DIR": str(tmp_path), "MASK": str(image), "NOPE": str(tmp_path / "nope")}
    code, out, err = run_cli(["ga", "predict", *[names.get(a, a) for a in argv], "--model", tmp_path / "no_model.keras"], capsys)
    assert code == 2 and out == ""
    assert message.replace("NOPE", str(tmp_path / "nope")) in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- fetal ga train


def test_train_refuses_a_bad_setting(capsys) -> None:
    code, out, err = run_cli(["ga", "train", "--profile", "smoke", "--set", "colour=red"], capsys)
    assert code == 2 and out == "" and "unknown fetal_mri_ga setting 'colour'" in err


SMALL_RUN = ["--profile", "smoke", "--data-source", "phantom", "--set", "folds=2", "--set", "samples_per_volume=3"]


@pytest.mark.slow
def test_train_on_the_phantom_saves_a_model_that_predict_uses(capsys, tmp_path, monkeypatch) -> None:
    """The smoke profile on the atlas phantom, with the floor forced to pass (one epoch of the smoke
    profile proves the path, not the model; the floor itself is tested in tests/ga_mri/test_deploy.py)."""
    import json

    from fetal_lib.data import fetal_brain_atlases
    from fetal_lib.ga_mri import pipeline

    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setattr(pipeline, "floor_ok", lambda network, mean: True)
    target = tmp_path / "models" / "ga.keras"
    code, out, err = run_cli(["ga", "train", *SMALL_RUN, "--model", target], capsys)
    assert code == 0, err
    summary = json.loads(out)
    phantom = tmp_path / "build" / "phantoms" / "fetal_brain_atlases"
    records = [r for r in fetal_brain_atlases.load(phantom) if r.srr_path is not None]
    assert summary["model"] == str(target) and summary["phantom"] is True and "PHANTOM" in summary["data"]
    assert summary["n_volumes"] == len(records) and summary["n_samples"] == 3 * len(records) and summary["folds"] == 2
    assert summary["training"]["epochs_run"] == summary["training"]["epochs"] == pipeline.profile_settings("smoke")["epochs"]
    card = json.loads(target.with_name("ga.card.json").read_text())
    assert card["architecture"]["name"] == "vgg_attention" and "PHANTOM" in card["limitations"]
    assert card["metrics"]["protocol1_mae_days"] == summary["protocol1_mae_days"]
    assert card["training"]["trained_by"] == "fetal ga train" and card["settings"]["folds"] == 2
    assert sorted(card["data"]["volumes"]) == sorted(f"{r.atlas}/{r.name}" for r in records)
    assert "trained on a PHANTOM" in err
    code, out, err = run_cli(["ga", "predict", "--images-dir", phantom, "--model", target], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [Path(r["image"]) for r in rows] == sorted(r.srr_path for r in records)
    assert [Path(r["mask"]) for r in rows] == [Path(r["image"]).with_name("mask.nii.gz") for r in rows]
    assert all(np.isfinite(float(r["ga_days"])) for r in rows)


@pytest.mark.slow
def test_train_below_the_floor_writes_nothing_and_keeps_the_previous_model(capsys, tmp_path, monkeypatch) -> None:
    """Training swapped for an untrained network that answers one day for every volume: far worse than
    the training volumes' mean age, so the floor refuses it; the previous model and card are untouched."""
    from fetal_lib.ga_mri import train as ga_train
    from fetal_lib.networks.keras import create
    from fetal_lib.training.keras import FitResult

    def one_day(config, planes, ga_days, progress=False, verbose=0):
        options = {**config.options, "target_mean_days": 1.0}
        return FitResult(model=create("vgg_attention", **{**options, "input_shape": (config.size, config.size, 1)}), epochs_run=1)

    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path / "build"))
    monkeypatch.setattr(ga_train, "train", one_day)
    models = tmp_path / "models"
    models.mkdir()
    (models / "ga.keras").write_bytes(b"the previously deployed model")
    (models / "ga.card.json").write_text('{"name": "previous"}')
    code, out, err = run_cli(["ga", "train", *SMALL_RUN, "--model", models / "ga.keras"], capsys)
    assert code == 1 and out == ""
    assert "below its sanity floor" in err and "protocol-1 network MAE per volume" in err and "NOT deployed" in err
    assert "predicting the training volumes' mean age" in err
    assert (models / "ga.keras").read_bytes() == b"the previously deployed model"
    assert (models / "ga.card.json").read_text() == '{"name": "previous"}'
    assert sorted(p.name for p in models.iterdir()) == ["ga.card.json", "ga.keras"]
