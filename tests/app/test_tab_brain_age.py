"""fetal_lib.app.tab_brain_age: the brain age is `fetal brain-age predict`'s, the picture shows the labels
the volumes came from; bad subjects are refused with one line naming the file."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from fetal_lib.app import tab_brain_age
from fetal_lib.app.uploads import UploadFolder
from fetal_lib.errors import FetalInputError
from stand_ins import cli_json


SLOT = ("brain_age", None)  # the slot fixture (conftest.py): the tab's first slot


def test_the_answer_is_fetal_brain_age_predict_s(slot, models_dir, brain_age_subject, capsys) -> None:
    image, mask = brain_age_subject
    a = tab_brain_age.predict(slot, image, mask)
    assert a.row == cli_json(["brain-age", "predict", image, "--mask", mask, "--model", models_dir / "brain_age", "--format", "json"],
                             capsys)
    assert a.segmentation_rgb.ndim == 3 and a.card.name == "Test brain-age models (untrained segmenter)"
    assert a.card.data == "none: synthetic volumes made by the tests" and a.card.metrics == {"cv_mae_years": 1.0}
    md = tab_brain_age.answer_markdown(a)
    assert f"{a.row['predicted_age_years']:.2f} years" in md and f"| WM | {a.row['wm_ml']:.2f} mL |" in md


def test_predict_detailed_keeps_the_labels_of_the_answer(slot, brain_age_subject) -> None:
    from fetal_lib.brain_age.segmentation import MARGIN_MM

    detailed = slot.model.predict_detailed(*brain_age_subject)
    assert detailed.row == slot.model(*brain_age_subject)
    labels, pre = detailed.labels, detailed.preprocessed
    assert labels.shape == pre.mask.shape == (64, 64, 64) and labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2, 3}
    cube = ndimage.generate_binary_structure(3, 3)  # a voxel within MARGIN_MM is within this many cube dilations
    near = ndimage.binary_dilation(pre.mask > 0, cube, iterations=math.ceil(MARGIN_MM / pre.spacing_mm[0]))
    assert labels[pre.mask > 0].any() and not labels[~near].any()  # labels in the brain, none far from its mask


def test_bad_subjects_are_named(slot, brain_age_subject, tmp_path) -> None:
    image, mask = brain_age_subject
    img = sitk.ReadImage(str(image))
    sitk.WriteImage(img[:, :, 40], str(tmp_path / "slice2d.nii.gz"))
    sitk.WriteImage(sitk.RegionOfInterest(sitk.ReadImage(str(mask)), [60, 60, 60], [0, 0, 0]), str(tmp_path / "mask_small.nii.gz"))
    with pytest.raises(FetalInputError, match="expected a 3D volume, got 2D") as info:
        tab_brain_age.predict(slot, tmp_path / "slice2d.nii.gz", mask)
    assert info.value.path.name == "slice2d.nii.gz"
    with pytest.raises(FetalInputError, match="mask does not match image") as info:
        tab_brain_age.predict(slot, image, tmp_path / "mask_small.nii.gz")
    assert info.value.path.name == "mask_small.nii.gz"


def test_respond_needs_both_files_and_deletes_them(slot, brain_age_subject, tmp_path) -> None:
    uploads = UploadFolder.create(tmp_path)
    copies = [uploads.root / f"b{i}" / f.name for i, f in enumerate(brain_age_subject)]
    copies[0].parent.mkdir()
    shutil.copy(brain_age_subject[0], copies[0])
    md, picture, *_ = tab_brain_age.respond(slot, uploads, str(copies[0]), None)
    assert md == "**Cannot predict the brain age.** no file: upload its brain mask first" and picture is None
    assert uploads.files() == []  # the lone T1 was deleted too
    for f, c in zip(brain_age_subject, copies):
        c.parent.mkdir(exist_ok=True)
        shutil.copy(f, c)
    md, picture, card, *cleared = tab_brain_age.respond(slot, uploads, str(copies[0]), str(copies[1]))
    assert md.startswith("### Predicted brain age") and picture is not None and cleared == [None, None, None]
    assert uploads.files() == []
