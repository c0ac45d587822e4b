"""Linear PRS models and variant screening against independent truth.

References: statsmodels OLS (marginal association), a brute-force greedy clump, the closed-form
ridge solution with unpenalised covariates, scikit-learn Ridge / ElasticNet / Lasso on the same
standardised data, and Daetwyler's expected accuracy for ridge/GBLUP.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm

from deepprs.io.packed import PackedGenotypes
from deepprs.models.base import MODEL_REGISTRY, make_model
from deepprs.models.screening import clump, marginal_association, screen_variants

pytestmark = pytest.mark.usefixtures("one_blas_thread")  # see conftest.py


def simulate(n, m, *, n_causal, h2, seed, n_test=0, maf=(0.05, 0.5), effects=None):
    rng = np.random.default_rng(seed)
    freq = rng.uniform(*maf, m)
    dosage = rng.binomial(2, freq, (n + n_test, m)).astype(np.float64)
    z = (dosage - 2 * freq) / np.sqrt(2 * freq * (1 - freq))
    beta = np.zeros(m)
    causal = np.sort(rng.choice(m, n_causal, replace=False))
    beta[causal] = rng.normal(size=n_causal) if effects is None else effects
    genetic = z @ beta
    genetic *= np.sqrt(h2 / genetic.var())
    y = genetic + rng.normal(scale=np.sqrt(1 - h2), size=n + n_test)
    return dosage, y, causal


def standardise(dosage):
    mean = dosage.mean(0)
    sd = dosage.std(0, ddof=1)
    return (dosage - mean) / sd, mean, sd


# -- screening ----------------------------------------------------------------------------


def test_marginal_association_matches_statsmodels_with_covariates_and_missing():
    rng = np.random.default_rng(0)
    n, m = 250, 30
    dosage = rng.binomial(2, 0.3, (n, m)).astype(float)
    dosage[rng.random((n, m)) < 0.03] = np.nan
    covariates = rng.normal(size=(n, 2))
    y = 0.6 * np.nan_to_num(dosage[:, 4]) + covariates[:, 0] + rng.normal(size=n)
    beta, pvalue = marginal_association(dosage, y, covariates=covariates, standardize=False)
    beta_packed, pvalue_packed = marginal_association(
        PackedGenotypes.from_dosage(dosage), y, covariates=covariates, standardize=False
    )
    for j in range(m):
        x = dosage[:, j].copy()
        x[np.isnan(x)] = np.nanmean(x)
        fit = sm.OLS(y, sm.add_constant(np.column_stack([covariates, x]))).fit()
        assert beta[j] == pytest.approx(fit.params[-1], rel=1e-8, abs=1e-12)
        assert pvalue[j] == pytest.approx(fit.pvalues[-1], rel=1e-6)
    np.testing.assert_allclose(beta_packed, beta, rtol=1e-10)
    np.testing.assert_allclose(pvalue_packed, pvalue, rtol=1e-8)
    assert np.argmin(pvalue) == 4


def test_marginal_association_sample_index_equals_subset():
    rng = np.random.default_rng(1)
    dosage = rng.binomial(2, 0.4, (120, 12)).astype(float)
    y = rng.normal(size=120)
    rows = np.arange(0, 120, 2)
    b1, p1 = marginal_association(dosage, y[rows], sample_index=rows)
    b2, p2 = marginal_association(dosage[rows], y[rows])
    np.testing.assert_allclose(b1, b2)
    np.testing.assert_allclose(p1, p2)


def brute_force_clump(dosage, pvalue, r2, window):
    corr2 = np.corrcoef(dosage.T) ** 2
    absorbed = np.zeros(len(pvalue), dtype=bool)
    kept = []
    for i in np.argsort(pvalue, kind="stable"):
        if absorbed[i]:
            continue
        kept.append(int(i))
        for j in range(len(pvalue)):
            if abs(i - j) <= window and corr2[i, j] > r2:
                absorbed[j] = True
        absorbed[i] = True
    return kept


@pytest.mark.parametrize("window", [3, 10])
def test_clump_matches_brute_force(window):
    rng = np.random.default_rng(2)
    latent = np.cumsum(rng.normal(size=(200, 60)), axis=1)  # LD decays with distance
    dosage = np.clip(np.rint(latent / latent.std(0) + 1), 0, 2)
    pvalue = rng.random(60)
    kept = clump(dosage, pvalue, r2=0.2, window=window)
    assert kept.tolist() == brute_force_clump(dosage, pvalue, 0.2, window)
    # same answer with a kilobase window (1 kb spacing) and from packed genotypes
    kept_kb = clump(
        PackedGenotypes.from_dosage(dosage),
        pvalue,
        r2=0.2,
        pos=np.arange(60) * 1000,
        chrom=np.ones(60),
        window_kb=window,
    )
    assert kept_kb.tolist() == kept.tolist()


def test_screen_variants_top_k_and_threshold():
    dosage, y, causal = simulate(400, 200, n_causal=5, h2=0.6, seed=3, effects=np.full(5, 1.0))
    selected = screen_variants(dosage, y, top_k=5)
    assert selected.tolist() == causal.tolist()
    assert len(screen_variants(dosage, y, p_threshold=1e-300)) == 1  # nothing passes: best variant kept


# -- ridge ---------------------------------------------------------------------------------


def test_ridge_equals_sklearn_on_standardised_data():
    from sklearn.linear_model import Ridge

    dosage, y, _ = simulate(150, 60, n_causal=10, h2=0.5, seed=4)
    z, mean, sd = standardise(dosage)
    model = make_model("ridge", lambdas=[25.0]).fit(dosage, y)
    reference = Ridge(alpha=25.0).fit(z, y)
    np.testing.assert_allclose(model.coef_ * sd, reference.coef_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(model.predict(dosage), reference.predict(z), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.center_, mean)


@pytest.mark.parametrize("n,m", [(80, 200), (200, 40)])  # kernel (n <= m) and Gram (n > m) branches
def test_ridge_closed_form_with_unpenalised_covariates(n, m):
    rng = np.random.default_rng(5)
    dosage = rng.binomial(2, 0.3, (n, m)).astype(float)
    covariates = rng.normal(size=(n, 2))
    y = rng.normal(size=n) + covariates @ [1.0, -2.0]
    lam = 13.0
    model = make_model("ridge", lambdas=[lam]).fit(dosage, y, covariates=covariates)
    z, _, sd = standardise(dosage)
    design = np.column_stack([np.ones(n), covariates, z])
    penalty = np.diag([0.0, 0.0, 0.0] + [lam] * m)
    solution = np.linalg.solve(design.T @ design + penalty, design.T @ y)
    np.testing.assert_allclose(model.coef_ * sd, solution[3:], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(model.covariate_coef_, solution[1:3], rtol=1e-7)
    np.testing.assert_allclose(model.predict(dosage, covariates=covariates), design @ solution, rtol=1e-7)


def test_ridge_reml_penalty_equals_brute_force_reml_with_covariates():
    """cv='reml': h2 maximises the REML likelihood of y = Xa + g + e, g ~ N(0, s_g^2 ZZ'/m), X = [1, C]
    (computed here on the unresidualised GRM), and the fit is ridge at lambda = m (1 - h2) / h2."""
    import scipy.optimize

    rng = np.random.default_rng(8)
    n, m = 160, 120
    dosage = rng.binomial(2, rng.uniform(0.1, 0.5, m), (n, m)).astype(float)
    covariates = rng.normal(size=(n, 2))
    z, _, sd = standardise(dosage)
    y = z @ rng.normal(scale=np.sqrt(0.5 / m), size=m) + covariates @ [0.5, -1.0] + rng.normal(scale=0.7, size=n)
    model = make_model("ridge", cv="reml").fit(dosage, y, covariates=covariates)
    kinship = z @ z.T / m
    design = np.column_stack([np.ones(n), covariates])
    p = design.shape[1]

    def negative_reml(h2: float) -> float:
        h = h2 * kinship + (1 - h2) * np.eye(n)
        h_inv = np.linalg.inv(h)
        xtx = design.T @ h_inv @ design
        proj = h_inv - h_inv @ design @ np.linalg.solve(xtx, design.T @ h_inv)
        sigma2 = y @ proj @ y / (n - p)
        return 0.5 * ((n - p) * np.log(sigma2) + np.linalg.slogdet(h)[1] + np.linalg.slogdet(xtx)[1])

    brute = scipy.optimize.minimize_scalar(
        negative_reml, bounds=(1e-4, 1 - 1e-4), method="bounded", options={"xatol": 1e-9}
    ).x
    assert 0.05 < brute < 0.95
    assert model.reml_h2_ == pytest.approx(brute, abs=1e-5)
    lam = m * (1 - model.reml_h2_) / model.reml_h2_
    assert model.lambda_ == pytest.approx(lam)
    full = np.column_stack([design, z])
    penalty = np.diag([0.0] * p + [lam] * m)
    solution = np.linalg.solve(full.T @ full + penalty, full.T @ y)
    np.testing.assert_allclose(model.coef_ * sd, solution[p:], rtol=1e-6, atol=1e-10)


def test_ridge_gcv_matches_brute_force_leave_out_selection():
    dosage, y, _ = simulate(120, 300, n_causal=300, h2=0.5, seed=6)
    lambdas = [30.0, 100.0, 300.0, 1000.0, 3000.0]
    model = make_model("ridge", lambdas=lambdas).fit(dosage, y)
    z, _, _ = standardise(dosage)
    yc = y - y.mean()
    n = len(y)
    gcv = []
    for lam in lambdas:
        hat = z @ np.linalg.solve(z.T @ z + lam * np.eye(z.shape[1]), z.T)
        rss = np.sum((yc - hat @ yc) ** 2)
        gcv.append((n - 1) * rss / (n - 1 - np.trace(hat)) ** 2)  # effective n = n - 1 (intercept)
    np.testing.assert_allclose(model.cv_scores_, gcv, rtol=1e-6)
    assert model.lambda_ == lambdas[int(np.argmin(gcv))]


def test_ridge_accuracy_near_daetwyler_expectation():
    """Out-of-sample r2 of ridge/GBLUP on an additive trait (h2 0.5, N = M = 2,000).

    Expected accuracy (Daetwyler et al. 2008, independent markers): r2 = h2 / (1 + M / (N h2))
    = 0.5 / 3 = 0.167. Tolerance +-0.06: the sampling sd of r2 on 1,000 test samples is ~0.02,
    and the formula itself is approximate.
    """
    n, m, h2 = 2000, 2000, 0.5
    dosage, y, _ = simulate(n, m, n_causal=m, h2=h2, seed=7, n_test=1000)
    model = make_model("ridge").fit(dosage[:n], y[:n])
    prediction = model.predict(dosage[n:])
    r2 = np.corrcoef(prediction, y[n:])[0, 1] ** 2
    expected = h2 / (1 + m / (n * h2))
    assert abs(r2 - expected) < 0.06, (r2, expected)


# -- elastic net / lasso -------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_enet_lasso_equal_sklearn_at_same_lambda(alpha):
    from sklearn.linear_model import ElasticNet

    dosage, y, _ = simulate(200, 80, n_causal=8, h2=0.5, seed=8)
    z, _, sd = standardise(dosage)
    for lam in (0.2, 0.03, 0.005):
        name = "lasso" if alpha == 1.0 else "enet"
        params = {"lambdas": [lam], "tol": 1e-10}
        if name == "enet":
            params["alpha"] = alpha
        model = make_model(name, **params).fit(dosage, y)
        reference = ElasticNet(alpha=lam, l1_ratio=alpha, tol=1e-12, max_iter=200_000).fit(z, y)
        np.testing.assert_allclose(model.coef_ * sd, reference.coef_, atol=1e-4)
        assert np.count_nonzero(model.coef_) == np.count_nonzero(reference.coef_)


def test_enet_path_with_covariates_matches_sklearn_on_residualised_data():
    from sklearn.linear_model import Lasso

    rng = np.random.default_rng(9)
    dosage, y, _ = simulate(180, 70, n_causal=6, h2=0.5, seed=9)
    covariates = rng.normal(size=(180, 2))
    y = y + covariates @ [2.0, -1.0]
    model = make_model("lasso", lambdas=[0.05], tol=1e-10).fit(dosage, y, covariates=covariates)
    # Frisch-Waugh-Lovell: unpenalised covariates = residualise y and the standardised columns
    z, _, sd = standardise(dosage)
    q, _ = np.linalg.qr(np.column_stack([np.ones(180), covariates]))
    z_res = z - q @ (q.T @ z)
    y_res = y - q @ (q.T @ y)
    reference = Lasso(alpha=0.05, tol=1e-12, max_iter=200_000, fit_intercept=False).fit(z_res, y_res)
    np.testing.assert_allclose(model.coef_ * sd, reference.coef_, atol=1e-4)


def test_enet_strong_rules_path_equals_direct_fit():
    """The warm-started strong-rule path must land on the same solution as a single-lambda fit."""
    dosage, y, _ = simulate(150, 300, n_causal=10, h2=0.6, seed=10)
    lambdas = list(np.geomspace(0.5, 0.02, 12))
    path_model = make_model("enet", alpha=0.7, lambdas=lambdas, cv=2, tol=1e-10, patience=None).fit(dosage, y)
    direct = make_model("enet", alpha=0.7, lambdas=[path_model.lambda_], tol=1e-10).fit(dosage, y)
    np.testing.assert_allclose(path_model.coef_, direct.coef_, atol=1e-6)
    assert path_model.lambda_ in lambdas


def test_enet_cv_recovers_sparse_signal():
    effects = np.array([1.0, -1.0, 0.8, -0.8, 1.0])
    dosage, y, causal = simulate(500, 300, n_causal=5, h2=0.7, seed=11, n_test=300, effects=effects)
    model = make_model("enet").fit(dosage[:500], y[:500])
    assert set(causal) <= set(np.flatnonzero(model.coef_))
    r2 = np.corrcoef(model.predict(dosage[500:]), y[500:])[0, 1] ** 2
    assert r2 > 0.55


# -- C+T -----------------------------------------------------------------------------------


def test_ct_recovers_planted_large_effects():
    effects = np.array([1.0, -1.0, 0.8, -0.8, 1.2, 0.9])
    dosage, y, causal = simulate(600, 400, n_causal=6, h2=0.6, seed=12, effects=effects, n_test=300)
    model = make_model("ct", cv=3).fit(dosage[:600], y[:600])
    kept = set(np.flatnonzero(model.coef_))
    assert set(causal) <= kept
    assert len(kept) <= 40  # threshold chosen well below 1
    # weights are the marginal per-allele betas times the out-of-fold calibration slope
    beta, _ = marginal_association(dosage[:600], y[:600], standardize=False)
    np.testing.assert_allclose(model.coef_[causal], beta[causal] * model.calibration_, rtol=1e-8)
    r2 = np.corrcoef(model.predict(dosage[600:]), y[600:])[0, 1] ** 2
    assert r2 > 0.45


# -- BayesR --------------------------------------------------------------------------------


def test_bayesr_beats_ridge_on_sparse_trait_and_reports_pip():
    dosage, y, causal = simulate(800, 1000, n_causal=10, h2=0.5, seed=13, n_test=500)
    train, test = slice(0, 800), slice(800, None)
    bayesr = make_model("bayesr").fit(dosage[train], y[train])
    ridge = make_model("ridge").fit(dosage[train], y[train])
    r2_bayesr = np.corrcoef(bayesr.predict(dosage[test]), y[test])[0, 1] ** 2
    r2_ridge = np.corrcoef(ridge.predict(dosage[test]), y[test])[0, 1] ** 2
    assert r2_bayesr >= r2_ridge + 0.05, (r2_bayesr, r2_ridge)
    assert bayesr.pip_.shape == (1000,)
    top = np.argsort(bayesr.pip_)[::-1][:10]
    assert len(set(top) & set(causal)) >= 7
    assert np.median(bayesr.pip_[np.setdiff1d(np.arange(1000), causal)]) < 0.2


# -- shared behaviour ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ct", "ridge", "enet", "lasso", "bayesr"])
def test_contract_packed_equals_dense_and_binary_scale(name):
    assert name in MODEL_REGISTRY or make_model(name)
    rng = np.random.default_rng(14)
    dosage, y, _ = simulate(200, 50, n_causal=5, h2=0.6, seed=14)
    covariates = rng.normal(size=(200, 1))
    dense_model = make_model(name).fit(dosage, y, covariates=covariates)
    packed_model = make_model(name).fit(PackedGenotypes.from_dosage(dosage), y, covariates=covariates)
    np.testing.assert_allclose(packed_model.coef_, dense_model.coef_, rtol=1e-5, atol=1e-8)
    prediction = dense_model.predict(dosage, covariates=covariates)
    manual = (
        (dosage - dense_model.center_) @ dense_model.coef_
        + dense_model.intercept_
        + covariates @ dense_model.covariate_coef_
    )
    np.testing.assert_allclose(prediction, manual, rtol=1e-10)
    # binary target: predictions are log-odds; the unpenalised intercept's score equation (penalised
    # logistic ridge/enet/lasso, or the logistic recalibration of ct/bayesr) makes the mean
    # predicted probability on the training data equal the case fraction
    binary = (y > np.median(y)).astype(float)
    model = make_model(name).fit(dosage, binary, covariates=covariates)
    probability = 1 / (1 + np.exp(-model.predict(dosage, covariates=covariates)))
    assert probability.mean() == pytest.approx(binary.mean(), abs=1e-6)
    assert model.extra_metadata()["scale"] == "log-odds"


def test_missing_dosage_imputed_at_training_mean():
    dosage, y, _ = simulate(150, 20, n_causal=4, h2=0.5, seed=15)
    model = make_model("ridge", lambdas=[5.0]).fit(dosage, y)
    target = dosage[:5].copy()
    target[0, 3] = np.nan
    filled = target.copy()
    filled[0, 3] = model.center_[3]
    np.testing.assert_allclose(model.predict(target), model.predict(filled))


def test_bad_input_errors():
    from deepprs.errors import InputError

    dosage, y, _ = simulate(50, 10, n_causal=2, h2=0.5, seed=16)
    y_missing = y.copy()
    y_missing[0] = np.nan
    with pytest.raises(InputError, match="missing"):
        make_model("ridge").fit(dosage, y_missing)
    with pytest.raises(InputError, match="not fitted"):
        make_model("ridge").predict(dosage)
    with pytest.raises(InputError, match="alpha"):
        make_model("enet", alpha=0.0).fit(dosage, y)


@pytest.mark.parametrize("name", ["lasso", "ridge", "bayesr"])
def test_streamed_columns_equal_materialised(monkeypatch, name):
    """With the in-memory limit at 0 every column block is unpacked on demand (bounded memory)."""
    import deepprs.models.linear as linear

    dosage, y, _ = simulate(150, 90, n_causal=6, h2=0.6, seed=17)
    packed = PackedGenotypes.from_dosage(dosage)
    params = {"lambdas": [0.05], "tol": 1e-10} if name == "lasso" else {}
    in_memory = make_model(name, **params).fit(packed, y)
    monkeypatch.setattr(linear, "_DENSE_LIMIT_BYTES", 0)
    monkeypatch.setattr(linear, "_BLOCK", 16)
    streamed = make_model(name, **params).fit(packed, y)
    np.testing.assert_allclose(streamed.coef_, in_memory.coef_, rtol=1e-7, atol=1e-10)


# -- penalised logistic regression (binary traits) -------------------------------------------


def binary_data(n, m, *, seed, n_test=0, intercept=-0.3):
    """0/1 trait drawn from a logistic model on 5 standardised causal variants."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.05, 0.5, m)
    dosage = rng.binomial(2, freq, (n + n_test, m)).astype(np.float64)
    z = (dosage - 2 * freq) / np.sqrt(2 * freq * (1 - freq))
    eta = z[:, :5] @ np.array([1.0, -1.0, 0.5, 0.5, -0.8]) + intercept
    y = (rng.random(n + n_test) < 1 / (1 + np.exp(-eta))).astype(np.float64)
    return dosage, y


def sklearn_logistic(z, y, *, C, l1_ratio):
    from sklearn.linear_model import LogisticRegression

    # lbfgs (l2) and saga (l1 / elastic net) leave the intercept unpenalised
    solver = "lbfgs" if l1_ratio == 0.0 else "saga"
    return LogisticRegression(C=C, l1_ratio=l1_ratio, solver=solver, tol=1e-12, max_iter=1_000_000).fit(z, y)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_logistic_enet_lasso_equal_sklearn_at_same_lambda(alpha):
    """glmnet scaling: -(1/n) loglik + lam (alpha |b|_1 + (1-alpha)/2 |b|^2)  <=>  sklearn C = 1/(n lam)."""
    dosage, y = binary_data(200, 60, seed=30)
    z, _, sd = standardise(dosage)
    n = len(y)
    for lam in (0.1, 0.03, 0.01):
        name = "lasso" if alpha == 1.0 else "enet"
        params = {"lambdas": [lam], "tol": 1e-11}
        if name == "enet":
            params["alpha"] = alpha
        model = make_model(name, **params).fit(dosage, y)
        reference = sklearn_logistic(z, y, C=1.0 / (n * lam), l1_ratio=alpha)
        np.testing.assert_allclose(model.coef_ * sd, reference.coef_[0], atol=1e-5)
        assert np.count_nonzero(model.coef_) == np.count_nonzero(np.abs(reference.coef_) > 1e-8)
        np.testing.assert_allclose(model.predict(dosage), reference.decision_function(z), atol=1e-5)
        assert model.extra_metadata()["binary_method"] == "penalised-logistic"


@pytest.mark.parametrize("n,m", [(150, 60), (80, 200)])  # variant-space and kernel (n <= m) Newton
def test_logistic_ridge_equals_sklearn(n, m):
    """-loglik + lam/2 |b|^2  <=>  sklearn LogisticRegression(C = 1/lam), intercept unpenalised."""
    dosage, y = binary_data(n, m, seed=31)
    z, _, sd = standardise(dosage)
    for lam in (2.0, 20.0):
        model = make_model("ridge", lambdas=[lam]).fit(dosage, y)
        reference = sklearn_logistic(z, y, C=1.0 / lam, l1_ratio=0.0)
        np.testing.assert_allclose(model.coef_ * sd, reference.coef_[0], atol=1e-6)
        np.testing.assert_allclose(model.predict(dosage), reference.decision_function(z), atol=1e-5)


@pytest.mark.parametrize("name", ["lasso", "enet", "ridge"])
def test_logistic_kkt_conditions_with_unpenalised_covariates(name):
    """At the optimum: score equations for intercept + covariates, and the (sub)gradient conditions."""
    dosage, y = binary_data(220, 80, seed=32)
    rng = np.random.default_rng(32)
    covariates = rng.normal(size=(220, 2))
    y = np.where(rng.random(220) < 0.15, 1.0 - y, y)  # some noise
    lam = {"lasso": 0.02, "enet": 0.03, "ridge": 15.0}[name]
    alpha = {"lasso": 1.0, "enet": 0.4, "ridge": 0.0}[name]
    params = {"lambdas": [lam]} if name == "ridge" else {"lambdas": [lam], "tol": 1e-11}
    if name == "enet":
        params["alpha"] = alpha
    model = make_model(name, **params).fit(dosage, y, covariates=covariates)
    residual = y - 1 / (1 + np.exp(-model.predict(dosage, covariates=covariates)))
    design = np.column_stack([np.ones(220), covariates])
    np.testing.assert_allclose(design.T @ residual, 0.0, atol=1e-7)
    z, _, sd = standardise(dosage)
    beta = model.coef_ * sd
    n = len(y)
    if name == "ridge":
        np.testing.assert_allclose(z.T @ residual, lam * beta, atol=1e-7)
        return
    gradient = z.T @ residual / n
    nonzero = beta != 0
    assert 0 < nonzero.sum() < len(beta)
    np.testing.assert_allclose(
        gradient[nonzero], lam * (alpha * np.sign(beta[nonzero]) + (1 - alpha) * beta[nonzero]), atol=1e-7
    )
    assert np.all(np.abs(gradient[~nonzero]) <= lam * alpha + 1e-9)


def test_logistic_strong_rule_path_equals_direct_fit():
    dosage, y = binary_data(180, 300, seed=33)
    lambdas = list(np.geomspace(0.15, 0.01, 12))
    path_model = make_model("enet", alpha=0.7, lambdas=lambdas, cv=2, tol=1e-11, patience=None).fit(dosage, y)
    direct = make_model("enet", alpha=0.7, lambdas=[path_model.lambda_], tol=1e-11).fit(dosage, y)
    np.testing.assert_allclose(path_model.coef_, direct.coef_, atol=1e-6)
    assert path_model.cv_deviance_.shape == (12,)
    # the default path starts at lambda_max: nothing enters there, something just below
    auto = make_model("lasso", n_lambdas=5).fit(dosage, y)
    at_max = make_model("lasso", lambdas=[auto.lambda_path_[0]]).fit(dosage, y)
    below = make_model("lasso", lambdas=[auto.lambda_path_[0] * 0.97]).fit(dosage, y)
    assert np.count_nonzero(at_max.coef_) == 0
    assert np.count_nonzero(below.coef_) >= 1


def test_logistic_planted_signal_recovered_and_auc_not_below_least_squares():
    """Liability-threshold case/control trait (40% cases), 8 large causal variants of 300.

    Penalised logistic lasso keeps every causal variant, and its test AUC is at least that of the
    least-squares lasso on the same 0/1 trait (tolerance 0.005 for the different lambda chosen;
    the AUC's own sampling sd on 600 test samples is ~0.015).
    """
    from sklearn.metrics import roc_auc_score

    effects = np.array([1.0, -1.0, 0.8, -0.8, 1.0, 0.9, -0.9, 0.7])
    dosage, liability, causal = simulate(600, 300, n_causal=8, h2=0.6, seed=21, n_test=600, effects=effects)
    y = (liability > np.quantile(liability, 0.6)).astype(float)
    train, test = slice(0, 600), slice(600, None)
    logistic = make_model("lasso").fit(dosage[train], y[train])
    least_squares = make_model("lasso", task="regression").fit(dosage[train], y[train])
    assert set(causal) <= set(np.flatnonzero(logistic.coef_))
    auc_logistic = roc_auc_score(y[test], logistic.predict(dosage[test]))
    auc_least_squares = roc_auc_score(y[test], least_squares.predict(dosage[test]))
    assert auc_logistic > 0.8
    assert auc_logistic >= auc_least_squares - 0.005, (auc_logistic, auc_least_squares)
    # the log-odds coefficients are larger than the 0/1-scale ones by ~1 / (p (1 - p))
    top = causal[0]
    assert abs(logistic.coef_[top]) > 2 * abs(least_squares.coef_[top])


def test_task_parameter():
    from deepprs.errors import InputError

    dosage, y = binary_data(150, 40, seed=34)
    regression = make_model("lasso", lambdas=[0.02], task="regression", tol=1e-10).fit(dosage, y)
    assert not regression.is_binary_
    assert regression.extra_metadata()["scale"] == "trait"
    # 'regression' on a 0/1 trait is the least-squares fit (0/1 scale)
    from sklearn.linear_model import Lasso

    z, _, sd = standardise(dosage)
    reference = Lasso(alpha=0.02, tol=1e-12, max_iter=200_000).fit(z, y)
    np.testing.assert_allclose(regression.coef_ * sd, reference.coef_, atol=1e-5)
    auto = make_model("lasso", lambdas=[0.02]).fit(dosage, y)
    assert auto.is_binary_ and auto.extra_metadata()["scale"] == "log-odds"
    with pytest.raises(InputError, match="task='binary'"):
        make_model("ridge", task="binary").fit(dosage, np.linspace(0, 1, 150))
    with pytest.raises(InputError, match="task must be"):
        make_model("enet", task="classification").fit(dosage, y)


def test_logistic_streamed_columns_equal_materialised(monkeypatch):
    import deepprs.models.linear as linear

    dosage, y = binary_data(150, 90, seed=35)
    packed = PackedGenotypes.from_dosage(dosage)
    in_memory = make_model("lasso", lambdas=[0.02], tol=1e-11).fit(packed, y)
    monkeypatch.setattr(linear, "_DENSE_LIMIT_BYTES", 0)
    monkeypatch.setattr(linear, "_BLOCK", 16)
    streamed = make_model("lasso", lambdas=[0.02], tol=1e-11).fit(packed, y)
    np.testing.assert_allclose(streamed.coef_, in_memory.coef_, rtol=1e-7, atol=1e-10)


# -- C+T clumping against plink (tests/data/ct, see its README.md) -------------------------------

CT_DATA = Path(__file__).parent / "data" / "ct"


@pytest.fixture(scope="module")
def ct_fixture():
    import pandas as pd

    from deepprs.io import open_genotypes

    source = open_genotypes(CT_DATA / "ct_fixture.bed")
    genotypes = PackedGenotypes.from_source(source)
    variant_table = source.variant_table.reset_index(drop=True)
    glm = pd.read_csv(CT_DATA / "ct_fixture.PHENO.glm.linear", sep="\t")
    assert glm["ID"].tolist() == variant_table["id"].tolist()
    return genotypes, variant_table, glm["P"].to_numpy(np.float64)


def test_clump_kb_window_equals_plink_unphased_r2_greedy(ct_fixture):
    """plink2 --clump semantics (unphased hard-call r², 250 kb, r² > 0.1) against plink's own r² pairs."""
    import pandas as pd

    genotypes, variant_table, pvalue = ct_fixture
    kept = clump(
        genotypes,
        pvalue,
        r2=0.1,
        chrom=variant_table["chrom"].astype(str).to_numpy(),
        pos=variant_table["pos"].to_numpy(),
        window_kb=250,
    )
    pairs = pd.read_csv(CT_DATA / "ct_fixture.ld.gz", sep=r"\s+")
    index_of = {v: i for i, v in enumerate(variant_table["id"])}
    a = pairs["SNP_A"].map(index_of).to_numpy()
    b = pairs["SNP_B"].map(index_of).to_numpy()
    # plink's r² equals ours to its printed precision
    dosage = genotypes.unpack().numpy().astype(np.float64)
    dosage = (dosage - dosage.mean(0)) / dosage.std(0)
    ours = (np.sum(dosage[:, a] * dosage[:, b], axis=0) / len(dosage)) ** 2
    np.testing.assert_allclose(ours, pairs["R2"], atol=1e-6)
    # greedy clump over plink's pair list (all pairs lie within 250 kb on one chromosome)
    strong = pairs["R2"].to_numpy() > 0.1
    neighbours: dict[int, list[int]] = {}
    for i, j in zip(a[strong], b[strong], strict=True):
        neighbours.setdefault(int(i), []).append(int(j))
        neighbours.setdefault(int(j), []).append(int(i))
    absorbed = np.zeros(len(pvalue), dtype=bool)
    expected = []
    for i in np.lexsort((np.arange(len(pvalue)), pvalue)):
        if absorbed[i]:
            continue
        expected.append(int(i))
        absorbed[neighbours.get(int(i), [])] = True
    assert kept.tolist() == expected
    assert len(kept) == 687


def test_clump_agrees_with_plink19_clump(ct_fixture):
    """plink 1.9 --clump uses EM-haplotype r²; the index sets still agree on >90% (README.md)."""
    import pandas as pd

    genotypes, variant_table, pvalue = ct_fixture
    kept = clump(
        genotypes,
        pvalue,
        r2=0.1,
        chrom=variant_table["chrom"].astype(str).to_numpy(),
        pos=variant_table["pos"].to_numpy(),
        window_kb=250,
    )
    ours = set(variant_table["id"].to_numpy()[kept])
    plink = set(pd.read_csv(CT_DATA / "ct_fixture.clumped", sep=r"\s+")["SNP"])
    assert len(plink) == 698
    assert len(ours & plink) / len(ours | plink) > 0.9
    # a variant-count window (the fallback) gives a clearly different answer on this data
    by_count = set(variant_table["id"].to_numpy()[clump(genotypes, pvalue, r2=0.1, window=250)])
    assert len(by_count & plink) < len(ours & plink)


def test_ct_model_clumps_in_kb_windows(ct_fixture):
    from deepprs.errors import InputError

    genotypes, variant_table, _ = ct_fixture
    dosage = genotypes.unpack().numpy().astype(np.float64)
    rng = np.random.default_rng(40)
    freq = dosage.mean(0) / 2
    common = np.flatnonzero(np.abs(freq - 0.5) < 0.2)
    causal = common[np.searchsorted(common, [100, 600, 1000, 1500])]  # common variants on both chromosomes
    y = dosage[:, causal] @ np.array([0.8, -0.8, 0.8, 0.8]) + rng.normal(size=len(dosage))
    model = make_model("ct", cv=3).fit(genotypes, y, variant_table=variant_table)
    assert model.clump_window_used_ == "250 kb"
    _, pvalue = marginal_association(genotypes, y)
    expected = clump(
        genotypes,
        pvalue,
        r2=model.clump_r2_,
        p_threshold=model.p_threshold_,
        chrom=variant_table["chrom"].astype(str).to_numpy(),
        pos=variant_table["pos"].to_numpy(),
        window_kb=250,
    )
    assert sorted(np.flatnonzero(model.coef_).tolist()) == sorted(expected.tolist())
    # each causal variant is kept or tagged (r² > 0.1: it was absorbed) by a kept variant
    corr = np.corrcoef(dosage[:, causal].T, dosage[:, expected].T)[: len(causal), len(causal) :]
    assert np.all((corr**2).max(1) > 0.1)
    # no positions: the variant-count window
    fallback = make_model("ct", cv=3).fit(genotypes, y)
    assert fallback.clump_window_used_ == "250 variants"
    expected_count = clump(genotypes, pvalue, r2=0.1, p_threshold=fallback.p_threshold_, window=250)
    assert sorted(np.flatnonzero(fallback.coef_).tolist()) == sorted(expected_count.tolist())
    forced = make_model("ct", cv=3, clump_kb=None).fit(genotypes, y, variant_table=variant_table)
    assert forced.clump_window_used_ == "250 variants"
    np.testing.assert_allclose(forced.coef_, fallback.coef_)
    with pytest.raises(InputError, match="variant_table"):
        make_model("ct").fit(genotypes, y, variant_table=variant_table.iloc[:10])


def test_logistic_bundle_roundtrip_and_pgs_catalog_weight_type(tmp_path):
    import pandas as pd

    from deepprs.models.bundle import export_weights, load_model, save_model

    dosage, y = binary_data(150, 30, seed=36)
    model = make_model("lasso", lambdas=[0.02]).fit(dosage, y)
    table = pd.DataFrame(
        {
            "chrom": ["1"] * 30,
            "pos": np.arange(30) * 1000 + 1,
            "id": [f"v{j}" for j in range(30)],
            "ref": ["A"] * 30,
            "alt": ["G"] * 30,
            "a1": ["G"] * 30,
            "cm": np.zeros(30),
        }
    )
    save_model(model, tmp_path / "bundle", variant_table=table)
    loaded, _ = load_model(tmp_path / "bundle")
    np.testing.assert_allclose(loaded.predict(dosage), model.predict(dosage), rtol=1e-12)
    assert loaded.get_params()["task"] == "auto"
    assert loaded.extra_metadata()["binary_method"] == "penalised-logistic"
    export_weights(tmp_path / "bundle", tmp_path / "score.txt", file_format="pgs-catalog")
    assert "#weight_type=log(OR)" in (tmp_path / "score.txt").read_text()


# -- BayesR blocked sweep ----------------------------------------------------------------------


def bayesr_vb_reference(
    z: np.ndarray,
    y: np.ndarray,
    *,
    variance_classes: np.ndarray,
    max_iter: int = 100,
    tol: float = 1e-5,
    seed: int | None = 0,
    h2_init: float = 0.5,
) -> dict[str, Any]:
    """The one-variant-at-a-time VB sweep (deepprs before the blocked sweep), kept as the reference.

    ``variance_classes`` gamma (first entry 0 = the spike).  Updates follow Carbonetto &
    Stephens (2012) generalised to a mixture of normals (as in VIPRS, Zabad et al. 2023):
    per variant and class k > 0, ``s_jk^2 = sigma_e^2 / (d_j + sigma_e^2 / sigma_k^2)``,
    ``mu_jk = s_jk^2 r_j / sigma_e^2`` with r_j = z_j^T (y - Z m + z_j m_j) and
    ``phi_jk ∝ pi_k sqrt(s_jk^2 / sigma_k^2) exp(mu_jk^2 / (2 s_jk^2))``; pi, sigma_e^2 and
    sigma_g^2 are updated by EM between sweeps.

    Returns
    -------
    dict with ``mean`` (n_variants,), ``pip`` (n_variants,), ``pi``, ``sigma_e2``, ``sigma_g2``,
    ``n_iter``.
    """
    n, m = z.shape
    gamma = np.asarray(variance_classes, dtype=np.float64)
    k_classes = len(gamma)
    d = (z * z).sum(0)
    var_y = float(y @ y / n)
    sigma_e2 = var_y * (1 - h2_init)
    sigma_g2 = var_y * h2_init
    pi = np.full(k_classes, 0.01 / (k_classes - 1))
    pi[0] = 0.99
    mean = np.zeros(m)
    second = np.zeros(m)
    scaled_second = np.zeros(m)  # sum_k phi_jk E[b_j^2 | k] / gamma_k
    phi = np.zeros((m, k_classes))
    phi[:, 0] = 1.0
    residual = y.copy()
    rng = np.random.default_rng(seed)
    z_rows = np.ascontiguousarray(z.T)  # variant-major: each variant's column is contiguous
    d_list = d.tolist()
    gamma_slab = gamma[1:].tolist()
    mean_list = [0.0] * m
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007  (n_iter is reported)
        sigma_k2 = [g * sigma_g2 for g in gamma_slab]
        log_pi = [math.log(max(p, 1e-300)) for p in pi]
        max_change = 0.0
        for j in rng.permutation(m).tolist():
            d_j = d_list[j]
            if d_j <= 0:
                continue
            z_j = z_rows[j]
            old = mean_list[j]
            r_j = float(z_j @ residual) + d_j * old
            logits = [log_pi[0]]
            mus = []
            s2s = []
            for k, var_k in enumerate(sigma_k2):
                s2 = sigma_e2 / (d_j + sigma_e2 / var_k)
                mu = s2 * r_j / sigma_e2
                mus.append(mu)
                s2s.append(s2)
                logits.append(log_pi[k + 1] + 0.5 * math.log(s2 / var_k) + mu * mu / (2.0 * s2))
            top = max(logits)
            weights = [math.exp(v - top) for v in logits]
            total = sum(weights)
            weights = [w / total for w in weights]
            new_mean = sum(w * mu for w, mu in zip(weights[1:], mus, strict=True))
            second[j] = sum(w * (mu * mu + s2) for w, mu, s2 in zip(weights[1:], mus, s2s, strict=True))
            scaled_second[j] = sum(
                w * (mu * mu + s2) / g for w, mu, s2, g in zip(weights[1:], mus, s2s, gamma_slab, strict=True)
            )
            phi[j] = weights
            delta = new_mean - old
            if delta != 0.0:
                residual -= delta * z_j
                mean_list[j] = new_mean
                change = abs(delta) * math.sqrt(d_j / n)
                if change > max_change:
                    max_change = change
        mean = np.asarray(mean_list)
        # EM updates of the hyper-parameters (Dirichlet(1, ..., 1) pseudo-counts on pi)
        pi = (phi.sum(0) + 1.0) / (m + k_classes)
        variance_terms = (d * (second - mean**2)).sum()
        sigma_e2 = max(float(residual @ residual + variance_terms) / n, 1e-6 * var_y)
        # EM for the common scale of the slab variances (sigma_jk^2 = gamma_k sigma_g^2)
        n_slab = float(phi[:, 1:].sum())
        if n_slab > 1e-8:
            sigma_g2 = float(np.clip(scaled_second.sum() / n_slab, 1e-4 * var_y, 1e4 * var_y))
        if max_change < tol:
            break
    return {
        "mean": mean,
        "pip": 1.0 - phi[:, 0],
        "pi": pi,
        "sigma_e2": sigma_e2,
        "sigma_g2": sigma_g2,
        "n_iter": n_iter,
    }


@pytest.mark.parametrize("classes", [(0.0, 1e-4, 1e-3, 1e-2), (0.0, 1e-3, 1e-1)])
def test_bayesr_blocked_sweep_equals_one_at_a_time_sweep(classes):
    """Same visiting order, block Gram corrections: the same answer as the per-variant sweep."""
    from deepprs.models.linear import bayesr_vb

    dosage, y, _ = simulate(150, 240, n_causal=8, h2=0.5, seed=41)
    dosage[:, 5] = 1.0  # monomorphic column (d_j = 0): never updated
    z = dosage - dosage.mean(0)
    z[:, 5] = 0.0
    sd = z.std(0, ddof=1)
    z = z / np.where(sd > 0, sd, 1.0)
    y = y - y.mean()
    gamma = np.array(classes)
    reference = bayesr_vb_reference(z, y, variance_classes=gamma, max_iter=15, tol=1e-8, seed=3)
    for block in (1, 7, 16, 64, 1000):
        blocked = bayesr_vb(z, y, variance_classes=gamma, max_iter=15, tol=1e-8, seed=3, block=block)
        assert blocked["n_iter"] == reference["n_iter"]
        np.testing.assert_allclose(blocked["mean"], reference["mean"], atol=1e-10, rtol=0)
        np.testing.assert_allclose(blocked["pip"], reference["pip"], atol=1e-10, rtol=0)
        np.testing.assert_allclose(blocked["pi"], reference["pi"], atol=1e-12, rtol=0)
        assert blocked["sigma_e2"] == pytest.approx(reference["sigma_e2"], rel=1e-10)
        assert blocked["sigma_g2"] == pytest.approx(reference["sigma_g2"], rel=1e-10)
    assert reference["pip"][5] == 0.0


def test_logistic_ridge_inner_cv_deviance_equals_sklearn_refits():
    """Kernel-space fold fits and held-out predictions equal explicit per-fold refits."""
    from deepprs.models.linear import inner_folds

    dosage, y = binary_data(90, 150, seed=37)
    lambdas = [1.0, 10.0, 100.0]
    model = make_model("ridge", lambdas=lambdas, cv=3, random_state=5).fit(dosage, y)
    z, _, _ = standardise(dosage)
    folds = inner_folds(90, 3, 5)
    expected = np.zeros(len(lambdas))
    for fold in range(3):
        train, test = folds != fold, folds == fold
        for i, lam in enumerate(lambdas):
            reference = sklearn_logistic(z[train], y[train], C=1.0 / lam, l1_ratio=0.0)
            eta = reference.decision_function(z[test])
            expected[i] += 2 * np.sum(np.logaddexp(0, eta) - y[test] * eta) / 90
    np.testing.assert_allclose(model.cv_scores_, expected, rtol=1e-6)
    assert model.lambda_ == lambdas[int(np.argmin(expected))]
