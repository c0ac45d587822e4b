"""Evaluation metrics and cross-validation folds against independent truth.

References: scikit-learn's roc_auc_score / r2_score, statsmodels OLS and Logit, the
closed form of Lee et al. (2012) worked by hand, and brute-force properties of the folds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from deepprs.errors import InputError
from deepprs.evaluate.metrics import (
    auc,
    bootstrap_ci,
    calibration_slope,
    liability_r2,
    liability_r2_from_observed,
    paired_bootstrap,
    r2,
    r2_sse,
)
from deepprs.train.cv import make_folds, read_folds_file


@pytest.fixture
def quantitative():
    rng = np.random.default_rng(0)
    pred = rng.normal(size=400)
    y = 0.5 * pred + rng.normal(size=400)
    return y, pred


def test_r2_is_squared_pearson_and_r2_sse_matches_sklearn(quantitative):
    from sklearn.metrics import r2_score

    y, pred = quantitative
    assert r2(y, pred) == pytest.approx(stats.pearsonr(y, pred)[0] ** 2, rel=1e-12)
    assert r2_sse(y, pred) == pytest.approx(r2_score(y, pred), rel=1e-12)
    assert r2(y, 3 * pred + 7) == pytest.approx(r2(y, pred))  # scale-free
    assert r2_sse(y, 3 * pred + 7) < 0  # but 1 - SSE/SST is not


def test_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300).astype(float)
    pred = np.round(y * 0.5 + rng.normal(size=300), 1)  # rounding creates ties
    assert auc(y, pred) == pytest.approx(roc_auc_score(y, pred), rel=1e-12)
    with pytest.raises(InputError, match="0/1"):
        auc(np.array([0.0, 1.0, 2.0]), np.array([0.1, 0.2, 0.3]))


def test_calibration_slope_matches_statsmodels(quantitative):
    y, pred = quantitative
    ols = sm.OLS(y, sm.add_constant(pred)).fit()
    assert calibration_slope(y, pred) == pytest.approx(ols.params[1], rel=1e-10)
    rng = np.random.default_rng(2)
    logit = rng.normal(size=500)
    outcome = (rng.random(500) < 1 / (1 + np.exp(-0.7 * logit))).astype(float)
    reference = sm.Logit(outcome, sm.add_constant(logit)).fit(disp=0)
    assert calibration_slope(outcome, logit) == pytest.approx(reference.params[1], rel=1e-6)


def test_liability_r2_closed_form():
    # worked by hand: K = 0.1, P = 0.5, observed R2 = 0.05 (Lee et al. 2012, eq. 15)
    k, p, r2_observed = 0.1, 0.5, 0.05
    t = stats.norm.ppf(1 - k)
    z = stats.norm.pdf(t)
    m = z / k
    c = k * (1 - k) / z**2 * k * (1 - k) / (p * (1 - p))
    theta = m * (p - k) / (1 - k) * (m * (p - k) / (1 - k) - t)
    expected = r2_observed * c / (1 + r2_observed * theta * c)
    assert liability_r2_from_observed(r2_observed, k, p) == pytest.approx(expected, rel=1e-12)
    assert 0.05 < expected < 0.2  # sanity of the hand computation
    # no ascertainment (P = K): theta = 0 and R2_l = R2_o * K(1-K)/z^2 ... * K(1-K)/(K(1-K))
    assert liability_r2_from_observed(0.02, 0.2, 0.2) == pytest.approx(
        0.02 * (0.2 * 0.8) ** 2 / stats.norm.pdf(stats.norm.ppf(0.8)) ** 2 / (0.2 * 0.8), rel=1e-12
    )
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 0], dtype=float)
    pred = np.linspace(0, 1, 10)
    assert liability_r2(y, pred, 0.1) == pytest.approx(liability_r2_from_observed(r2(y, pred), 0.1, 0.4))
    with pytest.raises(InputError):
        liability_r2_from_observed(0.1, 1.5, 0.5)


def test_bootstrap_ci_covers_truth_and_is_seeded(quantitative):
    y, pred = quantitative
    estimate, lower, upper = bootstrap_ci(r2, y, pred, n_boot=300, seed=3)
    assert lower < estimate < upper
    # population r2 = 0.25 / 1.25 = 0.2
    assert lower < 0.2 < upper
    assert bootstrap_ci(r2, y, pred, n_boot=300, seed=3) == (estimate, lower, upper)


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(4)
    n = 1000
    genetic = rng.normal(size=n)
    y = genetic + rng.normal(size=n)
    good = genetic + 0.5 * rng.normal(size=n)
    worse = genetic + 1.5 * rng.normal(size=n)
    diff, (lower, upper), p_value = paired_bootstrap(r2, y, good, worse, n_boot=500, seed=5)
    assert diff == pytest.approx(r2(y, good) - r2(y, worse))
    assert lower > 0 and p_value < 0.01
    # null: two predictors of exactly the same quality (independent noise of equal size)
    p_values = []
    for seed in range(20):
        local = np.random.default_rng(100 + seed)
        a = genetic + local.normal(size=n)
        b = genetic + local.normal(size=n)
        p_values.append(paired_bootstrap(r2, y, a, b, n_boot=200, seed=seed)[2])
    # under the null P is ~uniform: at most a few of 20 below 0.05, and not all small
    assert sum(p < 0.05 for p in p_values) <= 3
    assert np.median(p_values) > 0.2


# -- folds ---------------------------------------------------------------------------------


def test_make_folds_balanced_and_seeded():
    ids = [f"s{i}" for i in range(103)]
    folds = make_folds(ids, 5, seed=1)
    counts = np.bincount(folds)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 103
    assert np.array_equal(make_folds(ids, 5, seed=1), folds)
    assert not np.array_equal(make_folds(ids, 5, seed=2), folds)


def test_make_folds_group_by_keeps_families_together():
    rng = np.random.default_rng(6)
    family_sizes = rng.integers(1, 6, 60)
    fids = np.repeat([f"F{i}" for i in range(60)], family_sizes)
    iids = [f"I{i}" for i in range(len(fids))]
    sample_ids = pd.MultiIndex.from_arrays([fids, iids], names=["FID", "IID"])
    folds = make_folds(sample_ids, 4, seed=7, group_by="FID")
    frame = pd.DataFrame({"fid": fids, "fold": folds})
    assert (frame.groupby("fid")["fold"].nunique() == 1).all()
    counts = np.bincount(folds)
    assert counts.max() - counts.min() <= family_sizes.max()
    np.testing.assert_array_equal(make_folds(sample_ids, 4, seed=7, group_by=fids), folds)
    with pytest.raises(InputError, match="groups"):
        make_folds(sample_ids[:6], 10, seed=0, group_by="FID")
    with pytest.raises(InputError, match=">= 2"):
        make_folds(iids, 1)


def test_read_folds_file(tmp_path):
    sample_ids = pd.MultiIndex.from_arrays([["1", "2", "3", "4"], ["a", "b", "c", "d"]], names=["FID", "IID"])
    path = tmp_path / "folds.txt"
    path.write_text("#FID IID FOLD\n4 d 7\n1 a 3\n2 b 7\n3 c 3\n9 z 1\n")
    np.testing.assert_array_equal(read_folds_file(path, sample_ids), [0, 1, 0, 1])
    path.write_text("1 a 1\n2 b 2\n3 c 1\n")
    with pytest.raises(InputError, match="no fold"):
        read_folds_file(path, sample_ids)
    path.write_text("1 a 1\n2 b 1\n3 c 1\n4 d 1\n")
    with pytest.raises(InputError, match="at least 2"):
        read_folds_file(path, sample_ids)
    with pytest.raises(InputError, match="does not exist"):
        read_folds_file(tmp_path / "absent.txt", sample_ids)
