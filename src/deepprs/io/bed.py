"""PLINK 1 binary genotypes (.bed/.bim/.fam): a validating memory-mapped reader and a writer.

.bed layout: 3 magic bytes ``6c 1b 01`` (variant-major), then for each variant
``ceil(N / 4)`` bytes; sample *i* sits in bits ``2*(i % 4)`` of byte ``i // 4``.
Two-bit codes: ``00`` homozygous first .bim allele (A1), ``01`` missing, ``10`` heterozygous,
``11`` homozygous second allele. We count A1, so the dosages are 2, missing, 1, 0.
"""

from __future__ import annotations

import os
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


def read_fam(path: str | Path) -> pd.DataFrame:
    """Read a .fam file into the sample table (``fid iid father mother sex phenotype``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"missing file {path}; a .bed needs its .fam beside it")
    rows = path.read_text().splitlines()
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
    table = pd.DataFrame(records, columns=["fid", "iid", "father", "mother", "sex", "phenotype"])
    table["sex"] = pd.to_numeric(table["sex"], errors="coerce").fillna(0).astype(int)
    return table


def read_bim(path: str | Path) -> pd.DataFrame:
    """Read a .bim file into the variant table (``chrom pos id ref alt a1 cm``; a1 = alt = column 5)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"missing file {path}; a .bed needs its .bim beside it")
    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, engine="c")
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"{path} has no variants") from exc
    if table.shape[1] != 6:
        raise InputError(f"{path}: expected 6 columns (chrom id cM pos A1 A2), found {table.shape[1]}")
    if table.isna().any().any():
        bad = int(table.isna().any(axis=1).to_numpy().argmax()) + 1
        raise InputError(f"{path} line {bad}: expected 6 columns (chrom id cM pos A1 A2)")
    pos = pd.to_numeric(table[3], errors="coerce")
    if pos.isna().any():
        bad = int(pos.isna().to_numpy().argmax()) + 1
        raise InputError(f"{path} line {bad}: position {table.iloc[bad - 1, 3]!r} is not an integer")
    cm = pd.to_numeric(table[2], errors="coerce").fillna(0.0)
    return pd.DataFrame({
        "chrom": table[0].to_numpy(), "pos": pos.astype(np.int64).to_numpy(), "id": table[1].to_numpy(),
        "ref": table[5].to_numpy(), "alt": table[4].to_numpy(), "a1": table[4].to_numpy(),
        "cm": cm.to_numpy(),
    })


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
                             f"{self.n_samples} samples (.fam) need {expected}; the .bed is truncated or does "
                             "not belong to this .bim/.fam")
        self._packed = np.memmap(self.path, dtype=np.uint8, mode="r", offset=3,
                                 shape=(self.n_variants, self.bytes_per_variant))

    def packed_variant_major(self, variant_index: np.ndarray) -> np.ndarray:
        """Raw packed bytes of the given variants, shape (b, ceil(N/4))."""
        return np.asarray(self._packed[variant_index])

    def _read_i8(self, sample_index: np.ndarray, variant_index: np.ndarray) -> np.ndarray:
        packed = self.packed_variant_major(variant_index)            # (b, bytes)
        if len(sample_index) == self.n_samples and np.array_equal(sample_index, np.arange(self.n_samples)):
            decoded = BYTE_TO_DOSAGES[packed].reshape(len(variant_index), -1)[:, : self.n_samples]
            return np.ascontiguousarray(decoded.T)
        byte_index = sample_index // 4
        shift = ((sample_index % 4) * 2).astype(np.uint8)
        codes = (packed[:, byte_index] >> shift) & 3                   # (b, n)
        return np.ascontiguousarray(_CODE_TO_DOSAGE[codes].T)

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
    # dosage -> code: 2 -> 00, 1 -> 10, 0 -> 11, missing -> 01
    codes = np.full((m, ((n + 3) // 4) * 4), 0b01, dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(dosage) & (dosage >= 0) if dosage.dtype.kind == "f" else dosage >= 0
        rounded = np.where(valid, np.rint(np.nan_to_num(dosage)), -1).astype(np.int8)
    lookup = {2: 0b00, 1: 0b10, 0: 0b11}
    code_t = np.full(rounded.shape, 0b01, dtype=np.uint8)
    for value, code in lookup.items():
        code_t[rounded == value] = code
    codes[:, :n] = code_t.T
    codes = codes.reshape(m, -1, 4)
    packed = (codes[..., 0] | (codes[..., 1] << 2) | (codes[..., 2] << 4) | (codes[..., 3] << 6)).astype(np.uint8)
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
