"""Chapter 5's tables: the domain-shift scores against scikit-learn, counts from the subjects."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, r2_score

from fetal_lib import anchors
from fetal_lib.brain_age import report


class _Sum:
    def predict(self, volumes, maps):
        return volumes.sum(1) / 10.0


def test_domain_shift_and_deployed_path_tables():
    rng = np.random.default_rng(0)
    ages = rng.uniform(20, 80, 12)
    feats = {"reference": {"volumes": np.c_[ages * 10, np.zeros((12, 2))], "maps": np.zeros((12, 6))},
             "predicted_soft": {"volumes": np.c_[ages * 10 + 30, np.zeros((12, 2))], "maps": np.zeros((12, 6))}}
    t = report.domain_shift({"m": _Sum()}, ages, feats, "m").iloc[0]
    assert t["deployed"] and t["mae_reference_segs_years"] == pytest.approx(0.0)
    assert t["mae_predicted_soft_segs_years"] == pytest.approx(mean_absolute_error(ages, ages + 3))
    assert t["r2_predicted_soft_segs"] == pytest.approx(r2_score(ages, ages + 3))
    assert t["mean_gap_predicted_soft_segs_years"] == pytest.approx(3.0)
    bias = report.volume_bias(feats)
    assert bias.loc["csf_ml", "predicted_soft"] == pytest.approx(30.0) and bias.loc["gm_ml", "predicted_soft"] == 0
    path = report.deployed_path_table(_Sum(), [f"s{i}" for i in range(12)], ages, feats)
    assert np.allclose(path["predicted_reference_years"], ages) and list(path.columns)[:2] == ["subject_id", "age_years"]


def test_sentences_count_and_quote_the_anchors():
    subjects = ([SimpleNamespace(role="seg_train", image_path="x")] * 3 + [SimpleNamespace(role="seg_val", image_path="x")] * 2
                + [SimpleNamespace(role="regression", image_path=None)] * 7)
    text = report.data_sentence(subjects)
    assert "3 segmentation-training and 2 validation" in text and "(5 with images" in text and "7 regression subjects" in text
    assert anchors.get("brain_age.source.holdout_mae").text() in report.source_sentence()
