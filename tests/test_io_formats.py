"""Genotype formats: .bed, .pgen and .bgen agree with each other and with plink2's own outputs.

Fixtures in tests/data/io (built by tests/data/io/make_fixtures.sh): 60 samples x 200 variants of
the 1000G EUR subset with ~3% genotypes set missing, plus plink2's --freq and --export A of them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepprs.errors import InputError
from deepprs.io import BedReader, PackedGenotypes, open_genotypes, write_bed
from deepprs.io.pgen import PgenReader, read_psam, read_pvar, write_pgen
from deepprs.io.standardize import allele_frequency, standardize

DATA = Path(__file__).parent / "data" / "io"
PREFIX = DATA / "eur60"
HAS_PLINK2 = shutil.which("plink2") is not None


@pytest.fixture(scope="module")
def bed_fixture() -> BedReader:
    return BedReader(PREFIX)


@pytest.fixture(scope="module")
def pgen_fixture() -> PgenReader:
    return PgenReader(PREFIX)


@pytest.fixture(scope="module")
def raw_truth_fixture() -> pd.DataFrame:
    """plink2 --export A: one column ID_ALLELE per variant holding copies of ALLELE."""
    return pd.read_csv(f"{PREFIX}.raw", sep="\t", na_values=["NA"])


def _small_tables(n: int, m: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    samples = pd.DataFrame({"fid": [f"F{i}" for i in range(n)], "iid": [f"I{i}" for i in range(n)],
                            "father": "0", "mother": "0", "sex": [1 + i % 2 for i in range(n)]})
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(1, m + 1) * 100,
                             "id": [f"v{j}" for j in range(m)],
                             "ref": "A", "alt": "G", "a1": "G", "cm": 0.0})
    return samples, variants


# --------------------------------------------------------------------------- fixture files vs plink2

def test_fixture_has_missing_genotypes(bed_fixture):
    dosage = bed_fixture.read()
    assert dosage.shape == (60, 200)
    assert 0.02 < np.isnan(dosage).mean() < 0.05


def test_bed_matches_plink2_export_a(bed_fixture, raw_truth_fixture):
    dosage = bed_fixture.read(dtype=np.float64)
    variant_columns = raw_truth_fixture.columns[6:]
    assert len(variant_columns) == bed_fixture.n_variants
    assert list(raw_truth_fixture["IID"].astype(str)) == list(bed_fixture.sample_table["iid"])
    for j, column in enumerate(variant_columns):
        variant_id, counted = column.rsplit("_", 1)
        row = bed_fixture.variant_table.iloc[j]
        assert variant_id == row["id"]
        truth = raw_truth_fixture[column].to_numpy(dtype=float)
        # plink2 a3.5 counts REF in --export A; orientation must be read from the column name
        expected = truth if counted == row["a1"] else 2.0 - truth
        assert counted in (row["a1"], row["ref"])
        np.testing.assert_array_equal(dosage[:, j], expected)


@pytest.mark.parametrize("reader", ["bed", "pgen"])
def test_alt_frequency_matches_plink2_freq(reader, bed_fixture, pgen_fixture):
    source = bed_fixture if reader == "bed" else pgen_fixture
    afreq = pd.read_csv(DATA / f"eur60_{reader}.afreq", sep="\t")
    dosage = source.read()
    assert list(afreq["ID"]) == list(source.variant_table["id"])
    assert list(afreq["ALT"]) == list(source.variant_table["a1"])       # counted allele = ALT
    assert list(afreq["REF"]) == list(source.variant_table["ref"])
    np.testing.assert_array_equal(afreq["OBS_CT"], 2 * (~np.isnan(dosage)).sum(0))
    np.testing.assert_allclose(np.nanmean(dosage, axis=0) / 2, afreq["ALT_FREQS"], atol=5e-7)
    np.testing.assert_allclose(allele_frequency(dosage), afreq["ALT_FREQS"], atol=5e-7)


def test_pgen_equals_bed_read_and_blocks(bed_fixture, pgen_fixture):
    bed_dosage = bed_fixture.read()
    np.testing.assert_array_equal(pgen_fixture.read(), bed_dosage)
    np.testing.assert_array_equal(pgen_fixture.read(dtype=np.int8, missing="raw"),
                                  bed_fixture.read(dtype=np.int8, missing="raw"))
    for source in (bed_fixture, pgen_fixture):
        blocks = list(source.iter_blocks(37))
        assert [len(b.variant_index) for b in blocks] == [37] * 5 + [15]
        np.testing.assert_array_equal(np.concatenate([b.dosage for b in blocks], axis=1), bed_dosage)
    assert pgen_fixture.variant_table.equals(bed_fixture.variant_table.assign(
        cm=pgen_fixture.variant_table["cm"]))
    np.testing.assert_allclose(pgen_fixture.variant_table["cm"], bed_fixture.variant_table["cm"], atol=1e-6)
    pd.testing.assert_frame_equal(pgen_fixture.sample_table[["fid", "iid", "sex"]],
                                  bed_fixture.sample_table[["fid", "iid", "sex"]])


def test_pgen_unsorted_repeated_sample_subset(bed_fixture, pgen_fixture):
    samples = [59, 3, 3, 0, 17, 8]
    variants = [199, 5, 6, 7, 0]
    expected = bed_fixture.read(samples=samples, variants=variants)
    np.testing.assert_array_equal(pgen_fixture.read(samples=samples, variants=variants), expected)
    # switching back to all samples after a subset must not keep the subset
    np.testing.assert_array_equal(pgen_fixture.read(variants=[0]), bed_fixture.read(variants=[0]))
    mask = np.zeros(60, dtype=bool)
    mask[::7] = True
    np.testing.assert_array_equal(pgen_fixture.read(samples=mask, missing="mean"),
                                  bed_fixture.read(samples=mask, missing="mean"))


def test_open_genotypes_dispatch():
    assert isinstance(open_genotypes(PREFIX), BedReader)                  # .bed wins for a bare prefix
    assert isinstance(open_genotypes(f"{PREFIX}.pgen"), PgenReader)
    assert isinstance(open_genotypes(PREFIX, file_format="pgen"), PgenReader)


# --------------------------------------------------------------------------- writers

def test_write_bed_round_trip_is_byte_identical(bed_fixture, tmp_path):
    dosage = bed_fixture.read(dtype=np.int8, missing="raw")
    write_bed(tmp_path / "copy", dosage, bed_fixture.sample_table, bed_fixture.variant_table)
    assert (tmp_path / "copy.bed").read_bytes() == (DATA / "eur60.bed").read_bytes()
    copy = BedReader(tmp_path / "copy")
    pd.testing.assert_frame_equal(copy.variant_table, bed_fixture.variant_table)
    np.testing.assert_array_equal(copy.read(), bed_fixture.read())
    assert not list(tmp_path.glob(".*tmp*"))


def test_write_bed_float_input_with_nan(tmp_path):
    samples, variants = _small_tables(5, 3)
    dosage = np.array([[0, 1, 2], [np.nan, 2, 0], [1, 1, 1], [2, np.nan, 0], [0, 0, 2]], dtype=float)
    write_bed(tmp_path / "x", dosage, samples, variants)
    np.testing.assert_array_equal(BedReader(tmp_path / "x").read(dtype=np.float64), dosage)


def test_write_pgen_round_trip(bed_fixture, tmp_path):
    dosage = bed_fixture.read()
    write_pgen(tmp_path / "copy", dosage, bed_fixture.sample_table, bed_fixture.variant_table)
    copy = PgenReader(tmp_path / "copy")
    np.testing.assert_array_equal(copy.read(), dosage)
    pd.testing.assert_frame_equal(copy.variant_table, bed_fixture.variant_table)
    pd.testing.assert_frame_equal(copy.sample_table[["fid", "iid", "sex"]],
                                  bed_fixture.sample_table[["fid", "iid", "sex"]])


@pytest.mark.skipif(not HAS_PLINK2, reason="plink2 not installed")
def test_write_pgen_read_by_plink2(bed_fixture, tmp_path):
    write_pgen(tmp_path / "copy", bed_fixture.read(), bed_fixture.sample_table, bed_fixture.variant_table)
    subprocess.run(["plink2", "--pfile", str(tmp_path / "copy"), "--freq", "--out", str(tmp_path / "copy")],
                   check=True, capture_output=True)
    ours = pd.read_csv(tmp_path / "copy.afreq", sep="\t")
    truth = pd.read_csv(DATA / "eur60_bed.afreq", sep="\t")
    pd.testing.assert_frame_equal(ours[["ID", "REF", "ALT", "ALT_FREQS", "OBS_CT"]],
                                  truth[["ID", "REF", "ALT", "ALT_FREQS", "OBS_CT"]])


def test_write_pgen_swaps_alleles_when_a1_is_ref(tmp_path):
    samples, variants = _small_tables(4, 2)
    variants.loc[1, "a1"] = "A"                      # counts the REF allele of variant 1
    dosage = np.array([[0, 2], [1, 1], [2, 0], [np.nan, 2]])
    write_pgen(tmp_path / "s", dosage, samples, variants)
    back = PgenReader(tmp_path / "s")
    assert list(back.variant_table["alt"]) == ["G", "A"] and list(back.variant_table["ref"]) == ["A", "G"]
    np.testing.assert_array_equal(back.read(dtype=np.float64), dosage)
    variants.loc[1, "a1"] = "T"
    with pytest.raises(InputError, match="neither ref nor alt"):
        write_pgen(tmp_path / "t", dosage, samples, variants)


# --------------------------------------------------------------------------- .pvar / .psam parsing

def _write_pgen_body(prefix: Path, genotypes_vm: np.ndarray) -> None:
    import pgenlib

    n_variants, n_samples = genotypes_vm.shape
    writer = pgenlib.PgenWriter(bytes(Path(f"{prefix}.pgen")), n_samples, n_variants, False)
    writer.append_biallelic_batch(np.ascontiguousarray(genotypes_vm.astype(np.int8)))
    writer.close()


def test_pvar_with_info_columns_and_iid_only_psam(tmp_path):
    prefix = tmp_path / "p"
    _write_pgen_body(prefix, np.array([[0, 1, 2], [2, -9, 0]]))
    (tmp_path / "p.pvar").write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        "1\t10\trs1\tA\tG\t.\tPASS\tAF=0.5\n1\t20\trs2\tC\tT\t50\t.\t.\n")
    (tmp_path / "p.psam").write_text("#IID\tSEX\tPHENO1\ns1\tM\t1\ns2\tF\t2\ns3\tNA\t1\n")
    source = PgenReader(prefix)
    assert list(source.sample_table["fid"]) == ["0", "0", "0"]      # plink2: an absent FID is 0
    assert source.sample_table.attrs["fid_absent"]
    assert list(source.sample_table["sex"]) == [1, 2, 0]
    assert list(source.variant_table["a1"]) == ["G", "T"]
    assert list(source.variant_table["cm"]) == [0.0, 0.0]
    np.testing.assert_array_equal(source.read(dtype=np.float64), [[0, 2], [1, np.nan], [2, 0]])


def test_headerless_pvar_and_psam_use_bim_and_fam_order(tmp_path):
    variants = read_pvar(DATA / "eur60.bim")
    bim_order = BedReader(PREFIX).variant_table
    pd.testing.assert_frame_equal(variants, bim_order)
    samples = read_psam(DATA / "eur60.fam")
    assert list(samples["iid"]) == list(BedReader(PREFIX).sample_table["iid"])


def test_multiallelic_pvar_is_rejected(tmp_path):
    prefix = tmp_path / "m"
    _write_pgen_body(prefix, np.array([[0, 1, 2], [2, 1, 0]]))
    (tmp_path / "m.pvar").write_text("#CHROM\tPOS\tID\tREF\tALT\n1\t10\trs1\tA\tG\n1\t20\trs2\tC\tT,G\n")
    (tmp_path / "m.psam").write_text("#FID\tIID\nf\ts1\nf\ts2\nf\ts3\n")
    with pytest.raises(InputError, match=r"multi-allelic.*rs2.*--max-alleles 2"):
        PgenReader(prefix)


def test_pvar_missing_required_column(tmp_path):
    (tmp_path / "bad.pvar").write_text("#CHROM\tPOS\tID\tREF\n1\t10\trs1\tA\n")
    with pytest.raises(InputError, match="lacks column.*ALT"):
        read_pvar(tmp_path / "bad.pvar")


# --------------------------------------------------------------------------- BGEN

def test_bgen_matches_bed(bed_fixture):
    from deepprs.io.bgen import BgenReader

    files_before = sorted(DATA.iterdir())
    with open_genotypes(DATA / "eur60.bgen") as source:
        assert isinstance(source, BgenReader)
        pd.testing.assert_frame_equal(source.sample_table[["fid", "iid", "sex"]],
                                      bed_fixture.sample_table[["fid", "iid", "sex"]])
        assert list(source.variant_table["a1"]) == list(bed_fixture.variant_table["a1"])   # 2nd allele = ALT
        assert list(source.variant_table["ref"]) == list(bed_fixture.variant_table["ref"])
        assert list(source.variant_table["id"]) == list(bed_fixture.variant_table["id"])
        np.testing.assert_array_equal(source.variant_table["pos"], bed_fixture.variant_table["pos"])
        expected = bed_fixture.read(dtype=np.float64)
        np.testing.assert_array_equal(source.read(dtype=np.float64), expected)
        blocks = np.concatenate([b.dosage for b in source.iter_blocks(64)], axis=1)
        np.testing.assert_array_equal(blocks, expected.astype(np.float32))
        subset = {"samples": [4, 2], "variants": [9, 1], "missing": "raw", "dtype": np.int8}
        np.testing.assert_array_equal(source.read(**subset), bed_fixture.read(**subset))
        np.testing.assert_allclose(source.read(missing="mean"), bed_fixture.read(missing="mean"), rtol=1e-6)
    assert sorted(DATA.iterdir()) == files_before           # no index or cache file written beside the input


def test_bgen_zstd_without_zstandard_gives_install_hint(monkeypatch, tmp_path):
    from deepprs.io.bgen import BgenReader

    monkeypatch.setitem(sys.modules, "zstandard", None)               # makes `import zstandard` fail
    data = bytearray((DATA / "eur60.bgen").read_bytes())
    flags_at = 4 + int.from_bytes(data[4:8], "little") - 4
    flags = int.from_bytes(data[flags_at : flags_at + 4], "little")
    data[flags_at : flags_at + 4] = ((flags & ~3) | 2).to_bytes(4, "little")   # compression: zstd
    (tmp_path / "x.bgen").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"zstd.*pip install deepprs\[bgen\]"):
        BgenReader(tmp_path / "x.bgen")


def test_bgen_wrong_magic(tmp_path):
    from deepprs.io.bgen import BgenReader

    (tmp_path / "x.bgen").write_bytes(b"\x00" * 16 + b"nope" + b"\x00" * 40)
    with pytest.raises(InputError, match="not a BGEN file"):
        BgenReader(tmp_path / "x.bgen")


# --------------------------------------------------------------------------- properties (hypothesis)

@st.composite
def genotype_matrices(draw) -> np.ndarray:
    n = draw(st.integers(1, 13))
    m = draw(st.integers(1, 11))
    cells = draw(st.lists(st.sampled_from([-1, 0, 1, 2]), min_size=n * m, max_size=n * m))
    return np.array(cells, dtype=np.int8).reshape(n, m)


@settings(max_examples=40, deadline=None)
@given(dosage=genotype_matrices(), data=st.data())
def test_bed_and_pgen_round_trip_any_shape(dosage, data):
    n, m = dosage.shape
    samples, variants = _small_tables(n, m)
    with tempfile.TemporaryDirectory() as tmp:
        write_bed(f"{tmp}/g", dosage, samples, variants)
        write_pgen(f"{tmp}/g", dosage, samples, variants)
        expected = np.where(dosage < 0, np.nan, dosage).astype(np.float32)
        for source in (BedReader(f"{tmp}/g"), PgenReader(f"{tmp}/g")):
            np.testing.assert_array_equal(source.read(), expected)
            sample_index = data.draw(st.lists(st.integers(0, n - 1), max_size=2 * n))
            block_size = data.draw(st.integers(1, m + 2))
            got = [b.dosage for b in source.iter_blocks(block_size, samples=sample_index)]
            np.testing.assert_array_equal(np.concatenate(got, axis=1), expected[sample_index])
            source.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_block_iteration_any_block_size_and_subset(data, bed_fixture, pgen_fixture):
    full = bed_fixture.read()
    samples = data.draw(st.lists(st.integers(0, 59), min_size=1, max_size=80) | st.none())
    variants = data.draw(st.lists(st.integers(0, 199), min_size=1, max_size=120, unique=True) | st.none())
    block_size = data.draw(st.integers(1, 260))
    missing = data.draw(st.sampled_from(["nan", "raw", "mean"]))
    rows = np.arange(60) if samples is None else np.array(samples)
    cols = np.arange(200) if variants is None else np.array(variants)
    for source in (bed_fixture, pgen_fixture):
        dtype = np.int8 if missing == "raw" else np.float32
        blocks = list(source.iter_blocks(block_size, samples=samples, variants=variants, dtype=dtype,
                                         missing=missing))
        np.testing.assert_array_equal(np.concatenate([b.variant_index for b in blocks]), cols)
        got = np.concatenate([b.dosage for b in blocks], axis=1)
        direct = full[np.ix_(rows, cols)]
        if missing == "raw":
            np.testing.assert_array_equal(got, np.where(np.isnan(direct), -1, direct).astype(np.int8))
        elif missing == "nan":
            np.testing.assert_array_equal(got, direct)
        else:   # mean imputation uses the selected samples only, per variant (block-size independent)
            observed = ~np.isnan(direct)
            column_mean = np.divide(np.where(observed, direct, 0).sum(0), observed.sum(0),
                                    out=np.zeros(direct.shape[1]), where=observed.sum(0) > 0)
            np.testing.assert_allclose(got, np.where(np.isnan(direct), column_mean, direct), rtol=1e-6)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_packed_unpack_equals_direct_read(data, bed_fixture, pgen_fixture):
    source = data.draw(st.sampled_from([bed_fixture, pgen_fixture]))
    samples = data.draw(st.lists(st.integers(0, 59), min_size=2, max_size=60, unique=True) | st.none())
    variants = data.draw(st.lists(st.integers(0, 199), min_size=1, max_size=200, unique=True) | st.none())
    block_size = data.draw(st.integers(1, 300))
    packed = PackedGenotypes.from_source(source, samples=samples, variants=variants, block_size=block_size)
    direct = source.read(samples=samples, variants=variants)
    batch = data.draw(st.lists(st.integers(0, len(direct) - 1), min_size=1, max_size=20))
    np.testing.assert_array_equal(packed.unpack(batch).numpy(), direct[batch])
    # variant_stats vs numpy over a training subset
    train = data.draw(st.lists(st.integers(0, len(direct) - 1), min_size=2, max_size=60, unique=True))
    mean, sd = packed.variant_stats(train, batch_size=data.draw(st.integers(1, 64)))
    sub = direct[train].astype(np.float64)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # all-missing columns in a tiny subset
        expected_mean = np.nan_to_num(np.nanmean(sub, axis=0))
        expected_sd = np.nanstd(sub, axis=0, ddof=1)
    expected_sd = np.where(~np.isfinite(expected_sd) | (expected_sd < 1e-8), 1.0, expected_sd)
    np.testing.assert_allclose(mean, expected_mean, atol=1e-12)
    np.testing.assert_allclose(sd, expected_sd, rtol=1e-9)
    # standardised unpack == (x - mean) / sd with missing -> 0, and equals standardize()
    z = packed.unpack(batch, center=torch.tensor(mean), scale=torch.tensor(sd), dtype=torch.float64).numpy()
    expected_z = np.where(np.isnan(direct[batch]), 0.0, (direct[batch] - mean) / sd)
    np.testing.assert_allclose(z, expected_z, atol=1e-12)
    z2, _, _ = standardize(direct[batch], mean, sd)
    np.testing.assert_allclose(z2, expected_z, atol=1e-12)


# --------------------------------------------------------------------------- standardize / allele_frequency

def test_standardize_closed_form():
    dosage = np.array([[0, 2, 1, np.nan], [1, 2, np.nan, np.nan], [2, 2, 1, np.nan], [np.nan, 2, 0, np.nan]])
    z, mean, sd = standardize(dosage)
    np.testing.assert_allclose(mean, [1.0, 2.0, 2 / 3, 0.0])
    np.testing.assert_allclose(sd, [1.0, 1.0, np.sqrt(1 / 3), 1.0])     # monomorphic / all-missing -> 1
    np.testing.assert_allclose(z[:, 0], [-1, 0, 1, 0])
    np.testing.assert_allclose(z[:, 2], [(1 - 2 / 3) / np.sqrt(1 / 3), 0, (1 - 2 / 3) / np.sqrt(1 / 3),
                                         -(2 / 3) / np.sqrt(1 / 3)])
    assert (z[:, 1] == 0).all() and (z[:, 3] == 0).all()
    raw = np.where(np.isnan(dosage), -1, dosage).astype(np.int8)
    z_raw, mean_raw, sd_raw = standardize(raw)
    np.testing.assert_allclose(z_raw, z)
    z_t, mean_t, _ = standardize(torch.tensor(dosage))
    assert isinstance(z_t, torch.Tensor)
    np.testing.assert_allclose(z_t.numpy(), z, rtol=1e-6)
    _, _, sd_binomial = standardize(dosage, method="binomial")
    p = np.array([0.5, 1.0, 1 / 3, 0.0])
    np.testing.assert_allclose(sd_binomial, np.where(p * (1 - p) > 0, np.sqrt(2 * p * (1 - p)), 1.0))
    z_given, mean_given, sd_given = standardize(dosage, mean=np.ones(4), sd=np.full(4, 2.0))
    np.testing.assert_allclose(z_given[:, 0], [-0.5, 0, 0.5, 0])
    with pytest.raises(InputError, match="shape"):
        standardize(dosage, mean=np.ones(3), sd=np.ones(3))
    with pytest.raises(InputError, match="method"):
        standardize(dosage, method="z")


def test_allele_frequency_forms_agree():
    rng = np.random.default_rng(3)
    raw = rng.integers(-1, 3, size=(50, 7)).astype(np.int8)
    raw[:, 3] = -1
    as_float = np.where(raw < 0, np.nan, raw).astype(np.float32)
    expected = np.array([raw[raw[:, j] >= 0, j].sum() / (2 * (raw[:, j] >= 0).sum()) if (raw[:, j] >= 0).any()
                         else np.nan for j in range(7)])
    np.testing.assert_allclose(allele_frequency(raw), expected)
    np.testing.assert_allclose(allele_frequency(as_float), expected)
    np.testing.assert_allclose(allele_frequency(torch.from_numpy(raw)).numpy(), expected)
    np.testing.assert_allclose(allele_frequency(torch.from_numpy(as_float)).numpy(), expected)


# --------------------------------------------------------------------------- the vectorised .bed decoder

def _naive_decode(packed: np.ndarray, n_samples: int) -> np.ndarray:
    """Bit by bit, straight from the format description: 00 -> 2, 01 -> missing, 10 -> 1, 11 -> 0."""
    code_to_dosage = {0b00: 2, 0b01: -1, 0b10: 1, 0b11: 0}
    out = np.empty((n_samples, packed.shape[0]), dtype=np.int8)
    for v in range(packed.shape[0]):
        for i in range(n_samples):
            out[i, v] = code_to_dosage[(int(packed[v, i // 4]) >> (2 * (i % 4))) & 3]
    return out


@settings(max_examples=25, deadline=None)
@given(n_samples=st.integers(1, 21), n_variants=st.sampled_from([1, 3, 1023, 1025]),
       seed=st.integers(0, 2**16), data=st.data())
def test_decode_bed_block_matches_naive_bit_reading(n_samples, n_variants, seed, data):
    from deepprs.io.bed import decode_bed_block

    shape = (n_variants, (n_samples + 3) // 4)
    packed = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    expected = _naive_decode(packed, n_samples)
    np.testing.assert_array_equal(decode_bed_block(packed, n_samples=n_samples), expected)
    samples = np.array(data.draw(st.lists(st.integers(0, n_samples - 1), max_size=30)), dtype=np.int64)
    np.testing.assert_array_equal(decode_bed_block(packed, samples), expected[samples])


def test_contiguous_and_gathered_variant_reads_agree(bed_fixture):
    forward = bed_fixture.read(variants=np.arange(20, 70))
    gathered = bed_fixture.read(variants=np.r_[20:45, 45:70][::-1])[:, ::-1]
    np.testing.assert_array_equal(forward, gathered)


def test_readers_close(tmp_path):
    for reader in (BedReader, PgenReader):
        with reader(PREFIX) as source:
            first = source.read(variants=[0])
        assert first.shape == (60, 1)
        with pytest.raises(InputError, match="closed"):
            source.read(variants=[0])


@settings(max_examples=30, deadline=None)
@given(dosage=genotype_matrices())
def test_pack_dosage_matches_naive_bit_packing(dosage):
    from deepprs.io.packed import pack_dosage

    n, m = dosage.shape
    expected = np.zeros((n, (m + 3) // 4), dtype=np.uint8)
    for i in range(n):
        for j in range(((m + 3) // 4) * 4):
            code = 3 if j >= m or dosage[i, j] < 0 else int(dosage[i, j])      # padding and missing = 3
            expected[i, j // 4] |= code << (2 * (j % 4))
    np.testing.assert_array_equal(pack_dosage(dosage), expected)


def test_allele_frequency_many_samples_no_overflow():
    """More rows than one int16 accumulation chunk, with all-2 and all-missing columns."""
    rng = np.random.default_rng(5)
    raw = rng.integers(-1, 3, size=(20_001, 5)).astype(np.int8)
    raw[:, 1] = 2
    raw[:, 2] = -1
    raw[:17_000, 3] = -1
    observed = raw >= 0
    with np.errstate(invalid="ignore"):
        expected = np.where(observed, raw, 0).sum(0) / (2.0 * observed.sum(0))
    np.testing.assert_allclose(allele_frequency(raw), expected, equal_nan=True)
    assert allele_frequency(raw)[1] == 1.0 and np.isnan(allele_frequency(raw)[2])


def test_allele_frequency_fractional_dosages_across_chunks():
    """Several 256-row float chunks, fractional (BGEN-like) dosages, NaN missing, float32 and float64."""
    rng = np.random.default_rng(11)
    dosage = rng.uniform(0, 2, size=(1_000, 9))
    dosage[rng.random(dosage.shape) < 0.1] = np.nan
    dosage[:, 4] = np.nan
    observed_columns = [0, 1, 2, 3, 5, 6, 7, 8]
    expected = [np.mean(dosage[~np.isnan(dosage[:, j]), j]) / 2 for j in observed_columns]
    for dtype in (np.float64, np.float32):
        got = allele_frequency(dosage.astype(dtype))
        np.testing.assert_allclose(got[observed_columns], expected, rtol=1e-6)
        assert np.isnan(got[4])


@settings(max_examples=25, deadline=None)
@given(n_samples=st.integers(1, 21), n_variants=st.sampled_from([1, 2, 3, 4, 5, 511, 513, 1030]),
       seed=st.integers(0, 2**16))
def test_transcode_bed_block_equals_decode_then_pack(n_samples, n_variants, seed):
    from deepprs.io.bed import transcode_bed_block
    from deepprs.io.packed import pack_dosage

    shape = (n_variants, (n_samples + 3) // 4)
    packed = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    expected = pack_dosage(_naive_decode(packed, n_samples))
    np.testing.assert_array_equal(transcode_bed_block(packed, n_samples), expected)


# ----------------------------------------------------------------- .pgen with dosages (imputed data)

def _write_dosage_pgen(prefix: Path, dosage_vm: np.ndarray) -> None:
    import pgenlib

    n_variants, n_samples = dosage_vm.shape
    writer = pgenlib.PgenWriter(bytes(Path(f"{prefix}.pgen")), n_samples, n_variants, False,
                                dosage_present=True)
    rows = np.ascontiguousarray(np.where(np.isnan(dosage_vm), -9, dosage_vm), dtype=np.float32)
    for row in rows:
        writer.append_dosages(row)
    writer.close()
    Path(f"{prefix}.pvar").write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "".join(
        f"1\t{100 * (j + 1)}\tv{j}\tA\tG\n" for j in range(n_variants)))
    Path(f"{prefix}.psam").write_text("#FID\tIID\tSEX\n" + "".join(
        f"F{i}\tI{i}\tNA\n" for i in range(n_samples)))


@pytest.fixture(scope="module")
def dosage_pgen_fixture(tmp_path_factory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(8)
    dosage = np.round(rng.uniform(0, 2, size=(40, 13)) * 16384) / 16384       # pgen stores 1/16384 units
    dosage[rng.random(dosage.shape) < 0.05] = np.nan
    prefix = tmp_path_factory.mktemp("dosage") / "imputed"
    _write_dosage_pgen(prefix, dosage.T)
    return prefix, dosage


def test_pgen_dosages_are_read_as_dosages(dosage_pgen_fixture):
    prefix, dosage = dosage_pgen_fixture
    source = PgenReader(prefix)
    assert source.may_have_dosages and not PgenReader(PREFIX).may_have_dosages
    np.testing.assert_allclose(source.read(dtype=np.float64), dosage, atol=1e-6)
    blocks = np.concatenate([b.dosage for b in source.iter_blocks(4, samples=[7, 1, 1, 30])], axis=1)
    np.testing.assert_allclose(blocks, dosage[[7, 1, 1, 30]], atol=1e-6)
    observed = ~np.isnan(dosage)
    column_mean = np.where(observed, dosage, 0).sum(0) / observed.sum(0)
    np.testing.assert_allclose(source.read(missing="mean", dtype=np.float64),
                               np.where(observed, dosage, column_mean), atol=1e-6)
    raw = source.read(missing="raw", dtype=np.int8)        # hard calls: near-integer dosages only
    near = observed & (np.abs(dosage - np.rint(np.nan_to_num(dosage))) <= 0.1)
    np.testing.assert_array_equal(raw[near], np.rint(dosage[near]))
    assert (raw[~observed] == -1).all()


@pytest.mark.skipif(not HAS_PLINK2, reason="plink2 not installed")
def test_pgen_dosage_frequencies_match_plink2(dosage_pgen_fixture, tmp_path):
    prefix, _ = dosage_pgen_fixture
    subprocess.run(["plink2", "--pfile", str(prefix), "--freq", "--out", str(tmp_path / "f")],
                   check=True, capture_output=True)
    afreq = pd.read_csv(tmp_path / "f.afreq", sep="\t")
    np.testing.assert_allclose(allele_frequency(PgenReader(prefix).read()), afreq["ALT_FREQS"], atol=5e-6)


def test_tab_separated_fam_read_by_pyarrow_equals_the_line_parser(tmp_path, monkeypatch):
    from deepprs.io import arrowtext
    from deepprs.io.bed import read_fam

    rows = [["0", "per0", "0", "0", "2", "-0.5"], ["F1", "I1", "P", "M", "1", "NA"], ["F2", "I2", "0", "0", "x", "-9"]]
    tab = tmp_path / "tab.fam"
    tab.write_text("".join("\t".join(r) + "\n" for r in rows))
    fast = read_fam(tab)
    monkeypatch.setattr(arrowtext, "read_tab_separated", lambda *args, **kwargs: None)
    pd.testing.assert_frame_equal(fast, read_fam(tab))
    assert fast["sex"].tolist() == [2, 1, 0] and fast["iid"].tolist() == ["per0", "I1", "I2"]
    monkeypatch.undo()
    # a byte-order mark is dropped on both paths (pyarrow's; the line parser's for space-separated files)
    bom_tab, bom_space = tmp_path / "bom_tab.fam", tmp_path / "bom_space.fam"
    bom_tab.write_text("\ufeff" + "".join("\t".join(r) + "\n" for r in rows))
    bom_space.write_text("\ufeff" + "".join(" ".join(r) + "\n" for r in rows))
    assert read_fam(bom_tab)["fid"].tolist() == read_fam(bom_space)["fid"].tolist() == ["0", "F1", "F2"]
    ragged = tmp_path / "ragged.fam"
    ragged.write_text("".join("\t".join(r) + "\n" for r in [rows[0], rows[1][:5], rows[2]]))
    with pytest.raises(InputError, match="line 2: expected 6 columns"):
        read_fam(ragged)
