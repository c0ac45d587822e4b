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
    for flag in ("--bfile", "--pfile", "--bgen", "--out"):
        assert flag in help_text, (command, flag)


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
