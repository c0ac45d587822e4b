"""Variant pre-screening for PRS models: marginal association, LD clumping, top-k selection.

These functions run *inside* a training fold (on training samples only), so that selecting
variants never sees the test samples.  Genotypes are either
:class:`~deepprs.io.packed.PackedGenotypes` (samples × variants, 2-bit) or a dense
samples × variants dosage array (NaN = missing); missing dosages are imputed at the
training mean.

* :func:`marginal_association` — one OLS t-test per variant after residualising the
  phenotype and the variant on the covariates (Frisch–Waugh–Lovell), all variants at once;
* :func:`clump` — greedy PLINK-style clumping by increasing p-value;
* :func:`screen_variants` — p-value threshold, optional clumping and top-k.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from deepprs.errors import InputError
from deepprs.io.packed import MISSING_CODE, PackedGenotypes

_BLOCK = 4096
# byte -> its four 2-bit genotype codes, lowest bits first (the PackedGenotypes layout)
_BYTE_CODES = ((np.arange(256)[:, None] >> np.array([0, 2, 4, 6])) & 3).astype(np.uint8)


def _n_samples(X) -> int:
    return X.n_samples if isinstance(X, PackedGenotypes) else int(np.asarray(X).shape[0])


def _n_variants(X) -> int:
    return X.n_variants if isinstance(X, PackedGenotypes) else int(np.asarray(X).shape[1])


def dense_columns(
    X,
    sample_index: np.ndarray | None,
    variant_index: np.ndarray,
    *,
    center: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """Dense float64 samples × selected-variants matrix, streamed from packed bytes.

    Only the packed bytes spanning ``variant_index.min() .. variant_index.max()`` are
    unpacked, so memory is ~ n_samples × (span of the block).  With ``center`` (indexed by
    *all* variants) the block is centred (and scaled) with missing set to 0; otherwise
    missing is NaN.

    Returns
    -------
    ndarray, shape (n_selected_samples, len(variant_index))
    """
    variant_index = np.asarray(variant_index, dtype=np.int64)
    if variant_index.size == 0:
        n = _n_samples(X) if sample_index is None else len(sample_index)
        return np.zeros((n, 0))
    if isinstance(X, PackedGenotypes):
        first_byte = int(variant_index.min()) // 4
        last_byte = int(variant_index.max()) // 4 + 1
        rows = (
            X.packed[:, first_byte:last_byte] if sample_index is None else X.packed[sample_index, first_byte:last_byte]
        )
        codes = _BYTE_CODES[rows].reshape(rows.shape[0], -1)[:, variant_index - 4 * first_byte]
        values = codes.astype(np.float64)
        values[codes == MISSING_CODE] = np.nan
    else:
        dense = np.asarray(X)
        if sample_index is not None:
            dense = dense[sample_index]
        values = dense[:, variant_index].astype(np.float64)
    if center is not None:
        values = values - center[variant_index]
        if scale is not None:
            values = values / scale[variant_index]
        values = np.where(np.isnan(values), 0.0, values)
    return values


def training_stats(X, sample_index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-variant mean and sd (ddof 1, non-missing calls) over ``sample_index``; sd = 1 if monomorphic."""
    if isinstance(X, PackedGenotypes):
        return X.variant_stats(sample_index)
    dense = np.asarray(X)
    if sample_index is not None:
        dense = dense[sample_index]
    mean = np.zeros(dense.shape[1])
    sd = np.ones(dense.shape[1])
    for start in range(0, dense.shape[1], _BLOCK):
        block = dense[:, start : start + _BLOCK].astype(np.float64)
        observed = ~np.isnan(block)
        count = observed.sum(0)
        filled = np.where(observed, block, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(count > 0, filled.sum(0) / np.maximum(count, 1), 0.0)
            var = np.where(
                count > 1, ((np.where(observed, block - m, 0.0)) ** 2).sum(0) / np.maximum(count - 1, 1), 0.0
            )
        s = np.sqrt(var)
        s[s < 1e-8] = 1.0
        mean[start : start + _BLOCK] = m
        sd[start : start + _BLOCK] = s
    return mean, sd


def _select_rows(values: np.ndarray | None, sample_index: np.ndarray | None, n_total: int, what: str):
    """Align a per-sample array to the selected rows (accepts full-length or selected-length input)."""
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64)
    n_selected = n_total if sample_index is None else len(sample_index)
    if values.shape[0] == n_selected:
        return values
    if sample_index is not None and values.shape[0] == n_total:
        return values[sample_index]
    raise InputError(f"{what} has {values.shape[0]} rows but the genotypes have {n_selected} selected samples")


def covariate_basis(covariates: np.ndarray | None, n: int) -> np.ndarray:
    """Orthonormal basis (n × k) of [intercept, covariates]; rank-deficient columns dropped."""
    design = np.ones((n, 1))
    if covariates is not None:
        covariates = np.asarray(covariates, dtype=np.float64).reshape(n, -1)
        if np.isnan(covariates).any():
            raise InputError("covariates contain missing values; drop or impute those samples first")
        design = np.column_stack([design, covariates])
    q, r = np.linalg.qr(design)
    keep = np.abs(np.diag(r)) > 1e-10 * max(1.0, np.abs(np.diag(r)).max())
    return q[:, keep]


def marginal_association(
    X,
    y: np.ndarray,
    *,
    covariates: np.ndarray | None = None,
    sample_index: np.ndarray | None = None,
    standardize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-variant OLS of ``y`` on each variant (+ intercept + covariates), vectorised.

    Both ``y`` and the variant are residualised on [1, covariates] (Frisch–Waugh–Lovell), so
    the estimate, its standard error and the t-test equal those of the full regression
    ``y ~ 1 + covariates + variant`` with ``n - k - 1`` residual degrees of freedom
    (k = rank of [1, covariates]).  Missing dosages are imputed at the mean of the selected
    samples.

    Parameters
    ----------
    X
        :class:`PackedGenotypes` or dense dosage array, shape (n_samples, n_variants).
    y : ndarray, shape (n_selected,)
        Phenotype of the selected samples (missing not allowed).
    covariates : ndarray, shape (n_selected, n_covariates), optional
    sample_index : ndarray of int, optional
        Rows of ``X`` to use (training samples). ``y``/``covariates`` may be given either for
        these rows only or for all rows of ``X``.
    standardize
        ``True`` (default): beta per standard deviation of the variant (the test on the
        standardised variant); ``False``: beta per copy of the counted allele.

    Returns
    -------
    beta, pvalue : ndarray, shape (n_variants,)
        Monomorphic variants get beta 0 and p-value 1.
    """
    n_total = _n_samples(X)
    sample_index = None if sample_index is None else np.asarray(sample_index, dtype=np.int64)
    y = _select_rows(y, sample_index, n_total, "y").ravel()
    if np.isnan(y).any():
        raise InputError("phenotype has missing values; drop those samples before the association scan")
    covariates = _select_rows(covariates, sample_index, n_total, "covariates")
    n = y.shape[0]
    basis = covariate_basis(covariates, n)
    df = n - basis.shape[1] - 1
    if df < 1:
        raise InputError(f"too few samples ({n}) for {basis.shape[1]} covariate columns")
    y_res = y - basis @ (basis.T @ y)
    yy = float(y_res @ y_res)
    mean, sd = training_stats(X, sample_index)
    m = _n_variants(X)
    beta = np.zeros(m)
    pvalue = np.ones(m)
    for start in range(0, m, _BLOCK):
        index = np.arange(start, min(start + _BLOCK, m))
        z = dense_columns(X, sample_index, index, center=mean, scale=sd)  # standardised, missing -> 0
        proj = basis.T @ z
        sxx = (z * z).sum(0) - (proj * proj).sum(0)
        sxy = z.T @ y_res
        ok = sxx > 1e-8 * n
        b = np.where(ok, sxy / np.where(ok, sxx, 1.0), 0.0)
        rss = np.maximum(yy - b * sxy, 1e-300)
        se = np.sqrt(rss / df / np.where(ok, sxx, 1.0))
        t = np.where(ok, b / se, 0.0)
        beta[index] = b if standardize else b / sd[index]
        pvalue[index] = np.where(ok, 2.0 * stats.t.sf(np.abs(t), df), 1.0)
    return beta, pvalue


def _ld_neighbours(
    X,
    candidates: np.ndarray,
    *,
    r2: float,
    window: int,
    chrom: np.ndarray | None,
    pos: np.ndarray | None,
    window_kb: float | None,
    sample_index: np.ndarray | None,
    center: np.ndarray,
    scale: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) of candidate positions (in ``candidates`` order) with r² > ``r2`` within the window."""
    n = _n_samples(X) if sample_index is None else len(sample_index)
    mc = len(candidates)
    use_kb = window_kb is not None and pos is not None
    cand_chrom = None if chrom is None else np.asarray(chrom)[candidates]
    cand_pos = None if pos is None else np.asarray(pos, dtype=np.float64)[candidates]
    # last partner (exclusive) of each candidate in the sorted candidate order
    if use_kb:
        end = np.empty(mc, dtype=np.int64)
        key_chrom = cand_chrom if cand_chrom is not None else np.zeros(mc)
        boundaries = np.flatnonzero(np.r_[True, key_chrom[1:] != key_chrom[:-1], True])
        for a, b in zip(boundaries[:-1], boundaries[1:], strict=True):
            end[a:b] = a + np.searchsorted(cand_pos[a:b], cand_pos[a:b] + window_kb * 1000.0, side="right")
    else:
        # ``window`` counts variants in file order (not candidates)
        end = np.searchsorted(candidates, candidates + window, side="right")
        if cand_chrom is not None:
            boundaries = np.flatnonzero(np.r_[True, cand_chrom[1:] != cand_chrom[:-1], True])
            chrom_end = np.repeat(boundaries[1:], np.diff(boundaries))
            end = np.minimum(end, chrom_end)
    rows_i: list[np.ndarray] = []
    rows_j: list[np.ndarray] = []
    block = 512
    for start in range(0, mc, block):
        stop = min(start + block, mc)
        reach = int(end[start:stop].max())
        if reach <= start + 1:
            continue
        cols = candidates[start:reach]
        z = dense_columns(X, sample_index, cols, center=center, scale=scale)
        z_norm = np.sqrt((z * z).sum(0))
        z_norm[z_norm == 0] = 1.0
        z /= z_norm
        corr = z[:, : stop - start].T @ z  # (block, reach - start)
        local_i = np.arange(start, stop)[:, None]
        local_j = np.arange(start, reach)[None, :]
        mask = (local_j > local_i) & (local_j < end[start:stop, None]) & (corr * corr > r2)
        ii, jj = np.nonzero(mask)
        rows_i.append(ii + start)
        rows_j.append(jj + start)
    del n
    if not rows_i:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows_i), np.concatenate(rows_j)


def clump(
    X,
    pvalue: np.ndarray,
    *,
    r2: float = 0.1,
    window: int = 250,
    p_threshold: float = 1.0,
    chrom: np.ndarray | None = None,
    pos: np.ndarray | None = None,
    window_kb: float | None = None,
    sample_index: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy PLINK-style clumping: the best remaining variant absorbs its LD partners.

    Variants with ``pvalue <= p_threshold`` are visited by increasing p-value; each one not
    yet absorbed becomes an index variant and absorbs every candidate with r² > ``r2`` in its
    window.  The window is ``window_kb`` kilobases on the same chromosome when ``window_kb``
    and ``pos`` are given, otherwise ``window`` variants on either side (in file order, on the
    same chromosome when ``chrom`` is given).  r² is the squared Pearson correlation of
    mean-imputed dosages over the (training) samples.

    Parameters
    ----------
    X
        :class:`PackedGenotypes` or dense dosages, shape (n_samples, n_variants), variants in
        chromosome/position order.
    pvalue : ndarray, shape (n_variants,)
    chrom, pos : ndarray, shape (n_variants,), optional
    sample_index : ndarray of int, optional
        Rows of ``X`` to compute LD on.

    Returns
    -------
    ndarray of int
        Kept (index) variant positions, in increasing p-value order.

    Memory: n_samples × (512 + window) floats at a time.
    """
    pvalue = np.asarray(pvalue, dtype=np.float64)
    m = _n_variants(X)
    if pvalue.shape != (m,):
        raise InputError(f"pvalue has {pvalue.shape[0]} entries for {m} variants")
    if not 0.0 <= r2 <= 1.0:
        raise InputError(f"clump r2 must lie in [0, 1], got {r2}")
    candidates = np.flatnonzero(np.isfinite(pvalue) & (pvalue <= p_threshold))
    if candidates.size == 0:
        return candidates
    if pos is not None and window_kb is not None:
        # sort candidates by (chrom, pos) so that windows are contiguous
        key_chrom = np.zeros(m) if chrom is None else np.asarray(chrom)
        order = np.lexsort((np.asarray(pos)[candidates], key_chrom[candidates]))
        candidates = candidates[order]
    if sample_index is not None:
        sample_index = np.asarray(sample_index, dtype=np.int64)
    center, scale = training_stats(X, sample_index)
    pair_i, pair_j = _ld_neighbours(
        X,
        candidates,
        r2=r2,
        window=window,
        chrom=chrom,
        pos=pos,
        window_kb=window_kb,
        sample_index=sample_index,
        center=center,
        scale=scale,
    )
    # symmetric adjacency in CSR form over candidate positions
    src = np.concatenate([pair_i, pair_j])
    dst = np.concatenate([pair_j, pair_i])
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    offsets = np.searchsorted(src, np.arange(len(candidates) + 1))
    visit = np.lexsort((candidates, pvalue[candidates]))  # increasing p, ties by position
    absorbed = np.zeros(len(candidates), dtype=bool)
    kept: list[int] = []
    for local in visit:
        if absorbed[local]:
            continue
        kept.append(local)
        absorbed[dst[offsets[local] : offsets[local + 1]]] = True
        absorbed[local] = True
    return candidates[np.asarray(kept, dtype=np.int64)]


def screen_variants(
    X,
    y: np.ndarray,
    *,
    covariates: np.ndarray | None = None,
    top_k: int | None = None,
    p_threshold: float | None = None,
    clump_r2: float | None = None,
    chrom: np.ndarray | None = None,
    pos: np.ndarray | None = None,
    clump_window: int = 250,
    clump_window_kb: float | None = None,
    sample_index: np.ndarray | None = None,
) -> np.ndarray:
    """Select variants by marginal association in the (training) samples.

    Steps: association scan -> keep ``p <= p_threshold`` -> optional clumping at
    ``clump_r2`` (window ``clump_window_kb`` kb when given with ``pos``, else
    ``clump_window`` variants) -> the ``top_k`` smallest p-values.  When no variant passes,
    the single best variant is kept so that a model can still be fitted.

    Returns
    -------
    ndarray of int
        Selected variant positions, sorted increasingly (file order).
    """
    if top_k is not None and top_k < 1:
        raise InputError(f"top_k must be >= 1, got {top_k}")
    _, pvalue = marginal_association(X, y, covariates=covariates, sample_index=sample_index)
    threshold = 1.0 if p_threshold is None else float(p_threshold)
    if clump_r2 is not None:
        selected = clump(
            X,
            pvalue,
            r2=clump_r2,
            window=clump_window,
            p_threshold=threshold,
            chrom=chrom,
            pos=pos,
            window_kb=clump_window_kb,
            sample_index=sample_index,
        )
    else:
        selected = np.flatnonzero(pvalue <= threshold)
        selected = selected[np.lexsort((selected, pvalue[selected]))]
    if top_k is not None:
        selected = selected[:top_k]
    if selected.size == 0:
        selected = np.array([int(np.argmin(pvalue))])
    return np.sort(selected)
