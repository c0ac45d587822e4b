"""Tests of deepprs.lmm: GRM, REML, BLUP/cvBLUP, LOCO, pleiotropy, matrix-free path, CLI.

Independent truth: brute-force leave-one-out refits, a brute-force REML (direct V inverse,
scipy optimisation), stored GEMMA 0.98.5 / BOLT-LMM 2.4 / plink2 outputs (tests/data/lmm/README.md),
statsmodels' Benjamini–Yekutieli, scipy's Pearson test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import optimize, stats

from deepprs.cli.main import main
from deepprs.errors import InputError
from deepprs.io import PackedGenotypes, open_genotypes
from deepprs.lmm import (
    CvBLUP,
    EigenGRM,
    GenotypeOperator,
    benjamini_yekutieli,
    blup_cvblup,
    conjugate_gradient,
    fit_matrix_free,
    fit_reml,
    grm,
)

DATA = Path(__file__).parent / "data" / "lmm"
PREFIX = str(DATA / "eur_lmm")


# -- helpers -------------------------------------------------------------------------------------
def simulate(n: int, m: int, h2: float, seed: int, missing: float = 0.0):
    """Independent SNPs, additive trait; returns dosage (NaN = missing), y, genetic value, noise."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.05, 0.5, m)
    dosage = rng.binomial(2, freq, size=(n, m)).astype(np.float64)
    z = (dosage - dosage.mean(0)) / dosage.std(0)
    genetic = z @ rng.normal(size=m)
    genetic *= np.sqrt(h2) / genetic.std()
    noise = rng.normal(size=n) * np.sqrt(1 - h2)
    if missing:
        dosage[rng.random(dosage.shape) < missing] = np.nan
    return dosage, genetic + noise, genetic, noise


def naive_grm(dosage: np.ndarray) -> np.ndarray:
    """K = Z Zᵀ/M written out: mean over observed, missing -> 0, var over all N, monomorphic dropped."""
    mean = np.nanmean(dosage, axis=0)
    centred = np.nan_to_num(dosage - mean)
    var = (centred**2).mean(axis=0)
    keep = var > 1e-16
    z = centred[:, keep] / np.sqrt(var[keep])
    return z @ z.T / keep.sum()


def brute_reml(grm_matrix: np.ndarray, y: np.ndarray, design: np.ndarray):
    """REML by direct V inverse over (log σg², log σe²) with scipy; returns (σg², σe², loglik, h2_se)."""
    n, p = design.shape
    logdet_xtx = np.linalg.slogdet(design.T @ design)[1]

    def loglik(params):
        sg, se = np.exp(params)
        v = sg * grm_matrix + se * np.eye(n)
        v_inv = np.linalg.inv(v)
        xtvx = design.T @ v_inv @ design
        proj = v_inv - v_inv @ design @ np.linalg.solve(xtvx, design.T @ v_inv)
        return -0.5 * (
            (n - p) * np.log(2 * np.pi)
            + np.linalg.slogdet(v)[1]
            + np.linalg.slogdet(xtvx)[1]
            - logdet_xtx
            + y @ proj @ y
        )

    best = optimize.minimize(
        lambda t: -loglik(t),
        x0=np.log([0.5, 0.5]),
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000},
    )
    sg, se = np.exp(best.x)

    def in_variances(theta):
        return loglik(np.log(theta))

    # observed information in (σg², σe²) by central differences, then the delta method for h2
    theta, step = np.array([sg, se]), 1e-4
    hessian = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * step, np.eye(2)[j] * step
            hessian[i, j] = (
                in_variances(theta + ei + ej)
                - in_variances(theta + ei - ej)
                - in_variances(theta - ei + ej)
                + in_variances(theta - ei - ej)
            ) / (4 * step**2)
    cov = np.linalg.inv(-hessian)
    grad = np.array([se, -sg]) / (sg + se) ** 2
    return sg, se, -best.fun, float(np.sqrt(grad @ cov @ grad))


def gemma_log(name: str) -> dict[str, np.ndarray]:
    text = (DATA / "gemma" / f"{name}.log.txt").read_text()
    keys = {
        "pve": "pve estimate in the null model",
        "se_pve": r"se\(pve\) in the null model",
        "loglik": "REMLE log-likelihood in the null model",
        "vg": "vg estimate in the null model",
        "ve": "ve estimate in the null model",
        "beta": "beta estimate in the null model",
        "se_beta": r"se\(beta\)",
    }
    return {
        k: np.array(re.search(rf"## {pattern} =\s*(.*)", text).group(1).split(), dtype=float)
        for k, pattern in keys.items()
    }


def bolt_h2(name: str) -> float:
    text = (DATA / "bolt" / f"{name}.out").read_text()
    return float(re.findall(r"h2g \(1,1\): ([0-9.]+)", text)[-1])


@pytest.fixture(scope="module", autouse=True)
def single_thread_fixture():
    """One BLAS/torch thread: on a shared 2-core machine oversubscribed threads slow eigh ~7x."""
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def eur_fixture():
    source = open_genotypes(PREFIX)
    pheno = pd.read_csv(DATA / "eur_lmm.pheno", sep="\t")
    covar = pd.read_csv(DATA / "eur_lmm.covar", sep="\t")
    return source, pheno, covar


@pytest.fixture(scope="module")
def simulated_3000_fixture():
    """N = 3,000 simulated samples: exact fit (GRM + eigh ~10-15 s on 2 cores), reused by two tests."""
    dosage, y, genetic, noise = simulate(3000, 2000, h2=0.5, seed=11)
    model = CvBLUP(method="exact").fit(dosage, y)
    return dosage, y, genetic, noise, model


# -- GRM ------------------------------------------------------------------------------------------
def test_grm_matches_naive_formula_with_missing_and_monomorphic():
    dosage, *_ = simulate(60, 300, 0.5, seed=1, missing=0.05)
    dosage[:, 7] = 1.0  # monomorphic: skipped
    dosage[:, 8] = np.where(np.isnan(dosage[:, 8]), np.nan, 2.0)  # monomorphic among observed
    expected = naive_grm(dosage)
    for block_size in (1, 37, 1000):
        np.testing.assert_allclose(grm(dosage, block_size=block_size).numpy(), expected, atol=1e-12)
    assert np.isclose(np.trace(expected), 60)  # trace(K) = N by construction, even with missing calls


def test_grm_same_from_packed_and_dense_and_sample_subset():
    dosage, *_ = simulate(50, 120, 0.5, seed=2, missing=0.02)
    packed = PackedGenotypes.from_dosage(dosage)
    subset = np.array([3, 1, 4, 15, 9, 26, 5, 35, 8, 44])
    np.testing.assert_allclose(grm(packed, block_size=13).numpy(), grm(dosage).numpy(), atol=1e-12)
    np.testing.assert_allclose(
        grm(packed, sample_index=subset, variant_index=np.arange(0, 120, 2)).numpy(),
        naive_grm(dosage[np.ix_(subset, np.arange(0, 120, 2))]),
        atol=1e-12,
    )


# -- REML -----------------------------------------------------------------------------------------
def test_reml_matches_brute_force_direct_inverse():
    dosage, y, *_ = simulate(150, 400, h2=0.6, seed=3)
    covariate = np.random.default_rng(3).normal(size=(150, 1))
    y = y + 0.5 * covariate[:, 0]
    k = grm(dosage)
    fit = fit_reml(EigenGRM.from_grm(k), y, covariate)
    sg, se, loglik, h2_se = brute_reml(k.numpy(), y, np.hstack([np.ones((150, 1)), covariate]))
    assert fit.loglik == pytest.approx(loglik, abs=1e-7)
    assert fit.h2 == pytest.approx(sg / (sg + se), abs=1e-5)
    assert fit.sigma_g == pytest.approx(sg, rel=1e-4)
    assert fit.sigma_e == pytest.approx(se, rel=1e-4)
    assert fit.h2_se == pytest.approx(h2_se, rel=1e-3)


def test_reml_score_is_derivative_of_loglik():
    from deepprs.lmm.reml import reml_loglik, reml_score

    dosage, y, *_ = simulate(80, 200, h2=0.4, seed=12)
    eigen = EigenGRM.from_grm(grm(dosage))
    design = np.hstack([np.ones((80, 1)), np.random.default_rng(12).normal(size=(80, 2))])
    ry, rx = eigen.rotate(y), eigen.rotate(design)
    logdet = np.linalg.slogdet(design.T @ design)[1]
    for t in (-2.0, 0.3, 1.7):
        numeric = (
            reml_loglik(t + 1e-6, eigen.eigenvalues, ry, rx, logdet)
            - reml_loglik(t - 1e-6, eigen.eigenvalues, ry, rx, logdet)
        ) / 2e-6
        assert reml_score(t, eigen.eigenvalues, ry, rx) == pytest.approx(numeric, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize(
    "name, trait, covariates",
    [
        ("eur_sim", "SIM", False),
        ("eur_sim_cov", "SIM", True),
        ("eur_sim2", "SIM2", False),
        ("eur_sim2_cov", "SIM2", True),
    ],
)
def test_reml_matches_gemma(eur_fixture, name, trait, covariates):
    source, pheno, covar = eur_fixture
    gemma = gemma_log(name)
    eigen = EigenGRM.from_grm(grm(source))
    fit = fit_reml(
        eigen, pheno[trait].to_numpy(), covar[["QCOV1", "QCOV2"]].to_numpy() if covariates else None
    )
    assert fit.h2 == pytest.approx(gemma["pve"][0], abs=2e-6)
    assert fit.h2_se == pytest.approx(gemma["se_pve"][0], rel=1e-4)
    assert fit.loglik == pytest.approx(gemma["loglik"][0], abs=0.01)
    assert fit.sigma_g == pytest.approx(gemma["vg"][0], rel=1e-5)
    assert fit.sigma_e == pytest.approx(gemma["ve"][0], rel=1e-5)
    np.testing.assert_allclose(fit.fixed_effects, gemma["beta"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fit.fixed_effects_se, gemma["se_beta"], rtol=1e-5)


@pytest.mark.parametrize(
    "name, trait, covariates",
    [("bolt_SIM", "SIM", False), ("bolt_SIM2", "SIM2", False), ("bolt_SIM_cov", "SIM", True)],
)
def test_reml_h2_close_to_bolt(eur_fixture, name, trait, covariates):
    # BOLT-REML is Monte-Carlo REML (no seed option): one run's MC SD at N = 370 is ~0.02 (9 independent
    # runs, tests/data/lmm_bolt/README.md), so the tolerance here is 0.035; the 0.01 is tested at
    # N = 2,000 in tests/test_lmm_acceptance.py.
    source, pheno, covar = eur_fixture
    fit = fit_reml(
        EigenGRM.from_grm(grm(source)),
        pheno[trait].to_numpy(),
        covar[["QCOV1", "QCOV2"]].to_numpy() if covariates else None,
    )
    assert abs(fit.h2 - bolt_h2(name)) < 0.035


# -- BLUP / cvBLUP ---------------------------------------------------------------------------------
def test_cvblup_equals_brute_force_leave_one_out():
    # Definition matched: σg², σe² and the GLS fixed effects β̂ are the full-sample estimates (GCTA
    # --cvblup); for each i, g_i is predicted from r_{-i} = y_{-i} - X_{-i} β̂ of the other N-1 samples:
    # cvBLUP_i = σg² K_{i,-i} V_{-i,-i}⁻¹ r_{-i}.
    n = 300
    dosage, y, *_ = simulate(n, 500, h2=0.5, seed=4)
    covariate = np.random.default_rng(4).normal(size=(n, 2))
    model = CvBLUP(method="exact").fit(dosage, y, covariate)
    k = grm(dosage).numpy()
    design = np.hstack([np.ones((n, 1)), covariate])
    residual = y - design @ model.fixed_effects_
    v = model.sigma_g_ * k + model.sigma_e_ * np.eye(n)
    brute = np.empty(n)
    for i in range(n):
        others = np.arange(n) != i
        brute[i] = (
            model.sigma_g_ * k[i, others] @ np.linalg.solve(v[np.ix_(others, others)], residual[others])
        )
    np.testing.assert_allclose(model.cvblup_, brute, atol=1e-8)
    # and the full-sample BLUP is σg² K V⁻¹ r, which differs from the leave-one-out prediction
    np.testing.assert_allclose(model.blup_, model.sigma_g_ * k @ np.linalg.solve(v, residual), atol=1e-8)
    assert np.abs(model.blup_ - model.cvblup_).max() > 0.1


def test_snp_weights_reproduce_blup_on_raw_dosage_scale():
    dosage, y, *_ = simulate(200, 300, h2=0.5, seed=5, missing=0.03)
    model = CvBLUP(method="exact").fit(dosage, y)
    imputed = np.where(np.isnan(dosage), np.nanmean(dosage, axis=0), dosage)
    np.testing.assert_allclose(
        imputed[:, model.snp_index_] @ model.snp_weights_ + model.score_offset_, model.blup_, atol=1e-8
    )
    np.testing.assert_allclose(model.predict(dosage), model.blup_, atol=1e-8)


def test_cvblup_uncorrelated_with_noise_while_blup_overfits(simulated_3000_fixture):
    _, _, genetic, noise, model = simulated_3000_fixture
    assert abs(np.corrcoef(model.cvblup_, noise)[0, 1]) < 0.05
    assert np.corrcoef(model.blup_, noise)[0, 1] > 0.3
    assert np.corrcoef(model.cvblup_, genetic)[0, 1] > 0.2


# -- matrix-free ----------------------------------------------------------------------------------
def test_conjugate_gradient_matches_direct_solve():
    rng = np.random.default_rng(6)
    a = rng.normal(size=(80, 80))
    spd = torch.as_tensor(a @ a.T / 80 + 0.5 * np.eye(80))
    rhs = torch.as_tensor(rng.normal(size=(80, 3)))
    solution, _ = conjugate_gradient(lambda v: spd @ v, rhs, tol=1e-12)
    np.testing.assert_allclose(solution.numpy(), torch.linalg.solve(spd, rhs).numpy(), atol=1e-9)


def test_matrix_free_agrees_with_exact_path(simulated_3000_fixture):
    dosage, y, _, _, exact = simulated_3000_fixture
    fast = CvBLUP(method="matrix-free", n_probes=100, random_state=0).fit(dosage, y)
    assert fast.method_ == "matrix-free"
    # HE and REML are different estimators: |Δh2| = 0.015 at this seed (0.003-0.035, ≤ 0.8 SE, over 6 seeds)
    assert abs(fast.h2_ - exact.h2_) < 0.04
    assert np.corrcoef(fast.cvblup_, exact.cvblup_)[0, 1] > 0.99
    assert np.corrcoef(fast.blup_, exact.blup_)[0, 1] > 0.999


def test_matrix_free_is_exact_given_the_same_delta():
    # with h2 fixed at the REML value, CG gives the exact BLUP; diag(H) is the only stochastic part
    dosage, y, *_ = simulate(300, 600, h2=0.5, seed=7)
    eigen = EigenGRM.from_grm(grm(dosage))
    fit = fit_reml(eigen, y)
    exact = blup_cvblup(eigen, y, None, fit)
    operator = GenotypeOperator.from_genotypes(dosage)
    from deepprs.lmm import matrix_free

    alpha, _ = matrix_free.conjugate_gradient(
        lambda v: operator.matmat(v) + fit.delta * v, torch.as_tensor(exact.residual)[:, None], tol=1e-10
    )
    np.testing.assert_allclose(exact.residual - fit.delta * alpha[:, 0].numpy(), exact.blup, atol=1e-5)
    mf = fit_matrix_free(operator, y, n_probes=50)
    assert np.isnan(mf.fit.loglik) and mf.fit.method == "he-cg"


def test_matrix_free_loco_and_packed_storage(eur_fixture):
    source, pheno, _ = eur_fixture
    y = pheno["SIM"].to_numpy()
    exact = CvBLUP(method="exact", loco=True).fit(source, y)
    fast = CvBLUP(method="matrix-free", loco=True).fit(source, y)
    assert list(fast.loco_cvblup_.columns) == ["21", "22"]
    for code in ("21", "22"):  # observed 0.996 on these 370 samples
        assert np.corrcoef(exact.loco_cvblup_[code], fast.loco_cvblup_[code])[0, 1] > 0.98
    dense = GenotypeOperator.from_genotypes(source)
    packed = GenotypeOperator.from_genotypes(source, dense_budget_bytes=0)
    assert packed.blocks[0].packed is not None and dense.blocks[0].dense is not None
    vectors = torch.as_tensor(np.random.default_rng(13).normal(size=(370, 3)))
    k = grm(source)
    np.testing.assert_allclose(packed.matmat(vectors).numpy(), (k @ vectors).numpy(), atol=1e-5)
    np.testing.assert_allclose(
        dense.matmat(vectors, exclude="21").numpy(),
        (
            grm(source, variant_index=np.flatnonzero(source.variant_table["chrom"].astype(str) != "21"))
            @ vectors
        ).numpy(),
        atol=1e-5,
    )


def test_fit_traits_matrix_free_close_to_exact(eur_fixture):
    from deepprs.lmm import fit_traits

    source, pheno, _ = eur_fixture
    traits = pheno[["SIM", "PHENO"]].replace(-9, np.nan).to_numpy()
    exact = fit_traits(source, traits, method="exact")
    fast = fit_traits(source, traits, method="matrix-free")
    for e, f in zip(exact, fast, strict=True):
        assert (e.sample_mask == f.sample_mask).all()
        assert f.fit.method == "he-cg" and e.fit.method == "reml-eigen"
        assert np.corrcoef(e.blup.cvblup, f.blup.cvblup)[0, 1] > 0.95


# -- LOCO -----------------------------------------------------------------------------------------
def test_loco_columns_equal_explicit_refit_without_chromosome(eur_fixture):
    source, pheno, covar = eur_fixture
    y, cov = pheno["SIM"].to_numpy(), covar[["QCOV1", "QCOV2"]].to_numpy()
    model = CvBLUP(method="exact", loco=True).fit(source, y, cov)
    chrom = source.variant_table["chrom"].astype(str).to_numpy()
    assert list(model.loco_cvblup_.columns) == ["21", "22"]
    for code in ("21", "22"):
        refit = CvBLUP(method="exact").fit(source, y, cov, variant_index=np.flatnonzero(chrom != code))
        np.testing.assert_allclose(model.loco_cvblup_[code].to_numpy(), refit.cvblup_, atol=1e-8)
        assert model.loco_h2_[code] == pytest.approx(refit.h2_, abs=1e-9)
    assert np.corrcoef(model.loco_cvblup_["21"], model.cvblup_)[0, 1] < 0.99


def test_loco_needs_two_chromosomes():
    dosage, y, *_ = simulate(40, 50, 0.5, seed=8)
    with pytest.raises(InputError, match="two chromosomes"):
        CvBLUP(loco=True).fit(dosage, y, chromosomes=np.full(50, "1"))


# -- pleiotropy -----------------------------------------------------------------------------------
def test_benjamini_yekutieli_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.random.default_rng(9).uniform(size=57) ** 3
    np.testing.assert_allclose(benjamini_yekutieli(p), multipletests(p, method="fdr_by")[1], atol=1e-12)


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_cvblup_outputs_match_gemma_and_plink2(tmp_path):
    out = str(tmp_path / "sim")
    main(
        [
            "cvblup",
            "--bfile",
            PREFIX,
            "--pheno",
            str(DATA / "eur_lmm.pheno"),
            "--pheno-name",
            "SIM",
            "--covar",
            str(DATA / "eur_lmm.covar"),
            "--covar-name",
            "QCOV1,QCOV2",
            "--loco",
            "--out",
            out,
            "--quiet",
        ]
    )
    summary = json.loads(Path(f"{out}.h2.json").read_text())
    gemma = gemma_log("eur_sim_cov")
    assert summary["h2"] == pytest.approx(gemma["pve"][0], abs=2e-6)
    assert summary["n"] == 370 and summary["n_variants"] == 2859
    for key in ("h2_se", "sigma_g", "sigma_e", "loglik", "method"):
        assert key in summary
    blup = pd.read_csv(f"{out}.cvblup.tsv", sep="\t", dtype={"FID": str, "IID": str})
    assert list(blup.columns) == ["FID", "IID", "BLUP", "CVBLUP"]
    # plink2 --score of the weights file (stored output) reproduces the BLUP up to score_offset
    sscore = pd.read_csv(DATA / "plink2" / "sim_cov.sscore", sep="\t")
    assert (sscore["IID"].to_numpy() == blup["IID"].to_numpy()).all()
    np.testing.assert_allclose(sscore["BETA_SUM"] + summary["score_offset"], blup["BLUP"], atol=5e-5)
    centred = pd.read_csv(DATA / "plink2" / "sim_cov.center.sscore", sep="\t")
    np.testing.assert_allclose(centred["BETA_SUM"], blup["BLUP"], atol=5e-5)
    # the current weights file scores the raw dosages to the BLUP as well
    weights = pd.read_csv(f"{out}.snp_weights.tsv", sep="\t")
    assert list(weights.columns[:3]) == ["ID", "A1", "BETA"]
    source = open_genotypes(PREFIX)
    bim = source.variant_table.set_index("id")
    assert (bim.loc[weights["ID"], "a1"].to_numpy() == weights["A1"].to_numpy()).all()
    dosage = source.read(variants=bim.index.get_indexer(weights["ID"]), dtype=np.float64)
    np.testing.assert_allclose(
        dosage @ weights["BETA"].to_numpy() + summary["score_offset"], blup["BLUP"], atol=1e-7
    )
    loco = pd.read_csv(f"{out}.cvblup.loco.tsv", sep="\t", dtype={"FID": str, "IID": str})
    assert list(loco.columns) == ["FID", "IID", "21", "22"]
    assert Path(f"{out}.log").exists() and Path(f"{out}.provenance.json").exists()


@pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not installed")
def test_plink2_score_of_fresh_weights(tmp_path):
    out = str(tmp_path / "w")
    main(
        [
            "cvblup",
            "--bfile",
            PREFIX,
            "--pheno",
            str(DATA / "eur_lmm.pheno"),
            "--pheno-name",
            "SIM2",
            "--out",
            out,
            "--quiet",
        ]
    )
    subprocess.run(
        [
            "plink2",
            "--bfile",
            PREFIX,
            "--score",
            f"{out}.snp_weights.tsv",
            "1",
            "2",
            "3",
            "header-read",
            "cols=+scoresums",
            "--out",
            out,
        ],
        check=True,
        capture_output=True,
    )
    sscore = pd.read_csv(f"{out}.sscore", sep="\t")
    blup = pd.read_csv(f"{out}.cvblup.tsv", sep="\t")
    offset = json.loads(Path(f"{out}.h2.json").read_text())["score_offset"]
    np.testing.assert_allclose(sscore["BETA_SUM"] + offset, blup["BLUP"], atol=5e-5)


def test_cli_pleiotropy(tmp_path, eur_fixture):
    from statsmodels.stats.multitest import multipletests

    out = str(tmp_path / "pl")
    main(
        [
            "pleiotropy",
            "--bfile",
            PREFIX,
            "--pheno",
            str(DATA / "eur_lmm.pheno"),
            "--pheno-name",
            "SIM,SIM2,PHENO",
            "--out",
            out,
            "--quiet",
        ]
    )
    table = pd.read_csv(f"{out}.pleiotropy.tsv", sep="\t")
    assert list(table.columns) == ["PRS_TRAIT", "PHENO_TRAIT", "R", "P", "FDR", "N"]
    assert len(table) == 9
    cvblups = pd.read_csv(f"{out}.pleiotropy.cvblup.tsv", sep="\t")
    pheno = pd.read_csv(DATA / "eur_lmm.pheno", sep="\t").replace(-9, np.nan)
    for row in table.itertuples():
        x, y = cvblups[row.PRS_TRAIT].to_numpy(), pheno[row.PHENO_TRAIT].to_numpy()
        both = ~(np.isnan(x) | np.isnan(y))
        r, p = stats.pearsonr(x[both], y[both])
        assert row.R == pytest.approx(r, abs=1e-9) and row.P == pytest.approx(p, rel=1e-6)
        assert row.N == both.sum()
    np.testing.assert_allclose(table["FDR"], multipletests(table["P"], method="fdr_by")[1], rtol=1e-6)
    matrix = pd.read_csv(f"{out}.pleiotropy.matrix.tsv", sep="\t", index_col=0)
    assert matrix.shape == (3, 3) and matrix.loc["SIM", "SIM2"] != pytest.approx(matrix.loc["SIM2", "SIM"])
    assert Path(f"{out}.pleiotropy.png").stat().st_size > 1000
    # SIM shares all samples: its cvBLUP equals the single-trait fit; PHENO (missing values) uses the sub-GRM
    source, pheno_table, _ = eur_fixture
    single = CvBLUP(method="exact").fit(source, pheno_table["SIM"].to_numpy())
    np.testing.assert_allclose(cvblups["SIM"], single.cvblup_, atol=1e-8)
    observed = ~pheno["PHENO"].isna().to_numpy()
    k = grm(source)
    index = torch.as_tensor(np.flatnonzero(observed))
    eigen = EigenGRM.from_grm(k[index][:, index])
    y = pheno["PHENO"].to_numpy()[observed]
    expected = blup_cvblup(eigen, y, None, fit_reml(eigen, y)).cvblup
    np.testing.assert_allclose(cvblups["PHENO"].to_numpy()[observed], expected, atol=1e-8)
    assert cvblups["PHENO"].isna().sum() == (~observed).sum()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--pheno-name", "NOPE"], "NOPE"),
        (["--pheno-name", "SIM", "--covar", "COVAR_CONST", "--covar-name", "CONST"], "collinear"),
        (["--pheno-name", "SIM,SIM2"], "single --pheno-name"),
        (["--pheno-name", "SIM", "--method", "fast"], "method must be one of"),
    ],
)
def test_cli_bad_input_exits_2_without_outputs(tmp_path, capsys, extra, message):
    const = tmp_path / "const.covar"
    covar = pd.read_csv(DATA / "eur_lmm.covar", sep="\t")
    covar.assign(CONST=3.0).to_csv(const, sep="\t", index=False, na_rep="NA")
    extra = [str(const) if value == "COVAR_CONST" else value for value in extra]
    out = str(tmp_path / "bad")
    with pytest.raises(SystemExit) as raised:
        main(
            [
                "cvblup",
                "--bfile",
                PREFIX,
                "--pheno",
                str(DATA / "eur_lmm.pheno"),
                *extra,
                "--out",
                out,
                "--quiet",
            ]
        )
    assert raised.value.code == 2
    assert message in capsys.readouterr().err
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("bad"))
    assert not [name for name in leftovers if not name.endswith(".log")]
