"""Exact REML, BLUP and cvBLUP through one eigendecomposition of the GRM (FaST-LMM / GEMMA form).

Model (METHODS.md §1): y = Xβ + g + e, g ~ N(0, σg² K), e ~ N(0, σe² I), V = σg² K + σe² I.
With K = U diag(λ) Uᵀ and δ = σe²/σg², V = σg² U diag(λ + δ) Uᵀ, so after rotating
ỹ = Uᵀy, X̃ = UᵀX every REML evaluation costs O(N p²).  σg² is profiled out:

    l_R(δ) = -½ [ (N-p) log(2π σ̂g²) + Σ_k log(λ_k+δ) + log|X̃ᵀ W X̃| - log|XᵀX| + (N-p) ],
    W = diag(1/(λ+δ)),  σ̂g² = ỹᵀ P ỹ / (N-p)  (GEMMA's ``LogRL_f`` up to reparametrisation;
    its maximum equals GEMMA's "REMLE log-likelihood in the null model").

The maximum is found on a grid of log δ ∈ [-10, 10] and refined with bounded Brent.
h² = σg²/(σg²+σe²) = 1/(1+δ) — equal to GEMMA's PVE because trace(K)/N = 1 for our GRM.
SE(h²) by the delta method from the observed information of the profile REML likelihood in
log δ: SE(h²) = h²(1-h²) / sqrt(-∂²l_R/∂(log δ)²).

BLUP ĝ = H r with r = y - Xβ̂ (GLS β̂), H = σg² K V⁻¹ = U diag(λ/(λ+δ)) Uᵀ, and
cvBLUP_i = (ĝ_i - H_ii r_i)/(1 - H_ii): the prediction of g_i from the other N-1 samples'
residuals r_{-i} with σg², σe² and β̂ held at their full-sample values (GCTA ``--cvblup``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import optimize

from deepprs.errors import InputError

LOG_DELTA_BOUNDS = (-10.0, 10.0)
GRID_POINTS = 101
SMALL_EIGH_N = 1000


@dataclass
class EigenGRM:
    """Eigendecomposition of a GRM, K = U diag(eigenvalues) Uᵀ.

    Attributes
    ----------
    eigenvalues : ndarray, shape (n,)   (negative round-off clipped to 0)
    eigenvectors : Tensor, shape (n, n)
    """

    eigenvalues: np.ndarray
    eigenvectors: torch.Tensor

    @classmethod
    def from_grm(cls, grm_matrix: torch.Tensor) -> EigenGRM:
        """Eigendecompose K once (torch.linalg.eigh; O(n³), ~10 s at n = 3,000 on 2 cores)."""
        threads = torch.get_num_threads()
        if grm_matrix.shape[0] <= SMALL_EIGH_N and grm_matrix.device.type == "cpu":
            # small problems gain nothing from threads, and oversubscribed OpenMP threads on a busy
            # machine slowed a 370 × 370 eigh from 0.05 s to 10 s in our runs
            torch.set_num_threads(1)
        try:
            values, vectors = torch.linalg.eigh(grm_matrix.to(torch.float64))
        finally:
            torch.set_num_threads(threads)
        return cls(eigenvalues=np.clip(values.cpu().numpy(), 0.0, None), eigenvectors=vectors)

    @property
    def n(self) -> int:
        return int(self.eigenvalues.shape[0])

    def rotate(self, matrix: np.ndarray) -> np.ndarray:
        """Uᵀ A for A of shape (n,) or (n, k)."""
        tensor = torch.tensor(np.asarray(matrix, dtype=np.float64), device=self.eigenvectors.device)
        return (self.eigenvectors.T @ tensor).cpu().numpy()

    def unrotate(self, matrix: np.ndarray) -> np.ndarray:
        """U A for A of shape (n,) or (n, k)."""
        tensor = torch.tensor(np.asarray(matrix, dtype=np.float64), device=self.eigenvectors.device)
        return (self.eigenvectors @ tensor).cpu().numpy()

    def hat_diagonal(self, shrink: np.ndarray) -> np.ndarray:
        """diag(U diag(shrink) Uᵀ), shape (n,)."""
        shrink_t = torch.as_tensor(shrink, dtype=torch.float64, device=self.eigenvectors.device)
        return ((self.eigenvectors**2) @ shrink_t).cpu().numpy()


@dataclass
class RemlFit:
    """Variance components and fixed effects from :func:`fit_reml` (or the matrix-free path).

    ``sigma_g`` and ``sigma_e`` are the variance components σg², σe² (GEMMA's vg, ve).
    """

    h2: float
    h2_se: float
    sigma_g: float
    sigma_e: float
    delta: float
    loglik: float
    fixed_effects: np.ndarray
    fixed_effects_se: np.ndarray
    n_samples: int
    n_covariates: int
    method: str = "reml-eigen"


def design_matrix(covariates: np.ndarray | None, n_samples: int) -> np.ndarray:
    """Intercept followed by the covariate columns; raises when they are collinear.

    Returns
    -------
    X : ndarray, shape (n_samples, 1 + n_covariates)
    """
    intercept = np.ones((n_samples, 1))
    if covariates is None:
        return intercept
    covariates = np.asarray(covariates, dtype=np.float64)
    if covariates.ndim == 1:
        covariates = covariates[:, None]
    if covariates.shape[0] != n_samples:
        raise InputError(f"covariates have {covariates.shape[0]} rows, expected {n_samples} (one per sample)")
    if not np.isfinite(covariates).all():
        raise InputError("covariates contain missing values; drop those samples first (load_cohort does)")
    design = np.hstack([intercept, covariates])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise InputError(
            "covariates are collinear with each other or with the intercept (e.g. a constant "
            "column); remove the redundant --covar-name columns"
        )
    return design


def check_phenotype(phenotype: np.ndarray, n_samples: int) -> np.ndarray:
    phenotype = np.asarray(phenotype, dtype=np.float64).ravel()
    if phenotype.shape[0] != n_samples:
        raise InputError(f"phenotype has {phenotype.shape[0]} values, expected {n_samples} (one per sample)")
    if not np.isfinite(phenotype).all():
        raise InputError("phenotype contains missing values; drop those samples first")
    if np.var(phenotype) <= 0:
        raise InputError("phenotype is constant; nothing to model")
    return phenotype


def _gls_pieces(
    log_delta: float, eigenvalues: np.ndarray, rotated_y: np.ndarray, rotated_x: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, float]:
    weights = 1.0 / (eigenvalues + np.exp(log_delta))
    xtwx = rotated_x.T @ (weights[:, None] * rotated_x)
    xtwy = rotated_x.T @ (weights * rotated_y)
    beta = np.linalg.solve(xtwx, xtwy)
    quadratic = float(weights @ rotated_y**2 - xtwy @ beta)
    return beta, xtwx, quadratic, float(np.log(weights).sum())


def reml_loglik(
    log_delta: float, eigenvalues: np.ndarray, rotated_y: np.ndarray, rotated_x: np.ndarray, logdet_xtx: float
) -> float:
    """Profile REML log-likelihood l_R(δ) at log δ (see the module docstring).

    Parameters
    ----------
    eigenvalues : ndarray, shape (n,)
    rotated_y : ndarray, shape (n,)       Uᵀy
    rotated_x : ndarray, shape (n, p)     UᵀX
    logdet_xtx : float                    log|XᵀX|
    """
    n, p = rotated_x.shape
    df = n - p
    _, xtwx, quadratic, sum_log_w = _gls_pieces(log_delta, eigenvalues, rotated_y, rotated_x)
    sigma_g = max(quadratic, 1e-300) / df
    logdet_xtwx = np.linalg.slogdet(xtwx)[1]
    return -0.5 * (df * np.log(2 * np.pi * sigma_g) - sum_log_w + logdet_xtwx - logdet_xtx + df)


def reml_score(
    log_delta: float, eigenvalues: np.ndarray, rotated_y: np.ndarray, rotated_x: np.ndarray
) -> float:
    """Derivative ∂l_R/∂(log δ) of the profile REML log-likelihood.

    ∂l_R/∂δ = -½ tr(P) + ½ (N-p) yᵀP²y / yᵀPy with P = H⁻¹ - H⁻¹X(XᵀH⁻¹X)⁻¹XᵀH⁻¹, H = K + δI
    (all terms diagonal in the eigenbasis, O(N p²)).
    """
    n, p = rotated_x.shape
    delta = np.exp(log_delta)
    weights = 1.0 / (eigenvalues + delta)
    beta, xtwx, quadratic, _ = _gls_pieces(log_delta, eigenvalues, rotated_y, rotated_x)
    p_y = weights * (rotated_y - rotated_x @ beta)
    xtw2x = rotated_x.T @ ((weights**2)[:, None] * rotated_x)
    trace_p = weights.sum() - np.trace(np.linalg.solve(xtwx, xtw2x))
    return float(delta * (-0.5 * trace_p + 0.5 * (n - p) * (p_y @ p_y) / quadratic))


def fit_reml(
    eigen: EigenGRM,
    phenotype: np.ndarray,
    covariates: np.ndarray | None = None,
    *,
    log_delta_bounds: tuple[float, float] = LOG_DELTA_BOUNDS,
    grid_points: int = GRID_POINTS,
) -> RemlFit:
    """REML variance components for one phenotype given the GRM eigendecomposition.

    Parameters
    ----------
    eigen : EigenGRM of the n × n GRM
    phenotype : ndarray, shape (n,)
    covariates : ndarray, shape (n, c), optional — an intercept is always added.

    Returns
    -------
    RemlFit
    """
    phenotype = check_phenotype(phenotype, eigen.n)
    design = design_matrix(covariates, eigen.n)
    if eigen.n <= design.shape[1] + 1:
        raise InputError(f"{eigen.n} samples are too few for {design.shape[1]} fixed effects")
    rotated_y = eigen.rotate(phenotype)
    rotated_x = eigen.rotate(design)
    logdet_xtx = float(np.linalg.slogdet(design.T @ design)[1])

    def negative(t: float) -> float:
        return -reml_loglik(t, eigen.eigenvalues, rotated_y, rotated_x, logdet_xtx)

    grid = np.linspace(*log_delta_bounds, grid_points)
    values = np.array([negative(t) for t in grid])
    best = int(np.argmin(values))
    lower, upper = grid[max(best - 1, 0)], grid[min(best + 1, grid_points - 1)]
    refined = optimize.minimize_scalar(
        negative, bounds=(lower, upper), method="bounded", options={"xatol": 1e-10, "maxiter": 500}
    )
    log_delta = float(refined.x) if refined.fun <= values[best] else float(grid[best])

    def score(t: float) -> float:
        return reml_score(t, eigen.eigenvalues, rotated_y, rotated_x)

    # polish: the root of the analytic score is located to ~1e-12, function comparisons only to ~1e-8
    for half_width in (1e-4, 1e-2, 0.25):
        lower = max(log_delta - half_width, log_delta_bounds[0])
        upper = min(log_delta + half_width, log_delta_bounds[1])
        if score(lower) > 0 > score(upper):
            log_delta = float(optimize.brentq(score, lower, upper, xtol=1e-13, rtol=1e-14))
            break
    loglik = -negative(log_delta)

    delta = float(np.exp(log_delta))
    beta, xtwx, quadratic, _ = _gls_pieces(log_delta, eigen.eigenvalues, rotated_y, rotated_x)
    df = eigen.n - design.shape[1]
    sigma_g = quadratic / df
    sigma_e = delta * sigma_g
    h2 = 1.0 / (1.0 + delta)
    # observed information of the profile likelihood in t = log δ (central difference)
    step = 1e-5
    curvature = (score(log_delta - step) - score(log_delta + step)) / (2 * step)
    at_boundary = min(log_delta - log_delta_bounds[0], log_delta_bounds[1] - log_delta) < 1e-3
    h2_se = float(h2 * (1 - h2) / np.sqrt(curvature)) if curvature > 0 and not at_boundary else float("nan")
    beta_cov = sigma_g * np.linalg.inv(xtwx)
    return RemlFit(
        h2=h2,
        h2_se=h2_se,
        sigma_g=float(sigma_g),
        sigma_e=float(sigma_e),
        delta=delta,
        loglik=float(loglik),
        fixed_effects=beta,
        fixed_effects_se=np.sqrt(np.diag(beta_cov)),
        n_samples=eigen.n,
        n_covariates=design.shape[1] - 1,
    )


@dataclass
class BlupResult:
    """BLUP, cvBLUP and the pieces needed for SNP weights.

    Attributes (all shape (n,))
    ----------
    residual : r = y - Xβ̂
    blup : ĝ = H r
    cvblup : leave-one-out ĝ_i, (ĝ_i - H_ii r_i)/(1 - H_ii)
    hat_diagonal : H_ii
    weight_vector : α = (K + δI)⁻¹ r = σg² V⁻¹ r, so that ĝ = K α and SNP weights are Zᵀα / M
    """

    residual: np.ndarray
    blup: np.ndarray
    cvblup: np.ndarray
    hat_diagonal: np.ndarray
    weight_vector: np.ndarray


def blup_cvblup(
    eigen: EigenGRM, phenotype: np.ndarray, covariates: np.ndarray | None, fit: RemlFit
) -> BlupResult:
    """BLUP and cvBLUP at the fitted variance components (O(n²) after the eigendecomposition)."""
    phenotype = check_phenotype(phenotype, eigen.n)
    design = design_matrix(covariates, eigen.n)
    residual = phenotype - design @ fit.fixed_effects
    rotated = eigen.rotate(residual)
    shrink = eigen.eigenvalues / (eigen.eigenvalues + fit.delta)
    blup = eigen.unrotate(shrink * rotated)
    hat_diagonal = eigen.hat_diagonal(shrink)
    cvblup = (blup - hat_diagonal * residual) / (1.0 - hat_diagonal)
    weight_vector = eigen.unrotate(rotated / (eigen.eigenvalues + fit.delta))
    return BlupResult(
        residual=residual, blup=blup, cvblup=cvblup, hat_diagonal=hat_diagonal, weight_vector=weight_vector
    )
