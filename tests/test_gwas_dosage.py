"""GWAS on dosage data (.pgen with dosages, BGEN): the dosages themselves are tested, as plink2 --glm
does, not hard calls. Fixtures and the plink2 commands: tests/data/gwas_dosage/README.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from deepprs.assoc.blocks import uses_dosages
from deepprs.assoc.linear import gwas_linear
from deepprs.assoc.logistic import gwas_logistic
from deepprs.assoc.output import read_glm, to_case_control
from deepprs.io import load_cohort

DATA = Path(__file__).parent / "data" / "gwas_dosage"


def _cohort(file_format: str, pheno: str):
    path = DATA / ("dose.bgen" if file_format == "bgen" else "dose")
    return load_cohort(path, file_format=file_format, pheno=DATA / "dose.pheno", pheno_names=[pheno],
                       covar=DATA / "dose.covar")


def _linear(cohort):
    return gwas_linear(cohort.genotypes, cohort.phenotypes, covariates=cohort.covariates,
                       sample_index=cohort.sample_index, progress=False)["Q"]


def _assert_matches_plink2(ours: pd.DataFrame, ref: pd.DataFrame, effect: str) -> None:
    assert (ours["ID"].to_numpy() == ref["ID"].to_numpy()).all() and (ours["A1"] == ref["A1"]).all()
    assert (ours["OBS_CT"].to_numpy() == ref["OBS_CT"].to_numpy()).all()
    assert (ours["ERRCODE"].to_numpy() == ref["ERRCODE"].to_numpy()).all()
    # plink2 prints 6 significant digits
    np.testing.assert_allclose(ours[effect], ref[effect], rtol=2e-5)
    np.testing.assert_allclose(-np.log10(ours["P"]), -np.log10(ref["P"]), atol=1e-4)


def test_pgen_dosages_match_plink2_linear_and_logistic():
    cohort = _cohort("pgen", "Q")
    assert uses_dosages(cohort.genotypes)
    _assert_matches_plink2(_linear(cohort), read_glm(DATA / "plink2_pgen.Q.glm.linear"), "BETA")
    binary = _cohort("pgen", "CC")
    status = to_case_control(binary.phenotypes[["CC"]], "12")
    logistic = gwas_logistic(binary.genotypes, status, covariates=binary.covariates,
                             sample_index=binary.sample_index, progress=False)["CC"]
    _assert_matches_plink2(logistic, read_glm(DATA / "plink2_pgen.CC.glm.logistic.hybrid"), "OR")


@pytest.mark.parametrize("file_format", ["pgen", "bgen"])
def test_linear_on_dosages_equals_statsmodels(file_format):
    """Independent truth: OLS of y on [1, C, dosage] over the samples with a dosage."""
    cohort = _cohort(file_format, "Q")
    table = _linear(cohort)
    dosage = cohort.genotypes.read(cohort.sample_index, None, dtype=np.float64)
    assert np.nanmax(np.abs(dosage - np.round(dosage))) > 0.1  # really fractional
    y = cohort.phenotypes["Q"].to_numpy()
    covariates = cohort.covariates.to_numpy()
    for j in (0, 3, 17, 29):
        used = ~np.isnan(dosage[:, j])
        fit = sm.OLS(y[used], sm.add_constant(np.column_stack([covariates[used], dosage[used, j]]))).fit()
        row = table.iloc[j]
        assert row["OBS_CT"] == used.sum()
        assert row["BETA"] == pytest.approx(fit.params[-1], rel=1e-8)
        assert row["SE"] == pytest.approx(fit.bse[-1], rel=1e-8)
        assert row["P"] == pytest.approx(fit.pvalues[-1], rel=1e-6)


def test_bgen_matches_plink2_once_dosages_are_rounded_like_its_import(monkeypatch):
    """plink2 rounds BGEN dosages to 1/16384 when it imports them; with the same rounding the
    numbers agree at print precision (without it, BETA differs by up to ~5e-4 relative here)."""
    exact = _linear(_cohort("bgen", "Q"))
    ref = read_glm(DATA / "plink2_bgen.Q.glm.linear")
    assert np.nanmax(np.abs(exact["BETA"] / ref["BETA"] - 1)) > 2e-5  # the rounding is visible
    from deepprs.io.bgen import BgenReader

    read = BgenReader.read_dosage_calls

    def rounded_like_plink2(self, index, out=None):
        dosage, missing_variant, missing_sample = read(self, index, out)
        np.round(dosage * 16384, out=dosage)
        dosage /= 16384
        return dosage, missing_variant, missing_sample

    monkeypatch.setattr(BgenReader, "read_dosage_calls", rounded_like_plink2)
    _assert_matches_plink2(_linear(_cohort("bgen", "Q")), ref, "BETA")
