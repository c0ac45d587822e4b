"""Cross-validation folds: random, family-aware (``group_by``), or read from a file.

Fold labels are ints 0..K-1, one per sample, in the order of ``sample_ids``.  With
``group_by`` (e.g. the FID), all members of a group share a fold, so relatives never sit on
both sides of a train/test split.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.errors import InputError


def _id_strings(sample_ids) -> list[str]:
    if isinstance(sample_ids, pd.MultiIndex):
        return [" ".join(map(str, t)) for t in sample_ids]
    return [str(s) for s in sample_ids]


def make_folds(
    sample_ids: pd.MultiIndex | Sequence,
    n_folds: int,
    seed: int | None = 0,
    group_by: Sequence | np.ndarray | str | None = None,
) -> np.ndarray:
    """Assign each sample to one of ``n_folds`` folds.

    Parameters
    ----------
    sample_ids
        (FID, IID) MultiIndex or any sequence of sample identifiers, length n.
    n_folds
        K >= 2.
    seed
        Seed for the random assignment.
    group_by
        Group label per sample (length n), or ``"FID"`` to use the first level of a
        MultiIndex. Groups are shuffled and each goes whole to the currently smallest fold
        (largest groups first), which keeps fold sizes balanced.

    Returns
    -------
    ndarray of int, shape (n,)
        Fold label 0..K-1 per sample.
    """
    n = len(sample_ids)
    n_folds = int(n_folds)
    if n_folds < 2:
        raise InputError(f"--folds must be >= 2, got {n_folds}")
    rng = np.random.default_rng(seed)
    if group_by is None:
        if n_folds > n:
            raise InputError(f"--folds {n_folds} is more than the {n} samples")
        labels = np.arange(n) % n_folds
        rng.shuffle(labels)
        return labels.astype(np.int64)
    if isinstance(group_by, str):
        if group_by.upper() != "FID" or not isinstance(sample_ids, pd.MultiIndex):
            raise InputError(f"--group-by {group_by!r}: only FID is supported as a name (or pass group labels)")
        groups = np.asarray(sample_ids.get_level_values(0)).astype(str)
    else:
        groups = np.asarray(group_by).astype(str)
        if groups.shape[0] != n:
            raise InputError(f"group_by has {groups.shape[0]} labels for {n} samples")
    unique, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if n_folds > len(unique):
        raise InputError(f"--folds {n_folds} is more than the {len(unique)} groups (families)")
    order = rng.permutation(len(unique))
    order = order[np.argsort(-counts[order], kind="stable")]  # largest groups first, random among ties
    fold_of_group = np.empty(len(unique), dtype=np.int64)
    sizes = np.zeros(n_folds, dtype=np.int64)
    for g in order:
        smallest = np.flatnonzero(sizes == sizes.min())
        target = int(rng.choice(smallest))
        fold_of_group[g] = target
        sizes[target] += counts[g]
    return fold_of_group[inverse]


def read_folds_file(path: str | Path, sample_ids: pd.MultiIndex) -> np.ndarray:
    """Read ``FID IID FOLD`` (header optional, ``#FID`` accepted) and return 0-based labels.

    Every sample in ``sample_ids`` must appear; extra rows are ignored.  Fold values may be
    any integers or strings; they are mapped to 0..K-1 in sorted order.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"--folds-file {path} does not exist")
    table = pd.read_csv(path, sep=r"\s+", header=None, dtype=str, comment=None, engine="python")
    if table.shape[1] < 3:
        raise InputError(f"--folds-file {path}: need three columns FID IID FOLD")
    first = [str(v).lstrip("#").upper() for v in table.iloc[0, :3]]
    if first[:2] == ["FID", "IID"]:
        table = table.iloc[1:]
    table = table.iloc[:, :3]
    table.columns = ["FID", "IID", "FOLD"]
    if table.duplicated(subset=["FID", "IID"]).any():
        raise InputError(f"--folds-file {path}: a sample appears twice; give each FID IID once")
    lookup = table.set_index(["FID", "IID"])["FOLD"]
    wanted = pd.MultiIndex.from_arrays(
        [sample_ids.get_level_values(0).astype(str), sample_ids.get_level_values(1).astype(str)]
    )
    folds = lookup.reindex(wanted)
    missing = folds.isna()
    if missing.any():
        first_missing = [" ".join(t) for t in wanted[missing.to_numpy()][:3]]
        raise InputError(
            f"--folds-file {path}: {int(missing.sum())} analysed samples have no fold "
            f"(first: {first_missing}); list every sample"
        )
    values = folds.to_numpy()
    try:
        numeric = values.astype(np.int64)
        levels, labels = np.unique(numeric, return_inverse=True)
    except ValueError:
        levels, labels = np.unique(values.astype(str), return_inverse=True)
    if len(levels) < 2:
        raise InputError(f"--folds-file {path}: need at least 2 distinct folds, found {len(levels)}")
    return labels.astype(np.int64)
