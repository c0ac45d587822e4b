"""PLINK 1 binary genotypes (.bed/.bim/.fam): a validating memory-mapped reader and a writer.

.bed layout: 3 magic bytes ``6c 1b 01`` (variant-major), then for each variant
``ceil(N / 4)`` bytes; sample *i* sits in bits ``2*(i % 4)`` of byte ``i // 4``.
Two-bit codes: ``00`` homozygous first .bim allele (A1), ``01`` missing, ``10`` heterozygous,
``11`` homozygous second allele. We count A1, so the dosages are 2, missing, 1, 0.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource, check_unique_ids
from deepprs.utils.runlog import atomic_path

BED_MAGIC = bytes([0x6C, 0x1B, 0x01])
# code -> dosage of A1; -1 = missing
_CODE_TO_DOSAGE = np.array([2, -1, 1, 0], dtype=np.int8)
# byte -> the four dosages it packs, lowest bits first
BYTE_TO_DOSAGES = _CODE_TO_DOSAGE[(np.arange(256)[:, None] >> np.array([0, 2, 4, 6])) & 3].astype(np.int8)
# byte -> byte whose four 2-bit fields hold (dosage + 1), i.e. 0 = missing, 1/2/3 = dosage 0/1/2: one
# table lookup per *byte*, after which a field minus 1 is the int8 dosage (no per-genotype gather)
_FIELD_SHIFTS = np.array([0, 2, 4, 6])
_BYTE_CODES = (np.arange(256)[:, None] >> _FIELD_SHIFTS) & 3                     # (256, 4)
BYTE_TO_DOSAGE_PLUS_ONE = (((_CODE_TO_DOSAGE + 1).astype(np.uint8)[_BYTE_CODES] << _FIELD_SHIFTS)
                           .sum(axis=1).astype(np.uint8))
_DECODE_CHUNK = 512     # variants decoded at a time: keeps the transposed bytes in cache


def decode_bed_block(packed: np.ndarray, sample_index: np.ndarray | None = None, *,
                     n_samples: int | None = None) -> np.ndarray:
    """Decode variant-major packed .bed bytes into a samples × variants int8 dosage matrix.

    Parameters
    ----------
    packed : ndarray of uint8, shape (b, ceil(N / 4))
        Rows of a variant-major .bed (without the magic bytes).
    sample_index : ndarray of int, shape (n,), optional
        Samples to decode (any order, repeats allowed); all ``n_samples`` when omitted.
    n_samples
        N, needed when ``sample_index`` is omitted (the last byte may hold padding).

    Returns
    -------
    ndarray of int8, shape (n, b) or (N, b)
        Dosage of A1 (the fifth .bim column); -1 = missing.

    Notes
    -----
    Vectorised: one 256-entry table lookup per byte recodes the four 2-bit fields to
    ``dosage + 1``; each field is then shifted out for all samples at once and written
    straight into sample-major order, so no samples × variants transpose is ever made.
    """
    packed = np.asarray(packed, dtype=np.uint8)
    n_variants, n_bytes = packed.shape
    if sample_index is None:
        total = n_bytes * 4 if n_samples is None else n_samples
        out = np.empty((n_bytes, 4, n_variants), dtype=np.int8)
        for start in range(0, n_variants, _DECODE_CHUNK):
            stop = min(start + _DECODE_CHUNK, n_variants)
            recoded = np.take(BYTE_TO_DOSAGE_PLUS_ONE, packed[start:stop].T)        # (bytes, chunk)
            field = np.empty_like(recoded)
            for j in range(4):
                np.right_shift(recoded, 2 * j, out=field)
                np.bitwise_and(field, 3, out=field)
                np.subtract(field, 1, out=out[:, j, start:stop], casting="unsafe")  # 0 - 1 wraps to -1
        return out.reshape(n_bytes * 4, n_variants)[:total]
    sample_index = np.asarray(sample_index, dtype=np.int64)
    shift = ((sample_index % 4) * 2).astype(np.uint8)[:, None]
    out = np.empty((len(sample_index), n_variants), dtype=np.int8)
    for start in range(0, n_variants, _DECODE_CHUNK):
        stop = min(start + _DECODE_CHUNK, n_variants)
        recoded = np.take(BYTE_TO_DOSAGE_PLUS_ONE, packed[start:stop].T[sample_index // 4])  # (n, chunk)
        np.right_shift(recoded, shift, out=recoded)
        np.bitwise_and(recoded, 3, out=recoded)
        np.subtract(recoded, 1, out=out[:, start:stop], casting="unsafe")
    return out


# byte -> byte with each 2-bit field recoded to the PackedGenotypes code (0/1/2 = dosage, 3 = missing)
_CODE_TO_PACKED = np.where(_CODE_TO_DOSAGE < 0, 3, _CODE_TO_DOSAGE).astype(np.uint8)
BYTE_TO_PACKED_CODES = ((_CODE_TO_PACKED[_BYTE_CODES] << _FIELD_SHIFTS).sum(axis=1)).astype(np.uint8)


def transcode_bed_block(packed: np.ndarray, n_samples: int) -> np.ndarray:
    """Turn variant-major .bed bytes into sample-major 2-bit codes (the PackedGenotypes layout).

    Parameters
    ----------
    packed : ndarray of uint8, shape (b, ceil(N / 4))
        Rows of a variant-major .bed (4 samples per byte).
    n_samples
        N.

    Returns
    -------
    ndarray of uint8, shape (N, ceil(b / 4))
        4 variants per byte, lowest bits first; codes 0/1/2 = dosage of A1, 3 = missing (also the
        padding of the last byte), exactly :func:`deepprs.io.packed.pack_dosage` of the decoded block.

    Notes
    -----
    A 2-bit transpose done on whole words, never expanding to one byte per genotype: after
    recoding each byte, four variants' bytes of one sample group are read as a uint32; field ``j``
    of each byte (sample ``4k + j``) is masked out and the four 2-bit values are gathered into the
    low byte with two shift-or steps.
    """
    packed = np.asarray(packed, dtype=np.uint8)
    n_variants, n_bytes = packed.shape
    n_out = (n_variants + 3) // 4
    out = np.empty((n_bytes, 4, n_out), dtype=np.uint8)
    chunk = _DECODE_CHUNK                     # a multiple of 4, so chunks start on output bytes
    for start in range(0, n_variants, chunk):
        stop = min(start + chunk, n_variants)
        width = ((stop - start + 3) // 4) * 4
        recoded = np.full((n_bytes, width), 0xFF, dtype=np.uint8)         # padding variants: code 3
        np.take(BYTE_TO_PACKED_CODES, packed[start:stop].T, out=recoded[:, : stop - start])
        words = recoded.view("<u4")                                         # (bytes, width / 4)
        field = np.empty_like(words)
        shifted = np.empty_like(words)
        for j in range(4):
            np.right_shift(words, 2 * j, out=field)
            np.bitwise_and(field, 0x03030303, out=field)
            np.right_shift(field, 6, out=shifted)
            np.bitwise_or(field, shifted, out=field)
            np.right_shift(field, 12, out=shifted)
            np.bitwise_or(field, shifted, out=field)
            np.copyto(out[:, j, start // 4: start // 4 + width // 4], field, casting="unsafe")  # low byte
    return out.reshape(n_bytes * 4, n_out)[:n_samples]


def read_fam(path: str | Path) -> pd.DataFrame:
    """Read a .fam file into the sample table (``fid iid father mother sex phenotype``)."""
    from deepprs.io.arrowtext import read_tab_separated

    path = Path(path)
    if not path.exists():
        raise InputError(f"missing file {path}; a .bed needs its .fam beside it")
    columns = ["fid", "iid", "father", "mother", "sex", "phenotype"]
    table = read_tab_separated(path, columns)  # a plain tab-separated .fam (else None: the checks below)
    if table is not None:
        table["sex"] = pd.to_numeric(table["sex"], errors="coerce").fillna(0).astype(int)
        return table
    rows = path.read_text().removeprefix("\ufeff").splitlines()  # (a byte-order mark, as pyarrow drops it)
    records = []
    for number, line in enumerate(rows, start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 6:
            raise InputError(f"{path} line {number}: expected 6 columns (FID IID father mother sex pheno), "
                             f"found {len(fields)}")
        records.append(fields)
    if not records:
        raise InputError(f"{path} has no samples")
    table = pd.DataFrame(records, columns=columns)
    table["sex"] = pd.to_numeric(table["sex"], errors="coerce").fillna(0).astype(int)
    return table


_BIM_DTYPES = {0: str, 1: str, 2: str, 3: np.int64, 4: str, 5: str}


def _bim_table(chrom: pd.Series, pos: np.ndarray, ids: pd.Series, a1: pd.Series, a2: pd.Series,
               cm: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({
        "chrom": chrom, "pos": pos, "id": ids, "ref": a2, "alt": a1, "a1": a1,
        "cm": pd.to_numeric(cm, errors="coerce").fillna(0.0),
    })


def _read_bim_arrow(path: Path) -> pd.DataFrame | None:
    """A tab-separated .bim through pyarrow (:func:`~deepprs.io.arrowtext.read_tab_separated`), or
    None (no pyarrow, or not the plain case)."""
    from deepprs.io.arrowtext import read_tab_separated

    frame = read_tab_separated(path, ["chrom", "id", "cm", "pos", "a1", "a2"], integer=["pos"], numeric=["cm"])
    if frame is None:
        return None
    return _bim_table(frame["chrom"], frame["pos"].to_numpy(), frame["id"], frame["a1"], frame["a2"], frame["cm"])


def _read_bim_fast(path: Path) -> pd.DataFrame | None:
    """A well-formed .bim in one C-parser pass with the positions parsed as integers and the text
    columns kept as pandas strings (no object round trip: ~3x faster at 100,000 variants). None
    when the file needs the validating path (ragged rows, missing fields, non-integer positions)."""
    arrow = _read_bim_arrow(path)
    if arrow is not None:
        return arrow
    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype=_BIM_DTYPES, engine="c", na_filter=False,
                            quoting=csv.QUOTE_NONE)
    except (ValueError, TypeError, pd.errors.ParserError):  # EmptyDataError propagates
        return None
    if table.shape[1] != 6 or any((table[column] == "").any() for column in (0, 1, 2, 4, 5)):
        return None  # a short row (its missing fields read as "")
    return _bim_table(table[0], table[3].to_numpy(), table[1], table[4], table[5], table[2])


def read_bim(path: str | Path) -> pd.DataFrame:
    """Read a .bim file into the variant table (``chrom pos id ref alt a1 cm``; a1 = alt = column 5)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"missing file {path}; a .bed needs its .bim beside it")
    try:
        fast = _read_bim_fast(path)
        if fast is not None:
            return fast
        # IDs such as "NA" or "nan" are IDs, not missing values
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, engine="c", keep_default_na=False,
                            quoting=csv.QUOTE_NONE)
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"{path} has no variants") from exc
    except pd.errors.ParserError as exc:  # a row with more fields than the first one
        found = re.search(r"line (\d+), saw (\d+)", str(exc))
        where = f" line {found.group(1)}" if found else ""
        count = f", found {found.group(2)}" if found else ""
        raise InputError(f"{path}{where}: expected 6 columns (chrom id cM pos A1 A2){count}") from exc
    if table.shape[1] != 6:
        raise InputError(f"{path}: expected 6 columns (chrom id cM pos A1 A2), found {table.shape[1]}")
    short = (table == "").any(axis=1).to_numpy()  # a row with missing fields
    if short.any():
        bad = int(short.argmax()) + 1
        raise InputError(f"{path} line {bad}: expected 6 columns (chrom id cM pos A1 A2)")
    pos = pd.to_numeric(table[3], errors="coerce")
    not_integer = (pos.isna() | (pos != np.floor(pos))).to_numpy()
    if not_integer.any():
        bad = int(not_integer.argmax()) + 1
        raise InputError(f"{path} line {bad}: position {table.iloc[bad - 1, 3]!r} is not an integer")
    return _bim_table(table[0], pos.astype(np.int64).to_numpy(), table[1], table[4], table[5], table[2])


class BedReader(GenotypeSource):
    """Validating, memory-mapped PLINK 1 .bed reader.

    Parameters
    ----------
    prefix
        Path prefix of ``.bed/.bim/.fam``.
    allow_duplicate_variant_ids
        Accept repeated variant IDs (otherwise an :class:`InputError`).

    Examples
    --------
    >>> with BedReader("cohort") as bed:                 # doctest: +SKIP
    ...     dosage = bed.read(variants=slice(0, 100))   # samples x 100, NaN for missing
    """

    def __init__(self, prefix: str | Path, *, allow_duplicate_variant_ids: bool = False) -> None:
        prefix = Path(prefix)
        if prefix.suffix == ".bed":
            prefix = prefix.with_suffix("")
        self.path = Path(f"{prefix}.bed")
        if not self.path.exists():
            raise InputError(f"missing file {self.path}")
        self.sample_table = read_fam(f"{prefix}.fam")
        self.variant_table = read_bim(f"{prefix}.bim")
        check_unique_ids(self.sample_table, self.variant_table, str(prefix),
                         allow_duplicate_variant_ids=allow_duplicate_variant_ids)
        with open(self.path, "rb") as handle:
            magic = handle.read(3)
        if magic != BED_MAGIC:
            raise InputError(f"{self.path} is not a PLINK 1 variant-major .bed (magic bytes {magic.hex()} "
                             f"instead of {BED_MAGIC.hex()})")
        self.bytes_per_variant = (self.n_samples + 3) // 4
        expected = 3 + self.bytes_per_variant * self.n_variants
        actual = os.path.getsize(self.path)
        if actual != expected:
            raise InputError(f"{self.path} has {actual} bytes but {self.n_variants} variants (.bim) x "
                             f"{self.n_samples} samples (.fam) need {expected}; the .bed is truncated or "
                             "does not belong to this .bim/.fam")
        self._packed = np.memmap(self.path, dtype=np.uint8, mode="r", offset=3,
                                 shape=(self.n_variants, self.bytes_per_variant))

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (reads then raise :class:`InputError`)."""
        return self._packed is None

    def packed_variant_major(self, variant_index: np.ndarray) -> np.ndarray:
        """Raw packed bytes of the given variants, shape (b, ceil(N/4))."""
        if self._packed is None:
            raise InputError(f"{self.path} is closed")
        variant_index = np.asarray(variant_index)
        if variant_index.ndim == 1 and len(variant_index) > 1:
            start = int(variant_index[0])
            stop = start + len(variant_index)
            if int(variant_index[-1]) == stop - 1 and np.array_equal(variant_index, np.arange(start, stop)):
                return np.array(self._packed[start:stop])       # one sequential read, no gather
        return np.asarray(self._packed[variant_index])

    def _read_i8(self, sample_index: np.ndarray, variant_index: np.ndarray) -> np.ndarray:
        packed = self.packed_variant_major(variant_index)  # (b, bytes); raises on a closed reader
        if len(sample_index) == self.n_samples and np.array_equal(sample_index, np.arange(self.n_samples)):
            return decode_bed_block(packed, n_samples=self.n_samples)
        return decode_bed_block(packed, sample_index)

    def close(self) -> None:
        self._packed = None  # type: ignore[assignment]


def write_bed(prefix: str | Path, dosage: np.ndarray, sample_table: pd.DataFrame,
              variant_table: pd.DataFrame) -> None:
    """Write a PLINK 1 fileset; ``dosage`` (samples × variants) counts ``variant_table.a1``.

    NaN or negative values are written as missing. Files appear atomically.
    """
    dosage = np.asarray(dosage)
    n, m = dosage.shape
    if len(sample_table) != n or len(variant_table) != m:
        raise InputError("write_bed: dosage shape does not match the sample/variant tables")
    prefix = Path(prefix)
    # dosage -> code: 2 -> 00, 1 -> 10, 0 -> 11, missing -> 01; the padding fields of the last byte
    # are 00, as plink writes them (plink2 2.00a3.5 counts 01 padding as missing calls)
    codes = np.zeros((m, ((n + 3) // 4) * 4), dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(dosage) & (dosage >= 0) if dosage.dtype.kind == "f" else dosage >= 0
        rounded = np.where(valid, np.rint(np.nan_to_num(dosage)), -1).astype(np.int8)
    lookup = {2: 0b00, 1: 0b10, 0: 0b11}
    code_t = np.full(rounded.shape, 0b01, dtype=np.uint8)
    for value, code in lookup.items():
        code_t[rounded == value] = code
    codes[:, :n] = code_t.T
    codes = codes.reshape(m, -1, 4)
    packed = (codes[..., 0] | (codes[..., 1] << 2) | (codes[..., 2] << 4)
              | (codes[..., 3] << 6)).astype(np.uint8)
    with atomic_path(f"{prefix}.bed") as tmp:
        with open(tmp, "wb") as handle:
            handle.write(BED_MAGIC)
            handle.write(packed.tobytes())
    fam = pd.DataFrame({
        "fid": sample_table["fid"], "iid": sample_table["iid"],
        "father": sample_table.get("father", pd.Series(["0"] * n)).to_numpy(),
        "mother": sample_table.get("mother", pd.Series(["0"] * n)).to_numpy(),
        "sex": sample_table.get("sex", pd.Series([0] * n)).to_numpy(),
        "phenotype": sample_table.get("phenotype", pd.Series(["-9"] * n)).to_numpy(),
    })
    with atomic_path(f"{prefix}.fam") as tmp:
        fam.to_csv(tmp, sep=" ", header=False, index=False)
    bim = pd.DataFrame({
        "chrom": variant_table["chrom"], "id": variant_table["id"],
        "cm": variant_table["cm"] if "cm" in variant_table else 0,
        "pos": variant_table["pos"], "a1": variant_table["a1"],
        "a2": variant_table["ref"],
    })
    with atomic_path(f"{prefix}.bim") as tmp:
        bim.to_csv(tmp, sep="\t", header=False, index=False)
