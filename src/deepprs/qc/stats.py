"""Per-variant and per-sample QC statistics: allele frequency, missingness, HWE exact test.

The Hardy-Weinberg P-value is the exact test of Wigginton, Cutler & Abecasis (2005, AJHG 76:887):
given ``n`` genotyped people and ``n_rare`` copies of the rarer allele, the number of
heterozygotes ``h`` has the distribution

    P(h) = n! n_rare! n_common! 2^h / ((2n)! h! ((n_rare - h)/2)! ((n_common - h)/2)!),

and the P-value is the sum of ``P(h')`` over every ``h'`` with ``P(h') <= P(h_obs)`` (plink2
``--hardy``/``--hwe`` without ``midp``). We evaluate it in log space with ``gammaln`` for all
variants at once (one row per distinct genotype-count triple).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import gammaln

from deepprs.io.genotypes import GenotypeSource, as_index
from deepprs.utils.runlog import track

# relative tolerance for "as or less likely than observed" (floating-point ties, as plink2 does)
_TIE_TOLERANCE = 1e-7


def hwe_exact_pvalues(n_hom_a1: np.ndarray, n_het: np.ndarray, n_hom_other: np.ndarray, *,
                      midp: bool = False, max_cells: int = 4_000_000) -> np.ndarray:
    """Vectorised Hardy-Weinberg exact test P-values (Wigginton et al. 2005).

    Parameters
    ----------
    n_hom_a1, n_het, n_hom_other : ndarray of int, shape (m,)
        Genotype counts per variant (non-missing calls only).
    midp
        Mid-p correction (plink2 ``--hwe ... midp``): ties with the observed probability count half.
    max_cells
        Work-array size per chunk (number of variants x number of het classes).

    Returns
    -------
    ndarray of float64, shape (m,)
        P-values; 1.0 for variants with no calls or no copies of one allele.
    """
    hom1 = np.asarray(n_hom_a1, dtype=np.int64)
    het = np.asarray(n_het, dtype=np.int64)
    hom2 = np.asarray(n_hom_other, dtype=np.int64)
    counts = np.stack([np.minimum(hom1, hom2), het, np.maximum(hom1, hom2)], axis=1)
    unique, inverse = np.unique(counts, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    p_unique = np.ones(len(unique))
    n_rare_all = 2 * unique[:, 0] + unique[:, 1]
    start = 0
    # most variants need only the het classes near the mode (see _hwe_window); the rest, and any
    # variant whose window check fails, are enumerated in full
    windowed, full_rows = _hwe_windowed(unique, midp)
    p_unique[:] = windowed
    order = full_rows[np.argsort(n_rare_all[full_rows], kind="stable")]
    while start < len(order):
        # grow the chunk while the work array stays small (sorted by n_rare, so width is the last one's)
        stop = start + 1
        while stop < len(order) and (stop + 1 - start) * (n_rare_all[order[stop]] // 2 + 1) <= max_cells:
            stop += 1
        rows = order[start:stop]
        p_unique[rows] = _hwe_chunk(unique[rows], midp)
        start = stop
    return p_unique[inverse]


_HWE_WINDOW_LOG = 40.0  # het classes less likely than exp(-40) x the observed one (or the mode) are left out


def _hwe_log_p(h: np.ndarray, n_rare: np.ndarray, n_common: np.ndarray) -> np.ndarray:
    """Unnormalised log probability of ``h`` heterozygotes given the allele counts (HWE)."""
    return (h * np.log(2.0) - gammaln(h + 1) - gammaln((n_rare - h) // 2 + 1) - gammaln((n_common - h) // 2 + 1))


def _hwe_windowed(counts: np.ndarray, midp: bool, max_cells: int = 4_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Exact HWE P-values summing only the het classes within a window around the mode that holds
    every class at least exp(-40) times as likely as the observed one (or the mode, if that is
    lower); the classes left out then change a tail sum by < 1e-14 relative. The log-probability
    is concave in the het count, so a window whose edge classes (when not at the bounds) fall below
    that level contains all the others; variants whose estimated window fails the check, or spans
    most classes anyway, are returned for full enumeration.

    Returns
    -------
    pvalues : ndarray, shape (m,)
        (NaN-free; rows listed in ``full`` still need the full enumeration)
    full : ndarray of int
        Rows to enumerate in full.
    """
    hom_rare, het, hom_common = (counts[:, i].astype(np.int64) for i in range(3))
    n = hom_rare + het + hom_common
    n_rare = 2 * hom_rare + het
    n_common = 2 * hom_common + het
    pvalues = np.ones(len(counts))
    trivial = (n == 0) | (n_rare == 0)
    # expected het count under HWE (of n_rare's parity) and a generous spread for the window
    expected = n_rare * n_common / np.maximum(2 * n - 1, 1)
    mode = np.clip(np.rint((expected - n_rare) / 2) * 2 + n_rare, n_rare % 2, n_rare).astype(np.int64)
    mode = np.minimum(mode, n_rare)
    log_mode = _hwe_log_p(mode, n_rare, n_common)
    log_obs = _hwe_log_p(het, n_rare, n_common)
    depth = np.maximum(log_mode - log_obs, 0.0) + _HWE_WINDOW_LOG
    # local spread from the curvature at the mode: log p(mode + d) ~ log p(mode) - d^2 / (2 s^2)
    probe = np.minimum(mode + 2 * np.ceil(np.sqrt(expected + 1.0)).astype(np.int64), n_rare - (n_rare - mode) % 2)
    probe = np.where(probe > mode, probe, np.maximum(mode - 2, n_rare % 2))
    drop = np.maximum(log_mode - _hwe_log_p(probe, n_rare, n_common), 1e-12)
    spread = np.abs(probe - mode) / np.sqrt(2.0 * drop)
    half = np.ceil(1.3 * np.sqrt(2.0 * depth) * spread).astype(np.int64) + 8
    low = np.maximum(mode - half, n_rare % 2)
    low += (low - n_rare) % 2                                      # keep n_rare's parity
    high = np.minimum(mode + half, n_rare)
    high -= (high - n_rare) % 2
    cells = (high - low) // 2 + 1
    full = ~trivial & (cells * 2 > n_rare // 2 + 1)                # a window that saves little: enumerate
    rows = np.flatnonzero(~trivial & ~full)
    rows = rows[np.argsort(cells[rows], kind="stable")]
    start = 0
    failed: list[np.ndarray] = []
    while start < len(rows):
        stop = start + 1
        while stop < len(rows) and (stop + 1 - start) * cells[rows[stop]] <= max_cells:
            stop += 1
        chunk = rows[start:stop]
        width = int(cells[chunk].max())
        h = low[chunk, None] + 2 * np.arange(width)[None, :]
        valid = h <= high[chunk, None]
        h = np.where(valid, h, low[chunk, None])
        # log p along the window by the recurrence P(h + 2) / P(h) = 4 r c / ((h + 1)(h + 2)), with r, c
        # the rare / common homozygote counts at h: one log per class instead of three log-gammas
        rare = (n_rare[chunk, None] - h) // 2
        common = (n_common[chunk, None] - h) // 2
        with np.errstate(divide="ignore"):  # r = 0 only at h = n_rare, whose step leads out of the window
            step = np.log(4.0 * rare * common / ((h + 1.0) * (h + 2.0)))
        log_p = np.empty_like(step)
        log_p[:, 0] = _hwe_log_p(low[chunk], n_rare[chunk], n_common[chunk])
        np.cumsum(step[:, :-1], axis=1, out=log_p[:, 1:])
        log_p[:, 1:] += log_p[:, :1]
        log_p = np.where(valid, log_p, -np.inf)
        level = np.minimum(log_obs[chunk], log_mode[chunk]) - _HWE_WINDOW_LOG
        # the window must reach below the level at both ends (unless it stops at a bound)
        first, last = log_p[:, 0], log_p[np.arange(len(chunk)), cells[chunk] - 1]
        bad = ((low[chunk] > n_rare[chunk] % 2) & (first >= level)) | ((high[chunk] < n_rare[chunk]) & (last >= level))
        log_max = log_p.max(axis=1)
        prob = np.exp(log_p - log_max[:, None])
        obs = (log_obs[chunk] - log_max)[:, None]
        shifted = log_p - log_max[:, None]
        tail = np.where(shifted <= obs + _TIE_TOLERANCE, prob, 0.0).sum(axis=1)
        if midp:
            tail = tail - 0.5 * np.where(np.abs(shifted - obs) <= _TIE_TOLERANCE, prob, 0.0).sum(axis=1)
        pvalues[chunk] = np.minimum(tail / prob.sum(axis=1), 1.0)
        failed.append(chunk[bad])
        start = stop
    full_rows = np.concatenate([np.flatnonzero(full), *failed]) if failed else np.flatnonzero(full)
    return pvalues, full_rows.astype(np.int64)


def _hwe_chunk(counts: np.ndarray, midp: bool) -> np.ndarray:
    hom_rare, het, hom_common = counts[:, 0], counts[:, 1], counts[:, 2]
    n = hom_rare + het + hom_common
    n_rare = 2 * hom_rare + het
    n_common = 2 * hom_common + het
    width = int(n_rare.max()) // 2 + 1
    k = np.arange(width)
    # het counts with the parity of n_rare: h = n_rare - 2k (k = number of rare homozygotes)
    h = n_rare[:, None] - 2 * k[None, :]
    valid = h >= 0
    h = np.where(valid, h, 0)
    n_hom_rare = (n_rare[:, None] - h) // 2
    n_hom_common = (n_common[:, None] - h) // 2
    log_p = (h * np.log(2.0) - gammaln(h + 1) - gammaln(n_hom_rare + 1) - gammaln(n_hom_common + 1))
    log_p = np.where(valid, log_p, -np.inf)
    log_max = log_p.max(axis=1)
    log_p = log_p - log_max[:, None]
    prob = np.exp(log_p)
    total = prob.sum(axis=1)
    log_obs = het * np.log(2.0) - gammaln(het + 1) - gammaln(hom_rare + 1) - gammaln(hom_common + 1)
    log_obs = log_obs - log_max
    as_extreme = log_p <= log_obs[:, None] + _TIE_TOLERANCE
    tail = np.where(as_extreme, prob, 0.0).sum(axis=1)
    if midp:
        ties = np.abs(log_p - log_obs[:, None]) <= _TIE_TOLERANCE
        tail = tail - 0.5 * np.where(ties, prob, 0.0).sum(axis=1)
    pvalue = np.minimum(tail / total, 1.0)
    return np.where((n == 0) | (n_rare == 0), 1.0, pvalue)


@dataclass
class GenotypeCounts:
    """Per-variant genotype counts and per-sample missing counts from one pass.

    Attributes
    ----------
    n_hom_a1, n_het, n_hom_other, n_missing : ndarray of int64, shape (m,)
    sample_missing : ndarray of int64, shape (n,)
        Missing calls per sample over the counted variants.
    n_samples : int
    """

    n_hom_a1: np.ndarray
    n_het: np.ndarray
    n_hom_other: np.ndarray
    n_missing: np.ndarray
    sample_missing: np.ndarray
    n_samples: int

    @property
    def n_called(self) -> np.ndarray:
        return self.n_hom_a1 + self.n_het + self.n_hom_other

    @property
    def a1_freq(self) -> np.ndarray:
        """A1 allele frequency among called genotypes (NaN with no calls)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return (2 * self.n_hom_a1 + self.n_het) / (2.0 * self.n_called)

    @property
    def missing_rate(self) -> np.ndarray:
        return self.n_missing / max(self.n_samples, 1)


def genotype_counts(source: GenotypeSource, *, samples: Any = None, variants: Any = None,
                    block_size: int = 4096, progress: bool = True) -> GenotypeCounts:
    """Count genotypes per variant and missing calls per sample, streaming variant blocks."""
    sample_index = as_index(samples, source.n_samples, "sample")
    variant_index = as_index(variants, source.n_variants, "variant")
    m = len(variant_index)
    hom1, het, hom2, miss = (np.zeros(m, dtype=np.int64) for _ in range(4))
    sample_missing = np.zeros(len(sample_index), dtype=np.int64)
    blocks = source.iter_blocks(block_size, samples=sample_index, variants=variant_index, dtype=np.int8,
                                missing="raw")
    n_blocks = (m + block_size - 1) // block_size
    start = 0
    for block in track(blocks, "genotype counts", total=n_blocks, disable=None if progress else True):
        dosage = block.dosage
        stop = start + dosage.shape[1]
        hom1[start:stop] = (dosage == 2).sum(axis=0)
        het[start:stop] = (dosage == 1).sum(axis=0)
        hom2[start:stop] = (dosage == 0).sum(axis=0)
        is_missing = dosage < 0
        miss[start:stop] = is_missing.sum(axis=0)
        sample_missing += is_missing.sum(axis=1)
        start = stop
    return GenotypeCounts(hom1, het, hom2, miss, sample_missing, len(sample_index))


def variant_stats(source: GenotypeSource, *, samples: Any = None, variants: Any = None,
                  block_size: int = 4096, hwe_midp: bool = False) -> pd.DataFrame:
    """Per-variant QC statistics (like ``plink2 --freq --missing --hardy``).

    Returns
    -------
    DataFrame, one row per variant
        ``ID CHROM POS A1 AX A1_FREQ MISSING_RATE HWE_P HOM_A1_CT HET_CT HOM_AX_CT OBS_CT``
        (``A1`` = counted allele, ``AX`` = the other allele).
    """
    counts = genotype_counts(source, samples=samples, variants=variants, block_size=block_size)
    table = source.variant_table.iloc[as_index(variants, source.n_variants, "variant")]
    return pd.DataFrame({
        "ID": table["id"].to_numpy(), "CHROM": table["chrom"].to_numpy(), "POS": table["pos"].to_numpy(),
        "A1": table["a1"].to_numpy(), "AX": table["ref"].to_numpy(),
        "A1_FREQ": counts.a1_freq, "MISSING_RATE": counts.missing_rate,
        "HWE_P": hwe_exact_pvalues(counts.n_hom_a1, counts.n_het, counts.n_hom_other, midp=hwe_midp),
        "HOM_A1_CT": counts.n_hom_a1, "HET_CT": counts.n_het, "HOM_AX_CT": counts.n_hom_other,
        "OBS_CT": counts.n_called,
    })
