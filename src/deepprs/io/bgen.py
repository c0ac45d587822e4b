"""BGEN genotypes (v1.1, v1.2 and v1.3), decoded natively with numpy.

**Counted allele.** The dosage is the expected count of the **second** allele listed in each BGEN
variant (``E[count] = P(het) + 2 P(hom second)``; phased data: the sum over both haplotypes of
P(second allele)), and the variant table reports it as ``alt = a1`` with the first allele as
``ref``. This matches ``plink2 --bgen ... ref-first`` and REGENIE (``ALLELE1`` = second allele).
Files written by ``plink2 --export bgen-1.2 ref-first`` therefore give the same dosages as the
``.bed``/``.pgen`` they came from.

Float reads (``read``/``iter_blocks`` with ``missing="nan"`` or ``"mean"``) return the expected
dosage, computed exactly from the stored integers (layout 2: ``value / (2^bits - 1)``; layout 1:
``value / 32768``); ``missing="raw"`` (int8) and :class:`~deepprs.io.packed.PackedGenotypes` use
hard calls (the dosage rounded to 0/1/2). A sample is missing where its ploidy byte has the
missing bit (layout 2) or its three probabilities are all 0 (layout 1).

Supported: biallelic variants, haploid or diploid samples (a haploid call counts as two copies, as
plink2 imports it: males on chrX), phased or unphased, any bit depth (1-32),
zlib, zstd (needs the ``zstandard`` package) or no compression. ``pip install deepprs[bgen]`` adds
``zstandard`` and ``zlib-ng`` (zlib blocks then inflate ~3x faster; same output).
Multi-allelic variants are refused when the file is opened; samples of ploidy 0 or above 2 when
their variant is read.

Samples come from the ``.sample`` file beside the ``.bgen`` (``ID_1 ID_2 missing sex`` header,
then a type line; ``ID_1`` = FID, ``ID_2`` = IID) when present, otherwise from the IDs stored in the
BGEN (FID = IID), otherwise ``sample_0``, ``sample_1``, ...

Opening a file reads the variant table from a bgenix ``.bgi`` index beside it (``file.bgen.bgi``)
when there is one that matches the file, else scans the variant headers once (no index file is
written; the input is never modified). Reads take a block of variants at a time: the compressed
data of consecutive variants is read with one ``pread``, each variant is decompressed (zlib and
zstd release the GIL, so two prefetch threads decode at once), and the probabilities of all the
block's variants are unpacked together.
"""

from __future__ import annotations

import mmap
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.assoc.bedscan import negative_int8
from deepprs.errors import InputError
from deepprs.io.genotypes import (
    VARIANT_COLUMNS,
    GenotypeSource,
    check_unique_ids,
    finish_missing,
)
from deepprs.io.pgen import finish_float_dosage

ZSTD_HINT = "reading a zstd-compressed BGEN needs the zstandard package: pip install deepprs[bgen] (or zstandard)"
_COMPRESSION_NAMES = {0: None, 1: "zlib", 2: "zstd"}
_MISSING_BIT = 0x80
_MAX_READ = 64 << 20  # bytes of compressed data per pread
_PLOIDY_MASK = 0x3F


def read_sample_file(path: str | Path) -> pd.DataFrame:
    """Read an Oxford ``.sample`` file into the sample table (``fid iid father mother sex``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not a text .sample file (byte {exc.start} is not UTF-8)") from None
    numbered = [(number, line.split()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    lines = [fields for _, fields in numbered]
    line_number = [number for number, _ in numbered]
    if len(lines) < 3:
        raise InputError(f"{path}: a .sample file needs a header line, a type line and at least one sample")
    header = [name.upper() for name in lines[0]]
    if header[:2] != ["ID_1", "ID_2"]:
        raise InputError(f"{path}: the header must start with 'ID_1 ID_2' (found {' '.join(lines[0][:3])!r})")
    rows = lines[2:]
    short = [line_number[2 + row] for row, fields in enumerate(rows) if len(fields) != len(header)]
    if short:
        raise InputError(f"{path} line {short[0]}: expected {len(header)} columns ({' '.join(lines[0])})")
    table = pd.DataFrame(rows, columns=header)
    n = len(table)
    if "SEX" in table:  # plink2 accepts 0, 1, 2 and NA, and stops on anything else
        codes = table["SEX"].to_numpy()
        invalid = ~np.isin(codes, ["0", "1", "2", "NA"])
        if invalid.any():
            first = int(invalid.argmax())
            raise InputError(f"{path} line {line_number[2 + first]}: invalid sex code {codes[first]!r} (use 1 = male, "
                             "2 = female, 0 or NA = unknown)")
        sex = np.where(codes == "1", 1, np.where(codes == "2", 2, 0))
    else:
        sex = np.zeros(n, dtype=int)
    return pd.DataFrame({
        "fid": table["ID_1"].to_numpy(), "iid": table["ID_2"].to_numpy(),
        "father": np.full(n, "0", dtype=object), "mother": np.full(n, "0", dtype=object),
        "sex": np.where(np.isin(sex, [1, 2]), sex, 0),
    })


@dataclass(frozen=True)
class BgenHeader:
    """The header block of a BGEN file.

    Attributes
    ----------
    first_variant : int
        File offset of the first variant block.
    n_variants, n_samples : int
    compression : {None, "zlib", "zstd"}
    layout : {1, 2}
    has_sample_ids : bool
        A sample-identifier block follows the header.
    """

    first_variant: int
    n_variants: int
    n_samples: int
    compression: str | None
    layout: int
    has_sample_ids: bool


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def read_header(data: mmap.mmap | bytes, path: Path) -> BgenHeader:
    """Parse the first bytes of a BGEN file (:class:`InputError` if they are not BGEN)."""
    if len(data) < 24 or data[16:20] not in (b"bgen", b"\x00\x00\x00\x00"):
        raise InputError(f"{path} is not a BGEN file (magic bytes {bytes(data[16:20]).hex()} instead of 'bgen')")
    offset, header_length, n_variants, n_samples = struct.unpack_from("<IIII", data, 0)
    if header_length < 20 or header_length > offset or offset + 4 > len(data):
        raise InputError(f"{path}: corrupt BGEN header (header length {header_length}, first variant at {offset + 4})")
    (flags,) = struct.unpack_from("<I", data, 4 + header_length - 4)
    compression_code, layout = flags & 3, (flags >> 2) & 15
    if compression_code not in _COMPRESSION_NAMES or layout not in (1, 2):
        raise InputError(f"{path}: unsupported BGEN flags (compression {compression_code}, layout {layout}); "
                         "BGEN v1.1-1.3 use compression 0-2 and layout 1 or 2")
    compression = _COMPRESSION_NAMES[compression_code]
    if layout == 1 and compression == "zstd":
        raise InputError(f"{path}: corrupt BGEN header (layout 1 with zstd compression)")
    return BgenHeader(first_variant=offset + 4, n_variants=n_variants, n_samples=n_samples,
                      compression=compression, layout=layout, has_sample_ids=bool(flags >> 31))


def read_sample_ids(data: mmap.mmap, header: BgenHeader, path: Path) -> list[str]:
    """The sample-identifier block that follows the header (``header.has_sample_ids``)."""
    pos = 4 + struct.unpack_from("<I", data, 4)[0]
    try:
        block_length, n_ids = struct.unpack_from("<II", data, pos)
        pos += 8
        ids = []
        for _ in range(n_ids):
            (length,) = struct.unpack_from("<H", data, pos)
            ids.append(_text(data[pos + 2 : pos + 2 + length]))
            pos += 2 + length
    except struct.error:
        raise InputError(f"{path}: the sample-identifier block is truncated") from None
    if n_ids != header.n_samples or pos > header.first_variant:
        raise InputError(f"{path}: the sample-identifier block lists {n_ids} samples but the header says "
                         f"{header.n_samples}")
    return ids


@dataclass(frozen=True)
class VariantIndex:
    """Where each variant's data is, and the variant table.

    Attributes
    ----------
    variant_table : DataFrame
        ``chrom pos id ref alt a1 cm``.
    block_start, block_end : ndarray of int64, shape (M,)
        File span of each variant block (identifying data + genotype data).
    data_start, data_length : ndarray of int64, shape (M,), or None
        Span of each variant's genotype data block (after its length field, if any), when known
        (a scan finds them; from a ``.bgi`` index they are parsed when the variants are read).
    """

    variant_table: pd.DataFrame
    block_start: np.ndarray
    block_end: np.ndarray
    data_start: np.ndarray | None = None
    data_length: np.ndarray | None = None


def parse_variant_header(data, pos: int, header: BgenHeader) -> tuple[bytes, bytes, bytes, int, int, list[bytes],
                                                                       int, int]:
    """The identifying data of the variant block at ``pos``: (snp id, rsid, chromosome, position,
    number of alleles, alleles, genotype data start, genotype data length). Raises ``struct.error``
    when the block runs past the end of ``data``."""
    unpack = struct.unpack_from
    if header.layout == 1:
        pos += 4                                                           # N, repeated per variant
    fields = []
    for _ in range(3):                                                     # SNP id, rsid, chromosome
        (length,) = unpack("<H", data, pos)
        fields.append(bytes(data[pos + 2 : pos + 2 + length]))
        pos += 2 + length
    if header.layout == 2:
        position, n_alleles = unpack("<IH", data, pos)
        pos += 6
    else:
        position, n_alleles = unpack("<I", data, pos)[0], 2
        pos += 4
    alleles = []
    for _ in range(n_alleles):
        (length,) = unpack("<I", data, pos)
        alleles.append(bytes(data[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    if header.layout == 1 and header.compression is None:
        length = 6 * header.n_samples
    else:
        (length,) = unpack("<I", data, pos)
        pos += 4
    if pos + length > len(data):
        raise struct.error("past the end")
    return fields[0], fields[1], fields[2], position, n_alleles, alleles, pos, length


def _refuse_multiallelic(path: Path, number: int, name: str, n_alleles: int) -> None:
    raise InputError(f"{path}: variant {number} ({name}) has {n_alleles} alleles; only biallelic variants are "
                     "supported (split or drop them: plink2 --max-alleles 2)")


def _variant_table(chrom: list, position: np.ndarray, ids: list, ref: list, alt: list) -> pd.DataFrame:
    table = pd.DataFrame({
        "chrom": [_text(value) if isinstance(value, bytes) else value for value in chrom], "pos": position,
        "id": [_text(value) if isinstance(value, bytes) else value for value in ids],
        "ref": [_text(value) if isinstance(value, bytes) else value for value in ref],
        "alt": [_text(value) if isinstance(value, bytes) else value for value in alt],
    })
    table["a1"] = table["alt"]
    table["cm"] = 0.0
    return table[VARIANT_COLUMNS]


def scan_variants(data: mmap.mmap, header: BgenHeader, path: Path) -> VariantIndex:
    """Walk the variant blocks once: identifying data, alleles and genotype-data offsets.

    ``ID`` is the rsid, or the variant's SNP id where the rsid is empty. Multi-allelic variants
    and variants whose data run past the end of the file are an :class:`InputError`.
    """
    m = header.n_variants
    chrom, position, ids, ref, alt = [], np.zeros(m, dtype=np.int64), [], [], []
    block_start, data_start, data_length = (np.zeros(m, dtype=np.int64) for _ in range(3))
    pos = header.first_variant
    j = 0
    try:
        for j in range(m):
            block_start[j] = pos
            snp_id, rsid, code, position[j], n_alleles, alleles, data_start[j], data_length[j] = \
                parse_variant_header(data, pos, header)
            if n_alleles != 2:
                _refuse_multiallelic(path, j + 1, _text(rsid or snp_id), n_alleles)
            chrom.append(code)
            ids.append(rsid if rsid else snp_id)
            ref.append(alleles[0])
            alt.append(alleles[1])
            pos = int(data_start[j] + data_length[j])
    except struct.error:
        raise InputError(f"{path} is truncated: variant {j + 1} of {m} runs past the end of the file "
                         f"({len(data)} bytes)") from None
    return VariantIndex(_variant_table(chrom, position, ids, ref, alt), block_start, data_start + data_length,
                        data_start, data_length)


def read_bgi(bgi_path: Path, header: BgenHeader, data, path: Path) -> VariantIndex | None:
    """The variant table and block spans from a bgenix ``.bgi`` index (SQLite, table ``Variant``),
    so opening a large BGEN does not touch every variant block. None, with a warning, when the
    index does not describe this file (another variant count, gaps, blocks beyond the end); the
    caller then scans the file. Variants without an rsid get their SNP id from the file."""
    import sqlite3

    try:
        connection = sqlite3.connect(f"file:{bgi_path}?mode=ro", uri=True)
        try:
            rows = connection.execute(
                "SELECT chromosome, position, rsid, number_of_alleles, allele1, allele2, file_start_position, "
                "size_in_bytes FROM Variant ORDER BY file_start_position").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        warnings.warn(f"{bgi_path} cannot be read as a bgenix index ({exc}); scanning {path} instead", stacklevel=3)
        return None
    m = header.n_variants
    starts = np.fromiter((row[6] for row in rows), dtype=np.int64, count=len(rows))
    sizes = np.fromiter((row[7] for row in rows), dtype=np.int64, count=len(rows))
    ends = starts + sizes
    if (len(rows) != m or (m and (starts[0] != header.first_variant or ends[-1] > len(data)))
            or (m > 1 and not np.array_equal(starts[1:], ends[:-1]))):
        warnings.warn(f"{bgi_path} does not describe {path} ({len(rows)} indexed variants, {m} in the file); "
                      "scanning the file instead", stacklevel=3)
        return None
    ids = []
    for j, row in enumerate(rows):
        if row[3] != 2:
            _refuse_multiallelic(path, j + 1, str(row[2]), int(row[3]))
        rsid = row[2]
        if not rsid:  # the index has no SNP id column: read it from the variant's own header
            try:
                rsid = _text(parse_variant_header(data, int(starts[j]), header)[0])
            except struct.error:
                raise InputError(f"{path} is truncated: variant {j + 1} of {m} runs past the end of the file") from None
        ids.append(rsid)
    table = _variant_table([str(row[0]) for row in rows], np.fromiter((row[1] for row in rows), np.int64, len(rows)),
                           ids, [row[4] for row in rows], [row[5] for row in rows])
    return VariantIndex(table, starts, ends)


def zlib_module():
    """``zlib_ng.zlib_ng`` when the optional ``zlib-ng`` package is installed (the same output,
    inflating ~3x faster: 1.4 vs 0.49 GB/s on 8-bit BGEN blocks here), else the standard ``zlib``."""
    try:
        from zlib_ng import zlib_ng
    except ImportError:
        return zlib
    return zlib_ng


def _decompressor(compression: str | None, path: Path):
    """``decompress(raw, size) -> bytes`` for the file's compression."""
    if compression == "zlib":
        inflate = zlib_module().decompress
        return lambda raw, size: inflate(raw, bufsize=max(size, 1))
    if compression == "zstd":
        try:
            import zstandard
        except ImportError as exc:
            raise InputError(f"{path}: {ZSTD_HINT}") from exc
        return lambda raw, size: zstandard.ZstdDecompressor().decompress(raw, max_output_size=size)
    return lambda raw, size: bytes(raw)


def _unpack_bits(packed: np.ndarray, bits: int, n_values: int) -> np.ndarray:
    """Little-endian ``bits``-bit unsigned integers from the rows of ``packed`` (g × bytes) -> (g, n_values)."""
    if bits == 8:
        return packed[:, :n_values]
    if bits in (16, 32):
        dtype = np.dtype(f"<u{bits // 8}")
        return np.ascontiguousarray(packed[:, : n_values * dtype.itemsize]).view(dtype)
    bit_offset = np.arange(n_values, dtype=np.int64) * bits
    first_byte, shift = bit_offset >> 3, (bit_offset & 7).astype(np.uint64)
    padded = np.zeros((packed.shape[0], packed.shape[1] + 8), dtype=np.uint8)
    padded[:, : packed.shape[1]] = packed
    window = np.zeros((packed.shape[0], n_values), dtype=np.uint64)
    for t in range(8 if bits > 24 else 4):                  # bytes needed: ceil((7 + bits) / 8)
        window |= padded[:, first_byte + t].astype(np.uint64) << np.uint64(8 * t)
    return (window >> shift) & np.uint64((1 << bits) - 1)


def decode_layout2(payloads: list[bytes], n_samples: int, path: Path, names: list[str],
                   out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected second-allele dosages of decompressed layout-2 genotype blocks.

    Parameters
    ----------
    payloads : list of bytes, length b
        Uncompressed genotype data blocks (``N K Pmin Pmax ploidy[N] phased B probabilities``).
    names : list of str, length b
        Variant IDs, for error messages.
    out : ndarray of float64, shape (b, n_samples), optional
        Where to write the dosages.

    Returns
    -------
    dosage : ndarray of float64, shape (b, n_samples)
        0 where the sample is missing (``out`` when given).
    missing_variant, missing_sample : ndarray of int64, shape (n_missing,)
        Row and sample of every missing call (the ploidy byte's missing bit), row-major order.
    """
    dosage = np.empty((len(payloads), n_samples), dtype=np.float64) if out is None else out
    groups: dict[tuple[int, int, int], list[int]] = {}
    haploid_rows: list[int] = []
    for row, payload in enumerate(payloads):
        if len(payload) < 10 + n_samples:
            raise InputError(f"{path}: corrupt genotype data for variant {names[row]} ({len(payload)} bytes)")
        n, n_alleles, ploidy_min, ploidy_max = struct.unpack_from("<IHBB", payload, 0)
        phased, bits = payload[8 + n_samples], payload[9 + n_samples]
        if n != n_samples or n_alleles != 2 or not 1 <= bits <= 32 or phased > 1:
            raise InputError(f"{path}: corrupt genotype data for variant {names[row]} ({n} samples, {n_alleles} "
                             f"alleles, {bits} bits, phased flag {phased})")
        if not 1 <= ploidy_min <= ploidy_max <= 2:
            raise InputError(f"{path}: variant {names[row]} has samples with ploidy {ploidy_min}-{ploidy_max}; only "
                             "haploid and diploid genotypes are supported")
        if ploidy_min == 1:  # haploid samples (e.g. males on chrX): one value each instead of two
            haploid_rows.append(row)
            continue
        if len(payload) != 10 + n_samples + -(-2 * n_samples * bits // 8):
            raise InputError(f"{path}: corrupt genotype data for variant {names[row]} ({len(payload)} bytes for "
                             f"{n_samples} samples at {bits} bits)")
        groups.setdefault((bits, phased, len(payload)), []).append(row)
    ploidy = np.empty((len(payloads), n_samples), dtype=np.uint8)
    for row in haploid_rows:
        ploidy[row] = _decode_mixed_ploidy(payloads[row], n_samples, dosage[row], path, names[row])
    for (bits, phased, length), rows in groups.items():
        block = np.frombuffer(b"".join(payloads[row] for row in rows), dtype=np.uint8).reshape(len(rows), length)
        ploidy[rows] = block[:, 8 : 8 + n_samples]
        probabilities = block[:, 10 + n_samples :]
        whole = len(rows) == len(payloads)                          # else a copy, written back below
        part = dosage if whole else dosage[rows]
        # expected count of the second allele = (2S - c * first - second) / S with S = 2^bits - 1,
        # c = 2 for unphased (P(AA), P(AB)) and 1 for phased data (P(first allele) per haplotype):
        # exact integer numerators, one correctly rounded division; 64 variants at a time
        scale = (1 << bits) - 1
        numerator_type = np.int16 if bits <= 14 else np.int32 if bits <= 30 else np.int64
        for start in range(0, len(rows), 64):
            values = _unpack_bits(probabilities[start : start + 64], bits, 2 * n_samples)
            numerator = np.multiply(values[:, 0::2], 1 if phased else 2, dtype=numerator_type, casting="unsafe")
            np.add(numerator, values[:, 1::2], out=numerator, casting="unsafe")
            np.subtract(2 * scale, numerator, out=numerator)
            np.divide(numerator, float(scale), out=part[start : start + len(values)])
        if not whole:
            dosage[rows] = part
    wrong = ((ploidy & _PLOIDY_MASK) != 2).any(axis=1)
    wrong[haploid_rows] = False                                 # checked by _decode_mixed_ploidy
    if wrong.any():
        bad = names[int(np.flatnonzero(wrong)[0])]
        raise InputError(f"{path}: variant {bad}: the ploidy bytes do not match its header (corrupt file)")
    # the missing bit is the sign bit of the ploidy byte read as int8
    missing_variant, missing_sample = negative_int8(ploidy.view(np.int8))
    dosage[missing_variant, missing_sample] = 0.0
    return dosage, missing_variant, missing_sample


def _decode_mixed_ploidy(payload: bytes, n_samples: int, out: np.ndarray, path: Path, name: str) -> np.ndarray:
    """One layout-2 variant whose samples are haploid or diploid (e.g. chrX with haploid males):
    expected second-allele dosages into ``out`` (n_samples,); a haploid call is counted as two copies
    (2 x P(second allele)), as plink2 imports it. Returns the ploidy bytes.

    Each sample stores as many values as its ploidy, for unphased and phased biallelic data alike
    (haploid: P(first allele); diploid unphased: P(AA), P(AB); diploid phased: P(first) per
    haplotype)."""
    raw = np.frombuffer(payload, dtype=np.uint8)
    ploidy_bytes = raw[8 : 8 + n_samples]
    ploidy = (ploidy_bytes & _PLOIDY_MASK).astype(np.int64)
    phased, bits = int(raw[8 + n_samples]), int(raw[9 + n_samples])
    if not np.isin(ploidy, [1, 2]).all():
        raise InputError(f"{path}: variant {name} has samples with ploidy {int(ploidy.min())}-{int(ploidy.max())}; "
                         "only haploid and diploid genotypes are supported")
    n_values = int(ploidy.sum())
    if len(payload) != 10 + n_samples + -(-n_values * bits // 8):
        raise InputError(f"{path}: corrupt genotype data for variant {name} ({len(payload)} bytes for "
                         f"{n_values} values at {bits} bits)")
    values = _unpack_bits(raw[None, 10 + n_samples :], bits, n_values)[0].astype(np.float64)
    first = np.concatenate([[0], np.cumsum(ploidy)[:-1]])          # each sample's first value
    scale = float((1 << bits) - 1)
    diploid = ploidy == 2
    second = np.where(diploid, values[np.minimum(first + 1, n_values - 1)], 0.0)
    weight = 1.0 if phased else 2.0
    out[:] = np.where(diploid, 2.0 * scale - weight * values[first] - second, 2.0 * (scale - values[first])) / scale
    return ploidy_bytes


def decode_layout1(payloads: list[bytes], n_samples: int, path: Path, names: list[str],
                   out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected second-allele dosages of decompressed layout-1 blocks (3 uint16 per sample, / 32768);
    a sample with three zero probabilities is missing. Returns what :func:`decode_layout2` does."""
    for row, payload in enumerate(payloads):
        if len(payload) != 6 * n_samples:
            raise InputError(f"{path}: corrupt genotype data for variant {names[row]} ({len(payload)} bytes "
                             f"instead of {6 * n_samples})")
    probabilities = np.frombuffer(b"".join(payloads), dtype="<u2").reshape(len(payloads), n_samples, 3)
    dosage = np.empty((len(payloads), n_samples)) if out is None else out
    np.multiply(probabilities[:, :, 2], 2.0, out=dosage)
    dosage += probabilities[:, :, 1]
    dosage /= 32768.0                                                      # 0 where missing
    missing_variant, missing_sample = np.nonzero(~probabilities.any(axis=2))
    return dosage, missing_variant.astype(np.int64), missing_sample.astype(np.int64)


class BgenReader(GenotypeSource):
    """BGEN reader giving the expected dosage of the second allele (``a1 = alt``).

    Parameters
    ----------
    path
        ``file.bgen`` or its prefix.
    sample_path
        Oxford ``.sample`` file; default ``<prefix>.sample`` if it exists.
    allow_duplicate_variant_ids
        Accept repeated variant IDs (otherwise an :class:`InputError`).

    Notes
    -----
    Reads are thread-safe (``pread`` on a shared descriptor, no shared state), so association
    testing decodes two blocks at once.
    """

    thread_safe_reads = True

    def __init__(self, path: str | Path, *, sample_path: str | Path | None = None,
                 allow_duplicate_variant_ids: bool = False) -> None:
        path = Path(path)
        if path.suffix.lower() != ".bgen":
            path = Path(f"{path}.bgen")
        self.path = path
        self._fd: int | None = None
        if not path.exists():
            raise InputError(f"missing file {path}")
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if size < 24:
                raise InputError(f"{path} is not a BGEN file ({size} bytes)")
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as data:
                self.header = read_header(data, path)
                stored_ids = read_sample_ids(data, self.header, path) if self.header.has_sample_ids else None
                bgi = Path(f"{path}.bgi")
                index = read_bgi(bgi, self.header, data, path) if bgi.exists() else None
                if index is None:
                    index = scan_variants(data, self.header, path)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        try:
            self._index = index
            self._decompress = _decompressor(self.header.compression, path)
            sample_path = Path(sample_path) if sample_path is not None else path.with_suffix(".sample")
            n = self.header.n_samples
            if sample_path.exists():
                self.sample_table = read_sample_file(sample_path)
                if len(self.sample_table) != n:
                    raise InputError(f"{sample_path} lists {len(self.sample_table)} samples but {path} holds {n}")
            else:
                iid = np.asarray(stored_ids if stored_ids is not None else [f"sample_{i}" for i in range(n)],
                                 dtype=object)
                self.sample_table = pd.DataFrame({"fid": iid, "iid": iid, "father": "0", "mother": "0", "sex": 0})
            self.variant_table = index.variant_table
            check_unique_ids(self.sample_table, self.variant_table, str(path),
                             allow_duplicate_variant_ids=allow_duplicate_variant_ids)
        except BaseException:
            self.close()
            raise
        self.may_have_dosages = True  # genotype probabilities: association uses the dosages

    def _payloads(self, variant_index: np.ndarray) -> list[bytes]:
        """Uncompressed genotype data blocks of ``variant_index`` (runs of consecutive variants
        are read with one ``pread``)."""
        if self._fd is None:
            raise InputError(f"{self.path} is closed")
        index = self._index
        parse = index.data_start is None  # from a .bgi: read whole variant blocks, parse their headers
        if parse:
            start, length = index.block_start[variant_index], index.block_end[variant_index] - index.block_start[
                variant_index]
        else:
            start, length = index.data_start[variant_index], index.data_length[variant_index]
        compressed = self.header.compression is not None
        layout2 = self.header.layout == 2
        payloads: list[bytes] = []
        # split where the next variant does not follow on in the file
        breaks = np.flatnonzero(np.diff(variant_index) != 1) + 1
        # and every _MAX_READ bytes, so a read of many variants never holds a huge buffer
        ends = np.cumsum(length)
        breaks = np.union1d(breaks, np.flatnonzero(np.diff(ends // _MAX_READ) != 0) + 1)
        for run in np.split(np.arange(len(variant_index)), breaks):
            if not len(run):
                continue
            first, last = int(start[run[0]]), int(start[run[-1]] + length[run[-1]])
            raw = memoryview(os.pread(self._fd, last - first, first))
            if len(raw) != last - first:
                raise InputError(f"{self.path} is truncated (a read at byte {first} came up short)")
            for position in run:
                chunk = raw[int(start[position]) - first : int(start[position] + length[position]) - first]
                if parse:
                    try:
                        data_at, data_length = parse_variant_header(chunk, 0, self.header)[6:]
                    except struct.error:
                        raise InputError(f"{self.path}: the variant block of "
                                         f"{self.variant_table['id'].iat[int(variant_index[position])]} is "
                                         "shorter than its .bgi entry says") from None
                    chunk = chunk[data_at : data_at + data_length]
                if not compressed:
                    payloads.append(bytes(chunk))
                    continue
                if layout2:
                    (size,) = struct.unpack_from("<I", chunk, 0)
                    chunk = chunk[4:]
                else:
                    size = 6 * self.header.n_samples
                try:
                    payload = self._decompress(chunk, size)
                except Exception as exc:  # zlib.error, zstd.ZstdError
                    raise InputError(f"{self.path}: cannot decompress the genotypes of variant "
                                     f"{self.variant_table['id'].iat[int(variant_index[position])]}: {exc}") from None
                if len(payload) != size:
                    raise InputError(f"{self.path}: the genotypes of variant "
                                     f"{self.variant_table['id'].iat[int(variant_index[position])]} decompress to "
                                     f"{len(payload)} bytes instead of {size}")
                payloads.append(payload)
        return payloads

    def read_dosage_calls(self, variant_index: np.ndarray,
                          out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dosages of all samples, variant-major, with the missing calls listed apart (into ``out``,
        float64 (len(variant_index), n_samples), when given).

        Returns
        -------
        dosage : ndarray of float64, shape (len(variant_index), n_samples)
            0 at missing calls.
        missing_variant, missing_sample : ndarray of int64, shape (n_missing,)
            Block row and sample of every missing call, row-major order.
        """
        variant_index = np.asarray(variant_index, dtype=np.int64)
        n = self.header.n_samples
        if len(variant_index) == 0:
            return np.empty((0, n)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        payloads = self._payloads(variant_index)
        names = self.variant_table["id"].to_numpy()[variant_index].tolist()
        decode = decode_layout2 if self.header.layout == 2 else decode_layout1
        return decode(payloads, n, self.path, names, out)

    def read_variant_major_dosage(self, variant_index: np.ndarray) -> np.ndarray:
        """Dosages of all samples, variant-major: (len(variant_index), n_samples) float64, NaN = missing."""
        dosage, missing_variant, missing_sample = self.read_dosage_calls(variant_index)
        dosage[missing_variant, missing_sample] = np.nan
        return dosage

    def read_dosage(self, sample_index: np.ndarray, variant_index: np.ndarray) -> np.ndarray:
        """Expected second-allele dosage, float64 (samples × variants), NaN = missing."""
        sample_index = np.asarray(sample_index, dtype=np.int64)
        if len(sample_index) == 0 or len(variant_index) == 0:
            return np.empty((len(sample_index), len(variant_index)))
        dosage = self.read_variant_major_dosage(variant_index)
        if len(sample_index) != self.n_samples or not np.array_equal(sample_index, np.arange(self.n_samples)):
            dosage = dosage[:, sample_index]
        return np.ascontiguousarray(dosage.T)

    def _read_i8(self, sample_index: np.ndarray, variant_index: np.ndarray) -> np.ndarray:
        dosage = self.read_dosage(sample_index, variant_index)
        return np.where(np.isnan(dosage), -1, np.rint(np.nan_to_num(dosage))).astype(np.int8)

    def _finish(self, sample_index: np.ndarray, variant_index: np.ndarray, dtype, missing: str) -> np.ndarray:
        if missing == "raw":
            return finish_missing(self._read_i8(sample_index, variant_index), dtype, missing)
        return finish_float_dosage(self.read_dosage(sample_index, variant_index), dtype, missing)

    def close(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)
        self._fd = None

    def __del__(self) -> None:
        self.close()
