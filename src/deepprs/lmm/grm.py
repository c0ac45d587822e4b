"""Genetic relationship matrix K = Z Zᵀ / M from genotypes streamed in variant blocks.

Standardisation (identical to GEMMA ``-gk 2``): for each variant, ``mean`` is the dosage mean
over the non-missing selected samples, the centred dosage of a missing call is 0 (mean
imputation), and ``scale = sqrt(sum_i c_i² / N)`` (population variance over all N selected
samples, missing calls counting as 0).  Variants with ``scale < 1e-8`` (monomorphic among the
selected samples) are skipped and do not count in M.  With this scaling every kept column of Z
has ``sum_i z_i² = N``, so ``trace(K) = N`` exactly, even with missing calls.

``genotypes`` may be a :class:`~deepprs.io.GenotypeSource`, a dense samples × variants dosage
array (NaN = missing) or :class:`~deepprs.io.PackedGenotypes`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource, as_index
from deepprs.io.packed import PackedGenotypes

MONOMORPHIC_SCALE = 1e-8

GenotypeLike = GenotypeSource | np.ndarray | PackedGenotypes


@dataclass(frozen=True)
class StandardizedBlock:
    """One block of standardised genotypes.

    Attributes
    ----------
    variant_index : ndarray of int, shape (b,)
        Positions (in the genotype input) of the *kept* (polymorphic) variants of the block.
    z : Tensor, shape (n_samples, b)
        Standardised genotypes, 0 where missing.
    mean, scale : ndarray, shape (b,)
        Dosage mean over non-missing calls and the scale used (see the module docstring).
    """

    variant_index: np.ndarray
    z: torch.Tensor
    mean: np.ndarray
    scale: np.ndarray


def n_samples_and_variants(genotypes: GenotypeLike) -> tuple[int, int]:
    """(n_samples, n_variants) of any supported genotype input."""
    if isinstance(genotypes, GenotypeSource):
        return genotypes.n_samples, genotypes.n_variants
    if isinstance(genotypes, PackedGenotypes):
        return genotypes.n_samples, genotypes.n_variants
    array = np.asarray(genotypes)
    if array.ndim != 2:
        raise InputError(f"genotypes must be a samples × variants matrix, got shape {array.shape}")
    return int(array.shape[0]), int(array.shape[1])


def iter_dosage_blocks(
    genotypes: GenotypeLike,
    *,
    sample_index: np.ndarray | None = None,
    variant_index: np.ndarray | None = None,
    block_size: int = 2000,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(variant_index_block, dosage)`` with dosage float64 (n_samples × b), NaN = missing."""
    n_samples, n_variants = n_samples_and_variants(genotypes)
    samples = as_index(sample_index, n_samples, "sample")
    variants = as_index(variant_index, n_variants, "variant")
    if block_size < 1:
        raise InputError("block_size must be >= 1")
    if isinstance(genotypes, GenotypeSource):
        for block in genotypes.iter_blocks(
            block_size, samples=samples, variants=variants, dtype=np.float64, missing="nan"
        ):
            yield block.variant_index, block.dosage
        return
    for start in range(0, len(variants), block_size):
        block_index = variants[start : start + block_size]
        if isinstance(genotypes, PackedGenotypes):
            # unpack only the bytes that hold this block's variants (4 genotypes a byte)
            byte_columns = np.unique(block_index // 4)
            sub = PackedGenotypes(genotypes.packed[np.ix_(samples, byte_columns)], 4 * len(byte_columns))
            position = np.searchsorted(byte_columns, block_index // 4) * 4 + block_index % 4
            codes = sub.unpack_codes().numpy()[:, position]
            dosage = np.where(codes == 3, np.nan, codes).astype(np.float64)
        else:
            dosage = np.asarray(genotypes)[np.ix_(samples, block_index)].astype(np.float64)
        yield block_index, dosage


def standardize_dosage(dosage: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardise a dosage block (GEMMA ``-gk 2`` convention).

    Parameters
    ----------
    dosage : ndarray, shape (n_samples, b), NaN = missing

    Returns
    -------
    z : ndarray, shape (n_samples, b_kept)
    mean, scale : ndarray, shape (b_kept,)
    kept : ndarray of bool, shape (b,)
        False for variants that are monomorphic (or entirely missing) among these samples.
    """
    observed = ~np.isnan(dosage)
    count = observed.sum(axis=0)
    total = np.where(observed, dosage, 0.0).sum(axis=0)
    mean = np.divide(total, count, out=np.zeros(dosage.shape[1]), where=count > 0)
    centred = np.where(observed, dosage - mean, 0.0)
    scale = np.sqrt((centred**2).sum(axis=0) / max(dosage.shape[0], 1))
    kept = scale > MONOMORPHIC_SCALE
    return centred[:, kept] / scale[kept], mean[kept], scale[kept], kept


def iter_standardized_blocks(
    genotypes: GenotypeLike,
    *,
    sample_index: np.ndarray | None = None,
    variant_index: np.ndarray | None = None,
    block_size: int = 2000,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> Iterator[StandardizedBlock]:
    """Stream standardised genotype blocks (memory ~ n_samples × block_size)."""
    for block_index, dosage in iter_dosage_blocks(
        genotypes, sample_index=sample_index, variant_index=variant_index, block_size=block_size
    ):
        z, mean, scale, kept = standardize_dosage(dosage)
        yield StandardizedBlock(
            variant_index=block_index[kept],
            z=torch.as_tensor(z, dtype=dtype, device=device),
            mean=mean,
            scale=scale,
        )


def grm_cross_product(
    genotypes: GenotypeLike,
    *,
    sample_index: np.ndarray | None = None,
    variant_index: np.ndarray | None = None,
    block_size: int = 2000,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, int]:
    """Unnormalised cross-product Z Zᵀ and the number of kept variants M.

    Returns
    -------
    cross_product : Tensor, shape (n_samples, n_samples)
    n_kept : int
    """
    n_samples, _ = n_samples_and_variants(genotypes)
    n = len(as_index(sample_index, n_samples, "sample"))
    cross_product = torch.zeros((n, n), dtype=dtype, device=device)
    n_kept = 0
    for block in iter_standardized_blocks(
        genotypes,
        sample_index=sample_index,
        variant_index=variant_index,
        block_size=block_size,
        device=device,
        dtype=dtype,
    ):
        if block.z.shape[1]:
            cross_product.addmm_(block.z, block.z.T)
            n_kept += block.z.shape[1]
    return cross_product, n_kept


def grm(
    genotypes: GenotypeLike,
    *,
    sample_index: np.ndarray | None = None,
    variant_index: np.ndarray | None = None,
    block_size: int = 2000,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Genetic relationship matrix K = Z Zᵀ / M (standardised genotypes, see the module docstring).

    Parameters
    ----------
    genotypes
        GenotypeSource, dense samples × variants dosage (NaN = missing) or PackedGenotypes.
    sample_index : ndarray of int, optional
        Samples (rows of the genotype input) to use; standardisation uses these samples only.
    variant_index : ndarray of int, optional
        Variants to use (default: all).
    block_size
        Variants per streamed block (memory ~ n_samples × block_size × 8 bytes).

    Returns
    -------
    K : Tensor, shape (n_samples, n_samples)

    .. warning:: K takes n_samples² × 8 bytes (3.2 GB at 20,000 samples); beyond that use
       :func:`deepprs.lmm.matrix_free.fit_matrix_free`.
    """
    cross_product, n_kept = grm_cross_product(
        genotypes,
        sample_index=sample_index,
        variant_index=variant_index,
        block_size=block_size,
        device=device,
        dtype=dtype,
    )
    if n_kept == 0:
        raise InputError("no polymorphic variants among the selected samples; cannot build a GRM")
    return cross_product / n_kept


def grm_by_chromosome(
    genotypes: GenotypeLike,
    chromosomes: np.ndarray | pd.Series,
    *,
    sample_index: np.ndarray | None = None,
    variant_index: np.ndarray | None = None,
    block_size: int = 2000,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> dict[str, tuple[torch.Tensor, int]]:
    """Per-chromosome cross-products Z_c Z_cᵀ and kept-variant counts M_c (for LOCO).

    Parameters
    ----------
    chromosomes : array of str, shape (n_variants_total,)
        Chromosome code of every variant of the genotype input (e.g. ``variant_table["chrom"]``).

    Returns
    -------
    dict mapping chromosome code -> (cross_product (n × n), M_c), in order of first appearance.
    The LOCO GRM for c is ``(sum_d C_d - C_c) / (M - M_c)``.

    .. warning:: holds one n × n matrix per chromosome; see :func:`deepprs.lmm.cvblup.loco_cvblup`
       for the memory-bounded driver.
    """
    _, n_variants = n_samples_and_variants(genotypes)
    variants = as_index(variant_index, n_variants, "variant")
    codes = np.asarray(chromosomes).astype(str)[variants]
    out: dict[str, tuple[torch.Tensor, int]] = {}
    for code in pd.unique(codes):
        out[code] = grm_cross_product(
            genotypes,
            sample_index=sample_index,
            variant_index=variants[codes == code],
            block_size=block_size,
            device=device,
            dtype=dtype,
        )
    return out
