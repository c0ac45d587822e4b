"""Phenotype and covariate tables, and sample alignment with a genotype file.

Files are whitespace/tab separated with a header starting ``FID IID`` or ``#FID IID``
(``#IID`` alone is accepted: the FID is then ``0``, plink2's convention, and such a table is
matched to the genotype samples by IID alone; so is any table when the genotype file itself has no
FIDs, e.g. a ``#IID`` .psam). ``NA`` and
``-9`` mean missing (plink2's ``--input-missing-phenotype`` default, which also applies to
covariates). Non-numeric covariate columns are categorical and one-hot encoded with the
first level dropped; non-numeric phenotype values are an error.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.errors import InputError

MISSING_TOKENS = ["NA", "na", "NaN", "nan", ".", "-9", "-9.0"]
# plink2: a sample table without an FID column has FID 0
ABSENT_FID = "0"
# DataFrame.attrs key marking a table (or genotype sample table) read without FIDs
FID_ABSENT = "fid_absent"


def _read_raw(path: str | Path, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} file {path} does not exist")
    try:
        table = pd.read_csv(path, sep=r"\s+", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False, engine="c")
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"{what} file {path} is empty") from exc
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().split(". ")[-1]
        raise InputError(f"{what} file {path}: a row has more fields than the header ({detail})") from exc
    # whitespace-separated fields are never empty: an empty (or NaN) cell means the row ran out of fields
    short = (table.isna() | (table == "")).any(axis=1).to_numpy()
    if short.any():
        row = int(np.flatnonzero(short)[0]) + 2
        raise InputError(
            f"{what} file {path}: line {row} has fewer fields than the header; write NA for missing values"
        )
    columns = list(table.columns)
    if columns and columns[0].startswith("#"):
        columns[0] = columns[0][1:]
    upper = [c.upper() for c in columns]
    if upper[:2] == ["FID", "IID"]:
        columns[:2] = ["FID", "IID"]
        table.columns = columns
    elif upper[:1] == ["IID"]:
        columns[0] = "IID"
        table.columns = columns
        table.insert(0, "FID", ABSENT_FID)
        table.attrs[FID_ABSENT] = True
    else:
        raise InputError(f"{what} file {path}: the header must start with 'FID IID' "
                         f"(or '#FID IID' or '#IID'); found {' '.join(columns[:3])!r}")
    if table.shape[1] < 3:
        raise InputError(f"{what} file {path} has no data columns after FID IID")
    dup = table.duplicated(subset=["FID", "IID"], keep=False)
    if dup.any():
        first = (table.loc[dup, "FID"] + " " + table.loc[dup, "IID"]).unique()[:3].tolist()
        raise InputError(f"{what} file {path}: duplicate FID IID rows (first: {first}); each sample once")
    indexed = table.set_index(["FID", "IID"])
    indexed.attrs[FID_ABSENT] = bool(table.attrs.get(FID_ABSENT, False))
    return indexed


def _parse_numbers(column: pd.Series) -> pd.Series | None:
    """``column`` (text) as float64 with :data:`MISSING_TOKENS` as NaN, when pyarrow's number parser
    reads every other value and none of them is a NaN: it accepts a subset of what
    :func:`pandas.to_numeric` does (no spaces, hexadecimal or digit separators) with the same values,
    ~15x faster. None otherwise, or without
    pyarrow: the caller then takes the pandas path (which also names a bad value).
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:  # pragma: no cover - pyarrow comes with the [fast] and dev extras
        return None
    try:
        text = pa.array(column, type=pa.string(), from_pandas=True)
        missing = pc.is_in(text, value_set=pa.array(MISSING_TOKENS))
        numbers = pc.cast(pc.if_else(missing, pa.scalar(None, pa.string()), text), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if pc.any(pc.is_nan(numbers)).as_py():  # "NAN", "-nan", "nan(1)": not missing tokens; pandas decides
        return None
    return pd.Series(numbers.to_numpy(zero_copy_only=False), index=column.index, name=column.name, dtype=float)


def _select(table: pd.DataFrame, names: list[str] | None, path: str | Path, what: str,
            flag: str) -> pd.DataFrame:
    if not names:
        return table
    unknown = [n for n in names if n not in table.columns]
    if unknown:
        raise InputError(f"{flag} {', '.join(unknown)} not found in {what} file {path}; "
                         f"available columns: {', '.join(map(str, table.columns))}")
    return table[names]


def read_phenotypes(path: str | Path, names: list[str] | None = None) -> pd.DataFrame:
    """Read a phenotype table.

    Returns
    -------
    DataFrame indexed by (FID, IID), one float column per phenotype (NaN = missing).

    Raises
    ------
    InputError
        Unknown ``--pheno-name``, non-numeric values, or a column that is entirely missing.
    """
    raw_table = _read_raw(path, "phenotype")
    table = _select(raw_table, names, path, "phenotype", "--pheno-name")
    out = {}
    for column in table.columns:
        values = _parse_numbers(table[column])
        if values is not None:
            if values.isna().all():
                raise InputError(f"phenotype file {path}: column {column} is missing for every sample")
            out[column] = values
            continue
        raw = table[column].replace(MISSING_TOKENS, np.nan)
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() & raw.notna()
        if bad.any():
            where = table.index[bad.to_numpy()][0]
            raise InputError(f"phenotype file {path}: column {column} has non-numeric value "
                             f"{raw[bad].iloc[0]!r} (sample {where[0]} {where[1]}); use numbers, NA or -9")
        if values.isna().all():
            raise InputError(f"phenotype file {path}: column {column} is missing for every sample")
        out[column] = values.astype(float)
    result = pd.DataFrame(out, index=table.index)
    result.attrs[FID_ABSENT] = raw_table.attrs[FID_ABSENT]
    return result


def read_covariates(path: str | Path, names: list[str] | None = None) -> pd.DataFrame:
    """Read a covariate table; categorical columns are one-hot encoded (first level dropped).

    Returns
    -------
    DataFrame indexed by (FID, IID) of floats (NaN = missing); a categorical column ``C``
    with levels a, b, c becomes ``C=b`` and ``C=c``.
    """
    raw_table = _read_raw(path, "covariate")
    table = _select(raw_table, names, path, "covariate", "--covar-name")
    columns: dict[str, pd.Series] = {}
    for column in table.columns:
        values = _parse_numbers(table[column])
        if values is not None:  # a numeric column
            if values.isna().all():
                raise InputError(f"covariate file {path}: column {column} is missing for every sample")
            columns[column] = values
            continue
        raw = table[column].replace(MISSING_TOKENS, np.nan)
        values = pd.to_numeric(raw, errors="coerce")
        if values.isna().all() and raw.isna().all():
            raise InputError(f"covariate file {path}: column {column} is missing for every sample")
        if (values.isna() & raw.notna()).any():
            levels = sorted(raw.dropna().unique().tolist())
            for level in levels[1:]:
                indicator = (raw == level).astype(float)
                indicator[raw.isna()] = np.nan
                columns[f"{column}={level}"] = indicator
        else:
            columns[column] = values.astype(float)
    result = pd.DataFrame(columns, index=table.index)
    result.attrs[FID_ABSENT] = raw_table.attrs[FID_ABSENT]
    return result


def read_sample_list(path: str | Path, what: str = "--keep") -> pd.MultiIndex:
    """Read a --keep/--remove file: ``FID IID`` per line (header optional), or one IID per line
    (or a ``#IID`` header). IID-only entries have a missing FID (NaN) and match any sample with
    that IID (see :func:`in_sample_list`)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} file {path} does not exist")
    lines = [line.split() for line in path.read_text().splitlines() if line.split()]
    iid_only = bool(lines) and lines[0][0].upper() in ("#IID", "IID")
    pairs = []
    for fields in lines:
        if fields[0].upper() in ("FID", "#FID", "#IID", "IID"):
            continue
        pairs.append((None, fields[0]) if iid_only or len(fields) == 1 else (fields[0], fields[1]))
    return pd.MultiIndex.from_tuples(pairs, names=["FID", "IID"]) if pairs else \
        pd.MultiIndex.from_arrays([[], []], names=["FID", "IID"])


def in_sample_list(sample_ids: pd.MultiIndex, entries: pd.MultiIndex) -> np.ndarray:
    """Which of ``sample_ids`` a --keep/--remove list names -> (n,) bool: entries with an FID match
    (FID, IID) exactly, IID-only entries (NaN FID) match on IID."""
    fids = pd.Index(entries.get_level_values("FID"))
    iid_only = fids.isna()
    found = np.asarray(sample_ids.isin(entries[~iid_only]), dtype=bool)
    if iid_only.any():
        iids = pd.Index(entries.get_level_values("IID"))[iid_only]
        found |= np.asarray(pd.Index(sample_ids.get_level_values("IID")).isin(iids), dtype=bool)
    return found


@dataclass
class SampleAlignment:
    """Result of :func:`align_samples`.

    Attributes
    ----------
    genotype_index : ndarray of int, shape (n,)
        Rows of the genotype file to use, in genotype-file order.
    sample_ids : MultiIndex (FID, IID) of the n kept samples.
    phenotypes, covariates : DataFrame (n rows, same order) or None.
    dropped : dict mapping a reason to the number of samples dropped for it.
    """

    genotype_index: np.ndarray
    sample_ids: pd.MultiIndex
    phenotypes: pd.DataFrame | None
    covariates: pd.DataFrame | None
    dropped: dict[str, int] = field(default_factory=dict)

    def report(self) -> str:
        parts = [f"{len(self.genotype_index)} samples kept"]
        parts += [f"{count} dropped: {reason}" for reason, count in self.dropped.items() if count]
        return "; ".join(parts)


def match_by_iid(table: pd.DataFrame, genotype_ids: pd.MultiIndex, what: str) -> pd.DataFrame:
    """Re-index ``table`` (indexed by (FID, IID)) with the genotype samples' (FID, IID), matching
    on IID alone; rows whose IID is not a genotype sample are dropped. Used when the table or the
    genotype file has no FID column (plink2 then takes FID 0 on that side)."""
    genotype_iids = pd.Index(genotype_ids.get_level_values("IID"))
    table_iids = pd.Index(table.index.get_level_values("IID"))
    for ids, where in ((genotype_iids, "the genotype file"), (table_iids, f"the {what}")):
        repeated = ids[ids.duplicated()].unique()
        if len(repeated):
            raise InputError(f"samples of the {what} are matched by IID (one side has no FID column), but "
                             f"{where} repeats IIDs (first: {list(repeated[:3])}); give both files FID IID columns")
    position = pd.Series(np.arange(len(genotype_iids)), index=genotype_iids).reindex(table_iids).to_numpy()
    found = ~np.isnan(position)
    matched = table[found].copy()
    matched.index = genotype_ids[position[found].astype(np.int64)]
    return matched


def align_samples(genotype_ids: pd.MultiIndex, *, phenotypes: pd.DataFrame | None = None,
                  covariates: pd.DataFrame | None = None, keep: pd.MultiIndex | None = None,
                  remove: pd.MultiIndex | None = None, require_complete_covariates: bool = True,
                  pheno_path: str | None = None, genotype_fid_absent: bool = False) -> SampleAlignment:
    """Intersect the genotype samples with phenotype/covariate tables and --keep/--remove lists.

    Samples missing *all* phenotypes are dropped; samples missing any covariate are dropped when
    ``require_complete_covariates`` (plink2 behaviour). Individual phenotype values may remain NaN
    (per-phenotype handling is the caller's job). A table read without FIDs (``#IID`` header), or
    any table when ``genotype_fid_absent`` (the genotype file has no FIDs), is matched by IID.
    """
    if phenotypes is not None and (genotype_fid_absent or phenotypes.attrs.get(FID_ABSENT, False)):
        phenotypes = match_by_iid(phenotypes, genotype_ids, "phenotype file")
    if covariates is not None and (genotype_fid_absent or covariates.attrs.get(FID_ABSENT, False)):
        covariates = match_by_iid(covariates, genotype_ids, "covariate file")
    mask = np.ones(len(genotype_ids), dtype=bool)
    dropped: dict[str, int] = {}

    def apply(new_mask: np.ndarray, reason: str) -> None:
        nonlocal mask
        lost = int((mask & ~new_mask).sum())
        dropped[reason] = dropped.get(reason, 0) + lost
        mask &= new_mask

    if keep is not None:
        apply(in_sample_list(genotype_ids, keep), "not in --keep")
    if remove is not None:
        apply(~in_sample_list(genotype_ids, remove), "in --remove")
    if phenotypes is not None:
        common = genotype_ids.isin(phenotypes.index)
        if not common.any():
            first = [" ".join(map(str, t)) for t in phenotypes.index[:3]]
            gfirst = [" ".join(map(str, t)) for t in genotype_ids[:3]]
            raise InputError(f"phenotype file {pheno_path or ''} has 0 sample IDs in common with the "
                             f"genotype file (phenotype IDs: {first}; genotype IDs: {gfirst}); "
                             "check the FID/IID columns")
        apply(common, "not in the phenotype file")
        present = phenotypes.reindex(genotype_ids).notna().any(axis=1).to_numpy()
        apply(present, "phenotype missing")
    if covariates is not None:
        apply(genotype_ids.isin(covariates.index), "not in the covariate file")
        if require_complete_covariates and covariates.shape[1]:
            complete = covariates.reindex(genotype_ids).notna().all(axis=1).to_numpy()
            apply(complete, "covariate missing")
    if not mask.any():
        raise InputError("no samples remain after matching genotypes, phenotypes, covariates "
                         "and --keep/--remove")
    index = np.flatnonzero(mask)
    ids = genotype_ids[index]
    return SampleAlignment(
        genotype_index=index, sample_ids=ids,
        phenotypes=None if phenotypes is None else phenotypes.reindex(ids),
        covariates=None if covariates is None else covariates.reindex(ids),
        dropped=dropped,
    )
