"""Bootstrap confidence intervals against scipy.stats.bootstrap, coverage and cluster resampling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fetal_lib.metrics.regression import mae
from fetal_lib.metrics.uncertainty import BootstrapCI, bootstrap_ci


def test_mean_ci_matches_scipy_percentile_bootstrap() -> None:
    x = np.random.default_rng(0).normal(10.0, 3.0, 80)
    se = x.std(ddof=1) / np.sqrt(x.size)
    ours = bootstrap_ci(np.mean, x, n_boot=4000, ci=0.95, seed=1)
    ref = stats.bootstrap((x,), np.mean, n_resamples=4000, confidence_level=0.95, method="percentile", rng=np.random.default_rng(2))
    assert isinstance(ours, BootstrapCI)
    assert ours.estimate == pytest.approx(x.mean())
    # independent Monte Carlo draws: endpoints agree to a fraction of a standard error
    assert abs(ours.low - ref.confidence_interval.low) < 0.25 * se
    assert abs(ours.high - ref.confidence_interval.high) < 0.25 * se
    # and both are close to the normal-theory interval
    assert ours.low == pytest.approx(x.mean() - 1.96 * se, abs=0.4 * se)
    assert ours.high == pytest.approx(x.mean() + 1.96 * se, abs=0.4 * se)


def test_paired_statistic_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    y = rng.uniform(20, 80, 60)
    p = y + rng.normal(0, 5, 60)
    ours = bootstrap_ci(mae, y, p, n_boot=3000, seed=0)
    ref = stats.bootstrap(
        (y, p), lambda a, b: mae(a, b), paired=True, vectorized=False, n_resamples=3000, method="percentile",
        rng=np.random.default_rng(1),
    ).confidence_interval
    width = ref.high - ref.low
    assert ours.estimate == pytest.approx(mae(y, p))
    assert abs(ours.low - ref.low) < 0.1 * width and abs(ours.high - ref.high) < 0.1 * width


def test_seed_determinism_and_level() -> None:
    x = np.random.default_rng(4).exponential(2.0, 50)
    a = bootstrap_ci(np.median, x, n_boot=500, seed=7)
    assert a == bootstrap_ci(np.median, x, n_boot=500, seed=7)
    assert a != bootstrap_ci(np.median, x, n_boot=500, seed=8)
    narrow = bootstrap_ci(np.mean, x, n_boot=2000, ci=0.5, seed=0)
    wide = bootstrap_ci(np.mean, x, n_boot=2000, ci=0.99, seed=0)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_coverage_of_the_mean_is_near_nominal() -> None:
    rng = np.random.default_rng(5)
    hits, trials = 0, 200
    for i in range(trials):
        x = rng.normal(0.0, 1.0, 40)
        ci = bootstrap_ci(np.mean, x, n_boot=400, ci=0.95, seed=i)
        hits += ci.low <= 0.0 <= ci.high
    coverage = hits / trials
    print(f"\nbootstrap 95% CI coverage of the mean (n=40, {trials} data sets): {coverage:.3f}")
    assert 0.88 <= coverage <= 0.99


def test_groups_one_case_each_equals_plain_bootstrap() -> None:
    x = np.random.default_rng(6).normal(size=30)
    assert bootstrap_ci(np.mean, x, n_boot=300, seed=3, groups=np.arange(30)) == bootstrap_ci(np.mean, x, n_boot=300, seed=3)


def test_cluster_bootstrap_resamples_whole_subjects() -> None:
    rng = np.random.default_rng(7)
    subject_values = rng.normal(size=25)
    x = np.repeat(subject_values, 4)  # 4 identical images per subject
    groups = np.repeat(np.arange(100, 125), 4)
    clustered = bootstrap_ci(np.mean, x, n_boot=500, seed=2, groups=groups)
    # resampling subjects of 4 identical cases == resampling the 25 subject values
    per_subject = bootstrap_ci(np.mean, subject_values, n_boot=500, seed=2)
    assert clustered == pytest.approx(per_subject, rel=1e-12)
    # ignoring the clustering pretends there are 100 independent cases: about half as wide
    naive = bootstrap_ci(np.mean, x, n_boot=500, seed=2)
    assert (naive.high - naive.low) < 0.7 * (clustered.high - clustered.low)


def test_nan_resamples_are_dropped_with_a_warning() -> None:
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1])

    def frac_positive_among_first(a: np.ndarray) -> float:
        return float("nan") if a.sum() == 0 else float(a.mean())

    with pytest.warns(RuntimeWarning, match="non-finite"):
        ci = bootstrap_ci(frac_positive_among_first, y, n_boot=400, seed=0)
    assert 0.0 < ci.low <= ci.high <= 1.0


def test_bad_input_raises() -> None:
    x = np.arange(5.0)
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci(np.mean)
    with pytest.raises(ValueError, match="length"):
        bootstrap_ci(mae, x, x[:4])
    with pytest.raises(ValueError, match="ci"):
        bootstrap_ci(np.mean, x, ci=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(np.mean, x, n_boot=0)
    with pytest.raises(ValueError, match="groups"):
        bootstrap_ci(np.mean, x, groups=np.arange(4))
