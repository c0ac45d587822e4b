"""Acceptance of the PRS benchmark harness with networks (small, seeded versions of the issue's runs).

Truths used: a trait of pure pairwise epistasis (products of centred dosages) has no additive
variance, so no linear model can predict it while a network can; on an additive trait the MLP's
linear twin is an affine function of the genotypes and must do about as well as ridge; the
hybrid starts at its linear path and may only add to it.  The full-size runs are in
benchmarks/bench_prs_acceptance.py (RESULTS_prs_acceptance.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepprs.evaluate.benchmark import run_benchmark
from deepprs.evaluate.data import build_model
from deepprs.evaluate.metrics import r2
from deepprs.simulate import simulate_genotypes, simulate_trait
from deepprs.train.cv import make_folds

N_SAMPLES, N_VARIANTS = 1500, 60
MLP_CONFIG = {"mlp": {"epochs": 60, "patience": 8, "hidden": [32, 16], "dropout": 0.1, "lr": 3e-3, "n_seeds": 2}}


@pytest.fixture(scope="module")
def cohort():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: reproducible float sums, and polite on a shared machine
    dosage, _, variant_table = simulate_genotypes(N_SAMPLES, N_VARIANTS, seed=5)
    folds = make_folds(np.arange(N_SAMPLES).astype(str), 3, seed=0)
    yield dosage, variant_table, folds
    torch.set_num_threads(threads)


def summary_row(result, model: str):
    rows = result.summary.set_index("model")
    assert model in rows.index, f"{model} missing from the summary: {list(rows.index)}"
    return rows.loc[model]


def test_mlp_beats_ridge_on_pairwise_epistasis(cohort):
    dosage, variant_table, folds = cohort
    trait = simulate_trait(dosage, model="epistasis", n_causal=8, h2=0.8, order=2, seed=6)
    assert set(trait.truth["EFFECT_TYPE"]) == {"epistasis2"} and len(trait.truth) == 8  # 4 pairs
    result = run_benchmark(
        dosage,
        trait.phenotype,
        models=["ridge", "mlp"],
        folds=folds,
        variant_table=variant_table,
        config=MLP_CONFIG,
        n_boot=200,
        seed=0,
        device="cpu",
    )
    assert set(result.results["model"]) == {"ridge", "mlp", "mlp-linear"}
    assert len(result.results) == 3 * 3
    ridge, mlp, twin = (summary_row(result, m) for m in ("ridge", "mlp", "mlp-linear"))
    # no additive variance: every linear predictor is ~0
    assert ridge["pooled_r2"] < 0.06  # observed 0.006-0.034 over three genotype seeds
    assert twin["pooled_r2"] < 0.06
    # the MLP finds the interactions (observed 0.60 at these settings; h2 = 0.8)
    assert mlp["pooled_r2"] > 0.4
    assert mlp["best_linear"] == "ridge"
    assert mlp["diff_vs_best_linear"] > 0.3
    assert mlp["diff_best_ci_lower"] > 0
    assert mlp["p_vs_best_linear"] < 0.05
    assert mlp["linear_twin"] == "mlp-linear"
    assert mlp["p_vs_twin"] < 0.05
    # the paired difference is the difference of the pooled R² computed from the predictions
    predictions = result.predictions.pivot_table(index=["FID", "IID"], columns="model", values="prediction")
    y = trait.phenotype[predictions.index.get_level_values("IID").astype(int)]
    assert mlp["diff_vs_best_linear"] == pytest.approx(
        r2(y, predictions["mlp"].to_numpy()) - r2(y, predictions["ridge"].to_numpy()), abs=1e-9
    )


def test_linear_twin_matches_ridge_on_additive_trait(cohort):
    dosage, variant_table, folds = cohort
    trait = simulate_trait(dosage, model="additive", n_causal=20, h2=0.5, seed=7)
    result = run_benchmark(
        dosage,
        trait.phenotype,
        models=["ridge", "mlp"],
        folds=folds,
        variant_table=variant_table,
        config=MLP_CONFIG,
        n_boot=200,
        seed=0,
        device="cpu",
    )
    ridge, mlp, twin = (summary_row(result, m) for m in ("ridge", "mlp", "mlp-linear"))
    assert bool(twin["is_linear"]) and not bool(mlp["is_linear"])
    # ridge recovers most of h2 = 0.5 with N_train 1,000 and M = 60 (Daetwyler, M_e <= 60: >= 0.47)
    assert 0.35 < ridge["pooled_r2"] < 0.6
    # the twin (an affine map trained by Adam, early stopping then a refit on all training
    # samples) is ridge within a small margin: observed -0.007 (-0.013 without the refit)
    assert abs(twin["pooled_r2"] - ridge["pooled_r2"]) < 0.015
    # no epistasis to find: the network gains nothing over its twin beyond noise
    assert mlp["diff_vs_twin"] < 0.03


@pytest.mark.parametrize("model", ["additive", "epistasis"])
def test_hybrid_not_worse_than_its_linear_path(cohort, model):
    dosage, _, _ = cohort
    kwargs = {"n_causal": 20, "h2": 0.5} if model == "additive" else {"n_causal": 8, "h2": 0.8, "order": 2}
    trait = simulate_trait(dosage, model=model, seed=8, **kwargs)
    y = trait.phenotype
    train, test = np.arange(1000), np.arange(1000, N_SAMPLES)
    hybrid = build_model(
        "hybrid", {"epochs": 40, "patience": 6, "hidden": [32, 16], "linear_folds": 3}, seed=0, device="cpu"
    ).fit(dosage[train], y[train])
    linear_path = hybrid.linear_model_.predict(dosage[test])
    ridge = build_model("ridge").fit(dosage[train], y[train]).predict(dosage[test])
    np.testing.assert_allclose(linear_path, ridge, rtol=1e-6, atol=1e-8)  # the skip path is plain ridge
    r2_hybrid, r2_linear = r2(y[test], hybrid.predict(dosage[test])), r2(y[test], linear_path)
    assert r2_hybrid >= r2_linear - 0.02
    assert np.isfinite(hybrid.linear_path_r2_) and np.isfinite(hybrid.hybrid_gain_)
    assert hybrid.hybrid_gain_ > -0.02  # on its own validation split, against the out-of-fold linear score
    if model == "epistasis":
        # nothing linear to find (the correction learnt the interactions here: 0.19 vs 0.003, but not
        # for every seed, so only "not worse" is asserted)
        assert r2_linear < 0.06


def test_hybrid_early_stopping_can_keep_its_exact_linear_path(cohort):
    """With a step size that only makes the correction worse, early stopping returns the untrained
    hybrid, whose prediction is exactly the linear path (before the fix, the best *trained* epoch
    was kept and the hybrid ended below its linear path)."""
    dosage, _, _ = cohort
    y = simulate_trait(dosage, model="additive", n_causal=20, h2=0.5, seed=8).phenotype
    params = {"epochs": 10, "patience": 3, "hidden": [32, 16], "linear_folds": 3, "lr": 0.3}
    hybrid = build_model("hybrid", params, seed=0, device="cpu").fit(dosage[:1000], y[:1000])
    assert hybrid.best_epochs_ == [-1]
    assert all(record["val_loss"] > 0 for record in hybrid.history_) and len(hybrid.history_) == 3
    np.testing.assert_array_equal(hybrid.predict(dosage[1000:]), hybrid.linear_model_.predict(dosage[1000:]))
    assert hybrid.hybrid_gain_ == pytest.approx(0.0, abs=1e-12)


def test_in_fit_screening_does_not_see_the_validation_labels():
    """Pure-noise trait, 4,000 variants, top 40 kept: screening that used the validation split's
    labels would pick variants correlated with them by chance and the validation R² of the fitted
    MLP would be far above its null level (0.29 with that leak, 0.002 without; null mean 1/90)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rng = np.random.default_rng(3)
        dosage = rng.binomial(2, 0.3, size=(300, 4000)).astype(np.float64)
        y = rng.standard_normal(300)
        params = {"top_k": 40, "epochs": 30, "patience": 10, "hidden": [16], "val_fraction": 0.3}
        model = build_model("mlp", params, seed=0, device="cpu").fit(dosage, y)
    finally:
        torch.set_num_threads(threads)
    assert len(model.selected_variants_) == 40
    assert model.val_score_ < 0.1
