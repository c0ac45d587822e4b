"""Linear PRS models and variant screening against independent truth.

References: statsmodels OLS (marginal association), a brute-force greedy clump, the closed-form
ridge solution with unpenalised covariates, scikit-learn Ridge / ElasticNet / Lasso on the same
standardised data, and Daetwyler's expected accuracy for ridge/GBLUP.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from threadpoolctl import threadpool_limits

from deepprs.io.packed import PackedGenotypes
from deepprs.models.base import MODEL_REGISTRY, make_model
from deepprs.models.screening import clump, marginal_association, screen_variants


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # the CI box is small and shared; one BLAS thread is far faster than oversubscription
    with threadpool_limits(1):
        yield


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
    # binary target: predictions are log-odds (the logistic recalibration on the training data
    # makes the mean predicted probability equal the case fraction)
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
