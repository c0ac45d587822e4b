"""`deepprs gwas` variant filters (--extract --exclude --chr --maf --geno --hwe) against plink2 --glm with the
same flags, and the frequency sample set (every --keep sample, phenotyped or not, as plink2).
Fixtures and the plink2 command: tests/data/gwas/README.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepprs.assoc.output import read_glm
from deepprs.cli.main import main
from deepprs.errors import InputError
from deepprs.io import open_genotypes
from deepprs.qc.filters import VariantFilter, parse_chromosomes

DATA = Path(__file__).parent / "data" / "gwas"
FILTERS = ["--extract", str(DATA / "sim.extract"), "--exclude", str(DATA / "sim.exclude"), "--chr", "1",
           "--maf", "0.08", "--geno", "0.035", "--hwe", "0.02"]


def test_filtered_gwas_matches_plink2(tmp_path):
    out = tmp_path / "ours"
    try:
        main(["gwas", "--bfile", str(DATA / "sim"), "--pheno", str(DATA / "sim.pheno"), "--pheno-name", "Q2",
              "--covar", str(DATA / "sim.covar"), "--keep", str(DATA / "sim.keep"), *FILTERS, "--no-plots",
              "--quiet", "--out", str(out)])
    except SystemExit as exit_info:
        assert not exit_info.code
    ours, ref = read_glm(f"{out}.Q2.glm.linear"), read_glm(DATA / "plink2_sim_filters.Q2.glm.linear")
    assert len(ref) == 125
    assert ours["ID"].tolist() == ref["ID"].tolist()                 # the same 125 of 400 variants
    assert (ours["OBS_CT"].to_numpy() == ref["OBS_CT"].to_numpy()).all()
    np.testing.assert_allclose(ours["BETA"], ref["BETA"], rtol=2e-5)
    np.testing.assert_allclose(-np.log10(ours["P"]), -np.log10(ref["P"]), atol=1e-4)
    log = Path(f"{out}.log").read_text()
    # plink2 logs 57 removed by --geno, 2 by --hwe, 18 by allele frequency (in that order), 125 remaining
    assert ("variant filters: 125 of 400 variants kept (77 by --extract/exclude, 121 by --chr, 57 by --geno, "
            "2 by --hwe, 18 by --maf)") in " ".join(log.split())


def test_filter_counts_and_frequency_samples():
    with open_genotypes(DATA / "sim") as source:
        keep = np.flatnonzero(np.arange(1, source.n_samples + 1) % 10 != 3)
        index, removed = VariantFilter(**{"extract": DATA / "sim.extract", "exclude": DATA / "sim.exclude",
                                          "chromosomes": "1", "maf": 0.08, "geno": 0.035,
                                          "hwe": 0.02}).apply(source, keep)
        assert removed == {"extract/exclude": 77, "chr": 121, "geno": 57, "hwe": 2, "maf": 18}
        assert len(index) == 125
        # the same thresholds over all 300 samples remove a different set: the --keep samples matter
        index_all, _ = VariantFilter(**{"extract": DATA / "sim.extract", "exclude": DATA / "sim.exclude",
                                        "chromosomes": "1", "maf": 0.08, "geno": 0.035,
                                        "hwe": 0.02}).apply(source, np.arange(source.n_samples))
        assert not np.array_equal(index_all, index)
        # brute force on the kept samples: missing rate and minor allele frequency of the survivors
        dosage = source.read(keep, index, dtype=np.float64)
        missing_rate = np.isnan(dosage).mean(axis=0)
        freq = np.nanmean(dosage, axis=0) / 2
        assert (missing_rate <= 0.035).all() and (np.minimum(freq, 1 - freq) >= 0.08).all()


def test_chromosome_lists():
    assert parse_chromosomes("1-3,X, chr22,23,MT") == {"1", "2", "3", "X", "22", "MT"}
    with pytest.raises(InputError, match="backwards"):
        parse_chromosomes("5-2")
    with pytest.raises(InputError, match="ranges must be numeric"):
        parse_chromosomes("X-Y")
    with open_genotypes(DATA / "sim") as source, pytest.raises(InputError, match="no variants left"):
        VariantFilter(chromosomes="3").apply(source, np.arange(source.n_samples))


def _compare_with_plink2(statistics, variant_ids, prefix: Path) -> None:
    freq = pd.read_csv(f"{prefix}.afreq", sep="\t")
    missing = pd.read_csv(f"{prefix}.vmiss", sep="\t")
    hardy = pd.read_csv(f"{prefix}.hardy", sep="\t")
    if Path(f"{prefix}.hardy.x").exists():                              # chrX: the test including males
        hardy = pd.concat([hardy, pd.read_csv(f"{prefix}.hardy.x", sep="\t")])
        hardy = hardy.set_index("ID").loc[[v for v in variant_ids if v in set(hardy["ID"])]].reset_index()
    assert freq["ID"].tolist() == list(variant_ids) == missing["ID"].tolist()
    np.testing.assert_allclose(statistics["A1_FREQ"], freq["ALT_FREQS"], atol=1e-6)
    np.testing.assert_allclose(statistics["MISSING_RATE"], missing["F_MISS"], atol=1e-6)
    tested = pd.Series(statistics["HWE_P"].to_numpy(), index=list(variant_ids)).dropna()
    assert tested.index.tolist() == hardy["ID"].tolist()               # the same variants get a test
    np.testing.assert_allclose(np.log10(tested.to_numpy()), np.log10(hardy["P"].to_numpy()), atol=1e-5)


def test_filter_statistics_match_plink2_on_sex_chromosomes_and_pedigrees(tmp_path):
    """Founders only for --maf / --hwe, chrX males counted once and unknown sex as female, chrY males
    only (frequency and missing rate), chrX's HWE test with the males (heterozygous male calls missing,
    unknown sex left out), none on chrY / chrM: plink2's --freq / --missing / --hardy on the same files."""
    import shutil

    from deepprs.qc.filters import filter_statistics

    sexchr = Path(__file__).parent / "data" / "gwas_sexchr"
    for suffix, name in ((".bed", "sexchr.bed"), (".bim", "letters.bim"), (".fam", "pedigree.fam")):
        shutil.copy(sexchr / name, tmp_path / f"ped{suffix}")
    with open_genotypes(tmp_path / "ped") as source:
        assert (source.sample_table["father"] != "0").sum() == 60 and set(source.sample_table["sex"]) == {0, 1, 2}
        statistics = filter_statistics(source, np.arange(source.n_samples), np.arange(source.n_variants))
        _compare_with_plink2(statistics, source.variant_table["id"], sexchr / "plink2_pedigree")
        # the rules matter here: all samples, diploid everywhere, give other numbers
        assert np.abs(np.nanmean(source.read(dtype=np.float64), axis=0) / 2 - statistics["A1_FREQ"]).max() > 0.01
        # the int8 path of other hard-call readers (.pgen) gives the .bed path's numbers; a sample subset too
        from deepprs.io.pgen import PgenReader, write_pgen

        write_pgen(tmp_path / "ped_pgen", source.read(dtype=np.float64), source.sample_table, source.variant_table)
        subset = np.arange(3, source.n_samples, 2)
        with PgenReader(tmp_path / "ped_pgen") as pgen:
            assert not pgen.may_have_dosages
            for samples in (np.arange(source.n_samples), subset):
                pd.testing.assert_frame_equal(filter_statistics(pgen, samples, np.arange(pgen.n_variants)),
                                              filter_statistics(source, samples, np.arange(source.n_variants)))


def test_qc_reports_and_filters_with_plink2_statistics(tmp_path):
    """`deepprs qc`'s A1_FREQ / MISSING_RATE / HWE_P and its --maf / --geno / --hwe decisions are
    plink2's (founders, chrX males counted once, chrY males only): the same numbers as plink2's
    --freq / --missing / --hardy on a pedigree with both sexes, unknown sex and sex chromosomes."""
    import shutil

    from deepprs.qc.filters import run_qc

    sexchr = Path(__file__).parent / "data" / "gwas_sexchr"
    for suffix, name in ((".bed", "sexchr.bed"), (".bim", "letters.bim"), (".fam", "pedigree.fam")):
        shutil.copy(sexchr / name, tmp_path / f"ped{suffix}")
    with open_genotypes(tmp_path / "ped") as source:
        result = run_qc(source, maf=0.1, geno=0.05, hwe=1e-3)
        diploid_all = np.nanmean(source.read(dtype=np.float64), axis=0) / 2
    report = result.variant_report
    _compare_with_plink2(report, report["ID"], sexchr / "plink2_pedigree")
    assert np.abs(report["A1_FREQ"].to_numpy() - diploid_all).max() > 0.01   # not every sample, diploid
    a1 = report["A1_FREQ"].to_numpy()
    minor = np.minimum(a1, 1 - a1)
    with np.errstate(invalid="ignore"):
        fail = ((report["MISSING_RATE"].to_numpy() > 0.05) | (report["HWE_P"].to_numpy() < 1e-3)
                | (minor < 0.1 - 1e-12) | ~(minor > 0))
    np.testing.assert_array_equal(result.variant_pass, ~fail)
    assert 0 < fail.sum() < len(fail)
    # no founder at all: plink2's frequencies are undefined (--maf keeps the variants); deepprs's own
    # "monomorphic" rule uses every sample's calls, so polymorphic variants stay
    fam = (tmp_path / "ped.fam").read_text().splitlines()
    (tmp_path / "ped.fam").write_text("".join(
        " ".join([fields[0], fields[1], f"P{i}", *fields[3:]]) + "\n"
        for i, fields in enumerate(line.split() for line in fam)))
    with open_genotypes(tmp_path / "ped") as source:
        orphans = run_qc(source, maf=0.1)
        calls = source.read(dtype=np.float64)
    assert orphans.variant_report["A1_FREQ"].isna().all()
    polymorphic = (np.nansum(calls, axis=0) > 0) & (np.nansum(2 - calls, axis=0) > 0)  # both alleles called
    assert polymorphic.any()
    np.testing.assert_array_equal(orphans.variant_pass, polymorphic)


def test_filter_statistics_match_plink2_on_dosages():
    """Dosage .pgen: frequencies from the dosages, missing calls and HWE from hard calls at plink2's
    0.1 hard-call threshold (its --freq / --missing / --hardy)."""
    from deepprs.qc.filters import filter_statistics

    dose = Path(__file__).parent / "data" / "gwas_dosage"
    with open_genotypes(dose / "dose", file_format="pgen") as source:
        assert source.may_have_dosages
        statistics = filter_statistics(source, np.arange(source.n_samples), np.arange(source.n_variants))
        _compare_with_plink2(statistics, source.variant_table["id"], dose / "plink2_pgen")
        assert (statistics["MISSING_RATE"] > 0.2).any()                  # uncertain dosages count as missing


def test_maf_keeps_variants_without_a_frequency_and_uses_exact_counts(tmp_path):
    """plink2 compares MAF < threshold: a variant with no founder call (all missing, or no founders at
    all) has no frequency and is kept; a minor allele frequency of exactly 0.1 (18 of 20 alleles) is not
    below 0.1, although 1 - 0.9 is in floating point."""
    import pandas as pd

    from deepprs.io import write_bed

    n = 10
    dosage = np.zeros((n, 4))
    dosage[:8, 0], dosage[8:, 0] = 2, 1                  # 18 of 20 alleles: MAF exactly 0.1
    dosage[:, 1] = np.nan                                # no calls at all
    dosage[:, 2] = [2, 2, 2, 2, 2, 2, 2, 2, 2, 1]        # MAF 0.05
    dosage[:, 3] = [0, 1, 2, 0, 1, 2, 0, 1, 2, 1]
    samples = pd.DataFrame({"fid": [f"f{i}" for i in range(n)], "iid": [f"i{i}" for i in range(n)],
                            "father": "0", "mother": "0", "sex": 0})
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(4) + 1, "id": [f"v{j}" for j in range(4)],
                             "ref": "A", "alt": "C", "a1": "C", "cm": 0.0})
    write_bed(tmp_path / "edge", dosage, samples, variants)
    with open_genotypes(tmp_path / "edge") as source:
        index, removed = VariantFilter(maf=0.1).apply(source, np.arange(n))
        assert index.tolist() == [0, 1, 3] and removed["maf"] == 1
    # no founder: no frequency anywhere, nothing removed by --maf (plink2: "0 variants removed")
    samples["father"] = "dad"
    write_bed(tmp_path / "children", dosage, samples, variants)
    with open_genotypes(tmp_path / "children") as source:
        index, removed = VariantFilter(maf=0.01).apply(source, np.arange(n))
        assert index.tolist() == [0, 1, 2, 3] and removed["maf"] == 0


def test_write_bed_pads_the_last_byte_with_zeros(tmp_path):
    """plink writes 00 in the unused fields of a row's last byte; plink2 2.00a3.5 counts 01 padding as
    missing calls, so a deepprs-written .bed must not use it."""
    import pandas as pd

    from deepprs.io import write_bed

    dosage = np.array([[2.0, 0], [1, 1], [0, 2], [2, np.nan], [1, 0]])  # 5 samples: 3 padding fields
    samples = pd.DataFrame({"fid": list("abcde"), "iid": list("abcde")})
    variants = pd.DataFrame({"chrom": "1", "pos": [1, 2], "id": ["x", "y"], "ref": "A", "alt": "C", "a1": "C",
                             "cm": 0.0})
    write_bed(tmp_path / "pad", dosage, samples, variants)
    rows = np.fromfile(tmp_path / "pad.bed", dtype=np.uint8)[3:].reshape(2, 2)
    assert ((rows[:, 1] >> 2) == 0).all()                 # fields 1-3 of the last byte: 00
    with open_genotypes(tmp_path / "pad") as source:
        np.testing.assert_array_equal(source.read(dtype=np.float64), dosage)


def test_hwe_filter_tests_chrx_with_males_like_plink2(tmp_path):
    """--hwe on chrX: plink2's exact test including males (founders; heterozygous male calls missing;
    unknown sex left out). plink2 --hwe 0.0003 on the same fileset keeps the same 20 of 28 variants
    (x11, P = 0.000295, is just below the threshold); deepprs gwas logs the same count."""
    sexchr = Path(__file__).parent / "data" / "gwas_sexchr"
    kept = (sexchr / "plink2_hwex_hwe.snplist").read_text().split()
    hardy = pd.read_csv(sexchr / "plink2_hwex.hardy.x", sep="\t")
    with open_genotypes(sexchr / "hwex") as source:
        everyone = np.arange(source.n_samples)
        from deepprs.qc.filters import filter_statistics

        statistics = filter_statistics(source, everyone, np.arange(source.n_variants))
        np.testing.assert_allclose(statistics["HWE_P"], hardy["P"], rtol=1e-5, atol=0)
        index, removed = VariantFilter(hwe=0.0003).apply(source, everyone)
        assert source.variant_table["id"].to_numpy()[index].tolist() == kept
        assert removed == {"extract/exclude": 0, "hwe": 8}
        ids = source.sample_table[["fid", "iid"]]
    pheno = tmp_path / "hwex.pheno"
    values = np.random.default_rng(1).normal(size=len(ids))
    pheno.write_text("FID\tIID\tQ\n" + "".join(f"{f}\t{i}\t{v:.6f}\n" for (f, i), v in zip(ids.to_numpy(), values,
                                                                                         strict=True)))
    out = tmp_path / "ours"
    try:
        main(["gwas", "--bfile", str(sexchr / "hwex"), "--pheno", str(pheno), "--hwe", "0.0003", "--no-plots",
              "--quiet", "--out", str(out)])
    except SystemExit as exit_info:
        assert not exit_info.code
    log = " ".join(Path(f"{out}.log").read_text().split())
    assert "variant filters: 20 of 28 variants kept (8 by --hwe)" in log
    assert set(read_glm(f"{out}.Q.glm.linear")["ID"]) <= set(kept)
