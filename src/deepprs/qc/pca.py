"""Genotype PCA scaled like ``plink2 --pca``, by randomized block Krylov iteration (Halko et al. 2011;
Musco & Musco 2015).

Genotypes are standardised as plink2 does, ``Z_ij = (x_ij - 2 p_j) / sqrt(2 p_j (1 - p_j))`` with
``p_j`` the A1 frequency (missing -> 0, i.e. mean-imputed), and the PCs are the top eigenvectors
of the GRM ``K = Z Z^T / M`` (unit-norm sample loadings, as in ``.eigenvec``); the eigenvalues are
those of ``K`` (``.eigenval``). ``K`` is never formed by the randomized method: each pass streams
variant blocks and accumulates ``Z_b (Z_b^T Q)`` with torch matmuls (CPU or CUDA).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource, as_index
from deepprs.utils.device import resolve_device
from deepprs.utils.runlog import atomic_output, estimate_memory, track


@dataclass
class PCAResult:
    """Principal components of the genotypes.

    Attributes
    ----------
    sample_table : DataFrame, (n,) rows
        ``fid iid`` of the samples used.
    eigenvectors : ndarray, shape (n, k)
        Unit-norm PC scores (plink2 ``.eigenvec``), sign fixed so the largest |entry| is positive.
    eigenvalues : ndarray, shape (k,)
        Eigenvalues of ``Z Z^T / M`` (plink2 ``.eigenval``).
    n_variants : int
        Polymorphic variants used (``M``).
    variant_ids : ndarray of str, shape (M,)
    a1_freq : ndarray, shape (M,)
        Standardisation frequencies (for projecting new samples).
    """

    sample_table: pd.DataFrame
    eigenvectors: np.ndarray
    eigenvalues: np.ndarray
    n_variants: int
    variant_ids: np.ndarray
    a1_freq: np.ndarray


class _StandardisedBlocks:
    """Iterate standardised (n x b) torch blocks; cached in memory when they fit ``cache_bytes``."""

    def __init__(self, source: GenotypeSource, sample_index: np.ndarray, variant_index: np.ndarray,
                 a1_freq: np.ndarray, block_size: int, device: torch.device, dtype: torch.dtype,
                 cache_bytes: float) -> None:
        self.source, self.sample_index, self.variant_index = source, sample_index, variant_index
        self.a1_freq, self.block_size, self.device, self.dtype = a1_freq, block_size, device, dtype
        size = len(sample_index) * len(variant_index) * torch.finfo(dtype).bits / 8
        self.cache: list[torch.Tensor] | None = [] if size <= cache_bytes else None
        self._complete = False

    def __iter__(self):
        if self.cache is not None and self._complete:
            yield from self.cache
            return
        start = 0
        for block in self.source.iter_blocks(self.block_size, samples=self.sample_index,
                                             variants=self.variant_index, dtype=np.float64, missing="nan"):
            freq = self.a1_freq[start:start + block.dosage.shape[1]]
            start += block.dosage.shape[1]
            z = (block.dosage - 2 * freq) / np.sqrt(2 * freq * (1 - freq))
            z = torch.as_tensor(np.nan_to_num(z, nan=0.0), dtype=self.dtype).to(self.device)
            if self.cache is not None:
                self.cache.append(z)
            yield z
        if self.cache is not None:
            self._complete = True

    @property
    def n_blocks(self) -> int:
        return (len(self.variant_index) + self.block_size - 1) // self.block_size


def _grm_times(blocks: _StandardisedBlocks, matrix: np.ndarray, n_variants: int) -> np.ndarray:
    """``(Z Z^T / M) @ matrix`` in one streamed pass (block products in the blocks' dtype, sum in float64)."""
    right = torch.as_tensor(matrix).to(device=blocks.device, dtype=blocks.dtype)
    result = torch.zeros(matrix.shape, dtype=torch.float64, device=blocks.device)
    for z in blocks:
        result += (z @ (z.T @ right)).to(torch.float64)
    return result.cpu().numpy() / n_variants


def genotype_pca(genotypes: GenotypeSource, n_components: int = 10, *, samples: Any = None,
                 variants: Any = None, method: str = "auto", n_oversamples: int = 10, n_iter: int = 10,
                 block_size: int = 4096, device: str | torch.device = "cpu", seed: int = 0,
                 precision: str = "float32", cache_bytes: float = 2e9) -> PCAResult:
    """Top principal components of standardised genotypes (like ``plink2 --pca``).

    Parameters
    ----------
    genotypes
        Genotype source (use LD-pruned variants, as for plink2).
    n_components
        Number of PCs ``k``.
    samples, variants
        Subsets (default all); monomorphic variants are skipped.
    method
        ``"randomized"`` (randomized block Krylov; memory O(n (k + p) (n_iter + 1)) plus a block),
        ``"exact"`` (forms the n x n GRM and diagonalises it; O(n^2) memory), or ``"auto"``:
        exact for n <= 1,000 samples (where n^2 M flops are fewer than the ~1,000 n M of the
        randomized passes), randomized above.
    n_oversamples, n_iter
        Randomized method: extra block columns ``p`` and Krylov passes over the genotypes
        (each pass is one streamed read, or one sweep over the in-memory cache).
    block_size
        Variants per streamed block.
    device
        ``cpu``, ``cuda`` or ``auto``.
    seed
        Seed of the random test matrix.
    precision
        ``"float32"`` (default; ~3x faster, eigenvalues to ~1e-5 relative) or ``"float64"`` for the
        streamed block products of the randomized method; the exact method always uses float64.
    cache_bytes
        Keep the standardised blocks in memory between passes when they fit.

    Returns
    -------
    PCAResult
    """
    sample_index = as_index(samples, genotypes.n_samples, "sample")
    variant_index = as_index(variants, genotypes.n_variants, "variant")
    n = len(sample_index)
    if n_components < 1:
        raise InputError(f"--pca {n_components}: need at least 1 component")
    if n_components >= n:
        raise InputError(f"--pca {n_components} must be smaller than the number of samples ({n})")
    if precision not in ("float32", "float64"):
        raise InputError(f"PCA precision {precision!r} is unknown; use 'float32' or 'float64'")
    if method not in ("randomized", "exact", "auto"):
        raise InputError(f"PCA method {method!r} is unknown; use 'auto', 'randomized' or 'exact'")
    if method == "auto":
        method = "exact" if n <= 1000 else "randomized"
    torch_device = resolve_device(device)
    dtype = torch.float64 if method == "exact" or precision == "float64" else torch.float32
    # allele frequencies (one pass over int8 blocks); drop monomorphic variants
    alt_sum = np.zeros(len(variant_index))
    called = np.zeros(len(variant_index))
    start = 0
    for block in genotypes.iter_blocks(block_size, samples=sample_index, variants=variant_index,
                                       dtype=np.int8, missing="raw"):
        stop = start + block.dosage.shape[1]
        valid = block.dosage >= 0
        alt_sum[start:stop] = np.where(valid, block.dosage, 0).sum(axis=0)
        called[start:stop] = valid.sum(axis=0)
        start = stop
    with np.errstate(invalid="ignore", divide="ignore"):
        a1_freq = alt_sum / (2 * called)
    polymorphic = (a1_freq > 0) & (a1_freq < 1) & (called > 0)
    variant_index = variant_index[polymorphic]
    a1_freq = a1_freq[polymorphic]
    m = len(variant_index)
    if m < n_components:
        raise InputError(f"only {m} polymorphic variants: too few for --pca {n_components}")
    blocks = _StandardisedBlocks(genotypes, sample_index, variant_index, a1_freq, block_size, torch_device,
                                 dtype, cache_bytes)
    if method == "exact":
        estimate_memory("PCA GRM", 8.0 * n * n)
        grm = torch.zeros((n, n), dtype=dtype, device=torch_device)
        for z in track(blocks, "GRM", total=blocks.n_blocks):
            grm += z @ z.T
        grm /= m
        values_np, vectors_np = np.linalg.eigh(grm.cpu().numpy())
        values = torch.as_tensor(values_np[::-1][:n_components].copy())
        vectors = torch.as_tensor(vectors_np[:, ::-1][:, :n_components].copy())
    else:
        # block Krylov subspace span[K Q0, K^2 Q0, ...] (Musco & Musco 2015): converges far faster than
        # plain subspace iteration when eigenvalue gaps are small, as in a homogeneous population
        width = max(1, min(n_components + n_oversamples, n // (n_iter + 2)))
        rng = np.random.default_rng(seed)
        block = rng.standard_normal((n, width))
        krylov = []
        for _ in track(range(n_iter + 1), "PCA Krylov passes"):
            block, _ = np.linalg.qr(_grm_times(blocks, block, m))
            krylov.append(block)
        basis, _ = np.linalg.qr(np.hstack(krylov))
        projected = basis.T @ _grm_times(blocks, basis, m)          # Rayleigh-Ritz: U^T K U
        values, small = np.linalg.eigh((projected + projected.T) / 2)
        order = np.argsort(values)[::-1][:n_components]
        values, vectors = torch.as_tensor(values[order]), torch.as_tensor(basis @ small[:, order])
    vectors_np = vectors.cpu().numpy().astype(np.float64)
    # deterministic sign: the entry of largest magnitude is positive
    signs = np.sign(vectors_np[np.abs(vectors_np).argmax(axis=0), np.arange(vectors_np.shape[1])])
    vectors_np *= np.where(signs == 0, 1.0, signs)
    return PCAResult(
        sample_table=genotypes.sample_table.iloc[sample_index][["fid", "iid"]].reset_index(drop=True),
        eigenvectors=vectors_np, eigenvalues=values.cpu().numpy().astype(np.float64), n_variants=m,
        variant_ids=genotypes.variant_table["id"].to_numpy()[variant_index].astype(str), a1_freq=a1_freq,
    )


def write_pca(result: PCAResult, out: str | Path) -> list[Path]:
    """Write ``OUT.eigenvec`` (``#FID IID PC1..PCk``, tab-separated) and ``OUT.eigenval`` like plink2."""
    out = str(out)
    k = result.eigenvectors.shape[1]
    table = pd.DataFrame(result.eigenvectors, columns=[f"PC{i + 1}" for i in range(k)])
    table.insert(0, "IID", result.sample_table["iid"].to_numpy())
    table.insert(0, "#FID", result.sample_table["fid"].to_numpy())
    with atomic_output(f"{out}.eigenvec") as handle:
        table.to_csv(handle, sep="\t", index=False, float_format="%.6g")
    with atomic_output(f"{out}.eigenval") as handle:
        handle.write("".join(f"{value:.6g}\n" for value in result.eigenvalues))
    return [Path(f"{out}.eigenvec"), Path(f"{out}.eigenval")]
