"""Nested selection of the deployed brain-age path, on features with a known answer.

The phantom: ages 20-80; the *hard* predicted features carry the age (grey matter falls linearly
with it) and the *soft* ones are noise, so the rule must choose hard features, and the nested
estimate must never let a held-out subject take part in the choice that predicts it.
"""

from __future__ import annotations

import numpy as np
import pytest

from fetal_lib.brain_age import nested
from fetal_lib.brain_age.nested import Inputs, Recipe
from fetal_lib.brain_age.regression import age_folds


def _features(age: np.ndarray, rng: np.random.Generator, informative: bool, n_blocks: int = 8) -> dict[str, np.ndarray]:
    n = len(age)
    gm = 700 - 3.0 * age + rng.normal(0, 6, n) if informative else rng.normal(550, 60, n)
    volumes = np.stack([100 + rng.normal(0, 5, n), gm, 500 + rng.normal(0, 5, n)], axis=1)
    maps = rng.uniform(0, 1, (n, 3 * n_blocks)).astype(np.float32)
    maps[:, n_blocks:2 * n_blocks] = (gm / 700.0)[:, None] * rng.uniform(0.9, 1.1, (n, n_blocks))
    return {"volumes": volumes, "maps": maps}


@pytest.fixture(scope="module")
def inputs() -> Inputs:
    rng = np.random.default_rng(0)
    ref_age, img_age = rng.uniform(20, 80, 120), rng.uniform(20, 80, 40)
    return Inputs(ref_age, _features(ref_age, rng, True), img_age, _features(img_age, rng, True),
                  {"hard": _features(img_age, rng, True), "soft": _features(img_age, rng, False)}, n_components=5)


def test_recipes_never_stack_a_correction_on_a_mixed_training_set() -> None:
    found = nested.recipes(["bayesian_ridge", "maps_ridge"])
    assert len(found) == 2 * 2 * 3  # per model and features: reference, reference + mixing, mixed rows
    assert not any(r.correction != "none" and r.training_set != "reference" for r in found)
    with pytest.raises(ValueError, match="one remedy"):
        Recipe("maps_ridge", "hard", "tissue_mixing", "reference+image_subjects")
    with pytest.raises(ValueError):
        Recipe("maps_ridge", "fuzzy")
    assert Recipe("maps_ridge", "hard").settings() == {"deploy_model": "maps_ridge", "deploy_features": "hard",
                                                      "feature_correction": "none", "reg_training_set": "reference"}


def test_a_reference_recipe_is_scikit_learn_on_the_regression_subjects(inputs) -> None:
    from sklearn.linear_model import BayesianRidge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    test = np.arange(10)
    got = inputs.predict(Recipe("bayesian_ridge", "hard"), np.arange(10, 40), test)
    ref = make_pipeline(StandardScaler(), BayesianRidge()).fit(inputs.ref_feats["volumes"], inputs.ref_age)
    np.testing.assert_allclose(got, ref.predict(inputs.img_predicted["hard"]["volumes"][test]), rtol=1e-9)


def test_a_mixed_recipe_learns_from_the_training_subjects_only(inputs) -> None:
    from fetal_lib.brain_age import mixed_training, regression

    train, test = np.arange(10, 40), np.arange(10)
    recipe = Recipe("bayesian_ridge", "soft", training_set="reference+image_subjects")
    got = inputs.predict(recipe, train, test)
    rows = {k: v[train] for k, v in inputs.img_reference.items()}
    pred = {k: v[train] for k, v in inputs.img_predicted["soft"].items()}
    age, feats, _ = mixed_training.combine(inputs.ref_age, inputs.ref_feats, inputs.img_age[train], rows, pred)
    _, expected = regression.fit_predict("bayesian_ridge", feats["volumes"], age, inputs.img_predicted["soft"]["volumes"][test], 5)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    test_changed = Inputs(inputs.ref_age, inputs.ref_feats, inputs.img_age.copy(), inputs.img_reference, inputs.img_predicted, 5)
    test_changed.img_age[test] += 30.0  # the held-out subjects' ages take no part in their prediction
    np.testing.assert_allclose(test_changed.predict(recipe, train, test), got, rtol=1e-9)


def test_nested_selection_chooses_informative_features_and_keeps_each_fold_out_of_its_choice(inputs) -> None:
    calls: list[tuple[np.ndarray, np.ndarray]] = []

    class Spy(Inputs):
        def predict(self, recipe, train, test):
            calls.append((np.asarray(train), np.asarray(test)))
            return super().predict(recipe, train, test)

    spy = Spy(inputs.ref_age, inputs.ref_feats, inputs.img_age, inputs.img_reference, inputs.img_predicted, 5)
    candidates = [Recipe("bayesian_ridge", "soft"), Recipe("bayesian_ridge", "hard"),
                  Recipe("bayesian_ridge", "soft", training_set="reference+image_subjects")]
    boundaries = []
    result = nested.nested_selection(spy, candidates, outer_folds=4, inner_folds=3, seed=0, on_fold=lambda row: boundaries.append(len(calls)))
    assert result.chosen == Recipe("bayesian_ridge", "hard")
    assert all(f["chosen recipe"] == result.chosen.label for f in result.folds)
    assert np.all(np.isfinite(result.nested_predicted))
    # within outer fold k, every fit and prediction happens inside the complement of fold k's test subjects
    start = 0
    held_out = [np.asarray(t) for _, t in age_folds(inputs.img_age, 4, 0)]
    for k, end in enumerate(boundaries):
        inner_calls = calls[start:end - len(candidates)]  # the last len(candidates) calls score the held-out fold
        for train, test in inner_calls:
            assert not set(train) & set(held_out[k]) and not set(test) & set(held_out[k])
        for train, test in calls[end - len(candidates):end]:
            assert set(test) == set(held_out[k]) and not set(train) & set(held_out[k])
        start = end
    h = nested.headline(result, n_boot=200)
    assert h["nested_mae_years"] == pytest.approx(result.nested_mae) and h["inner_choices_agree"]
    assert h["nested_mae_ci_years"][0] <= h["nested_mae_years"] <= h["nested_mae_ci_years"][1]
    assert h["optimism_years"] == pytest.approx(result.nested_mae - result.best_cv_mae)
    assert h["best_of_recipes_mae_years"] == pytest.approx(min(result.cv_mae(r) for r in candidates))
    assert result.cv_mae(Recipe("bayesian_ridge", "soft")) > 3 * result.cv_mae(result.chosen)  # noise features: far worse
    table = nested.recipes_table(result, n_boot=100)
    assert table["chosen (lowest CV MAE)"].tolist() == [False, True, False]


def test_too_few_subjects_or_no_candidate_is_an_error(inputs) -> None:
    with pytest.raises(ValueError, match="too few"):
        nested.nested_selection(inputs, [Recipe("linear", "hard")], outer_folds=10, inner_folds=5)
    with pytest.raises(ValueError, match="at least one"):
        nested.nested_selection(inputs, [])


def test_the_population_estimate_is_the_nested_mae_plus_the_difficulty_offset(inputs) -> None:
    from sklearn.model_selection import cross_val_predict

    from fetal_lib.brain_age.regression import make_model

    candidates = [Recipe("maps_ridge", "hard"), Recipe("maps_ridge", "soft")]
    result = nested.nested_selection(inputs, candidates, outer_folds=4, inner_folds=3, seed=0)
    got = nested.population_adjusted(result, inputs, n_splits=5, seed=0, n_boot=300)
    assert got["model"] == "maps_ridge" and got["n_regression_subjects"] == len(inputs.ref_age)
    # the regressor's CV on the regression subjects, independently: scikit-learn over the same folds
    x_ref = np.hstack([inputs.ref_feats["maps"], inputs.ref_feats["volumes"]]).astype(np.float64)
    folds = age_folds(inputs.ref_age, 5, 0)
    fold_of = np.empty(len(inputs.ref_age), int)
    for k, (_, te) in enumerate(folds):
        fold_of[te] = k
    oof = cross_val_predict(make_model("maps_ridge"), x_ref, inputs.ref_age, groups=fold_of,
                            cv=[(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(5)])
    assert got["reference_cv_mae_years"] == pytest.approx(np.mean(np.abs(oof - inputs.ref_age)), rel=1e-9)
    # the same model fitted on every regression subject, scored on the image subjects' reference features
    fitted = make_model("maps_ridge").fit(x_ref, inputs.ref_age)
    x_img = np.hstack([inputs.img_reference["maps"], inputs.img_reference["volumes"]]).astype(np.float64)
    img_ref_mae = np.mean(np.abs(fitted.predict(x_img) - inputs.img_age))
    assert got["image_subjects_reference_mae_years"] == pytest.approx(img_ref_mae, rel=1e-9)
    assert got["difficulty_offset_years"] == pytest.approx(got["reference_cv_mae_years"] - img_ref_mae)
    assert got["population_mae_years"] == pytest.approx(result.nested_mae + got["difficulty_offset_years"])
    low, high = got["population_mae_ci_years"]
    assert low < got["population_mae_years"] < high


def test_the_offset_is_zero_in_expectation_when_image_subjects_are_drawn_like_the_cohort_and_positive_when_easier() -> None:
    """Image subjects drawn from the cohort: the offset is small against the spread of ages; drawn from
    its easiest part (noise-free grey matter), the offset says they are easier by about the cohort's error."""
    rng = np.random.default_rng(3)
    ref_age = rng.uniform(20, 80, 300)
    ref = _features(ref_age, rng, True)
    offsets = {}
    for name, noise in (("like the cohort", 6.0), ("easier", 0.0)):
        img_age = rng.uniform(20, 80, 40)
        gm = 700 - 3.0 * img_age + rng.normal(0, 1, 40) * noise
        feats = _features(img_age, rng, True)
        feats["volumes"][:, 1] = gm
        feats["maps"][:, 8:16] = (gm / 700.0)[:, None] * rng.uniform(0.9, 1.1, (40, 8))
        inp = Inputs(ref_age, ref, img_age, feats, {"hard": feats, "soft": feats}, n_components=5)
        result = nested.nested_selection(inp, [Recipe("maps_ridge", "hard")], outer_folds=4, inner_folds=3, seed=0)
        offsets[name] = nested.population_adjusted(result, inp, n_boot=50)["difficulty_offset_years"]
    assert abs(offsets["like the cohort"]) < 0.6
    assert offsets["easier"] > 0.8


def test_the_knobs_name_the_candidates_and_the_selection(inputs) -> None:
    found = nested.candidates({"nested_models": " bayesian_ridge, ,maps_ridge "})
    assert found == nested.recipes(["bayesian_ridge", "maps_ridge"])
    feats = {"reference": inputs.img_reference, "predicted_soft": inputs.img_predicted["soft"],
             "predicted_hard": inputs.img_predicted["hard"]}
    built = nested.inputs_of(inputs.ref_age, inputs.ref_feats, inputs.img_age, feats, 5)
    assert built.img_predicted["hard"] is inputs.img_predicted["hard"] and built.img_reference is inputs.img_reference
    assert set(built.img_predicted) == set(nested.FEATURES) and built.n_components == 5
    assert nested.check_selection({"deploy_selection": "nested"}, True)
    assert not nested.check_selection({"deploy_selection": "profile"}, False)
    with pytest.raises(ValueError, match="seg_cv_folds"):
        nested.check_selection({"deploy_selection": "nested"}, False)
    with pytest.raises(ValueError, match="deploy_selection"):
        nested.check_selection({"deploy_selection": "best"}, True)


def test_select_is_the_nested_selection_and_its_estimates(inputs) -> None:
    settings = {"nested_models": "bayesian_ridge", "nested_outer_folds": 4, "nested_inner_folds": 3, "reg_folds": 4,
                "n_bootstrap": 50, "reg_models": "bayesian_ridge,maps_ridge"}
    got = nested.select(settings, inputs, seed=2)
    ref = nested.nested_selection(inputs, nested.recipes(["bayesian_ridge"]), 4, 3, 2)
    np.testing.assert_array_equal(got.result.nested_predicted, ref.nested_predicted)
    assert got.head == nested.headline(ref, 50, 2)
    assert got.population == nested.population_adjusted(ref, inputs, 4, 2, 50)
    assert len(got.table) == len(got.candidates) == 6
    with pytest.raises(ValueError, match="reg_models"):
        nested.select({**settings, "reg_models": "maps_ridge"}, inputs, seed=2)
