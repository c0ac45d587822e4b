"""Neural PRS models: contract, linear twins, epistasis vs additivity, hybrid, VAE losses, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from deepprs.errors import InputError
from deepprs.io.packed import PackedGenotypes
from deepprs.models.base import MODEL_REGISTRY, make_model
from deepprs.models.neural import NONLINEAR_MODULES, NeuralPRS

torch.set_num_threads(1)

NETWORKS = ["mlp", "lcn", "attention", "vae", "hybrid"]
TINY = {
    "mlp": {"hidden": [16, 8]},
    "lcn": {"window": 5, "channels": 2, "hidden": [8]},
    "attention": {"window": 5, "d_model": 8, "n_heads": 2, "n_layers": 1, "d_ff": 16, "hidden": [8]},
    "vae": {},
    "hybrid": {"hidden": [8], "linear_folds": 3},
}


def tiny_model(name: str, **params):
    settings = dict(TINY[name], epochs=3, batch_size=32, device="cpu", random_state=0)
    settings.update(params)
    return make_model(name, **settings)


def r2(y: np.ndarray, prediction: np.ndarray) -> float:
    return float(np.corrcoef(y, prediction)[0, 1] ** 2)


@pytest.fixture(scope="module")
def small_cohort_fixture():
    """150 samples × 40 variants, additive trait (h2 ~ 0.5) + 2 covariates, and a binary trait."""
    rng = np.random.default_rng(11)
    n, m = 150, 40
    dosage = rng.binomial(2, rng.uniform(0.1, 0.5, m), size=(n, m)).astype(float)
    dosage[rng.random((n, m)) < 0.02] = np.nan
    z = np.nan_to_num((dosage - np.nanmean(dosage, 0)) / np.nanstd(dosage, 0))
    genetic = z[:, :8] @ rng.normal(size=8)
    covariates = rng.normal(size=(n, 2))
    y = genetic / genetic.std() + 0.5 * covariates[:, 0] + rng.normal(size=n)
    binary = (y > np.quantile(y, 0.7)).astype(float)
    return PackedGenotypes.from_dosage(dosage), dosage, y, binary, covariates


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("target", ["quantitative", "binary"])
def test_model_trains_and_predicts(small_cohort_fixture, name, target):
    packed, _, y, binary, covariates = small_cohort_fixture
    trait = y if target == "quantitative" else binary
    train, test = np.arange(110), np.arange(110, 150)
    model = tiny_model(name).fit(packed.subset_samples(train), trait[train], covariates=covariates[train])
    assert model.is_linear is False and model.name == name
    assert model.task_ == ("regression" if target == "quantitative" else "binary")
    prediction = model.predict(packed.subset_samples(test), covariates=covariates[test])
    assert prediction.shape == (40,) and prediction.dtype == np.float64 and np.isfinite(prediction).all()
    assert len(model.history_) >= 1 and all(np.isfinite(h["train_loss"]) for h in model.history_)
    if target == "binary":
        # logits, class-balanced: a genuine spread of values around the balanced intercept
        assert prediction.std() > 0
        assert model.pos_weight_ == pytest.approx(
            (1 - binary[train][model._split(binary[train])[0]]).sum()
            / binary[train][model._split(binary[train])[0]].sum()
        )
    with pytest.raises(InputError, match="covariates"):
        model.predict(packed.subset_samples(test))


def test_registry_and_params_are_json():
    for name in NETWORKS:
        assert name in MODEL_REGISTRY and issubclass(MODEL_REGISTRY[name], NeuralPRS)
        params = make_model(name).get_params()
        json.dumps(params)
        for common in (
            "linear_twin",
            "top_k",
            "p_threshold",
            "epochs",
            "batch_size",
            "lr",
            "weight_decay",
            "optimizer",
            "patience",
            "n_seeds",
            "device",
            "random_state",
            "checkpoint_dir",
            "resume",
            "task",
            "val_fraction",
        ):
            assert common in params, (name, common)
    assert make_model("mlp").get_params()["hidden"] == (100, 50, 25)
    assert make_model("mlp").get_params()["dropout"] == 0.3


def test_dense_input_matches_packed(small_cohort_fixture):
    packed, dosage, y, _, covariates = small_cohort_fixture
    a = tiny_model("mlp").fit(packed, y, covariates=covariates).predict(packed, covariates=covariates)
    b = tiny_model("mlp").fit(dosage, y, covariates=covariates).predict(dosage, covariates=covariates)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NETWORKS)
def test_linear_twin_is_affine_and_network_is_not(name):
    n_inputs, n_side = 30, 3
    model = make_model(name, **TINY[name])
    torch.manual_seed(0)
    twin = make_model(name, linear_twin=True, **TINY[name])._build_network(n_inputs, n_side).eval()
    torch.manual_seed(0)
    network = model._build_network(n_inputs, n_side).eval()
    assert not [m for m in twin.modules() if isinstance(m, NONLINEAR_MODULES)]
    assert [m for m in network.modules() if isinstance(m, NONLINEAR_MODULES)]
    # dropout and batchnorm are kept in the twin
    assert {type(m) for m in twin.modules() if isinstance(m, (torch.nn.Dropout, torch.nn.BatchNorm1d))} == {
        type(m) for m in network.modules() if isinstance(m, (torch.nn.Dropout, torch.nn.BatchNorm1d))
    }
    if name == "hybrid":  # the correction starts at zero; perturb it so that non-linearity can show
        for module in (twin, network):
            torch.nn.init.normal_(module.correction.out.weight)
    generator = torch.Generator().manual_seed(1)
    x1, x2 = (3 * torch.randn(64, n_inputs, generator=generator) for _ in range(2))
    s1, s2 = (torch.randn(64, n_side, generator=generator) for _ in range(2))
    a = 0.3
    with torch.no_grad():
        for module, affine in ((twin, True), (network, False)):
            mixed = module(a * x1 + (1 - a) * x2, a * s1 + (1 - a) * s2)
            combined = a * module(x1, s1) + (1 - a) * module(x2, s2)
            gap = float((mixed - combined).abs().max())
            scale = float(combined.abs().max())
            if affine:
                assert gap <= 1e-4 * max(scale, 1.0), (name, gap)
            else:
                assert gap > 1e-3 * max(scale, 1.0), (name, gap)


@pytest.fixture(scope="module")
def two_traits_fixture():
    """N 3,000 × M 50 genotypes; an additive trait and a purely epistatic one (4 variant pairs)."""
    rng = np.random.default_rng(1)
    n, m = 3000, 50
    dosage = rng.binomial(2, 0.5, size=(n, m)).astype(float)
    z = (dosage - 1.0) / np.sqrt(0.5)
    additive = z @ rng.normal(size=m)
    y_additive = additive / additive.std() + rng.normal(size=n)  # h2 = 0.5
    pairs = sum(z[:, 2 * k] * z[:, 2 * k + 1] for k in range(4))
    y_epistatic = pairs / pairs.std() + rng.normal(scale=0.6, size=n)
    return PackedGenotypes.from_dosage(dosage), z, y_additive, y_epistatic


def test_mlp_twin_matches_closed_form_ridge_on_additive_trait(two_traits_fixture):
    packed, z, y, _ = two_traits_fixture
    train, test = np.arange(2400), np.arange(2400, 3000)
    # closed-form ridge on standardised dosages at the heritability-implied penalty M(1-h2)/h2
    zt, mean = z[train], y[train].mean()
    beta = np.linalg.solve(zt.T @ zt + 50.0 * np.eye(50), zt.T @ (y[train] - mean))
    ridge_r2 = r2(y[test], z[test] @ beta + mean)
    twin = make_model("mlp", linear_twin=True, epochs=40, device="cpu")
    twin_r2 = r2(y[test], twin.fit(packed.subset_samples(train), y[train]).predict(packed.subset_samples(test)))
    assert ridge_r2 > 0.35
    assert abs(twin_r2 - ridge_r2) < 0.04, (twin_r2, ridge_r2)


def test_mlp_beats_its_linear_twin_on_epistatic_trait(two_traits_fixture):
    packed, _, _, y = two_traits_fixture
    train, test = np.arange(2400), np.arange(2400, 3000)
    scores = {}
    for twin in (False, True):
        model = make_model("mlp", linear_twin=twin, epochs=30, lr=1e-2, device="cpu", random_state=3)
        prediction = model.fit(packed.subset_samples(train), y[train]).predict(packed.subset_samples(test))
        scores[twin] = r2(y[test], prediction)
    assert scores[True] < 0.03  # products of centred variants have no additive component
    assert scores[False] - scores[True] > 0.3, scores


def test_hybrid_starts_at_its_linear_path_and_is_not_worse_after_training(two_traits_fixture):
    packed, z, y, _ = two_traits_fixture
    train, test = np.arange(1500), np.arange(2400, 3000)
    X_train, X_test = packed.subset_samples(train), packed.subset_samples(test)
    untrained = make_model("hybrid", epochs=0, device="cpu", linear_folds=3).fit(X_train, y[train])
    linear_prediction = untrained.linear_model_.predict(X_test)
    np.testing.assert_array_equal(untrained.predict(X_test), linear_prediction)
    independent = make_model("ridge").fit(X_train, y[train]).predict(X_test)
    np.testing.assert_allclose(linear_prediction, independent, rtol=1e-10, atol=1e-10)
    # zero-epoch gain is exactly 0 (the network output equals the out-of-fold linear path)
    assert untrained.hybrid_gain_ == pytest.approx(0.0, abs=1e-12)
    assert 0.2 < untrained.linear_path_r2_ < 0.7
    trained = make_model("hybrid", epochs=15, device="cpu", linear_folds=3).fit(X_train, y[train])
    assert abs(trained.hybrid_gain_) < 0.05  # additive trait: no real gain to find
    assert r2(y[test], trained.predict(X_test)) > r2(y[test], linear_prediction) - 0.02


def test_vae_logs_loss_components(small_cohort_fixture):
    packed, _, y, _, covariates = small_cohort_fixture
    model = tiny_model("vae", epochs=4, patience=None, alpha=0.7).fit(packed, y, covariates=covariates)
    assert [h["epoch"] for h in model.history_] == [0, 1, 2, 3]
    for record in model.history_:
        for key in ("train_kl", "train_recon", "train_label", "val_kl", "val_recon", "val_label"):
            assert np.isfinite(record[key]) and record[key] >= 0, key
        # the logged total is the documented mixture of its components (sample-weighted means)
        assert record["train_loss"] == pytest.approx(
            0.3 * (record["train_kl"] + record["train_recon"]) + 0.7 * record["train_label"], rel=1e-5
        )
        assert record["val_loss"] == pytest.approx(record["val_label"], rel=1e-6)  # early stopping on labels
    widths, latent = model.resolved_widths(40)
    assert widths == (20, 10, 8) and latent == 4
    assert model.networks_[0].mu.out_features == 4


def test_screening_inside_fit_keeps_planted_variants():
    rng = np.random.default_rng(5)
    dosage = rng.binomial(2, 0.4, size=(400, 60)).astype(float)
    y = 1.5 * (dosage[:, 7] + dosage[:, 33]) + rng.normal(size=400)
    model = tiny_model("mlp", top_k=5).fit(dosage, y)
    assert len(model.selected_variants_) == 5 and {7, 33} <= set(model.selected_variants_.tolist())
    assert model.networks_[0].body[0].in_features == 5
    assert model.predict(dosage).shape == (400,)
    strict = tiny_model("mlp", p_threshold=1e-8).fit(dosage, y)
    assert set(strict.selected_variants_.tolist()) == {7, 33}


@pytest.mark.parametrize("name", NETWORKS)
def test_persistence_round_trip_is_exact(small_cohort_fixture, tmp_path, name):
    packed, _, y, _, covariates = small_cohort_fixture
    model = tiny_model(name, top_k=30, n_seeds=2).fit(packed, y, covariates=covariates)
    state = model.state_dict()
    assert state["selected_variants"].dtype == torch.int64 and len(state["selected_variants"]) == 30
    assert state["center"].shape == (40,)  # per input variant, as the model contract requires
    assert any(k.startswith("member1.") for k in state)
    save_file(state, str(tmp_path / "model.safetensors"))
    params = json.loads(json.dumps(model.get_params()))
    metadata = json.loads(json.dumps(model.extra_metadata()))
    loaded = make_model(name, **params).load_state_dict(load_file(str(tmp_path / "model.safetensors")), metadata)
    np.testing.assert_array_equal(
        loaded.predict(packed, covariates=covariates), model.predict(packed, covariates=covariates)
    )


def test_same_seed_same_predictions_and_seed_matters(small_cohort_fixture):
    packed, _, y, _, covariates = small_cohort_fixture
    a = tiny_model("attention").fit(packed, y, covariates=covariates).predict(packed, covariates=covariates)
    b = tiny_model("attention").fit(packed, y, covariates=covariates).predict(packed, covariates=covariates)
    c = (
        tiny_model("attention", random_state=1)
        .fit(packed, y, covariates=covariates)
        .predict(packed, covariates=covariates)
    )
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_ensemble_averages_members(small_cohort_fixture):
    packed, _, y, _, _ = small_cohort_fixture
    # without a validation split the members are exactly the single models with seeds 0 and 1
    ensemble = tiny_model("mlp", n_seeds=2, val_fraction=0).fit(packed, y)
    members = [tiny_model("mlp", random_state=seed, val_fraction=0).fit(packed, y).predict(packed) for seed in (0, 1)]
    np.testing.assert_allclose(ensemble.predict(packed), np.mean(members, axis=0), rtol=1e-6, atol=1e-9)


def test_fit_checkpoints_and_resumes(small_cohort_fixture, tmp_path):
    packed, _, y, _, _ = small_cohort_fixture
    full = tiny_model("mlp", epochs=4, patience=None, checkpoint_dir=str(tmp_path / "a")).fit(packed, y)
    assert (tmp_path / "a" / "member0" / "checkpoint.safetensors").exists()
    assert (tmp_path / "a" / "member0" / "refit" / "checkpoint.safetensors").exists()  # the refit phase
    tiny_model("mlp", epochs=2, patience=None, checkpoint_dir=str(tmp_path / "b")).fit(packed, y)
    resumed = tiny_model("mlp", epochs=4, patience=None, checkpoint_dir=str(tmp_path / "b"), resume=True).fit(packed, y)
    assert [h["epoch"] for h in resumed.history_] == [0, 1, 2, 3]
    np.testing.assert_array_equal(resumed.predict(packed), full.predict(packed))


def test_bad_inputs_raise_clear_errors(small_cohort_fixture):
    packed, _, y, _, _ = small_cohort_fixture
    with pytest.raises(InputError, match="y has"):
        tiny_model("mlp").fit(packed, y[:10])
    with pytest.raises(InputError, match="0/1"):
        tiny_model("mlp", task="binary").fit(packed, y)
    with pytest.raises(InputError, match="not fitted"):
        tiny_model("mlp").predict(packed)
    model = tiny_model("mlp").fit(packed, y)
    with pytest.raises(InputError, match="variants"):
        model.predict(PackedGenotypes.from_dosage(np.zeros((3, 7))))


def test_binary_trait_logits_rank_like_logistic_regression(two_traits_fixture):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    packed, z, y, _ = two_traits_fixture
    case = (y > np.quantile(y, 0.8)).astype(float)  # 20% cases: class balancing matters
    train, test = np.arange(2400), np.arange(2400, 3000)
    reference = LogisticRegression(C=0.05, max_iter=2000).fit(z[train], case[train])
    reference_auc = roc_auc_score(case[test], reference.decision_function(z[test]))
    model = make_model("mlp", linear_twin=True, epochs=30, device="cpu").fit(packed.subset_samples(train), case[train])
    logits = model.predict(packed.subset_samples(test))
    assert model.task_ == "binary" and model.pos_weight_ == pytest.approx(4.0, rel=0.1)
    auc = roc_auc_score(case[test], logits)
    assert reference_auc > 0.75
    assert auc > reference_auc - 0.04, (auc, reference_auc)
    # balanced training: logits centre near 0 rather than at the 20% prior (log-odds -1.4)
    assert abs(float(np.median(logits))) < 1.0


def test_bundle_round_trip_with_screening(small_cohort_fixture, tmp_path):
    import pandas as pd

    from deepprs.models.bundle import load_model, save_model

    packed, _, y, _, covariates = small_cohort_fixture
    model = tiny_model("hybrid", top_k=20).fit(packed, y, covariates=covariates)
    variant_table = pd.DataFrame(
        {
            "chrom": "22",
            "pos": np.arange(1, 41) * 100,
            "id": [f"rs{i}" for i in range(40)],
            "ref": "A",
            "alt": "G",
            "a1": "G",
            "cm": 0.0,
        }
    )
    save_model(model, tmp_path / "bundle", variant_table=variant_table)
    loaded, table = load_model(tmp_path / "bundle")
    assert len(table) == 40
    np.testing.assert_array_equal(
        loaded.predict(packed, covariates=covariates), model.predict(packed, covariates=covariates)
    )


def test_refit_equals_a_fit_on_all_samples_for_the_best_epoch_count(small_cohort_fixture):
    """refit=True retrains on every training sample for best_epoch + 1 epochs: it must equal a fit
    without a validation split run for exactly that many epochs (same seed, init and shuffles)."""
    packed, _, y, _, _ = small_cohort_fixture
    refitted = tiny_model("mlp", epochs=6, patience=2).fit(packed, y)
    held_out = tiny_model("mlp", epochs=6, patience=2, refit=False).fit(packed, y)
    best = refitted.best_epochs_[0]
    assert best == held_out.best_epochs_[0] >= 0
    assert [h["epoch"] for h in refitted.refit_history_] == list(range(best + 1))
    assert held_out.refit_history_ == []
    direct = tiny_model("mlp", epochs=best + 1, patience=None, val_fraction=0).fit(packed, y)
    np.testing.assert_allclose(refitted.predict(packed), direct.predict(packed), rtol=1e-5, atol=1e-6)
    assert not np.allclose(refitted.predict(packed), held_out.predict(packed))
    # the validation score is the early-stopping network's (the refit has seen those samples)
    assert refitted.val_score_ == pytest.approx(held_out.val_score_)


def test_tune_grid_picks_the_lowest_validation_loss_and_refits_with_it(small_cohort_fixture):
    """In-fold tuning: every grid point is scored on the validation split; the winner's recipe is
    then exactly the fitted model's (same predictions as a fit with that point fixed)."""
    packed, _, y, _, _ = small_cohort_fixture
    grid = {"weight_decay": [1e-4, 0.3], "lr": [1e-3, 1e-2]}
    tuned = tiny_model("mlp", epochs=5, patience=2, tune_grid=grid).fit(packed, y)
    assert len(tuned.tuning_) == 4
    assert {(t["lr"], t["weight_decay"]) for t in tuned.tuning_} == {(a, b) for a in (1e-3, 1e-2) for b in (1e-4, 0.3)}
    best = min(tuned.tuning_, key=lambda t: t["best_val_loss"])
    assert tuned.best_params_ == {"lr": best["lr"], "weight_decay": best["weight_decay"]}
    # the estimator's own hyper-parameters are untouched (sklearn convention)
    assert tuned.lr == 1e-3 and tuned.weight_decay == 1e-4
    fixed = tiny_model("mlp", epochs=5, patience=2, **tuned.best_params_).fit(packed, y)
    assert fixed.best_epochs_ == tuned.best_epochs_
    np.testing.assert_allclose(tuned.predict(packed), fixed.predict(packed), rtol=1e-6, atol=1e-9)
    # each grid point's validation loss is that of a model trained with it alone
    other = next(t for t in tuned.tuning_ if t is not best)
    alone = tiny_model("mlp", epochs=5, patience=2, lr=other["lr"], weight_decay=other["weight_decay"]).fit(packed, y)
    assert alone.best_epochs_[0] == other["best_epoch"]
    with pytest.raises(InputError, match="tune_grid cannot search"):
        tiny_model("mlp", tune_grid={"hidden": [[4]]}).fit(packed, y)
    with pytest.raises(InputError, match="validation split"):
        tiny_model("mlp", tune_grid={"lr": [1e-3]}, val_fraction=0).fit(packed, y)


def test_ema_decay_reaches_the_model_and_changes_the_fit(small_cohort_fixture):
    packed, _, y, _, _ = small_cohort_fixture
    plain = tiny_model("mlp", epochs=4, patience=None, refit=False).fit(packed, y)
    averaged = tiny_model("mlp", epochs=4, patience=None, refit=False, ema_decay=0.9).fit(packed, y)
    assert averaged.get_params()["ema_decay"] == 0.9
    assert not np.allclose(plain.predict(packed), averaged.predict(packed))


def test_hybrid_delta_weight_is_the_validation_minimiser_with_a_standard_error_rule():
    """``_choose_delta_weight`` against brute force: the grid value nearest the least-squares
    weight <r, d> / <d, d> (r = target - skip), and 0 when the gain is within ``min_gain_se`` SEs."""
    from deepprs.models.neural import HybridPRS

    rng = np.random.default_rng(0)
    n = 400
    skip = rng.normal(size=n)
    signal = rng.normal(size=n)
    target = skip + 0.6 * signal + 0.5 * rng.normal(size=n)
    hybrid = HybridPRS(min_gain_se=2.0)
    hybrid.task_ = "regression"
    weight, gain, se = hybrid._choose_delta_weight(target, skip, signal)
    residual = target - skip
    grid = np.linspace(0, 1, 21)
    brute = grid[np.argmin([np.mean((residual - w * signal) ** 2) for w in grid])]
    assert weight == pytest.approx(brute) and 0.5 <= weight <= 0.7
    gains = residual**2 - (residual - weight * signal) ** 2
    assert gain == pytest.approx(gains.mean()) and se == pytest.approx(gains.std(ddof=1) / np.sqrt(n))
    # a delta that is pure noise: any chosen weight's gain is within 2 SE -> the exact linear path
    noise = rng.normal(size=n)
    weight, gain, se = hybrid._choose_delta_weight(target, skip, 0.3 * noise)
    assert weight == 0.0 and gain <= 2.0 * se
    # a tiny but real gain survives a loose rule and not a strict one
    small = 0.05 * signal
    loose, strict = HybridPRS(min_gain_se=0.5), HybridPRS(min_gain_se=50.0)
    loose.task_ = strict.task_ = "regression"
    assert loose._choose_delta_weight(target, skip, small)[0] == 1.0
    assert strict._choose_delta_weight(target, skip, small)[0] == 0.0
