"""Reader for leave-one-chromosome-out cvBLUP covariates (``PREFIX.cvblup.loco.tsv``).

Contract (written by the mixed-model helper): tab-separated, header ``FID IID`` (or ``#FID IID``)
then one column per chromosome code exactly as in the ``.bim`` (e.g. ``17 18 …``); each value is
the sample's LOCO cvBLUP computed without that chromosome. ``NA`` marks a missing value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.errors import InputError

LOCO_SUFFIX = ".cvblup.loco.tsv"


def loco_path(prefix: str | Path) -> Path:
    """``PREFIX.cvblup.loco.tsv`` (a path already ending in the suffix is returned unchanged)."""
    text = str(prefix)
    return Path(text if text.endswith(LOCO_SUFFIX) else text + LOCO_SUFFIX)


def read_cvblup_loco(prefix: str | Path, sample_ids: pd.MultiIndex | None = None) -> pd.DataFrame:
    """Read LOCO cvBLUP predictions.

    Parameters
    ----------
    prefix
        ``PREFIX`` of ``PREFIX.cvblup.loco.tsv`` (or the full file name).
    sample_ids : MultiIndex (FID, IID), optional
        When given, rows are reordered to these samples (absent samples get NaN).

    Returns
    -------
    DataFrame indexed by (FID, IID), one float column per chromosome code (str).

    Raises
    ------
    InputError
        Missing file, bad header, non-numeric values, duplicate samples, or no sample in common
        with ``sample_ids``.
    """
    path = loco_path(prefix)
    if not path.exists():
        raise InputError(f"--cvblup-covar: file {path} does not exist (expected PREFIX{LOCO_SUFFIX})")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise InputError(f"--cvblup-covar: file {path} is empty") from exc
    columns = [str(c) for c in table.columns]
    if columns and columns[0].startswith("#"):
        columns[0] = columns[0][1:]
    if [c.upper() for c in columns[:2]] != ["FID", "IID"] or len(columns) < 3:
        raise InputError(
            f"--cvblup-covar: {path} must be tab-separated with header 'FID IID <chrom> ...'; "
            f"found {' '.join(columns[:3])!r}"
        )
    table.columns = ["FID", "IID", *[c.strip() for c in columns[2:]]]
    if table.duplicated(subset=["FID", "IID"]).any():
        raise InputError(f"--cvblup-covar: {path} lists a sample twice")
    values = {}
    for column in table.columns[2:]:
        raw = table[column].replace(["NA", "nan", "NaN", ""], np.nan)
        numeric = pd.to_numeric(raw, errors="coerce")
        bad = numeric.isna() & raw.notna()
        if bad.any():
            raise InputError(f"--cvblup-covar: {path} column {column} has non-numeric value {raw[bad].iloc[0]!r}")
        values[column] = numeric.astype(float).to_numpy()
    result = pd.DataFrame(values, index=pd.MultiIndex.from_arrays([table["FID"], table["IID"]], names=["FID", "IID"]))
    if sample_ids is not None:
        if not sample_ids.isin(result.index).any():
            raise InputError(
                f"--cvblup-covar: {path} has 0 sample IDs in common with the analysed samples; "
                "check that it was made from the same cohort"
            )
        result = result.reindex(sample_ids)
    return result
