"""Sex chromosomes in GWAS follow plink2 --glm: chrX gets a SEX covariate and drops unknown sex when both
sexes are present, chrY is tested in males only (skipped without males), chrY/chrM genotypes count haploid
copies, XY is autosomal, and chromosome codes are printed as plink2 prints them. Fixtures and the plink2
commands: tests/data/gwas_sexchr/make_fixtures.py."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from deepprs.assoc.design import chromosome_class, plink_chromosome
from deepprs.assoc.output import read_glm
from deepprs.cli.main import main

DATA = Path(__file__).parent / "data" / "gwas_sexchr"


def _fileset(tmp_path: Path, bim: str, fam: str) -> Path:
    prefix = tmp_path / f"{bim}_{fam}"
    shutil.copy(DATA / "sexchr.bed", f"{prefix}.bed")
    shutil.copy(DATA / f"{bim}.bim", f"{prefix}.bim")
    shutil.copy(DATA / f"{fam}.fam", f"{prefix}.fam")
    return prefix


def _gwas(tmp_path: Path, bim: str, fam: str, pheno: str, covar: bool) -> pd.DataFrame:
    prefix = _fileset(tmp_path, bim, fam)
    out = tmp_path / f"ours_{bim}_{fam}_{pheno}"
    argv = ["gwas", "--bfile", str(prefix), "--pheno", str(DATA / "sexchr.pheno"), "--pheno-name", pheno,
            "--no-plots", "--quiet", "--out", str(out)]
    if covar:
        argv += ["--covar", str(DATA / "sexchr.covar")]
    try:
        main(argv)
    except SystemExit as exit_info:
        assert not exit_info.code, exit_info.code
    suffix = "glm.logistic.hybrid" if pheno == "CC" else "glm.linear"
    return read_glm(f"{out}.{pheno}.{suffix}")


def _plink2(name: str, pheno: str) -> pd.DataFrame:
    suffix = "glm.logistic.hybrid" if pheno == "CC" else "glm.linear"
    table = read_glm(DATA / f"plink2_{name}.{pheno}.{suffix}")
    return table[table["TEST"] == "ADD"].reset_index(drop=True)


@pytest.mark.filterwarnings("ignore:skipping 8 chrY variant")  # the all-unknown-sex case; tested below
@pytest.mark.parametrize("bim, fam, pheno, covar, name", [
    ("letters", "mixed", "Q", False, "letters_mixed"),
    ("letters", "mixed", "Q", True, "letters_mixed_covar"),
    ("numeric", "mixed", "Q", False, "numeric_mixed"),
    ("prefixed", "mixed", "Q", False, "prefixed_mixed"),
    ("letters", "unknown", "Q", False, "letters_unknown"),
    ("letters", "males", "Q", False, "letters_males"),
    ("letters", "known", "Q", True, "letters_known_covar"),
])
def test_linear_matches_plink2_on_sex_chromosomes(tmp_path, bim, fam, pheno, covar, name):
    ours, ref = _gwas(tmp_path, bim, fam, pheno, covar), _plink2(name, pheno)
    assert ours["ID"].tolist() == ref["ID"].tolist()              # chrY rows are absent exactly when plink2's are
    assert ours["CHROM"].astype(str).tolist() == ref["CHROM"].astype(str).tolist()
    assert (ours["OBS_CT"].to_numpy() == ref["OBS_CT"].to_numpy()).all()
    assert (ours["ERRCODE"].to_numpy() == ref["ERRCODE"].to_numpy()).all()
    np.testing.assert_allclose(ours["A1_FREQ"], ref["A1_FREQ"], atol=1e-6)
    for column in ("BETA", "SE"):                                  # plink2 prints 6 significant digits
        np.testing.assert_allclose(ours[column], ref[column], rtol=2e-5)
    np.testing.assert_allclose(-np.log10(ours["P"]), -np.log10(ref["P"]), atol=1e-4)
    log = " ".join((tmp_path / f"ours_{bim}_{fam}_{pheno}.log").read_text().split())
    assert ("chrX: SEX added as a covariate" in log) == (fam in ("mixed", "known"))   # the log says what was done
    assert ("chrY: tested in the" in log) == (fam != "unknown")


def test_logistic_matches_plink2_on_sex_chromosomes(tmp_path):
    ours, ref = _gwas(tmp_path, "letters", "mixed", "CC", True), _plink2("letters_mixed_covar", "CC")
    assert ours["ID"].tolist() == ref["ID"].tolist()
    assert (ours["OBS_CT"].to_numpy() == ref["OBS_CT"].to_numpy()).all()
    assert (ours["FIRTH?"].to_numpy() == ref["FIRTH?"].to_numpy()).all()
    assert (ours["ERRCODE"].to_numpy() == ref["ERRCODE"].to_numpy()).all()
    firth = ref["FIRTH?"].to_numpy() == "Y"
    np.testing.assert_allclose(ours["OR"][~firth], ref["OR"][~firth], rtol=2e-5)
    np.testing.assert_allclose(ours["OR"][firth], ref["OR"][firth], rtol=5e-4)   # plink2's Firth fit: ~2.6e-4
    np.testing.assert_allclose(ours["LOG(OR)_SE"][~firth], ref["LOG(OR)_SE"][~firth], rtol=1e-3)


def test_sex_chromosome_rules_against_statsmodels(tmp_path):
    """Independent truth: OLS with the rules written out (no plink2 involved)."""
    from deepprs.assoc.linear import gwas_linear
    from deepprs.io import load_cohort

    cohort = load_cohort(_fileset(tmp_path, "letters", "mixed"), pheno=DATA / "sexchr.pheno", pheno_names=["Q"])
    ours = gwas_linear(cohort.genotypes, cohort.phenotypes, sample_index=cohort.sample_index, progress=False)["Q"]
    assert (cohort.sample_index == np.arange(cohort.genotypes.n_samples)).all()
    sex = pd.read_csv(DATA / "mixed.fam", sep="\t", header=None)[4].to_numpy()
    y = pd.read_csv(DATA / "sexchr.pheno", sep="\t")["Q"].to_numpy()
    dosage = cohort.genotypes.read(dtype=np.float64)
    chrom = ours["CHROM"].astype(str).to_numpy()
    for j in (np.flatnonzero(chrom == "X")[0], np.flatnonzero(chrom == "Y")[0], np.flatnonzero(chrom == "MT")[0],
              np.flatnonzero(chrom == "XY")[0]):
        x = dosage[:, j]
        called = ~np.isnan(x)
        if chrom[j] == "X":        # SEX covariate, unknown sex dropped
            used = called & (sex > 0)
            design = np.column_stack([x[used], np.where(sex[used] == 1, 1.0, 2.0)])
        elif chrom[j] == "Y":      # males, haploid 0/1
            used = called & (sex == 1)
            design = x[used, None] / 2
        elif chrom[j] == "MT":     # everyone, haploid 0/1
            used = called
            design = x[used, None] / 2
        else:                      # XY: autosomal
            used = called
            design = x[used, None]
        fit = sm.OLS(y[used], sm.add_constant(design)).fit()
        row = ours.iloc[j]
        assert row["OBS_CT"] == used.sum()
        assert row["BETA"] == pytest.approx(fit.params[1], rel=1e-7, abs=1e-7 * fit.bse[1])
        assert row["SE"] == pytest.approx(fit.bse[1], rel=1e-8)
        assert row["P"] == pytest.approx(fit.pvalues[1], rel=1e-6)


def test_chromosome_codes():
    codes = np.array(["1", "chr2", "X", "chrX", "23", "x", "Y", "24", "XY", "25", "chrXY", "MT", "M", "chrM", "26",
                      "6_ssto_hap7", "01", "023", "chr09", "0"])
    assert plink_chromosome(codes).tolist() == ["1", "2", "X", "X", "X", "X", "Y", "Y", "XY", "XY", "XY", "MT", "MT",
                                                "MT", "MT", "6_ssto_hap7", "1", "X", "9", "0"]
    assert chromosome_class(codes).tolist() == ["", "", "X", "X", "X", "X", "Y", "Y", "", "", "", "MT", "MT", "MT",
                                                "MT", "", "", "X", "", ""]


def test_chry_without_males_is_skipped_with_a_warning(tmp_path):
    from deepprs.assoc.linear import gwas_linear
    from deepprs.io import load_cohort

    cohort = load_cohort(_fileset(tmp_path, "letters", "unknown"), pheno=DATA / "sexchr.pheno", pheno_names=["Q"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = gwas_linear(cohort.genotypes, cohort.phenotypes, sample_index=cohort.sample_index,
                            progress=False)["Q"]
    assert any("skipping 8 chrY variant(s): no analysed sample is male" in str(w.message) for w in caught)
    assert "Y" not in set(table["CHROM"].astype(str)) and len(table) == 40
    # nothing but chrY and no male: an error, as plink2's "No variants remaining", not an empty file
    from deepprs.errors import InputError

    with pytest.raises(InputError, match="all 8 are on chrY and no analysed sample is male"):
        gwas_linear(cohort.genotypes, cohort.phenotypes, sample_index=cohort.sample_index, progress=False,
                    variant_index=np.flatnonzero(cohort.genotypes.variant_table["chrom"].to_numpy() == "Y"))
