"""Phenotype/covariate tables, --keep/--remove lists and sample alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepprs.errors import InputError
from deepprs.io import (
    align_samples,
    in_sample_list,
    load_cohort,
    read_covariates,
    read_phenotypes,
    read_sample_list,
)

DATA = Path(__file__).parent / "data" / "io"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _genotype_ids(n: int = 10) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([[f"F{i}" for i in range(n)], [f"I{i}" for i in range(n)]],
                                     names=["FID", "IID"])


@pytest.mark.parametrize("header", ["FID IID", "#FID IID", "fid\tiid", "#FID\tIID"])
def test_fid_iid_headers(tmp_path, header):
    sep = "\t" if "\t" in header else " "
    path = _write(tmp_path / "p.txt", f"{header}{sep}BMI{sep}Height\nF1{sep}I1{sep}22.5{sep}170\n"
                                      f"F2{sep}I2{sep}NA{sep}-9\nF3{sep}I3{sep}-9{sep}181.5\n")
    table = read_phenotypes(path)
    assert list(table.index) == [("F1", "I1"), ("F2", "I2"), ("F3", "I3")]
    assert list(table.columns) == ["BMI", "Height"]
    np.testing.assert_array_equal(table["BMI"].to_numpy(), [22.5, np.nan, np.nan])
    np.testing.assert_array_equal(table["Height"].to_numpy(), [170.0, np.nan, 181.5])


def test_iid_only_header_sets_fid_0_and_marks_the_table(tmp_path):
    path = _write(tmp_path / "p.txt", "#IID\ty\nA\t1\nB\t2.5\n")
    table = read_phenotypes(path)
    assert list(table.index) == [("0", "A"), ("0", "B")]  # plink2: an absent FID is 0
    assert table.attrs["fid_absent"] and not read_phenotypes(_write(tmp_path / "q.txt", "FID IID y\nF A 1\n")).attrs[
        "fid_absent"]
    np.testing.assert_array_equal(table["y"].to_numpy(), [1.0, 2.5])


def _bed_with_ids(tmp_path: Path, fids: list[str], iids: list[str]) -> Path:
    """A tiny .bed fileset (3 variants) with these sample IDs."""
    from deepprs.io import write_bed

    rng = np.random.default_rng(2)
    dosage = rng.integers(0, 3, (len(iids), 3)).astype(float)
    samples = pd.DataFrame({"fid": fids, "iid": iids, "father": "0", "mother": "0", "sex": 0})
    variants = pd.DataFrame({"chrom": "1", "pos": [1, 2, 3], "id": ["v1", "v2", "v3"], "ref": "A", "alt": "C",
                             "a1": "C", "cm": 0.0})
    write_bed(tmp_path / "g", dosage, samples, variants)
    return tmp_path / "g"


@pytest.mark.parametrize(
    ("fids", "header", "pheno_fid", "matched"),
    [
        (["0", "0", "0"], "#IID", None, 3),          # plink2: #IID -> FID 0 (matches)
        (["A", "B", "C"], "#IID", None, 3),          # FID = IID in the .fam: matched by IID (plink2 would not)
        (["0", "0", "0"], "FID IID", "0", 3),        # explicit FIDs: exact (FID, IID)
        (["0", "0", "0"], "FID IID", "IID", 0),      # explicit but different FIDs: no match (as plink2)
    ],
)
def test_sample_matching_follows_plink2_for_absent_fids(tmp_path, fids, header, pheno_fid, matched):
    from deepprs.io import load_cohort

    iids = ["A", "B", "C"]
    prefix = _bed_with_ids(tmp_path, fids, iids)
    rows = [(iid if pheno_fid is None else (iid if pheno_fid == "IID" else pheno_fid) + " " + iid) + f" {k}.5"
            for k, iid in enumerate(iids)]
    pheno = _write(tmp_path / "p.txt", f"{header} y\n" + "\n".join(rows) + "\n")
    if matched:
        cohort = load_cohort(prefix, pheno=pheno)
        assert len(cohort.sample_index) == matched
        np.testing.assert_array_equal(cohort.phenotypes["y"].to_numpy(), [0.5, 1.5, 2.5])
    else:
        with pytest.raises(InputError, match="0 sample IDs in common"):
            load_cohort(prefix, pheno=pheno)


def test_psam_without_fid_matches_tables_by_iid(tmp_path):
    """A #IID .psam (plink2: FID 0) matches phenotype/covariate rows by IID, whatever their FID;
    repeated IIDs then make the match ambiguous: a clear error."""
    from deepprs.io import load_cohort
    from deepprs.io.pgen import write_pgen

    prefix = _bed_with_ids(tmp_path, ["0", "0", "0"], ["A", "B", "C"])
    from deepprs.io import open_genotypes

    source = open_genotypes(prefix)
    write_pgen(tmp_path / "p", source.read(dtype=np.float64), source.sample_table, source.variant_table)
    (tmp_path / "p.psam").write_text("#IID\tSEX\nA\t1\nB\t2\nC\t1\n")
    pheno = _write(tmp_path / "y.txt", "FID IID y\n0 C 3\nX A 1\n0 B 2\n")
    cohort = load_cohort(tmp_path / "p", file_format="pgen", pheno=pheno)
    assert list(cohort.genotypes.sample_table["fid"]) == ["0", "0", "0"]
    np.testing.assert_array_equal(cohort.phenotypes["y"].to_numpy(), [1.0, 2.0, 3.0])
    twice = _write(tmp_path / "z.txt", "FID IID y\n0 C 3\nX C 1\n0 B 2\n")
    with pytest.raises(InputError, match="repeats IIDs"):
        load_cohort(tmp_path / "p", file_format="pgen", pheno=twice)


def test_bad_header(tmp_path):
    path = _write(tmp_path / "p.txt", "ID y\nA 1\n")
    with pytest.raises(InputError, match="header must start with 'FID IID'"):
        read_phenotypes(path)


def test_missing_tokens(tmp_path):
    values = ["NA", "-9", ".", "nan", "3", "-9.0"]
    rows = "".join(f"F{i} I{i} {v}\n" for i, v in enumerate(values))
    path = _write(tmp_path / "p.txt", "FID IID y\n" + rows)
    np.testing.assert_array_equal(read_phenotypes(path)["y"].to_numpy(), [np.nan] * 4 + [3.0, np.nan])


def test_categorical_covariates_one_hot(tmp_path):
    path = _write(tmp_path / "c.txt", "FID IID age site sex\nF1 I1 30 leeds M\nF2 I2 41 bristol F\n"
                                      "F3 I3 NA manchester M\nF4 I4 52 NA F\nF5 I5 60 leeds F\n")
    table = read_covariates(path)
    # levels sorted: bristol (dropped), leeds, manchester; F (dropped), M
    assert list(table.columns) == ["age", "site=leeds", "site=manchester", "sex=M"]
    np.testing.assert_array_equal(table["age"].to_numpy(), [30, 41, np.nan, 52, 60])
    np.testing.assert_array_equal(table["site=leeds"].to_numpy(), [1, 0, 0, np.nan, 1])
    np.testing.assert_array_equal(table["site=manchester"].to_numpy(), [0, 0, 1, np.nan, 0])
    np.testing.assert_array_equal(table["sex=M"].to_numpy(), [1, 0, 1, 0, 0])
    assert list(read_covariates(path, ["age"]).columns) == ["age"]


def test_non_numeric_phenotype_names_the_value(tmp_path):
    path = _write(tmp_path / "p.txt", "FID IID y\nF1 I1 1.5\nF2 I2 tall\n")
    with pytest.raises(InputError, match=r"non-numeric value 'tall' \(sample F2 I2\)"):
        read_phenotypes(path)


def test_ragged_rows_are_named(tmp_path):
    short = _write(tmp_path / "short.txt", "FID IID y z\nF1 I1 1 2\nF2 I2 3\nF3 I3 4 5\n")
    with pytest.raises(InputError, match="line 3 has fewer fields than the header"):
        read_phenotypes(short)
    long = _write(tmp_path / "long.txt", "FID IID y\nF1 I1 1\nF2 I2 3 9\n")
    with pytest.raises(InputError, match="more fields than the header"):
        read_covariates(long)


def test_all_missing_columns(tmp_path):
    path = _write(tmp_path / "p.txt", "FID IID y z\nF1 I1 1 NA\nF2 I2 2 -9\n")
    with pytest.raises(InputError, match="column z is missing for every sample"):
        read_phenotypes(path)
    np.testing.assert_array_equal(read_phenotypes(path, ["y"])["y"].to_numpy(), [1.0, 2.0])
    with pytest.raises(InputError, match="column z is missing for every sample"):
        read_covariates(path)


def test_unknown_pheno_and_covar_name(tmp_path):
    path = _write(tmp_path / "p.txt", "FID IID y z\nF1 I1 1 2\n")
    with pytest.raises(InputError, match=r"--pheno-name BMI not found .*available columns: y, z"):
        read_phenotypes(path, ["BMI"])
    with pytest.raises(InputError, match=r"--covar-name age not found"):
        read_covariates(path, ["y", "age"])


def test_duplicate_ids(tmp_path):
    path = _write(tmp_path / "p.txt", "FID IID y\nF1 I1 1\nF2 I2 2\nF1 I1 3\n")
    with pytest.raises(InputError, match=r"duplicate FID IID rows \(first: \['F1 I1'\]\)"):
        read_phenotypes(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError, match="phenotype file .*nope.txt does not exist"):
        read_phenotypes(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="is empty"):
        read_covariates(_write(tmp_path / "e.txt", ""))
    with pytest.raises(InputError, match="no data columns"):
        read_phenotypes(_write(tmp_path / "h.txt", "FID IID\nF1 I1\n"))


def test_zero_overlap(tmp_path):
    phenotypes = read_phenotypes(_write(tmp_path / "p.txt", "FID IID y\nX1 Y1 1\nX2 Y2 2\n"))
    with pytest.raises(InputError, match=r"0 sample IDs in common .*\['X1 Y1', 'X2 Y2'\].*\['F0 I0'"):
        align_samples(_genotype_ids(), phenotypes=phenotypes, pheno_path="p.txt")


def test_sample_lists(tmp_path):
    with_header = read_sample_list(_write(tmp_path / "k1", "#FID IID\nF1 I1\nF3 I3\n"))
    assert list(with_header) == [("F1", "I1"), ("F3", "I3")]
    iid_only = read_sample_list(_write(tmp_path / "k2", "A\nB\n\n"))
    assert list(iid_only.get_level_values("IID")) == ["A", "B"] and iid_only.get_level_values("FID").isna().all()
    header_iid = read_sample_list(_write(tmp_path / "k4", "#IID\tSEX\nA\t1\n"))
    assert list(header_iid.get_level_values("IID")) == ["A"] and header_iid.get_level_values("FID").isna().all()
    assert len(read_sample_list(_write(tmp_path / "k3", ""))) == 0
    # IID-only entries match any FID (plink2's FID 0, or FID = IID); FID IID entries match exactly
    samples = pd.MultiIndex.from_tuples([("0", "A"), ("B", "B"), ("F", "C"), ("G", "C")], names=["FID", "IID"])
    np.testing.assert_array_equal(in_sample_list(samples, iid_only), [True, True, False, False])
    np.testing.assert_array_equal(in_sample_list(samples, with_header), [False, False, False, False])
    exact = read_sample_list(_write(tmp_path / "k5", "F C\n0 A\n"))
    np.testing.assert_array_equal(in_sample_list(samples, exact), [True, False, True, False])
    with pytest.raises(InputError, match="--remove file .* does not exist"):
        read_sample_list(tmp_path / "none", "--remove")


def test_alignment_report_counts(tmp_path):
    ids = _genotype_ids(10)                                         # F0..F9
    phenotypes = read_phenotypes(_write(tmp_path / "p.txt", "FID IID y\n" + "".join(
        f"F{i} I{i} {'NA' if i == 2 else i}\n" for i in range(8))))  # F8, F9 absent; F2 missing
    covariates = read_covariates(_write(tmp_path / "c.txt", "FID IID age\n" + "".join(
        f"F{i} I{i} {'NA' if i == 4 else 20 + i}\n" for i in range(1, 10))))  # F0 absent; F4 missing
    keep = read_sample_list(_write(tmp_path / "keep", "".join(f"F{i} I{i}\n" for i in range(9))))  # drops F9
    remove = read_sample_list(_write(tmp_path / "remove", "F6 I6\n"))
    result = align_samples(ids, phenotypes=phenotypes, covariates=covariates, keep=keep, remove=remove)
    assert result.dropped == {"not in --keep": 1, "in --remove": 1, "not in the phenotype file": 1,
                              "phenotype missing": 1, "not in the covariate file": 1, "covariate missing": 1}
    assert [iid for _, iid in result.sample_ids] == ["I1", "I3", "I5", "I7"]
    np.testing.assert_array_equal(result.genotype_index, [1, 3, 5, 7])
    np.testing.assert_array_equal(result.phenotypes["y"].to_numpy(), [1, 3, 5, 7])
    np.testing.assert_array_equal(result.covariates["age"].to_numpy(), [21, 23, 25, 27])
    assert result.report() == ("4 samples kept; 1 dropped: not in --keep; 1 dropped: in --remove; "
                               "1 dropped: not in the phenotype file; 1 dropped: phenotype missing; "
                               "1 dropped: not in the covariate file; 1 dropped: covariate missing")


def test_alignment_follows_genotype_order_not_table_order(tmp_path):
    phenotypes = read_phenotypes(_write(tmp_path / "p.txt", "FID IID y\nF3 I3 3\nF0 I0 0\nF1 I1 1\n"))
    result = align_samples(_genotype_ids(4), phenotypes=phenotypes)
    np.testing.assert_array_equal(result.genotype_index, [0, 1, 3])
    np.testing.assert_array_equal(result.phenotypes["y"].to_numpy(), [0, 1, 3])


def test_everything_removed(tmp_path):
    with pytest.raises(InputError, match="no samples remain"):
        align_samples(_genotype_ids(3), remove=_genotype_ids(3))


def test_load_cohort_on_fixture(tmp_path):
    fam = pd.read_csv(DATA / "eur60.fam", sep=r"\s+", header=None, dtype=str)
    rng = np.random.default_rng(0)
    y = rng.normal(size=len(fam)).round(3)
    lines = ["#FID\tIID\ty"] + [f"{f}\t{i}\t{'NA' if k % 10 == 0 else y[k]}"
                                for k, (f, i) in enumerate(zip(fam[0], fam[1], strict=True))]
    pheno = _write(tmp_path / "y.pheno", "\n".join(lines) + "\n")
    covar = _write(tmp_path / "c.cov", "FID IID batch\n" + "".join(
        f"{f} {i} {'ab'[k % 2]}\n" for k, (f, i) in enumerate(zip(fam[0], fam[1], strict=True))))
    remove = _write(tmp_path / "rm", f"{fam[0][1]} {fam[1][1]}\n")
    for genotypes in (DATA / "eur60", DATA / "eur60.pgen"):
        cohort = load_cohort(genotypes, pheno=pheno, pheno_names=["y"], covar=covar, remove=remove)
        assert cohort.alignment.dropped["phenotype missing"] == 6
        assert cohort.alignment.dropped["in --remove"] == 1
        assert len(cohort.sample_index) == 53
        np.testing.assert_allclose(cohort.phenotypes["y"].to_numpy(), y[cohort.sample_index])
        assert list(cohort.covariates.columns) == ["batch=b"]
        np.testing.assert_array_equal(cohort.covariates["batch=b"].to_numpy(), cohort.sample_index % 2)


def test_numeric_columns_read_by_pyarrow_equal_the_pandas_path(tmp_path, monkeypatch):
    """Number spellings and missing tokens give the same floats through pyarrow's parser as through
    pandas.to_numeric; a value pyarrow rejects (hexadecimal, digit separators, text) sends the
    column to the pandas path, which decides (categorical covariate, phenotype error)."""
    from deepprs.io import tables

    values = ["1", "+3", "-2.5", "1e5", "1E-5", ".5", "5.", "0001", "NA", "-9", ".", "nan", "-9.0", "inf",
              "1.5e+300", "-0"]
    rows = "".join(f"F{i}\tI{i}\t{v}\t{v}\t{['0x10', '1_000', 'x'][i % 3]}\n" for i, v in enumerate(values))
    path = _write(tmp_path / "c.txt", "FID\tIID\ta\tb\tc\n" + rows)
    assert tables._parse_numbers(pd.Series(["0x10", "2"], dtype=str)) is None
    assert tables._parse_numbers(pd.Series(["1_000"], dtype=str)) is None
    # NaN spellings that are not missing tokens: the pandas path decides (a phenotype error)
    assert tables._parse_numbers(pd.Series(["1", "NAN"], dtype=str)) is None
    assert tables._parse_numbers(pd.Series(["1", "-nan"], dtype=str)) is None
    with pytest.raises(InputError, match="non-numeric value 'NAN'"):
        read_phenotypes(_write(tmp_path / "nan.txt", "FID IID y\nF1 I1 1\nF2 I2 NAN\n"))
    fast_cov, fast_pheno = read_covariates(path), read_phenotypes(path, ["a", "b"])
    monkeypatch.setattr(tables, "_parse_numbers", lambda column: None)
    pd.testing.assert_frame_equal(fast_cov, read_covariates(path))
    pd.testing.assert_frame_equal(fast_pheno, read_phenotypes(path, ["a", "b"]))
    assert list(fast_cov.columns) == ["a", "b", "c=1_000", "c=x"]  # c is categorical either way
    np.testing.assert_array_equal(fast_cov["a"].to_numpy()[:8], [1, 3, -2.5, 1e5, 1e-5, 0.5, 5, 1])
    assert np.isnan(fast_cov["a"].to_numpy()[8:13]).all()
