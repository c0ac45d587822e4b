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
    order = np.argsort(n_rare_all)
    start = 0
    while start < len(order):
        # grow the chunk while the work array stays small (sorted by n_rare, so width is the last one's)
        stop = start + 1
        while stop < len(order) and (stop + 1 - start) * (n_rare_all[order[stop]] // 2 + 1) <= max_cells:
            stop += 1
        rows = order[start:stop]
        p_unique[rows] = _hwe_chunk(unique[rows], midp)
        start = stop
    return p_unique[inverse]


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
