"""Linear polygenic-score models: C+T, ridge/GBLUP, elastic net / lasso, BayesR (variational).

Every model follows :mod:`deepprs.models.base`: hyper-parameters in ``__init__``;
``fit(X, y, *, covariates)`` on training samples only (screening, standardisation and tuning
inside); ``coef_`` per counted allele on the raw dosage scale, ``center_`` (training means),
``intercept_`` and ``covariate_coef_`` so that

    predict = (dosage - center_) @ coef_ + intercept_ + covariates @ covariate_coef_

Shared machinery: variants are standardised with training means/sds; covariates (with the
intercept) are unpenalised and handled by Frisch–Waugh–Lovell (phenotype and genotype columns
residualised on [1, covariates]); the fitted standardised effects are mapped back to the raw
dosage scale (coef = beta_std / sd).

Binary 0/1 targets: each model fits its genetic score on the 0/1 scale (linear probability /
liability-style, as GBLUP does), then a one-dimensional *logistic recalibration*
``logit P(y=1) = a + b * score + covariates @ c`` is fitted on the training samples, and
``coef_``/``intercept_``/``covariate_coef_`` are set on the log-odds scale. ``predict`` then
returns log-odds as the contract requires. (A fully penalised logistic path is not
implemented; the recalibrated linear score ranks samples identically to the 0/1-scale fit.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg
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


def logistic_fit(design: np.ndarray, y: np.ndarray, *, max_iter: int = 50, ridge: float = 1e-8) -> np.ndarray:
    """Unpenalised logistic regression by Newton-Raphson (tiny ridge for separability)."""
    coef = np.zeros(design.shape[1])
    for _ in range(max_iter):
        eta = np.clip(design @ coef, -30, 30)
        prob = 1.0 / (1.0 + np.exp(-eta))
        weight = prob * (1 - prob)
        hessian = design.T @ (design * weight[:, None]) + ridge * np.eye(design.shape[1])
        step = np.linalg.solve(hessian, design.T @ (y - prob) - ridge * coef)
        coef += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return coef


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
        self.is_binary_ = bool(is_binary_target(y))
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
        if self.is_binary_:
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


@register_model("ridge")
class RidgePRS(LinearPRS):
    """Ridge regression on standardised genotypes, GBLUP-equivalent.

    Parameters
    ----------
    lambdas
        Penalties on the standardised scale; default the GBLUP grid ``M (1 - h2) / h2`` over
        ``h2_grid``.
    cv
        ``"gcv"`` (generalised CV, closed form for all lambdas from one decomposition) or an
        int K for K-fold inner CV.
    top_k, p_threshold, screen_clump_r2
        Optional marginal-association pre-screening inside ``fit``.
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
    ) -> None:
        self.lambdas = lambdas
        self.h2_grid = list(h2_grid)
        self.cv = cv
        self.top_k = top_k
        self.p_threshold = p_threshold
        self.screen_clump_r2 = screen_clump_r2
        self.random_state = random_state

    def _fit_standardised(self, columns, y_res, *, X, y, covariates):
        m = columns.n_columns
        lambdas = (
            np.asarray(self.lambdas, dtype=np.float64) if self.lambdas is not None else ridge_h2_grid(m, self.h2_grid)
        )
        z = columns.columns(np.arange(m)) if columns.dense is None else columns.dense
        estimate_memory("ridge decomposition", 8.0 * min(z.shape) ** 2)
        n_eff = z.shape[0] - columns.basis.shape[1]
        if len(lambdas) == 1:
            best = 0
            solver = RidgeSolver(z, y_res)
        elif self.cv == "gcv":
            solver = RidgeSolver(z, y_res)
            scores = solver.gcv(lambdas, n_eff)
            best = int(np.argmin(scores))
            self.cv_scores_ = scores
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

    def _fitted_scalars(self):
        return {"lambda": self.lambda_, "h2_equivalent": self.h2_equivalent_}


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
    m = columns.n_columns

    def block_grad(residual: np.ndarray) -> np.ndarray:
        # rows outside the fitting set get residual 0, so one streamed Z^T r covers them
        if rows is None:
            return columns.transpose_dot(residual) / n
        full = np.zeros(columns.n)
        full[rows] = residual
        return columns.transpose_dot(full) / n

    grad = block_grad(y)
    active = np.zeros(0, dtype=np.int64)
    beta_active = np.zeros(0)
    path: list[tuple[np.ndarray, np.ndarray]] = []
    test_mse: list[float] = []
    best_mse, since_best = np.inf, 0
    prev_lam = lambdas[0]
    for lam in lambdas:
        strong = np.flatnonzero(np.abs(grad) > alpha * (2 * lam - prev_lam))
        working = np.union1d(active[beta_active != 0] if len(active) else active, strong)
        while True:
            z_work = columns.columns(working)
            if rows is not None:
                z_work = z_work[rows]
            gram = z_work.T @ z_work / n
            grad0 = z_work.T @ y / n
            warm = np.zeros(len(working))
            if len(active):
                position = {int(v): i for i, v in enumerate(working)}
                for v, b in zip(active, beta_active, strict=True):
                    if int(v) in position:
                        warm[position[int(v)]] = b
            beta_work = enet_coordinate_descent(gram, grad0, warm, lam, alpha, tol=tol)
            residual = y - z_work @ beta_work
            grad = block_grad(residual)
            outside = np.ones(m, dtype=bool)
            outside[working] = False
            violators = np.flatnonzero(outside & (np.abs(grad) > lam * alpha * (1 + 1e-6)))
            if violators.size == 0:
                break
            working = np.union1d(working, violators)
        active, beta_active = working, beta_work
        keep = beta_active != 0
        path.append((active[keep].copy(), beta_active[keep].copy()))
        prev_lam = lam
        if stop_test is not None:
            test_rows, y_test = stop_test
            if keep.any():
                z_test = columns.columns(active[keep])[test_rows]
                mse = float(np.mean((y_test - z_test @ beta_active[keep]) ** 2))
            else:
                mse = float(np.mean(y_test**2))
            test_mse.append(mse)
            if mse < best_mse - 1e-12:
                best_mse, since_best = mse, 0
            else:
                since_best += 1
            if patience is not None and since_best >= patience:
                break
        if max_active is not None and keep.sum() >= max_active:
            break
    return path, test_mse


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
    ) -> None:
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

    def _lambda_path(self, columns: StandardisedColumns, y_res: np.ndarray) -> np.ndarray:
        if self.lambdas is not None:
            return np.sort(np.asarray(self.lambdas, dtype=np.float64))[::-1]
        grad = columns.transpose_dot(y_res) / len(y_res)
        lam_max = float(np.max(np.abs(grad))) / max(self.alpha, 1e-3)
        return np.geomspace(lam_max, lam_max * self.lambda_min_ratio, self.n_lambdas)

    def _fit_standardised(self, columns, y_res, *, X, y, covariates):
        if not 0.0 < self.alpha <= 1.0:
            raise InputError(f"{self.name}: alpha must lie in (0, 1], got {self.alpha}")
        lambdas = self._lambda_path(columns, y_res)
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
            mse = np.full((len(splits), len(lambdas)), np.nan)
            for s, (train, test) in enumerate(splits):
                _, fold_mse = enet_path(
                    columns,
                    y_res[train],
                    lambdas,
                    self.alpha,
                    rows=train,
                    tol=self.tol,
                    max_active=self.max_active,
                    stop_test=(test, y_res[test]),
                    patience=self.patience,
                )
                mse[s, : len(fold_mse)] = fold_mse
                # lambdas never reached: carry the last value (the path had stopped improving)
                if len(fold_mse) < len(lambdas):
                    mse[s, len(fold_mse) :] = fold_mse[-1] if fold_mse else np.nan
            mean_mse = np.nanmean(mse, axis=0)
            best = int(np.nanargmin(mean_mse))
            self.cv_mse_ = mean_mse
            lambdas_fit = lambdas[: best + 1]
        else:
            best = 0
            lambdas_fit = lambdas
        path, _ = enet_path(columns, y_res, lambdas_fit, self.alpha, tol=self.tol)
        active, beta_active = path[-1]
        self.lambda_ = float(lambdas_fit[-1])
        self.lambda_path_ = lambdas
        beta = np.zeros(columns.n_columns)
        beta[active] = beta_active
        _log(
            f"{self.name}: lambda {self.lambda_:.4g} ({best + 1}/{len(lambdas)} on the path), "
            f"{len(active)} active variants"
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
    ) -> None:
        super().__init__(
            alpha=1.0,
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

    Marginal association in the training samples -> greedy clumping (``clump_r2``,
    ``clump_window`` variants) -> keep p < threshold; the threshold (and, when
    ``clump_r2`` is a list, r²) is chosen by inner K-fold CV maximising the squared
    correlation.  Weights are the marginal per-allele betas of the kept variants.  With
    ``calibrate`` the score is rescaled by the slope of the phenotype on the out-of-fold inner-CV
    scores (so predictions are on the trait scale without in-sample overfit).
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
    ) -> None:
        self.p_thresholds = list(p_thresholds)
        self.clump_r2 = clump_r2
        self.clump_window = clump_window
        self.cv = cv
        self.calibrate = calibrate
        self.random_state = random_state

    def _screen(self, X, y, covariates):
        return np.arange(n_variants_of(X))

    def _inner_fit(self, X, y, covariates, train: np.ndarray, r2: float):
        """Marginal per-allele betas, p-values, clumped variants and centres from ``train`` rows."""
        cov_train = None if covariates is None else covariates[train]
        beta, pvalue = marginal_association(X, y[train], covariates=cov_train, sample_index=train, standardize=False)
        kept = clump(X, pvalue, r2=r2, window=self.clump_window, sample_index=train)
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
        kept = clump(X, pvalue, r2=self.clump_r2_, window=self.clump_window, p_threshold=self.p_threshold_)
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
) -> dict[str, Any]:
    """Mean-field VB for y = Z b + e with the BayesR prior b_j ~ sum_k pi_k N(0, gamma_k sigma_g^2).

    ``variance_classes`` gamma (first entry 0 = the spike).  Updates follow Carbonetto &
    Stephens (2012) generalised to a mixture of normals (as in VIPRS, Zabad et al. 2023):
    per variant and class k > 0, ``s_jk^2 = sigma_e^2 / (d_j + sigma_e^2 / sigma_k^2)``,
    ``mu_jk = s_jk^2 r_j / sigma_e^2`` with r_j = z_j^T (y - Z m + z_j m_j) and
    ``phi_jk ∝ pi_k sqrt(s_jk^2 / sigma_k^2) exp(mu_jk^2 / (2 s_jk^2))``; pi, sigma_e^2 and
    sigma_g^2 are updated by EM between sweeps.

    Returns
    -------
    dict with ``mean`` (n_variants,), ``pip`` (n_variants,), ``pi``, ``sigma_e2``, ``sigma_g2``,
    ``n_iter``.
    """
    n, m = z.shape
    gamma = np.asarray(variance_classes, dtype=np.float64)
    k_classes = len(gamma)
    d = (z * z).sum(0)
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
    residual = y.copy()
    rng = np.random.default_rng(seed)
    z_rows = np.ascontiguousarray(z.T)  # variant-major: each variant's column is contiguous
    d_list = d.tolist()
    gamma_slab = gamma[1:].tolist()
    mean_list = [0.0] * m
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007  (n_iter is reported)
        sigma_k2 = [g * sigma_g2 for g in gamma_slab]
        log_pi = [math.log(max(p, 1e-300)) for p in pi]
        max_change = 0.0
        for j in rng.permutation(m).tolist():
            d_j = d_list[j]
            if d_j <= 0:
                continue
            z_j = z_rows[j]
            old = mean_list[j]
            r_j = float(z_j @ residual) + d_j * old
            logits = [log_pi[0]]
            mus = []
            s2s = []
            for k, var_k in enumerate(sigma_k2):
                s2 = sigma_e2 / (d_j + sigma_e2 / var_k)
                mu = s2 * r_j / sigma_e2
                mus.append(mu)
                s2s.append(s2)
                logits.append(log_pi[k + 1] + 0.5 * math.log(s2 / var_k) + mu * mu / (2.0 * s2))
            top = max(logits)
            weights = [math.exp(v - top) for v in logits]
            total = sum(weights)
            weights = [w / total for w in weights]
            new_mean = sum(w * mu for w, mu in zip(weights[1:], mus, strict=True))
            second[j] = sum(w * (mu * mu + s2) for w, mu, s2 in zip(weights[1:], mus, s2s, strict=True))
            scaled_second[j] = sum(
                w * (mu * mu + s2) / g for w, mu, s2, g in zip(weights[1:], mus, s2s, gamma_slab, strict=True)
            )
            phi[j] = weights
            delta = new_mean - old
            if delta != 0.0:
                residual -= delta * z_j
                mean_list[j] = new_mean
                change = abs(delta) * math.sqrt(d_j / n)
                if change > max_change:
                    max_change = change
        mean = np.asarray(mean_list)
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
