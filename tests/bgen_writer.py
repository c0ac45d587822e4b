"""A small BGEN writer for tests, written from the BGEN v1.3 spec (Layout 1 = v1.1, Layout 2 = v1.2/v1.3).

It builds files that exercise what a reader must handle (bit widths 1..32, zlib / zstd / no compression,
phased and unphased data, missing samples, sample-ID block, free header data) and returns the exact
dosages the stored integers encode, so a reader can be checked to ~1e-12. Independent of deepprs and
bgen-reader on purpose.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from pathlib import Path

import numpy as np

COMPRESSION_CODES = {None: 0, "zlib": 1, "zstd": 2}
DEFAULT_ALLELES = ["A", "G", "C", "T", "AT", "GC"]


def _str16(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<H", len(data)) + data


def _str32(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<I", len(data)) + data


def unphased_genotypes(ploidy: int, n_alleles: int) -> list[tuple[int, ...]]:
    """Allele-count vectors of all unphased genotypes in the spec's colex order
    (diploid biallelic: (2,0)=AA, (1,1)=AB, (0,2)=BB)."""
    counts = [c for c in itertools.product(range(ploidy + 1), repeat=n_alleles) if sum(c) == ploidy]
    return sorted(counts, key=lambda c: c[::-1])


def quantise(v: np.ndarray, bits: int) -> np.ndarray:
    """Round rows of probabilities to integers summing to 2^bits - 1 (the spec's rule: scale, take the
    floor, then round up the F entries with the largest fractional parts, F = the total fractional part)."""
    scale = 2**bits - 1
    v = v / v.sum(axis=1, keepdims=True) * scale
    x = np.floor(v)
    n_up = (scale - x.sum(axis=1)).astype(np.int64)               # F, exact: integers below 2^53
    rank = np.argsort(np.argsort(x - v, axis=1, kind="stable"), axis=1)   # 0 = largest fractional part
    return (x + (rank < n_up[:, None])).astype(np.int64)


def _layout2_probabilities(p, miss, ploidy, n_alleles, bits, phased):
    """Layout 2 probability data of one variant (uncompressed) and its second-allele dosages."""
    n = len(p)
    scale = 2**bits - 1
    stored = [np.zeros(0, np.int64)] * n
    dosage = np.full(n, np.nan)
    for z in np.unique(ploidy):
        idx = np.flatnonzero(ploidy == z)
        z = int(z)
        if phased:    # haplotype h takes the input's haplotype h % 2; K - 1 values per haplotype
            v = np.zeros((len(idx), z, n_alleles))
            v[:, :, :2] = p[idx][:, [h % 2 for h in range(z)], :]
            v[miss[idx]] = 1.0 / n_alleles                           # dummy, stored as zeros below
            x = quantise(v.reshape(-1, n_alleles), bits).reshape(len(idx), z, n_alleles)
            rows, dose = x[:, :, :-1].reshape(len(idx), z * (n_alleles - 1)), x[:, :, 1].sum(axis=1) / scale
        else:         # one value per genotype in colex order, all but the last
            genotypes = unphased_genotypes(z, n_alleles)
            v = np.zeros((len(idx), len(genotypes)))
            for k, g in enumerate(genotypes):
                if sum(g[2:]) == 0 and z == 2:
                    v[:, k] = p[idx, g[1]]
                elif sum(g[2:]) == 0:                             # non-diploid: hom first, or hom second
                    v[:, k] = (p[idx, 0] + p[idx, 1]) * (g[1] == 0) + p[idx, 2] * (g[1] == z)
            v[miss[idx]] = 1.0
            x = quantise(v, bits)
            rows, dose = x[:, :-1], x @ np.array([g[1] for g in genotypes]) / scale
        for row, i, d in zip(rows, idx, dose, strict=True):
            stored[i] = row * 0 if miss[i] else row
            dosage[i] = np.nan if miss[i] else d
    values = np.concatenate(stored).astype(np.uint64)
    bit_stream = (values[:, None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)   # LSB first
    packed = np.packbits(bit_stream.astype(np.uint8).ravel(), bitorder="little").tobytes()
    head = struct.pack("<IHBB", n, n_alleles, int(ploidy.min()), int(ploidy.max()))
    plo_miss = (ploidy.astype(np.uint8) | (miss.astype(np.uint8) << 7)).tobytes()
    return head + plo_miss + struct.pack("<BB", int(phased), bits) + packed, dosage


def _compress(raw: bytes, compression: str | None) -> bytes:
    if compression == "zlib":
        return zlib.compress(raw)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(raw)
    return raw


def write_bgen(path, probabilities, *, layout=2, compression="zlib", bits=8, phased=False,
               missing=None, sample_ids=None, variants=None, ploidy=None, n_alleles=None,
               free_data=b"", bgi=False) -> np.ndarray:
    """Write a BGEN file; return the stored second-allele dosages, float64 (n_variants, n_samples), NaN = missing.

    ``probabilities``: unphased (n_variants, n_samples, 3) = P(hom first), P(het), P(hom second); phased
    (n_variants, n_samples, 2, 2) = per haplotype [P(first), P(second)]. ``ploidy`` (n_variants, n_samples)
    and ``n_alleles`` (n_variants,) exist to build files a diploid-biallelic reader must refuse: extra
    alleles get probability 0, a non-diploid unphased sample stores P(hom first)+P(het) on the all-first
    genotype and P(hom second) on the all-second one, phased haplotype h copies input haplotype h % 2.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    n_var, n_samp = p.shape[:2]
    missing = np.zeros((n_var, n_samp), bool) if missing is None else np.asarray(missing, bool)
    ploidy = np.full((n_var, n_samp), 2) if ploidy is None else np.asarray(ploidy)
    n_alleles = np.full(n_var, 2) if n_alleles is None else np.asarray(n_alleles)
    if variants is None:
        variants = [{"chrom": "1", "pos": 1000 * (j + 1), "id": f"v{j}", "rsid": f"rs{j}",
                     "alleles": DEFAULT_ALLELES[:n_alleles[j]]} for j in range(n_var)]
    if layout == 1 and (phased or compression == "zstd" or (ploidy != 2).any() or (n_alleles != 2).any()):
        raise ValueError("layout 1 holds unphased diploid biallelic data, zlib or uncompressed only")

    truth = np.full((n_var, n_samp), np.nan)
    blocks = []
    for j, var in enumerate(variants):
        alleles = list(var["alleles"])
        ident = _str16(var["id"]) + _str16(var["rsid"]) + _str16(var["chrom"]) + struct.pack("<I", var["pos"])
        if layout == 1:
            ints = np.clip(np.rint(p[j] * 32768), 0, 65535).astype("<u2")
            ints[missing[j]] = 0
            truth[j] = np.where(missing[j], np.nan, (ints[:, 1] + 2.0 * ints[:, 2]) / 32768)
            packed = _compress(ints.tobytes(), compression)
            data = packed if compression is None else struct.pack("<I", len(packed)) + packed
            blocks.append(struct.pack("<I", n_samp) + ident + b"".join(_str32(a) for a in alleles) + data)
        else:
            raw, truth[j] = _layout2_probabilities(p[j], missing[j], ploidy[j], len(alleles), bits, phased)
            packed = _compress(raw, compression)
            data = (struct.pack("<I", len(raw)) + raw if compression is None
                    else struct.pack("<II", len(packed) + 4, len(raw)) + packed)
            blocks.append(ident + struct.pack("<H", len(alleles)) + b"".join(_str32(a) for a in alleles) + data)

    flags = COMPRESSION_CODES[compression] | (layout << 2) | ((sample_ids is not None) << 31)
    header = struct.pack("<III", 20 + len(free_data), n_var, n_samp) + b"bgen" + free_data + struct.pack("<I", flags)
    samples = b""
    if sample_ids is not None:
        ids = b"".join(_str16(s) for s in sample_ids)
        samples = struct.pack("<II", 8 + len(ids), len(sample_ids)) + ids
    prefix = struct.pack("<I", len(header) + len(samples)) + header + samples
    with open(path, "wb") as handle:
        handle.write(prefix + b"".join(blocks))
    if bgi:
        _write_bgi(f"{path}.bgi", variants, blocks, len(prefix))
    return truth


def _write_bgi(path, variants, blocks, first_offset) -> None:
    """A bgenix-style index: SQLite with the ``Variant`` table (one row per variant block, its file
    span) and a ``Metadata`` table, as bgenix creates them."""
    import sqlite3

    Path(path).unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE Metadata (filename TEXT NOT NULL, file_size INT NOT NULL, last_write_time "
                       "INT NOT NULL, first_1000_bytes BLOB NOT NULL, index_creation_time INT NOT NULL)")
    connection.execute("CREATE TABLE Variant (chromosome TEXT NOT NULL, position INT NOT NULL, rsid TEXT NOT NULL, "
                       "number_of_alleles INT NOT NULL, allele1 TEXT NOT NULL, allele2 TEXT NULL, "
                       "file_start_position INT NOT NULL, size_in_bytes INT NOT NULL, PRIMARY KEY (chromosome, "
                       "position, rsid, allele1, allele2, file_start_position)) WITHOUT ROWID")
    offset = first_offset
    rows = []
    for var, block in zip(variants, blocks, strict=True):
        alleles = list(var["alleles"])
        rows.append((var["chrom"], var["pos"], var["rsid"], len(alleles), alleles[0],
                     alleles[1] if len(alleles) > 1 else None, offset, len(block)))
        offset += len(block)
    connection.executemany("INSERT INTO Variant VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    connection.commit()
    connection.close()


def write_sample_file(path, fid, iid, sex=None) -> None:
    """Oxford ``.sample`` file: ``ID_1 ID_2 missing sex`` header, ``0 0 0 D`` type line, one line per sample."""
    sex = [0] * len(iid) if sex is None else sex
    lines = ["ID_1 ID_2 missing sex", "0 0 0 D"] + [f"{f} {i} 0 {s}" for f, i, s in zip(fid, iid, sex, strict=True)]
    Path(path).write_text("\n".join(lines) + "\n")
