"""The naming rule that pairs a folder's volumes with their masks (``fetal ga predict --images-dir``).

Files are empty: the rule reads names only. Each case writes the layout the rule documents and
checks the pairs against the pairs written by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fetal_lib.errors import FetalInputError
from fetal_lib.ga_mri.batch import VolumePair, pair_folder


def _touch(root: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        out.append(path)
    return out


def _pairs(pairs: list[VolumePair]) -> list[tuple[Path, Path | None]]:
    return [(p.image, p.mask) for p in pairs]


def test_feta_bids_layout_pairs_each_t2w_with_its_own_mask_or_dseg(tmp_path) -> None:
    t2_1, dseg_1, t2_2, dseg_2, mask_2, t2_3 = _touch(
        tmp_path, "sub-001/anat/sub-001_rec-mial_T2w.nii.gz", "sub-001/anat/sub-001_rec-mial_dseg.nii.gz",
        "sub-002/anat/sub-002_rec-irtk_T2w.nii.gz", "sub-002/anat/sub-002_rec-irtk_dseg.nii.gz",
        "sub-002/anat/sub-002_rec-irtk_desc-brain_mask.nii.gz", "sub-003/anat/sub-003_rec-nmic_T2w.nii")
    _touch(tmp_path, "participants.tsv", "sub-001/anat/sub-001_rec-mial_T1w.nii.gz", "sub-001/anat/sub-001_rec-mial_probseg.nii.gz")
    pairs = pair_folder(tmp_path)
    # the brain mask is preferred to the label map; a T1w, a probseg and the masks are not volumes
    assert _pairs(pairs) == [(t2_1, dseg_1), (t2_2, mask_2), (t2_3, None)]
    assert pairs[2].problem and "sub-003_rec-nmic_desc-brain_mask.nii.gz" in pairs[2].problem and "sub-003_rec-nmic_dseg.nii.gz" in pairs[2].problem
    assert str(t2_3.parent) in pairs[2].problem
    assert pairs[0].problem is None and pairs[1].problem is None


def test_atlas_layout_pairs_srr_with_the_mask_of_its_folder(tmp_path) -> None:
    srr_a, mask_a, parc_a = _touch(tmp_path, "Neurotypical_Gholipour2017/HarvardSTA21_Study1/srr.nii.gz",
                                   "Neurotypical_Gholipour2017/HarvardSTA21_Study1/mask.nii.gz",
                                   "Neurotypical_Gholipour2017/HarvardSTA21_Study1/parcellation.nii.gz")
    srr_b, parc_b = _touch(tmp_path, "Neurotypical_Wu2021/Chinese22_Study1/srr.nii.gz", "Neurotypical_Wu2021/Chinese22_Study1/parcellation.nii.gz")
    _touch(tmp_path, "Neurotypical_Wu2021/Chinese35_Study1/mask.nii.gz", "Neurotypical_Wu2021/Chinese35_Study1/parcellation.nii.gz",
           "Neurotypical_Gholipour2017/LICENSE", ".hidden/srr.nii.gz", "PHANTOM_truth.csv")
    assert _pairs(pair_folder(tmp_path)) == [(srr_a, mask_a), (srr_b, parc_b)]  # Chinese35 has no T2: no volume


def test_any_other_name_pairs_with_name_mask_and_a_mask_folder_mirrors_the_images(tmp_path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    case1, case2, atlas = _touch(images, "case1.nii.gz", "case2.nii.gz", "HarvardSTA30_Study1/srr.nii.gz")
    beside = _touch(images, "case1_mask.nii.gz")[0]
    t2 = _touch(images, "sub-004/anat/sub-004_T2w.nii.gz")[0]
    m1, m2, m_atlas, m_t2 = _touch(masks, "case1_mask.nii.gz", "case2_dseg.nii.gz", "HarvardSTA30_Study1/mask.nii.gz",
                                   "sub-004_mask.nii.gz")  # sub-004's at the top level of the mask folder
    _touch(masks, "mask.nii.gz")  # never the atlases' mask: it does not carry the volume's name
    assert _pairs(pair_folder(images)) == [(atlas, None), (case1, beside), (case2, None), (t2, None)]
    assert _pairs(pair_folder(images, masks)) == [(atlas, m_atlas), (case1, m1), (case2, m2), (t2, m_t2)]
    (masks / "HarvardSTA30_Study1" / "mask.nii.gz").unlink()
    missing = pair_folder(images, masks)[0]
    assert missing.mask is None and str(masks / "HarvardSTA30_Study1") in missing.problem and "mask.nii.gz" in missing.problem


def test_missing_folders_and_a_folder_without_volumes_are_named(tmp_path) -> None:
    with pytest.raises(FetalInputError, match="folder not found") as err:
        pair_folder(tmp_path / "nope")
    assert err.value.path == tmp_path / "nope"
    _touch(tmp_path, "a_mask.nii.gz", "mask.nii.gz", "notes.txt")
    with pytest.raises(FetalInputError, match="no volume found") as err:
        pair_folder(tmp_path)
    assert err.value.path == tmp_path
    _touch(tmp_path, "a.nii.gz")
    with pytest.raises(FetalInputError, match="folder not found"):
        pair_folder(tmp_path, tmp_path / "no_masks")


def test_predict_pairs_goes_on_past_failures_and_shows_a_bar_on_stderr(tmp_path, capsys) -> None:
    from fetal_lib.ga_mri.batch import predict_pairs

    class Predictor:  # answers the file's name; refuses "bad"
        def predict(self, image, mask):
            if image.name == "bad.nii.gz":
                raise FetalInputError(image, "corrupt")
            return type("P", (), {"row": lambda self: {"image": str(image), "mask": str(mask)}})()

    pairs = [VolumePair(tmp_path / "a.nii.gz", tmp_path / "a_mask.nii.gz"), VolumePair(tmp_path / "bad.nii.gz", None),
             VolumePair(tmp_path / "c.nii.gz", None, "no brain mask found"), VolumePair(tmp_path / "d.nii.gz", None)]
    errors = []
    rows, failed = predict_pairs(Predictor(), pairs, errors.append, progress=True)
    assert rows == [{"image": str(tmp_path / "a.nii.gz"), "mask": str(tmp_path / "a_mask.nii.gz")},
                    {"image": str(tmp_path / "d.nii.gz"), "mask": "None"}]
    assert failed == 2 and [(e.path, e.problem) for e in errors] == [(tmp_path / "bad.nii.gz", "corrupt"),
                                                                     (tmp_path / "c.nii.gz", "no brain mask found")]
    captured = capsys.readouterr()
    assert captured.out == "" and "fetal ga predict" in captured.err and "4/4" in captured.err
    predict_pairs(Predictor(), pairs[:1], errors.append, progress=False)
    assert capsys.readouterr().err == ""
