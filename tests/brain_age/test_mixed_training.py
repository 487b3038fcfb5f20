"""The regressor's mixed training set (reference + image subjects' reference and predicted rows) and its nested estimate."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from fetal_lib.brain_age import mixed_training, pipeline, regression


def _feats(rng, age, m=12):
    """Volumes and tissue fractions that carry the age (so the ridge keeps a moderate penalty), plus noise."""
    n = len(age)
    return {"volumes": rng.normal(500, 50, (n, 3)) - 2.0 * age[:, None],
            "maps": (0.5 * rng.random((n, m)) + 0.005 * age[:, None]).astype(np.float32)}


def _data(seed=0, n_ref=60, n_img=20):
    rng = np.random.default_rng(seed)
    ref_age, img_age = rng.uniform(20, 80, n_ref), rng.uniform(20, 80, n_img)
    return ref_age, _feats(rng, ref_age), img_age, _feats(rng, img_age), _feats(rng, img_age)


def test_combine_stacks_rows_and_gives_both_copies_of_an_image_subject_one_group():
    ref_age, ref, img_age, img_ref, img_pred = _data()
    age, feats, groups = mixed_training.combine(ref_age, ref, img_age, img_ref, img_pred)
    assert len(age) == len(feats["volumes"]) == len(feats["maps"]) == len(groups) == 60 + 2 * 20
    np.testing.assert_array_equal(age[60:80], img_age)
    np.testing.assert_array_equal(age[80:], img_age)
    np.testing.assert_array_equal(feats["maps"][80:], img_pred["maps"])
    np.testing.assert_array_equal(groups[60:80], groups[80:])
    assert len(set(groups[:60])) == 60 and not set(groups[:60]) & set(groups[60:])


def test_combine_refuses_features_of_another_length():
    ref_age, ref, img_age, img_ref, img_pred = _data()
    with pytest.raises(ValueError, match="predicted features have 19 rows for 20 ages"):
        mixed_training.combine(ref_age, ref, img_age, img_ref, {k: v[:19] for k, v in img_pred.items()})


def test_nested_predictions_match_a_scikit_learn_fit_without_the_fold():
    ref_age, ref, img_age, img_ref, img_pred = _data()
    got = mixed_training.nested_predictions("maps_ridge", ref_age, ref, img_age, img_ref, img_pred, n_splits=4, seed=0)
    tr, te = regression.age_folds(img_age, 4, 0)[0]
    X = np.vstack([np.hstack([f["maps"], f["volumes"]]) for f in
                   (ref, {k: v[tr] for k, v in img_ref.items()}, {k: v[tr] for k, v in img_pred.items()})])
    y = np.concatenate([ref_age, img_age[tr], img_age[tr]])
    mean, sd = X[:, -3:].mean(axis=0), X[:, -3:].std(axis=0)  # volumes standardised on the training rows; maps as fractions
    model = RidgeCV(alphas=regression.ALPHAS).fit(np.hstack([X[:, :-3], (X[:, -3:] - mean) / sd]), y)
    test = np.hstack([img_pred["maps"][te], (img_pred["volumes"][te] - mean) / sd])
    np.testing.assert_allclose(got[te], model.predict(test), rtol=1e-6)


def test_a_subjects_own_rows_never_enter_the_fit_that_predicts_it():
    ref_age, ref, img_age, img_ref, img_pred = _data()
    base = mixed_training.nested_predictions("maps_ridge", ref_age, ref, img_age, img_ref, img_pred, n_splits=4, seed=0)
    changed = {k: v.copy() for k, v in img_ref.items()}
    changed["maps"][3] += 5.0  # subject 3's reference row only: its own prediction comes from a fit without it
    again = mixed_training.nested_predictions("maps_ridge", ref_age, ref, img_age, changed, img_pred, n_splits=4, seed=0)
    assert again[3] == pytest.approx(base[3])
    assert not np.allclose(np.delete(again, 3), np.delete(base, 3))


def test_deployed_regressor_follows_the_training_set_setting():
    ref_age, ref, img_age, img_ref, img_pred = _data()
    settings = {"deploy_model": "maps_ridge", "map_factor": 3, "pca_components": 10, "deploy_features": "hard",
                "feature_correction": "none", "reg_training_set": "reference"}
    assert pipeline.deployed_regressor(settings, ref_age, ref).n_train == 60
    with pytest.raises(ValueError, match="reg_training_set must be one of reference, reference\\+image_subjects"):
        pipeline.deployed_regressor({**settings, "reg_training_set": "everything"}, ref_age, ref)
    with pytest.raises(ValueError, match="needs the image subjects"):
        pipeline.deployed_regressor({**settings, "reg_training_set": "reference+image_subjects"}, ref_age, ref)
    with pytest.raises(ValueError, match="set feature_correction to none"):
        pipeline.deployed_regressor({**settings, "reg_training_set": "reference+image_subjects", "feature_correction": "tissue_mixing"},
                                    ref_age, ref)
    fitted = mixed_training.fit("maps_ridge", ref_age, ref, img_age, img_ref, img_pred, map_factor=3)
    assert fitted.n_train == 100 and fitted.map_factor == 3


def test_uses_tta():
    assert pipeline.uses_tta({"seg_tta": "hflip"}) and not pipeline.uses_tta({"seg_tta": "none"}) and not pipeline.uses_tta({})
    with pytest.raises(ValueError, match="seg_tta must be hflip or none"):
        pipeline.uses_tta({"seg_tta": "vflip"})
