"""Chapter 5's steps in the package: the image subjects' features, the regressors of the knobs, the
subjects table, the volume agreement and the headline, against independent references."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fetal_lib.brain_age import deployed_path, features, pipeline, report


def test_image_features_are_the_argmax_and_the_probabilities_of_every_subject() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=(3, 6, 6, 6)).transpose(0, 4, 1, 2, 3).astype(np.float32)  # (N, 4, D, H, W)
    segs = rng.integers(0, 4, (3, 6, 6, 6)).astype(np.uint8)
    data = SimpleNamespace(segs=segs, spacing_mm=(3.0, 3.0, 3.0))
    got = pipeline.image_features(data, proba, 3)
    assert list(got) == ["reference", "predicted_hard", "predicted_soft"]
    hard = features.from_probabilities(proba, data.spacing_mm, 3, soft=False)  # the path `fetal brain-age train` took
    np.testing.assert_array_equal(got["predicted_hard"]["maps"], hard["maps"])
    counts = np.array([[np.sum(p.argmax(0) == k) for k in (1, 2, 3)] for p in proba]) * 27 / 1000.0  # mL
    np.testing.assert_allclose(got["predicted_hard"]["volumes"], counts)
    np.testing.assert_allclose(got["predicted_soft"]["volumes"], proba[:, 1:].sum(axis=(2, 3, 4)) * 27 / 1000.0, rtol=1e-5)
    np.testing.assert_allclose(got["reference"]["volumes"],
                               np.array([[np.sum(s == k) for k in (1, 2, 3)] for s in segs]) * 27 / 1000.0)


def test_regression_models_parse_the_knob_and_need_the_deployed_one() -> None:
    assert pipeline.regression_models({"reg_models": "linear, maps_ridge,", "deploy_model": "maps_ridge"}) == ["linear", "maps_ridge"]
    with pytest.raises(ValueError, match="deploy_model"):
        pipeline.regression_models({"reg_models": "linear", "deploy_model": "maps_ridge"})


def test_subjects_table_counts_roles_and_images() -> None:
    subjects = ([SimpleNamespace(role="regression", image_path=None)] * 4 + [SimpleNamespace(role="seg_train", image_path="x")] * 3
                + [SimpleNamespace(role="seg_val", image_path="x"), SimpleNamespace(role="seg_val", image_path=None)])
    t = report.subjects_table(subjects)
    assert t.to_dict("list") == {"role": ["regression", "seg_train", "seg_val"], "subjects": [4, 3, 2], "with images": [0, 3, 1]}


def test_volume_agreement_is_bland_altman_per_tissue() -> None:
    rng = np.random.default_rng(1)
    ref = rng.uniform(100, 600, 20)
    pred = ref + rng.normal(5, 10, 20)
    table = pd.DataFrame({"tissue": ["CSF"] * 10 + ["GM"] * 10, "ref_ml": ref, "pred_ml": pred})
    got = report.volume_agreement(table).set_index("tissue")
    for tissue, part in table.groupby("tissue"):
        diff = part["pred_ml"] - part["ref_ml"]
        assert got.loc[tissue, "bias_ml"] == pytest.approx(diff.mean())
        assert got.loc[tissue, "sd_ml"] == pytest.approx(diff.std(ddof=1))
        assert got.loc[tissue, "loa_high_ml"] == pytest.approx(diff.mean() + 1.96 * diff.std(ddof=1))
        assert got.loc[tissue, "n"] == 10


def test_the_headline_is_the_cohort_estimate_when_nested_else_the_deployed_row() -> None:
    paths = pd.DataFrame({"path": ["upper", "dep"], "deployed": [False, True], "mae_years": [4.0, 6.0], "mae_ci_low": [3.0, 5.0],
                          "mae_ci_high": [5.0, 7.0], "r2": [0.8, 0.6]})
    assert deployed_path.headline(None, paths) == {"mae_years": 6.0, "mae_ci_years": [5.0, 7.0], "r2": 0.6, "nested": False}
    selection = SimpleNamespace(population={"population_mae_years": 6.5, "population_mae_ci_years": [5.5, 7.5]},
                                head={"nested_r2": 0.55})
    assert deployed_path.headline(selection, paths) == {"mae_years": 6.5, "mae_ci_years": [5.5, 7.5], "r2": 0.55, "nested": True}
