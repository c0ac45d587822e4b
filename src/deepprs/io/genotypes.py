"""The one small genotype interface every reader implements.

A :class:`GenotypeSource` exposes

* ``sample_table`` — ``pandas.DataFrame`` with columns ``fid, iid, father, mother, sex``
  (one row per sample, file order);
* ``variant_table`` — ``pandas.DataFrame`` with columns ``chrom, pos, id, ref, alt, a1, cm``;
  ``a1`` is the **counted allele** (the allele whose copies the dosage counts).  For PLINK 1
  ``.bed`` it is the fifth ``.bim`` column and ``ref`` is the sixth, exactly as plink2 reads a
  ``.bed`` (``ALT = A1``, provisional ``REF``);
* ``read(samples, variants, dtype, missing)`` — a samples × variants dosage matrix;
* ``iter_blocks(block_size, ...)`` — stream variant blocks with bounded memory.

Missing genotypes are an explicit choice: ``missing="nan"`` (float NaN), ``"mean"``
(mean-impute per variant over the selected samples) or ``"raw"`` (int8 with -1).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.errors import InputError

MISSING_CODES = ("nan", "mean", "raw")
VARIANT_COLUMNS = ["chrom", "pos", "id", "ref", "alt", "a1", "cm"]
SAMPLE_COLUMNS = ["fid", "iid", "father", "mother", "sex"]

IndexLike = slice | Sequence[int] | np.ndarray | None


@dataclass(frozen=True)
class GenotypeBlock:
    """One block of variants from :meth:`GenotypeSource.iter_blocks`.

    Attributes
    ----------
    variant_index : ndarray of int, shape (b,)
        Positions of the block's variants in the source's ``variant_table``.
    dosage : ndarray, shape (n_samples, b)
        Dosage of the counted allele (``a1``).
    """

    variant_index: np.ndarray
    dosage: np.ndarray


def as_index(index: IndexLike, size: int, what: str) -> np.ndarray:
    """Turn ``None``/slice/bool mask/int sequence into a validated int64 index array."""
    if index is None:
        return np.arange(size, dtype=np.int64)
    if isinstance(index, slice):
        return np.arange(size, dtype=np.int64)[index]
    arr = np.asarray(index)
    if arr.dtype == bool:
        if arr.shape != (size,):
            raise InputError(f"{what} mask has length {arr.shape[0]}, expected {size}")
        return np.flatnonzero(arr).astype(np.int64)
    arr = arr.astype(np.int64, copy=False).ravel()
    if arr.size and (arr.min() < -size or arr.max() >= size):
        raise InputError(f"{what} index out of range (0..{size - 1})")
    return np.where(arr < 0, arr + size, arr)


def finish_missing(dosage_i8: np.ndarray, dtype: np.dtype | type, missing: str) -> np.ndarray:
    """Convert an int8 dosage matrix with -1 for missing into the requested representation."""
    if missing not in MISSING_CODES:
        raise InputError(f"missing must be one of {MISSING_CODES}, got {missing!r}")
    if missing == "raw":
        return dosage_i8 if np.dtype(dtype) == np.int8 else dosage_i8.astype(dtype)
    out = dosage_i8.astype(dtype if np.issubdtype(np.dtype(dtype), np.floating) else np.float32)
    is_missing = dosage_i8 < 0
    if is_missing.any():
        if missing == "mean":
            # mean of the observed calls per variant (0 when none is observed; no empty-slice warning)
            observed_count = dosage_i8.shape[0] - is_missing.sum(axis=0)
            total = np.where(is_missing, 0, dosage_i8).sum(axis=0, dtype=np.int64)
            col_mean = np.divide(total, observed_count, out=np.zeros(total.shape), where=observed_count > 0)
            np.copyto(out, np.broadcast_to(col_mean.astype(out.dtype), out.shape), where=is_missing)
        else:
            np.copyto(out, np.nan, where=is_missing)
    return out


class GenotypeSource(abc.ABC):
    """Abstract genotype file. Subclasses implement ``_read_i8``."""

    path: Path
    sample_table: pd.DataFrame
    variant_table: pd.DataFrame

    @property
    def n_samples(self) -> int:
        return len(self.sample_table)

    @property
    def n_variants(self) -> int:
        return len(self.variant_table)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_samples, self.n_variants)

    @property
    def sample_ids(self) -> pd.MultiIndex:
        """(FID, IID) pairs in file order."""
        return pd.MultiIndex.from_arrays([self.sample_table["fid"], self.sample_table["iid"]],
                                         names=["FID", "IID"])

    @abc.abstractmethod
    def _read_i8(self, sample_index: np.ndarray, variant_index: np.ndarray) -> np.ndarray:
        """Return int8 dosages (samples × variants) of the counted allele, -1 = missing."""

    def read(self, samples: IndexLike = None, variants: IndexLike = None, *,
             dtype: np.dtype | type = np.float32, missing: str = "nan") -> np.ndarray:
        """Read a samples × variants dosage matrix.

        Parameters
        ----------
        samples, variants
            ``None`` (all), a slice, a boolean mask or integer positions.
        dtype
            Output dtype (float32, float64, or int8 with ``missing="raw"``).
        missing
            ``"nan"``, ``"mean"`` or ``"raw"`` (-1), see the module docstring.

        Returns
        -------
        ndarray, shape (n_selected_samples, n_selected_variants)

        .. warning:: this materialises a dense matrix; for large data use :meth:`iter_blocks`
           or :func:`deepprs.io.packed.pack_genotypes`.
        """
        sample_index = as_index(samples, self.n_samples, "sample")
        variant_index = as_index(variants, self.n_variants, "variant")
        return self._finish(sample_index, variant_index, dtype, missing)

    def _finish(self, sample_index: np.ndarray, variant_index: np.ndarray, dtype: np.dtype | type,
                missing: str) -> np.ndarray:
        """Read and convert to the requested representation; readers with dosages override this."""
        return finish_missing(self._read_i8(sample_index, variant_index), dtype, missing)

    def iter_blocks(self, block_size: int = 1000, *, samples: IndexLike = None, variants: IndexLike = None,
                    dtype: np.dtype | type = np.float32, missing: str = "nan") -> Iterator[GenotypeBlock]:
        """Stream variant blocks of at most ``block_size`` variants (memory ~ N × block_size)."""
        if block_size < 1:
            raise InputError("block_size must be >= 1")
        sample_index = as_index(samples, self.n_samples, "sample")
        variant_index = as_index(variants, self.n_variants, "variant")
        for start in range(0, len(variant_index), block_size):
            block_index = variant_index[start:start + block_size]
            yield GenotypeBlock(variant_index=block_index,
                                dosage=self._finish(sample_index, block_index, dtype, missing))

    def close(self) -> None:  # noqa: B027  # pragma: no cover - optional hook, overridden where needed
        pass

    def __enter__(self) -> GenotypeSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({str(self.path)!r}, n_samples={self.n_samples}, "
                f"n_variants={self.n_variants})")


def sample_sex(genotypes: GenotypeSource, sample_index: np.ndarray) -> np.ndarray:
    """Sex of the analysed samples from the genotype file's sample table: 1 = male, 2 = female,
    0 = unknown -> (n,) int."""
    table = genotypes.sample_table
    if "sex" not in table:
        return np.zeros(len(sample_index), dtype=int)
    sex = pd.to_numeric(table["sex"], errors="coerce").fillna(0).to_numpy()[sample_index]
    return np.where(np.isin(sex, [1, 2]), sex, 0).astype(int)


def check_unique_ids(sample_table: pd.DataFrame, variant_table: pd.DataFrame, source: str, *,
                     allow_duplicate_variant_ids: bool = False) -> None:
    """Raise on duplicate (FID, IID) pairs; duplicate variant IDs raise unless allowed."""
    dup = sample_table.duplicated(subset=["fid", "iid"], keep=False)
    if dup.any():
        first = sample_table.loc[dup, ["fid", "iid"]].head(3).astype(str).agg(" ".join, axis=1).tolist()
        raise InputError(f"{source}: {int(dup.sum())} rows share a duplicate FID IID (first: {first}); "
                         "sample IDs must be unique")
    ids = variant_table["id"]
    if allow_duplicate_variant_ids or ids.is_unique:
        return
    dup_v = ids.duplicated(keep=False) & (ids != ".")
    if dup_v.any():
        first = ids[dup_v].unique()[:3].tolist()
        raise InputError(f"{source}: {int(dup_v.sum())} variants share a duplicate ID (first: {first}); "
                         "rename them (e.g. plink2 --set-all-var-ids) or pass --allow-duplicate-ids")


def open_genotypes(path: str | Path, *, file_format: str | None = None,
                   allow_duplicate_variant_ids: bool = False,
                   sample_path: str | Path | None = None) -> GenotypeSource:
    """Open a genotype file set by prefix or file name.

    Parameters
    ----------
    path
        ``prefix`` (``prefix.bed`` or ``prefix.pgen`` must exist), or a ``.bed``/``.pgen``/``.bgen`` path.
    file_format
        ``"bed"``, ``"pgen"`` or ``"bgen"``; detected from the files when omitted.
    sample_path
        BGEN only: its Oxford ``.sample`` file (default ``prefix.sample`` when it exists, as
        plink2's ``--sample``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if file_format is None:
        if suffix in (".bed", ".pgen", ".bgen"):
            file_format = suffix[1:]
        elif Path(f"{path}.bed").exists():
            file_format = "bed"
        elif Path(f"{path}.pgen").exists():
            file_format = "pgen"
        elif Path(f"{path}.bgen").exists():
            file_format = "bgen"
        else:
            raise InputError(f"no genotype files found for prefix {path} "
                             f"(looked for {path}.bed, .pgen, .bgen)")
    prefix = path.with_suffix("") if suffix in (".bed", ".pgen", ".bgen") else path
    if sample_path is not None and file_format != "bgen":
        raise InputError(f"a .sample file ({sample_path}) goes with BGEN input, not {file_format}")
    if sample_path is not None and not Path(sample_path).exists():
        raise InputError(f"missing .sample file {sample_path}")
    if file_format == "bed":
        from deepprs.io.bed import BedReader

        return BedReader(prefix, allow_duplicate_variant_ids=allow_duplicate_variant_ids)
    if file_format == "pgen":
        from deepprs.io.pgen import PgenReader

        return PgenReader(prefix, allow_duplicate_variant_ids=allow_duplicate_variant_ids)
    if file_format == "bgen":
        from deepprs.io.bgen import BgenReader

        return BgenReader(prefix if suffix != ".bgen" else path, sample_path=sample_path,
                          allow_duplicate_variant_ids=allow_duplicate_variant_ids)
    raise InputError(f"unknown genotype format {file_format!r}; use bed, pgen or bgen")


class SampleSubset(GenotypeSource):
    """A view of another genotype source restricted to some samples (``--keep``/``--remove``).

    Parameters
    ----------
    source
        The full genotype source.
    sample_index : ndarray of int, shape (n_kept,)
        Rows of ``source`` to expose, in this order.
    """

    def __init__(self, source: GenotypeSource, sample_index: IndexLike) -> None:
        self.source = source
        self.path = source.path
        self._sample_index = as_index(sample_index, source.n_samples, "sample")
        self.sample_table = source.sample_table.iloc[self._sample_index].reset_index(drop=True)
        self.variant_table = source.variant_table

    def _read_i8(self, sample_index: np.ndarray, variant_index: np.ndarray) -> np.ndarray:
        return self.source._read_i8(self._sample_index[sample_index], variant_index)

    def _finish(self, sample_index: np.ndarray, variant_index: np.ndarray, dtype: np.dtype | type,
                missing: str) -> np.ndarray:
        return self.source._finish(self._sample_index[sample_index], variant_index, dtype, missing)

    def close(self) -> None:
        self.source.close()
