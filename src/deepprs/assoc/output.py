"""plink2-compatible ``--glm`` writers, genomic control, and trait-type detection."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.utils.runlog import atomic_output

# median of the chi-square(1) distribution, scipy.stats.chi2.ppf(0.5, 1) (a literal: importing
# scipy.stats costs half a second of start-up)
CHI2_MEDIAN = 0.454936423119572
INTEGER_COLUMNS = {"POS", "OBS_CT"}
TEXT_COLUMNS = {"CHROM", "ID", "REF", "ALT", "A1", "OMITTED", "TEST", "ERRCODE", "FIRTH?"}


def format_number(value: float) -> str:
    """plink2's number style: 6 significant digits, %g-like, ``NA`` for NaN, ``inf``/``-inf``."""
    if value != value:  # NaN
        return "NA"
    if value in (np.inf, -np.inf):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


VARIANT_COLUMNS = ["CHROM", "POS", "ID", "REF", "ALT", "A1", "OMITTED"]  # the leading columns of every --glm table


def _column_fields(table: pd.DataFrame, columns: list[str]) -> tuple[list[list], list[str], list[np.ndarray]]:
    """Per column: its values as a Python list, its ``%`` field and (numbers) the float array."""
    values, fields, floats = [], [], []
    for column in columns:
        array = table[column].to_numpy()
        if column in TEXT_COLUMNS:
            values.append(array.tolist())
            fields.append("%s")
        elif column in INTEGER_COLUMNS:
            values.append(array.astype(np.int64).tolist())
            fields.append("%d")
        else:
            array = np.asarray(array, dtype=np.float64)
            floats.append(array)
            values.append(array.tolist())
            fields.append("%.6g")
    return values, fields, floats


def variant_prefix(table: pd.DataFrame) -> list[str]:
    """The text of each row's variant columns (``CHROM POS ID REF ALT A1 OMITTED``), tab-separated, as
    :func:`format_glm` writes them: formatted once, it serves every phenotype's table of the same
    variants (``format_glm(table, prefix=...)``)."""
    values, fields, _ = _column_fields(table, VARIANT_COLUMNS)
    template = "\t".join(fields)
    return [template % row for row in zip(*values)]  # noqa: B905 - equal lengths by construction


def same_variants(table: pd.DataFrame, other: pd.DataFrame) -> bool:
    """Whether two result tables list the same variants in the same order (their variant columns)."""
    return len(table) == len(other) and all(
        np.array_equal(table[column].to_numpy(), other[column].to_numpy()) for column in VARIANT_COLUMNS)


def format_glm(table: pd.DataFrame, *, prefix: list[str] | None = None) -> str:
    """Render a result table in plink2's ``--glm`` text layout (tab-separated, ``#CHROM`` header).

    One ``%``-template per row (``%.6g`` numbers, ``%d`` integers, ``%s`` text): a third faster
    than formatting column by column and joining. Rows with a NaN (tests that failed) are
    rendered field by field so that NaN prints as ``NA``. ``prefix`` (from :func:`variant_prefix` of
    a table of the same variants) replaces the formatting of the leading variant columns.
    """
    columns = list(table.columns)
    if prefix is not None:
        if columns[: len(VARIANT_COLUMNS)] != VARIANT_COLUMNS or len(prefix) != len(table):
            raise ValueError("prefix: the table must start with the variant columns and match its length")
        values, fields, floats = _column_fields(table, columns[len(VARIANT_COLUMNS):])
        values, fields = [prefix, *values], ["%s", *fields]
    else:
        values, fields, floats = _column_fields(table, columns)
    template = "\t".join(fields)
    body = [template % row for row in zip(*values)]  # noqa: B905 - equal lengths by construction
    if floats:
        for i in np.flatnonzero(np.isnan(np.column_stack(floats)).any(axis=1)).tolist():
            body[i] = "\t".join(
                format_number(column_values[i]) if field == "%.6g" else field % column_values[i]
                for field, column_values in zip(fields, values, strict=True)
            )
    header = "\t".join(["#" + columns[0], *columns[1:]])
    return "\n".join([header, *body]) + "\n"


def glm_suffix(binary: bool) -> str:
    """File suffix plink2 uses: ``glm.linear`` or ``glm.logistic.hybrid`` (firth-fallback)."""
    return "glm.logistic.hybrid" if binary else "glm.linear"


def write_glm(table: pd.DataFrame, path: str | Path, *, gz: bool = False, prefix: list[str] | None = None) -> Path:
    """Write ``table`` to ``path`` (``.gz`` appended when ``gz``), atomically (``prefix``: see
    :func:`format_glm`)."""
    path = Path(f"{path}.gz" if gz and not str(path).endswith(".gz") else path)
    text = format_glm(table, prefix=prefix)
    if gz:
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as handle:
            handle.write(text.encode())
        with atomic_output(path, "wb") as handle:
            handle.write(buffer.getvalue())
    else:
        with atomic_output(path) as handle:
            handle.write(text)
    return path


def read_glm(path: str | Path) -> pd.DataFrame:
    """Read a plink2 ``--glm`` file (ours or plink2's; ``.gz`` ok) with ``#CHROM`` renamed ``CHROM``."""
    table = pd.read_csv(path, sep="\t", na_values=["NA"], keep_default_na=False, dtype={"#CHROM": str})
    return table.rename(columns={"#CHROM": "CHROM"})


def genomic_control(pvalues: np.ndarray) -> float:
    """λGC = median(χ²₁ quantile of the P-values) / 0.4549 over finite P-values (NaN if none)."""
    p = np.asarray(pvalues, dtype=float)
    p = p[np.isfinite(p) & (p > 0) & (p <= 1)]
    if p.size == 0:
        return float("nan")
    from scipy.special import chdtri  # inverse survival function of chi-square

    # the chi-square quantile is decreasing in P, so the median statistic comes from the middle
    # P-value(s): two quantiles instead of one per variant
    middle = np.partition(p, [(p.size - 1) // 2, p.size // 2])[[(p.size - 1) // 2, p.size // 2]]
    return float(chdtri(1.0, middle).mean() / CHI2_MEDIAN)


def binary_coding(values: pd.Series) -> str | None:
    """Trait type of a phenotype column, plink2 style.

    Returns
    -------
    ``"12"`` when the non-missing values are all 1 or 2 (plink's 1 = control, 2 = case),
    ``"01"`` when they are all 0 or 1 (0 = control, 1 = case, plink2's ``--1`` coding),
    ``None`` for a quantitative trait. A column with a single distinct value is quantitative.
    """
    observed = set(np.unique(values.dropna().to_numpy()).tolist())
    if len(observed) < 2:
        return None
    if observed <= {1.0, 2.0}:
        return "12"
    if observed <= {0.0, 1.0}:
        return "01"
    return None


def to_case_control(values: pd.Series, coding: str) -> pd.Series:
    """Recode a binary phenotype to 0 = control, 1 = case (NaN stays missing)."""
    return values - 1.0 if coding == "12" else values.astype(float)
