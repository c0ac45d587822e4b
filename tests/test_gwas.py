"""GWAS (deepprs.assoc, `deepprs gwas`) against stored plink2 2.00a3.5 outputs, statsmodels and brute force.

Fixtures and the exact plink2 commands: tests/data/gwas/README.md. plink2 prints 6 significant
digits, so comparisons with its files use rtol 1e-5 (print precision); comparisons with
statsmodels use 1e-6. Logistic fits agree with plink2's files at print precision too, except plink2's
Firth fit of a quasi-separated variant (~6e-4 relative; ours equals a direct maximisation of the
penalised likelihood and is checked against statsmodels / brute force).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.optimize
import statsmodels.api as sm

from deepprs.assoc import (
    binary_coding,
    fit_logistic,
    genomic_control,
    gwas_linear,
    gwas_logistic,
    read_cvblup_loco,
    read_glm,
    run_gwas,
    to_case_control,
)
from deepprs.assoc.output import format_number
from deepprs.cli.main import main
from deepprs.errors import InputError
from deepprs.io import load_cohort, open_genotypes, write_bed
from deepprs.io.bed import BedReader
from deepprs.io.genotypes import GenotypeSource
from deepprs.plots import manhattan_plot, qq_plot

DATA = Path(__file__).parent / "data" / "gwas"


def _plink2(name: str) -> pd.DataFrame:
    return read_glm(DATA / name).rename(columns={"AX": "OMITTED"})


def _neglog10(p: pd.Series) -> np.ndarray:
    return -np.log10(p.to_numpy(dtype=float))


def _compare(ours: pd.DataFrame, ref: pd.DataFrame, numeric: dict[str, float], log10p_tol: float) -> None:
    assert list(ours["ID"]) == list(ref["ID"])
    for column in ("A1", "OMITTED", "TEST", "ERRCODE"):
        assert (ours[column].astype(str).to_numpy() == ref[column].astype(str).to_numpy()).all(), column
    np.testing.assert_array_equal(ours["OBS_CT"].to_numpy(), ref["OBS_CT"].to_numpy())
    np.testing.assert_allclose(ours["A1_FREQ"], ref["A1_FREQ"], rtol=1e-5, atol=1e-6)
    for column, rtol in numeric.items():
        np.testing.assert_allclose(
            ours[column].to_numpy(float),
            ref[column].to_numpy(float),
            rtol=rtol,
            atol=1e-6 if column in ("T_STAT", "Z_STAT") else 0,
            err_msg=column,
        )
    np.testing.assert_allclose(_neglog10(ours["P"]), _neglog10(ref["P"]), atol=log10p_tol, rtol=0)


# ---------------------------------------------------------------------------------------------
# linear regression vs plink2
# ---------------------------------------------------------------------------------------------
LINEAR_CASES = [
    ("eur", None, "PHENO", "plink2_eur_nocov.PHENO.glm.linear"),
    ("eur", "eur.covar", "PHENO", "plink2_eur_cov.PHENO.glm.linear"),
    ("sim", None, "Q1", "plink2_sim_nocov.Q1.glm.linear"),
    ("sim", None, "Q2", "plink2_sim_nocov.Q2.glm.linear"),
    ("sim", "sim.covar", "Q1", "plink2_sim_cov.Q1.glm.linear"),
    ("sim", "sim.covar", "Q2", "plink2_sim_cov.Q2.glm.linear"),
]


@pytest.mark.parametrize(("prefix", "covar", "pheno", "reference"), LINEAR_CASES)
def test_linear_matches_plink2(prefix, covar, pheno, reference):
    cohort = load_cohort(
        DATA / prefix,
        pheno=DATA / f"{prefix}.pheno",
        pheno_names=[pheno],
        covar=DATA / covar if covar else None,
    )
    ours = gwas_linear(
        cohort.genotypes,
        cohort.phenotypes,
        covariates=cohort.covariates,
        sample_index=cohort.sample_index,
        progress=False,
    )[pheno]
    ref = _plink2(reference)
    _compare(ours, ref, {"BETA": 1e-5, "SE": 1e-5, "T_STAT": 1e-5}, log10p_tol=1e-4)
    assert (ours["ERRCODE"] != ".").sum() == (1 if prefix == "sim" else 0)  # the monomorphic sv7


def test_linear_several_phenotypes_one_pass_matches_plink2():
    """Q1 (complete) and Q2 (10% missing) in one call: two designs, one genotype pass."""
    cohort = load_cohort(DATA / "sim", pheno=DATA / "sim.pheno", pheno_names=["Q1", "Q2"], covar=DATA / "sim.covar")
    tables = gwas_linear(
        cohort.genotypes,
        cohort.phenotypes,
        covariates=cohort.covariates,
        sample_index=cohort.sample_index,
        block_size=64,
        progress=False,
    )
    for name in ("Q1", "Q2"):
        _compare(
            tables[name],
            _plink2(f"plink2_sim_cov.{name}.glm.linear"),
            {"BETA": 1e-5, "SE": 1e-5},
            log10p_tol=1e-4,
        )


def test_written_file_matches_plink2_text(tmp_path):
    cohort = load_cohort(DATA / "eur", pheno=DATA / "eur.pheno", pheno_names=["PHENO"], covar=DATA / "eur.covar")
    result = run_gwas(cohort, out=tmp_path / "run", plots=False, progress=False)
    ours = (tmp_path / "run.PHENO.glm.linear").read_text().splitlines()
    ref = (DATA / "plink2_eur_cov.PHENO.glm.linear").read_text().replace("\tAX\t", "\tOMITTED\t").splitlines()
    assert ours[0] == ref[0]
    assert len(ours) == len(ref)
    identical = sum(a == b for a, b in zip(ours, ref, strict=True))
    assert identical >= 0.98 * len(ref)  # the rest differ in the 6th digit of P (rounding)
    for a, b in zip(ours, ref, strict=True):
        assert a.split("\t")[:10] == b.split("\t")[:10]
    assert 0.9 < result.lambda_gc["PHENO"] < 1.1


# ---------------------------------------------------------------------------------------------
# linear regression vs statsmodels, invariances
# ---------------------------------------------------------------------------------------------
def _simulated(tmp_path, n=157, m=40, missing=0.06, seed=3):
    rng = np.random.default_rng(seed)
    dosage = rng.binomial(2, rng.uniform(0.05, 0.6, m), size=(n, m)).astype(float)
    dosage[rng.random((n, m)) < missing] = np.nan
    samples = pd.DataFrame({"fid": [f"f{i}" for i in range(n)], "iid": [f"i{i}" for i in range(n)]})
    variants = pd.DataFrame(
        {
            "chrom": np.where(np.arange(m) < m // 2, "3", "5"),
            "pos": np.arange(m) + 10,
            "id": [f"v{j}" for j in range(m)],
            "ref": "T",
            "alt": "C",
            "a1": "C",
            "cm": 0.0,
        }
    )
    write_bed(tmp_path / "sim", dosage, samples, variants)
    covariates = pd.DataFrame(rng.normal(size=(n, 3)), columns=["c1", "c2", "c3"])
    phenotypes = pd.DataFrame(
        {"y1": rng.normal(size=n) + 0.5 * np.nan_to_num(dosage[:, 1]), "y2": rng.normal(size=n) * 3 + 10}
    )
    phenotypes.loc[rng.random(n) < 0.1, "y2"] = np.nan
    return dosage, covariates, phenotypes, open_genotypes(tmp_path / "sim")


def test_linear_matches_statsmodels(tmp_path):
    dosage, covariates, phenotypes, source = _simulated(tmp_path)
    tables = gwas_linear(source, phenotypes, covariates=covariates, block_size=16, progress=False)
    for name in ("y1", "y2"):
        for j in (0, 1, 13, 39):
            used = ~np.isnan(dosage[:, j]) & phenotypes[name].notna().to_numpy()
            design = sm.add_constant(np.column_stack([covariates.to_numpy()[used], dosage[used, j]]))
            fit = sm.OLS(phenotypes[name].to_numpy()[used], design).fit()
            row = tables[name].iloc[j]
            assert row["OBS_CT"] == used.sum()
            assert row["BETA"] == pytest.approx(fit.params[-1], rel=1e-8)
            assert row["SE"] == pytest.approx(fit.bse[-1], rel=1e-8)
            assert row["T_STAT"] == pytest.approx(fit.tvalues[-1], rel=1e-8)
            assert -np.log10(row["P"]) == pytest.approx(-np.log10(fit.pvalues[-1]), abs=1e-6)
            assert row["A1_FREQ"] == pytest.approx(dosage[used, j].mean() / 2, rel=1e-12)


class WrappedSource(GenotypeSource):
    """Any non-.bed reader: exercises the generic GenotypeSource.read path."""

    def __init__(self, inner: BedReader) -> None:
        self.path, self.sample_table, self.variant_table = inner.path, inner.sample_table, inner.variant_table
        self._inner = inner

    def _read_i8(self, sample_index, variant_index):
        return self._inner._read_i8(sample_index, variant_index)


def test_block_size_and_generic_reader_do_not_change_results(tmp_path):
    _, covariates, phenotypes, source = _simulated(tmp_path)

    generic = WrappedSource(source)
    reference = gwas_linear(source, phenotypes, covariates=covariates, block_size=4096, progress=False)
    for block_size, reader in ((1, source), (7, source), (40, generic)):
        other = gwas_linear(reader, phenotypes, covariates=covariates, block_size=block_size, progress=False)
        for name in reference:
            pd.testing.assert_frame_equal(reference[name], other[name], rtol=1e-10, atol=0)
    # .pgen: pgenlib's variant-major hard calls, missing calls found from the int8 sign bits
    from deepprs.io.pgen import PgenReader, write_pgen

    write_pgen(tmp_path / "sim_pgen", source.read(dtype=np.float64), source.sample_table, source.variant_table)
    with PgenReader(tmp_path / "sim_pgen") as pgen:
        for block_size in (16, 4096):
            other = gwas_linear(pgen, phenotypes, covariates=covariates, block_size=block_size, progress=False)
            for name in reference:
                pd.testing.assert_frame_equal(reference[name], other[name], rtol=1e-10, atol=0)


@pytest.mark.parametrize("covar", [None, "sim.covar"])
def test_accelerator_order_of_work_on_the_cpu_matches_plink2(monkeypatch, covar):
    """What a CUDA run does differently (float64 digit products instead of torch._int_mm, products taken
    in the main thread instead of the prefetch workers), run on the CPU: the same numbers, and plink2's."""
    import deepprs.assoc.blocks as blocks
    import deepprs.assoc.linear as linear

    cohort = load_cohort(DATA / "sim", pheno=DATA / "sim.pheno", pheno_names=["Q1", "Q2"],
                         covar=DATA / covar if covar else None)

    def run():
        return gwas_linear(cohort.genotypes, cohort.phenotypes, covariates=cohort.covariates,
                           sample_index=cohort.sample_index, block_size=64, progress=False)

    cpu = run()
    monkeypatch.setattr(blocks, "int8_matmul", lambda device: False)
    monkeypatch.setattr(linear, "products_in_workers", lambda device: False)
    accelerator = run()
    for name in ("Q1", "Q2"):
        pd.testing.assert_frame_equal(accelerator[name], cpu[name], rtol=1e-12, atol=0)
        ref = _plink2(f"plink2_sim_{'cov' if covar else 'nocov'}.{name}.glm.linear")
        _compare(accelerator[name], ref, {"BETA": 1e-5, "SE": 1e-5, "T_STAT": 1e-5}, log10p_tol=1e-4)


def test_flipping_the_counted_allele_flips_beta(tmp_path):
    dosage, covariates, phenotypes, source = _simulated(tmp_path)
    variants = source.variant_table.copy()
    flipped_variants = variants.assign(ref=variants["alt"], alt=variants["ref"], a1=variants["ref"])
    write_bed(tmp_path / "flip", 2 - dosage, source.sample_table, flipped_variants)
    original = gwas_linear(source, phenotypes, covariates=covariates, progress=False)["y1"]
    flipped = gwas_linear(open_genotypes(tmp_path / "flip"), phenotypes, covariates=covariates, progress=False)["y1"]
    np.testing.assert_allclose(flipped["BETA"], -original["BETA"], rtol=1e-6)
    np.testing.assert_allclose(flipped["SE"], original["SE"], rtol=1e-6)
    np.testing.assert_allclose(flipped["P"], original["P"], rtol=1e-6)
    np.testing.assert_allclose(flipped["A1_FREQ"], 1 - original["A1_FREQ"], rtol=1e-12)
    assert (flipped["A1"] == "T").all() and (flipped["OMITTED"] == "C").all()


def test_null_simulation_lambda_gc(tmp_path):
    rng = np.random.default_rng(11)
    n, m = 2000, 2000
    dosage = rng.binomial(2, rng.uniform(0.05, 0.5, m), size=(n, m)).astype(np.int8)
    samples = pd.DataFrame({"fid": np.arange(n).astype(str), "iid": np.arange(n).astype(str)})
    variants = pd.DataFrame(
        {
            "chrom": "1",
            "pos": np.arange(m) + 1,
            "id": [f"v{j}" for j in range(m)],
            "ref": "A",
            "alt": "G",
            "a1": "G",
            "cm": 0.0,
        }
    )
    write_bed(tmp_path / "null", dosage, samples, variants)
    phenotypes = pd.DataFrame({"y": rng.normal(size=n)})
    covariates = pd.DataFrame({"c": rng.normal(size=n)})
    table = gwas_linear(open_genotypes(tmp_path / "null"), phenotypes, covariates=covariates, progress=False)["y"]
    lam = genomic_control(table["P"].to_numpy())
    assert 0.95 <= lam <= 1.05
    # P-values are uniform under the null: about 5% below 0.05
    assert 0.03 < (table["P"] < 0.05).mean() < 0.07


def test_constant_and_collinear_covariates_are_dropped_with_warning(tmp_path):
    _, covariates, phenotypes, source = _simulated(tmp_path)
    bad = covariates.assign(const=1.0, sum12=covariates["c1"] + 2 * covariates["c2"])
    with pytest.warns(UserWarning) as record:
        tables = gwas_linear(source, phenotypes[["y1"]], covariates=bad, progress=False)
    messages = " ".join(str(w.message) for w in record)
    assert "const" in messages and "sum12" in messages
    clean = gwas_linear(source, phenotypes[["y1"]], covariates=covariates, progress=False)
    pd.testing.assert_frame_equal(tables["y1"], clean["y1"], rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# logistic regression with Firth fallback
# ---------------------------------------------------------------------------------------------
LOGISTIC_CASES = [
    ("sim", None, "B1", "plink2_sim_nocov.B1.glm.logistic.hybrid", None),
    ("sim", "sim.covar", "B1", "plink2_sim_cov.B1.glm.logistic.hybrid", None),
    ("eur", "eur.covar", "CASE", "plink2_eur_cov.CASE.glm.logistic.hybrid", "rs140934930"),
]


@pytest.mark.parametrize(("prefix", "covar", "pheno", "reference", "firth_variant"), LOGISTIC_CASES)
def test_logistic_matches_plink2(prefix, covar, pheno, reference, firth_variant):
    cohort = load_cohort(
        DATA / prefix,
        pheno=DATA / f"{prefix}.pheno",
        pheno_names=[pheno],
        covar=DATA / covar if covar else None,
    )
    ref = _plink2(reference)
    variant_index = np.arange(len(ref))
    if prefix == "eur":  # keep the test fast: 300 variants around the one plink2 fitted by Firth
        hit = int(np.flatnonzero(ref["ID"] == firth_variant)[0])
        variant_index = np.arange(max(0, hit - 150), hit + 150)
        ref = ref.iloc[variant_index].reset_index(drop=True)
    assert binary_coding(cohort.phenotypes[pheno]) == "12"
    status = to_case_control(cohort.phenotypes[[pheno]], "12")
    ours = gwas_logistic(
        cohort.genotypes,
        status,
        covariates=cohort.covariates,
        sample_index=cohort.sample_index,
        variant_index=variant_index,
        progress=False,
    )[pheno]
    assert (ours["FIRTH?"].to_numpy() == ref["FIRTH?"].to_numpy()).all()
    assert (ours["FIRTH?"] == "Y").sum() >= 1
    # Ordinary logistic fits: OR agrees with plink2 at its print precision (6 digits) on every variant;
    # LOG(OR)_SE on all but ~1% of variants to 5e-5, the rest (sim: sv12, 7% A1 frequency) to 1e-3,
    # where statsmodels agrees with ours to 1e-6 (plink2 2.00a3.5's logistic arithmetic is partly
    # single precision). The Firth fit of a quasi-separated variant (sim: sv11) agrees to ~6e-4; ours
    # equals a direct maximisation of the penalised likelihood (test below).
    firth = ref["FIRTH?"].to_numpy() == "Y"
    plain = ~firth & ref["OR"].notna().to_numpy()
    ours_plain, ref_plain = ours[plain].reset_index(drop=True), ref[plain].reset_index(drop=True)
    _compare(ours_plain, ref_plain, {"OR": 1e-5, "LOG(OR)_SE": 1e-3}, log10p_tol=1e-3)
    se_rel = np.abs(ours_plain["LOG(OR)_SE"].to_numpy(float) / ref_plain["LOG(OR)_SE"].to_numpy(float) - 1)
    assert np.mean(se_rel > 5e-5) <= 0.01
    firth_ours, firth_ref = ours[firth].reset_index(drop=True), ref[firth].reset_index(drop=True)
    _compare(firth_ours, firth_ref, {"OR": 2e-3, "LOG(OR)_SE": 2e-3}, log10p_tol=1e-3)


def test_logistic_matches_statsmodels_and_firth_matches_brute_force():
    cohort = load_cohort(DATA / "sim", pheno=DATA / "sim.pheno", pheno_names=["B1"], covar=DATA / "sim.covar")
    status = to_case_control(cohort.phenotypes[["B1"]], "12")
    table = gwas_logistic(
        cohort.genotypes,
        status,
        covariates=cohort.covariates,
        sample_index=cohort.sample_index,
        variant_index=np.arange(16),
        progress=False,
    )["B1"]
    dosage = cohort.genotypes.read(cohort.sample_index, np.arange(16), dtype=np.float64)
    y = status["B1"].to_numpy()
    covariates = cohort.covariates.to_numpy()
    for j in (0, 3, 12):
        used = ~np.isnan(dosage[:, j])
        design = sm.add_constant(np.column_stack([covariates[used], dosage[used, j]]))
        fit = sm.Logit(y[used], design).fit(disp=0, tol=1e-12, maxiter=100)
        row = table.iloc[j]
        assert row["FIRTH?"] == "N"
        assert np.log(row["OR"]) == pytest.approx(fit.params[-1], rel=1e-6)
        assert row["LOG(OR)_SE"] == pytest.approx(fit.bse[-1], rel=1e-6)
        assert -np.log10(row["P"]) == pytest.approx(-np.log10(fit.pvalues[-1]), abs=1e-6)
    # sv11: only cases carry A1 -> quasi-separation -> Firth; maximise the penalised likelihood directly
    row = table.iloc[11]
    assert row["FIRTH?"] == "Y" and row["ERRCODE"] == "."
    design = np.column_stack([np.ones(len(y)), covariates, dosage[:, 11]])

    def negative_penalised(beta):
        eta = design @ beta
        p = 1 / (1 + np.exp(-eta))
        info = design.T @ (design * (p * (1 - p))[:, None])
        return -(np.sum(y * eta - np.logaddexp(0, eta)) + 0.5 * np.linalg.slogdet(info)[1])

    best = scipy.optimize.minimize(
        negative_penalised, np.zeros(design.shape[1]), method="BFGS", options={"gtol": 1e-9}
    ).x
    assert np.log(row["OR"]) == pytest.approx(best[-1], rel=1e-4)


def test_firth_converges_for_a_singleton_carrier():
    """One carrier among thousands: the Firth step (information matrix, not the penalised Hessian)
    overshoots ~2x and used to settle into a 2-cycle (FIRTH_CONVERGE_FAIL after 100 iterations,
    where plink2 reports an estimate). It must converge to the penalised-likelihood maximum."""
    import torch

    rng = np.random.default_rng(11)
    n = 3000
    covariates = np.column_stack([np.ones(n), rng.normal(size=(n, 3))])
    y = (rng.random(n) < 0.3).astype(float)
    for carrier_is_case in (True, False):
        g = np.zeros(n)
        g[np.flatnonzero(y == (1.0 if carrier_is_case else 0.0))[0]] = 1.0  # one heterozygous carrier
        beta, se, converged = fit_logistic(
            torch.from_numpy(covariates), torch.from_numpy(g)[None], torch.from_numpy(y),
            torch.ones(1, n, dtype=torch.float64), firth=True,
        )
        assert bool(converged[0])
        design = np.column_stack([covariates, g])

        def negative_penalised(b, design=design):
            eta = design @ b
            p = 1 / (1 + np.exp(-eta))
            info = design.T @ (design * (p * (1 - p))[:, None])
            return -(np.sum(y * eta - np.logaddexp(0, eta)) + 0.5 * np.linalg.slogdet(info)[1])

        best = scipy.optimize.minimize(negative_penalised, beta[0].numpy(), method="BFGS",
                                       options={"gtol": 1e-10}).x
        np.testing.assert_allclose(beta[0].numpy(), best, rtol=1e-6, atol=1e-7)
        assert (float(beta[0, -1]) > 0) == carrier_is_case


def test_fit_logistic_reports_non_convergence_under_separation():
    import torch

    g = torch.tensor([[0.0, 0, 0, 0, 1, 1, 1, 2]], dtype=torch.float64)
    y = torch.tensor([0.0, 0, 0, 0, 1, 1, 1, 1], dtype=torch.float64)
    intercept = torch.ones(8, 1, dtype=torch.float64)
    mask = torch.ones(1, 8, dtype=torch.float64)
    _, _, converged = fit_logistic(intercept, g, y, mask)
    assert not converged[0]
    beta, se, converged = fit_logistic(intercept, g, y, mask, firth=True)
    assert converged[0] and torch.isfinite(beta).all() and float(beta[0, 1]) > 0


# ---------------------------------------------------------------------------------------------
# LOCO cvBLUP covariate
# ---------------------------------------------------------------------------------------------
def test_cvblup_loco_covariate_is_added_per_chromosome(tmp_path):
    dosage, covariates, phenotypes, source = _simulated(tmp_path)
    rng = np.random.default_rng(5)
    loco = pd.DataFrame(
        {
            "FID": source.sample_table["fid"],
            "IID": source.sample_table["iid"],
            "3": rng.normal(size=source.n_samples),
            "5": rng.normal(size=source.n_samples),
        }
    )
    loco.to_csv(tmp_path / "trait.cvblup.loco.tsv", sep="\t", index=False)
    table = read_cvblup_loco(tmp_path / "trait", source.sample_ids)
    assert list(table.columns) == ["3", "5"]
    loco_tables = gwas_linear(
        source,
        phenotypes[["y1"]],
        covariates=covariates,
        loco_covariates=table.reset_index(drop=True),
        progress=False,
    )["y1"]
    for chrom, rows in (("3", slice(0, 20)), ("5", slice(20, 40))):
        extra = covariates.assign(loco=table[chrom].to_numpy())
        plain = gwas_linear(source, phenotypes[["y1"]], covariates=extra, progress=False)["y1"]
        pd.testing.assert_frame_equal(loco_tables.iloc[rows], plain.iloc[rows], rtol=1e-9)
    j = 25
    used = ~np.isnan(dosage[:, j])
    design = sm.add_constant(
        np.column_stack([covariates.to_numpy()[used], table["5"].to_numpy()[used], dosage[used, j]])
    )
    fit = sm.OLS(phenotypes["y1"].to_numpy()[used], design).fit()
    assert loco_tables.iloc[j]["BETA"] == pytest.approx(fit.params[-1], rel=1e-6)
    with pytest.raises(InputError, match="chromosome 5"):
        gwas_linear(source, phenotypes[["y1"]], loco_covariates=table[["3"]].reset_index(drop=True), progress=False)
    (tmp_path / "bad.cvblup.loco.tsv").write_text("IID\tX\n1\t2\n")
    with pytest.raises(InputError, match="FID IID"):
        read_cvblup_loco(tmp_path / "bad")


# ---------------------------------------------------------------------------------------------
# CLI, writers, plots
# ---------------------------------------------------------------------------------------------
def _run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "gw"
    code = _run_cli(
        [
            "gwas",
            "--bfile",
            str(DATA / "sim"),
            "--pheno",
            str(DATA / "sim.pheno"),
            "--covar",
            str(DATA / "sim.covar"),
            "--pheno-name",
            "Q1,B1",
            "--out",
            str(out),
            "--gz",
            "--quiet",
        ]
    )
    assert code == 0
    linear = read_glm(f"{out}.Q1.glm.linear.gz")
    _compare(linear, _plink2("plink2_sim_cov.Q1.glm.linear"), {"BETA": 1e-5, "SE": 1e-5}, log10p_tol=1e-4)
    with gzip.open(f"{out}.B1.glm.logistic.hybrid.gz", "rt") as handle:
        header = handle.readline().rstrip("\n").split("\t")
    assert header == [
        "#CHROM",
        "POS",
        "ID",
        "REF",
        "ALT",
        "A1",
        "OMITTED",
        "A1_FREQ",
        "FIRTH?",
        "TEST",
        "OBS_CT",
        "OR",
        "LOG(OR)_SE",
        "Z_STAT",
        "P",
        "ERRCODE",
    ]
    for suffix in ("Q1.manhattan.png", "Q1.qq.png", "B1.manhattan.png", "B1.qq.png"):
        assert Path(f"{out}.{suffix}").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = Path(f"{out}.log").read_text()
    assert "lambda GC" in log and Path(f"{out}.provenance.json").exists()


def test_cli_cvblup_covar_and_linear_only(tmp_path):
    cohort = load_cohort(DATA / "sim", pheno=DATA / "sim.pheno", pheno_names=["B1"], covar=DATA / "sim.covar")
    rng = np.random.default_rng(8)
    samples = cohort.genotypes.sample_table
    loco = pd.DataFrame(
        {
            "FID": samples["fid"],
            "IID": samples["iid"],
            "1": rng.normal(size=len(samples)),
            "2": rng.normal(size=len(samples)),
        }
    ).iloc[::-1]  # row order must not matter
    loco.to_csv(tmp_path / "trait.cvblup.loco.tsv", sep="\t", index=False)
    out = tmp_path / "loco"
    code = _run_cli(
        [
            "gwas",
            "--bfile",
            str(DATA / "sim"),
            "--pheno",
            str(DATA / "sim.pheno"),
            "--pheno-name",
            "B1",
            "--covar",
            str(DATA / "sim.covar"),
            "--cvblup-covar",
            str(tmp_path / "trait"),
            "--linear-only",
            "--no-plots",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    ours = read_glm(f"{out}.B1.glm.linear")  # 1/2 trait analysed as quantitative
    table = read_cvblup_loco(tmp_path / "trait", cohort.sample_ids).reset_index(drop=True)
    expected = gwas_linear(
        cohort.genotypes,
        cohort.phenotypes,
        covariates=cohort.covariates,
        sample_index=cohort.sample_index,
        loco_covariates=table,
        progress=False,
    )["B1"]
    np.testing.assert_allclose(ours["BETA"], expected["BETA"], rtol=1e-5)
    dosage = cohort.genotypes.read(cohort.sample_index, [300], dtype=np.float64)[:, 0]  # chromosome 2
    used = ~np.isnan(dosage)
    design = sm.add_constant(
        np.column_stack([cohort.covariates.to_numpy()[used], table["2"].to_numpy()[used], dosage[used]])
    )
    fit = sm.OLS(cohort.phenotypes["B1"].to_numpy()[used], design).fit()
    assert ours.iloc[300]["BETA"] == pytest.approx(fit.params[-1], rel=1e-5)


def test_cli_keep_restricts_samples(tmp_path):
    cohort = load_cohort(DATA / "sim", pheno=DATA / "sim.pheno", pheno_names=["Q1"])
    keep_ids = cohort.sample_ids[::2]
    (tmp_path / "keep.txt").write_text("".join(f"{fid} {iid}\n" for fid, iid in keep_ids))
    out = tmp_path / "kept"
    code = _run_cli(
        [
            "gwas",
            "--bfile",
            str(DATA / "sim"),
            "--pheno",
            str(DATA / "sim.pheno"),
            "--pheno-name",
            "Q1",
            "--keep",
            str(tmp_path / "keep.txt"),
            "--no-plots",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    ours = read_glm(f"{out}.Q1.glm.linear")
    expected = gwas_linear(
        cohort.genotypes, cohort.phenotypes.iloc[::2], sample_index=cohort.sample_index[::2], progress=False
    )["Q1"]
    assert ours["OBS_CT"].max() <= len(keep_ids)
    np.testing.assert_array_equal(ours["OBS_CT"], expected["OBS_CT"])
    np.testing.assert_allclose(ours["BETA"], expected["BETA"], rtol=1e-5)


@pytest.mark.parametrize(("threads", "genotype_format", "scans"),
                         [("1", "bed", 0), ("2", "bed", 1), ("1", "pgen", 0), ("2", "pgen", 1)])
def test_cli_background_scan_respects_threads(tmp_path, monkeypatch, threads, genotype_format, scans):
    """--threads 1 runs no second (scan) process; with 2 the .bed / .pgen scan starts before the
    imports, and the results equal plink2's."""
    import torch

    import deepprs.assoc.bedscan as bedscan
    from deepprs.io.pgen import write_pgen

    torch_threads = torch.get_num_threads()  # --threads sets torch's global pool: restore it for later tests
    started: list[str] = []
    name = f"start_{genotype_format}_scan"
    original = getattr(bedscan, name)
    monkeypatch.setattr(bedscan, name, lambda prefix, block: started.append(prefix) or original(prefix, block))
    genotypes = ["--bfile", str(DATA / "sim")]
    if genotype_format == "pgen":
        with open_genotypes(DATA / "sim") as bed:
            write_pgen(tmp_path / "sim", bed.read(dtype=np.float64), bed.sample_table, bed.variant_table)
        genotypes = ["--pfile", str(tmp_path / "sim")]
    args = ["gwas", *genotypes, "--pheno", str(DATA / "sim.pheno"), "--pheno-name", "Q1"]
    try:
        assert _run_cli([*args, "--threads", threads, "--no-plots", "--quiet", "--out", str(tmp_path / "t")]) == 0
    finally:
        torch.set_num_threads(torch_threads)
    assert len(started) == scans
    _compare(read_glm(tmp_path / "t.Q1.glm.linear").rename(columns={"AX": "OMITTED"}),
             _plink2("plink2_sim_nocov.Q1.glm.linear"), {"BETA": 1e-5, "SE": 1e-5}, log10p_tol=1e-4)


@pytest.mark.parametrize(
    ("table", "extra", "message"),
    [
        ("FID IID Y\nF0 S0 1.5\nF1 S1 abc\n", [], "non-numeric"),
        ("FID IID Y\nX0 Z0 1.5\nX1 Z1 2.5\n", [], "0 sample IDs in common"),
        ("FID IID Y Z\nF0 S0 NA 1\nF1 S1 NA 2\n", [], "missing for every sample"),
        ("FID IID Y\nF0 S0 1.5\nF1 S1 2.5\n", ["--pheno-name", "NOPE"], "NOPE"),
    ],
)
def test_cli_input_errors_exit_2_without_outputs(tmp_path, capsys, table, extra, message):
    (tmp_path / "bad.pheno").write_text(table)
    out = tmp_path / "bad"
    code = _run_cli(
        [
            "gwas",
            "--bfile",
            str(DATA / "sim"),
            "--pheno",
            str(tmp_path / "bad.pheno"),
            *extra,
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.log", "bad.pheno"]


def test_format_and_trait_detection():
    assert format_number(0.0056451) == "0.0056451"
    assert format_number(1.234567e-5) == "1.23457e-05"
    assert format_number(float("nan")) == "NA"
    assert format_number(366.0) == "366"
    assert binary_coding(pd.Series([1.0, 2.0, np.nan])) == "12"
    assert binary_coding(pd.Series([0.0, 1.0, 1.0])) == "01"
    assert binary_coding(pd.Series([0.0, 1.0, 2.0])) is None
    assert binary_coding(pd.Series([1.0, 1.0])) is None
    assert to_case_control(pd.Series([1.0, 2.0]), "12").tolist() == [0.0, 1.0]


def test_plots_write_png(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "CHROM": np.repeat(["1", "2", "10"], 50),
            "POS": np.tile(np.arange(50) * 1000, 3),
            "P": rng.uniform(size=150),
        }
    )
    manhattan_plot(table, tmp_path / "m.png")
    qq_plot(table["P"].to_numpy(), tmp_path / "q.png")
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "q.png").stat().st_size > 1000


# ---------------------------------------------------------------------------------------------
# fast kernels: byte counts and the near-identity solver, against brute force
# ---------------------------------------------------------------------------------------------
def test_bed_byte_counts_match_decoded_dosages():
    from deepprs.assoc.blocks import exclusion_mask, hom_a1_counts, missing_calls, packed_counts

    rng = np.random.default_rng(5)
    packed = rng.integers(0, 256, size=(30, 7), dtype=np.uint8)  # 28 columns
    codes = (packed[:, :, None] >> np.array([0, 2, 4, 6])) & 3  # (30, 7, 4), column 4 * byte + field
    codes = codes.reshape(30, 28)
    dosage = np.array([2, 0, 1, 0])[codes]
    missing = codes == 1
    weight = (rng.random(28) > 0.3).astype(float)
    weight[-3:] = 0  # padding columns
    used = weight > 0
    or_mask = exclusion_mask(weight)
    dosage_sum, dosage_sq_sum, n_missing = packed_counts(packed, or_mask)
    np.testing.assert_array_equal(dosage_sum, (dosage * used).sum(1))
    np.testing.assert_array_equal(dosage_sq_sum, (dosage**2 * used).sum(1))
    np.testing.assert_array_equal(n_missing, (missing & used).sum(1))
    np.testing.assert_array_equal(hom_a1_counts(packed, or_mask), ((dosage == 2) & used).sum(1))
    missing_variant, missing_sample = missing_calls(packed)
    expected_variant, expected_sample = np.nonzero(missing)  # row-major: grouped by variant
    np.testing.assert_array_equal(missing_variant, expected_variant)
    np.testing.assert_array_equal(missing_sample, expected_sample)
    # all samples used: the mask is all zero and is skipped
    full = exclusion_mask(np.ones(28))
    assert not full.any()
    np.testing.assert_array_equal(hom_a1_counts(packed, full), (dosage == 2).sum(1))


def test_gram_forms_match_numpy_for_easy_hard_and_singular_matrices():
    import torch

    from deepprs.assoc.linear import gram_forms

    rng = np.random.default_rng(6)
    k, b = 6, 40
    basis = np.linalg.qr(rng.normal(size=(500, k)))[0]
    grams = []
    for i in range(b):
        # the first half lose 2% of the rows, the rest 60%
        n_missing = 10 if i < b // 2 else 300
        rows = rng.choice(500, n_missing, replace=False)
        grams.append(np.eye(k) - basis[rows].T @ basis[rows])
    # a singular Gram matrix (the observed rows span only k - 1 directions) in the middle
    flat = basis.copy()
    flat[:, -1] = flat[:, 0]
    grams[7] = flat.T @ flat
    # an indefinite one (Cholesky rejects it, LU solves it)
    grams[30] = np.diag([1.0, -0.5, 2.0, 1.0, 1.0, 3.0])
    gram = torch.from_numpy(np.array(grams))
    rhs = torch.from_numpy(rng.normal(size=(b, k, 3)))
    # batch last; the input is kept unless overwrite=True, which gives the same forms
    gram_last, rhs_last = gram.permute(1, 2, 0).contiguous(), rhs.permute(1, 2, 0).contiguous()
    kept_gram, kept_rhs = gram_last.clone(), rhs_last.clone()
    uu, uv, vv, info = gram_forms(gram_last, rhs_last)
    torch.testing.assert_close(gram_last, kept_gram, rtol=0, atol=0)
    overwritten = gram_forms(gram_last, rhs_last, overwrite=True)
    torch.testing.assert_close(rhs_last, kept_rhs, rtol=0, atol=0)
    assert not torch.equal(gram_last, kept_gram)
    for mine, again in zip((uu, uv, vv, info), overwritten, strict=True):
        torch.testing.assert_close(mine, again, rtol=0, atol=0, equal_nan=True)
    regular = np.arange(b) != 7
    solved = np.linalg.solve(np.array(grams)[regular], rhs.numpy()[regular])
    u, v = rhs.numpy()[regular, :, 0], rhs.numpy()[regular, :, 1:]
    np.testing.assert_allclose(uu.numpy()[regular], np.einsum("bk,bk->b", u, solved[:, :, 0]), rtol=1e-12)
    np.testing.assert_allclose(uv.numpy()[regular], np.einsum("bk,bkp->bp", u, solved[:, :, 1:]), rtol=1e-11,
                               atol=1e-13)
    np.testing.assert_allclose(vv.numpy()[regular], np.einsum("bkp,bkp->bp", v, solved[:, :, 1:]), rtol=1e-12)
    assert (info.numpy()[regular] == 0).all()
    assert info.numpy()[7] != 0  # Cholesky rejects it and LU reports the zero pivot
    *_, info = gram_forms(torch.zeros(k, k, 1, dtype=torch.float64), torch.ones(k, 2, 1, dtype=torch.float64))
    assert info.item() != 0
    with pytest.raises(ValueError, match="batch-last"):  # the old (b, k, k) layout
        gram_forms(gram, rhs)


def test_decode_bytes_matches_the_byte_table_for_even_and_odd_row_widths():
    from deepprs.assoc.blocks import BYTE_TO_ZERO_FILLED, decode_bytes

    rng = np.random.default_rng(7)
    # odd and even totals, one row, and a block larger than one lookup batch (2^19 bytes)
    for rows, width in ((300, 1), (300, 2), (301, 7), (1, 1), (1, 251), (300, 250), (301, 251), (270, 2001)):
        packed = rng.integers(0, 256, size=(rows, width), dtype=np.uint8)
        out = np.full((rows, width), -1, dtype=np.int32)
        decode_bytes(packed, out)
        expected = BYTE_TO_ZERO_FILLED.numpy()[packed].reshape(rows, 4 * width)
        np.testing.assert_array_equal(out.view(np.int8), expected)
    # rows of a wider buffer (not contiguous)
    wide = rng.integers(0, 256, size=(20, 9), dtype=np.uint8)
    out = np.empty((20, 9), dtype=np.int32)[:, :5]
    decode_bytes(wide[:, :5], out)
    np.testing.assert_array_equal(out.copy().view(np.int8), BYTE_TO_ZERO_FILLED.numpy()[wide[:, :5]].reshape(20, 20))
    # every byte value once: .bed codes 00 -> 2, 01 (missing) -> 0, 10 -> 1, 11 -> 0 copies of A1
    codes = (np.arange(256)[:, None] >> np.array([0, 2, 4, 6])) & 3
    np.testing.assert_array_equal(BYTE_TO_ZERO_FILLED.numpy(), np.array([2, 0, 1, 0])[codes])


@pytest.mark.parametrize(("counted", "split"), [(False, True), (True, True), (True, False)])
def test_missing_call_sums_are_the_exact_sums_of_the_quantised_rows(counted, split):
    """Brute force with Python integers: the float32 bag sums equal the exact sum of each variant's
    quantised rows (one float64 rounding by the scale), with variants of no missing calls, of more
    calls than one bag holds (split over several bags) and of exactly one bag, and blocks whose
    variants all fit one bag each (the direct path, trailing empty bags); and they are within
    the quantisation bound (2^-34 of the column's max |value| per call) of the float64 sums."""
    import torch

    from deepprs.assoc.blocks import BAG_CALLS, DosageBlock, missing_call_sums, to_sum_digits

    rng = np.random.default_rng(3)
    n = 1200
    counts = (np.array([0, 3, BAG_CALLS, BAG_CALLS + 1, 0, 2 * BAG_CALLS + 17, 1, 900, 0]) if split
              else np.array([0, 3, BAG_CALLS, 200, 0, 17, 1, BAG_CALLS, 0]))  # one bag per variant
    variant = np.repeat(np.arange(len(counts)), counts)
    sample = np.concatenate([np.sort(rng.choice(n, size=c, replace=False)) for c in counts])
    values = np.column_stack([
        np.ones(n),                                # weights: the counts come out exact
        rng.normal(size=n) * 1e3,                  # large values
        rng.standard_cauchy(size=n),               # a wide range within one column
        np.zeros(n),                               # an all-zero column
        -rng.random(n) * 1e-6,                     # small, negative
    ])
    block = DosageBlock(np.arange(len(counts)), torch.zeros(len(counts), n, dtype=torch.int8), variant, sample,
                        missing_per_variant=counts if counted else None)
    matrix = to_sum_digits(values)
    sums = missing_call_sums(block, matrix)
    assert sums.shape == (len(counts), values.shape[1])
    np.testing.assert_array_equal(sums[:, 0], counts)

    col_max = np.abs(values).max(axis=0)
    col_max[col_max == 0] = 1.0
    quantised = [[int(v) for v in row] for row in np.rint(values / col_max * 2.0**33).astype(np.int64)]
    scale = col_max / 2.0**33
    for j in range(len(counts)):
        rows = sample[variant == j]
        for col in range(values.shape[1]):
            exact = sum(quantised[i][col] for i in rows)  # Python integers: no rounding
            assert sums[j, col] == exact * scale[col], (j, col)
            bound = len(rows) * 2.0**-34 * col_max[col] * (1 + 1e-12)
            assert abs(sums[j, col] - values[rows, col].sum()) <= bound + 1e-12 * abs(values[rows, col]).sum()
    empty = DosageBlock(np.arange(2), torch.zeros(2, n, dtype=torch.int8), np.zeros(0, np.int64), np.zeros(0, np.int64))
    np.testing.assert_array_equal(missing_call_sums(empty, matrix), np.zeros((2, values.shape[1])))


def test_word_kernels_on_row_widths_that_are_multiples_of_8():
    from deepprs.assoc.blocks import exclusion_mask, hom_a1_counts, missing_calls

    rng = np.random.default_rng(8)
    packed = rng.integers(0, 256, size=(9, 16), dtype=np.uint8)  # 64 columns: no padding copy
    codes = ((packed[:, :, None] >> np.array([0, 2, 4, 6])) & 3).reshape(9, 64)
    weight = (rng.random(64) > 0.5).astype(float)
    np.testing.assert_array_equal(hom_a1_counts(packed, exclusion_mask(weight)), ((codes == 0) & (weight > 0)).sum(1))
    np.testing.assert_array_equal(hom_a1_counts(packed, exclusion_mask(np.ones(64))), (codes == 0).sum(1))
    variant, sample = missing_calls(packed)
    expected_variant, expected_sample = np.nonzero(codes == 1)
    np.testing.assert_array_equal(variant, expected_variant)
    np.testing.assert_array_equal(sample, expected_sample)
    # every field missing: 32 calls per 64-bit word
    variant, sample = missing_calls(np.full((2, 8), 0x55, dtype=np.uint8))
    np.testing.assert_array_equal(sample, np.tile(np.arange(32), 2))
    np.testing.assert_array_equal(variant, np.repeat([0, 1], 32))


def test_int8_call_kernels_with_reused_scratch_buffers():
    """Missing-call positions and per-row counts of int8 calls, into scratch buffers larger than
    the block (as the scan and the .pgen reader reuse them), equal numpy's direct answers."""
    from deepprs.assoc.bedscan import count_equal_int8, count_scratch, negative_int8

    rng = np.random.default_rng(3)
    negative = np.empty((12, 21), dtype=np.bool_)
    equal = count_scratch(12, 21)
    assert equal.shape == (12, 24)
    for rows, columns in ((12, 21), (5, 21), (12, 7), (1, 1)):
        calls = rng.choice(np.array([-9, 0, 1, 2], dtype=np.int8), size=(rows, columns), p=[0.1, 0.4, 0.3, 0.2])
        variant, sample = negative_int8(calls, dtype=np.int32, scratch=negative)
        expected_variant, expected_sample = np.nonzero(calls < 0)
        np.testing.assert_array_equal(variant, expected_variant)
        np.testing.assert_array_equal(sample, expected_sample)
        assert variant.dtype == np.int32
        for value in (2, 0):
            np.testing.assert_array_equal(count_equal_int8(calls, value, equal), (calls == value).sum(axis=1))
    empty_variant, empty_sample = negative_int8(np.zeros((3, 4), dtype=np.int8), scratch=negative)
    assert len(empty_variant) == len(empty_sample) == 0


def test_background_pgen_scan_matches_direct_decoding(tmp_path):
    """The start-up scan of a hard-call .pgen (pgenlib in a forked child): its missing calls and
    homozygous-ALT counts, and a GWAS that takes them, equal decoding in the reader."""
    from deepprs.assoc import bedscan
    from deepprs.io.pgen import PgenReader, write_pgen

    dosage, covariates, phenotypes, bed = _simulated(tmp_path)
    write_pgen(tmp_path / "simp", dosage, bed.sample_table, bed.variant_table)
    source = PgenReader(tmp_path / "simp")
    assert not source.may_have_dosages
    reference = gwas_linear(source, phenotypes, covariates=covariates, block_size=16, progress=False)
    try:
        scan = bedscan.start_pgen_scan(tmp_path / "simp", 16)
        assert isinstance(scan, bedscan.PgenScan) and (scan.n_samples, scan.n_variants) == (157, 40)
        assert scan.wait(timeout=60) == 0
        assert scan.ready() == [0, 1, 2]
        first = bedscan.scanned_block(tmp_path / "simp.pgen", np.arange(16))
        expected_variant, expected_sample = np.nonzero(np.isnan(dosage[:, :16].T))
        np.testing.assert_array_equal(first.missing_variant, expected_variant)
        np.testing.assert_array_equal(first.missing_sample, expected_sample)
        np.testing.assert_array_equal(first.hom_a1_all, (dosage[:, :16] == 2).sum(0))

        scan = bedscan.start_pgen_scan(tmp_path / "simp", 16)
        assert scan.wait(timeout=60) == 0
        scanned = gwas_linear(source, phenotypes, covariates=covariates, block_size=16, progress=False)
        assert not scan.ready()  # every block came from the scan
    finally:
        bedscan.stop_bed_scan()
        source.close()
    for name in reference:
        pd.testing.assert_frame_equal(reference[name], scanned[name], check_exact=True)
    # a .pgen that may store dosages is tested on them: no hard-call scan
    dose = Path(__file__).parent / "data" / "gwas_dosage" / "dose"
    assert PgenReader(dose).may_have_dosages
    assert bedscan.start_pgen_scan(dose, 16) is None


def test_background_scan_serves_subsets_of_its_blocks(tmp_path):
    """Variant filters and sex-chromosome segments give blocks that are subsets of the scan's blocks
    (grid_blocks): the scan serves them, restricted to their rows, and the GWAS is unchanged."""
    from deepprs.assoc import bedscan
    from deepprs.assoc.linear import grid_blocks

    dosage, covariates, phenotypes, source = _simulated(tmp_path)   # 40 variants, scan blocks of 16
    subset = np.array([0, 2, 3, 5, 17, 18, 30, 33, 39])
    assert [b.tolist() for b in grid_blocks(subset, 16)] == [[0, 2, 3, 5], [17, 18, 30], [33, 39]]
    reference = gwas_linear(source, phenotypes, covariates=covariates, variant_index=subset, block_size=16,
                            progress=False)
    try:
        scan = bedscan.start_bed_scan(tmp_path / "sim", 16)
        assert scan.wait(timeout=60) == 0
        part = bedscan.scanned_block(tmp_path / "sim.bed", np.array([17, 18, 30]))
        packed = np.fromfile(tmp_path / "sim.bed", dtype=np.uint8)[3:].reshape(40, 40)[[17, 18, 30]]
        codes = ((packed[:, :, None] >> np.array([0, 2, 4, 6])) & 3).reshape(3, 160)
        expected_variant, expected_sample = np.nonzero(codes == 1)   # (write_bed pads with 00, like plink)
        assert (np.isnan(dosage[:, [17, 18, 30]].T) == (codes[:, :157] == 1)).all()
        np.testing.assert_array_equal(part.missing_variant, expected_variant)
        np.testing.assert_array_equal(part.missing_sample, expected_sample)
        np.testing.assert_array_equal(part.hom_a1_all, (dosage[:, [17, 18, 30]] == 2).sum(0))
        assert bedscan.scanned_block(tmp_path / "sim.bed", np.array([20])) is None   # block 1 was handed out

        scan = bedscan.start_bed_scan(tmp_path / "sim", 16)
        assert scan.wait(timeout=60) == 0
        scanned = gwas_linear(source, phenotypes, covariates=covariates, variant_index=subset, block_size=16,
                              progress=False)
        assert not scan.ready()                                      # all three blocks came from the scan
    finally:
        bedscan.stop_bed_scan()
    for name in reference:
        pd.testing.assert_frame_equal(reference[name], scanned[name], check_exact=True)


def test_background_bed_scan_matches_direct_decoding(tmp_path, monkeypatch):
    import threading
    import time

    from deepprs.assoc import bedscan

    dosage, covariates, phenotypes, source = _simulated(tmp_path)  # 157 samples: a padded last byte
    reference = gwas_linear(source, phenotypes, covariates=covariates, block_size=16, progress=False)
    try:
        scan = bedscan.start_bed_scan(tmp_path / "sim", 16)
        assert scan is not None and scan.n_samples == 157 and scan.n_variants == 40
        assert scan.wait(timeout=60) == 0  # (readers normally take what is ready and decode the rest)
        assert scan.ready() == [0, 1, 2]
        # a block that does not match the scan's bounds is not served
        assert bedscan.scanned_block(tmp_path / "sim.bed", np.arange(3, 19)) is None
        first = bedscan.scanned_block(tmp_path / "sim.bed", np.arange(16))
        packed = np.fromfile(tmp_path / "sim.bed", dtype=np.uint8)[3:].reshape(40, 40)[:16]
        codes = ((packed[:, :, None] >> np.array([0, 2, 4, 6])) & 3).reshape(16, 160)
        assert (np.isnan(dosage[:, :16].T) == (codes[:, :157] == 1)).all()
        expected_variant, expected_sample = np.nonzero(codes == 1)  # (write_bed pads with 00, like plink)
        np.testing.assert_array_equal(first.missing_variant, expected_variant)
        np.testing.assert_array_equal(first.missing_sample, expected_sample)
        np.testing.assert_array_equal(first.hom_a1_all, (dosage[:, :16] == 2).sum(0))
        assert bedscan.scanned_block(tmp_path / "sim.bed", np.arange(16)) is None  # handed out once

        scan = bedscan.start_bed_scan(tmp_path / "sim", 16)
        assert scan.wait(timeout=60) == 0
        # y1 uses every sample (scan counts used as they are); y2 misses 10% (counts recomputed)
        scanned = gwas_linear(source, phenotypes, covariates=covariates, block_size=16, progress=False)
        assert not scan.ready()  # every block came from the scan
        scratch = scan._dir
    finally:
        bedscan.stop_bed_scan()
    assert not scratch.exists()  # the scratch directory goes with the scan
    for name in reference:
        pd.testing.assert_frame_equal(reference[name], scanned[name], check_exact=True)
    # a reader that overtakes the scan decodes the blocks itself; the scan then skips them
    scan = bedscan.BedScan(tmp_path / "sim.bed", 157, 40, 16, max_ahead=1)
    try:
        deadline = time.monotonic() + 120  # until block 0 is scanned (the scan then waits: max_ahead = 1)
        while not scan.ready() and time.monotonic() < deadline:  # (a loaded CI machine may take seconds)
            threading.Event().wait(0.01)
        taken = [scan.take(tmp_path / "sim.bed", np.arange(s, min(s + 16, 40))) for s in (0, 16, 32)]
        assert taken[0] is not None  # scanned before the reader asked (max_ahead = 1 block)
        assert scan.wait(timeout=60) == 0
        assert all(block is None or block.start == 16 * i for i, block in enumerate(taken))
        assert scan.ready() in ([], [1], [2])  # at most the block being scanned when the reader passed
    finally:
        scan.close()
    # a scan whose scratch space is full stops; the reader decodes every block itself
    def full(path, arrays):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bedscan, "_write_result", full)  # (inherited by the forked child)
    try:
        scan = bedscan.start_bed_scan(tmp_path / "sim", 16)
        assert scan.wait(timeout=60) == 0 and not scan.ready() and not list(scan._dir.iterdir())
        unscanned = gwas_linear(source, phenotypes, covariates=covariates, block_size=16, progress=False)
    finally:
        bedscan.stop_bed_scan()
    for name in reference:
        pd.testing.assert_frame_equal(reference[name], unscanned[name], check_exact=True)
    # close() stops a scan that is still running and removes its files
    scan = bedscan.BedScan(tmp_path / "sim.bed", 157, 40, 1, max_ahead=1)
    scan.close()
    assert scan.exit_code is not None and not scan._dir.exists()
    (tmp_path / "bad.bed").write_bytes(b"\x00\x00\x00")
    (tmp_path / "bad.fam").write_text("a a 0 0 0 -9\n")
    assert bedscan.start_bed_scan(tmp_path / "bad", 16) is None  # the normal reader reports it


def test_linear_block_size_bounds_memory_and_scan_uses_the_same_grid(tmp_path, monkeypatch):
    """Blocks are capped at MAX_BLOCK_BYTES of int8 dosages; the start-up scan uses the same cap, so
    its blocks still match the association step's, and results do not depend on the cap."""
    from deepprs.assoc import bedscan

    assert bedscan.linear_block_size(4096, 16_384) == 4096
    assert bedscan.linear_block_size(4096, 480_000) == bedscan.MAX_BLOCK_BYTES // 480_000 == 139
    assert bedscan.linear_block_size(4096, 10**9) == 16 and bedscan.linear_block_size(8, 10) == 8
    dosage, covariates, phenotypes, source = _simulated(tmp_path)  # 157 samples, 40 variants
    reference = gwas_linear(source, phenotypes, covariates=covariates, block_size=40, progress=False)
    monkeypatch.setattr(bedscan, "MAX_BLOCK_BYTES", 157 * 16)  # -> 16 variants per block
    assert bedscan.linear_block_size(40, 157) == 16
    try:
        scan = bedscan.start_bed_scan(tmp_path / "sim", 40)
        assert scan.block_size == 16 and scan.wait(timeout=60) == 0 and scan.ready() == [0, 1, 2]
        capped = gwas_linear(source, phenotypes, covariates=covariates, block_size=40, progress=False)
        assert not scan.ready()  # every block came from the scan: same grid
    finally:
        bedscan.stop_bed_scan()
    for name in reference:
        pd.testing.assert_frame_equal(reference[name], capped[name], check_exact=True)


def test_count_equal_int8_with_a_scratch_of_the_same_padded_width_but_more_columns():
    """A scratch made for 21 columns (padded to 24) reused for 20: the flags of column 20 from the
    previous call must not be counted."""
    from deepprs.assoc.bedscan import count_equal_int8, count_scratch

    scratch = count_scratch(4, 21)
    np.testing.assert_array_equal(count_equal_int8(np.full((4, 21), 2, dtype=np.int8), 2, scratch), [21] * 4)
    np.testing.assert_array_equal(count_equal_int8(np.zeros((4, 20), dtype=np.int8), 2, scratch), [0] * 4)


def test_prefetch_blocks_starts_every_queued_read_before_building_contexts(monkeypatch):
    """With depth 2 both workers are reading before the first context is built (a slow first
    context no longer leaves the second worker idle)."""
    import threading

    from deepprs.assoc import linear

    genotypes = open_genotypes(DATA / "eur")
    started = threading.Semaphore(0)
    real_read = linear.read_dosage_block

    def counting_read(*args, **kwargs):
        started.release()
        return real_read(*args, **kwargs)

    monkeypatch.setattr(linear, "read_dosage_block", counting_read)
    both_reading = []

    def context(key):
        if not both_reading:  # the first context: wait for both reads to start
            both_reading.append(started.acquire(timeout=10) and started.acquire(timeout=10))
        return key

    tasks = [("a", np.arange(0, 10)), ("a", np.arange(10, 20)), ("a", np.arange(20, 30))]
    got = [(key, ctx, int(block.variant_index[0]))
           for key, ctx, block, _ in linear.prefetch_blocks(genotypes, tasks, context=context, depth=2, workers=2)]
    assert both_reading == [True]
    assert got == [("a", "a", 0), ("a", "a", 10), ("a", "a", 20)]


def test_prefetch_blocks_reads_while_the_context_is_built_and_stops_on_its_error():
    """Blocks come back in order with their contexts; a context that fails raises in the caller
    (the worker waiting for it stops too: no hang)."""
    import threading

    from deepprs.assoc.linear import prefetch_blocks

    genotypes = open_genotypes(DATA / "eur")
    tasks = [("a", np.arange(0, 10)), ("a", np.arange(10, 20)), ("b", np.arange(20, 25))]
    reading = threading.Event()

    def context(key):
        if key == "b":
            raise InputError("bad design for b")
        return key.upper()

    def prepare(block, ctx):
        reading.set()
        return (ctx, int(block.variant_index[0]))

    got = []
    with pytest.raises(InputError, match="bad design for b"):
        for key, ctx, block, prepared in prefetch_blocks(genotypes, tasks, context=context, prepare=prepare, depth=1):
            got.append((key, ctx, prepared, block.dosage.shape[0]))
    # one block ahead: block 3 (and its failing context) is queued once block 2 is taken
    assert got == [("a", "A", ("A", 0), 10)]
    assert reading.is_set()


@pytest.mark.parametrize(("user_setting", "expected"),
                         [(None, (False, "system")), (("1", "mimalloc"), (True, "mimalloc"))])
def test_cli_gwas_turns_huge_page_requests_off_unless_the_user_set_them(tmp_path, user_setting, expected):
    """numpy's madvise(MADV_HUGEPAGE) for big arrays and pyarrow's huge-page allocator (mimalloc) are
    off in `deepprs gwas` (page faults waited for memory compaction); NUMPY_MADVISE_HUGEPAGE and
    ARROW_DEFAULT_MEMORY_POOL set by the user win. A subprocess: both libraries read the variables
    once."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("pyarrow")
    script = (
        "import json, sys\n"
        "from deepprs.cli.main import main\n"
        f"main(['gwas', '--bfile', {str(DATA / 'sim')!r}, '--pheno', {str(DATA / 'sim.pheno')!r},\n"
        f"      '--pheno-name', 'Q1', '--no-plots', '--quiet', '--out', {str(tmp_path / 'gw')!r}])\n"
        "import numpy, pyarrow\n"
        "print(json.dumps([bool(numpy._core.multiarray._get_madvise_hugepage()),\n"
        "                  pyarrow.default_memory_pool().backend_name]))\n"
    )
    variables = ("NUMPY_MADVISE_HUGEPAGE", "ARROW_DEFAULT_MEMORY_POOL")
    env = {key: value for key, value in os.environ.items() if key not in variables}
    if user_setting is not None:
        env.update(zip(variables, user_setting, strict=True))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert tuple(json.loads(result.stdout.strip().splitlines()[-1])) == expected
    assert (tmp_path / "gw.Q1.glm.linear").exists()


@pytest.mark.parametrize("user_tuned", [False, True])
def test_keep_freed_memory_reuses_freed_blocks_instead_of_fresh_pages(user_tuned):
    """After `keep_freed_memory`, a freed 16 MB array's memory serves the next one (a handful of page
    faults instead of ~4,000 fresh pages); a user's own malloc tuning is left alone. A subprocess:
    the setting is process-wide."""
    import os
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's mallopt only")
    script = (
        "import resource, numpy as np\n"
        "from deepprs.utils.memory import keep_freed_memory\n"
        "changed = keep_freed_memory()\n"
        "def faults():\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "a = np.ones(2 << 20); del a\n"
        "before = faults(); b = np.ones(2 << 20); print(changed, faults() - before)\n"
    )
    env = {key: value for key, value in os.environ.items()
           if key not in ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    env["NUMPY_MADVISE_HUGEPAGE"] = "0"  # 4 kB pages: 4,096 faults for 16 MB of fresh memory
    if user_tuned:
        env["MALLOC_TRIM_THRESHOLD_"] = "131072"  # glibc's default trim threshold, set by hand
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    changed, faults = result.stdout.split()
    assert changed == str(not user_tuned)
    thp_always = "[always]" in (Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
                                if Path("/sys/kernel/mm/transparent_hugepage/enabled").exists() else "")
    if user_tuned and not thp_always:  # the freed 16 MB went back to the kernel: fresh 4 kB pages again
        assert int(faults) > 2000
    else:
        assert int(faults) < 200


def test_switch_interval_is_restored_after_an_error_and_when_pipelines_close_out_of_order(monkeypatch):
    """The 0.5 ms GIL switch interval lives only while blocks are prefetched: an error in the
    consumer (its traceback kept, as IPython keeps the last one) and two pipelines closed in the
    wrong order both leave the interpreter's interval as it was."""
    import sys

    from deepprs.assoc import linear

    genotypes = open_genotypes(DATA / "eur")
    phenotypes = pd.DataFrame({"y": np.random.default_rng(0).normal(size=genotypes.n_samples)})
    before = sys.getswitchinterval()

    def failing(*args, **kwargs):
        raise RuntimeError("consumer failed")

    monkeypatch.setattr(linear, "_linear_block", failing)
    with pytest.raises(RuntimeError, match="consumer failed") as caught:
        linear.gwas_linear(genotypes, phenotypes, block_size=50, progress=False)
    assert caught.value.__traceback__ is not None and sys.getswitchinterval() == before
    monkeypatch.undo()
    tasks = [("a", np.arange(0, 10)), ("a", np.arange(10, 20))]
    first, second = linear.prefetch_blocks(genotypes, tasks), linear.prefetch_blocks(genotypes, tasks)
    next(first), next(second)
    assert sys.getswitchinterval() == linear.GIL_SWITCH_SECONDS
    first.close()
    second.close()
    assert sys.getswitchinterval() == before


def test_logistic_fits_stay_within_the_design_element_bound(monkeypatch):
    """Each batched fit holds at most MAX_DESIGN_ELEMENTS (variants × samples) per working matrix;
    smaller batches give the same results."""
    from deepprs.assoc import logistic

    cohort = load_cohort(DATA / "sim", pheno=DATA / "sim.pheno", pheno_names=["B1"], covar=DATA / "sim.covar")
    status = to_case_control(cohort.phenotypes[["B1"]], "12")
    kwargs = dict(covariates=cohort.covariates, sample_index=cohort.sample_index, progress=False)
    default = gwas_logistic(cohort.genotypes, status, **kwargs)["B1"]
    sizes = []
    real_fit = logistic.fit_logistic

    def recording_fit(covariates, dosage, *args, **kw):
        sizes.append(dosage.numel())
        return real_fit(covariates, dosage, *args, **kw)

    monkeypatch.setattr(logistic, "fit_logistic", recording_fit)
    monkeypatch.setattr(logistic, "MAX_DESIGN_ELEMENTS", 7 * len(cohort.sample_index))
    small = gwas_logistic(cohort.genotypes, status, **kwargs)["B1"]
    assert sizes and max(sizes) <= 7 * len(cohort.sample_index)
    pd.testing.assert_frame_equal(small, default, rtol=1e-9)


def test_logistic_gwas_asks_malloc_to_keep_freed_memory(monkeypatch):
    """`gwas_logistic` (the Python API, not only the CLI) sets the allocator up before its Newton fits,
    whose (b, n) arrays otherwise come back as fresh pages at every step."""
    from deepprs.assoc import logistic

    calls = []
    monkeypatch.setattr(logistic, "keep_freed_memory", lambda: calls.append(True) or True)
    cohort = load_cohort(DATA / "sim", pheno=DATA / "sim.pheno", pheno_names=["B1"])
    status = to_case_control(cohort.phenotypes[["B1"]], "12")
    gwas_logistic(cohort.genotypes, status, sample_index=cohort.sample_index, variant_index=np.arange(5),
                  progress=False)
    assert calls == [True]


def test_read_packed_equals_the_memory_map_for_every_kind_of_selection():
    """`read_packed` (pread of runs and of gapped runs, the memory map for the rest) returns the same
    bytes as indexing the memory map, for consecutive, gapped, sparse, unsorted, single and empty
    selections."""
    from deepprs.assoc.blocks import read_packed

    source = open_genotypes(DATA / "sim")
    rng = np.random.default_rng(3)
    m = source.n_variants
    selections = [np.arange(5, 25), np.array([3]), np.zeros(0, dtype=np.int64),
                  np.sort(rng.choice(np.arange(10, 40), 20, replace=False)),     # gaps: span <= 2x
                  np.array([0, m // 2, m - 1]),                                   # sparse
                  np.array([7, 5, 6]),                                            # not ascending
                  np.array([-3, -2, -1])]                                         # counted from the end
    for index in selections:
        out = np.empty((len(index), source.bytes_per_variant), dtype=np.uint8)
        np.testing.assert_array_equal(read_packed(source, index, out), source.packed_variant_major(index))


def test_resolve_device_names_bad_devices(monkeypatch):
    """A device string that is not one, CUDA without a GPU, and a GPU number beyond the machine's
    GPUs are input errors that say what is wrong (not a torch error later, mid-run)."""
    import torch

    from deepprs.utils.device import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="is not a device"):
        resolve_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="no CUDA GPU is available"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(InputError, match="1 CUDA GPU"):
        resolve_device("cuda:3")


def test_predictor_check_survives_factors_with_a_zero_pivot():
    """A predictor set whose Cholesky factor has an exact zero pivot (two identical columns; the
    correlation rule switched off so the VIF rule sees it) is VIF_INFINITE with infinite VIFs, with no
    error from inverting the failed factor; a regular set in the same batch gets its VIFs."""
    import torch

    from deepprs.assoc.vif import VIF_INFINITE, correlation_checks

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    regular = torch.from_numpy(np.cov(x, rowvar=False) * 49)
    duplicated = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    assert torch.linalg.cholesky_ex(duplicated).info == 2          # the zero pivot this test is about
    code, vif = correlation_checks(torch.stack([duplicated, regular]), max_corr=1.0)
    assert code.tolist() == [VIF_INFINITE, 0]
    assert torch.isinf(vif[0]).all()
    np.testing.assert_allclose(vif[1].numpy(), np.diag(np.linalg.inv(np.corrcoef(x, rowvar=False))), rtol=1e-10)


def test_format_glm_with_a_shared_variant_prefix_writes_the_same_text():
    """The variant columns formatted once (`variant_prefix`) and reused for another phenotype's table
    give exactly the text of formatting every column, NaN rows (NA fields) included; a prefix of
    other variants is refused."""
    from deepprs.assoc.output import format_glm, same_variants, variant_prefix

    cohort = load_cohort(DATA / "sim", pheno=DATA / "sim.pheno", pheno_names=["Q1", "Q2"], covar=DATA / "sim.covar")
    tables = gwas_linear(cohort.genotypes, cohort.phenotypes, covariates=cohort.covariates,
                         sample_index=cohort.sample_index, progress=False)
    first, second = tables["Q1"], tables["Q2"].copy()
    second.loc[[0, 5], ["BETA", "SE", "T_STAT", "P"]] = np.nan     # failed tests print NA
    second.loc[[0, 5], "ERRCODE"] = "VIF_INFINITE"
    assert same_variants(first, second) and not same_variants(first, second.iloc[1:])
    prefix = variant_prefix(first)
    assert format_glm(second, prefix=prefix) == format_glm(second)
    assert "\tNA\t" in format_glm(second, prefix=prefix).splitlines()[1]
    with pytest.raises(ValueError, match="prefix"):
        format_glm(second.iloc[1:], prefix=prefix)
