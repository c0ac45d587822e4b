"""Linear polygenic-score models: C+T, ridge/GBLUP, elastic net / lasso, BayesR (variational).

Every model follows :mod:`deepprs.models.base`: hyper-parameters in ``__init__``;
``fit(X, y, *, covariates)`` on training samples only (screening, standardisation and tuning
inside); ``coef_`` per counted allele on the raw dosage scale, ``center_`` (training means),
``intercept_`` and ``covariate_coef_`` so that

    predict = (dosage - center_) @ coef_ + intercept_ + covariates @ covariate_coef_

Shared machinery: variants are standardised with training means/sds; covariates (with the
intercept) are unpenalised and handled by Frisch–Waugh–Lovell (phenotype and genotype columns
residualised on [1, covariates]); the fitted standardised effects are mapped back to the raw
dosage scale (coef = beta_std / sd).  For the logistic fits FWL does not hold, so the basis of
[1, covariates] stays in the design as unpenalised columns (the residualised genotype columns are
then only a reparametrisation of the same model) and ``intercept_``/``covariate_coef_`` are the
logistic MLE given the genetic score as offset.

C+T clumps like ``plink2 --clump`` (250 kb, r² 0.1, unphased hard-call r²; positions from a
``variant_table`` passed to ``fit``, else a variant-count window) — see :class:`ClumpThresholdPRS`.

Binary 0/1 targets (``predict`` returns the log-odds, the linear predictor, as the networks'
logits; ``coef_`` is then in log-odds per copy of the counted allele on the raw dosage scale):

* ``ridge``, ``enet`` and ``lasso`` (``task='auto'`` or ``'binary'``) fit **penalised logistic
  regression**.  enet/lasso follow glmnet: an outer IRLS (quadratic approximation of the binomial
  log-likelihood with weights p(1 - p)) around the same covariance-mode coordinate descent, along a
  warm-started lambda path from lambda_max (null-model gradient), with sequential strong rules
  and streamed KKT checks; the objective is ``-(1/n) loglik + lambda (alpha ||b||_1 +
  (1 - alpha)/2 ||b||^2)`` (scikit-learn ``LogisticRegression(C=1/(n lambda), l1_ratio=alpha)``).
  Ridge minimises ``-loglik + lambda/2 ||b||^2`` (``C = 1/lambda``) by Newton's method in the
  sample space (eigendecomposition of the n × n kernel once per inner fold when n <= m).  The
  intercept and covariates are unpenalised; inner CV chooses lambda by binomial deviance.
  ``task='regression'`` fits 0/1 by least squares instead (linear probability scale).
* ``ct`` and ``bayesr`` fit the score on the 0/1 scale, then a one-dimensional *logistic
  recalibration* ``logit P(y=1) = a + b * score + covariates @ c`` on the training samples sets
  ``coef_``/``intercept_``/``covariate_coef_`` on the log-odds scale.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import scipy.special
import torch

from deepprs.errors import InputError
from deepprs.models.base import (
    GenotypeInput,
    PRSModel,
    is_binary_target,
    n_samples_of,
    n_variants_of,
    register_model,
)
from deepprs.models.screening import (
    clump,
    covariate_basis,
    dense_columns,
    marginal_association,
    screen_variants,
    training_stats,
)
from deepprs.utils.runlog import current_run, estimate_memory

DEFAULT_P_GRID = (5e-8, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.2, 0.5, 1.0)
_BLOCK = 4096
_DENSE_LIMIT_BYTES = 1 << 30  # materialise the standardised matrix when it fits in 1 GiB (float64)


def _log(message: str) -> None:
    run = current_run()
    if run is not None:
        run.info(message)


def _check_y(X: GenotypeInput, y: np.ndarray, covariates: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    y = np.asarray(y, dtype=np.float64).ravel()
    n = n_samples_of(X)
    if y.shape[0] != n:
        raise InputError(f"phenotype has {y.shape[0]} values for {n} genotyped samples")
    if np.isnan(y).any():
        raise InputError("phenotype has missing values; drop those samples before fitting")
    if covariates is not None:
        covariates = np.asarray(covariates, dtype=np.float64).reshape(n, -1)
        if covariates.shape[1] == 0:
            covariates = None
    return y, covariates


def inner_folds(n: int, n_folds: int, seed: int | None) -> np.ndarray:
    """Random balanced fold labels 0..n_folds-1 for inner cross-validation."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_folds
    rng.shuffle(labels)
    return labels


def logistic_fit(
    design: np.ndarray,
    y: np.ndarray,
    *,
    offset: np.ndarray | None = None,
    max_iter: int = 100,
    ridge: float = 1e-8,
) -> np.ndarray:
    """Unpenalised logistic regression ``logit P(y=1) = offset + design @ coef`` by Newton-Raphson.

    A tiny ridge keeps the Hessian invertible under separation; steps are halved when the
    log-likelihood would decrease.

    Returns
    -------
    ndarray, shape (design.shape[1],)
    """
    y = np.asarray(y, dtype=np.float64)
    offset = np.zeros(len(y)) if offset is None else np.asarray(offset, dtype=np.float64)
    coef = np.zeros(design.shape[1])

    def loss(c: np.ndarray) -> float:
        eta = offset + design @ c
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta) + 0.5 * ridge * c @ c)

    current = loss(coef)
    for _ in range(max_iter):
        prob = scipy.special.expit(offset + design @ coef)
        weight = prob * (1 - prob)
        hessian = design.T @ (design * weight[:, None]) + ridge * np.eye(design.shape[1])
        step = np.linalg.solve(hessian, design.T @ (y - prob) - ridge * coef)
        t = 1.0
        while True:
            candidate = loss(coef + t * step)
            if candidate <= current + 1e-12 * (1.0 + abs(current)) or t < 1e-8:
                break
            t *= 0.5
        coef = coef + t * step
        current = candidate
        if np.max(np.abs(t * step)) < 1e-11:
            break
    return coef


def binomial_deviance(y: np.ndarray, eta: np.ndarray) -> float:
    """Mean binomial deviance ``2/n sum(log(1 + e^eta) - y eta)`` of 0/1 ``y`` at log-odds ``eta``."""
    return float(2.0 * np.mean(np.logaddexp(0.0, eta) - y * eta))


def resolve_task(task: str, y: np.ndarray, name: str) -> bool:
    """``True`` when the model should fit a binary (logistic) target.

    ``'auto'``: binary when ``y`` takes exactly the two values 0 and 1; ``'binary'`` requires
    that; ``'regression'``: least squares whatever the values.
    """
    if task == "auto":
        return bool(is_binary_target(y))
    if task == "binary":
        if not is_binary_target(y):
            raise InputError(f"{name}: task='binary' needs a 0/1 phenotype (0 = control, 1 = case)")
        return True
    if task == "regression":
        return False
    raise InputError(f"{name}: task must be 'auto', 'binary' or 'regression', got {task!r}")


class StandardisedColumns:
    """Standardised, covariate-residualised genotype columns of the training samples.

    ``columns(index)`` returns ``(Z[:, index] - Q Q^T Z[:, index])`` with Z the dosage
    standardised by training mean/sd (missing -> 0).  The full matrix is materialised once
    when it fits in 1 GiB; otherwise columns are unpacked from the genotypes on demand, so
    memory stays ~ n_samples × block.
    """

    def __init__(
        self,
        X: GenotypeInput,
        variants: np.ndarray,
        center: np.ndarray,
        scale: np.ndarray,
        basis: np.ndarray,
        *,
        rows: np.ndarray | None = None,
    ) -> None:
        self.X = X
        self.variants = np.asarray(variants, dtype=np.int64)
        self.center = center
        self.scale = scale
        self.basis = basis
        self.rows = rows
        self.n = n_samples_of(X) if rows is None else len(rows)
        self._dense: np.ndarray | None = None
        self._fits_in_memory = 8.0 * self.n * len(self.variants) <= _DENSE_LIMIT_BYTES

    @property
    def dense(self) -> np.ndarray | None:
        """The whole matrix (built on first use) when it fits in 1 GiB, else ``None``."""
        if self._dense is None and self._fits_in_memory:
            estimate_memory("standardised genotype matrix", 8.0 * self.n * len(self.variants))
            self._dense = self._build(np.arange(len(self.variants)))
        return self._dense

    @property
    def n_columns(self) -> int:
        return len(self.variants)

    def _build(self, local: np.ndarray) -> np.ndarray:
        out = np.empty((self.n, len(local)))
        for start in range(0, len(local), _BLOCK):
            part = local[start : start + _BLOCK]
            z = dense_columns(self.X, self.rows, self.variants[part], center=self.center, scale=self.scale)
            out[:, start : start + len(part)] = z - self.basis @ (self.basis.T @ z)
        return out

    def columns(self, local: np.ndarray) -> np.ndarray:
        """Columns ``local`` (positions within ``variants``), shape (n, len(local))."""
        local = np.asarray(local, dtype=np.int64)
        if self.dense is not None:
            return self.dense[:, local]
        return self._build(local)

    def iter_blocks(self, block: int = _BLOCK):
        for start in range(0, self.n_columns, block):
            local = np.arange(start, min(start + block, self.n_columns))
            yield local, self.columns(local)

    def transpose_dot(self, vectors: np.ndarray) -> np.ndarray:
        """Z^T @ vectors, streamed; vectors shape (n,) or (n, k)."""
        if self.dense is not None:
            return self.dense.T @ vectors
        out = np.empty((self.n_columns,) + vectors.shape[1:])
        for local, z in self.iter_blocks():
            out[local] = z.T @ vectors
        return out


class LinearPRS(PRSModel):
    """Shared fit scaffolding, prediction and persistence for the linear models."""

    is_linear = True

    # hooks ---------------------------------------------------------------------------
    def _fit_standardised(
        self,
        columns: StandardisedColumns,
        y_res: np.ndarray,
        *,
        X: GenotypeInput,
        y: np.ndarray,
        covariates: np.ndarray | None,
    ) -> np.ndarray:
        """Return beta on the standardised scale for ``columns.variants`` (shape (n_cols,))."""
        raise NotImplementedError

    def _screen(self, X: GenotypeInput, y: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
        top_k = getattr(self, "top_k", None)
        p_threshold = getattr(self, "p_threshold", None)
        clump_r2 = getattr(self, "screen_clump_r2", None)
        if top_k is None and p_threshold is None and clump_r2 is None:
            return np.arange(n_variants_of(X))
        selected = screen_variants(X, y, covariates=covariates, top_k=top_k, p_threshold=p_threshold, clump_r2=clump_r2)
        _log(f"{self.name}: {len(selected)} of {n_variants_of(X)} variants kept by pre-screening")
        return selected

    # contract ------------------------------------------------------------------------
    def fit(self, X: GenotypeInput, y: np.ndarray, *, covariates: np.ndarray | None = None) -> LinearPRS:
        y, covariates = _check_y(X, y, covariates)
        n, m = n_samples_of(X), n_variants_of(X)
        task = getattr(self, "task", None)
        if task is None:  # models without a logistic path: least squares + logistic recalibration
            self.is_binary_ = bool(is_binary_target(y))
            self._logistic = False
        else:
            self.is_binary_ = resolve_task(task, y, self.name)
            self._logistic = self.is_binary_
        self.n_features_in_ = m
        mean, sd = training_stats(X)
        selected = self._screen(X, y, covariates)
        basis = covariate_basis(covariates, n)
        y_res = y - basis @ (basis.T @ y)
        columns = StandardisedColumns(X, selected, mean, sd, basis)
        beta_std = self._fit_standardised(columns, y_res, X=X, y=y, covariates=covariates)
        coef = np.zeros(m)
        coef[selected] = beta_std / sd[selected]
        self.center_ = mean
        self.selected_ = selected
        score = self._raw_score(X, coef, mean)
        design = np.ones((n, 1)) if covariates is None else np.column_stack([np.ones(n), covariates])
        if self._logistic:
            # penalised logistic fit: the unpenalised part is the logistic MLE given the score
            gamma = logistic_fit(design, y, offset=score, ridge=0.0 if covariates is None else 1e-10)
            self.coef_ = coef
            self.intercept_ = float(gamma[0])
            self.covariate_coef_ = gamma[1:]
        elif self.is_binary_:
            gamma = logistic_fit(np.column_stack([design, score]), y)
            slope = gamma[-1]
            self.coef_ = coef * slope
            self.intercept_ = float(gamma[0])
            self.covariate_coef_ = gamma[1:-1]
            self.recalibration_slope_ = float(slope)
        else:
            gamma = np.linalg.lstsq(design, y - score, rcond=None)[0]
            self.coef_ = coef
            self.intercept_ = float(gamma[0])
            self.covariate_coef_ = gamma[1:]
        self.n_covariates_ = 0 if covariates is None else covariates.shape[1]
        return self

    @staticmethod
    def _raw_score(X: GenotypeInput, coef: np.ndarray, center: np.ndarray) -> np.ndarray:
        nonzero = np.flatnonzero(coef)
        score = np.zeros(n_samples_of(X))
        for start in range(0, len(nonzero), _BLOCK):
            part = nonzero[start : start + _BLOCK]
            z = dense_columns(X, None, part, center=center)
            score += z @ coef[part]
        return score

    def genetic_score(self, X: GenotypeInput) -> np.ndarray:
        """``(dosage - center_) @ coef_`` (no intercept, no covariates), shape (n_samples,)."""
        self.check_is_fitted()
        if n_variants_of(X) != len(self.coef_):
            raise InputError(f"{self.name}: genotypes have {n_variants_of(X)} variants, the model {len(self.coef_)}")
        return self._raw_score(X, self.coef_, self.center_)

    def predict(self, X: GenotypeInput, *, covariates: np.ndarray | None = None) -> np.ndarray:
        """Trait-scale (quantitative) or log-odds (binary) prediction, shape (n_samples,)."""
        score = self.genetic_score(X) + self.intercept_
        if self.n_covariates_:
            if covariates is None:
                raise InputError(f"{self.name}: model was fitted with {self.n_covariates_} covariates; pass them")
            covariates = np.asarray(covariates, dtype=np.float64).reshape(len(score), -1)
            if covariates.shape[1] != self.n_covariates_:
                raise InputError(f"{self.name}: expected {self.n_covariates_} covariates, got {covariates.shape[1]}")
            score = score + covariates @ self.covariate_coef_
        return score

    # persistence ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        self.check_is_fitted()
        state = {
            "coef": torch.tensor(np.array(self.coef_, dtype=np.float64)),
            "center": torch.tensor(np.array(self.center_, dtype=np.float64)),
            "covariate_coef": torch.tensor(np.array(self.covariate_coef_, dtype=np.float64).reshape(-1)),
        }
        state.update(self._extra_state())
        return state

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor], metadata: dict[str, Any]) -> LinearPRS:
        self.coef_ = state["coef"].numpy().astype(np.float64)
        self.center_ = state["center"].numpy().astype(np.float64)
        self.covariate_coef_ = state["covariate_coef"].numpy().astype(np.float64)
        self.intercept_ = float(metadata["intercept"])
        self.is_binary_ = bool(metadata.get("is_binary", False))
        self.n_covariates_ = int(metadata.get("n_covariates", len(self.covariate_coef_)))
        self.n_features_in_ = len(self.coef_)
        self.selected_ = np.flatnonzero(self.coef_)
        self._logistic = metadata.get("binary_method") == "penalised-logistic"
        for key, value in state.items():
            if key not in ("coef", "center", "covariate_coef"):
                setattr(self, f"{key}_", value.numpy().astype(np.float64))
        for key, value in metadata.get("fitted", {}).items():
            setattr(self, f"{key}_", value)
        return self

    def extra_metadata(self) -> dict[str, Any]:
        self.check_is_fitted()
        return {
            "intercept": float(self.intercept_),
            "is_binary": bool(self.is_binary_),
            "n_covariates": int(self.n_covariates_),
            "n_nonzero": int(np.count_nonzero(self.coef_)),
            "scale": "log-odds" if self.is_binary_ else "trait",
            "binary_method": (
                None
                if not self.is_binary_
                else ("penalised-logistic" if getattr(self, "_logistic", False) else "logistic-recalibration")
            ),
            "fitted": self._fitted_scalars(),
        }

    def _fitted_scalars(self) -> dict[str, Any]:
        return {}


# ---------------------------------------------------------------------------------------
# ridge / GBLUP
# ---------------------------------------------------------------------------------------


def ridge_h2_grid(n_variants: int, h2_grid: tuple[float, ...] | list[float]) -> np.ndarray:
    """GBLUP-equivalent penalties lambda = M (1 - h2) / h2 on standardised genotypes."""
    h2 = np.asarray(h2_grid, dtype=np.float64)
    return n_variants * (1.0 - h2) / h2


class RidgeSolver:
    """All ridge solutions ``(Z^T Z + lambda I)^-1 Z^T y`` from one eigendecomposition.

    Uses the n × n kernel ``Z Z^T`` when n <= m, else the m × m Gram ``Z^T Z``.
    """

    def __init__(self, z: np.ndarray, y: np.ndarray) -> None:
        n, m = z.shape
        self.kernel_mode = n <= m
        self.yy = float(y @ y)
        if self.kernel_mode:
            evals, evecs = scipy.linalg.eigh(z @ z.T, driver="evd", check_finite=False)
            self.evals = np.clip(evals, 0.0, None)
            self.evecs = evecs
            self.proj = evecs.T @ y  # U^T y
        else:
            evals, evecs = scipy.linalg.eigh(z.T @ z, driver="evd", check_finite=False)
            self.evals = np.clip(evals, 0.0, None)
            self.evecs = evecs
            self.proj = evecs.T @ (z.T @ y)  # V^T Z^T y
        self.z = z

    def coef(self, lam: float) -> np.ndarray:
        shrink = 1.0 / (self.evals + lam)
        if self.kernel_mode:
            return self.z.T @ (self.evecs @ (shrink * self.proj))
        return self.evecs @ (shrink * self.proj)

    def gcv(self, lambdas: np.ndarray, n_eff: int) -> np.ndarray:
        """Generalised CV score n * RSS / (n_eff - tr H)^2 for each lambda."""
        out = np.empty(len(lambdas))
        for i, lam in enumerate(lambdas):
            ratio = self.evals / (self.evals + lam)
            if self.kernel_mode:
                rss = float(np.sum(((1 - ratio) * self.proj) ** 2) + self.yy - np.sum(self.proj**2))
            else:
                safe = np.where(self.evals > 0, self.evals, 1.0)
                rss = float(
                    self.yy
                    - 2 * np.sum(self.proj**2 / (self.evals + lam))
                    + np.sum(np.where(self.evals > 0, self.proj**2 * safe / (self.evals + lam) ** 2, 0.0))
                )
            out[i] = n_eff * rss / max(n_eff - ratio.sum(), 1e-8) ** 2
        return out


def logistic_ridge_newton(
    unpenalised: np.ndarray,
    features: np.ndarray,
    y: np.ndarray,
    lam: float,
    *,
    start: tuple[np.ndarray, np.ndarray] | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ``-loglik(y; U c + F theta) + lam/2 ||theta||^2`` by damped Newton-Raphson.

    Parameters
    ----------
    unpenalised : ndarray, shape (n, k)
        Intercept/covariate basis U (unpenalised).
    features : ndarray, shape (n, r)
        Penalised design F (standardised genotypes, or their sample-space factor U_K S^{1/2}).
    y : ndarray, shape (n,)
        0/1 target.
    start
        Warm start ``(c, theta)`` (e.g. the solution at the previous, larger lambda).

    Returns
    -------
    c : ndarray, shape (k,)
    theta : ndarray, shape (r,)

    Cost per iteration O(n (k + r)^2 + (k + r)^3).
    """
    k, r = unpenalised.shape[1], features.shape[1]
    design = np.column_stack([unpenalised, features])
    penalty = np.r_[np.zeros(k), np.full(r, lam)]
    coef = np.zeros(k + r) if start is None else np.r_[start[0], start[1]]

    def objective(c: np.ndarray) -> float:
        eta = design @ c
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta) + 0.5 * np.sum(penalty * c * c))

    current = objective(coef)
    for _ in range(max_iter):
        prob = scipy.special.expit(design @ coef)
        weight = prob * (1.0 - prob)
        gradient = design.T @ (y - prob) - penalty * coef
        hessian = design.T @ (design * weight[:, None])
        hessian[np.diag_indices_from(hessian)] += penalty + 1e-12
        step = scipy.linalg.solve(hessian, gradient, assume_a="pos", check_finite=False)
        t = 1.0
        while True:
            candidate = objective(coef + t * step)
            if candidate <= current + 1e-12 * (1.0 + abs(current)) or t < 1e-8:
                break
            t *= 0.5
        coef = coef + t * step
        current = candidate
        if np.max(np.abs(t * step)) < tol:
            break
    return coef[:k], coef[k:]


class LogisticRidgeSpace:
    """Penalised-logistic ridge in the cheaper of the sample or variant space.

    With n <= m the n × n kernel ``K = Z Z^T`` is formed once (O(n^2 m)); for a set of training rows
    ``K_tt = U S U^T`` gives the r-column design ``F = U S^{1/2}`` with ``Z_t b = F theta`` and
    ``||b||^2 = ||theta||^2`` for ``b = Z_t^T U S^{-1/2} theta`` (the optimum lies in the row space
    of ``Z_t``), so each Newton step costs O(n r^2) instead of O(n m^2).  With n > m the standardised
    matrix itself is the design.
    """

    def __init__(self, z: np.ndarray) -> None:
        self.z = z
        self.kernel_mode = z.shape[0] <= z.shape[1]
        self.kernel = z @ z.T if self.kernel_mode else None

    def design(self, rows: np.ndarray) -> tuple[np.ndarray, Any]:
        """Penalised design for ``rows`` and the state needed to map theta back."""
        if not self.kernel_mode:
            return self.z[rows], None
        evals, evecs = scipy.linalg.eigh(self.kernel[np.ix_(rows, rows)], driver="evd", check_finite=False)
        keep = evals > 1e-10 * max(float(evals.max()), 1e-300)
        evals, evecs = evals[keep], evecs[:, keep]
        root = np.sqrt(evals)
        return evecs * root, (evecs, root)

    def predict(self, rows: np.ndarray, state: Any, theta: np.ndarray, other: np.ndarray) -> np.ndarray:
        """``Z[other] @ b`` for the solution ``theta`` fitted on ``rows``."""
        if not self.kernel_mode:
            return self.z[other] @ theta
        evecs, root = state
        return self.kernel[np.ix_(other, rows)] @ (evecs @ (theta / root))

    def coef(self, rows: np.ndarray, state: Any, theta: np.ndarray) -> np.ndarray:
        """Standardised effects b (m,) of the solution fitted on ``rows``."""
        if not self.kernel_mode:
            return theta
        evecs, root = state
        return self.z[rows].T @ (evecs @ (theta / root))


def logistic_ridge_path(
    space: LogisticRidgeSpace,
    unpenalised: np.ndarray,
    y: np.ndarray,
    lambdas: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    test: np.ndarray | None = None,
    tol: float = 1e-10,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], Any, np.ndarray]:
    """Warm-started Newton fits for decreasing ``lambdas`` on ``rows``.

    Returns the list of ``(c, theta)``, the design state and, when ``test`` is given, the mean
    binomial deviance of each lambda on the ``test`` rows (else an empty array).
    """
    n = len(y)
    rows = np.arange(n) if rows is None else rows
    features, state = space.design(rows)
    solutions: list[tuple[np.ndarray, np.ndarray]] = []
    deviance = []
    start = None
    for lam in lambdas:
        start = logistic_ridge_newton(unpenalised[rows], features, y[rows], float(lam), start=start, tol=tol)
        solutions.append(start)
        if test is not None:
            eta = unpenalised[test] @ start[0] + space.predict(rows, state, start[1], test)
            deviance.append(binomial_deviance(y[test], eta))
    return solutions, state, np.asarray(deviance)


@register_model("ridge")
class RidgePRS(LinearPRS):
    """Ridge regression on standardised genotypes, GBLUP-equivalent.

    Parameters
    ----------
    lambdas
        Penalties on the standardised scale; default the GBLUP grid ``M (1 - h2) / h2`` over
        ``h2_grid``.
    cv
        ``"gcv"`` (generalised CV, closed form for all lambdas from one decomposition), ``"reml"``
        (GBLUP: lambda = M (1 - h2) / h2 with h2 from REML on the training samples' GRM of the
        standardised genotypes, covariates as fixed effects; ``reml_h2_``) or an int K for K-fold
        inner CV.
    top_k, p_threshold, screen_clump_r2
        Optional marginal-association pre-screening inside ``fit``.
    task
        ``'auto'`` (binary when y is 0/1), ``'binary'`` or ``'regression'``.  Binary traits fit
        penalised logistic regression ``-loglik + lambda/2 ||b||^2`` on the standardised genotypes
        (intercept and covariates unpenalised; scikit-learn ``C = 1/lambda``); the default grid
        is the GBLUP grid times ``ybar (1 - ybar)`` (the logistic weight that maps the 0/1-scale
        penalty to the log-odds scale) and lambda is chosen by K-fold inner CV on the binomial
        deviance (K = ``cv``, or 5 when ``cv`` is ``'gcv'`` or ``'reml'``).  ``coef_`` is then log-odds per copy of the
        counted allele.
    """

    def __init__(
        self,
        *,
        lambdas: list[float] | None = None,
        h2_grid: list[float] | tuple[float, ...] = (
            0.01,
            0.02,
            0.05,
            0.1,
            0.2,
            0.3,
            0.4,
            0.5,
            0.6,
            0.7,
            0.8,
            0.9,
            0.95,
            0.99,
        ),
        cv: str | int = "gcv",
        top_k: int | None = None,
        p_threshold: float | None = None,
        screen_clump_r2: float | None = None,
        random_state: int | None = 0,
        task: str = "auto",
    ) -> None:
        self.lambdas = lambdas
        self.h2_grid = list(h2_grid)
        self.cv = cv
        self.top_k = top_k
        self.p_threshold = p_threshold
        self.screen_clump_r2 = screen_clump_r2
        self.random_state = random_state
        self.task = task

    def _fit_standardised(self, columns, y_res, *, X, y, covariates):
        m = columns.n_columns
        lambdas = (
            np.asarray(self.lambdas, dtype=np.float64) if self.lambdas is not None else ridge_h2_grid(m, self.h2_grid)
        )
        z = columns.columns(np.arange(m)) if columns.dense is None else columns.dense
        estimate_memory("ridge decomposition", 8.0 * min(z.shape) ** 2)
        if self._logistic:
            if self.lambdas is None:
                lambdas = lambdas * float(y.mean() * (1.0 - y.mean()))
            return self._fit_logistic(z, columns.basis, y, lambdas)
        n_eff = z.shape[0] - columns.basis.shape[1]
        if len(lambdas) == 1:
            best = 0
            solver = RidgeSolver(z, y_res)
        elif self.cv == "gcv":
            solver = RidgeSolver(z, y_res)
            scores = solver.gcv(lambdas, n_eff)
            best = int(np.argmin(scores))
            self.cv_scores_ = scores
        elif self.cv == "reml":
            # GBLUP's penalty from REML: y = Zb + e, b ~ N(0, sigma_g^2 / m) -> lambda = m (1 - h2) / h2.
            # z is residualised on the covariate basis Q (first column constant); REML depends on the
            # data only through error contrasts, so the projected GRM with [1, Q[:, 1:]] as fixed
            # effects gives the same h2 as the unprojected one.
            from deepprs.lmm.reml import EigenGRM, fit_reml

            eigen = EigenGRM.from_grm(torch.from_numpy(z @ z.T / m))
            extra = columns.basis[:, 1:] if columns.basis.shape[1] > 1 else None
            self.reml_h2_ = float(fit_reml(eigen, y_res, extra).h2)
            h2 = float(np.clip(self.reml_h2_, 1e-4, 1 - 1e-4))
            lambdas = np.array([m * (1.0 - h2) / h2])
            best = 0
            solver = RidgeSolver(z, y_res)
        else:
            folds = inner_folds(len(y_res), int(self.cv), self.random_state)
            sse = np.zeros(len(lambdas))
            for fold in range(int(self.cv)):
                train, test = folds != fold, folds == fold
                inner = RidgeSolver(z[train], y_res[train])
                for i, lam in enumerate(lambdas):
                    sse[i] += float(np.sum((y_res[test] - z[test] @ inner.coef(lam)) ** 2))
            best = int(np.argmin(sse))
            self.cv_scores_ = sse / len(y_res)
            solver = RidgeSolver(z, y_res)
        self.lambda_ = float(lambdas[best])
        self.h2_equivalent_ = float(m / (m + self.lambda_))
        _log(f"ridge: lambda {self.lambda_:.4g} (h2-equivalent {self.h2_equivalent_:.3f}) on {m} variants")
        return solver.coef(self.lambda_)

    def _fit_logistic(self, z: np.ndarray, basis: np.ndarray, y: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
        """Penalised logistic ridge; lambda by K-fold inner CV on the binomial deviance."""
        n, m = z.shape
        space = LogisticRidgeSpace(z)
        order = np.argsort(-lambdas, kind="stable")  # decreasing: warm starts along the path
        if len(lambdas) == 1:
            best = 0
        else:
            n_folds = 5 if self.cv in ("gcv", "reml") else int(self.cv)
            folds = inner_folds(n, n_folds, self.random_state)
            deviance = np.zeros(len(lambdas))
            for fold in range(n_folds):
                train, test = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
                _, _, fold_deviance = logistic_ridge_path(space, basis, y, lambdas[order], rows=train, test=test)
                deviance[order] += fold_deviance * len(test) / n
            best = int(np.argmin(deviance))
            self.cv_scores_ = deviance
        self.lambda_ = float(lambdas[best])
        path = lambdas[order][: int(np.flatnonzero(order == best)[0]) + 1]
        rows = np.arange(n)
        solutions, state, _ = logistic_ridge_path(space, basis, y, path, rows=rows)
        weight = float(y.mean() * (1.0 - y.mean()))
        self.h2_equivalent_ = float(m / (m + self.lambda_ / weight))
        _log(
            f"ridge (logistic): lambda {self.lambda_:.4g} (0/1-scale h2-equivalent {self.h2_equivalent_:.3f}) "
            f"on {m} variants, {'kernel' if space.kernel_mode else 'variant'}-space Newton"
        )
        return space.coef(rows, state, solutions[-1][1])

    def _fitted_scalars(self):
        scalars = {"lambda": self.lambda_, "h2_equivalent": self.h2_equivalent_}
        if hasattr(self, "reml_h2_"):
            scalars["reml_h2"] = self.reml_h2_
        return scalars


# ---------------------------------------------------------------------------------------
# elastic net / lasso: coordinate descent on a penalty path with strong rules
# ---------------------------------------------------------------------------------------


def _soft(value: float, threshold: float) -> float:
    if value > threshold:
        return value - threshold
    if value < -threshold:
        return value + threshold
    return 0.0


def enet_coordinate_descent(
    gram: np.ndarray,
    grad0: np.ndarray,
    beta: np.ndarray,
    lam: float,
    alpha: float,
    *,
    tol: float = 1e-7,
    max_sweeps: int = 10_000,
) -> np.ndarray:
    """Covariance-mode cyclic coordinate descent for the elastic net on an active set.

    Minimises ``1/(2n) ||y - Z b||^2 + lam (alpha ||b||_1 + (1 - alpha)/2 ||b||^2)`` where
    ``gram = Z^T Z / n`` (a × a) and ``grad0 = Z^T y / n`` (a,), warm-started at ``beta``.
    Alternates full sweeps with sweeps over the non-zero coordinates (glmnet's active cycling).
    """
    # gradient-like vector q = Z^T r / n with r = y - Z beta
    q = grad0 - gram @ beta
    diag = np.diag(gram).copy()
    diag_list = diag.tolist()
    sqrt_diag = np.sqrt(np.clip(diag, 0, None)).tolist()
    beta_list = beta.tolist()
    l1 = lam * alpha
    l2 = lam * (1.0 - alpha)
    full = True
    for _ in range(max_sweeps):
        coords = range(len(beta_list)) if full else [j for j, b in enumerate(beta_list) if b != 0.0]
        max_change = 0.0
        for j in coords:
            d_j = diag_list[j]
            if d_j <= 0:
                continue
            old = beta_list[j]
            new = _soft(float(q[j]) + d_j * old, l1) / (d_j + l2)
            if new != old:
                delta = new - old
                beta_list[j] = new
                q -= gram[j] * delta  # gram is symmetric: row j is contiguous
                change = abs(delta) * sqrt_diag[j]
                if change > max_change:
                    max_change = change
        if max_change < tol:
            if full:
                break
            full = True
        else:
            full = False
    return np.asarray(beta_list)


def _carry_over(index: np.ndarray, beta: np.ndarray, working: np.ndarray) -> np.ndarray:
    """Warm start on the sorted ``working`` set: ``beta`` where its (sorted) ``index`` is kept, else 0."""
    warm = np.zeros(len(working))
    if len(index):
        position = np.minimum(np.searchsorted(working, index), len(working) - 1)
        found = working[position] == index
        warm[position[found]] = beta[found]
    return warm


def _screened_path(
    columns: StandardisedColumns,
    lambdas: np.ndarray,
    alpha: float,
    *,
    rows: np.ndarray | None,
    n: int,
    start_residual: np.ndarray,
    solve: Callable[[np.ndarray, np.ndarray, float], tuple[np.ndarray, np.ndarray, Any]],
    test_loss: Callable[[np.ndarray, np.ndarray, Any], float] | None,
    max_active: int | None,
    patience: int | None,
) -> tuple[list[tuple[np.ndarray, np.ndarray, Any]], list[float]]:
    """Warm-started penalty path with sequential strong rules and streamed KKT checks (snpnet-style).

    The one driver behind :func:`enet_path` (least squares) and :func:`logistic_enet_path`. At each
    lambda the working set is the previous non-zeros plus the strong-rule survivors
    ``|g_j| > alpha (2 lambda - lambda_prev)``; ``solve(z_work, warm, lambda)`` fits it and returns
    ``(beta, residual, state)``, the loss gradient ``g = Z^T residual / n`` is streamed over every
    column, and variables outside the working set with ``|g_j| > lambda alpha`` join it until none
    violates the KKT conditions. ``test_loss(index, beta, state)`` scores each lambda; the path stops
    after ``patience`` lambdas without improvement (snpnet's early stopping) or at ``max_active``.

    Returns
    -------
    path : list of (active_index, beta_active, state) per lambda fitted (non-zeros only)
    test_losses : list of float (empty without ``test_loss``)
    """
    m = columns.n_columns

    def block_grad(residual: np.ndarray) -> np.ndarray:
        # rows outside the fitting set get residual 0, so one streamed Z^T r covers them
        if rows is None:
            return columns.transpose_dot(residual) / n
        full = np.zeros(columns.n)
        full[rows] = residual
        return columns.transpose_dot(full) / n

    grad = block_grad(start_residual)
    active = np.zeros(0, dtype=np.int64)
    beta_active = np.zeros(0)
    path: list[tuple[np.ndarray, np.ndarray, Any]] = []
    test_losses: list[float] = []
    best, since_best = np.inf, 0
    prev_lam = lambdas[0]
    for lam in lambdas:
        strong = np.flatnonzero(np.abs(grad) > alpha * (2 * lam - prev_lam))
        working = np.union1d(active[beta_active != 0], strong)
        warm = _carry_over(active, beta_active, working)
        while True:
            z_work = columns.columns(working)
            if rows is not None:
                z_work = z_work[rows]
            beta_work, residual, state = solve(z_work, warm, float(lam))
            grad = block_grad(residual)
            outside = np.ones(m, dtype=bool)
            outside[working] = False
            violators = np.flatnonzero(outside & (np.abs(grad) > lam * alpha * (1 + 1e-6)))
            if violators.size == 0:
                break
            enlarged = np.union1d(working, violators)
            warm = _carry_over(working, beta_work, enlarged)  # restart from the current solution
            working = enlarged
        active, beta_active = working, beta_work
        keep = beta_active != 0
        path.append((active[keep].copy(), beta_active[keep].copy(), state))
        prev_lam = lam
        if test_loss is not None:
            loss = test_loss(active[keep], beta_active[keep], state)
            test_losses.append(loss)
            if loss < best - 1e-12:
                best, since_best = loss, 0
            else:
                since_best += 1
            if patience is not None and since_best >= patience:
                break
        if max_active is not None and keep.sum() >= max_active:
            break
    return path, test_losses


def enet_path(
    columns: StandardisedColumns,
    y: np.ndarray,
    lambdas: np.ndarray,
    alpha: float,
    *,
    rows: np.ndarray | None = None,
    tol: float = 1e-7,
    max_active: int | None = None,
    stop_test: tuple[np.ndarray, np.ndarray] | None = None,
    patience: int | None = None,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[float]]:
    """Elastic-net path with sequential strong rules and streamed KKT checks (snpnet-style).

    Parameters
    ----------
    columns
        Standardised residualised columns (all candidate variants).
    y : ndarray, shape (n_rows,)
        Residualised phenotype of ``rows`` (or of all columns' rows).
    rows
        Subset of rows to fit on (inner-CV training part); ``None`` = all.
    stop_test
        ``(test_rows, y_test)`` to score each lambda; the path stops early after ``patience``
        consecutive lambdas without improvement of the test MSE (snpnet's early stopping).

    Returns
    -------
    path : list of (active_index, beta_active) per lambda fitted
    test_mse : list of float (empty without ``stop_test``)
    """
    n = len(y)

    def solve(z_work: np.ndarray, warm: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, None]:
        beta = enet_coordinate_descent(z_work.T @ z_work / n, z_work.T @ y / n, warm, lam, alpha, tol=tol)
        return beta, y - z_work @ beta, None

    def test_loss(index: np.ndarray, beta: np.ndarray, _state: None) -> float:
        test_rows, y_test = stop_test
        fitted = columns.columns(index)[test_rows] @ beta if len(index) else 0.0
        return float(np.mean((y_test - fitted) ** 2))

    path, test_mse = _screened_path(
        columns,
        lambdas,
        alpha,
        rows=rows,
        n=n,
        start_residual=y,
        solve=solve,
        test_loss=None if stop_test is None else test_loss,
        max_active=max_active,
        patience=patience,
    )
    return [(index, beta) for index, beta, _ in path], test_mse


def _enet_objective(
    unpenalised: np.ndarray, z: np.ndarray, y: np.ndarray, c: np.ndarray, beta: np.ndarray, lam: float, alpha: float
) -> float:
    eta = unpenalised @ c + z @ beta
    loss = float(np.mean(np.logaddexp(0.0, eta) - y * eta))
    return loss + lam * (alpha * float(np.abs(beta).sum()) + 0.5 * (1.0 - alpha) * float(beta @ beta))


def logistic_enet_irls(
    unpenalised: np.ndarray,
    z: np.ndarray,
    y: np.ndarray,
    c: np.ndarray,
    beta: np.ndarray,
    lam: float,
    alpha: float,
    *,
    tol: float = 1e-7,
    max_iter: int = 100,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Penalised logistic regression on a working set by glmnet's IRLS + coordinate descent.

    Minimises ``-(1/n) loglik(y; U c + Z b) + lam (alpha ||b||_1 + (1 - alpha)/2 ||b||^2)``.  Each
    outer step forms the quadratic approximation at the current fit (weights ``w = p (1 - p)``,
    working response ``eta + (y - p) / w``), profiles out the unpenalised ``c`` by weighted
    projection, and solves the weighted elastic net by :func:`enet_coordinate_descent`
    (covariance mode, warm-started); the step is halved while the penalised objective would rise
    (a proximal-Newton line search, so the iteration cannot diverge).

    Parameters
    ----------
    unpenalised : ndarray, shape (n, k)
    z : ndarray, shape (n, a)
        Standardised genotype columns of the working set.
    c, beta
        Warm start, shapes (k,) and (a,).

    Returns
    -------
    c, beta, n_outer
    """
    n = len(y)
    current = _enet_objective(unpenalised, z, y, c, beta, lam, alpha)
    n_outer = 0
    for n_outer in range(1, max_iter + 1):  # noqa: B007  (reported)
        eta = unpenalised @ c + z @ beta
        prob = scipy.special.expit(eta)
        weight = np.maximum(prob * (1.0 - prob), 1e-10)
        root = np.sqrt(weight)
        working = eta + (y - prob) / weight
        u_w = unpenalised * root[:, None]
        q_w, r_w = np.linalg.qr(u_w)
        z_w = z * root[:, None]
        z_w -= q_w @ (q_w.T @ z_w)
        target = working * root
        target_res = target - q_w @ (q_w.T @ target)
        gram = z_w.T @ z_w / n
        beta_new = enet_coordinate_descent(gram, z_w.T @ target_res / n, beta.copy(), lam, alpha, tol=tol * 0.1)
        c_new = scipy.linalg.solve_triangular(r_w, q_w.T @ ((working - z @ beta_new) * root), check_finite=False)
        step_c, step_beta = c_new - c, beta_new - beta
        t = 1.0
        while True:
            candidate = _enet_objective(unpenalised, z, y, c + t * step_c, beta + t * step_beta, lam, alpha)
            if candidate <= current + 1e-13 * (1.0 + abs(current)) or t < 1e-6:
                break
            t *= 0.5
        c, beta = c + t * step_c, beta + t * step_beta
        change = t * np.max(np.abs(unpenalised @ step_c + z @ step_beta), initial=0.0)
        current = candidate
        if change < tol:
            break
    return c, beta, n_outer


def logistic_enet_path(
    columns: StandardisedColumns,
    y: np.ndarray,
    lambdas: np.ndarray,
    alpha: float,
    *,
    rows: np.ndarray | None = None,
    tol: float = 1e-7,
    max_active: int | None = None,
    stop_test: tuple[np.ndarray, np.ndarray] | None = None,
    patience: int | None = None,
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], list[float]]:
    """Penalised-logistic elastic-net path (glmnet IRLS) with strong rules and streamed KKT checks.

    As :func:`enet_path` but for a 0/1 ``y`` (of ``rows``): the unpenalised part is the
    covariate basis ``columns.basis`` (intercept + covariates), lambda_max-style screening uses the
    gradient ``Z^T (y - p) / n`` of the binomial log-likelihood, a variable outside the working
    set violates KKT when ``|Z_j^T (y - p)| / n > lambda alpha``, and ``stop_test`` scores each
    lambda by the mean binomial deviance on the test rows.

    Returns
    -------
    path : list of (active_index, beta_active, c) per lambda fitted (c: coefficients on the basis)
    test_deviance : list of float (empty without ``stop_test``)
    """
    n = len(y)
    unpenalised = columns.basis if rows is None else columns.basis[rows]
    c = logistic_fit(unpenalised, y, ridge=1e-10)

    def solve(z_work: np.ndarray, warm: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nonlocal c  # the unpenalised coefficients carry over as the next fit's warm start
        c, beta, _ = logistic_enet_irls(unpenalised, z_work, y, c, warm, lam, alpha, tol=tol)
        return beta, y - scipy.special.expit(unpenalised @ c + z_work @ beta), c.copy()

    def test_loss(index: np.ndarray, beta: np.ndarray, basis_coef: np.ndarray) -> float:
        test_rows, y_test = stop_test
        eta = columns.basis[test_rows] @ basis_coef
        if len(index):
            eta = eta + columns.columns(index)[test_rows] @ beta
        return binomial_deviance(y_test, eta)

    return _screened_path(
        columns,
        lambdas,
        alpha,
        rows=rows,
        n=n,
        start_residual=y - scipy.special.expit(unpenalised @ c),
        solve=solve,
        test_loss=None if stop_test is None else test_loss,
        max_active=max_active,
        patience=patience,
    )


@register_model("enet")
class ElasticNetPRS(LinearPRS):
    """Elastic net on standardised genotypes along a penalty path (snpnet-style).

    Objective (glmnet / scikit-learn): ``1/(2n) ||y - Z b||^2 + lambda (alpha ||b||_1 +
    (1 - alpha)/2 ||b||^2)`` with covariates unpenalised.

    Parameters
    ----------
    alpha
        Mixing (1 = lasso); scikit-learn's ``l1_ratio``.
    lambdas
        Explicit penalty(s) (scikit-learn's ``alpha``); default a log path of ``n_lambdas`` from
        lambda_max down to ``lambda_min_ratio * lambda_max``.
    cv
        K for inner K-fold CV of lambda (the path is stopped early on each fold after
        ``patience`` lambdas without improvement); 1 = a single validation split of
        ``validation_fraction``.
    max_active
        Stop the path once this many variants are active.
    task
        ``'auto'`` (binary when y is 0/1), ``'binary'`` or ``'regression'``.  Binary traits fit
        penalised logistic regression ``-(1/n) loglik + lambda (alpha ||b||_1 + (1 - alpha)/2
        ||b||^2)`` (glmnet's IRLS + coordinate descent, :func:`logistic_enet_path`; scikit-learn
        ``LogisticRegression(C=1/(n lambda), l1_ratio=alpha)``), lambda_max from the null-model
        gradient, inner CV (and early stopping) on the mean binomial deviance.  ``coef_`` is then
        log-odds per copy of the counted allele.
    """

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        lambdas: list[float] | None = None,
        n_lambdas: int = 40,
        lambda_min_ratio: float = 0.01,
        cv: int = 3,
        validation_fraction: float = 0.2,
        patience: int = 3,
        max_active: int | None = None,
        tol: float = 1e-7,
        top_k: int | None = None,
        p_threshold: float | None = None,
        screen_clump_r2: float | None = None,
        random_state: int | None = 0,
        task: str = "auto",
    ) -> None:
        self.task = task
        self.alpha = alpha
        self.lambdas = lambdas
        self.n_lambdas = n_lambdas
        self.lambda_min_ratio = lambda_min_ratio
        self.cv = cv
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.max_active = max_active
        self.tol = tol
        self.top_k = top_k
        self.p_threshold = p_threshold
        self.screen_clump_r2 = screen_clump_r2
        self.random_state = random_state

    def _lambda_path(self, columns: StandardisedColumns, y_res: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.lambdas is not None:
            return np.sort(np.asarray(self.lambdas, dtype=np.float64))[::-1]
        if self._logistic:
            # null-model (intercept + covariates) gradient of the binomial log-likelihood
            null = logistic_fit(columns.basis, y, ridge=1e-10)
            grad = columns.transpose_dot(y - scipy.special.expit(columns.basis @ null)) / len(y)
        else:
            grad = columns.transpose_dot(y_res) / len(y_res)
        lam_max = float(np.max(np.abs(grad))) / max(self.alpha, 1e-3)
        return np.geomspace(lam_max, lam_max * self.lambda_min_ratio, self.n_lambdas)

    def _path(self, columns, target, lambdas, **kwargs):
        if self._logistic:
            return logistic_enet_path(columns, target, lambdas, self.alpha, **kwargs)
        return enet_path(columns, target, lambdas, self.alpha, **kwargs)

    def _fit_standardised(self, columns, y_res, *, X, y, covariates):
        if not 0.0 < self.alpha <= 1.0:
            raise InputError(f"{self.name}: alpha must lie in (0, 1], got {self.alpha}")
        lambdas = self._lambda_path(columns, y_res, y)
        target = y if self._logistic else y_res  # 0/1 for the logistic path (basis unpenalised)
        n = len(y_res)
        if len(lambdas) > 1:
            if int(self.cv) > 1:
                folds = inner_folds(n, int(self.cv), self.random_state)
                splits = [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(int(self.cv))]
            else:
                rng = np.random.default_rng(self.random_state)
                order = rng.permutation(n)
                n_valid = max(1, int(round(self.validation_fraction * n)))
                splits = [(np.sort(order[n_valid:]), np.sort(order[:n_valid]))]
            loss = np.full((len(splits), len(lambdas)), np.nan)
            for s, (train, test) in enumerate(splits):
                _, fold_loss = self._path(
                    columns,
                    target[train],
                    lambdas,
                    rows=train,
                    tol=self.tol,
                    max_active=self.max_active,
                    stop_test=(test, target[test]),
                    patience=self.patience,
                )
                loss[s, : len(fold_loss)] = fold_loss
                # lambdas never reached: carry the last value (the path had stopped improving)
                if len(fold_loss) < len(lambdas):
                    loss[s, len(fold_loss) :] = fold_loss[-1] if fold_loss else np.nan
            mean_loss = np.nanmean(loss, axis=0)
            best = int(np.nanargmin(mean_loss))
            if self._logistic:
                self.cv_deviance_ = mean_loss
            else:
                self.cv_mse_ = mean_loss
            lambdas_fit = lambdas[: best + 1]
        else:
            best = 0
            lambdas_fit = lambdas
        path, _ = self._path(columns, target, lambdas_fit, tol=self.tol)
        active, beta_active = path[-1][0], path[-1][1]
        self.lambda_ = float(lambdas_fit[-1])
        self.lambda_path_ = lambdas
        beta = np.zeros(columns.n_columns)
        beta[active] = beta_active
        _log(
            f"{self.name}{' (logistic)' if self._logistic else ''}: lambda {self.lambda_:.4g} "
            f"({best + 1}/{len(lambdas)} on the path), {len(active)} active variants"
        )
        return beta

    def _fitted_scalars(self):
        return {"lambda": self.lambda_}


@register_model("lasso")
class LassoPRS(ElasticNetPRS):
    """Lasso: :class:`ElasticNetPRS` with ``alpha = 1``."""

    def __init__(
        self,
        *,
        lambdas: list[float] | None = None,
        n_lambdas: int = 40,
        lambda_min_ratio: float = 0.01,
        cv: int = 3,
        validation_fraction: float = 0.2,
        patience: int = 3,
        max_active: int | None = None,
        tol: float = 1e-7,
        top_k: int | None = None,
        p_threshold: float | None = None,
        screen_clump_r2: float | None = None,
        random_state: int | None = 0,
        task: str = "auto",
    ) -> None:
        super().__init__(
            alpha=1.0,
            task=task,
            lambdas=lambdas,
            n_lambdas=n_lambdas,
            lambda_min_ratio=lambda_min_ratio,
            cv=cv,
            validation_fraction=validation_fraction,
            patience=patience,
            max_active=max_active,
            tol=tol,
            top_k=top_k,
            p_threshold=p_threshold,
            screen_clump_r2=screen_clump_r2,
            random_state=random_state,
        )

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        params.pop("alpha", None)
        return params


# ---------------------------------------------------------------------------------------
# C+T
# ---------------------------------------------------------------------------------------


@register_model("ct")
class ClumpThresholdPRS(LinearPRS):
    """Clumping + thresholding.

    Marginal association in the training samples -> greedy PLINK-style clumping -> keep
    p < threshold; the threshold (and, when ``clump_r2`` is a list, r²) is chosen by inner
    K-fold CV maximising the squared correlation.  Weights are the marginal per-allele betas of
    the kept variants.  With ``calibrate`` the score is rescaled by the slope of the phenotype on
    the out-of-fold inner-CV scores (so predictions are on the trait scale without in-sample
    overfit).

    Clumping follows ``plink2 --clump`` (defaults ``--clump-kb 250 --clump-r2 0.1``): variants
    are visited by increasing p-value; each one not yet absorbed becomes an index variant and
    absorbs every variant on the same chromosome within ``clump_kb`` kilobases whose r² (squared
    correlation of the hard-call dosages over the training samples) exceeds ``clump_r2``.  The
    kb window needs base-pair positions: pass ``variant_table`` (columns ``chrom``, ``pos``, one
    row per genotype column) to :meth:`fit`, or give ``X`` a ``variant_table`` attribute.
    Without positions the window falls back to ``clump_window`` variants on either side (file
    order), as logged.

    Parameters
    ----------
    p_thresholds
        Candidate p-value thresholds.
    clump_r2
        r² threshold, or a list to tune by inner CV.
    clump_kb
        Window in kilobases (plink's ``--clump-kb``); ``None`` = always the variant-count window.
    clump_window
        Fallback window in variants when positions are absent.
    """

    def __init__(
        self,
        *,
        p_thresholds: list[float] | tuple[float, ...] = DEFAULT_P_GRID,
        clump_r2: float | list[float] = 0.1,
        clump_window: int = 250,
        cv: int = 3,
        calibrate: bool = True,
        random_state: int | None = 0,
        clump_kb: float | None = 250.0,
    ) -> None:
        self.p_thresholds = list(p_thresholds)
        self.clump_r2 = clump_r2
        self.clump_window = clump_window
        self.cv = cv
        self.calibrate = calibrate
        self.random_state = random_state
        self.clump_kb = clump_kb

    def fit(
        self,
        X: GenotypeInput,
        y: np.ndarray,
        *,
        covariates: np.ndarray | None = None,
        variant_table: Any = None,
    ) -> ClumpThresholdPRS:
        """Fit on training samples; ``variant_table`` (``chrom``, ``pos``) enables the kb window."""
        table = variant_table if variant_table is not None else getattr(X, "variant_table", None)
        self._chrom, self._pos = None, None
        if table is not None and self.clump_kb is not None:
            if len(table["pos"]) != n_variants_of(X):
                raise InputError(
                    f"ct: variant_table has {len(table['pos'])} rows for {n_variants_of(X)} genotype columns"
                )
            self._chrom = np.asarray(table["chrom"]).astype(str)
            self._pos = np.asarray(table["pos"], dtype=np.float64)
            self.clump_window_used_ = f"{self.clump_kb:g} kb"
        else:
            self.clump_window_used_ = f"{self.clump_window} variants"
            _log(f"ct: no variant positions given; clumping window {self.clump_window} variants instead of kb")
        return super().fit(X, y, covariates=covariates)

    def _clump(self, X, pvalue: np.ndarray, r2: float, *, p_threshold: float = 1.0, sample_index=None) -> np.ndarray:
        return clump(
            X,
            pvalue,
            r2=r2,
            window=self.clump_window,
            p_threshold=p_threshold,
            chrom=getattr(self, "_chrom", None),
            pos=getattr(self, "_pos", None),
            window_kb=self.clump_kb if getattr(self, "_pos", None) is not None else None,
            sample_index=sample_index,
        )

    def _screen(self, X, y, covariates):
        return np.arange(n_variants_of(X))

    def _inner_fit(self, X, y, covariates, train: np.ndarray, r2: float):
        """Marginal per-allele betas, p-values, clumped variants and centres from ``train`` rows."""
        cov_train = None if covariates is None else covariates[train]
        beta, pvalue = marginal_association(X, y[train], covariates=cov_train, sample_index=train, standardize=False)
        kept = self._clump(X, pvalue, r2, sample_index=train)
        center, _ = training_stats(X, train)
        return beta, pvalue, kept, center

    def _fit_standardised(self, columns, y_res, *, X, y, covariates):
        thresholds = np.sort(np.asarray(self.p_thresholds, dtype=np.float64))
        r2_grid = self.clump_r2 if isinstance(self.clump_r2, (list, tuple)) else [self.clump_r2]
        n = len(y)
        folds = inner_folds(n, max(int(self.cv), 2), self.random_state)
        corr2 = np.zeros((len(r2_grid), len(thresholds)))
        oof = np.zeros((len(r2_grid), len(thresholds), n))
        for f in range(max(int(self.cv), 2)):
            train, test = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
            for a, r2 in enumerate(r2_grid):
                beta, pvalue, kept, center = self._inner_fit(X, y, covariates, train, r2)
                # cumulative scores over increasing thresholds
                z = dense_columns(X, test, kept, center=center)
                contrib = z * beta[kept]
                for t, thr in enumerate(thresholds):
                    use = pvalue[kept] <= thr
                    oof[a, t, test] = contrib[:, use].sum(1)
        for a in range(len(r2_grid)):
            for t in range(len(thresholds)):
                s = oof[a, t]
                corr2[a, t] = 0.0 if s.std() == 0 else np.corrcoef(s, y_res)[0, 1] ** 2
        a_best, t_best = np.unravel_index(int(np.argmax(corr2)), corr2.shape)
        self.p_threshold_ = float(thresholds[t_best])
        self.clump_r2_ = float(r2_grid[a_best])
        self.cv_r2_ = corr2
        best_oof = oof[a_best, t_best]
        slope = 1.0
        if self.calibrate and best_oof.std() > 0:
            centred = best_oof - best_oof.mean()
            slope = float(centred @ y_res / (centred @ centred))
        self.calibration_ = slope
        beta, pvalue = marginal_association(X, y, covariates=covariates, standardize=False)
        kept = self._clump(X, pvalue, self.clump_r2_, p_threshold=self.p_threshold_)
        self.n_kept_ = int(len(kept))
        _log(
            f"ct: p threshold {self.p_threshold_:g}, clump r2 {self.clump_r2_}, {len(kept)} variants, "
            f"inner-CV r2 {corr2[a_best, t_best]:.4f}, calibration {slope:.3f}"
        )
        # return beta on the standardised scale of ``columns`` (all variants here)
        beta_std = np.zeros(columns.n_columns)
        beta_std[kept] = beta[kept] * columns.scale[kept] * slope
        return beta_std

    def _fitted_scalars(self):
        return {
            "p_threshold": self.p_threshold_,
            "clump_r2": self.clump_r2_,
            "n_kept": self.n_kept_,
            "calibration": self.calibration_,
            "clump_window": self.clump_window_used_,
        }


# ---------------------------------------------------------------------------------------
# BayesR by mean-field variational Bayes
# ---------------------------------------------------------------------------------------


def bayesr_vb(
    z: np.ndarray,
    y: np.ndarray,
    *,
    variance_classes: np.ndarray,
    max_iter: int = 100,
    tol: float = 1e-5,
    seed: int | None = 0,
    h2_init: float = 0.5,
    block: int = 16,
) -> dict[str, Any]:
    """Mean-field VB for y = Z b + e with the BayesR prior b_j ~ sum_k pi_k N(0, gamma_k sigma_g^2).

    ``variance_classes`` gamma (first entry 0 = the spike).  Updates follow Carbonetto &
    Stephens (2012) generalised to a mixture of normals (as in VIPRS, Zabad et al. 2023):
    per variant and class k > 0, ``s_jk^2 = sigma_e^2 / (d_j + sigma_e^2 / sigma_k^2)``,
    ``mu_jk = s_jk^2 r_j / sigma_e^2`` with r_j = z_j^T (y - Z m + z_j m_j) and
    ``phi_jk ∝ pi_k sqrt(s_jk^2 / sigma_k^2) exp(mu_jk^2 / (2 s_jk^2))``; pi, sigma_e^2 and
    sigma_g^2 are updated by EM between sweeps.

    Each sweep visits the variants once in a fresh random order (coordinate ascent, one
    variant at a time).  The order is cut into blocks of ``block`` variants: ``Z_B^T residual``
    and the block Gram ``Z_B^T Z_B`` are formed with BLAS once per block, so each variant's
    sequential update needs O(block) work (its r_j corrected for the block's earlier updates)
    instead of an n-length dot and axpy; the residual is updated once per block.  The answer is
    that of the one-at-a-time sweep in the same order (to rounding, ~1e-12).  The class
    probabilities and second moments depend on r_j only, so they are computed for all variants
    at once after the sweep.

    Returns
    -------
    dict with ``mean`` (n_variants,), ``pip`` (n_variants,), ``pi``, ``sigma_e2``, ``sigma_g2``,
    ``n_iter``.
    """
    n, m = z.shape
    gamma = np.asarray(variance_classes, dtype=np.float64)
    k_classes = len(gamma)
    d = (z * z).sum(0)
    valid = d > 0
    d_safe = np.where(valid, d, 1.0)
    var_y = float(y @ y / n)
    sigma_e2 = var_y * (1 - h2_init)
    sigma_g2 = var_y * h2_init
    pi = np.full(k_classes, 0.01 / (k_classes - 1))
    pi[0] = 0.99
    mean = np.zeros(m)
    second = np.zeros(m)
    scaled_second = np.zeros(m)  # sum_k phi_jk E[b_j^2 | k] / gamma_k
    phi = np.zeros((m, k_classes))
    phi[:, 0] = 1.0
    r_used = np.zeros(m)  # r_j at each variant's update in the current sweep
    residual = np.asarray(y, dtype=np.float64).copy()
    rng = np.random.default_rng(seed)
    z_rows = np.ascontiguousarray(z.T)  # variant-major: each variant's column is contiguous
    d_list = d.tolist()
    mean_list = [0.0] * m
    block = max(1, int(block))
    sqrt_d = np.sqrt(d / n).tolist()
    three_slabs = k_classes == 4
    exp, mul = math.exp, operator.mul
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007  (n_iter is reported)
        # per-variant constants of this sweep: logit_jk = const_jk + quad_jk r_j^2, mu_jk = slope_jk r_j
        var_k = gamma[1:] * sigma_g2
        s2 = sigma_e2 / (d_safe[:, None] + sigma_e2 / var_k[None, :])  # (m, K-1)
        slope = s2 / sigma_e2
        const = np.log(np.maximum(pi[1:], 1e-300)) + 0.5 * np.log(s2 / var_k)
        quad = slope * slope / (2.0 * s2)
        log_pi0 = math.log(max(float(pi[0]), 1e-300))
        # flat lists: nested per-variant lists would make the garbage collector rescan m objects
        if three_slabs:
            c1s, c2s, c3s = (const[:, k].tolist() for k in range(3))
            q1s, q2s, q3s = (quad[:, k].tolist() for k in range(3))
            a1s, a2s, a3s = (slope[:, k].tolist() for k in range(3))
        else:
            const_rows, quad_rows, slope_rows = const.tolist(), quad.tolist(), slope.tolist()
        order = rng.permutation(m)
        order = order[valid[order]]
        max_change = 0.0
        for start in range(0, len(order), block):
            index = order[start : start + block]
            size_block = len(index)
            z_block = z_rows[index]
            r_block = (z_block @ residual).tolist()
            gram = (z_block @ z_block.T).ravel().tolist()
            delta = [0.0] * size_block
            for local, j in enumerate(index.tolist()):
                old = mean_list[j]
                # z_j^T (current residual) = block-start value minus the block's earlier updates
                r_j = r_block[local] + d_list[j] * old
                if local:
                    row = local * size_block
                    r_j -= sum(map(mul, gram[row : row + local], delta))
                r_used[j] = r_j
                r2 = r_j * r_j
                if three_slabs:
                    a1, a2, a3 = a1s[j], a2s[j], a3s[j]
                    l1, l2, l3 = c1s[j] + q1s[j] * r2, c2s[j] + q2s[j] * r2, c3s[j] + q3s[j] * r2
                    top = max(log_pi0, l1, l2, l3)
                    e1, e2, e3 = exp(l1 - top), exp(l2 - top), exp(l3 - top)
                    new_mean = r_j * (e1 * a1 + e2 * a2 + e3 * a3) / (exp(log_pi0 - top) + e1 + e2 + e3)
                else:
                    logits = [c + q * r2 for c, q in zip(const_rows[j], quad_rows[j], strict=True)]
                    top = max(log_pi0, max(logits))
                    weights = [exp(v - top) for v in logits]
                    total = exp(log_pi0 - top) + sum(weights)
                    new_mean = r_j * sum(w * a for w, a in zip(weights, slope_rows[j], strict=True)) / total
                change = new_mean - old
                if change != 0.0:
                    delta[local] = change
                    mean_list[j] = new_mean
                    size = abs(change) * sqrt_d[j]
                    if size > max_change:
                        max_change = size
            residual -= z_block.T @ np.asarray(delta)
        mean = np.asarray(mean_list)
        # class probabilities and moments of every visited variant from its r_j
        r = r_used[valid]
        logits = np.column_stack([np.full(len(r), log_pi0), const[valid] + quad[valid] * (r * r)[:, None]])
        logits -= logits.max(1, keepdims=True)
        weights = np.exp(logits)
        weights /= weights.sum(1, keepdims=True)
        mu = slope[valid] * r[:, None]
        moment = mu * mu + s2[valid]
        phi[valid] = weights
        second[valid] = (weights[:, 1:] * moment).sum(1)
        scaled_second[valid] = (weights[:, 1:] * moment / gamma[1:]).sum(1)
        # EM updates of the hyper-parameters (Dirichlet(1, ..., 1) pseudo-counts on pi)
        pi = (phi.sum(0) + 1.0) / (m + k_classes)
        variance_terms = (d * (second - mean**2)).sum()
        sigma_e2 = max(float(residual @ residual + variance_terms) / n, 1e-6 * var_y)
        # EM for the common scale of the slab variances (sigma_jk^2 = gamma_k sigma_g^2)
        n_slab = float(phi[:, 1:].sum())
        if n_slab > 1e-8:
            sigma_g2 = float(np.clip(scaled_second.sum() / n_slab, 1e-4 * var_y, 1e4 * var_y))
        if max_change < tol:
            break
    return {
        "mean": mean,
        "pip": 1.0 - phi[:, 0],
        "pi": pi,
        "sigma_e2": sigma_e2,
        "sigma_g2": sigma_g2,
        "n_iter": n_iter,
    }


@register_model("bayesr")
class BayesRPRS(LinearPRS):
    """BayesR-style sparse + polygenic model fitted by mean-field variational Bayes.

    Prior: ``b_j ~ pi_0 delta_0 + sum_k pi_k N(0, gamma_k sigma_g^2)`` with ``gamma`` =
    (0, 1e-4, 1e-3, 1e-2) (Erbe et al. 2012; Moser et al. 2015) on standardised genotypes;
    ``pip_`` holds each variant's posterior inclusion probability (1 - phi_j0).
    """

    def __init__(
        self,
        *,
        variance_classes: list[float] | tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2),
        max_iter: int = 100,
        tol: float = 1e-5,
        h2_init: float = 0.5,
        top_k: int | None = None,
        p_threshold: float | None = None,
        screen_clump_r2: float | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.variance_classes = list(variance_classes)
        self.max_iter = max_iter
        self.tol = tol
        self.h2_init = h2_init
        self.top_k = top_k
        self.p_threshold = p_threshold
        self.screen_clump_r2 = screen_clump_r2
        self.random_state = random_state

    def _fit_standardised(self, columns, y_res, *, X, y, covariates):
        gamma = np.asarray(self.variance_classes, dtype=np.float64)
        if gamma[0] != 0 or (gamma[1:] <= 0).any():
            raise InputError("bayesr: variance_classes must start with 0 followed by positive values")
        z = columns.columns(np.arange(columns.n_columns)) if columns.dense is None else columns.dense
        result = bayesr_vb(
            z,
            y_res,
            variance_classes=gamma,
            max_iter=self.max_iter,
            tol=self.tol,
            seed=self.random_state,
            h2_init=self.h2_init,
        )
        pip = np.zeros(n_variants_of(X))
        pip[columns.variants] = result["pip"]
        self.pip_ = pip
        self.mixture_weights_ = [float(v) for v in result["pi"]]
        self.sigma_e2_ = float(result["sigma_e2"])
        self.sigma_g2_ = float(result["sigma_g2"])
        self.n_iter_ = int(result["n_iter"])
        _log(
            f"bayesr: {self.n_iter_} VB sweeps, mixture weights {np.round(result['pi'], 4).tolist()}, "
            f"sigma_e2 {self.sigma_e2_:.4g}, sigma_g2 {self.sigma_g2_:.4g}"
        )
        return result["mean"]

    def _extra_state(self):
        return {"pip": torch.tensor(np.array(self.pip_, dtype=np.float64))}

    def _fitted_scalars(self):
        return {
            "mixture_weights": self.mixture_weights_,
            "sigma_e2": self.sigma_e2_,
            "sigma_g2": self.sigma_g2_,
            "n_iter": self.n_iter_,
        }
