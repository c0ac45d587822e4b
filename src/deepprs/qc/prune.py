"""LD pruning like ``plink2 --indep-pairwise``.

Per chromosome, a window of ``window`` variants (or of ``window_kb`` kilobases, step 1) slides by
``step``; inside the window every pair of still-kept variants with genotype r2 > ``r2_threshold``
is resolved greedily in file order by pruning the variant with the lower minor allele frequency
(the later one on ties), until no such pair remains. After a window is resolved every kept pair in
it has r2 <= threshold, so when the window moves only pairs with a newly entered variant are
examined; the result is the same as re-scanning the whole window.

r2 is the squared Pearson correlation of mean-imputed dosages (identical to plink2's for data
without missing genotypes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource, as_index
from deepprs.utils.runlog import track

_MAF_TIE = 1e-7


class _StandardisedWindow:
    """Sliding cache of unit-norm centred dosage columns for consecutive variant positions."""

    def __init__(self, source: GenotypeSource, sample_index: np.ndarray, variant_index: np.ndarray,
                 chunk: int) -> None:
        self.source = source
        self.sample_index = sample_index
        self.variant_index = variant_index
        self.chunk = chunk
        self.start = 0
        self.stop = 0
        self.columns = np.zeros((len(sample_index), 0), dtype=np.float64)
        self.maf = np.zeros(0)

    def ensure(self, lo: int, hi: int) -> None:
        """Make local positions ``lo..hi-1`` available (drops everything before ``lo``)."""
        if lo > self.start:
            drop = min(lo, self.stop) - self.start
            self.columns = self.columns[:, drop:]
            self.maf = self.maf[drop:]
            self.start += drop
        if hi > self.stop:
            new_stop = min(max(hi, self.stop + self.chunk), len(self.variant_index))
            dosage = self.source.read(self.sample_index, self.variant_index[self.stop:new_stop],
                                      dtype=np.float64, missing="mean")
            freq = dosage.mean(axis=0) / 2
            centred = dosage - 2 * freq
            norm = np.sqrt((centred**2).sum(axis=0))
            with np.errstate(invalid="ignore", divide="ignore"):
                unit = np.where(norm > 0, centred / norm, 0.0)
            self.columns = np.concatenate([self.columns, unit], axis=1)
            self.maf = np.concatenate([self.maf, np.minimum(freq, 1 - freq)])
            self.stop = new_stop

    def block(self, positions: np.ndarray) -> np.ndarray:
        return self.columns[:, positions - self.start]

    def minor_freq(self, positions: np.ndarray) -> np.ndarray:
        return self.maf[positions - self.start]


def _window_ends(pos: np.ndarray, window: int | None, window_kb: float | None) -> np.ndarray:
    """For each start position s, one past the last variant in the window beginning at s."""
    m = len(pos)
    if window_kb is not None:
        return np.searchsorted(pos, pos + window_kb * 1000.0, side="right")
    return np.minimum(np.arange(m) + int(window), m)


def _prune_chromosome(cache: _StandardisedWindow, pos: np.ndarray, window: int | None,
                      window_kb: float | None, step: int, r2_threshold: float) -> np.ndarray:
    m = len(pos)
    kept = np.ones(m, dtype=bool)
    ends = _window_ends(pos, window, window_kb)
    seen_until = 0          # variants < seen_until have been compared with every earlier window member
    start = 0
    while True:
        end = int(ends[start]) if start < m else m
        if end > seen_until:
            cache.ensure(start, end)
            members = np.arange(start, end)
            members = members[kept[members]]
            new = members[members >= seen_until]
            if len(new) and len(members) > 1:
                r2 = (cache.block(members).T @ cache.block(new)) ** 2          # (members, new)
                maf = cache.minor_freq(members)
                later = members[:, None] < new[None, :]
                hit_rows = np.flatnonzero(((r2 > r2_threshold) & later).any(axis=1))
                # resolve in file order: outer i, inner j > i
                for row in hit_rows:
                    i = members[row]
                    if not kept[i]:
                        continue
                    for col in np.flatnonzero((r2[row] > r2_threshold) & later[row]):
                        j = new[col]
                        if not kept[j]:
                            continue
                        if maf[row] < (1 - _MAF_TIE) * cache.minor_freq(np.array([j]))[0]:
                            kept[i] = False
                            break
                        kept[j] = False
            seen_until = end
        if end >= m:
            break
        start += step
    return kept


def ld_prune(genotypes: GenotypeSource, *, window: int | None = 50, window_kb: float | None = None,
             step: int = 5, r2_threshold: float = 0.2, samples: Any = None, variants: Any = None,
             chunk: int = 2048) -> np.ndarray:
    """Greedy pairwise LD pruning (``plink2 --indep-pairwise``).

    Parameters
    ----------
    genotypes
        Genotype source.
    window, window_kb
        Window size in variants, or in kilobases (then ``window`` is ignored and ``step`` must be 1,
        as in plink2).
    step
        Variants the window moves each time.
    r2_threshold
        Pairs with r2 strictly above this are pruned.
    samples, variants
        Subsets to use (default all); pruning runs per chromosome over the selected variants.
    chunk
        Variants read per genotype read (memory ~ n_samples x (chunk + window) x 8 bytes).

    Returns
    -------
    ndarray of bool, shape (n_selected_variants,)
        ``True`` for kept variants (``prune.in``).

    Examples
    --------
    >>> kept = ld_prune(source, window=50, step=5, r2_threshold=0.2)   # doctest: +SKIP
    """
    if window_kb is None and (window is None or window < 2):
        raise InputError("--indep-pairwise window must be >= 2 variants (or end in 'kb')")
    if window_kb is not None and window_kb <= 0:
        raise InputError("--indep-pairwise window in kb must be > 0")
    if window_kb is not None and step != 1:
        raise InputError("--indep-pairwise with a kb window needs step 1 (as in plink2)")
    if step < 1:
        raise InputError("--indep-pairwise step must be >= 1")
    if not 0.0 <= r2_threshold < 1.0:
        raise InputError("--indep-pairwise r2 threshold must be in [0, 1)")
    sample_index = as_index(samples, genotypes.n_samples, "sample")
    variant_index = as_index(variants, genotypes.n_variants, "variant")
    table = genotypes.variant_table.iloc[variant_index]
    chrom = table["chrom"].astype(str).to_numpy()
    pos = table["pos"].to_numpy().astype(np.int64)
    kept = np.zeros(len(variant_index), dtype=bool)
    boundaries = np.flatnonzero(np.r_[True, chrom[1:] != chrom[:-1], True])
    spans = list(zip(boundaries[:-1], boundaries[1:], strict=True))
    for lo, hi in track(spans, "LD pruning (chromosomes)"):
        cache = _StandardisedWindow(genotypes, sample_index, variant_index[lo:hi], chunk)
        kept[lo:hi] = _prune_chromosome(cache, pos[lo:hi], window, window_kb, step, r2_threshold)
    return kept


def parse_indep_pairwise(values: list[str]) -> dict[str, Any]:
    """Parse plink-style ``W S R2`` (``W`` may end in ``kb``) into :func:`ld_prune` keywords."""
    if len(values) != 3:
        raise InputError("--indep-pairwise takes 3 values: window (variants, or e.g. 500kb), step, r2")
    window_text, step_text, r2_text = values
    try:
        if window_text.lower().endswith("kb"):
            settings: dict[str, Any] = {"window": None, "window_kb": float(window_text[:-2])}
        else:
            settings = {"window": int(window_text), "window_kb": None}
        settings["step"] = int(step_text)
        settings["r2_threshold"] = float(r2_text)
    except ValueError as exc:
        raise InputError(f"--indep-pairwise {' '.join(values)}: expected e.g. '50 5 0.2' or '500kb 1 0.2'"
                         ) from exc
    return settings
