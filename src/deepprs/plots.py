"""Manhattan and QQ plots (matplotlib, Agg backend; files written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.utils.runlog import atomic_path

GENOME_WIDE = 5e-8


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _chrom_order(codes: np.ndarray) -> list[str]:
    def key(code: str) -> tuple[int, str]:
        return (int(code), "") if code.isdigit() else (10_000, code)

    return sorted(pd.unique(codes), key=key)


def manhattan_plot(
    table: pd.DataFrame, path: str | Path, *, title: str | None = None, threshold: float = GENOME_WIDE
) -> Path:
    """Manhattan plot of −log10 P along the genome.

    Parameters
    ----------
    table : DataFrame with columns ``CHROM``, ``POS``, ``P`` (or ``#CHROM``); NaN P are skipped.
    path
        PNG file to write.
    threshold
        Horizontal line (default genome-wide 5e-8).
    """
    plt = _pyplot()
    chrom_column = "CHROM" if "CHROM" in table.columns else "#CHROM"
    p = table["P"].to_numpy(dtype=float)
    keep = np.isfinite(p) & (p > 0)
    chrom = table[chrom_column].astype(str).to_numpy()[keep]
    pos = table["POS"].to_numpy(dtype=float)[keep]
    neg_log_p = -np.log10(p[keep])
    fig, ax = plt.subplots(figsize=(10, 4))
    offset = 0.0
    ticks, labels = [], []
    for number, code in enumerate(_chrom_order(chrom)):
        on = chrom == code
        x = pos[on] - pos[on].min() + offset
        ax.scatter(x, neg_log_p[on], s=3, color=("#1f4e79", "#6fa8dc")[number % 2], rasterized=True)
        ticks.append(offset + (x.max() - offset) / 2 if x.size else offset)
        labels.append(code)
        offset = (x.max() if x.size else offset) + max(1.0, 0.02 * (pos.max() - pos.min() if pos.size else 1.0))
    ax.axhline(-np.log10(threshold), color="#c00000", linewidth=0.8, linestyle="--")
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_xlabel("chromosome")
    ax.set_ylabel("−log10 P")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return Path(path)


def qq_plot(pvalues: np.ndarray, path: str | Path, *, title: str | None = None) -> Path:
    """QQ plot of observed vs expected −log10 P with λGC in the legend."""
    from deepprs.assoc.output import genomic_control

    plt = _pyplot()
    p = np.asarray(pvalues, dtype=float)
    p = np.sort(p[np.isfinite(p) & (p > 0) & (p <= 1)])
    expected = -np.log10((np.arange(1, p.size + 1) - 0.5) / max(p.size, 1))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(expected, -np.log10(p), s=4, color="#1f4e79", rasterized=True, label=f"λGC = {genomic_control(p):.3f}")
    top = max(expected.max() if expected.size else 1.0, 1.0)
    ax.plot([0, top], [0, top], color="#c00000", linewidth=0.8)
    ax.set_xlabel("expected −log10 P")
    ax.set_ylabel("observed −log10 P")
    ax.legend(loc="upper left", frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return Path(path)
