"""Extra model inputs (deepprs.evaluate.features): external PRS weights and the in-fold cvBLUP.

Truths: plink2 ``--score`` BETA_SUM of a stored weights file (every 5th weight names the .bim REF
allele, so flips are exercised; tests/data/prs/README.md); a brute-force score with mean imputation
and flips; the cvBLUP of the training fold must not change when test phenotypes change (no leakage),
and its training column must equal the leave-one-out cvBLUP of a fit on the training samples alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepprs.cli.main import main
from deepprs.errors import InputError
from deepprs.evaluate.benchmark import run_benchmark
from deepprs.evaluate.data import load_prs_data
from deepprs.evaluate.features import cvblup_feature, external_score, read_score_weights
from deepprs.io import PackedGenotypes
from deepprs.lmm import CvBLUP
from deepprs.models.linear import RidgePRS
from deepprs.train.cv import make_folds

DATA = Path(__file__).parent / "data" / "prs"
PREFIX = str(DATA / "eur_chr22")
PHENO = str(DATA / "eur_chr22.pheno")


pytestmark = pytest.mark.usefixtures("one_blas_thread")  # see conftest.py


@pytest.fixture(scope="module")
def prs_data():
    return load_prs_data(PREFIX, pheno=PHENO, pheno_name="PHENO")


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def test_external_score_equals_plink2_score_sum(prs_data):
    weights = read_score_weights(DATA / "weights.plink.txt")
    score, report = external_score(prs_data.genotypes, prs_data.variant_table, weights)
    reference = pd.read_csv(DATA / "plink2_weights.sscore", sep="\t").set_index("IID")["BETA_SUM"]
    iids = prs_data.sample_ids.get_level_values("IID")
    np.testing.assert_allclose(score, reference.loc[iids].to_numpy(), rtol=1e-5, atol=1e-5)
    assert report["matched"] == 1500 and report["flipped"] >= 250 and report["absent"] == 0


def test_external_score_brute_force_with_missing_flips_and_unmatched():
    rng = np.random.default_rng(0)
    dosage = rng.binomial(2, 0.3, (50, 6)).astype(float)
    dosage[rng.random(dosage.shape) < 0.1] = np.nan
    table = pd.DataFrame({"id": [f"v{j}" for j in range(6)], "a1": list("ACGTAC"), "ref": list("GTCAGA")})
    weights = pd.DataFrame(
        {
            "ID": ["v0", "v1", "v2", "v3", "v9", "v5"],
            "A1": ["A", "T", "G", "A", "A", "T"],  # v1 and v3 flipped (A1 = ref), v9 absent, v5 mismatch
            "BETA": [0.5, -1.0, 2.0, 0.25, 9.0, 9.0],
        }
    )
    score, report = external_score(dosage, table, weights, chunk=2)
    filled = np.where(np.isnan(dosage), np.nanmean(dosage, axis=0), dosage)
    expected = 0.5 * filled[:, 0] - 1.0 * (2 - filled[:, 1]) + 2.0 * filled[:, 2] + 0.25 * (2 - filled[:, 3])
    np.testing.assert_allclose(score, expected, rtol=1e-12)
    assert report == {"n_weights": 6, "matched": 4, "flipped": 2, "absent": 1, "allele_mismatch": 1}
    packed = PackedGenotypes.from_dosage(np.where(np.isnan(dosage), -1, dosage).astype(np.int8))
    np.testing.assert_allclose(external_score(packed, table, weights)[0], expected, rtol=1e-12)


def test_read_score_weights_errors(tmp_path):
    path = tmp_path / "w.txt"
    path.write_text("SNP\tA1\tWEIGHT\nrs1\ta\t0.5\n")
    assert read_score_weights(path).to_dict("list") == {"ID": ["rs1"], "A1": ["A"], "BETA": [0.5]}
    path.write_text("ID\tA1\nrs1\tA\n")
    with pytest.raises(InputError, match="no BETA column"):
        read_score_weights(path)
    path.write_text("ID\tA1\tBETA\nrs1\tA\tbig\n")
    with pytest.raises(InputError, match="non-numeric weight 'big'"):
        read_score_weights(path)
    path.write_text("ID\tA1\tBETA\nrs1\tA\t1\nrs1\tA\t2\n")
    with pytest.raises(InputError, match="duplicate variant ID 'rs1'"):
        read_score_weights(path)
    table = pd.DataFrame({"id": ["x"], "a1": ["A"], "ref": ["G"]})
    with pytest.raises(InputError, match="no variant matched"):
        external_score(np.zeros((3, 1)), table, pd.DataFrame({"ID": ["rs1"], "A1": ["A"], "BETA": [1.0]}))


def test_cvblup_feature_is_in_fold(prs_data):
    y = prs_data.phenotype
    n = len(y)
    folds = make_folds(prs_data.sample_ids, 4, 0)
    train, test = np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)
    train_feature, test_feature, h2 = cvblup_feature(prs_data.genotypes, y, train, test)
    assert train_feature.shape == (len(train),) and test_feature.shape == (len(test),) and 0 <= h2 <= 1
    # the same as a cvBLUP fitted on the training samples alone: LOO column for them, BLUP for the test rows
    alone = CvBLUP().fit(prs_data.genotypes, y[train], sample_index=train)
    np.testing.assert_allclose(train_feature, alone.cvblup_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(test_feature, alone.predict(prs_data.genotypes, sample_index=test), rtol=1e-10)
    # no test phenotype enters either column
    shuffled = y.copy()
    shuffled[test] = np.random.default_rng(1).normal(size=len(test)) * 10
    again = cvblup_feature(prs_data.genotypes, shuffled, train, test)
    np.testing.assert_array_equal(again[0], train_feature)
    np.testing.assert_array_equal(again[1], test_feature)
    assert n == len(train) + len(test)


def test_harness_appends_the_features_as_covariates(prs_data, monkeypatch):
    seen: list[tuple[int, np.ndarray]] = []
    original_fit = RidgePRS.fit

    def spy_fit(self, X, y, *, covariates=None):
        seen.append((len(y), None if covariates is None else np.array(covariates)))
        return original_fit(self, X, y, covariates=covariates)

    monkeypatch.setattr(RidgePRS, "fit", spy_fit)
    weights = read_score_weights(DATA / "weights.plink.txt")
    folds = make_folds(prs_data.sample_ids, 2, 0)
    result = run_benchmark(
        prs_data.genotypes,
        prs_data.phenotype,
        models=["ridge"],
        folds=folds,
        variant_table=prs_data.variant_table,
        n_boot=20,
        score_weights={"published": weights},
        cvblup_feature=True,
    )
    score = external_score(prs_data.genotypes, prs_data.variant_table, weights)[0]
    assert len(seen) == 2
    for fold, (n_train, covariates) in zip(np.unique(folds), seen, strict=True):
        train = np.flatnonzero(folds != fold)
        assert n_train == len(train) and covariates.shape == (len(train), 2)
        np.testing.assert_allclose(covariates[:, 0], score[train])
        expected = cvblup_feature(prs_data.genotypes, prs_data.phenotype, train, np.flatnonzero(folds == fold))[0]
        np.testing.assert_allclose(covariates[:, 1], expected)
    assert result.settings["score_weights"] == ["published"] and result.settings["cvblup_feature"] is True


def test_cli_benchmark_with_features(tmp_path):
    out = tmp_path / "bench"
    args = ["benchmark", "--bfile", PREFIX, "--pheno", PHENO, "--pheno-name", "PHENO", "--models", "ridge"]
    args += ["--folds", "2", "--n-boot", "20", "--quiet", "--out", str(out)]
    assert run_cli([*args, "--score-weights", str(DATA / "weights.plink.txt"), "--cvblup-feature"]) == 0
    settings = json.loads((out / "benchmark.json").read_text())
    assert settings["score_weights"] == ["weights.plink.txt"] and settings["cvblup_feature"] is True
    log = (out / "benchmark.log").read_text()
    assert "external score weights.plink.txt: 1500 of 1500 weights used" in log
    assert "in-fold cvBLUP feature" in log
    bad = tmp_path / "bad.txt"
    bad.write_text("ID\tA1\nrs1\tA\n")
    assert run_cli([*args[:-1], str(tmp_path / "bench_bad"), "--score-weights", str(bad)]) == 2
    assert not (tmp_path / "bench_bad" / "results.tsv").exists()


def test_fit_bundle_carries_the_extra_inputs_to_predict(tmp_path, prs_data):
    """`fit --score-weights --cvblup-feature` saves the inputs' weights; `predict` rebuilds them for new samples."""
    from deepprs.models.bundle import load_model

    out = tmp_path / "ridge"
    args = ["fit", "--bfile", PREFIX, "--pheno", PHENO, "--pheno-name", "PHENO", "--model", "ridge"]
    args += ["--score-weights", str(DATA / "weights.plink.txt"), "--cvblup-feature", "--quiet", "--out", str(out)]
    assert run_cli(args) == 0
    record = json.loads((out / "model.json").read_text())
    assert [f["name"] for f in record["features"]] == ["weights.plink.txt", "cvblup"]
    assert (out / "feature0.tsv").exists() and (out / "feature1.tsv").exists()
    predict = ["predict", "--model", str(out), "--bfile", PREFIX, "--keep-ambiguous", "--quiet"]
    assert run_cli([*predict, "--out", str(tmp_path / "pred")]) == 0  # same file: keep A/T, C/G variants
    predicted = pd.read_csv(tmp_path / "pred.sscore", sep="\t").set_index("IID")["SCORE"]
    # independent reconstruction: plink2's BETA_SUM and the in-sample BLUP of a fresh LMM fit on all samples
    plink2_sum = pd.read_csv(DATA / "plink2_weights.sscore", sep="\t").set_index("IID")["BETA_SUM"]
    lmm = CvBLUP().fit(prs_data.genotypes, prs_data.phenotype)
    iids = prs_data.sample_ids.get_level_values("IID")
    inputs = np.column_stack([plink2_sum.loc[iids].to_numpy(), lmm.blup_])
    model, _ = load_model(out)
    expected = model.predict(prs_data.genotypes, covariates=inputs)
    np.testing.assert_allclose(predicted.loc[iids].to_numpy(), expected, rtol=1e-4, atol=1e-6)
    assert "model input cvblup" in (tmp_path / "pred.log").read_text()
