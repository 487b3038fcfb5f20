"""``fetal brain-age predict``: a real subject, bad input (one line, exit 2), batch with one bad file."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")
pytest.importorskip("torch")

from fetal_lib.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(real_dataset, tmp_path_factory) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("ba_conftest", Path(__file__).parents[1] / "brain_age" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_tiny_model(real_dataset("brain_age"), tmp_path_factory.mktemp("ba_cli_model"))


@pytest.fixture(scope="module")
def val_subjects(real_dataset):
    from fetal_lib.brain_age import dataset

    return [s for s in dataset.load(real_dataset("brain_age")) if s.role == "seg_val"]


def _run(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_single_real_subject(capsys, model_dir, val_subjects):
    s = val_subjects[0]
    code, out, err = _run(capsys, ["brain-age", "predict", str(s.image_path), "--mask", str(s.mask_path),
                                   "--model", str(model_dir), "--format", "json"])
    assert code == 0, err
    res = json.loads(out)
    assert {"csf_ml", "gm_ml", "wm_ml", "predicted_age_years"} <= set(res)
    assert all(res[k] >= 0 for k in ("csf_ml", "gm_ml", "wm_ml")) and np.isfinite(res["predicted_age_years"])
    code, out, _ = _run(capsys, ["brain-age", "predict", str(s.image_path), "--mask", str(s.mask_path),
                                 "--model", str(model_dir)])
    assert code == 0 and "predicted age" in out and "mL" in out
    # the old spelling --image still works (hidden from --help)
    code, old, _ = _run(capsys, ["brain-age", "predict", "--image", str(s.image_path), "--mask", str(s.mask_path),
                                 "--model", str(model_dir)])
    assert code == 0 and old == out


def _bad_inputs(tmp: Path, s) -> dict[str, tuple[Path, Path, str]]:
    img = sitk.ReadImage(str(s.image_path))
    msk = sitk.ReadImage(str(s.mask_path))
    small = sitk.RegionOfInterest(msk, [90, 100, 80], [0, 0, 0])
    sitk.WriteImage(small, str(tmp / "mask_small.nii.gz"))
    sitk.WriteImage(img[:, :, 40], str(tmp / "slice2d.nii.gz"))
    sitk.WriteImage(sitk.JoinSeries([img, img]), str(tmp / "four_d.nii.gz"))
    sitk.WriteImage(msk * 0, str(tmp / "empty_mask.nii.gz"))
    return {
        "missing": (tmp / "absent.nii.gz", s.mask_path, "absent.nii.gz: file not found"),
        "geometry": (s.image_path, tmp / "mask_small.nii.gz", "mask_small.nii.gz: mask does not match image"),
        "2d": (tmp / "slice2d.nii.gz", s.mask_path, "slice2d.nii.gz: expected a 3D volume, got 2D"),
        "4d": (tmp / "four_d.nii.gz", s.mask_path, "four_d.nii.gz: expected a 3D volume, got 4D"),
        "empty": (s.image_path, tmp / "empty_mask.nii.gz", "empty_mask.nii.gz: brain mask is empty"),
    }


def test_bad_input_one_line(capsys, tmp_path, model_dir, val_subjects):
    for case, (img, msk, expected) in _bad_inputs(tmp_path, val_subjects[0]).items():
        code, out, err = _run(capsys, ["brain-age", "predict", str(img), "--mask", str(msk), "--model", str(model_dir)])
        assert code == 2, case
        assert err.strip().count("\n") == 0 and expected in err, (case, err)
        assert out == ""


def test_missing_model(capsys, tmp_path, val_subjects):
    s = val_subjects[0]
    code, _, err = _run(capsys, ["brain-age", "predict", str(s.image_path), "--mask", str(s.mask_path),
                                 "--model", str(tmp_path / "no_model")])
    assert code == 2 and "no_model: model folder not found" in err and err.strip().count("\n") == 0
    (tmp_path / "half").mkdir()
    code, _, err = _run(capsys, ["brain-age", "predict", str(s.image_path), "--mask", str(s.mask_path),
                                 "--model", str(tmp_path / "half")])
    assert code == 2 and "segmenter.json: trained segmenter not found" in err


def test_batch_with_one_bad_file(capsys, tmp_path, model_dir, val_subjects):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for s in val_subjects[:2]:
        shutil.copy(s.image_path, images / s.image_path.name)
        shutil.copy(s.mask_path, masks / s.mask_path.name)
    bad = val_subjects[2]
    data = bad.image_path.read_bytes()
    (images / bad.image_path.name).write_bytes(data[: len(data) // 2])  # truncated
    shutil.copy(bad.mask_path, masks / bad.mask_path.name)
    (images / "sub-NOMASK_T1w_unbiased.nii.gz").write_bytes(val_subjects[0].image_path.read_bytes())  # mask absent
    out_csv = tmp_path / "results.csv"
    code, _, err = _run(capsys, ["brain-age", "predict", "--images-dir", str(images), "--masks-dir", str(masks),
                                 "-o", str(out_csv), "--model", str(model_dir)])
    assert code == 2
    assert bad.image_path.name in err and "truncated" in err.lower()
    assert "sub-NOMASK_T1w_brain_mask.nii.gz: file not found" in err
    with open(out_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["subject_id", "csf_ml", "gm_ml", "wm_ml", "predicted_age_years"]
    assert sorted(r["subject_id"] for r in rows) == sorted(s.subject_id for s in val_subjects[:2])
    # the batch row equals the single-subject result
    s = val_subjects[0]
    main(["brain-age", "predict", str(s.image_path), "--mask", str(s.mask_path), "--model", str(model_dir), "--format", "json"])
    single = json.loads(capsys.readouterr().out)
    row = next(r for r in rows if r["subject_id"] == s.subject_id)
    assert float(row["gm_ml"]) == pytest.approx(single["gm_ml"], abs=0.01)
    assert float(row["predicted_age_years"]) == pytest.approx(single["predicted_age_years"], abs=0.01)


def test_usage_errors(capsys):
    code, _, err = _run(capsys, ["brain-age", "predict", "a.nii.gz"])
    assert code == 2 and "IMAGE and --mask go together" in err
    code, _, err = _run(capsys, ["brain-age", "predict", "--image", "a.nii.gz"])
    assert code == 2 and "IMAGE and --mask go together" in err
    code, _, err = _run(capsys, ["brain-age", "predict", "a.nii.gz", "--image", "b.nii.gz", "--mask", "m.nii.gz"])
    assert code == 2 and "two images given" in err
    code, _, err = _run(capsys, ["brain-age", "predict", "--images-dir", "x", "--masks-dir", "y"])
    assert code == 2 and "-o results.csv" in err
    code, _, err = _run(capsys, ["brain-age", "predict", "--images-dir", "x", "--masks-dir", "y", "-o", "r.csv", "--format", "json"])
    assert code == 2 and err.strip() == "fetal: error: --format json is for a single subject; a batch writes CSV to -o"
    code, _, err = _run(capsys, ["brain-age", "predict", "a.nii.gz", "--mask", "m.nii.gz", "--images-dir", "x"])
    assert code == 2 and "give either IMAGE and --mask, or --images-dir" in err


def test_bench_and_command_import_no_torch():
    code = ("import sys, argparse; import fetal_lib.bench.brain_age as b, fetal_lib.commands.brain_age; "
            "b.add_arguments(argparse.ArgumentParser()); "
            "assert 'torch' not in sys.modules and 'SimpleITK' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_train_on_the_phantom_saves_models_predict_can_use(tmp_path, phantom_root, capsys):
    from fetal_lib.cli import main

    model_dir = tmp_path / "models"
    code = main(["brain-age", "train", "--profile", "smoke", "--data-dir", str(phantom_root("brain_age").parent),
                 "--data-source", "phantom", "--model", str(model_dir)])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["epochs_run"] == summary["epochs"] and not summary["time_capped"]
            and set(summary["out_of_fold_dice"]) == {"CSF", "GM", "WM"})
    assert {"segmenter.pt", "segmenter.json", "regressor.pkl", "model_card.json", "MODEL_CARD.md"} <= {p.name for p in model_dir.iterdir()}
    card = json.loads((model_dir / "model_card.json").read_text())
    assert card["provenance"]["trained_by"] == "fetal brain-age train" and card["segmenter"]["val_dice"] == summary["out_of_fold_dice"]
    # the deployed segmenter is the out-of-fold networks averaged, saved as one
    assert card["segmenter"]["members"] == summary["folds"] >= 2
    assert json.loads((model_dir / "segmenter.json").read_text())["members"] == summary["folds"]


@pytest.mark.slow
def test_train_below_the_floor_writes_nothing(tmp_path, phantom_root, capsys, monkeypatch):
    """A segmenter below the floor stops `fetal brain-age train` before anything is written."""
    from fetal_lib.brain_age import pipeline
    from fetal_lib.cli import main
    from fetal_lib.training.floor import Floor

    monkeypatch.setitem(pipeline.FLOORS, "phantom", (Floor("dice_csf", 1.01, "min"),))  # no segmenter reaches it
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    (model_dir / "segmenter.pt").write_bytes(b"previous")
    code = main(["brain-age", "train", "--profile", "smoke", "--data-dir", str(phantom_root("brain_age").parent),
                 "--data-source", "phantom", "--model", str(model_dir)])
    err = capsys.readouterr().err
    assert code == 1 and "below its sanity floor" in err and "needs dice_csf >= 1.01" in err
    assert [p.name for p in model_dir.iterdir()] == ["segmenter.pt"] and (model_dir / "segmenter.pt").read_bytes() == b"previous"
