"""fetal_lib.app.tab_ga: the gestational age is `fetal ga predict`'s; corrupt, 2-D and mismatched
files are refused with one line naming the file."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from fetal_lib.app import tab_ga
from fetal_lib.app.render import PANEL_ROWS, TITLE_ROWS
from fetal_lib.app.uploads import UploadFolder
from fetal_lib.errors import FetalInputError
from stand_ins import cli_json

GA_MEAN_DAYS = 203.0  # the untrained network's answer (conftest.GA_MEAN_DAYS)


SLOT = ("ga", None)  # the slot fixture (conftest.py): the tab's first slot


def test_the_answer_is_fetal_ga_predict_s(slot, models_dir, atlas_volume, capsys) -> None:
    volume, mask = atlas_volume
    a = tab_ga.predict(slot, volume, mask)
    printed = cli_json(["ga", "predict", volume, "--mask", mask, "--model", models_dir / "ga_mri.keras", "--format", "json"], capsys)[0]
    assert a.row == {k: v for k, v in printed.items() if k != "warnings"}
    assert a.row["ga_weeks_days"] == "29+0" and a.row["ga_days"] == pytest.approx(GA_MEAN_DAYS, abs=0.05)  # untrained: its mean
    stats = sitk.LabelShapeStatisticsImageFilter()  # independent: the mask's physical volume
    stats.Execute(sitk.Cast(sitk.ReadImage(str(mask)) > 0, sitk.sitkUInt8))
    assert a.row["brain_volume_ml"] == pytest.approx(stats.GetPhysicalSize(1) / 1000.0, abs=0.1)
    assert a.attention_rgb.shape[0] == PANEL_ROWS + TITLE_ROWS and a.attention_rgb.shape[2] == 3
    assert a.card.name == "Test GA model (untrained)" and a.card.metrics == {"protocol1_mae_days": 9.9}
    assert "29+0" in tab_ga.answer_markdown(a) and a.notes == []


def test_without_a_mask_the_brain_is_found_by_otsu(slot, atlas_volume) -> None:
    a = tab_ga.predict(slot, atlas_volume[0], None)
    assert a.mask.startswith("none") and any("Otsu" in n for n in a.notes)


def _bad_files(tmp_path, volume):
    image = sitk.ReadImage(str(volume))
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(os.urandom(300))
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(image[:, :, image.GetSize()[2] // 2], str(flat))
    other = tmp_path / "other_mask.nii.gz"
    small = sitk.Image([20, 20, 20], sitk.sitkUInt8) + 1
    sitk.WriteImage(small, str(other))
    return corrupt, flat, other


def test_bad_files_are_named(slot, atlas_volume, tmp_path) -> None:
    volume, mask = atlas_volume
    corrupt, flat, other = _bad_files(tmp_path, volume)
    for args, name, words in (((corrupt, mask), "corrupt.nii.gz", "not a readable NIfTI"),
                              ((flat, None), "flat.nii.gz", "expected a 3D volume, got 2D"),
                              ((volume, other), "other_mask.nii.gz", "mask does not match the image srr.nii.gz")):
        with pytest.raises(FetalInputError, match=words) as info:
            tab_ga.predict(slot, *args)
        assert info.value.path.name == name


def test_respond_refuses_then_answers_and_deletes_the_uploads(slot, atlas_volume, tmp_path) -> None:
    uploads = UploadFolder.create(tmp_path)
    corrupt, _, _ = _bad_files(tmp_path, atlas_volume[0])
    bad = uploads.root / "b" / "corrupt.nii.gz"
    bad.parent.mkdir()
    shutil.copy(corrupt, bad)
    md, picture, card, *cleared = tab_ga.respond(slot, uploads, str(bad), None)
    assert md.startswith("**Cannot predict the gestational age.** corrupt.nii.gz: not a readable NIfTI") and picture is None
    copies = []
    for i, f in enumerate(atlas_volume):
        copies.append(uploads.root / f"g{i}" / f.name)
        copies[-1].parent.mkdir()
        shutil.copy(f, copies[-1])
    md, picture, card, *cleared = tab_ga.respond(slot, uploads, str(copies[0]), str(copies[1]))
    assert md.startswith("### GA 29+0") and isinstance(picture, np.ndarray) and "Test GA model" in card
    assert cleared == [None, None, None] and uploads.files() == []
