"""The cross-validated benchmark: API, linear twins, leakage, and the `deepprs benchmark` command.

A tiny fake non-linear model registered here (``is_linear = False``, accepts ``linear_twin``)
exercises the twin logic without the neural networks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from deepprs.cli.main import main
from deepprs.evaluate.benchmark import run_benchmark
from deepprs.evaluate.metrics import r2
from deepprs.models.base import PRSModel, make_model, register_model
from deepprs.train.cv import make_folds

DATA = Path(__file__).parent / "data" / "prs"
PREFIX = str(DATA / "eur_chr22")
PHENO = str(DATA / "eur_chr22.pheno")


pytestmark = pytest.mark.usefixtures("one_blas_thread")  # see conftest.py


@register_model("fakenet_test")
class FakeNet(PRSModel):
    """Ridge score passed through a non-linearity (or not, as the linear twin)."""

    is_linear = False

    def __init__(self, *, linear_twin: bool = False, random_state: int | None = 0) -> None:
        self.linear_twin = linear_twin
        self.random_state = random_state

    def fit(self, X, y, *, covariates=None):
        self.inner_ = make_model("ridge", lambdas=[50.0]).fit(X, y, covariates=covariates)
        self.fitted_twin_ = self.linear_twin
        return self

    def predict(self, X, *, covariates=None):
        score = self.inner_.predict(X, covariates=covariates)
        return score if self.linear_twin else score + 0.5 * np.tanh(score)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"coef": torch.tensor(self.inner_.coef_)}

    def load_state_dict(self, state, metadata: dict[str, Any]):
        return self


def simulate(n=300, m=150, seed=0, h2=0.5):
    rng = np.random.default_rng(seed)
    dosage = rng.binomial(2, rng.uniform(0.1, 0.5, m), (n, m)).astype(float)
    beta = np.zeros(m)
    beta[:10] = rng.normal(size=10)
    genetic = (dosage - dosage.mean(0)) @ beta
    genetic *= np.sqrt(h2 / genetic.var())
    return dosage, genetic + rng.normal(scale=np.sqrt(1 - h2), size=n)


def run_cli(args):
    try:
        main(args)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def test_run_benchmark_twins_metrics_and_pooled_summary():
    dosage, y = simulate()
    folds = make_folds([str(i) for i in range(len(y))], 4, seed=1)
    result = run_benchmark(
        dosage, y, models=["ridge", "ct", "fakenet_test"], folds=folds, n_boot=100, config={"ct": {"cv": 2}}
    )
    runs = ["ridge", "ct", "fakenet_test", "fakenet_test-linear"]
    assert sorted(result.results["model"].unique()) == sorted(runs)
    assert len(result.results) == 4 * len(runs)
    assert list(result.results.columns) == [
        "model",
        "fold",
        "n_train",
        "n_test",
        "r2",
        "r2_sse",
        "calibration_slope",
        "fit_seconds",
    ]
    predictions = result.predictions
    for model_name in runs:
        part = predictions[predictions["model"] == model_name]
        assert len(part) == len(y) and part["prediction"].notna().all()
        for row in result.results[result.results["model"] == model_name].itertuples():
            test = folds == row.fold
            assert row.n_test == test.sum() and row.n_train == (~test).sum()
            assert row.r2 == pytest.approx(r2(y[test], part["prediction"].to_numpy()[test]))
    summary = result.summary.set_index("model")
    pooled = predictions[predictions["model"] == "ridge"]["prediction"].to_numpy()
    assert summary.loc["ridge", "pooled_r2"] == pytest.approx(r2(y, pooled))
    assert summary.loc["ridge", "r2_ci_lower"] < summary.loc["ridge", "pooled_r2"] < summary.loc["ridge", "r2_ci_upper"]
    net = summary.loc["fakenet_test"]
    assert net["linear_twin"] == "fakenet_test-linear"
    twin_r2 = summary.loc["fakenet_test-linear", "pooled_r2"]
    assert net["diff_vs_twin"] == pytest.approx(net["pooled_r2"] - twin_r2)
    assert net["best_linear"] in ("ridge", "ct")  # the twin is not a candidate for "best linear"
    assert 0 <= net["p_vs_twin"] <= 1 and net["diff_twin_ci_lower"] <= net["diff_twin_ci_upper"]
    assert bool(summary.loc["fakenet_test-linear", "is_linear"]) and not bool(net["is_linear"])


def test_no_leakage_on_a_null_trait():
    """Screening and tuning happen inside the folds: pure-noise phenotypes give r2 ~ 0.

    Selecting the top variants on all samples first would give a clearly positive r2 here.
    """
    rng = np.random.default_rng(2)
    dosage = rng.binomial(2, 0.3, (200, 2000)).astype(float)
    y = rng.normal(size=200)
    folds = make_folds([str(i) for i in range(200)], 5, seed=0)
    result = run_benchmark(
        dosage, y, models=["ct"], folds=folds, n_boot=50, config={"ct": {"cv": 2, "p_thresholds": [1e-3]}}
    )
    assert result.summary.loc[0, "pooled_r2"] < 0.03
    # the leaky version: variants chosen on all samples, then "cross-validated"
    from deepprs.models.screening import screen_variants

    leaky_variants = screen_variants(dosage, y, top_k=20)
    leaky = run_benchmark(
        dosage[:, leaky_variants],
        y,
        models=["ridge"],
        folds=folds,
        n_boot=50,
        config={"ridge": {"lambdas": [10.0]}},
    )
    assert leaky.summary.loc[0, "pooled_r2"] > 0.05


def test_cli_benchmark_writes_all_outputs(tmp_path):
    out = tmp_path / "bench"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"lasso": {"cv": 2, "n_lambdas": 15}}))
    code = run_cli(
        [
            "benchmark",
            "--bfile",
            PREFIX,
            "--pheno",
            PHENO,
            "--pheno-name",
            "PHENO",
            "--covar",
            PHENO,
            "--covar-name",
            "QCOV1,QCOV2",
            "--models",
            "ridge,lasso",
            "--folds",
            "3",
            "--n-boot",
            "50",
            "--config",
            str(config),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    for name in (
        "results.tsv",
        "predictions.tsv",
        "summary.tsv",
        "benchmark.json",
        "benchmark_r2.png",
        "calibration.png",
        "benchmark.log",
    ):
        assert (out / name).exists(), name
    results = pd.read_csv(out / "results.tsv", sep="\t")
    assert len(results) == 6 and set(results["model"]) == {"ridge", "lasso"}
    predictions = pd.read_csv(out / "predictions.tsv", sep="\t")
    assert list(predictions.columns) == ["FID", "IID", "fold", "model", "prediction"]
    assert len(predictions) == 2 * results.groupby("model")["n_test"].sum().iloc[0]
    settings = json.loads((out / "benchmark.json").read_text())
    assert settings["n_folds"] == 3 and settings["config"]["lasso"]["n_lambdas"] == 15
    assert (out / "benchmark_r2.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_benchmark_folds_file_group_by_binary_and_clumped(tmp_path):
    pheno = pd.read_csv(PHENO, sep="\t")
    pheno = pheno[pheno["PHENO"].notna()]
    binary = pheno[["FID", "IID"]].assign(CASE=(pheno["PHENO"] > pheno["PHENO"].median()).astype(int))
    binary.to_csv(tmp_path / "case.pheno", sep="\t", index=False)
    folds = binary[["FID", "IID"]].assign(FOLD=np.arange(len(binary)) % 2 + 1)
    folds.to_csv(tmp_path / "folds.txt", sep="\t", index=False)
    out = tmp_path / "b1"
    code = run_cli(
        [
            "benchmark",
            "--bfile",
            PREFIX,
            "--pheno",
            str(tmp_path / "case.pheno"),
            "--models",
            "ridge",
            "--folds-file",
            str(tmp_path / "folds.txt"),
            "--n-boot",
            "30",
            "--prevalence",
            "0.1",
            "--joint-tagging-check",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    results = pd.read_csv(out / "results.tsv", sep="\t")
    assert set(results["model"]) == {"ridge", "ridge@clumped"}
    assert {"auc", "liability_r2"} <= set(results.columns)
    written = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"FID": str, "IID": str})
    merged = written.merge(folds.astype({"FID": str, "IID": str}), on=["FID", "IID"])
    assert (merged["fold"] == merged["FOLD"] - 1).all()
    assert "LD-clumped variants" in (out / "benchmark.log").read_text()
    # --group-by FID on a copy of the fixture where samples come in families of three
    from deepprs.io.bed import write_bed
    from deepprs.io.genotypes import open_genotypes

    source = open_genotypes(PREFIX)
    families = source.sample_table.assign(fid=[f"F{i // 3}" for i in range(source.n_samples)])
    write_bed(tmp_path / "families", source.read(), families, source.variant_table)
    family_pheno = pd.read_csv(PHENO, sep="\t", dtype={"FID": str, "IID": str})
    family_pheno["FID"] = family_pheno["IID"].map(dict(zip(families["iid"], families["fid"], strict=True)))
    family_pheno.to_csv(tmp_path / "families.pheno", sep="\t", index=False, na_rep="NA")
    code = run_cli(
        [
            "benchmark",
            "--bfile",
            str(tmp_path / "families"),
            "--pheno",
            str(tmp_path / "families.pheno"),
            "--pheno-name",
            "PHENO",
            "--models",
            "ridge",
            "--folds",
            "3",
            "--group-by",
            "FID",
            "--n-boot",
            "20",
            "--out",
            str(tmp_path / "b2"),
            "--quiet",
        ]
    )
    assert code == 0
    written = pd.read_csv(tmp_path / "b2" / "predictions.tsv", sep="\t")
    assert written["FID"].value_counts().max() == 3
    assert (written.groupby("FID")["fold"].nunique() == 1).all()
    # user errors exit 2 with one line
    code = run_cli(
        [
            "benchmark",
            "--bfile",
            PREFIX,
            "--pheno",
            PHENO,
            "--models",
            "nosuchmodel",
            "--folds",
            "3",
            "--out",
            str(tmp_path / "b3"),
            "--quiet",
        ]
    )
    assert code == 2
    code = run_cli(
        [
            "benchmark",
            "--bfile",
            PREFIX,
            "--pheno",
            PHENO,
            "--models",
            "ridge",
            "--folds",
            "3",
            "--folds-file",
            str(tmp_path / "folds.txt"),
            "--out",
            str(tmp_path / "b4"),
            "--quiet",
        ]
    )
    assert code == 2


def test_harness_gives_ct_the_variant_positions(monkeypatch):
    """With a variant table, every fold's ct clumps in a kb window (positions), the joint-tagging run too."""
    from deepprs.models.linear import ClumpThresholdPRS

    windows: list[tuple[str, int]] = []
    original_fit = ClumpThresholdPRS.fit

    def spy_fit(self, X, y, *, covariates=None, variant_table=None):
        original_fit(self, X, y, covariates=covariates, variant_table=variant_table)
        windows.append((self.clump_window_used_, -1 if variant_table is None else len(variant_table)))
        return self

    monkeypatch.setattr(ClumpThresholdPRS, "fit", spy_fit)
    dosage, y = simulate(n=200, m=60)
    table = pd.DataFrame(
        {"chrom": "1", "pos": np.arange(60) * 10_000 + 1, "id": [f"v{i}" for i in range(60)], "a1": "A", "ref": "G"}
    )
    folds = make_folds([str(i) for i in range(len(y))], 2, seed=1)
    run_benchmark(
        dosage,
        y,
        models=["ct"],
        folds=folds,
        n_boot=20,
        config={"ct": {"cv": 2}},
        variant_table=table,
        joint_tagging_check=True,
    )
    assert len(windows) == 4  # 2 folds x (all variants, LD-clumped inputs)
    assert all(window == "250 kb" for window, _ in windows)
    assert sorted(n for _, n in windows)[-1] == 60 and min(n for _, n in windows) < 60
