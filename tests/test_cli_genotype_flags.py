"""Every genotype command accepts --bfile, --pfile and --bgen and gives the same answer for the same data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepprs.cli.main import main

FIXTURE = Path(__file__).parent / "data" / "io" / "eur60"


def run(argv: list[str]) -> int:
    """Exit status of ``deepprs ARGV`` run in-process (main returns normally on success)."""
    try:
        main(argv)
    except SystemExit as exit_info:
        return int(exit_info.code or 0)
    return 0


def read_qc(prefix: Path) -> pd.DataFrame:
    return pd.read_csv(f"{prefix}.qc.variants.tsv", sep="\t")


@pytest.mark.parametrize("flag, path", [("--pfile", str(FIXTURE)), ("--bgen", f"{FIXTURE}.bgen")])
def test_qc_gives_the_same_table_for_every_genotype_flag(tmp_path, flag, path):
    assert run(["qc", "--bfile", str(FIXTURE), "--out", str(tmp_path / "bed")]) == 0
    assert run(["qc", flag, path, "--out", str(tmp_path / "other")]) == 0
    bed, other = read_qc(tmp_path / "bed"), read_qc(tmp_path / "other")
    assert list(bed["ID"]) == list(other["ID"])
    np.testing.assert_allclose(bed["A1_FREQ"], other["A1_FREQ"], atol=1e-6)
    np.testing.assert_allclose(bed["MISSING_RATE"], other["MISSING_RATE"], atol=1e-12)


def test_two_genotype_flags_are_refused(tmp_path, capsys):
    code = run(["qc", "--bfile", str(FIXTURE), "--pfile", str(FIXTURE), "--out", str(tmp_path / "x")])
    assert code == 2
    assert "exactly one of --bfile, --pfile or --bgen" in capsys.readouterr().err
    assert not (tmp_path / "x.qc.variants.tsv").exists()


@pytest.mark.parametrize("command", ["qc", "pca", "gwas", "cvblup", "pleiotropy", "fit", "predict", "benchmark",
                                     "simulate"])
def test_every_genotype_command_offers_bgen(command, capsys):
    assert run([command, "--help"]) == 0
    help_text = capsys.readouterr().out
    for flag in ("--bfile", "--pfile", "--bgen", "--sample", "--out"):
        assert flag in help_text, (command, flag)


def test_bgen_sample_file_under_another_name(tmp_path, capsys):
    """--sample names the .sample file when it does not sit beside the .bgen (as UK Biobank's do)."""
    import shutil

    from deepprs.assoc import read_glm

    shutil.copy(f"{FIXTURE}.bgen", tmp_path / "cohort.bgen")
    shutil.copy(f"{FIXTURE}.sample", tmp_path / "cohort_v3_s60.sample")
    fam = pd.read_csv(f"{FIXTURE}.fam", sep=r"\s+", header=None, dtype=str)
    rng = np.random.default_rng(3)
    pheno = tmp_path / "y.pheno"
    pd.DataFrame({"FID": fam[0], "IID": fam[1], "Y": rng.normal(size=len(fam))}).to_csv(pheno, sep="\t", index=False)
    common = ["--pheno", str(pheno), "--no-plots", "--quiet"]
    assert run(["gwas", "--bfile", str(FIXTURE), *common, "--out", str(tmp_path / "bed")]) == 0
    assert run(["gwas", "--bgen", str(tmp_path / "cohort.bgen"), "--sample", str(tmp_path / "cohort_v3_s60.sample"),
                *common, "--out", str(tmp_path / "bgen")]) == 0
    bed, bgen = read_glm(tmp_path / "bed.Y.glm.linear"), read_glm(tmp_path / "bgen.Y.glm.linear")
    assert (bed["ID"] == bgen["ID"]).all() and (bed["OBS_CT"] == bgen["OBS_CT"]).all()
    np.testing.assert_allclose(bgen["BETA"], bed["BETA"], rtol=1e-9)
    # without it the BGEN's own IDs (FID_IID) are used: no sample matches the phenotype table
    assert run(["gwas", "--bgen", str(tmp_path / "cohort.bgen"), *common, "--out", str(tmp_path / "none")]) == 2
    assert not (tmp_path / "none.Y.glm.linear").exists()
    capsys.readouterr()
    assert run(["gwas", "--bgen", str(tmp_path / "cohort.bgen"), "--sample", str(tmp_path / "absent.sample"),
                *common, "--out", str(tmp_path / "absent")]) == 2
    assert "missing .sample file" in capsys.readouterr().err
    assert run(["qc", "--bfile", str(FIXTURE), "--sample", str(tmp_path / "cohort_v3_s60.sample"),
                "--out", str(tmp_path / "qc")]) == 2
    assert "--sample names the samples of a --bgen file" in capsys.readouterr().err
    assert not (tmp_path / "qc.qc.variants.tsv").exists()


def test_qc_and_simulate_keep_remove_equal_a_physically_subset_fileset(tmp_path):
    from deepprs.io import open_genotypes, write_bed

    source = open_genotypes(FIXTURE)
    keep_rows = np.arange(0, source.n_samples, 2)                     # every other sample
    keep_file = tmp_path / "keep.txt"
    keep_file.write_text("".join(f"{f} {i}\n" for f, i in source.sample_table.iloc[keep_rows][["fid", "iid"]].values))
    remove_file = tmp_path / "remove.txt"
    first = source.sample_table.iloc[keep_rows[0]]
    remove_file.write_text(f"{first['fid']} {first['iid']}\n")
    subset = keep_rows[1:]
    write_bed(tmp_path / "subset", source.read(samples=subset, missing="nan"),
              source.sample_table.iloc[subset].reset_index(drop=True), source.variant_table)

    assert run(["qc", "--bfile", str(FIXTURE), "--keep", str(keep_file), "--remove", str(remove_file),
                "--out", str(tmp_path / "viewed")]) == 0
    assert run(["qc", "--bfile", str(tmp_path / "subset"), "--out", str(tmp_path / "direct")]) == 0
    viewed, direct = read_qc(tmp_path / "viewed"), read_qc(tmp_path / "direct")
    np.testing.assert_allclose(viewed["A1_FREQ"], direct["A1_FREQ"], atol=1e-12)
    np.testing.assert_allclose(viewed["HWE_P"], direct["HWE_P"], rtol=1e-12)
    samples = pd.read_csv(tmp_path / "viewed.qc.samples.tsv", sep="\t")
    assert len(samples) == len(subset)

    viewed_flags = ["--bfile", str(FIXTURE), "--keep", str(keep_file), "--remove", str(remove_file)]
    for name, extra in (("sim_viewed", viewed_flags), ("sim_direct", ["--bfile", str(tmp_path / "subset")])):
        assert run(["simulate", *extra, "--n-causal", "5", "--h2", "0.5", "--seed", "3",
                    "--out", str(tmp_path / name)]) == 0
    viewed_pheno = pd.read_csv(tmp_path / "sim_viewed.pheno", sep=r"\s+")
    direct_pheno = pd.read_csv(tmp_path / "sim_direct.pheno", sep=r"\s+")
    assert len(viewed_pheno) == len(subset)
    np.testing.assert_allclose(viewed_pheno["PHENO"], direct_pheno["PHENO"], rtol=1e-10)
