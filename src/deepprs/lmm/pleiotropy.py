"""Cross-trait (pleiotropy) matrix: corr(cvBLUP_t, y_u) for every ordered pair of traits.

The matrix is asymmetric by design (Mefford et al. 2020): row = trait whose cvBLUP is used
(PRS_TRAIT), column = phenotype it is correlated with (PHENO_TRAIT).  P-values from the
t-test of a Pearson correlation, t = r sqrt((n-2)/(1-r²)) on n-2 df, two-sided; FDR by
Benjamini–Yekutieli over all T² pairs (valid under any dependence between the tests).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

PLEIOTROPY_COLUMNS = ["PRS_TRAIT", "PHENO_TRAIT", "R", "P", "FDR", "N"]


def correlation_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    """Pearson r of the pairwise-complete values, its two-sided t-test P-value, and n.

    Returns NaN r/P when fewer than 3 complete pairs or a constant vector.
    """
    both = ~(np.isnan(x) | np.isnan(y))
    n = int(both.sum())
    if n < 3:
        return float("nan"), float("nan"), n
    xc, yc = x[both] - x[both].mean(), y[both] - y[both].mean()
    denominator = np.sqrt((xc @ xc) * (yc @ yc))
    if denominator <= 0:
        return float("nan"), float("nan"), n
    r = float(np.clip((xc @ yc) / denominator, -1.0, 1.0))
    if abs(r) == 1.0:
        return r, 0.0, n
    t = r * np.sqrt((n - 2) / (1 - r * r))
    return r, float(2 * stats.t.sf(abs(t), n - 2)), n


def benjamini_yekutieli(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Yekutieli adjusted P-values (NaN kept as NaN), same shape as the input."""
    p_values = np.asarray(p_values, dtype=np.float64)
    flat = p_values.ravel()
    finite = np.flatnonzero(~np.isnan(flat))
    out = np.full(flat.shape, np.nan)
    m = len(finite)
    if m == 0:
        return out.reshape(p_values.shape)
    order = np.argsort(flat[finite])
    harmonic = np.sum(1.0 / np.arange(1, m + 1))
    scaled = flat[finite][order] * m * harmonic / np.arange(1, m + 1)
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out[finite[order]] = adjusted
    return out.reshape(p_values.shape)


def pleiotropy_table(cvblups: pd.DataFrame, phenotypes: pd.DataFrame) -> pd.DataFrame:
    """Long table of corr(cvBLUP_t, y_u) for all trait pairs.

    Parameters
    ----------
    cvblups : DataFrame, n_samples × T (NaN where trait t was missing and not fitted)
    phenotypes : DataFrame, n_samples × U, same row order

    Returns
    -------
    DataFrame with columns PRS_TRAIT PHENO_TRAIT R P FDR N (T × U rows, PRS_TRAIT-major).
    """
    rows = []
    for prs_trait in cvblups.columns:
        x = cvblups[prs_trait].to_numpy(dtype=np.float64)
        for pheno_trait in phenotypes.columns:
            r, p, n = correlation_test(x, phenotypes[pheno_trait].to_numpy(dtype=np.float64))
            rows.append((str(prs_trait), str(pheno_trait), r, p, n))
    table = pd.DataFrame(rows, columns=["PRS_TRAIT", "PHENO_TRAIT", "R", "P", "N"])
    table["FDR"] = benjamini_yekutieli(table["P"].to_numpy())
    return table[PLEIOTROPY_COLUMNS]


def pleiotropy_matrix(table: pd.DataFrame) -> pd.DataFrame:
    """Wide matrix of R: rows PRS_TRAIT (cvBLUP), columns PHENO_TRAIT (phenotype)."""
    matrix = table.pivot(index="PRS_TRAIT", columns="PHENO_TRAIT", values="R")
    order_rows = list(dict.fromkeys(table["PRS_TRAIT"]))
    order_columns = list(dict.fromkeys(table["PHENO_TRAIT"]))
    return matrix.loc[order_rows, order_columns]


def plot_pleiotropy(table: pd.DataFrame, path: str | Path, *, fdr_threshold: float = 0.05) -> None:
    """Heatmap of the R matrix (diverging colours, * where FDR < ``fdr_threshold``) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = pleiotropy_matrix(table)
    fdr = table.pivot(index="PRS_TRAIT", columns="PHENO_TRAIT", values="FDR").loc[
        matrix.index, matrix.columns
    ]
    size = max(4.0, 0.5 * max(matrix.shape) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    limit = float(np.nanmax(np.abs(matrix.to_numpy()))) if np.isfinite(matrix.to_numpy()).any() else 1.0
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=90)
    ax.set_yticks(range(matrix.shape[0]), matrix.index)
    ax.set_xlabel("phenotype (PHENO_TRAIT)")
    ax.set_ylabel("cvBLUP (PRS_TRAIT)")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if fdr.iat[i, j] < fdr_threshold:
                ax.text(j, i, "*", ha="center", va="center", color="black")
    fig.colorbar(image, ax=ax, label="corr(cvBLUP, phenotype)")
    ax.set_title(f"cross-trait cvBLUP correlations (* BY-FDR < {fdr_threshold})")
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
