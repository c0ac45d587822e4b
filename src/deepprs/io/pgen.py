"""PLINK 2 binary genotypes (.pgen/.pvar/.psam) through ``pgenlib``: a validating reader and a writer.

The dosage counts the **ALT** allele (``a1 = alt``), the allele plink2 counts in ``--freq``
(``ALT_FREQS``) and ``--glm`` by default. Only biallelic hard calls are supported: a ``.pvar``
row with several ALT alleles (``A,C``) is an :class:`~deepprs.errors.InputError` (split them
first with ``plink2 --max-alleles 2`` or ``bcftools norm -m-``).

``.pvar``: optional ``##`` lines, then a ``#CHROM POS ID REF ALT [QUAL FILTER INFO CM]`` header
(columns located by name); a header-less ``.pvar`` is read as ``.bim`` column order.
``.psam``: a ``#FID IID ...`` or ``#IID ...`` header (``FID`` is then ``0``, as in plink2, and
phenotype/covariate tables are matched to the samples by IID); a
header-less ``.psam`` is read as a ``.fam``.
"""

from __future__ import annotations

import csv
import re
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.errors import InputError
from deepprs.io.bed import read_fam
from deepprs.io.genotypes import (
    VARIANT_COLUMNS,
    GenotypeSource,
    check_unique_ids,
    finish_missing,
)
from deepprs.io.tables import ABSENT_FID, FID_ABSENT
from deepprs.utils.runlog import atomic_path

PGEN_MAGIC = bytes([0x6C, 0x1B])
_PGEN_MISSING = -9
_SEX_CODES = {"1": 1, "2": 2, "M": 1, "m": 1, "F": 2, "f": 2, "MALE": 1, "FEMALE": 2}


def _import_pgenlib():
    try:
        import pgenlib
    except ImportError as exc:  # pragma: no cover - pgenlib is a core dependency
        raise InputError("reading .pgen needs the pgenlib package: pip install pgenlib") from exc
    return pgenlib


def finish_float_dosage(dosage: np.ndarray, dtype: np.dtype | type, missing: str) -> np.ndarray:
    """Float dosages (NaN = missing) -> the representation ``read``/``iter_blocks`` promise.

    ``missing="nan"`` keeps NaN, ``"mean"`` imputes the per-variant mean of the observed values
    (0 where none is observed). ``"raw"`` is not handled here (it means int8 hard calls).
    """
    if missing not in ("nan", "mean"):
        finish_missing(np.zeros((0, 0), np.int8), dtype, missing)        # raises the standard error
    out_dtype = dtype if np.issubdtype(np.dtype(dtype), np.floating) else np.float32
    out = dosage.astype(out_dtype, copy=False)
    if missing == "mean":
        is_missing = np.isnan(out)
        if is_missing.any():
            observed_count = out.shape[0] - is_missing.sum(axis=0)
            total = np.where(is_missing, 0.0, out).sum(axis=0, dtype=np.float64)
            col_mean = np.divide(total, observed_count, out=np.zeros(total.shape), where=observed_count > 0)
            np.copyto(out, np.broadcast_to(col_mean.astype(out.dtype), out.shape), where=is_missing)
    return out


def _pgenlib_message(exc: Exception) -> str:
    """pgenlib puts C error text (bytes) in its exceptions; make it one readable line."""
    message = exc.args[0] if exc.args else exc
    if isinstance(message, bytes):
        message = message.decode(errors="replace")
    return " ".join(str(message).split())


def _header_lines(path: Path) -> tuple[int, str | None]:
    """Number of leading ``##`` lines and the ``#``-header line that follows them (or None)."""
    skipped = 0
    with open(path) as handle:
        for line in handle:
            if line.startswith("##"):
                skipped += 1
                continue
            return skipped, (line.rstrip("\n") if line.startswith("#") else None)
    return skipped, None


def _read_pvar_fast(path: Path, names: list[str], skiprows: int) -> pd.DataFrame | None:
    """A well-formed .pvar (header line given) in one C-parser pass: positions parsed as integers,
    text kept as pandas strings (~2.5x faster at 100,000 variants). None when the file needs the
    validating path of :func:`read_pvar` (ragged rows, empty fields, non-integer positions,
    multi-allelic variants), which then reports the problem."""
    from deepprs.io.arrowtext import read_tab_separated
    from deepprs.io.bed import _bim_table

    table = read_tab_separated(path, names, skip_rows=skiprows, integer=["POS"],
                               numeric=["CM"] if "CM" in names else ())
    if table is not None:
        if table["ALT"].str.contains(",", regex=False).any():
            return None
        cm = table["CM"] if "CM" in table else pd.Series(0.0, index=table.index)
        return _bim_table(table["CHROM"], table["POS"].to_numpy(), table["ID"], table["ALT"], table["REF"], cm)[
            VARIANT_COLUMNS]
    dtypes = {index: (np.int64 if name == "POS" else str) for index, name in enumerate(names)}
    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype=dtypes, skiprows=skiprows, engine="c",
                            quoting=csv.QUOTE_NONE,
                            na_filter=False)
    except (ValueError, TypeError, pd.errors.ParserError):  # EmptyDataError propagates
        return None
    if table.shape[1] != len(names):
        return None
    table.columns = names
    if any((table[name] == "").any() for name in names if name != "POS"):  # a short row
        return None
    if table["ALT"].str.contains(",", regex=False).any():
        return None
    cm = table["CM"] if "CM" in table else pd.Series(0.0, index=table.index)
    return _bim_table(table["CHROM"], table["POS"].to_numpy(), table["ID"], table["ALT"], table["REF"], cm)[
        VARIANT_COLUMNS]


def read_pvar(path: str | Path) -> pd.DataFrame:
    """Read a ``.pvar`` into the variant table (``chrom pos id ref alt a1 cm``; ``a1 = alt``).

    Raises
    ------
    InputError
        Missing file, no ``#CHROM``/``POS``/``ID``/``REF``/``ALT`` columns, short rows,
        non-integer positions, or multi-allelic variants.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"missing file {path}; a .pgen needs its .pvar beside it")
    skipped, header = _header_lines(path)
    if header is None:
        names = ["CHROM", "ID", "CM", "POS", "ALT", "REF"]      # .bim column order
        skiprows = skipped
    else:
        names = header.lstrip("#").split()
        skiprows = skipped + 1
        missing_columns = [c for c in ("CHROM", "POS", "ID", "REF", "ALT") if c not in names]
        if missing_columns:
            raise InputError(f"{path}: header line lacks column(s) {', '.join(missing_columns)}; expected "
                             "'#CHROM POS ID REF ALT ...'")
    try:
        if header is not None:
            fast = _read_pvar_fast(path, names, skiprows)
            if fast is not None:
                return fast
        table = pd.read_csv(path, sep=r"\s+", header=None, names=None, dtype=str, skiprows=skiprows,
                            quoting=csv.QUOTE_NONE,
                            engine="c", keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"{path} has no variants") from exc
    except pd.errors.ParserError as exc:  # a row with more fields than the first one
        found = re.search(r"line (\d+), saw (\d+)", str(exc))
        where = f" line {found.group(1)}" if found else ""   # pandas counts skipped lines too
        count = f", found {found.group(2)}" if found else ""
        raise InputError(f"{path}{where}: expected {len(names)} columns ({' '.join(names)}){count}") from exc
    if table.shape[1] != len(names):
        raise InputError(f"{path}: rows have {table.shape[1]} columns but the header names {len(names)} "
                         f"({' '.join(names)})")
    table.columns = names
    empty = (table == "").any(axis=1).to_numpy() | table.isna().any(axis=1).to_numpy()
    if empty.any():
        bad = int(empty.argmax()) + 1 + skiprows
        raise InputError(f"{path} line {bad}: expected {len(names)} columns ({' '.join(names)})")
    pos = pd.to_numeric(table["POS"], errors="coerce")
    not_integer = (pos.isna() | (pos != np.floor(pos))).to_numpy()
    if not_integer.any():
        bad = int(not_integer.argmax())
        raise InputError(f"{path} line {bad + 1 + skiprows}: position {table['POS'].iloc[bad]!r} "
                         "is not an integer")
    multi = table["ALT"].str.contains(",", regex=False).to_numpy()
    if multi.any():
        bad = int(multi.argmax())
        raise InputError(f"{path}: {int(multi.sum())} multi-allelic variant(s) (first: "
                         f"{table['ID'].iloc[bad]} ALT={table['ALT'].iloc[bad]}); deepprs reads biallelic "
                         "variants only; split or drop them with plink2 --max-alleles 2 "
                         "(or bcftools norm -m-)")
    if "CM" in table:
        cm = pd.to_numeric(table["CM"], errors="coerce").fillna(0.0)
    else:
        cm = pd.Series(0.0, index=table.index)
    alt = table["ALT"].to_numpy()
    return pd.DataFrame({
        "chrom": table["CHROM"].to_numpy(), "pos": pos.astype(np.int64).to_numpy(),
        "id": table["ID"].to_numpy(),
        "ref": table["REF"].to_numpy(), "alt": alt, "a1": alt, "cm": cm.to_numpy(dtype=float),
    })[VARIANT_COLUMNS]


def read_psam(path: str | Path) -> pd.DataFrame:
    """Read a ``.psam`` into the sample table (``fid iid father mother sex``; sex 1/2, 0 = unknown)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"missing file {path}; a .pgen needs its .psam beside it")
    skipped, header = _header_lines(path)
    if header is None:
        return read_fam(path)
    names = header.lstrip("#").split()
    upper = [name.upper() for name in names]
    if upper[:2] != ["FID", "IID"] and upper[:1] != ["IID"]:
        raise InputError(f"{path}: the header must start with '#FID IID' or '#IID'; found {header[:40]!r}")
    try:  # one C-parser pass; IDs such as "NA" stay text
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, skiprows=skipped + 1, engine="c",
                            quoting=csv.QUOTE_NONE,
                            na_filter=False, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        table = pd.DataFrame()
    except pd.errors.ParserError as exc:  # a row with more fields than the first one
        found = re.search(r"line (\d+), saw (\d+)", str(exc))
        where = f" line {found.group(1)}" if found else ""   # pandas counts the skipped lines too
        count = f", found {found.group(2)}" if found else ""
        raise InputError(f"{path}{where}: expected {len(names)} columns ({' '.join(names)}){count}") from exc
    if table.empty:
        raise InputError(f"{path} has no samples")
    short = (table == "").any(axis=1).to_numpy()
    if table.shape[1] != len(names) or short.any():
        row = int(short.argmax()) if short.any() else 0
        found = int((table.iloc[row] != "").sum())
        raise InputError(f"{path} line {skipped + 2 + row}: expected {len(names)} columns ({' '.join(names)}), "
                         f"found {found}")
    table.columns = upper
    n = len(table)
    iid = table["IID"].to_numpy()
    sex = (table["SEX"].map(_SEX_CODES).fillna(0).astype(int) if "SEX" in table
           else pd.Series(np.zeros(n, dtype=int)))
    samples = pd.DataFrame({
        "fid": table["FID"].to_numpy() if "FID" in table else np.full(n, ABSENT_FID, dtype=object),
        "iid": iid,
        "father": table["PAT"].to_numpy() if "PAT" in table else np.full(n, "0", dtype=object),
        "mother": table["MAT"].to_numpy() if "MAT" in table else np.full(n, "0", dtype=object),
        "sex": sex.to_numpy(dtype=int),
    })
    samples.attrs[FID_ABSENT] = "FID" not in table  # plink2: FID 0; tables are then matched by IID
    return samples


def _header_may_have_dosages(path: Path) -> bool:
    """Whether a .pgen header allows dosage (or phase) records.

    Storage mode byte 2: 0x02 fixed-width hard calls, 0x03 fixed-width dosages, 0x10/0x11 variable
    records whose header control byte (offset 11) has a low nibble >= 4 when 8-bit record types
    (carrying the dosage/phase bits) are in use.
    """
    with open(path, "rb") as handle:
        header = handle.read(12)
    mode = header[2]
    if mode == 0x03:
        return True
    if mode in (0x10, 0x11) and len(header) >= 12:
        return (header[11] & 0x0F) >= 4
    return False


class PgenReader(GenotypeSource):
    """PLINK 2 ``.pgen`` reader of the ALT allele (``a1 = alt``).

    Files that may store dosages (imputed data; header flag) are read with their dosages for
    float output (``missing="nan"``/``"mean"``), exactly as ``plink2 --freq`` uses them; hard-call
    files, and ``missing="raw"`` int8 output, use the hard calls (a dosage too far from 0/1/2 for
    plink2's ``--hard-call-threshold`` is a missing hard call). :attr:`may_have_dosages` says which.

    Parameters
    ----------
    prefix
        Path prefix of ``.pgen/.pvar/.psam`` (a ``.pgen`` path is accepted too).
    allow_duplicate_variant_ids
        Accept repeated variant IDs (otherwise an :class:`InputError`).

    Examples
    --------
    >>> with PgenReader("cohort") as pgen:                  # doctest: +SKIP
    ...     dosage = pgen.read(variants=slice(0, 100))      # samples x 100 ALT dosages, NaN missing
    """

    def __init__(self, prefix: str | Path, *, allow_duplicate_variant_ids: bool = False) -> None:
        prefix = Path(prefix)
        if prefix.suffix == ".pgen":
            prefix = prefix.with_suffix("")
        self.path = Path(f"{prefix}.pgen")
        if not self.path.exists():
            raise InputError(f"missing file {self.path}")
        self.sample_table = read_psam(f"{prefix}.psam")
        self.variant_table = read_pvar(f"{prefix}.pvar")
        check_unique_ids(self.sample_table, self.variant_table, str(prefix),
                         allow_duplicate_variant_ids=allow_duplicate_variant_ids)
        with open(self.path, "rb") as handle:
            magic = handle.read(3)
        if magic[:2] != PGEN_MAGIC or len(magic) < 3:
            raise InputError(f"{self.path} is not a .pgen file (magic bytes {magic.hex()} instead of 6c1b..)")
        pgenlib = _import_pgenlib()
        try:
            self._reader = pgenlib.PgenReader(bytes(self.path), raw_sample_ct=self.n_samples,
                                              variant_ct=self.n_variants)
            # a truncated file opens fine and fails on its last records: read the last variant now
            self._reader.read_range(self.n_variants - 1, self.n_variants,
                                    np.empty((1, self.n_samples), dtype=np.int8))
        except Exception as exc:  # pgenlib raises RuntimeError on a header/size mismatch
            raise InputError(f"{self.path} cannot be read with {self.n_samples} samples (.psam) x "
                             f"{self.n_variants} variants (.pvar): {_pgenlib_message(exc)}; the .pgen is "
                             "truncated, multi-allelic, or does not belong to this .pvar/.psam") from exc
        self._subset: np.ndarray | None = None      # sorted unique sample positions in use
        self.may_have_dosages = _header_may_have_dosages(self.path)
        # read_variant_major_i8: one pgenlib reader per thread (pgenlib releases the GIL, so
        # threads read blocks in parallel); all of them are closed by close()
        self._thread_readers = threading.local()
        self._all_thread_readers: list = []
        self._thread_readers_lock = threading.Lock()

    def _set_samples(self, sample_index: np.ndarray) -> np.ndarray | None:
        """Restrict pgenlib to the needed samples; return the column order to apply (or None)."""
        if len(sample_index) == self.n_samples and np.array_equal(sample_index, np.arange(self.n_samples)):
            wanted = None
        else:
            wanted = np.unique(sample_index)
        same = (wanted is None and self._subset is None) or (
            wanted is not None and self._subset is not None and np.array_equal(wanted, self._subset))
        if not same:
            self._reader.change_sample_subset(None if wanted is None else wanted.astype(np.uint32))
            self._subset = wanted
        if wanted is None:
            return None
        order = np.searchsorted(wanted, sample_index)
        in_order = len(order) == len(wanted) and np.array_equal(order, np.arange(len(wanted)))
        return None if in_order else order

    def _read_i8(self, sample_index: np.ndarray, variant_index: np.ndarray) -> np.ndarray:
        if self._reader is None:
            raise InputError(f"{self.path} is closed")
        if len(sample_index) == 0:
            return np.empty((0, len(variant_index)), dtype=np.int8)
        order = self._set_samples(sample_index)
        n_read = self.n_samples if self._subset is None else len(self._subset)
        # sample_maj=1: pgenlib writes samples x variants itself (~10x cheaper than transposing here)
        dosage = np.empty((n_read, len(variant_index)), dtype=np.int8)
        if len(variant_index):
            start = int(variant_index[0])
            try:
                if np.array_equal(variant_index, np.arange(start, start + len(variant_index))):
                    self._reader.read_range(start, start + len(variant_index), dosage, sample_maj=1)
                else:
                    self._reader.read_list(variant_index.astype(np.uint32), dosage, sample_maj=1)
            except RuntimeError as exc:
                raise InputError(f"{self.path}: pgenlib cannot read variants {variant_index[0]}..."
                                 f"{variant_index[-1]} ({_pgenlib_message(exc)}); the file is truncated or "
                                 "corrupt") from exc
        np.maximum(dosage, -1, out=dosage)                  # pgenlib's -9 (missing) -> -1
        return dosage if order is None else dosage[order]

    def read_variant_major_i8(self, variant_index: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Hard calls of all samples, variant-major: (len(variant_index), n_samples) int8, negative =
        missing (pgenlib's -9). pgenlib's native layout: reading it this way costs ~0.01 s per
        4,096 variants x 10,000 samples, where transposing a sample-major block costs ~0.3 s.
        ``out`` (int8, C-contiguous, that shape): a buffer to read into."""
        return self._read_variant_major(variant_index, np.int8, out)

    def read_variant_major_dosage(self, variant_index: np.ndarray) -> np.ndarray:
        """Dosages of all samples (the hard call where a variant has none), variant-major:
        (len(variant_index), n_samples) float64, NaN = missing."""
        dosage = self._read_variant_major(variant_index, np.float64)
        dosage[dosage == _PGEN_MISSING] = np.nan
        return dosage

    def _read_variant_major(self, variant_index: np.ndarray, dtype: type, out: np.ndarray | None = None) -> np.ndarray:
        if self._reader is None:
            raise InputError(f"{self.path} is closed")
        variant_index = np.asarray(variant_index, dtype=np.int64)
        reader = getattr(self._thread_readers, "reader", None)
        if reader is None:  # this thread's own reader of every sample: safe beside other threads
            reader = _import_pgenlib().PgenReader(bytes(self.path), raw_sample_ct=self.n_samples,
                                                  variant_ct=self.n_variants)
            self._thread_readers.reader = reader
            with self._thread_readers_lock:
                self._all_thread_readers.append(reader)
        shape = (len(variant_index), self.n_samples)
        if out is None:
            out = np.empty(shape, dtype=dtype)
        elif out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {np.dtype(dtype)} array of shape {shape}")
        if len(variant_index):
            start = int(variant_index[0])
            contiguous = np.array_equal(variant_index, np.arange(start, start + len(variant_index)))
            try:
                if dtype == np.int8 and contiguous:
                    reader.read_range(start, start + len(variant_index), out, sample_maj=0)
                elif dtype == np.int8:
                    reader.read_list(variant_index.astype(np.uint32), out, sample_maj=0)
                elif contiguous:
                    reader.read_dosages_range(start, start + len(variant_index), out)
                else:
                    reader.read_dosages_list(variant_index.astype(np.uint32), out)
            except RuntimeError as exc:
                raise InputError(f"{self.path}: pgenlib cannot read variants {variant_index[0]}..."
                                 f"{variant_index[-1]} ({_pgenlib_message(exc)}); the file is truncated or "
                                 "corrupt") from exc
        return out

    def _read_float(self, sample_index: np.ndarray, variant_index: np.ndarray,
                    dtype: np.dtype | type) -> np.ndarray:
        """Dosages (float, NaN = missing) from pgenlib's dosage reader, samples x variants."""
        if self._reader is None:
            raise InputError(f"{self.path} is closed")
        float_dtype = np.float64 if np.dtype(dtype) == np.float64 else np.float32
        if len(sample_index) == 0 or len(variant_index) == 0:
            return np.empty((len(sample_index), len(variant_index)), dtype=float_dtype)
        order = self._set_samples(sample_index)
        n_read = self.n_samples if self._subset is None else len(self._subset)
        variant_major = np.empty((len(variant_index), n_read), dtype=float_dtype)
        start = int(variant_index[0])
        try:
            if np.array_equal(variant_index, np.arange(start, start + len(variant_index))):
                self._reader.read_dosages_range(start, start + len(variant_index), variant_major)
            else:
                self._reader.read_dosages_list(variant_index.astype(np.uint32), variant_major)
        except RuntimeError as exc:
            raise InputError(f"{self.path}: pgenlib cannot read dosages of variants {variant_index[0]}..."
                             f"{variant_index[-1]} ({_pgenlib_message(exc)}); the file is truncated or "
                             "corrupt") from exc
        variant_major[variant_major == _PGEN_MISSING] = np.nan
        dosage = variant_major.T if order is None else variant_major.T[order]
        return np.ascontiguousarray(dosage)

    def _finish(self, sample_index: np.ndarray, variant_index: np.ndarray, dtype, missing: str) -> np.ndarray:
        if missing == "raw" or not self.may_have_dosages:
            return finish_missing(self._read_i8(sample_index, variant_index), dtype, missing)
        return finish_float_dosage(self._read_float(sample_index, variant_index, dtype), dtype, missing)

    def close(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.close()
        self._reader = None
        for extra in getattr(self, "_all_thread_readers", []):
            extra.close()
        self._all_thread_readers = []
        self._thread_readers = threading.local()


def write_pgen(prefix: str | Path, dosage: np.ndarray, sample_table: pd.DataFrame,
               variant_table: pd.DataFrame) -> None:
    """Write a PLINK 2 fileset (``.pgen/.pvar/.psam``) of hard calls.

    Parameters
    ----------
    prefix
        Output prefix.
    dosage : ndarray, shape (n_samples, n_variants)
        Copies of ``variant_table.a1`` (0/1/2; NaN or negative = missing; other values are rounded).
    sample_table : DataFrame
        Columns ``fid, iid`` and optionally ``father, mother, sex``.
    variant_table : DataFrame
        Columns ``chrom, pos, id, ref, alt, a1`` (and optionally ``cm``). ``a1`` must be ``alt``
        or ``ref``; the file stores the ALT count, so where ``a1 == ref`` the alleles are swapped
        on output (ALT becomes ``a1``), keeping the dosage meaning.

    Files appear atomically (and are removed if a run fails, see :mod:`deepprs.utils.runlog`).
    """
    dosage = np.asarray(dosage)
    if dosage.ndim != 2:
        raise InputError("write_pgen: dosage must be a samples x variants matrix")
    n, m = dosage.shape
    if len(sample_table) != n or len(variant_table) != m:
        raise InputError(f"write_pgen: dosage is {n} x {m} but the tables hold {len(sample_table)} samples "
                         f"and {len(variant_table)} variants")
    a1 = variant_table["a1"].astype(str).to_numpy()
    ref = variant_table["ref"].astype(str).to_numpy()
    alt = variant_table["alt"].astype(str).to_numpy()
    swap = (a1 != alt) & (a1 == ref)
    bad = (a1 != alt) & (a1 != ref)
    if bad.any():
        first = variant_table["id"].to_numpy()[bad][:3].tolist()
        raise InputError(f"write_pgen: a1 is neither ref nor alt for {int(bad.sum())} variant(s) "
                         f"(first: {first})")
    out_ref = np.where(swap, alt, ref)
    out_alt = np.where(swap, ref, alt)
    if dosage.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(dosage) & (dosage >= 0)
        calls = np.where(valid, np.rint(np.nan_to_num(dosage)), _PGEN_MISSING).astype(np.int8)
    else:
        calls = np.where(dosage >= 0, dosage, _PGEN_MISSING).astype(np.int8)
    if (calls > 2).any():
        raise InputError("write_pgen: hard-call dosages must be 0, 1 or 2")
    variant_major = np.ascontiguousarray(calls.T)
    prefix = Path(prefix)
    pgenlib = _import_pgenlib()
    with atomic_path(f"{prefix}.pgen") as tmp:
        writer = pgenlib.PgenWriter(bytes(tmp), n, m, False)
        try:
            for start in range(0, m, 4096):
                writer.append_biallelic_batch(variant_major[start:start + 4096])
        finally:
            writer.close()
    pvar = pd.DataFrame({
        "#CHROM": variant_table["chrom"].to_numpy(), "POS": variant_table["pos"].to_numpy(),
        "ID": variant_table["id"].to_numpy(), "REF": out_ref, "ALT": out_alt,
        "CM": variant_table["cm"].to_numpy() if "cm" in variant_table else np.zeros(m),
    })
    with atomic_path(f"{prefix}.pvar") as tmp:
        pvar.to_csv(tmp, sep="\t", index=False)
    unknown_parent = np.full(n, "0", dtype=object)
    sex = sample_table["sex"] if "sex" in sample_table else [0] * n
    psam = pd.DataFrame({
        "#FID": sample_table["fid"].to_numpy(), "IID": sample_table["iid"].to_numpy(),
        "PAT": sample_table["father"].to_numpy() if "father" in sample_table else unknown_parent,
        "MAT": sample_table["mother"].to_numpy() if "mother" in sample_table else unknown_parent,
        "SEX": [int(s) if int(s) in (1, 2) else "NA" for s in sex],
    })
    with atomic_path(f"{prefix}.psam") as tmp:
        psam.to_csv(tmp, sep="\t", index=False)
