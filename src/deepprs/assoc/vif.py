"""plink2's predictor checks for ``--glm``: CORR_TOO_HIGH, VIF_INFINITE and VIF_TOO_HIGH.

plink2 (``CheckMaxCorrAndVif`` in ``plink2_glm.cc``) checks, for every variant and over the
samples used for it (called genotype), the correlation matrix R of the non-intercept predictors
[genotype, covariates] (sample covariances, then correlations):

1. any off-diagonal ``|R_ij| > max_corr`` (``--max-corr``, default 0.999) -> ``CORR_TOO_HIGH``;
2. R numerically singular (Cholesky fails or reciprocal condition number < 1e-14) -> ``VIF_INFINITE``;
3. any diagonal entry of R⁻¹ (a variance inflation factor, the covariates' included) above
   ``max_vif`` (``--vif``, default 50) -> ``VIF_TOO_HIGH``.

The first failing rule names the error. Before any variant is tested, the covariates alone are
checked the same way over the samples of each design (:func:`check_covariates`); plink2 then
stops, and so does deepprs (:class:`~deepprs.errors.InputError`).

The per-variant check is cheap because almost every variant provably passes. With VIF_g the
genotype's VIF (from the regression's own gᵀMg), VIF_C the covariates' VIFs over all the
design's samples and ε a bound on how far removing the variant's missing-call rows moves the
whitened covariates' centred Gram matrix W from I (ε = tr(Q_mᵀQ_m restricted to the covariate
columns) + ‖Σ_m q‖²/OBS_CT, so W ⪰ (1 − ε) I and W ⪯ I), every VIF of the variant's model is at
most ``max(VIF_C) · VIF_g / (1 − ε)`` and every |correlation| at most sqrt(1 − 1 / that bound)
(a pairwise correlation never exceeds the multiple correlation). Only variants whose bound
exceeds the thresholds get the exact (c + 1) × (c + 1) check.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch

from deepprs.errors import InputError

MAX_VIF = 50.0  # plink2 --vif default
MAX_CORR = 0.999  # plink2 --max-corr default
SINGULAR_RCOND = 1e-14  # plink2 kMatrixSingularRcond
NEAR_SINGULAR_RCOND = 1e-8  # below this, recompute from the data before applying SINGULAR_RCOND

OK, CORR_TOO_HIGH, VIF_INFINITE, VIF_TOO_HIGH = 0, 1, 2, 3
ERRCODE_NAMES = {CORR_TOO_HIGH: "CORR_TOO_HIGH", VIF_INFINITE: "VIF_INFINITE", VIF_TOO_HIGH: "VIF_TOO_HIGH"}


def check_limits(max_vif: float, max_corr: float) -> tuple[float, float]:
    """Validate ``--vif`` / ``--max-corr`` (plink2: VIF >= 1, 0 < max-corr <= 1)."""
    max_vif, max_corr = float(max_vif), float(max_corr)
    if not max_vif >= 1.0:
        raise InputError(f"--vif must be >= 1 (got {max_vif:g})")
    if not 0.0 < max_corr <= 1.0:
        raise InputError(f"--max-corr must be in (0, 1] (got {max_corr:g})")
    return max_vif, max_corr


def correlation_checks(
    sscp: torch.Tensor, *, max_vif: float = MAX_VIF, max_corr: float = MAX_CORR
) -> tuple[torch.Tensor, torch.Tensor]:
    """plink2's rules on a batch of centred cross-product matrices of the predictors.

    Parameters
    ----------
    sscp : Tensor, shape (b, p, p)
        Centred sums of squares and cross-products (any positive scale, e.g. (N − 1) × covariance)
        of the p non-intercept predictors of each of b models, over each model's samples.

    Returns
    -------
    code : Tensor of int64, shape (b,)
        ``OK``, ``CORR_TOO_HIGH``, ``VIF_INFINITE`` or ``VIF_TOO_HIGH`` (first failing rule).
    vif : Tensor of float64, shape (b, p)
        Diagonal of R⁻¹ (inf where R is singular).
    """
    code, vif, _ = _rules(sscp, max_vif=max_vif, max_corr=max_corr)
    return code, vif


def _rules(
    sscp: torch.Tensor, *, max_vif: float, max_corr: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`correlation_checks` plus the reciprocal condition number of R, shape (b,)."""
    b, p, _ = sscp.shape
    code = torch.zeros(b, dtype=torch.int64, device=sscp.device)
    vif = torch.full((b, p), torch.inf, dtype=sscp.dtype, device=sscp.device)
    if b == 0:
        return code, vif, torch.ones(0, dtype=sscp.dtype, device=sscp.device)
    diag = torch.diagonal(sscp, dim1=1, dim2=2)
    degenerate = ~(diag > 0).all(1)  # a predictor constant over the samples: nothing to invert
    scale = torch.where(diag > 0, diag, torch.ones_like(diag)).rsqrt()
    corr = sscp * scale.unsqueeze(2) * scale.unsqueeze(1)
    eye = torch.eye(p, dtype=torch.bool, device=sscp.device)
    corr = torch.where(eye, torch.ones_like(corr), corr)
    too_high = (torch.where(eye, torch.zeros_like(corr), corr).abs() > max_corr).any(2).any(1)
    identity = torch.eye(p, dtype=corr.dtype, device=corr.device)
    chol, info = torch.linalg.cholesky_ex(torch.where(degenerate.view(-1, 1, 1), identity, corr))
    # failed factors (flagged singular below) are inverted as the identity: the inverse of a factor
    # with a zero pivot may raise, or give infinities, depending on the backend
    inverse = torch.cholesky_inverse(torch.where((info != 0).view(-1, 1, 1), identity, chol))
    # reciprocal 1-norm condition number (plink2: dpocon estimate < 1e-14 means singular)
    rcond = 1.0 / (torch.linalg.matrix_norm(corr, ord=1) * torch.linalg.matrix_norm(inverse, ord=1))
    singular = degenerate | (info != 0) | ~(rcond >= SINGULAR_RCOND)
    vif = torch.where(singular.unsqueeze(1), vif, torch.diagonal(inverse, dim1=1, dim2=2))
    code[(vif > max_vif).any(1)] = VIF_TOO_HIGH
    code[singular] = VIF_INFINITE
    code[too_high] = CORR_TOO_HIGH
    return code, vif, torch.where(singular, torch.zeros_like(rcond), rcond)


def check_covariates(
    covariates: np.ndarray,
    names: list[str],
    *,
    max_vif: float = MAX_VIF,
    max_corr: float = MAX_CORR,
    context: str = "",
) -> np.ndarray:
    """Start-of-run check of the covariates alone (plink2 stops with the same error codes).

    Parameters
    ----------
    covariates : ndarray, shape (n, c)
        The covariates of one design over exactly the samples it uses (constant and exactly
        collinear columns already dropped).
    names : list of str, length c

    Returns
    -------
    ndarray of float64, shape (c,)
        The covariates' VIFs over these samples.

    Raises
    ------
    InputError
        A pair with |r| > ``max_corr``, a VIF above ``max_vif``, or a singular correlation matrix.
    """
    n, c = covariates.shape
    if c == 0:
        return np.zeros(0)
    where = f" ({context})" if context else ""
    centred = covariates - covariates.mean(axis=0)
    sscp = torch.from_numpy(centred.T @ centred).unsqueeze(0)
    code, vif = correlation_checks(sscp, max_vif=max_vif, max_corr=max_corr)
    code_value = int(code[0])
    if code_value == OK:
        return vif[0].numpy()
    advice = "remove the redundant covariate(s) with --covar-name, or raise --vif / --max-corr"
    if code_value == CORR_TOO_HIGH:
        corr = np.atleast_2d(np.corrcoef(centred, rowvar=False))
        rows, cols = np.nonzero(np.triu(np.abs(corr) > max_corr, 1))
        i, j = int(rows[0]), int(cols[0])
        raise InputError(
            f"correlation between covariates '{names[i]}' and '{names[j]}'{where} is too high "
            f"(|r| = {abs(corr[i, j]):.6f} > --max-corr {max_corr:g}; CORR_TOO_HIGH): {advice}"
        )
    if code_value == VIF_INFINITE:
        raise InputError(f"covariate correlation matrix{where} could not be inverted (VIF_INFINITE): {advice}")
    values = vif[0].numpy()
    worst = [names[j] for j in np.nonzero(values > max_vif)[0]]
    raise InputError(
        f"variance inflation factor for covariate(s) {', '.join(repr(w) for w in worst)}{where} is too high "
        f"(VIF {values.max():.4g} > --vif {max_vif:g}; VIF_TOO_HIGH): {advice}"
    )


class PredictorCheck:
    """Per-variant plink2 predictor checks for one linear-regression design.

    Parameters
    ----------
    basis : ndarray, shape (n_used, k)
        Orthonormal basis Q of [1, covariates] over the design's samples, from ``np.linalg.qr``
        of a matrix whose first column is the intercept (so Q's first column is constant and the
        others are centred).
    covariates : ndarray, shape (n_used, c)
    covariate_vif : ndarray, shape (c,)
        VIFs of the covariates over the design's samples (:func:`check_covariates`).
    """

    def __init__(
        self,
        basis: np.ndarray,
        covariates: np.ndarray,
        covariate_vif: np.ndarray,
        *,
        max_vif: float = MAX_VIF,
        max_corr: float = MAX_CORR,
    ) -> None:
        self.n_used = basis.shape[0]
        self.n_covariates = covariates.shape[1]
        self.coords = basis.T @ covariates  # B: covariates = Q B, shape (k, c)
        self.intercept = basis.T @ np.ones(self.n_used)  # Q' 1, shape (k,)
        self.max_vif, self.max_corr = max_vif, max_corr
        self.covariate_vif_max = float(covariate_vif.max()) if len(covariate_vif) else 1.0
        # beyond this bound a VIF or a correlation may fail (|r| <= sqrt(1 - 1/VIF) <= max_corr)
        corr_limit = np.inf if max_corr >= 1.0 else 1.0 / (1.0 - max_corr**2)
        self.screen_limit = min(max_vif, corr_limit) * (1.0 - 1e-9)

    def codes(
        self,
        missing_outer: torch.Tensor,
        q_g: torch.Tensor,
        g_sum: torch.Tensor,
        g_tss: torch.Tensor,
        g_mg: torch.Tensor,
        obs_ct: torch.Tensor,
        direct: Callable[[torch.Tensor], torch.Tensor] | None = None,
        skip: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Error codes (``OK`` / ``CORR_TOO_HIGH`` / ``VIF_INFINITE`` / ``VIF_TOO_HIGH``) of b variants.

        Parameters
        ----------
        missing_outer : Tensor, shape (k(k+1)/2, b)
            The upper triangle of Q_mᵀQ_m (row-major, as ``np.triu_indices``), one column per
            variant: the basis' Gram matrix over each variant's observed rows is A = I − Q_mᵀQ_m
            (:func:`observed_gram`).
        q_g : Tensor, shape (b, k)
            Qᵀg with missing calls zero-filled (= Q_obsᵀ g_obs).
        g_sum, g_tss, g_mg, obs_ct : Tensor, shape (b,)
            Σg, Σ(g − ḡ)², gᵀMg (residual sum of squares of g on [1, C]) and OBS_CT over the
            observed rows.
        direct : callable, optional
            ``direct(rows)`` -> centred cross-products of [g, covariates] (len(rows), c + 1, c + 1)
            computed from the data, for the few variants whose correlation matrix is within
            rounding of singular.
        skip : Tensor of bool, shape (b,), optional
            Variants not to check (their code stays ``OK``): those another error already names,
            such as a genotype constant over the observed samples.

        Returns
        -------
        Tensor of int64, shape (b,)
        """
        if missing_outer.dim() != 2 or missing_outer.shape[1] != q_g.shape[0]:
            raise ValueError("missing_outer is the packed triangle with one column per variant, (k(k+1)/2, b); "
                             f"got {tuple(missing_outer.shape)} for {q_g.shape[0]} variants")
        b = missing_outer.shape[1]
        code = torch.zeros(b, dtype=torch.int64, device=missing_outer.device)
        if self.n_covariates == 0 or b == 0:  # plink2 checks nothing with the genotype alone
            return code
        bound, epsilon = self.bound(missing_outer, g_tss, g_mg, obs_ct)
        passed = (bound <= self.screen_limit) & (epsilon < 1.0) & (g_mg > 0)
        if skip is not None:
            passed |= skip
        flagged = torch.nonzero(~passed).flatten()
        if flagged.numel() == 0:
            return code
        gram = observed_gram(missing_outer[:, flagged]).permute(2, 0, 1)  # (f, k, k)
        sscp = self.sscp(gram, q_g[flagged], g_sum[flagged], g_tss[flagged], obs_ct[flagged])
        flagged_code, _, rcond = _rules(sscp, max_vif=self.max_vif, max_corr=self.max_corr)
        if direct is not None:
            # through the basis the correlations carry ~1e-12 of rounding: near-singular matrices
            # are rebuilt from the data so that plink2's 1e-14 reciprocal-condition limit applies
            near = torch.nonzero((flagged_code != CORR_TOO_HIGH) & (rcond < NEAR_SINGULAR_RCOND)).flatten()
            if near.numel():
                flagged_code[near] = _rules(direct(flagged[near]), max_vif=self.max_vif, max_corr=self.max_corr)[0]
        code[flagged] = flagged_code
        return code

    def bound(
        self, missing_outer: torch.Tensor, g_tss: torch.Tensor, g_mg: torch.Tensor, obs_ct: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Upper bound on every VIF of each variant's model, and ε (the bound holds where ε < 1).

        ``missing_outer`` as in :meth:`codes`.

        Returns
        -------
        bound, epsilon : Tensor, shape (b,)
        """
        k = packed_order(missing_outer.shape[0])
        # whitened covariates are Q's columns 1..k-1: tr of their block of Q_m'Q_m, and their
        # missing-row sums ±sqrt(N) (Q_m'Q_m)_0j (row 0 of the triangle: its entries 1..k-1)
        trace_c = missing_outer[_diagonal_positions(k)[1:]].sum(0)
        mean_shift = self.n_used * (missing_outer[1:k] ** 2).sum(0) / obs_ct.clamp(min=1)
        epsilon = trace_c + mean_shift
        with torch.no_grad():
            vif_g = g_tss / g_mg
        return self.covariate_vif_max * vif_g / (1.0 - epsilon), epsilon

    def sscp(
        self, gram: torch.Tensor, q_g: torch.Tensor, g_sum: torch.Tensor, g_tss: torch.Tensor, obs_ct: torch.Tensor
    ) -> torch.Tensor:
        """Centred cross-products of [g, covariates] over each variant's observed rows, (b, c + 1, c + 1)."""
        device, dtype = gram.device, gram.dtype
        coords = torch.as_tensor(self.coords, dtype=dtype, device=device)
        intercept = torch.as_tensor(self.intercept, dtype=dtype, device=device)
        n_obs = obs_ct.clamp(min=1).unsqueeze(1)
        ones_obs = gram @ intercept  # Q_obs' 1, (b, k)
        centred_gram = gram - ones_obs.unsqueeze(2) * ones_obs.unsqueeze(1) / n_obs.unsqueeze(2)
        cov_cov = coords.T @ centred_gram @ coords  # (b, c, c)
        cov_g = (q_g - ones_obs * g_sum.unsqueeze(1) / n_obs) @ coords  # (b, c)
        c = coords.shape[1]
        out = torch.empty(gram.shape[0], c + 1, c + 1, dtype=dtype, device=device)
        out[:, 0, 0] = g_tss
        out[:, 0, 1:] = cov_g
        out[:, 1:, 0] = cov_g
        out[:, 1:, 1:] = cov_cov
        return out


def packed_order(n_packed: int) -> int:
    """k of a packed upper triangle of k(k+1)/2 entries."""
    k = (math.isqrt(8 * n_packed + 1) - 1) // 2
    if k * (k + 1) // 2 != n_packed:
        raise ValueError(f"{n_packed} is not the size of a packed triangle")
    return k


@functools.lru_cache(maxsize=64)
def _diagonal_positions(k: int) -> list[int]:
    """Positions of the diagonal in a row-major packed upper triangle (``np.triu_indices(k)``)."""
    return [j * k - j * (j - 1) // 2 for j in range(k)]


@functools.lru_cache(maxsize=64)
def _unpacking_index(k: int, device: torch.device) -> torch.Tensor:
    """For each entry (i, j) of a k × k matrix (row-major) its position in the packed upper triangle."""
    rows, cols = np.triu_indices(k)
    position = np.zeros((k, k), dtype=np.int64)
    position[rows, cols] = position[cols, rows] = np.arange(len(rows))
    return torch.from_numpy(position.reshape(-1)).to(device)


def observed_gram(missing_outer: torch.Tensor) -> torch.Tensor:
    """A = I − Q_mᵀQ_m from the packed upper triangle of Q_mᵀQ_m, batch last.

    Parameters
    ----------
    missing_outer : Tensor, shape (k(k+1)/2, b)
        Row-major upper triangle (``np.triu_indices(k)`` order) of Q_mᵀQ_m for each of b variants.

    Returns
    -------
    Tensor, shape (k, k, b)
        A new tensor, symmetric in its first two dimensions.
    """
    k = packed_order(missing_outer.shape[0])
    gram = torch.index_select(missing_outer, 0, _unpacking_index(k, missing_outer.device)).view(k, k, -1)
    gram.neg_()
    torch.diagonal(gram, 0, 0, 1).add_(1.0)
    return gram


def errcode_strings(code: np.ndarray) -> np.ndarray:
    """Map integer codes to plink2's ERRCODE strings ('.' for OK), object array."""
    out = np.full(len(code), ".", dtype=object)
    for value, name in ERRCODE_NAMES.items():
        out[code == value] = name
    return out


def masked_sscp(
    dosage: torch.Tensor,
    mask: torch.Tensor,
    covariates: torch.Tensor,
    *,
    excluded: tuple[torch.Tensor, torch.Tensor] | None = None,
    g_sum: torch.Tensor | None = None,
    g_tss: torch.Tensor | None = None,
) -> torch.Tensor:
    """Centred cross-products of [g, covariates] over each model's samples, plink2's way
    (dot products minus sum × mean).

    Parameters
    ----------
    dosage : Tensor, shape (b, n)
        Zero where ``mask`` is 0.
    mask : Tensor, shape (b, n)
        1 for the samples each model uses, 0 elsewhere.
    covariates : Tensor, shape (n, c)
        Without the intercept.
    excluded : (Tensor, Tensor), optional
        (model, sample) positions of the zeros of ``mask`` when already known.
    g_sum, g_tss : Tensor, shape (b,), optional
        Σg and Σ(g − ḡ)² over each model's samples when already known.

    Returns
    -------
    Tensor, shape (b, c + 1, c + 1)
    """
    b, n = dosage.shape
    c = covariates.shape[1]
    dtype, device = dosage.dtype, dosage.device
    n_obs = mask.sum(1).clamp(min=1)
    if g_sum is None:
        g_sum = dosage.sum(1)
    out = torch.empty(b, c + 1, c + 1, dtype=dtype, device=device)
    out[:, 0, 0] = (dosage * dosage).sum(1) - g_sum**2 / n_obs if g_tss is None else g_tss
    rows, cols = torch.triu_indices(c, c, device=device)
    products = covariates[:, rows] * covariates[:, cols]  # (n, c(c+1)/2)
    # the covariates' sums over each model's samples: full sums minus the (few) excluded samples'
    excluded_model, excluded_sample = torch.nonzero(mask == 0, as_tuple=True) if excluded is None else excluded
    cov_sum = covariates.sum(0).expand(b, c).clone()
    cov_sum.index_add_(0, excluded_model, covariates[excluded_sample], alpha=-1.0)
    packed = products.sum(0).expand(b, -1).clone()
    packed.index_add_(0, excluded_model, products[excluded_sample], alpha=-1.0)
    cov_g = dosage @ covariates - cov_sum * (g_sum / n_obs).unsqueeze(1)
    out[:, 0, 1:] = cov_g
    out[:, 1:, 0] = cov_g
    packed = packed - cov_sum[:, rows] * cov_sum[:, cols] / n_obs.unsqueeze(1)
    out[:, 1 + rows, 1 + cols] = packed
    out[:, 1 + cols, 1 + rows] = packed
    return out
