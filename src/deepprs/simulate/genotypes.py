"""Simulated genotypes with realistic LD, and an in-memory :class:`GenotypeSource`.

The default generator is an LD-block model: within each block of ``block_size`` consecutive
variants a latent Gaussian AR(1) process ``u_j = rho u_{j-1} + sqrt(1 - rho^2) eps_j`` is drawn
for every haplotype; the haplotype carries the counted allele (A1) at variant *j* when
``u_j < Phi^-1(p_j)``, so each variant has A1 frequency ``p_j`` and neighbouring variants are in
LD that decays with distance (the correlation of the latent process is ``rho^|i-j|``). Blocks are
independent. Two haplotypes per person give the dosage. ``method="msprime"`` draws a coalescent
sample instead (optional dependency).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.special import ndtri

from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource

_BASES = np.array(["A", "C", "G", "T"])


class InMemoryGenotypes(GenotypeSource):
    """A :class:`GenotypeSource` over a dense int8 dosage matrix (simulations, tests).

    Parameters
    ----------
    dosage : ndarray of int8, shape (n_samples, n_variants)
        Dosage of the counted allele ``variant_table.a1``; -1 = missing.
    sample_table : DataFrame
        Columns ``fid iid`` (``father mother sex`` are added when absent).
    variant_table : DataFrame
        Columns ``chrom pos id ref alt a1 cm``.
    """

    def __init__(self, dosage: np.ndarray, sample_table: pd.DataFrame, variant_table: pd.DataFrame,
                 *, path: str | Path = "<memory>") -> None:
        dosage = np.asarray(dosage)
        if dosage.ndim != 2 or dosage.shape != (len(sample_table), len(variant_table)):
            raise InputError(f"dosage has shape {dosage.shape}, expected ({len(sample_table)}, "
                             f"{len(variant_table)}) from the sample and variant tables")
        if dosage.dtype != np.int8:
            finite = np.isfinite(dosage)
            dosage = np.where(finite, np.rint(np.nan_to_num(dosage)), -1).astype(np.int8)
        self._dosage = dosage
        sample_table = sample_table.reset_index(drop=True).copy()
        for column, default in (("father", "0"), ("mother", "0"), ("sex", 0)):
            if column not in sample_table:
                sample_table[column] = default
        self.sample_table = sample_table
        self.variant_table = variant_table.reset_index(drop=True)
        self.path = Path(path)

    def _read_i8(self, sample_index: np.ndarray, variant_index: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self._dosage[np.ix_(sample_index, variant_index)])


def _check_simulation_args(n_samples: int, n_variants: int, n_chromosomes: int, block_size: int,
                           ld_rho: float, maf_range: tuple[float, float], missing_rate: float) -> None:
    if n_samples < 1 or n_variants < 1:
        raise InputError(f"--n-samples and --n-variants must be >= 1 (got {n_samples}, {n_variants})")
    if not 1 <= n_chromosomes <= n_variants:
        raise InputError(f"--n-chromosomes must be between 1 and the number of variants "
                         f"(got {n_chromosomes})")
    if block_size < 1:
        raise InputError(f"block_size must be >= 1 (got {block_size})")
    if not 0.0 <= ld_rho < 1.0:
        raise InputError(f"ld_rho must be in [0, 1) (got {ld_rho})")
    low, high = maf_range
    if not 0.0 < low <= high <= 0.5:
        raise InputError(f"maf_range must satisfy 0 < low <= high <= 0.5 (got {maf_range})")
    if not 0.0 <= missing_rate < 1.0:
        raise InputError(f"missing_rate must be in [0, 1) (got {missing_rate})")


def _variant_table(n_variants: int, n_chromosomes: int, rng: np.random.Generator,
                   mean_spacing_bp: float) -> pd.DataFrame:
    """Chromosome labels 1..C (equal shares), increasing positions, random distinct alleles."""
    chrom = np.repeat(np.arange(1, n_chromosomes + 1),
                      np.diff(np.linspace(0, n_variants, n_chromosomes + 1).round().astype(int)))
    pos = np.empty(n_variants, dtype=np.int64)
    for c in range(1, n_chromosomes + 1):
        idx = np.flatnonzero(chrom == c)
        gaps = 1 + rng.geometric(1.0 / mean_spacing_bp, size=len(idx))
        pos[idx] = 10_000 + np.cumsum(gaps)
    first = rng.integers(0, 4, n_variants)
    second = (first + rng.integers(1, 4, n_variants)) % 4
    ids = np.char.add(np.char.add("sim", chrom.astype(str)), np.char.add("_", pos.astype(str)))
    return pd.DataFrame({
        "chrom": chrom.astype(str), "pos": pos, "id": ids.astype(object),
        "ref": _BASES[second].astype(object), "alt": _BASES[first].astype(object),
        "a1": _BASES[first].astype(object), "cm": pos / 1e6,
    })


def _sample_table(n_samples: int) -> pd.DataFrame:
    iid = [f"S{i + 1:06d}" for i in range(n_samples)]
    return pd.DataFrame({"fid": iid, "iid": iid, "father": "0", "mother": "0", "sex": 0})


def _ar1_matrix(size: int, ld_rho: float) -> np.ndarray:
    """Upper-triangular T with ``(eps @ T)[:, j] = sum_i<=j c_i rho^(j-i) eps_i``: the AR(1) recursion
    ``u_0 = eps_0``, ``u_j = rho u_{j-1} + sqrt(1 - rho^2) eps_j`` as one matrix product."""
    lag = np.arange(size)[None, :] - np.arange(size)[:, None]
    scale = np.full(size, np.sqrt(1.0 - ld_rho**2))
    scale[0] = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        power = np.where(lag >= 0, np.power(ld_rho, np.maximum(lag, 0)), 0.0)
    return (scale[:, None] * power).astype(np.float32)


def _ld_block_haplotypes(n_haplotypes: int, a1_freq: np.ndarray, block_size: int, ld_rho: float,
                         rng: np.random.Generator, chrom: np.ndarray) -> torch.Tensor:
    """Haplotype allele indicators, shape (n_haplotypes, n_variants), uint8 tensor (1 = carries A1)."""
    n_variants = len(a1_freq)
    threshold = torch.as_tensor(ndtri(a1_freq), dtype=torch.float32)
    haplotypes = torch.empty((n_haplotypes, n_variants), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    transform = torch.as_tensor(_ar1_matrix(block_size, ld_rho))
    # blocks of block_size variants, restarted at every chromosome boundary
    chrom_starts = np.flatnonzero(np.r_[True, chrom[1:] != chrom[:-1]])
    chrom_stops = np.r_[chrom_starts[1:], n_variants]
    # the per-block products are small: one intra-op thread avoids oversubscription (10x on busy hosts)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for chrom_start, chrom_stop in zip(chrom_starts, chrom_stops, strict=True):
            for start in range(chrom_start, chrom_stop, block_size):
                stop = min(start + block_size, chrom_stop)
                width = stop - start
                eps = torch.randn((n_haplotypes, width), generator=generator)
                latent = eps @ transform[:width, :width]
                haplotypes[:, start:stop] = latent < threshold[start:stop]
    finally:
        torch.set_num_threads(threads)
    return haplotypes


def _msprime_dosage(n_samples: int, n_variants: int, n_chromosomes: int, maf_range: tuple[float, float],
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Coalescent genotypes from msprime (lazy import)."""
    try:
        import msprime
    except ImportError as exc:
        raise InputError("method='msprime' needs the optional package msprime (pip install msprime); "
                         "or use the default method='ld-blocks'") from exc
    per_chrom = np.diff(np.linspace(0, n_variants, n_chromosomes + 1).round().astype(int))
    dosages, chroms, positions = [], [], []
    for c, m_c in enumerate(per_chrom, start=1):
        length = 1e6
        while True:
            ts = msprime.sim_ancestry(samples=n_samples, ploidy=2, population_size=10_000,
                                      recombination_rate=1e-8, sequence_length=length,
                                      random_seed=int(rng.integers(1, 2**31 - 1)))
            mts = msprime.sim_mutations(ts, rate=2e-8, random_seed=int(rng.integers(1, 2**31 - 1)),
                                        model=msprime.BinaryMutationModel())
            haplotypes = mts.genotype_matrix()                      # (sites, 2N)
            freq = haplotypes.mean(axis=1)
            maf = np.minimum(freq, 1 - freq)
            keep = np.flatnonzero((maf >= maf_range[0]) & (maf <= maf_range[1]))
            if len(keep) >= m_c:
                break
            length *= 2
        keep = np.sort(rng.choice(keep, size=m_c, replace=False))
        hap = haplotypes[keep]
        dosages.append((hap[:, 0::2] + hap[:, 1::2]).T.astype(np.int8))
        site_pos = np.array([site.position for site in mts.sites()])[keep]
        positions.append(site_pos.astype(np.int64) + 1)           # 1-based; distinct on a discrete genome
        chroms.append(np.full(m_c, c))
    return np.concatenate(dosages, axis=1), np.concatenate(chroms), positions


def simulate_genotypes(n_samples: int, n_variants: int, *, n_chromosomes: int = 2, block_size: int = 100,
                       ld_rho: float = 0.95, maf_range: tuple[float, float] = (0.05, 0.5),
                       missing_rate: float = 0.0, mean_spacing_bp: float = 1000.0, method: str = "ld-blocks",
                       seed: int = 0) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Simulate unrelated diploid genotypes with block-structured LD.

    Parameters
    ----------
    n_samples, n_variants
        Matrix size.
    n_chromosomes
        Variants are split evenly over chromosomes ``1..n_chromosomes`` (independent of each other).
    block_size
        Variants per LD block (blocks are independent; LD decays within a block).
    ld_rho
        Lag-1 correlation of the latent AR(1) process (0 = no LD). Adjacent-variant genotype r2 is
        about 0.3 on average for the default 0.95, depending on the two allele frequencies.
    maf_range
        Minor allele frequencies are uniform on this range; the counted allele (A1 = ALT) is the
        minor allele for a random half of the variants.
    missing_rate
        Each genotype is set missing (-1) independently with this probability.
    mean_spacing_bp
        Mean distance between neighbouring variants (geometric gaps), in base pairs.
    method
        ``"ld-blocks"`` (default, fast) or ``"msprime"`` (needs the optional ``msprime`` package;
        ``block_size``/``ld_rho`` are then ignored).
    seed
        Random seed; the output is a deterministic function of all arguments.

    Returns
    -------
    dosage : ndarray of int8, shape (n_samples, n_variants)
        Copies of A1, -1 for missing.
    sample_table : DataFrame, n_samples rows
        ``fid iid father mother sex``.
    variant_table : DataFrame, n_variants rows
        ``chrom pos id ref alt a1 cm`` (``a1 = alt``, the counted allele).

    Examples
    --------
    >>> dosage, samples, variants = simulate_genotypes(100, 500, seed=1)
    >>> dosage.shape, dosage.dtype.name
    ((100, 500), 'int8')
    """
    _check_simulation_args(n_samples, n_variants, n_chromosomes, block_size, ld_rho, maf_range, missing_rate)
    rng = np.random.default_rng(seed)
    variant_table = _variant_table(n_variants, n_chromosomes, rng, mean_spacing_bp)
    if method == "ld-blocks":
        maf = rng.uniform(maf_range[0], maf_range[1], n_variants)
        a1_freq = np.where(rng.random(n_variants) < 0.5, maf, 1.0 - maf)
        haplotypes = _ld_block_haplotypes(2 * n_samples, a1_freq, block_size, ld_rho, rng,
                                          variant_table["chrom"].to_numpy())
        dosage = (haplotypes[:n_samples] + haplotypes[n_samples:]).numpy().view(np.int8)
    elif method == "msprime":
        dosage, _, positions = _msprime_dosage(n_samples, n_variants, n_chromosomes, maf_range, rng)
        variant_table["pos"] = np.concatenate(positions)
        variant_table["cm"] = variant_table["pos"] / 1e6
        variant_table["id"] = (variant_table["chrom"].astype(str) + "_" + variant_table["pos"].astype(str)
                               ).radd("sim").to_numpy()
    else:
        raise InputError(f"unknown genotype simulation method {method!r}; use 'ld-blocks' or 'msprime'")
    if missing_rate > 0:
        dosage[rng.random(dosage.shape) < missing_rate] = -1
    dosage = np.ascontiguousarray(dosage)
    return dosage, _sample_table(n_samples), variant_table


def write_simulated_cohort(prefix: str | Path, n_samples: int, n_variants: int,
                           **kwargs: Any) -> InMemoryGenotypes:
    """Simulate genotypes (see :func:`simulate_genotypes`) and write ``prefix.bed/.bim/.fam``.

    Returns the simulated data as an :class:`InMemoryGenotypes` (its ``path`` is the ``.bed``).
    """
    from deepprs.io.bed import write_bed

    dosage, sample_table, variant_table = simulate_genotypes(n_samples, n_variants, **kwargs)
    write_bed(prefix, dosage, sample_table, variant_table)
    return InMemoryGenotypes(dosage, sample_table, variant_table, path=f"{prefix}.bed")


def as_genotype_source(genotypes: GenotypeSource | np.ndarray) -> GenotypeSource:
    """Wrap a dense dosage matrix (samples x variants) as a source; pass sources through."""
    if isinstance(genotypes, GenotypeSource):
        return genotypes
    dosage = np.asarray(genotypes)
    if dosage.ndim != 2:
        raise InputError(f"genotypes must be a GenotypeSource or a 2-D dosage matrix, "
                         f"got shape {dosage.shape}")
    n, m = dosage.shape
    samples = _sample_table(n)
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(1, m + 1) * 1000,
                             "id": [f"v{j + 1}" for j in range(m)],
                             "ref": "A", "alt": "C", "a1": "C", "cm": 0.0})
    return InMemoryGenotypes(dosage, samples, variants)


__all__ = ["InMemoryGenotypes", "simulate_genotypes", "write_simulated_cohort", "as_genotype_source"]
