"""Acceptance checks of the mixed-model issue against peer tools and simulation truth.

1. REML h² agrees with ``bolt --reml`` within 0.01 (and with GEMMA to 1e-5) on a simulated cohort of
   2,000 samples × 6,000 SNPs. Only BOLT's and GEMMA's outputs are stored (tests/data/lmm_bolt/); the
   genotypes are regenerated from a seed with deepprs' simulator and checked against the SHA-256 of
   the ``.bed`` that BOLT and GEMMA read.
2. cvBLUP-adjusted GWAS (``deepprs cvblup --loco`` then ``deepprs gwas --cvblup-covar``) has a higher
   mean χ² at causal variants than the unadjusted GWAS, and λGC stays ≈ 1 at null variants and
   under a null phenotype.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from deepprs.cli.main import main
from deepprs.io import open_genotypes, write_bed
from deepprs.lmm import EigenGRM, fit_reml, grm
from deepprs.simulate import InMemoryGenotypes, simulate_genotypes, simulate_trait

DATA = Path(__file__).parent / "data" / "lmm_bolt"
# SHA-256 of the .bed that BOLT-LMM and GEMMA read (tests/data/lmm_bolt/README.md)
BED_SHA256 = "538b7aa85cf87c1e0dc8bcc680c46206a53351f078a42211164d7a536ec2adbc"
CHI2_MEDIAN = stats.chi2.ppf(0.5, 1)  # 0.4549…


def _load_fixture_module():
    spec = importlib.util.spec_from_file_location("lmm_bolt_make_fixture", DATA / "make_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bolt_h2(name: str, folder: Path = DATA / "bolt", prefix: str = "bolt_") -> tuple[float, float]:
    """Final ``h2g (1,1): value (SE)`` of the ``bolt --reml`` log ``folder/{prefix}{name}.out``."""
    text = (folder / f"{prefix}{name}.out").read_text()
    value, se = re.findall(r"h2g \(1,1\): ([0-9.]+) \(([0-9.]+)\)", text)[-1]
    return float(value), float(se)


def gemma_null(trait: str) -> dict[str, float]:
    """pve, se(pve) and REML log-likelihood of the null model from a GEMMA ``-lmm`` log."""
    text = (DATA / "gemma" / f"sim_{trait}.log.txt").read_text()
    keys = {
        "pve": "pve estimate in the null model",
        "se_pve": r"se\(pve\) in the null model",
        "loglik": "REMLE log-likelihood in the null model",
    }
    return {k: float(re.search(rf"## {pattern} =\s*(\S+)", text).group(1)) for k, pattern in keys.items()}


def lambda_gc(chi2: np.ndarray) -> float:
    """Genomic-control λ = median χ² / median of χ²(1)."""
    return float(np.median(chi2) / CHI2_MEDIAN)


def read_chi2(path: Path) -> pd.DataFrame:
    """``ID`` and ``CHI2 = T_STAT²`` of a ``.glm.linear`` file."""
    table = pd.read_csv(path, sep="\t")
    return pd.DataFrame({"ID": table["ID"].astype(str), "CHI2": table["T_STAT"].to_numpy(float) ** 2})


@pytest.fixture(scope="module", autouse=True)
def single_thread_fixture():
    """One BLAS/torch thread: on a shared 2-core machine oversubscribed threads slow eigh a lot."""
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(previous)


# -- 1. BOLT-REML / GEMMA agreement at N = 2,000 ------------------------------------------------------
@pytest.fixture(scope="module")
def bolt_cohort(tmp_path_factory):
    """Regenerated cohort (checked against the stored .bed hash), its GRM eigendecomposition, phenotypes."""
    fixture = _load_fixture_module()
    dosage, sample_table, variant_table, pheno = fixture.simulate_cohort()
    prefix = tmp_path_factory.mktemp("lmm_bolt") / "sim"
    write_bed(prefix, dosage, sample_table, variant_table)
    digest = fixture.bed_sha256(f"{prefix}.bed")
    assert digest == BED_SHA256, (
        "deepprs.simulate.simulate_genotypes (or write_bed) changed: the regenerated .bed is not the one BOLT "
        "and GEMMA read; re-run the commands of tests/data/lmm_bolt/README.md and update BED_SHA256"
    )
    eigen = EigenGRM.from_grm(grm(dosage.astype(np.float64)))
    return eigen, pheno


@pytest.mark.parametrize("trait", ["SIM1", "SIM2", "SIM3"])
def test_reml_h2_within_001_of_bolt_reml_and_equal_to_gemma(bolt_cohort, trait):
    eigen, pheno = bolt_cohort
    fit = fit_reml(eigen, pheno[trait].to_numpy())
    gemma = gemma_null(trait)
    # exact REML: GEMMA prints 6 significant digits
    assert fit.h2 == pytest.approx(gemma["pve"], abs=1e-5)
    assert fit.h2_se == pytest.approx(gemma["se_pve"], rel=1e-4)
    assert fit.loglik == pytest.approx(gemma["loglik"], abs=0.01)
    # BOLT-REML (Monte-Carlo REML, 100 trials, deterministic): the tolerance of 0.01
    bolt_value, bolt_se = bolt_h2(trait)
    assert abs(fit.h2 - bolt_value) < 0.01
    assert fit.h2_se == pytest.approx(bolt_se, rel=0.05)


def test_bolt_monte_carlo_spread_at_2000_samples_is_below_001(bolt_cohort):
    """Four shuffled copies of the cohort (independent BOLT Monte-Carlo runs): spread well below 0.01."""
    eigen, pheno = bolt_cohort
    exact = fit_reml(eigen, pheno["SIM1"].to_numpy()).h2
    draws = np.array([bolt_h2(name)[0] for name in ["SIM1", *(f"SIM1_copy{k}" for k in range(1, 5))]])
    assert len(np.unique(draws)) == 5
    assert np.abs(draws - exact).max() < 0.01
    assert draws.std(ddof=1) < 0.006  # observed 0.0045
    assert abs(draws.mean() - exact) < 0.003  # observed 0.0003: no bias


def test_bolt_offset_on_the_370_sample_fixture_is_monte_carlo_noise():
    """tests/data/lmm's single BOLT runs sit 0.02-0.03 above exact REML: Monte-Carlo noise of ~0.02 at N = 370.

    BOLT-REML has no seed option but is deterministic given its input; the 8 copies in eur_orders/ have
    samples and variants shuffled (make_eur_orders.py), so they are independent Monte-Carlo runs, while
    exact REML does not depend on the order.
    """
    eur = Path(__file__).parent / "data" / "lmm"
    pheno = pd.read_csv(eur / "eur_lmm.pheno", sep="\t")
    eigen = EigenGRM.from_grm(grm(open_genotypes(eur / "eur_lmm")))
    for trait in ("SIM", "SIM2"):
        exact = fit_reml(eigen, pheno[trait].to_numpy()).h2
        original = bolt_h2(f"bolt_{trait}", folder=eur / "bolt", prefix="")[0]
        draws = np.array([bolt_h2(f"{trait}_order{k}", folder=DATA / "eur_orders")[0] for k in range(1, 9)])
        draws = np.append(draws, original)
        assert len(np.unique(draws)) == 9  # genuinely different Monte-Carlo runs
        mc_sd = draws.std(ddof=1)
        assert 0.01 < mc_sd < 0.04  # one run's MC noise alone exceeds the 0.01 at N = 370 ...
        assert abs(draws.mean() - exact) < 3 * mc_sd / np.sqrt(len(draws))  # ... but BOLT is unbiased
        assert 0.01 < original - exact < 3 * mc_sd  # the stored single run is an ordinary draw


# -- 2. cvBLUP-adjusted GWAS ---------------------------------------------------------------------------
def _write_pheno(path: Path, sample_table: pd.DataFrame, columns: dict[str, np.ndarray]) -> None:
    table = pd.DataFrame({"FID": sample_table["fid"].to_numpy(), "IID": sample_table["iid"].to_numpy(), **columns})
    table.to_csv(path, sep="\t", index=False, float_format="%.10g")


def _cvblup_and_gwas(prefix: Path, pheno: Path, trait: str, out: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """``deepprs cvblup --loco`` then ``deepprs gwas`` without / with ``--cvblup-covar``."""
    common = ["--bfile", str(prefix), "--pheno", str(pheno), "--pheno-name", trait, "--quiet"]
    main(["cvblup", *common, "--loco", "--method", "exact", "--threads", "1", "--out", str(out)])
    summary = json.loads(Path(f"{out}.h2.json").read_text())
    main(["gwas", *common, "--no-plots", "--threads", "1", "--out", f"{out}.plain"])
    main(["gwas", *common, "--no-plots", "--threads", "1", "--cvblup-covar", str(out), "--out", f"{out}.adj"])
    plain = read_chi2(Path(f"{out}.plain.{trait}.glm.linear"))
    adjusted = read_chi2(Path(f"{out}.adj.{trait}.glm.linear"))
    assert plain["ID"].tolist() == adjusted["ID"].tolist()
    return plain, adjusted, summary


@pytest.fixture(scope="module")
def polygenic_gwas(tmp_path_factory):
    """N = 2,000, M = 2,000 over 4 chromosomes (LD blocks of 10), additive h² = 0.5 from 80 causal SNPs."""
    directory = tmp_path_factory.mktemp("cvblup_gwas")
    dosage, sample_table, variant_table = simulate_genotypes(
        2000, 2000, n_chromosomes=4, block_size=10, ld_rho=0.9, seed=404
    )
    prefix = directory / "poly"
    write_bed(prefix, dosage, sample_table, variant_table)
    trait = simulate_trait(
        InMemoryGenotypes(dosage, sample_table, variant_table), model="additive", n_causal=80, h2=0.5, seed=405
    )
    _write_pheno(directory / "poly.pheno", sample_table, {"Y": trait.phenotype})
    plain, adjusted, summary = _cvblup_and_gwas(prefix, directory / "poly.pheno", "Y", directory / "poly")
    # null variants: r² < 0.01 with every causal variant (brute force on the dosages)
    ids = variant_table["id"].astype(str).to_numpy()
    causal = np.isin(ids, trait.truth["ID"].to_numpy())
    standardized = (dosage - dosage.mean(0)) / dosage.std(0)
    r2 = ((standardized.T @ standardized[:, causal]) / len(dosage)) ** 2
    null = (r2.max(axis=1) < 0.01) & ~causal
    loco = pd.read_csv(directory / "poly.cvblup.loco.tsv", sep="\t")
    chromosome = variant_table["chrom"].astype(str).to_numpy()
    return plain, adjusted, summary, causal, null, loco, chromosome, trait.phenotype


def test_cvblup_adjusted_gwas_has_higher_causal_chi2(polygenic_gwas):
    plain, adjusted, summary, causal, null, loco, chromosome, phenotype = polygenic_gwas
    assert causal.sum() == 80
    assert 0.35 < summary["h2"] < 0.65  # REML recovers the simulated h² = 0.5
    assert list(loco.columns) == ["FID", "IID", "1", "2", "3", "4"]
    mean_plain = plain["CHI2"][causal].mean()
    mean_adjusted = adjusted["CHI2"][causal].mean()
    # removing ~3/4 of the polygenic background raises χ² at causal SNPs (observed 14.3 -> 17.4)
    assert mean_adjusted > 1.1 * mean_plain, (mean_plain, mean_adjusted)
    assert (adjusted["CHI2"][causal] > plain["CHI2"][causal]).mean() > 0.65
    # closed form: the non-centrality grows by Var(y) / Var(y | LOCO cvBLUP of the variant's chromosome)
    predicted = np.zeros(len(plain))
    for code in "1234":
        covariate = loco[code].to_numpy()
        assert np.corrcoef(covariate, phenotype)[0, 1] > 0.3  # each LOCO cvBLUP is informative
        residual = phenotype - np.polyval(np.polyfit(covariate, phenotype, 1), covariate)
        on_chromosome = chromosome == code
        predicted[on_chromosome] = 1 + (plain["CHI2"][on_chromosome] - 1) * phenotype.var() / residual.var()
    assert mean_adjusted == pytest.approx(predicted[causal].mean(), rel=0.1)
    # null variants (r² < 0.01 with every causal SNP) stay calibrated, with and without the adjustment
    assert null.sum() > 300
    for table in (plain, adjusted):
        assert 0.85 < lambda_gc(table["CHI2"][null].to_numpy()) < 1.15
        assert 0.9 < table["CHI2"][null].mean() < 1.1


@pytest.fixture(scope="module")
def null_gwas(tmp_path_factory):
    """N = 1,000, M = 20,000 unlinked SNPs: 500 on chromosome 1, 19,500 on chromosome 2.

    PERM: a permuted polygenic phenotype (true null everywhere). CHR1: h² = 0.5 from 200 causal SNPs
    on chromosome 1 only, so every chromosome-2 SNP is null while its LOCO covariate (the cvBLUP
    from the 500 chromosome-1 SNPs) is strongly predictive.
    """
    directory = tmp_path_factory.mktemp("cvblup_null")
    dosage, sample_table, variant_table = simulate_genotypes(1000, 20000, n_chromosomes=1, ld_rho=0.0, seed=505)
    variant_table["chrom"] = np.where(np.arange(20000) < 500, "1", "2")
    prefix = directory / "null"
    write_bed(prefix, dosage, sample_table, variant_table)
    chromosome = variant_table["chrom"].to_numpy()
    polygenic = simulate_trait(dosage, model="additive", n_causal=500, h2=0.5, seed=506)
    chr1_only = simulate_trait(dosage[:, chromosome == "1"], model="additive", n_causal=200, h2=0.5, seed=508)
    columns = {"PERM": np.random.default_rng(507).permutation(polygenic.phenotype), "CHR1": chr1_only.phenotype}
    _write_pheno(directory / "null.pheno", sample_table, columns)
    results = {
        trait: _cvblup_and_gwas(prefix, directory / "null.pheno", trait, directory / f"null_{trait}")
        for trait in columns
    }
    loco = {trait: pd.read_csv(directory / f"null_{trait}.cvblup.loco.tsv", sep="\t") for trait in columns}
    return results, loco, chromosome, columns


def test_cvblup_adjusted_gwas_calibrated_under_the_null(null_gwas):
    results, loco, chromosome, columns = null_gwas
    # sd(λGC) ≈ 2.3 / sqrt(M) = 0.016 for M = 20,000 independent tests, so [0.95, 1.05] is ±3 sd
    plain, adjusted, _ = results["PERM"]
    assert loco["PERM"][["1", "2"]].to_numpy().std(axis=0).max() > 0  # the adjustment is not a no-op
    assert 0.95 <= lambda_gc(adjusted["CHI2"].to_numpy()) <= 1.05
    assert 0.95 <= lambda_gc(plain["CHI2"].to_numpy()) <= 1.05
    assert adjusted["CHI2"].mean() == pytest.approx(1.0, abs=0.05)


def test_strong_loco_covariate_keeps_null_chromosome_calibrated(null_gwas):
    results, loco, chromosome, columns = null_gwas
    plain, adjusted, summary = results["CHR1"]
    # REML on chromosome 1 alone (the LOCO fit for chromosome 2) recovers h² = 0.5; chromosome 2 alone ~0
    assert 0.35 < summary["loco_h2"]["2"] < 0.65
    assert summary["loco_h2"]["1"] < 0.05
    # chromosome-2 SNPs are adjusted for the cvBLUP from chromosome 1, which explains much of the trait
    assert np.corrcoef(loco["CHR1"]["2"], columns["CHR1"])[0, 1] > 0.4
    null = chromosome == "2"
    assert 0.95 <= lambda_gc(adjusted["CHI2"][null].to_numpy()) <= 1.05
    assert adjusted["CHI2"][null].mean() == pytest.approx(1.0, abs=0.05)
    # chromosome 1 carries the signal; its covariate (cvBLUP from the null chromosome 2) is uninformative,
    # so the adjustment leaves its χ² nearly unchanged
    assert plain["CHI2"][~null].mean() > 1.5
    assert adjusted["CHI2"][~null].mean() == pytest.approx(plain["CHI2"][~null].mean(), rel=0.05)
