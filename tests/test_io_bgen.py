"""BGEN reading through the public API, against files from the independent writer in tests/bgen_writer.py.

The writer returns the exact second-allele dosages its stored integers encode, so every check is exact
(to float rounding): bit widths 1-32, zlib / zstd / no compression, phased and unphased, missing samples,
layout 1 (v1.1) and layout 2 (v1.2/v1.3), sample and variant tables, and the files a reader must refuse.
The earlier bgen-reader backend failed the uncompressed layout-2, layout-1, non-diploid and truncated-file
cases (it misread, refused, or printed the error and returned), which is why deepprs now decodes BGEN itself.
"""

from __future__ import annotations

import sys
import zlib

import numpy as np
import pandas as pd
import pytest

from bgen_writer import write_bgen, write_sample_file
from deepprs.errors import InputError
from deepprs.io import open_genotypes
from deepprs.io.bgen import BgenReader

N_VARIANTS, N_SAMPLES = 40, 23          # odd, so bit-packed samples cross byte boundaries
SAMPLES, VARIANTS = [5, 0, 3], [7, 2, 39]
TOL = 1e-9

def probabilities(rng: np.random.Generator, phased: bool = False) -> np.ndarray:
    """Random genotype probabilities with some exact hard calls mixed in."""
    if phased:
        second = rng.random((N_VARIANTS, N_SAMPLES, 2))
        second[rng.random(second.shape) < 0.2] = 1.0
        second[rng.random(second.shape) < 0.2] = 0.0
        return np.stack([1.0 - second, second], axis=-1)
    p = rng.dirichlet([0.7, 0.7, 0.7], size=(N_VARIANTS, N_SAMPLES))
    hard = rng.random((N_VARIANTS, N_SAMPLES)) < 0.2
    p[hard] = np.eye(3)[rng.integers(0, 3, hard.sum())]
    return p


def missing_mask(rng: np.random.Generator) -> np.ndarray:
    """~10% missing, plus one variant and one sample missing entirely."""
    missing = rng.random((N_VARIANTS, N_SAMPLES)) < 0.1
    missing[4] = True
    missing[:, 6] = True
    return missing


def write(tmp_path, seed: int = 0, phased: bool = False, with_missing: bool = True, name: str = "x", **kwargs):
    rng = np.random.default_rng(seed)
    missing = missing_mask(rng) if with_missing else None
    path = tmp_path / f"{name}.bgen"
    truth = write_bgen(path, probabilities(rng, phased), phased=phased, missing=missing, **kwargs)
    return path, truth


def assert_dosage(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    assert np.nanmax(np.abs(actual - expected), initial=0.0) < TOL


def check_reads(path, truth: np.ndarray) -> None:
    """Every read route of the public API against the writer's truth (variants x samples)."""
    expected = truth.T                                                   # samples x variants
    with BgenReader(path) as reader:
        assert (reader.n_samples, reader.n_variants) == (N_SAMPLES, N_VARIANTS)
        assert_dosage(reader.read(dtype=np.float64), expected)
        assert_dosage(reader.read(SAMPLES, VARIANTS, dtype=np.float64), expected[np.ix_(SAMPLES, VARIANTS)])
        variant_major = reader.read_variant_major_dosage(np.array(VARIANTS))
        assert variant_major.shape == (len(VARIANTS), N_SAMPLES)
        assert_dosage(variant_major, truth[VARIANTS])
        hard = reader.read(SAMPLES, None, dtype=np.int8, missing="raw")
        assert hard.dtype == np.int8
        subset = expected[SAMPLES]
        np.testing.assert_array_equal(hard, np.where(np.isnan(subset), -1, np.rint(np.nan_to_num(subset))))


@pytest.mark.parametrize("phased", [False, True], ids=["unphased", "phased"])
@pytest.mark.parametrize("bits", [8, 16, 32, 1, 3, 5, 10, 23])
def test_layout2_bit_widths(tmp_path, bits, phased):
    path, truth = write(tmp_path, seed=bits, phased=phased, bits=bits)
    assert np.isnan(truth).any() and not np.isnan(truth).all()
    check_reads(path, truth)


@pytest.mark.parametrize("phased", [False, True], ids=["unphased", "phased"])
@pytest.mark.parametrize("bits", [8, 3, 16])
def test_layout2_zstd(tmp_path, bits, phased):
    pytest.importorskip("zstandard")
    path, truth = write(tmp_path, seed=100 + bits, phased=phased, bits=bits, compression="zstd")
    check_reads(path, truth)


@pytest.mark.parametrize("phased", [False, True], ids=["unphased", "phased"])
@pytest.mark.parametrize("bits", [8, 5, 32])
def test_layout2_uncompressed(tmp_path, bits, phased):
    path, truth = write(tmp_path, seed=200 + bits, phased=phased, bits=bits, compression=None)
    check_reads(path, truth)


@pytest.mark.parametrize("compression", ["zlib", None])
def test_layout1(tmp_path, compression):
    path, truth = write(tmp_path, seed=7, layout=1, compression=compression)
    assert np.isnan(truth).any()
    check_reads(path, truth)


def test_layout2_without_missing_and_other_read_routes(tmp_path):
    path, truth = write(tmp_path, seed=3, with_missing=False, bits=10)
    assert not np.isnan(truth).any()
    check_reads(path, truth)
    with open_genotypes(path) as reader:
        assert isinstance(reader, BgenReader)
        default = reader.read()                                          # float32, missing="nan"
        assert default.dtype == np.float32
        np.testing.assert_allclose(default, truth.T, atol=1e-6)
        blocks = list(reader.iter_blocks(9, samples=SAMPLES, dtype=np.float64))
        assert [len(block.variant_index) for block in blocks] == [9, 9, 9, 9, 4]
        assert_dosage(np.concatenate([block.dosage for block in blocks], axis=1), truth.T[SAMPLES])


def test_missing_mean_imputation(tmp_path):
    path, truth = write(tmp_path, seed=11, bits=16)
    expected = truth.T
    observed = (~np.isnan(expected)).sum(axis=0)
    mean = np.divide(np.nansum(expected, axis=0), observed, out=np.zeros(N_VARIANTS), where=observed > 0)
    expected = np.where(np.isnan(expected), mean, expected)
    with BgenReader(path) as reader:
        actual = reader.read(dtype=np.float64, missing="mean")
    assert not np.isnan(actual).any()
    assert np.abs(actual - expected).max() < TOL
    np.testing.assert_array_equal(actual[:, 4], 0.0)                     # a variant missing in every sample


def test_header_free_data_and_zero_magic(tmp_path):
    path, truth = write(tmp_path, seed=5, bits=5, free_data=b"written by tests/bgen_writer.py")
    check_reads(path, truth)
    data = bytearray(path.read_bytes())
    data[16:20] = b"\x00\x00\x00\x00"                                     # the spec says readers accept it
    zero_magic = tmp_path / "zero_magic.bgen"
    zero_magic.write_bytes(bytes(data))
    check_reads(zero_magic, truth)


# --------------------------------------------------------------------------- variant and sample tables

def test_variant_table(tmp_path):
    variants = [{"chrom": "1", "pos": 1000 * (j + 1), "id": f"snp{j}", "rsid": f"rs{j}", "alleles": ["A", "G"]}
                for j in range(N_VARIANTS)]
    variants[1] = {"chrom": "X", "pos": 4_000_000_000, "id": "X:4000000000", "rsid": "", "alleles": ["C", "T"]}
    variants[2] = {"chrom": "22", "pos": 17, "id": "indel", "rsid": "rs2", "alleles": ["ACGT" * 40, "A"]}
    variants[3] = {"chrom": "01", "pos": 0, "id": "", "rsid": "rs3", "alleles": ["G", "GTTT"]}
    path, truth = write(tmp_path, seed=1, variants=variants)
    with BgenReader(path) as reader:
        table = reader.variant_table
        assert list(table.columns) == ["chrom", "pos", "id", "ref", "alt", "a1", "cm"]
        assert table["chrom"].tolist()[:4] == ["1", "X", "22", "01"]
        assert table["pos"].tolist()[:4] == [1000, 4_000_000_000, 17, 0]
        assert table["id"].tolist()[:5] == ["rs0", "X:4000000000", "rs2", "rs3", "rs4"]   # rsid, else the id
        assert table["ref"].tolist()[:4] == ["A", "C", "ACGT" * 40, "G"]                   # first allele
        assert table["alt"].tolist()[:4] == ["G", "T", "A", "GTTT"]                        # second allele ...
        assert table["a1"].tolist() == table["alt"].tolist()                               # ... is the counted one
        assert (table["cm"] == 0).all()
        assert_dosage(reader.read(dtype=np.float64), truth.T)


def test_sample_ids_from_bgen(tmp_path):
    ids = [f"person_{i:02d}" for i in range(N_SAMPLES)]
    path, truth = write(tmp_path, sample_ids=ids)
    with BgenReader(path) as reader:
        assert reader.sample_table["iid"].tolist() == ids
        assert reader.sample_table["fid"].tolist() == ids
        assert list(reader.sample_table.columns) == ["fid", "iid", "father", "mother", "sex"]
        assert_dosage(reader.read(dtype=np.float64), truth.T)


def test_sample_ids_default_without_block(tmp_path):
    path, _ = write(tmp_path)
    with BgenReader(path) as reader:
        assert reader.sample_table["iid"].tolist() == [f"sample_{i}" for i in range(N_SAMPLES)]


def test_sample_file_takes_precedence(tmp_path):
    path, truth = write(tmp_path, name="cohort", sample_ids=[f"bgen_{i}" for i in range(N_SAMPLES)])
    fid, iid = [f"F{i}" for i in range(N_SAMPLES)], [f"I{i}" for i in range(N_SAMPLES)]
    sex = [1, 2, 0] * (N_SAMPLES // 3) + [1] * (N_SAMPLES % 3)
    write_sample_file(tmp_path / "cohort.sample", fid, iid, sex=sex)
    with open_genotypes(tmp_path / "cohort") as reader:                 # by prefix
        assert isinstance(reader, BgenReader)
        assert reader.sample_table["fid"].tolist() == fid
        assert reader.sample_table["iid"].tolist() == iid
        assert reader.sample_table["sex"].tolist() == sex
        assert_dosage(reader.read(dtype=np.float64), truth.T)


def test_sample_file_with_wrong_sample_count(tmp_path):
    path, _ = write(tmp_path, name="cohort")
    ids = [f"I{i}" for i in range(N_SAMPLES - 1)]
    write_sample_file(tmp_path / "cohort.sample", ids, ids)
    with pytest.raises(InputError, match="samples"):
        BgenReader(path)


# --------------------------------------------------------------------------- files a reader must refuse

def test_multiallelic_variant_is_refused(tmp_path):
    n_alleles = np.full(N_VARIANTS, 2)
    n_alleles[9] = 3
    path, _ = write(tmp_path, n_alleles=n_alleles)
    with pytest.raises(InputError, match="biallelic"):
        with BgenReader(path) as reader:
            reader.read()


@pytest.mark.parametrize("case", ["one_triploid", "one_ploidy_zero"])
def test_other_ploidies_are_refused(tmp_path, case):
    ploidy = np.full((N_VARIANTS, N_SAMPLES), 2)
    ploidy[12, 5] = 3 if case == "one_triploid" else 0
    path, _ = write(tmp_path, ploidy=ploidy)
    with pytest.raises(InputError, match="ploidy"):                    # at open or at read
        with BgenReader(path) as reader:
            reader.read()


@pytest.mark.parametrize("phased", [False, True], ids=["unphased", "phased"])
@pytest.mark.parametrize("bits", [8, 5, 16])
def test_haploid_samples_count_two_copies(tmp_path, bits, phased):
    """Haploid samples (males on chrX; a whole haploid variant, as chrY) are read as plink2 imports
    them: 2 x P(second allele), so they sit on the 0-2 scale of the diploid samples."""
    ploidy = np.full((N_VARIANTS, N_SAMPLES), 2)
    ploidy[10:30, ::3] = 1                               # chrX-like variants: every third sample haploid
    ploidy[12] = 1                                       # a chrY-like variant: haploid in every sample
    path, truth = write(tmp_path, seed=50 + bits, phased=phased, bits=bits, ploidy=ploidy)
    expected = np.where(ploidy == 1, 2 * truth, truth)  # the writer reports haploid dosages on 0-1
    assert np.isnan(expected[10:30, ::3]).any()          # missing haploid calls too
    # diploid-only variants around them, in the same blocks
    with BgenReader(path) as reader:
        assert_dosage(reader.read_variant_major_dosage(np.arange(5, 35)), expected[5:35])
        assert_dosage(reader.read_variant_major_dosage(np.array([12, 3, 20, 39])), expected[[12, 3, 20, 39]])
    check_reads(path, expected)


def test_truncated_file_is_refused(tmp_path):
    path, _ = write(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-7])                                          # the last variant's data cut short
    with pytest.raises(InputError, match="truncated"):
        with BgenReader(path) as reader:
            reader.read()


def test_wrong_magic_is_refused(tmp_path):
    path, _ = write(tmp_path)
    data = bytearray(path.read_bytes())
    data[16:20] = b"BGEN"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="not a BGEN"):
        BgenReader(path)


def test_corrupt_compressed_data_is_refused(tmp_path):
    path, _ = write(tmp_path, bits=8)
    with BgenReader(path) as reader:
        middle = int(reader._index.data_start[20] + reader._index.data_length[20] // 2)
    data = bytearray(path.read_bytes())
    data[middle : middle + 16] = bytes(16)
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="decompress"):
        with BgenReader(path) as reader:
            reader.read()


# --------------------------------------------------------------------------- decoding paths

def test_missing_calls_are_listed_apart(tmp_path):
    path, truth = write(tmp_path, seed=21, bits=8)
    with BgenReader(path) as reader:
        dosage, missing_variant, missing_sample = reader.read_dosage_calls(np.array(VARIANTS + [4]))
    expected = truth[VARIANTS + [4]]
    rows, samples = np.nonzero(np.isnan(expected))
    np.testing.assert_array_equal(missing_variant, rows)
    np.testing.assert_array_equal(missing_sample, samples)
    assert_dosage(dosage, np.nan_to_num(expected, nan=0.0))            # 0 at the missing calls


def test_variants_with_different_bit_depths_in_one_file(tmp_path):
    """Each variant carries its own bit depth and phasing: splice the variant blocks of two files."""
    path_a, truth_a = write(tmp_path, seed=31, bits=8, name="a")
    second = [{"chrom": "2", "pos": 10 * (j + 1), "id": f"b{j}", "rsid": f"rs_b{j}", "alleles": ["C", "T"]}
              for j in range(N_VARIANTS)]
    path_b, truth_b = write(tmp_path, seed=32, bits=5, phased=True, name="b", variants=second)
    a, b = path_a.read_bytes(), path_b.read_bytes()
    first_a, first_b = int.from_bytes(a[:4], "little") + 4, int.from_bytes(b[:4], "little") + 4
    header = bytearray(a[:first_a])
    header[8:12] = (2 * N_VARIANTS).to_bytes(4, "little")                # M: both files' variants
    spliced = tmp_path / "spliced.bgen"
    spliced.write_bytes(bytes(header) + a[first_a:] + b[first_b:])
    truth = np.concatenate([truth_a, truth_b])
    with BgenReader(spliced) as reader:
        assert reader.n_variants == 2 * N_VARIANTS
        assert_dosage(reader.read(dtype=np.float64), truth.T)
        picked = np.array([3, N_VARIANTS + 5, 7, N_VARIANTS])            # both depths in one read
        assert_dosage(reader.read_variant_major_dosage(picked), truth[picked])


def test_standard_zlib_and_small_reads_give_the_same_dosages(tmp_path, monkeypatch):
    import deepprs.io.bgen as bgen

    path, truth = write(tmp_path, seed=41, bits=16)
    with BgenReader(path) as reader:
        default = reader.read(dtype=np.float64)
    monkeypatch.setitem(sys.modules, "zlib_ng", None)                  # no zlib-ng: the standard zlib
    assert bgen.zlib_module() is zlib
    monkeypatch.setattr(bgen, "_MAX_READ", 100)                        # one pread per variant or two
    with BgenReader(path) as reader:
        np.testing.assert_array_equal(reader.read(dtype=np.float64), default)
    assert_dosage(default, truth.T)


def test_sample_file_sex_codes_and_encoding(tmp_path):
    """plink2 accepts sex 0/1/2/NA in a .sample file and stops on other codes; so do we (the sex
    decides the chrX/chrY rules of a GWAS). A file that is not text is an InputError too."""
    path, _ = write(tmp_path, name="cohort")
    ids = [f"I{i}" for i in range(N_SAMPLES)]
    sex = (["1", "2", "0", "NA"] * N_SAMPLES)[:N_SAMPLES]
    write_sample_file(tmp_path / "cohort.sample", ids, ids, sex=sex)
    with BgenReader(path) as reader:
        assert reader.sample_table["sex"].tolist() == [{"1": 1, "2": 2}.get(code, 0) for code in sex]
    for bad in ("M", "-9", "3"):
        write_sample_file(tmp_path / "cohort.sample", ids, ids, sex=[bad] + sex[1:])
        with pytest.raises(InputError, match=f"line 3: invalid sex code '{bad}'"):
            BgenReader(path)
    lines = ["ID_1 ID_2 missing sex", "0 0 0 D", "", *[f"{i} {i} 0 1" for i in ids[:-1]], f"{ids[-1]} {ids[-1]} 0 M"]
    (tmp_path / "cohort.sample").write_text("\n".join(lines) + "\n")   # a blank line: numbers still count it
    with pytest.raises(InputError, match=f"line {N_SAMPLES + 3}: invalid sex code 'M'"):
        BgenReader(path)
    (tmp_path / "cohort.sample").write_bytes(b"ID_1 ID_2 missing sex\n0 0 0 D\n\xff\xfe 1 0 1\n")
    with pytest.raises(InputError, match="not a text .sample file"):
        BgenReader(path)


@pytest.mark.parametrize("layout, compression", [(2, "zlib"), (2, None), (1, "zlib"), (1, None)])
def test_bgi_index_gives_the_same_reads_without_scanning(tmp_path, monkeypatch, layout, compression):
    """With a bgenix .bgi beside the .bgen the variant table and block spans come from the index (the
    variant blocks are not scanned at open); reads equal those of a scan. A variant without an rsid
    gets its SNP id from the file."""
    import deepprs.io.bgen as bgen

    variants = [{"chrom": "1", "pos": 1000 * (j + 1), "id": f"snp{j}", "rsid": "" if j == 7 else f"rs{j}",
                 "alleles": ["A", "G"]} for j in range(N_VARIANTS)]
    path, truth = write(tmp_path, seed=61, layout=layout, compression=compression, variants=variants, bgi=True)
    assert (tmp_path / "x.bgen.bgi").exists()
    monkeypatch.setattr(bgen, "scan_variants", lambda *args: pytest.fail("the .bgi should spare the scan"))
    with BgenReader(path) as reader:
        assert reader.variant_table["id"].tolist()[6:9] == ["rs6", "snp7", "rs8"]
        check_reads(path, truth)
        indexed = reader.variant_table
    monkeypatch.undo()
    (tmp_path / "x.bgen.bgi").unlink()
    with BgenReader(path) as reader:
        pd.testing.assert_frame_equal(reader.variant_table, indexed)


def test_stale_bgi_index_is_ignored_with_a_warning(tmp_path):
    import sqlite3

    path, truth = write(tmp_path, seed=62, bgi=True)
    connection = sqlite3.connect(tmp_path / "x.bgen.bgi")                # one variant missing from the index
    connection.execute("DELETE FROM Variant WHERE position = 5000")
    connection.commit()
    connection.close()
    with pytest.warns(UserWarning, match="does not describe"):
        reader = BgenReader(path)
    with reader:                                                           # the file was scanned instead
        assert reader.n_variants == N_VARIANTS
        assert_dosage(reader.read(dtype=np.float64), truth.T)
    (tmp_path / "x.bgen.bgi").write_bytes(b"not a database")
    with pytest.warns(UserWarning, match="cannot be read as a bgenix index"), BgenReader(path) as reader:
        assert_dosage(reader.read(dtype=np.float64), truth.T)
