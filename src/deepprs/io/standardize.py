"""Allele frequencies and per-variant standardisation of dosage blocks (QC, PCA, GRM helpers).

Both functions take a samples × variants block in any of the forms the readers produce:
float with NaN for missing, or integer with -1 for missing (``missing="raw"``); numpy arrays or
torch tensors (the result has the input's type).
"""

from __future__ import annotations

import numpy as np
import torch

from deepprs.errors import InputError

SCALE_METHODS = ("sd", "binomial")


def _observed_float(dosage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (values as float64 with missing set to 0, observed mask)."""
    dosage = np.asarray(dosage)
    if dosage.ndim != 2:
        raise InputError(f"dosage must be a samples x variants matrix, got shape {dosage.shape}")
    if dosage.dtype.kind == "f":
        observed = ~np.isnan(dosage)
    else:
        observed = dosage >= 0
    return np.where(observed, dosage, 0).astype(np.float64), observed


_INT16_SAFE_ROWS = 8192     # 8192 rows x values in [-1, 3] stay far inside int16


def _column_sums_int8(block: np.ndarray) -> np.ndarray:
    """Column sums of an int8/uint8 (n, b) block with values in [-1, 3], as int64.

    Row chunks are reduced with an int16 accumulator (numpy vectorises that far better than an
    int64 one: ~10x faster); 8192 rows x values <= 3 cannot overflow int16.
    """
    total = np.zeros(block.shape[1], dtype=np.int64)
    for start in range(0, block.shape[0], _INT16_SAFE_ROWS):
        total += np.add.reduce(block[start:start + _INT16_SAFE_ROWS], axis=0, dtype=np.int16)
    return total


_FLOAT_CHUNK_ROWS = 256     # float32 partial sums over 256 rows: exact for hard calls, ~1e-7 otherwise


def _column_sums_float(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column sums ignoring NaN (float64) and NaN counts (int64) of a float (n, b) dosage block.

    Works in row chunks that stay in cache: ``fmax(x, -1)`` turns NaN into -1 (dosages are >= 0),
    so one plain sum plus the count of -1 entries gives both numbers (~4x faster than nansum).
    """
    total = np.zeros(block.shape[1], dtype=np.float64)
    n_missing = np.zeros(block.shape[1], dtype=np.int64)
    buffer = np.empty((min(_FLOAT_CHUNK_ROWS, block.shape[0]), block.shape[1]), dtype=block.dtype)
    for start in range(0, block.shape[0], _FLOAT_CHUNK_ROWS):
        chunk = block[start:start + _FLOAT_CHUNK_ROWS]
        filled = buffer[: len(chunk)]
        np.fmax(chunk, -1, out=filled)
        chunk_missing = np.add.reduce((filled < 0).view(np.uint8), axis=0, dtype=np.int16)
        n_missing += chunk_missing
        total += np.add.reduce(filled, axis=0) + chunk_missing         # add back the -1 of each NaN
    return total, n_missing


def allele_frequency(dosage: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Frequency of the counted allele (``a1``) per variant: mean observed dosage / 2.

    Parameters
    ----------
    dosage : ndarray or Tensor, shape (n_samples, n_variants)
        Float with NaN missing (other values >= 0), or integer with -1 = missing
        (``missing="raw"`` blocks).

    Returns
    -------
    frequency : shape (n_variants,), float64 (NaN where a variant has no observed call).
    """
    if isinstance(dosage, torch.Tensor):
        observed = ~torch.isnan(dosage) if dosage.is_floating_point() else dosage >= 0
        values = torch.where(observed, dosage, torch.zeros((), dtype=dosage.dtype, device=dosage.device))
        count = observed.sum(0).to(torch.float64)
        return values.sum(0, dtype=torch.float64) / (2.0 * count)
    dosage = np.asarray(dosage)
    if dosage.ndim != 2:
        raise InputError(f"dosage must be a samples x variants matrix, got shape {dosage.shape}")
    if dosage.dtype.kind == "f":
        total, n_missing = _column_sums_float(dosage)
        count = dosage.shape[0] - n_missing
    elif dosage.dtype == np.int8:
        # missing is -1: add the number of missing calls back to the plain column sum
        n_missing = _column_sums_int8(np.right_shift(dosage.view(np.uint8), 7))     # sign bit = missing
        total = (_column_sums_int8(dosage) + n_missing).astype(np.float64)
        count = dosage.shape[0] - n_missing
    else:
        observed = dosage >= 0
        total = np.where(observed, dosage, 0).sum(axis=0, dtype=np.int64).astype(np.float64)
        count = observed.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / (2.0 * count), np.nan)


def standardize(dosage: np.ndarray | torch.Tensor, mean: np.ndarray | None = None,
                sd: np.ndarray | None = None, *,
                method: str = "sd") -> tuple[np.ndarray | torch.Tensor, np.ndarray, np.ndarray]:
    """Centre and scale each variant; missing genotypes become 0 (imputed at the mean).

    Parameters
    ----------
    dosage : ndarray or Tensor, shape (n_samples, n_variants)
        Float with NaN missing, or integer with negative = missing.
    mean, sd : ndarray, shape (n_variants,), optional
        Use these (e.g. from the training samples) instead of estimating them from ``dosage``.
    method
        How ``sd`` is estimated when not given: ``"sd"`` the sample standard deviation of the
        observed calls (ddof = 1, as :meth:`PackedGenotypes.variant_stats`); ``"binomial"``
        ``sqrt(2 p (1 - p))`` with ``p = mean / 2`` (GCTA/plink2 GRM and PCA scaling).

    Returns
    -------
    z : same type as ``dosage``, float32 for a tensor input else float64, shape (n_samples, n_variants)
    mean, sd : ndarray, shape (n_variants,)
        Monomorphic (or all-missing) variants get ``sd = 1`` so they contribute 0.
    """
    if method not in SCALE_METHODS:
        raise InputError(f"method must be one of {SCALE_METHODS}, got {method!r}")
    is_tensor = isinstance(dosage, torch.Tensor)
    array = dosage.detach().cpu().numpy() if is_tensor else dosage
    values, observed = _observed_float(array)
    if mean is None or sd is None:
        count = observed.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            est_mean = np.where(count > 0, values.sum(axis=0) / np.maximum(count, 1), 0.0)
            if method == "sd":
                squares = ((values - est_mean) * observed) ** 2
                est_var = np.where(count > 1, squares.sum(axis=0) / np.maximum(count - 1, 1), 0.0)
            else:
                p = est_mean / 2.0
                est_var = 2.0 * p * (1.0 - p)
        mean = est_mean if mean is None else mean
        if sd is None:
            sd = np.sqrt(np.clip(est_var, 0.0, None))
            sd = np.where(sd < 1e-8, 1.0, sd)
    mean = np.asarray(mean, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    if mean.shape != (values.shape[1],) or sd.shape != (values.shape[1],):
        raise InputError(f"mean and sd must have shape ({values.shape[1]},), got {mean.shape} and {sd.shape}")
    z = np.where(observed, (values - mean) / sd, 0.0)
    if is_tensor:
        return torch.from_numpy(z.astype(np.float32)).to(dosage.device), mean, sd
    return z, mean, sd
