"""Genotype and trait simulators, and the `deepprs simulate` / `simulate-genotypes` commands."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from deepprs.cli.main import main
from deepprs.errors import InputError
from deepprs.io import open_genotypes
from deepprs.simulate import (
    InMemoryGenotypes,
    genetic_value_from_truth,
    simulate_genotypes,
    simulate_trait,
    write_simulated_cohort,
    yelmen_counts,
)


@pytest.fixture(scope="module")
def big_source_fixture() -> InMemoryGenotypes:
    """5,000 samples x 1,500 variants: the N the h2/prevalence tolerances are specified at."""
    return InMemoryGenotypes(*simulate_genotypes(5000, 1500, n_chromosomes=3, seed=11))


@pytest.fixture(scope="module")
def cohort_fixture(tmp_path_factory) -> str:
    """A PLINK fileset with 1% missing genotypes on disk."""
    prefix = str(tmp_path_factory.mktemp("cohort") / "cohort")
    write_simulated_cohort(prefix, 600, 2000, n_chromosomes=2, missing_rate=0.01, seed=5)
    return prefix


def _run_cli(argv: list[str]) -> int:
    """Exit status of ``deepprs ARGV`` run in-process (0 when main returns normally)."""
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _truth_dosage(prefix: str, truth: pd.DataFrame) -> np.ndarray:
    """Mean-imputed A1 dosage of the truth's variants, read independently with the bed reader."""
    with open_genotypes(prefix) as source:
        index = pd.Index(source.variant_table["id"]).get_indexer(truth["ID"])
        assert (index >= 0).all()
        raw = source.read(variants=index, dtype=np.float64, missing="nan")
    column_mean = np.nanmean(raw, axis=0)
    return np.where(np.isnan(raw), column_mean, raw)


# ------------------------------------------------------------------------------------------------
# genotypes
# ------------------------------------------------------------------------------------------------
def test_genotypes_shape_frequencies_ld_and_determinism():
    dosage, samples, variants = simulate_genotypes(1500, 600, n_chromosomes=2, block_size=100, ld_rho=0.95,
                                                   maf_range=(0.1, 0.4), seed=3)
    assert dosage.shape == (1500, 600) and dosage.dtype == np.int8
    assert set(np.unique(dosage)) <= {0, 1, 2}
    assert list(variants.columns) == ["chrom", "pos", "id", "ref", "alt", "a1", "cm"]
    assert (variants["a1"] == variants["alt"]).all() and (variants["ref"] != variants["alt"]).all()
    assert variants["id"].is_unique and len(samples) == 1500
    for _, group in variants.groupby("chrom"):
        assert np.all(np.diff(group["pos"].to_numpy()) > 0)
    freq = dosage.mean(axis=0) / 2
    maf = np.minimum(freq, 1 - freq)
    assert maf.min() > 0.06 and maf.max() < 0.44            # (0.1, 0.4) +- sampling noise at 2N = 3000
    r = np.corrcoef(dosage.T.astype(float))
    adjacent_r2 = np.diag(r, 1)[np.arange(599) % 100 != 99] ** 2
    across_blocks_r2 = np.diag(r, 1)[np.arange(599) % 100 == 99] ** 2
    assert adjacent_r2.mean() > 0.15                         # LD within blocks
    assert across_blocks_r2.mean() < 0.01                    # independent blocks
    again, _, _ = simulate_genotypes(1500, 600, n_chromosomes=2, block_size=100, ld_rho=0.95,
                                     maf_range=(0.1, 0.4), seed=3)
    np.testing.assert_array_equal(dosage, again)


def test_missing_rate_and_roundtrip(tmp_path):
    source = write_simulated_cohort(tmp_path / "g", 200, 300, missing_rate=0.05, seed=1)
    assert abs((source.read(missing="raw", dtype=np.int8) < 0).mean() - 0.05) < 0.01
    with open_genotypes(tmp_path / "g") as bed:
        np.testing.assert_array_equal(bed.read(missing="raw", dtype=np.int8),
                                      source.read(missing="raw", dtype=np.int8))
        assert list(bed.variant_table["id"]) == list(source.variant_table["id"])


def test_genotype_argument_errors():
    with pytest.raises(InputError):
        simulate_genotypes(10, 10, maf_range=(0.0, 0.5))
    with pytest.raises(InputError):
        simulate_genotypes(10, 10, ld_rho=1.0)
    with pytest.raises(InputError):
        simulate_genotypes(10, 10, method="nope")


@pytest.mark.skipif(importlib.util.find_spec("msprime") is not None, reason="msprime is installed")
def test_msprime_missing_gives_clear_error():
    with pytest.raises(InputError, match="msprime"):
        simulate_genotypes(10, 10, method="msprime")


def test_msprime_path_when_installed():
    pytest.importorskip("msprime")
    dosage, _, variants = simulate_genotypes(100, 300, n_chromosomes=2, method="msprime", seed=1)
    freq = dosage.mean(axis=0) / 2
    assert dosage.shape == (100, 300) and np.minimum(freq, 1 - freq).min() >= 0.05
    for _, group in variants.groupby("chrom"):
        assert np.all(np.diff(group["pos"].to_numpy()) > 0)


# ------------------------------------------------------------------------------------------------
# traits
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("h2", [0.2, 0.5, 0.8])
def test_additive_realised_h2_at_n5000(big_source_fixture, h2):
    trait = simulate_trait(big_source_fixture, model="additive", n_causal=100, h2=h2, seed=int(h2 * 10))
    assert np.var(trait.genetic_value) == pytest.approx(h2, rel=1e-10)      # exact in-sample scaling
    realised = np.var(trait.genetic_value) / np.var(trait.phenotype)
    assert abs(realised - h2) < 0.03
    residual = trait.phenotype - trait.genetic_value
    assert np.var(residual) == pytest.approx(1 - h2, abs=0.04)


@pytest.mark.parametrize("prevalence", [0.01, 0.1, 0.3])
def test_prevalence_liability_threshold(big_source_fixture, prevalence):
    trait = simulate_trait(big_source_fixture, model="additive", n_causal=50, h2=0.4, prevalence=prevalence,
                           seed=2)
    assert abs(trait.phenotype_binary.mean() - prevalence) < 0.02
    cases = trait.phenotype_binary == 1
    assert trait.phenotype[cases].min() > trait.threshold > trait.phenotype[~cases].max()


@pytest.mark.parametrize(("n_causal", "expected"), [(20, (5, 5, 4, 6)), (200, (50, 50, 40, 60)),
                                                    (40, (10, 10, 8, 12))])
def test_yelmen_counts_ratio(n_causal, expected):
    assert yelmen_counts(n_causal) == expected


def test_yelmen_design_and_noise_factor(big_source_fixture):
    for noise_factor in (1.0, 3.0):
        trait = simulate_trait(big_source_fixture, model="yelmen", n_causal=200, noise_factor=noise_factor,
                               prevalence=0.2, seed=4)
        truth = trait.truth
        counts = truth["EFFECT_TYPE"].value_counts().to_dict()
        assert counts == {"dominant": 50, "recessive": 50, "pairwise": 40, "threeway": 60}
        assert truth["ID"].is_unique                         # disjoint sets
        # members of one interaction share its weight and list each other as partners
        for _, row in truth[truth["EFFECT_TYPE"] == "threeway"].iterrows():
            partners = truth.set_index("ID").loc[row["PARTNERS"].split(",")]
            assert len(partners) == 2 and (partners["WEIGHT"] == row["WEIGHT"]).all()
        # Var(e) = s Var(g): realised h2 = 1 / (1 + s)
        assert abs(trait.realised_h2 - 1 / (1 + noise_factor)) < 0.03
        assert abs(trait.phenotype_binary.mean() - 0.2) < 0.02


def _independent_yelmen_g(truth: pd.DataFrame, dosage: np.ndarray) -> np.ndarray:
    code = dosage - 1.0
    column = {variant_id: j for j, variant_id in enumerate(truth["ID"])}
    g = np.zeros(dosage.shape[0])
    seen = set()
    for j, row in truth.iterrows():
        if row["EFFECT_TYPE"] == "dominant":
            g += row["WEIGHT"] * (code[:, j] >= 0)
        elif row["EFFECT_TYPE"] == "recessive":
            g += row["WEIGHT"] * (code[:, j] == 1)
        else:
            group = frozenset([row["ID"], *row["PARTNERS"].split(",")])
            if group in seen:
                continue
            seen.add(group)
            g += row["WEIGHT"] * np.prod(code[:, [column[v] for v in group]], axis=1)
    return g - g.mean()


def test_epistasis_terms_and_h2(big_source_fixture):
    trait = simulate_trait(big_source_fixture, model="epistasis", n_causal=40, h2=0.5, order=4, seed=8)
    truth = trait.truth
    assert (truth["EFFECT_TYPE"] == "epistasis4").all()
    dosage = big_source_fixture.read(variants=pd.Index(big_source_fixture.variant_table["id"])
                                     .get_indexer(truth["ID"]), dtype=np.float64)
    centred = dosage - dosage.mean(axis=0)
    row_of = {variant_id: i for i, variant_id in enumerate(truth["ID"])}
    groups = {frozenset([row_of[v] for v in [variant_id, *partners.split(",")]])
              for variant_id, partners in zip(truth["ID"], truth["PARTNERS"], strict=True)}
    assert len(groups) == 10 and all(len(group) == 4 for group in groups)
    assert sorted(i for group in groups for i in group) == list(range(40))       # disjoint, complete
    g = np.zeros(len(dosage))
    for group in groups:
        members = sorted(group)
        assert truth["WEIGHT"].iloc[members].nunique() == 1
        g += truth["WEIGHT"].iloc[members[0]] * np.prod(centred[:, members], axis=1)
    np.testing.assert_allclose(g - g.mean(), trait.genetic_value, atol=1e-9)
    assert abs(trait.realised_h2 - 0.5) < 0.03


def test_joint_tagging_brute_force():
    # 5 kb spacing: a 500 kb window holds ~200 of the 1,000 variants of a chromosome
    source = InMemoryGenotypes(*simulate_genotypes(1000, 2000, n_chromosomes=2, mean_spacing_bp=5000,
                                                   seed=12))
    trait = simulate_trait(source, model="joint-tagging", n_causal=60, h2=0.5, seed=9)
    table = source.variant_table
    expected = []
    for variant_id in trait.truth["ID"]:
        j = int(np.flatnonzero(table["id"] == variant_id)[0])
        near = np.flatnonzero((table["chrom"] == table["chrom"][j]) & ((table["pos"] - table["pos"][j]).abs()
                                                                        <= 500_000))
        near = near[near != j]
        x = source.read(variants=np.r_[j, near], dtype=np.float64)
        r2 = np.array([np.corrcoef(x[:, 0], x[:, k])[0, 1] for k in range(1, x.shape[1])]) ** 2
        if np.sum(r2 >= 0.5) >= 2:
            expected.append(variant_id)
    assert sorted(trait.dropped_causal) == sorted(expected)
    assert 0 < len(expected) < 60
    assert trait.truth.loc[trait.truth["DROPPED"] == 1, "ID"].tolist() == [
        v for v in trait.truth["ID"] if v in set(expected)]


def test_trait_validation_errors(big_source_fixture):
    with pytest.raises(InputError, match="n-causal"):
        simulate_trait(big_source_fixture, n_causal=1501, h2=0.5)
    for bad_h2 in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(InputError, match="h2"):
            simulate_trait(big_source_fixture, n_causal=10, h2=bad_h2)
    for bad_prevalence in (0.0, 1.0, 1.2):
        with pytest.raises(InputError, match="prevalence"):
            simulate_trait(big_source_fixture, n_causal=10, h2=0.5, prevalence=bad_prevalence)
    with pytest.raises(InputError, match="model"):
        simulate_trait(big_source_fixture, model="quadratic", n_causal=10, h2=0.5)


# ------------------------------------------------------------------------------------------------
# CLI: outputs, truth recomputation, bad inputs
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["additive", "gxe", "yelmen", "joint-tagging"])
def test_cli_truth_reproduces_gvalue(cohort_fixture, tmp_path, model):
    out = str(tmp_path / model)
    argv = ["simulate", "--bfile", cohort_fixture, "--model", model, "--n-causal", "40", "--seed", "3",
            "--prevalence", "0.25", "--out", out, "--quiet"]
    if model != "yelmen":
        argv += ["--h2", "0.6"]
    assert _run_cli(argv) == 0
    truth = pd.read_csv(f"{out}.truth.tsv", sep="\t")
    gvalue = pd.read_csv(f"{out}.gvalue.tsv", sep="\t")
    pheno = pd.read_csv(f"{out}.pheno", sep="\t")
    assert list(truth.columns[:7]) == ["ID", "CHROM", "POS", "A1", "EFFECT_TYPE", "WEIGHT", "PARTNERS"]
    assert list(pheno.columns) == ["FID", "IID", "PHENO", "PHENO_BINARY"]
    assert len(truth) == 40 and truth["ID"].is_unique
    assert abs(pheno["PHENO_BINARY"].mean() - 0.25) < 0.02
    with open_genotypes(cohort_fixture) as source:
        a1 = source.variant_table.set_index("id").loc[truth["ID"], "a1"].to_numpy()
    assert (truth["A1"].to_numpy() == a1).all()
    dosage = _truth_dosage(cohort_fixture, truth)
    np.testing.assert_allclose(truth["A1_FREQ"], dosage.mean(axis=0) / 2, atol=1e-9)
    if model == "yelmen":
        expected = _independent_yelmen_g(truth, dosage)
    else:
        centred = dosage - dosage.mean(axis=0)
        expected = centred @ truth["WEIGHT"].to_numpy()
        if model == "gxe":
            covar = pd.read_csv(f"{out}.covar", sep="\t")
            assert list(covar.columns) == ["FID", "IID", "E"]
            expected = expected + (centred @ truth["GXE_WEIGHT"].to_numpy()) * covar["E"].to_numpy()
        expected = expected - expected.mean()
    np.testing.assert_allclose(gvalue["GVALUE"], expected, atol=1e-6)
    np.testing.assert_allclose(genetic_value_from_truth(
        truth, dosage, pd.read_csv(f"{out}.covar", sep="\t")["E"] if model == "gxe" else None),
        gvalue["GVALUE"], atol=1e-6)
    if model == "joint-tagging":
        dropped = open(f"{out}.dropped_causal.txt").read().split()
        assert sorted(dropped) == sorted(truth.loc[truth["DROPPED"] == 1, "ID"])


@pytest.mark.parametrize(("flags", "message"), [
    (["--n-causal", "5000", "--h2", "0.5"], "n-causal"),
    (["--n-causal", "10", "--h2", "1.5"], "h2"),
    (["--n-causal", "10", "--h2", "0"], "h2"),
    (["--n-causal", "10", "--h2", "0.5", "--prevalence", "1.2"], "prevalence"),
    (["--n-causal", "10"], "h2"),
])
def test_cli_bad_inputs_exit_2_and_leave_only_the_log(cohort_fixture, tmp_path, capsys, flags, message):
    out = tmp_path / "bad"
    code = _run_cli(["simulate", "--bfile", cohort_fixture, "--model", "additive", "--out", str(out),
                     "--quiet", *flags])
    assert code == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.log"]


def test_cli_simulate_genotypes(tmp_path):
    out = tmp_path / "sim"
    assert _run_cli(["simulate-genotypes", "--n-samples", "120", "--n-variants", "400",
                     "--n-chromosomes", "4",
                     "--seed", "2", "--out", str(out), "--quiet"]) == 0
    with open_genotypes(out) as bed:
        assert bed.shape == (120, 400)
        assert sorted(bed.variant_table["chrom"].unique()) == ["1", "2", "3", "4"]
        expected, _, _ = simulate_genotypes(120, 400, n_chromosomes=4, seed=2)
        np.testing.assert_array_equal(bed.read(dtype=np.int8, missing="raw"), expected)
    assert (tmp_path / "sim.provenance.json").exists()
