"""Prediction metrics for polygenic scores, with bootstrap confidence intervals.

* :func:`r2` — squared Pearson correlation (scale-free; the usual "PRS R²");
* :func:`r2_sse` — 1 - SSE/SST (penalises mis-calibration);
* :func:`auc` — area under the ROC curve (Mann–Whitney U with tie correction);
* :func:`liability_r2` — observed-scale R² of a binary trait converted to the liability scale
  (Lee, Goddard, Wray & Visscher 2012, AJHG 91:1011, eq. 15 with ascertainment);
* :func:`calibration_slope` — slope of the outcome on the prediction (OLS; logistic for 0/1
  outcomes with log-odds predictions);
* :func:`bootstrap_ci` and :func:`paired_bootstrap` — percentile bootstrap over samples.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from deepprs.errors import InputError

Metric = Callable[[np.ndarray, np.ndarray], float]


def _pair(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    pred = np.asarray(pred, dtype=np.float64).ravel()
    if y.shape != pred.shape:
        raise InputError(f"outcome has {y.size} values but prediction {pred.size}")
    keep = np.isfinite(y) & np.isfinite(pred)
    return y[keep], pred[keep]


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Squared Pearson correlation between outcome and prediction (NaN pairs dropped)."""
    y, pred = _pair(y, pred)
    if y.size < 3 or y.std() == 0 or pred.std() == 0:
        return 0.0
    return float(np.corrcoef(y, pred)[0, 1] ** 2)


def r2_sse(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination ``1 - SSE/SST`` (can be negative)."""
    y, pred = _pair(y, pred)
    sst = float(((y - y.mean()) ** 2).sum())
    if sst == 0:
        return 0.0
    return float(1.0 - ((y - pred) ** 2).sum() / sst)


def auc(y: np.ndarray, pred: np.ndarray) -> float:
    """ROC AUC of a 0/1 outcome: the Mann–Whitney U statistic / (n_cases n_controls), ties = 1/2."""
    y, pred = _pair(y, pred)
    cases = y == 1
    n_cases = int(cases.sum())
    n_controls = int((y == 0).sum())
    if n_cases + n_controls != y.size:
        raise InputError("auc needs a 0/1 outcome")
    if n_cases == 0 or n_controls == 0:
        return float("nan")
    ranks = stats.rankdata(pred)
    u = ranks[cases].sum() - n_cases * (n_cases + 1) / 2.0
    return float(u / (n_cases * n_controls))


def liability_r2_from_observed(r2_observed: float, prevalence: float, sample_prevalence: float) -> float:
    """Lee et al. (2012) eq. 15: observed-scale R² of a 0/1 trait -> liability scale.

    ``R2_l = R2_o C / (1 + R2_o theta C)`` with ``t = Phi^-1(1 - K)``, ``z = phi(t)``,
    ``m = z / K``, ``C = K(1-K)/z^2 * K(1-K)/(P(1-P))`` and
    ``theta = m (P-K)/(1-K) * (m (P-K)/(1-K) - t)``; K = population prevalence, P = case
    proportion in the sample.
    """
    k, p = float(prevalence), float(sample_prevalence)
    if not (0 < k < 1 and 0 < p < 1):
        raise InputError(f"prevalence ({k}) and sample case proportion ({p}) must lie in (0, 1)")
    t = stats.norm.isf(k)
    z = stats.norm.pdf(t)
    m = z / k
    c = k * (1 - k) / z**2 * k * (1 - k) / (p * (1 - p))
    theta = m * (p - k) / (1 - k) * (m * (p - k) / (1 - k) - t)
    return float(r2_observed * c / (1 + r2_observed * theta * c))


def liability_r2(y: np.ndarray, pred: np.ndarray, prevalence: float) -> float:
    """Liability-scale R² of a 0/1 outcome (observed R² = squared correlation; Lee et al. 2012)."""
    y, pred = _pair(y, pred)
    return liability_r2_from_observed(r2(y, pred), prevalence, float(y.mean()))


def calibration_slope(y: np.ndarray, pred: np.ndarray) -> float:
    """Slope of the outcome regressed on the prediction (1 = well calibrated).

    OLS ``y ~ a + b pred`` for quantitative outcomes; for 0/1 outcomes the logistic
    regression ``logit P(y) = a + b pred`` (predictions are log-odds).
    """
    y, pred = _pair(y, pred)
    if pred.std() == 0:
        return float("nan")
    if np.isin(y, (0.0, 1.0)).all() and 0 < y.mean() < 1:
        design = np.column_stack([np.ones_like(pred), pred])
        coef = np.zeros(2)
        for _ in range(100):
            prob = 1.0 / (1.0 + np.exp(-np.clip(design @ coef, -30, 30)))
            weight = prob * (1 - prob)
            step = np.linalg.solve(design.T @ (design * weight[:, None]) + 1e-10 * np.eye(2), design.T @ (y - prob))
            coef += step
            if np.abs(step).max() < 1e-12:
                break
        return float(coef[1])
    centred = pred - pred.mean()
    return float(centred @ (y - y.mean()) / (centred @ centred))


def _percentile_ci(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def bootstrap_ci(
    metric: Metric,
    y: np.ndarray,
    pred: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int | None = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Metric on all samples and its percentile bootstrap CI (samples resampled with replacement).

    Returns
    -------
    estimate, lower, upper
    """
    y, pred = _pair(y, pred)
    rng = np.random.default_rng(seed)
    n = y.size
    values = np.empty(n_boot)
    for b in range(n_boot):
        index = rng.integers(0, n, n)
        values[b] = metric(y[index], pred[index])
    lower, upper = _percentile_ci(values, level)
    return float(metric(y, pred)), lower, upper


def paired_bootstrap(
    metric: Metric,
    y: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int | None = 0,
    level: float = 0.95,
) -> tuple[float, tuple[float, float], float]:
    """Difference ``metric(a) - metric(b)`` on the same samples, with a paired bootstrap.

    Both models are evaluated on the same resampled samples each replicate, so the CI accounts
    for their correlation.  The two-sided P is ``2 min(P*(d <= 0), P*(d >= 0))`` over
    replicates (with the +1 correction; the percentile-interval test of H0: difference = 0).

    Returns
    -------
    difference, (lower, upper), p_value
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    pred_a = np.asarray(pred_a, dtype=np.float64).ravel()
    pred_b = np.asarray(pred_b, dtype=np.float64).ravel()
    if not (y.shape == pred_a.shape == pred_b.shape):
        raise InputError("paired_bootstrap needs y, pred_a and pred_b of the same length")
    keep = np.isfinite(y) & np.isfinite(pred_a) & np.isfinite(pred_b)
    y, pred_a, pred_b = y[keep], pred_a[keep], pred_b[keep]
    rng = np.random.default_rng(seed)
    n = y.size
    diffs = np.empty(n_boot)
    for b in range(n_boot):
        index = rng.integers(0, n, n)
        diffs[b] = metric(y[index], pred_a[index]) - metric(y[index], pred_b[index])
    diffs = diffs[np.isfinite(diffs)]
    lower, upper = _percentile_ci(diffs, level)
    below = (np.sum(diffs <= 0) + 1) / (diffs.size + 1)
    above = (np.sum(diffs >= 0) + 1) / (diffs.size + 1)
    p_value = float(min(1.0, 2 * min(below, above)))
    return float(metric(y, pred_a) - metric(y, pred_b)), (lower, upper), p_value
