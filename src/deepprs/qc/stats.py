"""Per-variant and per-sample QC statistics: allele frequency, missingness, HWE exact test.

The Hardy-Weinberg P-value is the exact test of Wigginton, Cutler & Abecasis (2005, AJHG 76:887):
given ``n`` genotyped people and ``n_rare`` copies of the rarer allele, the number of
heterozygotes ``h`` has the distribution

    P(h) = n! n_rare! n_common! 2^h / ((2n)! h! ((n_rare - h)/2)! ((n_common - h)/2)!),

and the P-value is the sum of ``P(h')`` over every ``h'`` with ``P(h') <= P(h_obs)`` (plink2
``--hardy``/``--hwe`` without ``midp``). We evaluate it in log space with ``gammaln`` for all
variants at once (one row per distinct genotype-count triple).

On chrX, :func:`hwe_x_exact_pvalues` is plink2's test including the males' hemizygous calls
(Graffelman & Weir 2016, Heredity 116:558): the same "no more likely than observed" sum over the
tables of female genotype counts and male allele counts with the given allele totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import gammaln

from deepprs.io.genotypes import GenotypeSource, as_index, sample_sex
from deepprs.utils.runlog import track

# relative tolerance for "as or less likely than observed" (floating-point ties, as plink2 does)
_TIE_TOLERANCE = 1e-7
_LN2 = np.log(2.0)


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
        Work-array cells (variants x het classes) in flight: the chunks run on :func:`exact_test_threads`
        threads, each with ``max_cells / threads`` cells, so memory does not grow with the cores.

    Returns
    -------
    ndarray of float64, shape (m,)
        P-values; for variants with no calls or no copies of one allele (a single possible
        table) 1.0, or 0.5 with ``midp`` (as plink2 prints: half the observed table's probability).
    """
    hom1 = np.asarray(n_hom_a1, dtype=np.int64)
    het = np.asarray(n_het, dtype=np.int64)
    hom2 = np.asarray(n_hom_other, dtype=np.int64)
    counts = np.stack([np.minimum(hom1, hom2), het, np.maximum(hom1, hom2)], axis=1)
    unique, inverse = np.unique(counts, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    p_unique = np.ones(len(unique))
    n_rare_all = 2 * unique[:, 0] + unique[:, 1]
    # most variants need only the het classes near the mode (see _hwe_window); the rest, and any
    # variant whose window check fails, are enumerated in full
    windowed, full_rows = _hwe_windowed(unique, midp, max_cells)
    p_unique[:] = windowed
    order = full_rows[np.argsort(n_rare_all[full_rows], kind="stable")]
    workers = exact_test_threads()
    chunks = _sorted_chunks(order, n_rare_all // 2 + 1, max(1, max_cells // workers))
    pvalues_by_chunk = _thread_map(lambda rows: _hwe_chunk(unique[rows], midp), chunks, workers)
    for rows, pvalues in zip(chunks, pvalues_by_chunk, strict=True):
        p_unique[rows] = pvalues
    if midp:
        p_unique[(n_rare_all == 0) | (unique.sum(axis=1) == 0)] = 0.5
    return p_unique[inverse]


def _sorted_chunks(rows: np.ndarray, width: np.ndarray, max_cells: int) -> list[np.ndarray]:
    """Split ``rows`` (sorted by ``width``, ascending) into consecutive chunks of at most ``max_cells``
    padded cells (rows x the last row's width); a row wider than that is a chunk of its own."""
    if len(rows) == 0:
        return []
    widths = np.maximum(width[rows].astype(np.int64), 1)
    chunks, start = [], 0
    while start < len(rows):
        # the largest stop with (stop - start) * widths[stop - 1] <= max_cells (non-decreasing widths,
        # so no more than max_cells // widths[start] rows: the search stays linear in the rows)
        span = min(len(rows) - start, max_cells // int(widths[start]) + 1)
        count = np.arange(1, span + 1) * widths[start : start + span]
        stop = start + max(1, int(np.searchsorted(count, max_cells, side="right")))
        chunks.append(rows[start:stop])
        start = stop
    return chunks


MAX_TEST_THREADS = 8  # the exact tests' chunks share one cell budget: more threads, smaller chunks


def exact_test_threads() -> int:
    """Threads for the exact tests' chunks: ``--threads`` (``OMP_NUM_THREADS``, its first field), else
    the cores this process may use, at most :data:`MAX_TEST_THREADS`."""
    import os

    try:
        limit = int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0] or 0)
    except ValueError:
        limit = 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_TEST_THREADS, cores, limit if limit > 0 else cores))


def _thread_map(function, items: list, workers: int) -> list:
    """``[function(item) for item in items]`` on ``workers`` threads (numpy's kernels release the GIL,
    so the chunks run side by side), each under the caller's ``np.errstate``."""
    if workers <= 1 or len(items) < 2:
        return [function(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    errors = np.geterr()

    def call(item):
        with np.errstate(**errors):
            return function(item)

    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(call, items))


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

    def window(chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        chunk_p, first, last = _hwe_window_pvalues(n_rare[chunk], n_common[chunk], low[chunk], cells[chunk],
                                                   log_obs[chunk], midp)
        level = np.minimum(log_obs[chunk], log_mode[chunk]) - _HWE_WINDOW_LOG
        # the window must reach below the level at both ends (unless it stops at a bound)
        bad = ((low[chunk] > n_rare[chunk] % 2) & (first >= level)) | ((high[chunk] < n_rare[chunk]) & (last >= level))
        return chunk_p, chunk[bad]

    workers = exact_test_threads()
    chunks = _sorted_chunks(rows, cells, max(1, max_cells // workers))
    failed: list[np.ndarray] = []
    for chunk, (chunk_p, chunk_failed) in zip(chunks, _thread_map(window, chunks, workers), strict=True):
        pvalues[chunk] = chunk_p
        failed.append(chunk_failed)
    full_rows = np.concatenate([np.flatnonzero(full), *failed]) if failed else np.flatnonzero(full)
    return pvalues, full_rows.astype(np.int64)


def _hwe_window_pvalues(n_rare: np.ndarray, n_common: np.ndarray, low: np.ndarray, cells: np.ndarray,
                        log_obs: np.ndarray, midp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact-test P-values over the het classes ``low, low + 2, ..., low + 2 (cells - 1)`` of each row
    (all of them, or a window that holds every class that matters).

    log P along the classes comes from the recurrence P(h + 2) / P(h) = 4 r c / ((h + 1)(h + 2)), with
    r, c the rare / common homozygote counts at h: one log per class instead of three log-gammas.

    Returns
    -------
    pvalues, log P of the first class, log P of the last class : ndarray, shape (rows,)
    """
    width = int(cells.max())
    columns = np.arange(width, dtype=np.float64)
    # (in place where possible: these are rows x width work arrays, up to a few million cells)
    h = np.multiply(columns, 2.0)[None, :] + low[:, None]                # exact integers in float64
    step = np.subtract(n_rare[:, None], h)
    step *= n_common[:, None] - h                                      # 4 r c
    h += 1.0
    denominator = np.add(h, 1.0)
    denominator *= h                                                   # (h + 1)(h + 2)
    step /= denominator
    with np.errstate(divide="ignore", invalid="ignore"):  # r = 0 at h = n_rare; beyond the row: masked
        np.log(step, out=step)
    log_p = h  # (reused)
    log_p[:, 0] = _hwe_log_p(low, n_rare, n_common)
    np.cumsum(step[:, :-1], axis=1, out=log_p[:, 1:])
    log_p[:, 1:] += log_p[:, :1]
    beyond = np.greater_equal(columns[None, :], cells[:, None], out=np.empty(log_p.shape, dtype=bool))
    np.copyto(log_p, -np.inf, where=beyond)
    first, last = log_p[:, 0].copy(), log_p[np.arange(len(low)), cells - 1]
    log_max = log_p.max(axis=1)
    log_p -= log_max[:, None]
    obs = (log_obs - log_max)[:, None]
    prob = np.exp(log_p, out=step)
    in_tail = np.less_equal(log_p, obs + _TIE_TOLERANCE, out=beyond)
    tail = prob.sum(axis=1, where=in_tail)
    if midp:
        tail -= 0.5 * prob.sum(axis=1, where=np.abs(log_p - obs) <= _TIE_TOLERANCE)
    return np.minimum(tail / prob.sum(axis=1), 1.0), first, last


def _hwe_chunk(counts: np.ndarray, midp: bool) -> np.ndarray:
    """Exact-test P-values of ``counts`` (rows of rare homozygotes, hets, common homozygotes) over every
    het class."""
    hom_rare, het, hom_common = (counts[:, i].astype(np.int64) for i in range(3))
    n = hom_rare + het + hom_common
    n_rare = 2 * hom_rare + het
    n_common = 2 * hom_common + het
    low = n_rare % 2
    pvalue, _, _ = _hwe_window_pvalues(n_rare, n_common, low, (n_rare - low) // 2 + 1,
                                       _hwe_log_p(het, n_rare, n_common), midp)
    return np.where((n == 0) | (n_rare == 0), 1.0, pvalue)


# ---------------------------------------------------------------------------------------------------------------
# chrX: the exact test of Graffelman & Weir (2016), with males (plink2 --hardy's .hardy.x and --hwe on chrX)

_X_CENTRAL_LOG = 6.0    # observed within exp(-6) of the mode: P = 1 - (mass more likely than observed)
_X_DEPTH_LOG = 40.0     # else tables less likely than exp(-40) x the observed one are left out of the tail sum
_X_CHUNK_CELLS = 1 << 17
# the P-value sums at most (rows x (n_f + 1)) tables, each no more likely than observed: below
# exp(-746) < 2^-1075 it rounds to 0 in float64 (plink2 prints 0 there too), with no table to build
_X_UNDERFLOW_LOG = -746.0
_X_BATCH_ROWS = 1 << 19     # rows (male A1 counts) per batch of variants: bounds the per-row arrays
_X_TABLE_CELLS = 1 << 22    # tabulated cells per call of the table sums (~100 MB with prefix/suffix sums)


def hwe_x_exact_pvalues(female_hom_a1: np.ndarray, female_het: np.ndarray, female_hom_other: np.ndarray,
                        male_a1: np.ndarray, male_other: np.ndarray, *, midp: bool = False) -> np.ndarray:
    """Vectorised chrX Hardy-Weinberg exact test with males (Graffelman & Weir 2016, Heredity 116:558).

    Given the numbers of females ``n_f`` and males ``n_m`` and the allele totals ``n_A`` (A1 copies:
    two per female, one per male) and ``n_B``, a table of female genotype counts ``(f_AA, f_AB, f_BB)``
    and male allele counts ``(m_A, m_B)`` has probability

        P = n_f! n_m! n_A! n_B! 2^f_AB / (f_AA! f_AB! f_BB! m_A! m_B! (2 n_f + n_m)!)

    (a hypergeometric split of the alleles between the sexes times the females' autosomal HWE
    distribution); the P-value sums ``P`` over every table with ``P <= P_obs`` (plink2 ``--hardy``'s
    ``.hardy.x`` and ``--hwe`` on chrX, which call this test ``HweXchrP``). Without males it is
    :func:`hwe_exact_pvalues` on the females.

    Parameters
    ----------
    female_hom_a1, female_het, female_hom_other : ndarray of int, shape (m,)
        Female genotype counts per variant (non-missing calls).
    male_a1, male_other : ndarray of int, shape (m,)
        Male hemizygous call counts (plink2 counts a heterozygous male call as missing). (Any
        broadcastable shapes work; the result has the broadcast shape.)
    midp
        Mid-p (plink2 ``midp``): tables as likely as the observed one count half. A variant with a
        single possible table (monomorphic, or no female call) then gets 0.5, as in plink2.

    Returns
    -------
    ndarray of float64, shape (m,)
        P-values (1.0, or 0.5 with ``midp``, where only one table is possible).

    Notes
    -----
    Tables form rows of male A1 count ``m_A`` (hypergeometric weight) by female het count (the Levene
    distribution given the females' A1 count, as in :func:`hwe_exact_pvalues`). Each distinct Levene
    distribution (female count, female A1 count) is tabulated once, relative to its mode, with prefix
    and suffix sums, and shared by every row and variant that needs it; a row then costs two searches
    for where its cells cross ``P_obs``. When the observed table lies near the mode
    (``P_obs >= exp(-6) P_mode``) the P-value is one minus the mass of the tables more likely than
    observed (absolute error ~1e-11); otherwise rows no more likely than observed count whole and the
    others' tails are summed, each from where its cells cross ``P_obs`` (found by bisection on
    closed-form log probabilities) outward down to ``exp(-40) P_obs``, without tabulating the rows.
    P-values agree with a plain enumeration of every table to about 1e-8 relative. Near HWE the work
    per variant grows with the square root of the sample size (rows within reach of the mode), not
    with the number of tables; far from it, with rows x (log n + the cells of each tail's shell)
    (tens of ms per variant at 200,000 of each sex), in bounded memory; a P-value that underflows
    float64 is 0 at once.
    """
    columns = np.broadcast_arrays(*(np.asarray(c, dtype=np.int64) for c in
                                    (female_hom_a1, female_het, female_hom_other, male_a1, male_other)))
    counts = np.stack([column.ravel() for column in columns], axis=1)
    if (counts < 0).any():
        raise ValueError("genotype counts must be non-negative")
    # the P-value does not depend on which allele is A1: count the rarer one
    swap = 2 * counts[:, 0] + counts[:, 1] + counts[:, 3] > 2 * counts[:, 2] + counts[:, 1] + counts[:, 4]
    counts[swap] = counts[swap][:, [2, 1, 0, 4, 3]]
    unique, inverse = np.unique(counts, axis=0, return_inverse=True)
    p = np.empty(len(unique))
    n_f = unique[:, :3].sum(axis=1)
    n_m = unique[:, 3] + unique[:, 4]
    n_a = 2 * unique[:, 0] + unique[:, 1] + unique[:, 3]
    single = (n_a == 0) | (n_f == 0)                           # one possible table
    p[single] = 0.5 if midp else 1.0
    females_only = (n_m == 0) & ~single
    p[females_only] = hwe_exact_pvalues(unique[females_only, 0], unique[females_only, 1], unique[females_only, 2],
                                        midp=midp)
    rest = ~single & ~females_only
    if rest.any():
        p[rest] = _XHweTables(unique[rest], midp).pvalues()
    return p[inverse.ravel()].reshape(columns[0].shape)


def _chunk_rows(width: np.ndarray, max_cells: int = _X_CHUNK_CELLS):
    """Groups of rows (sorted by width) of at most ``max_cells`` padded cells, with their width."""
    order = np.argsort(width, kind="stable")
    w_sorted = width[order]
    n, i = len(order), 0
    while i < n:
        j = min(n, i + max(1, max_cells // max(int(w_sorted[i]), 1)))
        while j > i + 1 and (j - i) * int(w_sorted[j - 1]) > max_cells:
            j = i + max(1, max_cells // int(w_sorted[j - 1]))
        yield order[i:j], int(w_sorted[j - 1])
        i = j


def _bisect_last(pred, lo: np.ndarray, hi: np.ndarray, rising: bool) -> np.ndarray:
    """Per entry, over the integers ``lo..hi`` where ``pred(entries, k)`` holds on a contiguous end:
    the first k for which it holds (``rising``; ``hi + 1`` if none) or the last (else; ``lo - 1`` if none)."""
    lo, hi = (lo.copy(), hi + 1) if rising else (lo - 1, hi.copy())
    while True:
        act = np.flatnonzero(lo < hi)
        if not len(act):
            return lo if rising else hi
        mid = (lo[act] + hi[act] + (0 if rising else 1)) // 2
        ok = pred(act, mid)
        if rising:
            hi[act] = np.where(ok, mid, hi[act])
            lo[act] = np.where(ok, lo[act], mid + 1)
        else:
            lo[act] = np.where(ok, mid, lo[act])
            hi[act] = np.where(ok, hi[act], mid - 1)


def _crossing(values: np.ndarray, offset: np.ndarray, lo: np.ndarray, hi: np.ndarray, threshold: np.ndarray,
              strict: bool, rising: bool, guess: np.ndarray, steps: int = 4) -> np.ndarray:
    """Per entry, in ``values[offset + lo .. offset + hi]`` (non-decreasing if ``rising``, else
    non-increasing): the first (rising) / last index whose value is > ``threshold`` (>= unless
    ``strict``); ``hi + 1`` / ``lo - 1`` if none. A few unit steps from ``guess``, then bisection."""
    def passes(x, t):
        return x > t if strict else x >= t

    g = np.clip(guess, lo, hi + 1) if rising else np.clip(guess, lo - 1, hi)
    act = None                                                         # all entries, first
    for _ in range(steps):
        if act is None:
            gi, li, hii, off, t = g, lo, hi, offset, threshold
        else:
            gi, li, hii, off, t = g[act], lo[act], hi[act], offset[act], threshold[act]
        if rising:
            here_ok = (gi > hii) | passes(values[off + np.minimum(gi, hii)], t)
            before_ok = (gi <= li) | ~passes(values[off + np.maximum(gi - 1, li)], t)
            move = np.where(here_ok, np.where(before_ok, 0, -1), 1)
        else:
            here_ok = (gi < li) | passes(values[off + np.maximum(gi, li)], t)
            after_ok = (gi >= hii) | ~passes(values[off + np.minimum(gi + 1, hii)], t)
            move = np.where(here_ok, np.where(after_ok, 0, 1), -1)
        if act is None:
            g += move
            act = np.flatnonzero(move)
        else:
            g[act] = gi + move
            act = act[move != 0]
        if not len(act):
            return g
    off, t = offset[act], threshold[act]
    g[act] = _bisect_last(lambda i, k: passes(values[off[i] + k], t[i]), lo[act], hi[act], rising)
    return g


def _levene_mode(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Most likely het count among ``(a + b) / 2`` people with ``a`` and ``b`` copies of the two alleles
    (exact): the smallest h of a's parity with P(h + 2) <= P(h), i.e. (a - h)(b - h) <= (h + 1)(h + 2),
    i.e. h >= (ab - 2) / (a + b + 3)."""
    h = np.maximum(-((2 - a * b) // (a + b + 3)), 0)
    h += (h - a) & 1
    return np.minimum(h, np.minimum(a, b), out=h)


@dataclass
class _LeveneRows:
    """Distinct female het-count distributions (female count ``n_f``, female A1 copies ``a``): the
    allele counts, the het-count bounds, the mode and its log probability."""

    n_f: np.ndarray
    a: np.ndarray
    b: np.ndarray
    low: np.ndarray
    high: np.ndarray
    mode: np.ndarray
    log_max: np.ndarray


@dataclass
class _Tables:
    """Tabulated Levene distributions (values relative to their modes, flat) and, per row using them:
    its table's position, mode and last index, prefix sums and spreads for crossing guesses."""

    inv: np.ndarray
    val: np.ndarray
    off: np.ndarray
    c_off: np.ndarray
    j_mode: np.ndarray
    j_last: np.ndarray
    cum: np.ndarray
    spread_left: np.ndarray
    spread_right: np.ndarray


class _XHweTables:
    """The chrX exact test for variants with females, males and both alleles (see
    :func:`hwe_x_exact_pvalues`). Cells ``(m, h)``: male A1 count ``m`` (a row) and female het count
    ``h`` (of the parity of the females' A1 count ``a = n_A - m``); log probabilities are normalised.
    A row's cells are its hypergeometric weight times the Levene distribution of ``h`` given
    ``(n_f, a)``, which rows of other variants with the same female count share."""

    def __init__(self, counts: np.ndarray, midp: bool):
        self.midp = midp
        f_aa, f_ab, f_bb, m_a, m_b = (counts[:, i] for i in range(5))
        self.n_f = f_aa + f_ab + f_bb
        self.n_m = m_a + m_b
        self.n_a = 2 * f_aa + f_ab + m_a
        self.n_b = 2 * f_bb + f_ab + m_b
        total = self.n_a + self.n_b
        self.lf = lf = gammaln(np.arange(total.max() + 1) + 1.0)           # log k!
        self.cell_const = lf[self.n_f] + lf[self.n_m] + lf[self.n_a] + lf[self.n_b] - lf[total]
        self.row_const = lf[self.n_a] + lf[self.n_b] + lf[self.n_m] + lf[2 * self.n_f] - lf[total]
        self.log_obs = self.log_cell(np.arange(len(counts)), m_a, f_ab)
        self.m_min = np.maximum(0, self.n_a - 2 * self.n_f)
        self.m_max = np.minimum(self.n_m, self.n_a)
        # mode of the hypergeometric male A1 count
        self.m_mode = np.clip((self.n_m + 1) * (self.n_a + 1) // (total + 2), self.m_min, self.m_max)

    def log_row(self, v: np.ndarray, m: np.ndarray) -> np.ndarray:
        """log P(m_A = m) for variants ``v``: C(n_A, m) C(n_B, n_m - m) / C(N, n_m)."""
        lf = self.lf
        return (self.row_const[v] - lf[m] - lf[self.n_a[v] - m] - lf[self.n_m[v] - m]
                - lf[self.n_b[v] - self.n_m[v] + m])

    def log_cell(self, v: np.ndarray, m: np.ndarray, h: np.ndarray) -> np.ndarray:
        """log P of the table with ``m`` male A1 calls and ``h`` female hets (the formula above)."""
        lf = self.lf
        x = (self.n_a[v] - m - h) // 2                                   # female A1 homozygotes
        return self.cell_const[v] - lf[m] - lf[self.n_m[v] - m] + h * _LN2 - lf[h] - lf[x] - lf[self.n_f[v] - x - h]

    def log_levene(self, n_f: np.ndarray, a: np.ndarray, h: np.ndarray) -> np.ndarray:
        """log P(h hets | n_f people, a A1 copies): the autosomal HWE distribution (module docstring)."""
        lf = self.lf
        x = (a - h) // 2
        return lf[n_f] + lf[a] + lf[2 * n_f - a] - lf[2 * n_f] + h * _LN2 - lf[h] - lf[x] - lf[n_f - x - h]

    def levene_rows(self, n_f: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, _LeveneRows]:
        """The distinct (n_f, a) among rows, and the index of each row's (direct addressing when the
        pairs span a small box, as for a batch of variants of similar counts)."""
        f0, a0 = int(n_f.min()), int(a.min())
        span = int(a.max()) - a0 + 1
        code = (n_f - f0) * span + (a - a0)
        size = (int(n_f.max()) - f0 + 1) * span
        if size <= 4 * len(code) + 65536:
            seen = np.zeros(size, dtype=bool)
            seen[code] = True
            pairs = np.flatnonzero(seen)
            index = (np.cumsum(seen) - 1)[code]
        else:
            pairs, index = np.unique(code, return_inverse=True)
            index = index.ravel()
        k_nf, k_a = f0 + pairs // span, a0 + pairs % span
        b = 2 * k_nf - k_a
        mode = _levene_mode(k_a, b)
        return index, _LeveneRows(k_nf, k_a, b, k_a % 2, np.minimum(k_a, b), mode,
                                  self.log_levene(k_nf, k_a, mode))

    def pvalues(self, batch: int = 1024) -> np.ndarray:
        out = np.empty(len(self.n_f))
        # observed tables so unlikely that the P-value underflows: 0 without enumerating anything (far
        # from HWE at biobank sizes the tails would otherwise be tabulated over millions of cells)
        n_tables = (self.m_max - self.m_min + 1.0) * (self.n_f + 1.0)
        underflow = self.log_obs + np.log(n_tables) < _X_UNDERFLOW_LOG
        out[underflow] = 0.0
        # batches of similar female and A1 counts share most of their Levene distributions
        order = np.lexsort((self.n_a, self.n_f))
        order = order[~underflow[order]]
        for start in range(0, len(order), batch):
            part = order[start : start + batch]
            out[part] = self._pvalues(part)
        return out

    def _pvalues(self, batch: np.ndarray) -> np.ndarray:
        k = len(batch)
        tol = _TIE_TOLERANCE
        obs = self.log_obs[batch]
        mode = self.m_mode[batch]
        a_mode = self.n_a[batch] - mode
        central = (self.log_cell(batch, mode, _levene_mode(a_mode, 2 * self.n_f[batch] - a_mode)) - obs
                   <= _X_CENTRAL_LOG)
        # rows that can hold a cell above the level: P(m) >= level (a row's cells sum to P(m)); an
        # interval around the mode, as P(m) is log-concave
        level = np.where(central, obs - tol, obs - _X_DEPTH_LOG)
        local = np.flatnonzero(self.log_row(batch, mode) >= level)
        glob = batch[local]

        def above(i, m):
            return self.log_row(glob[i], m) >= level[local[i]]

        r_lo = _bisect_last(above, self.m_min[glob], mode[local], rising=True)
        r_hi = _bisect_last(above, mode[local], self.m_max[glob], rising=False)
        n_rows = r_hi - r_lo + 1
        if k > 1 and n_rows.sum() > _X_BATCH_ROWS:  # far from HWE at large counts: thousands of rows each
            half = k // 2
            return np.concatenate([self._pvalues(batch[:half]), self._pvalues(batch[half:])])
        rl = np.repeat(local, n_rows)                                      # (batch-local) variant of each row
        rm = np.arange(n_rows.sum()) + np.repeat(r_lo - np.cumsum(n_rows) + n_rows, n_rows)
        rv = batch[rl]
        index, lev = self.levene_rows(self.n_f[rv], self.n_a[rv] - rm)
        row_log = self.log_row(rv, rm)
        top = row_log + lev.log_max[index]                                 # the row's most likely cell
        row_obs, row_central = obs[rl], central[rl]
        p = np.where(central, 1.0, 0.0)
        reach = top >= row_obs - tol
        # near the mode: 1 - (cells more likely than observed) - (ties, halved, with midp)
        use = np.flatnonzero(reach & row_central)
        s_more, s_tie = self._by_table_chunks(self._central, lev, index[use], top[use], row_obs[use],
                                              top[use] - (row_obs[use] - tol))
        p -= np.bincount(rl[use], s_more + 0.5 * self.midp * s_tie, minlength=k)
        # far from it: rows no more likely than observed count whole; the others, their two tails
        whole = ~row_central & (top <= row_obs + tol)
        p += np.bincount(rl[whole], np.exp(row_log[whole]), minlength=k)
        split = np.flatnonzero(~row_central & (top > row_obs + tol))
        for side in (-1, 1):
            with np.errstate(divide="ignore"):                          # P_obs may underflow alone, not the sum
                tails = np.exp(np.log(self._shell_sums(rv[split], rm[split], side)) + row_obs[split])
            p += np.bincount(rl[split], tails, minlength=k)
        tie_rows = np.flatnonzero(whole & reach)
        if self.midp and len(tie_rows):
            _, s_tie = self._by_table_chunks(self._central, lev, index[tie_rows], top[tie_rows], row_obs[tie_rows],
                                             top[tie_rows] - (row_obs[tie_rows] - tol))
            p -= np.bincount(rl[tie_rows], 0.5 * s_tie, minlength=k)
        return np.clip(p, 0.0, 1.0)

    def _by_table_chunks(self, fn, lev: _LeveneRows, index: np.ndarray, top: np.ndarray, obs: np.ndarray,
                         depth: np.ndarray) -> tuple[np.ndarray, ...]:
        """``fn(lev, index, top, obs)`` (per-row arrays) over groups of rows whose Levene distributions,
        tabulated down to ``depth``, take about ``_X_TABLE_CELLS`` cells together (rows sharing one stay
        in one group): far from HWE at large counts one variant has thousands of rows of thousands of
        cells, and a batch of such variants at once would take tens of GB."""
        if len(index) == 0:
            return fn(lev, index, top, obs)
        used, inv = np.unique(index, return_inverse=True)
        inv = inv.ravel()
        need = np.zeros(len(used))
        np.maximum.at(need, inv, depth)
        n_f, a, mode, log_max, low, high = (x[used] for x in (lev.n_f, lev.a, lev.mode, lev.log_max, lev.low,
                                                               lev.high))
        cells = (self._reach(n_f, a, mode, log_max, need, low, high, -1)
                 + self._reach(n_f, a, mode, log_max, need, low, high, 1) + 1)
        group = (np.cumsum(cells) - cells) // _X_TABLE_CELLS                  # per distribution, ascending
        if group[-1] == 0:
            return fn(lev, index, top, obs)
        row_group = group[inv]
        order = np.argsort(row_group, kind="stable")
        parts = np.split(order, np.flatnonzero(np.diff(row_group[order])) + 1)
        results = [fn(lev, index[part], top[part], obs[part]) for part in parts]
        out = []
        for j in range(len(results[0])):
            values = np.empty(len(index))
            for part, result in zip(parts, results, strict=True):
                values[part] = result[j]
            out.append(values)
        return tuple(out)

    def _reach(self, n_f, a, mode, log_max, depth, low, high, side, slack=1.03, extra=1.0) -> np.ndarray:
        """Estimated number of steps (of 2 hets) from a Levene mode until log P has fallen ``depth``
        below it, on one side: a parabola through the mode whose curvature is refined by one probe."""
        x = (a - mode) / 2
        curvature = 4.0 / (mode + 1.0) + 1.0 / (x + 1.0) + 1.0 / (n_f - x - mode + 1.0)
        first = np.maximum(np.rint(np.sqrt(2.0 * depth / curvature)), 1).astype(np.int64)
        probe = np.clip(mode + 2 * side * first, low, high)
        steps = np.abs(probe - mode) // 2
        drop = log_max - self.log_levene(n_f, a, probe)
        curvature = np.where(steps > 0, 2.0 * np.maximum(drop, 1e-300) / np.maximum(steps, 1) ** 2, curvature)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            reach = np.ceil(slack * np.sqrt(2.0 * depth / curvature) + extra)
        return np.minimum(np.nan_to_num(reach, nan=0.0, posinf=1e18), (high - low) // 2 + 1).astype(np.int64)

    def _tabulate(self, lev: _LeveneRows, index: np.ndarray, depth: np.ndarray) -> _Tables:
        """The Levene distributions ``index`` refers to (one per row), each tabulated once relative to
        its mode down to the largest ``depth`` (log) below the mode that any of its rows needs, or
        whole, with exclusive prefix sums."""
        seen = np.zeros(len(lev.a), dtype=bool)
        seen[index] = True
        used = np.flatnonzero(seen)
        inv = (np.cumsum(seen) - 1)[index]
        n_f, a, mode, log_max, low, high = (x[used] for x in (lev.n_f, lev.a, lev.mode, lev.log_max, lev.low,
                                                               lev.high))
        need = np.zeros(len(used))
        np.maximum.at(need, inv, depth)
        start = np.maximum(mode - 2 * self._reach(n_f, a, mode, log_max, need, low, high, -1), low)
        stop = np.minimum(mode + 2 * self._reach(n_f, a, mode, log_max, need, low, high, 1), high)
        # a table must reach below its level at both ends (or the bounds): a log-concave distribution
        # then has nothing above it outside; otherwise tabulate it whole
        short = (((start > low) & (self.log_levene(n_f, a, start) - log_max >= -need))
                 | ((stop < high) & (self.log_levene(n_f, a, stop) - log_max >= -need)))
        start[short], stop[short] = low[short], high[short]
        width = (stop - start) // 2 + 1
        offset = np.zeros(len(used) + 1, dtype=np.int64)
        np.cumsum(width, out=offset[1:])
        slot = offset[:-1] + np.arange(len(used))
        # per table (padded chunks of similar width):
        # val = P / P(mode); cum[slot + j]: the sum of its cells before cell j
        val = np.empty(offset[-1])
        cum = np.empty(offset[-1] + len(used))
        for rows, w in _chunk_rows(width):
            j = np.arange(w + 1)[None, :]
            cells = j[:, :w] < width[rows][:, None]
            h = np.where(cells, start[rows][:, None] + 2 * j[:, :w], mode[rows][:, None])
            values = np.where(cells, np.exp(self.log_levene(n_f[rows][:, None], a[rows][:, None], h)
                                            - log_max[rows][:, None]), 0.0)
            val[(offset[rows][:, None] + j[:, :w])[cells]] = values[cells]
            slots = j <= width[rows][:, None]
            where = (slot[rows][:, None] + j)[slots]
            before = np.zeros((len(rows), w + 1))
            np.cumsum(values, axis=1, out=before[:, 1:])
            cum[where] = before[slots]
        # guesses for the crossings: per side, the spread of a parabola (in log P) through mode and end
        k_mode = (mode - start) // 2
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = (np.sqrt(-np.log(np.maximum(val[offset[:-1]], 1e-300))) / k_mode,
                      np.sqrt(-np.log(np.maximum(val[offset[1:] - 1], 1e-300))) / (width - 1 - k_mode))
        return _Tables(inv, val, offset[inv], offset[inv] + inv, k_mode[inv], width[inv] - 1, cum,
                       spread[0][inv], spread[1][inv])

    def _crossings(self, tables: _Tables, gap: np.ndarray, strict: bool,
                   guess: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the first and last table index whose value (P / P(mode)) is above exp(-gap)
        (at least, unless ``strict``); first > last when none is. Without a ``guess``, a parabola through
        the mode and the table's end guesses."""
        threshold = np.exp(-gap)
        if guess is None:
            j_mode, j_last = tables.j_mode, tables.j_last
            guess = []
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                span = np.sqrt(np.maximum(gap, 0.0))
                for side, spread, end in ((-1, tables.spread_left, 0), (1, tables.spread_right, j_last)):
                    step = np.nan_to_num(span / spread, nan=0.0, posinf=0.0)
                    g = np.clip(j_mode + side * np.minimum(step, 1e9).astype(np.int64), np.minimum(end, j_mode),
                                np.maximum(end, j_mode))
                    guess.append(g)
        zero = np.zeros_like(tables.j_mode)
        return (_crossing(tables.val, tables.off, zero, tables.j_mode, threshold, strict, True, guess[0]),
                _crossing(tables.val, tables.off, tables.j_mode, tables.j_last, threshold, strict, False, guess[1]))

    def _central(self, lev: _LeveneRows, index: np.ndarray, top: np.ndarray,
                 obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row (its Levene distribution ``index``, its most likely cell ``top`` and the observed
        table's ``obs``, in log): the mass of its cells more likely than observed (log P > obs + tol)
        and of those within ``tol`` of it, from the tables' prefix sums."""
        n = len(index)
        s_more, s_tie = np.zeros(n), np.zeros(n)
        if n == 0:
            return s_more, s_tie
        tol = _TIE_TOLERANCE
        t = self._tabulate(lev, index, top - (obs - tol))
        cum, c_off, j_mode = t.cum, t.c_off, t.j_mode
        i_left, i_right = self._crossings(t, top - (obs + tol), True)
        inner = i_right >= i_left
        scale = np.exp(top)
        s_more = np.where(inner, cum[c_off + i_right + 1] - cum[c_off + np.minimum(i_left, i_right + 1)], 0.0) * scale
        if self.midp:
            t_left, t_right = self._crossings(t, top - (obs - tol), False, (i_left, i_right))
            left = cum[c_off + np.where(inner, i_left, j_mode + 1)] - cum[c_off + np.minimum(t_left, j_mode + 1)]
            right = cum[c_off + np.maximum(t_right, j_mode) + 1] - cum[c_off + np.where(inner, i_right, j_mode) + 1]
            s_tie = np.where(t_right >= t_left, left + right, 0.0) * scale
        return s_more, s_tie

    def _shell_sums(self, v: np.ndarray, m: np.ndarray, side: int, cells: int = _X_CHUNK_CELLS) -> np.ndarray:
        """Per row (variant ``v``, male A1 count ``m``) whose most likely cell is more likely than
        observed: the sum of P / P_obs over its cells no more likely than observed (ties halved with
        midp) on one side of its Levene mode (``side`` -1: fewer hets, 1: more), down to exp(-40)
        P_obs (or the row's end).

        The crossing (the innermost such cell; the distribution is unimodal) is found by bisection
        on closed-form log probabilities; from it the cells are summed outward as running products of
        the ratios P(h + 2) / P(h) = (a - h)(b - h) / ((h + 1)(h + 2)), as many steps as a parabola
        through the local slope and curvature (in log P) needs to fall to the depth, repeated for the
        rows that are not there yet: O(log n + cells summed) per row, in chunks of about ``cells``."""
        n = len(v)
        sums = np.zeros(n)
        if n == 0:
            return sums
        tol = _TIE_TOLERANCE
        obs = self.log_obs[v]
        a = self.n_a[v] - m
        b = 2 * self.n_f[v] - a
        low, high = a % 2, np.minimum(a, b)
        mode = _levene_mode(a, b)

        def more_likely(i, j):                                          # cell low + 2j of row i
            return self.log_cell(v[i], m[i], low[i] + 2 * j) - obs[i] > tol

        j_mode, j_high = (mode - low) // 2, (high - low) // 2
        if side < 0:     # the left cells rise to the mode: the innermost one not more likely is one before the first
            h = low + 2 * (_bisect_last(more_likely, np.zeros_like(j_mode), j_mode, rising=True) - 1)
        else:
            h = low + 2 * (_bisect_last(more_likely, j_mode + 1, j_high, rising=False) + 1)
        act = np.flatnonzero((h >= low) & (h <= high))
        h = h[act]
        rel = self.log_cell(v[act], m[act], h) - obs[act]                # log P / P_obs of the current cell
        a, b = a.astype(np.float64), b.astype(np.float64)

        def ratios(r, f):
            """P(f + 2 side) / P(f) for rows ``r`` at het counts ``f`` (float): outward, at most 1."""
            g = f if side > 0 else f - 2.0
            up, down = (a[r] - g) * (b[r] - g), (g + 1.0) * (g + 2.0)
            return up / down if side > 0 else down / up

        while len(act):
            left = (high[act] - h) // 2 + 1 if side > 0 else (h - low[act]) // 2 + 1     # cells left in the row
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                hf = h.astype(np.float64)
                d0 = -np.log(ratios(act, hf))                            # outward drop of log P per step
                c = np.maximum(-np.log(ratios(act, hf + 2.0 * side)) - d0, 0.0)
                depth = rel + (_X_DEPTH_LOG + 1.0)
                steps = np.nan_to_num(2.0 * depth / (d0 + np.sqrt(d0 * d0 + 2.0 * c * depth)), nan=np.inf)
            count = np.minimum(np.ceil(np.minimum(steps, 1e15)).astype(np.int64) + 1, left)
            count = np.maximum(count, 1)
            nxt_rel = np.full(len(act), -np.inf)
            for rows, w in _chunk_rows(count, cells):
                r, n_sum, rel0 = act[rows], count[rows], rel[rows]
                k = np.arange(w)[None, :]
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    prod = np.where(k < n_sum[:, None], ratios(r[:, None], hf[rows][:, None] + (2.0 * side) * k), 0.0)
                np.cumprod(prod, axis=1, out=prod)           # prod[:, j]: P(cell j + 1) / P(cell 0), 0 past the count
                nxt = prod[np.arange(len(rows)), n_sum - 1]                 # the first cell not summed
                total = 1.0 + (prod.sum(axis=1) - nxt)
                scale = np.exp(rel0)
                if self.midp:                                   # ties: the cells with log P / P_obs >= -tol
                    tie = np.exp(-tol - rel0)[:, None]
                    total -= 0.5 * ((rel0 >= -tol) + np.where((k < n_sum[:, None] - 1) & (prod >= tie), prod,
                                                              0.0).sum(axis=1))
                sums[r] += scale * total
                with np.errstate(divide="ignore"):
                    nxt_rel[rows] = np.where(n_sum < left[rows], rel0 + np.log(nxt), -np.inf)
            go = nxt_rel >= -_X_DEPTH_LOG
            act, h, rel = act[go], (h + 2 * side * count)[go], nxt_rel[go]
        return sums


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
    """Count genotypes per variant and missing calls per sample, streaming variant blocks.

    ``.bed`` input (also through ``--keep`` / ``--remove`` views) is counted on the packed bytes
    (bit-parallel popcounts; the samples' missing calls from the positions of the missing fields),
    other sources on int8 blocks.
    """
    from deepprs.io.bed import BedReader
    from deepprs.io.genotypes import SampleSubset

    sample_index = as_index(samples, source.n_samples, "sample")
    variant_index = as_index(variants, source.n_variants, "variant")
    file_source, file_samples = source, sample_index
    while isinstance(file_source, SampleSubset):  # --keep / --remove views: the file's own samples
        file_source, file_samples = file_source.source, file_source._sample_index[file_samples]
    if isinstance(file_source, BedReader) and len(np.unique(file_samples)) == len(file_samples):
        return _bed_genotype_counts(file_source, file_samples, variant_index, block_size, progress)
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


def _bed_genotype_counts(source: GenotypeSource, sample_index: np.ndarray, variant_index: np.ndarray,
                         block_size: int, progress: bool) -> GenotypeCounts:
    """:func:`genotype_counts` of a ``.bed`` (distinct samples) on the packed bytes."""
    from deepprs.assoc.bedscan import as_words, exclusion_mask, genotype_word_counts, mask_words, missing_word_calls
    from deepprs.assoc.blocks import read_packed

    n_columns = 4 * source.bytes_per_variant
    weight = np.zeros(n_columns)
    weight[sample_index] = 1.0
    or_words = mask_words(exclusion_mask(weight))  # the other samples (and padding) count nowhere
    m = len(variant_index)
    hom1, het, miss = (np.zeros(m, dtype=np.int64) for _ in range(3))
    column_missing = np.zeros(n_columns, dtype=np.int64)
    starts = range(0, m, block_size)
    rows = np.empty((min(block_size, m), source.bytes_per_variant), dtype=np.uint8)  # (reused)
    for start in track(starts, "genotype counts", total=len(starts), disable=None if progress else True):
        stop = min(start + block_size, m)
        words = as_words(read_packed(source, variant_index[start:stop], rows[: stop - start]))
        hom1[start:stop], het[start:stop], miss[start:stop] = genotype_word_counts(words, or_words)
        _, missing_column = missing_word_calls(words, np.int32)
        column_missing += np.bincount(missing_column, minlength=n_columns)[:n_columns]
    hom2 = len(sample_index) - hom1 - het - miss
    return GenotypeCounts(hom1, het, hom2, miss, column_missing[sample_index], len(sample_index))


def variant_stats(source: GenotypeSource, *, samples: Any = None, variants: Any = None,
                  block_size: int = 4096, hwe_midp: bool = False, hwe: bool = True,
                  counts: GenotypeCounts | None = None) -> pd.DataFrame:
    """Per-variant QC statistics (like ``plink2 --freq --missing --hardy``).

    ``HWE_P`` is the exact test over the called genotypes of ``samples``; on chrX it is plink2's test
    including males (:func:`hwe_x_exact_pvalues`, its ``.hardy.x``): females (sex 2) and the males'
    hemizygous calls (sex 1; a heterozygous male call counts as missing), samples of unknown sex left
    out (NaN everywhere with ``hwe=False``). The other columns count every sample as diploid.
    ``counts``: :func:`genotype_counts` of these samples and variants, when the caller has them
    (saves the pass over the genotypes).

    Returns
    -------
    DataFrame, one row per variant
        ``ID CHROM POS A1 AX A1_FREQ MISSING_RATE HWE_P HOM_A1_CT HET_CT HOM_AX_CT OBS_CT``
        (``A1`` = counted allele, ``AX`` = the other allele).
    """
    from deepprs.assoc.design import CHR_X, chromosome_class

    if counts is None:
        counts = genotype_counts(source, samples=samples, variants=variants, block_size=block_size)
    variant_index = as_index(variants, source.n_variants, "variant")
    table = source.variant_table.iloc[variant_index]
    on_x = chromosome_class(table["chrom"].to_numpy()) == CHR_X
    hwe_p = np.full(len(table), np.nan)
    if hwe:
        hwe_p[~on_x] = hwe_exact_pvalues(counts.n_hom_a1[~on_x], counts.n_het[~on_x], counts.n_hom_other[~on_x],
                                         midp=hwe_midp)
    if hwe and on_x.any():
        sample_index = as_index(samples, source.n_samples, "sample")
        sex = sample_sex(source, sample_index)
        females, males = (genotype_counts(source, samples=sample_index[sex == code], variants=variant_index[on_x],
                                          block_size=block_size, progress=False) for code in (2, 1))
        hwe_p[on_x] = hwe_x_exact_pvalues(females.n_hom_a1, females.n_het, females.n_hom_other, males.n_hom_a1,
                                          males.n_hom_other, midp=hwe_midp)
    return pd.DataFrame({
        "ID": table["id"].to_numpy(), "CHROM": table["chrom"].to_numpy(), "POS": table["pos"].to_numpy(),
        "A1": table["a1"].to_numpy(), "AX": table["ref"].to_numpy(),
        "A1_FREQ": counts.a1_freq, "MISSING_RATE": counts.missing_rate,
        "HWE_P": hwe_p,
        "HOM_A1_CT": counts.n_hom_a1, "HET_CT": counts.n_het, "HOM_AX_CT": counts.n_hom_other,
        "OBS_CT": counts.n_called,
    })
