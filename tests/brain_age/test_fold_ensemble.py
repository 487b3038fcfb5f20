"""The deployed segmenter as the out-of-fold segmenters averaged (fetal_lib.brain_age.fold_ensemble)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fetal_lib.brain_age import fold_ensemble, pipeline, segmentation  # noqa: E402
from fetal_lib.networks.torch import create  # noqa: E402
from fetal_lib.training.torch import FitResult  # noqa: E402


def _members(n=3, in_channels=2):
    nets = []
    for seed in range(n):
        torch.manual_seed(seed)
        net = create("resunet3d", in_channels=in_channels, num_classes=4, base_width=2, depth=2)
        net.input_names = ("image", "mask")[:in_channels]
        nets.append(net.eval())
    return nets


def _volumes(n=2, size=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, size, size, size)).astype(np.float32)
    masks = np.zeros((n, size, size, size), np.uint8)
    masks[:, 4:12, 4:12, 4:12] = 1
    return images, masks


def test_the_ensemble_probabilities_are_the_members_softmax_averaged():
    members = _members()
    images, masks = _volumes()
    ensemble = fold_ensemble.mean_probability_ensemble(members)
    got = segmentation.predict_proba(ensemble, images, masks)
    x = torch.from_numpy(segmentation.network_input(images, masks, 2))
    with torch.inference_mode():
        expected = np.mean([torch.softmax(m(x), 1).numpy() for m in members], axis=0)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    assert fold_ensemble.is_ensemble(ensemble) and not fold_ensemble.is_ensemble(members[0])
    assert fold_ensemble.members_of(ensemble) == members and fold_ensemble.members_of(members[0]) == [members[0]]
    assert ensemble.config["members"] == 3 and segmentation.input_names(ensemble) == ("image", "mask")


def test_an_ensemble_saved_and_loaded_predicts_the_same(tmp_path):
    ensemble = fold_ensemble.mean_probability_ensemble(_members())
    images, masks = _volumes()
    segmentation.save(ensemble, tmp_path)
    meta = json.loads((tmp_path / "segmenter.json").read_text())
    assert meta["members"] == 3 and "members" not in meta["config"]
    back = segmentation.load(tmp_path)
    assert fold_ensemble.is_ensemble(back) and len(fold_ensemble.members_of(back)) == 3
    np.testing.assert_allclose(segmentation.predict_proba(back, images, masks), segmentation.predict_proba(ensemble, images, masks),
                               atol=1e-6)
    # one network saved over it is one network again
    single = _members(1)[0]
    segmentation.save(single, tmp_path)
    assert not fold_ensemble.is_ensemble(segmentation.load(tmp_path))


def test_the_history_is_averaged_over_the_folds_where_each_epoch_was_scored():
    a = [{"epoch": 1, "loss": 1.0, "seconds": 2.0}, {"epoch": 2, "loss": 0.5, "seconds": 2.0, "val_dice_csf": 0.6}]
    b = [{"epoch": 1, "loss": 3.0, "seconds": 4.0}, {"epoch": 2, "loss": 1.5, "seconds": 4.0, "val_dice_csf": 0.8}]
    rows = fold_ensemble.mean_history([a, b])
    assert rows[0] == {"epoch": 1, "loss": 2.0, "seconds": 3.0}
    assert rows[1]["val_dice_csf"] == pytest.approx(0.7) and rows[1]["loss"] == pytest.approx(1.0)
    assert len(fold_ensemble.mean_history([a, b[:1]])) == 1  # only the epochs every fold ran


def test_fold_segmenters_deploy_their_members_and_know_who_held_each_subject_out():
    members = _members(2)
    fits = [FitResult(model=m, history=[{"epoch": 1, "loss": 1.0, "seconds": 5.0}], seconds=5.0 + k, best_epoch=1)
            for k, m in enumerate(members)]
    folds = fold_ensemble.FoldSegmenters(proba=np.zeros((5, 4, 2, 2, 2), np.float32), fits=fits,
                                         held_out=[np.array([0, 2, 4]), np.array([1, 3])])
    assert folds.folds == 2 and folds.seconds == pytest.approx(11.0)
    assert [folds.fold_of(i) for i in range(5)] == [0, 1, 0, 1, 0]
    with pytest.raises(IndexError):
        folds.fold_of(7)
    assert folds.subjects_per_member() == (2, 2)  # 5 subjects, 2.5 held out a fold on average: rounded
    deployed = folds.deployed()
    assert fold_ensemble.members_of(deployed.model) == members and deployed.seconds == pytest.approx(11.0)
    assert not deployed.time_capped


def test_the_deployed_segmenter_needs_at_least_two_folds():
    assert pipeline.deployed_folds({"seg_cv_folds": 3}) == 3
    with pytest.raises(ValueError, match="at least 2 folds"):
        pipeline.deployed_folds({"seg_cv_folds": 0})


def test_out_of_fold_scores_are_the_dice_of_the_folds_segmentations_and_the_floor_refuses_a_broken_set():
    from types import SimpleNamespace

    from fetal_lib.brain_age.dataset import Subject
    from fetal_lib.training.floor import BelowFloorError

    rng = np.random.default_rng(0)
    segs = rng.integers(0, 4, size=(4, 8, 8, 8)).astype(np.uint8)
    subjects = [Subject(f"s{i}", 30.0 + i, "F", "image", Path("seg.nii.gz"), None, None) for i in range(4)]
    data = SimpleNamespace(segs=segs, subjects=subjects, spacing_mm=(3.0, 3.0, 3.0))
    perfect = np.eye(4, dtype=np.float32)[segs].transpose(0, 4, 1, 2, 3)
    members = _members(2)
    fits = [FitResult(model=m, history=[{"epoch": 1, "loss": 1.0, "seconds": 1.0}], seconds=1.0) for m in members]
    folds = fold_ensemble.FoldSegmenters(proba=perfect, fits=fits, held_out=[np.array([0, 1]), np.array([2, 3])])
    table, summary, scores = pipeline.out_of_fold_scores(folds, data, 1, "float32", is_phantom=False, n_boot=10)
    assert len(table) == 4 * 3 and list(summary["tissue"]) == ["CSF", "GM", "WM"]
    assert scores == pytest.approx({"dice_csf": 1.0, "dice_gm": 1.0, "dice_wm": 1.0, "dice_mean": 1.0})
    # every voxel called the next class: Dice 0 everywhere, below the real-data floor, nothing returned
    wrong = np.roll(perfect, 1, axis=1)
    with pytest.raises(BelowFloorError, match="out of fold"):
        pipeline.out_of_fold_scores(fold_ensemble.FoldSegmenters(proba=wrong, fits=fits, held_out=folds.held_out), data, 1,
                                    "float32", is_phantom=False, n_boot=10)
