"""Matrix-free LMM for large N: randomized Haseman–Elston h², CG solves, Hutchinson diag(H).

Nothing n × n is formed.  K v = Z (Zᵀ v) / M is computed block by block from standardised
genotypes held in memory (2-bit packed hard calls, or float32 when the data fit
``dense_budget_bytes``), with many right-hand sides at once.

1. h² by randomized Haseman–Elston / method of moments (RHE-reg, Wu & Sankararaman 2018):
   with S = I - X(XᵀX)⁻¹Xᵀ, r₀ = S y, solve

       [ tr(SKSK)  tr(SK) ] [σg²]   [ r₀ᵀ K r₀ ]
       [ tr(SK)    N - p  ] [σe²] = [ r₀ᵀ r₀   ]

   where tr(SK) = tr(K) - tr((XᵀX)⁻¹XᵀKX) is exact and tr(SKSK) = E‖SKSu‖² is a Hutchinson
   estimate over Rademacher probes u.  The reported SE is the null-h² approximation
   SE(h²) ≈ sqrt(2 / (tr(SKSK) - tr(SK)²/(N-p))).
2. With δ = σe²/σg², block conjugate gradients solve (K + δI) A = [y, X, u₁…u_B]; GLS β̂,
   α = (K+δI)⁻¹ r (r = y - Xβ̂), BLUP ĝ = Kα = r - δα.
3. diag(H) = 1 - δ diag((K+δI)⁻¹) with the Hutchinson diagonal estimator
   diag(A⁻¹) ≈ Σ_b u_b ⊙ A⁻¹u_b / B (Bekas et al. 2007), then cvBLUP as in the exact path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource
from deepprs.io.packed import PackedGenotypes
from deepprs.lmm.grm import GenotypeLike, iter_dosage_blocks, n_samples_and_variants, standardize_dosage
from deepprs.lmm.reml import BlupResult, RemlFit, check_phenotype, design_matrix
from deepprs.utils.runlog import track


@dataclass
class _Block:
    chromosome: str
    variant_index: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    dense: torch.Tensor | None = None
    packed: PackedGenotypes | None = None

    def z(self, device: torch.device) -> torch.Tensor:
        if self.dense is not None:
            return self.dense
        assert self.packed is not None
        return self.packed.unpack(
            device=device,
            center=torch.as_tensor(self.mean, dtype=torch.float32),
            scale=torch.as_tensor(self.scale, dtype=torch.float32),
        )


class GenotypeOperator:
    """Matrix-free K = Z Zᵀ / M over standardised genotype blocks (optionally leaving one chromosome out).

    Build with :meth:`from_genotypes`.  Memory: n_samples × n_variants / 4 bytes (packed) or
    × 4 bytes (float32, when below ``dense_budget_bytes``).
    """

    def __init__(
        self, blocks: list[_Block], n_samples: int, diag_by_chrom: dict[str, np.ndarray], device: torch.device
    ) -> None:
        self.blocks = blocks
        self.n_samples = n_samples
        self.diag_by_chrom = diag_by_chrom
        self.device = device

    @classmethod
    def from_genotypes(
        cls,
        genotypes: GenotypeLike,
        *,
        sample_index: np.ndarray | None = None,
        variant_index: np.ndarray | None = None,
        chromosomes: np.ndarray | None = None,
        block_size: int = 2000,
        device: torch.device | str = "cpu",
        dense_budget_bytes: float = 2 * 2**30,
    ) -> GenotypeOperator:
        """Stream the genotypes once; standardise (GEMMA ``-gk 2`` convention) and keep them in memory.

        Parameters
        ----------
        chromosomes : array of str, shape (n_variants_total,), optional
            Chromosome code per variant (default: the variant table of a GenotypeSource); blocks never
            straddle chromosomes, so that ``exclude=`` can leave one out (LOCO).
        """
        device = torch.device(device)
        n_total, m_total = n_samples_and_variants(genotypes)
        samples = np.arange(n_total) if sample_index is None else np.asarray(sample_index, dtype=np.int64)
        variants = np.arange(m_total) if variant_index is None else np.asarray(variant_index, dtype=np.int64)
        if chromosomes is None and isinstance(genotypes, GenotypeSource):
            chromosomes = genotypes.variant_table["chrom"].to_numpy()
        if chromosomes is None:
            chromosomes = np.full(m_total, "all")
        codes = np.asarray(chromosomes).astype(str)[variants]
        dense = len(samples) * len(variants) * 4 <= dense_budget_bytes
        blocks: list[_Block] = []
        diag_by_chrom: dict[str, np.ndarray] = {}
        groups = [(code, variants[codes == code]) for code in pd.unique(codes)]
        n_blocks = sum((len(v) + block_size - 1) // block_size for _, v in groups)

        def stream():
            for code, chrom_variants in groups:
                for block_index, dosage in iter_dosage_blocks(
                    genotypes, sample_index=samples, variant_index=chrom_variants, block_size=block_size
                ):
                    yield code, block_index, dosage

        for code, block_index, dosage in track(stream(), "standardising genotypes", total=n_blocks):
            z, mean, scale, kept = standardize_dosage(dosage)
            if not kept.any():
                continue
            diag_by_chrom[code] = diag_by_chrom.get(code, np.zeros(len(samples))) + (z**2).sum(axis=1)
            block = _Block(chromosome=code, variant_index=block_index[kept], mean=mean, scale=scale)
            hard_calls = np.all(np.isnan(dosage[:, kept]) | np.isin(dosage[:, kept], (0.0, 1.0, 2.0)))
            if dense or not hard_calls:
                block.dense = torch.as_tensor(z, dtype=torch.float32, device=device)
            else:
                block.packed = PackedGenotypes.from_dosage(dosage[:, kept])
            blocks.append(block)
        if not blocks:
            raise InputError("no polymorphic variants among the selected samples")
        return cls(blocks, len(samples), diag_by_chrom, device)

    @property
    def chromosomes(self) -> list[str]:
        return list(dict.fromkeys(str(block.chromosome) for block in self.blocks))

    def n_variants(self, exclude: str | None = None) -> int:
        return sum(len(b.variant_index) for b in self.blocks if b.chromosome != exclude)

    def grm_diagonal(self, exclude: str | None = None) -> np.ndarray:
        """diag(K), shape (n,), exact."""
        total = sum(d for code, d in self.diag_by_chrom.items() if code != exclude)
        return total / self.n_variants(exclude)

    def matmat(self, vectors: torch.Tensor, exclude: str | None = None) -> torch.Tensor:
        """K V for V of shape (n, k), float64 in and out; K leaves out chromosome ``exclude``."""
        out = torch.zeros(vectors.shape, dtype=torch.float64, device=self.device)
        v32 = vectors.to(self.device, torch.float32)
        for block in self.blocks:
            if block.chromosome == exclude:
                continue
            z = block.z(self.device)
            out += (z @ (z.T @ v32)).to(torch.float64)
        return (out / self.n_variants(exclude)).to(vectors.device)

    def transpose_matmat(
        self, vectors: torch.Tensor, exclude: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Zᵀ V (float64) for every kept variant; returns (variant_index, product (m, k))."""
        index, products = [], []
        for block in self.blocks:
            if block.chromosome == exclude:
                continue
            z = block.z(self.device).to(torch.float64)
            index.append(block.variant_index)
            products.append((z.T @ vectors.to(self.device, torch.float64)).cpu().numpy())
        return np.concatenate(index), np.concatenate(products)

    def scales(self, exclude: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mean, scale) of the kept variants, in the order of :meth:`transpose_matmat`."""
        blocks = [b for b in self.blocks if b.chromosome != exclude]
        return np.concatenate([b.mean for b in blocks]), np.concatenate([b.scale for b in blocks])


def conjugate_gradient(
    apply: callable, rhs: torch.Tensor, *, tol: float = 1e-6, max_iter: int = 500
) -> tuple[torch.Tensor, int]:
    """Solve A X = B column by column (batched) for symmetric positive-definite A.

    Parameters
    ----------
    apply : function Tensor (n, k) -> Tensor (n, k)
    rhs : Tensor, shape (n, k)
    tol : relative residual ‖b - Ax‖/‖b‖ for every column

    Returns
    -------
    solution : Tensor (n, k), iterations : int
    """
    solution = torch.zeros_like(rhs)
    residual = rhs.clone()
    direction = residual.clone()
    rs = (residual**2).sum(0)
    target = (tol**2) * (rhs**2).sum(0).clamp_min(1e-300)
    for iteration in range(1, max_iter + 1):
        active = rs > target
        if not bool(active.any()):
            return solution, iteration - 1
        applied = apply(direction)
        curvature = (direction * applied).sum(0)
        step = torch.where(active, rs / curvature.clamp_min(1e-300), torch.zeros_like(rs))
        solution += step * direction
        residual -= step * applied
        rs_new = (residual**2).sum(0)
        ratio = torch.where(active, rs_new / rs.clamp_min(1e-300), torch.zeros_like(rs))
        direction = residual + ratio * direction
        rs = rs_new
    raise InputError(
        f"conjugate gradients did not converge in {max_iter} iterations; "
        "raise max_iter or use the exact path (--exact-max-n)"
    )


@dataclass
class MatrixFreeResult:
    fit: RemlFit
    blup: BlupResult
    cg_iterations: int
    n_probes: int


def fit_matrix_free(
    operator: GenotypeOperator,
    phenotype: np.ndarray,
    covariates: np.ndarray | None = None,
    *,
    exclude: str | None = None,
    n_probes: int = 100,
    n_trace_probes: int | None = None,
    seed: int = 0,
    tol: float = 1e-6,
    max_iter: int = 500,
) -> MatrixFreeResult:
    """h² (randomized HE), BLUP and cvBLUP without forming K (see the module docstring).

    Parameters
    ----------
    operator : GenotypeOperator over the n analysed samples
    phenotype : ndarray, shape (n,)
    covariates : ndarray, shape (n, c), optional (an intercept is always added)
    exclude : chromosome to leave out of K (LOCO), optional
    n_probes : Rademacher probes for the diag(H) estimate (each is one more CG right-hand side)
    n_trace_probes : Rademacher probes for tr(SKSK) (one K product each; default 4 × n_probes)
    seed : seed of the probes

    Returns
    -------
    MatrixFreeResult (``fit.loglik`` is NaN: no likelihood is evaluated on this path)
    """
    n = operator.n_samples
    phenotype = check_phenotype(phenotype, n)
    design = design_matrix(covariates, n)
    p = design.shape[1]
    generator = torch.Generator().manual_seed(int(seed))
    probes = torch.randint(0, 2, (n, n_probes), generator=generator, dtype=torch.float64) * 2 - 1
    x = torch.as_tensor(design, dtype=torch.float64)
    y = torch.tensor(np.asarray(phenotype, dtype=np.float64))
    xtx_inv = torch.linalg.inv(x.T @ x)

    def project(v: torch.Tensor) -> torch.Tensor:
        return v - x @ (xtx_inv @ (x.T @ v))

    # --- randomized Haseman–Elston --------------------------------------------------------------
    r0 = project(y[:, None])
    n_trace_probes = 4 * n_probes if n_trace_probes is None else n_trace_probes
    trace_probes = torch.randint(0, 2, (n, n_trace_probes), generator=generator, dtype=torch.float64) * 2 - 1
    projected_probes = project(trace_probes)
    products = operator.matmat(torch.cat([r0, x, projected_probes], dim=1), exclude)
    k_r0, k_x, k_probes = products[:, :1], products[:, 1 : 1 + p], products[:, 1 + p :]
    trace_k = float(operator.grm_diagonal(exclude).sum())
    trace_sk = trace_k - float(torch.trace(xtx_inv @ (x.T @ k_x)))
    trace_sksk = float((project(k_probes) ** 2).sum(0).mean())
    df = n - p
    lhs = np.array([[trace_sksk, trace_sk], [trace_sk, df]])
    rhs = np.array([float(r0[:, 0] @ k_r0[:, 0]), float(r0[:, 0] @ r0[:, 0])])
    sigma_g, sigma_e = np.linalg.solve(lhs, rhs)
    total = sigma_g + sigma_e
    h2 = float(np.clip(sigma_g / total, 1e-4, 1 - 1e-4))
    sigma_g, sigma_e = h2 * total, (1 - h2) * total
    information = trace_sksk - trace_sk**2 / df
    h2_se = float(np.sqrt(2.0 / information)) if information > 0 else float("nan")
    delta = sigma_e / sigma_g

    # --- conjugate gradients: (K + δI) A = [y, X, probes] ------------------------------------------
    def apply(v: torch.Tensor) -> torch.Tensor:
        return operator.matmat(v, exclude) + delta * v

    solved, iterations = conjugate_gradient(
        apply, torch.cat([y[:, None], x, probes], dim=1), tol=tol, max_iter=max_iter
    )
    alpha_y, alpha_x, alpha_probes = solved[:, 0], solved[:, 1 : 1 + p], solved[:, 1 + p :]
    beta = torch.linalg.solve(x.T @ alpha_x, x.T @ alpha_y)
    residual = y - x @ beta
    weight_vector = alpha_y - alpha_x @ beta
    blup = residual - delta * weight_vector
    inverse_diagonal = (probes * alpha_probes).sum(1) / n_probes
    hat_diagonal = (1.0 - delta * inverse_diagonal).clamp(0.0, 1.0 - 1e-6)
    cvblup = (blup - hat_diagonal * residual) / (1.0 - hat_diagonal)
    beta_cov = sigma_g * torch.linalg.inv(x.T @ alpha_x)
    fit = RemlFit(
        h2=h2,
        h2_se=h2_se,
        sigma_g=float(sigma_g),
        sigma_e=float(sigma_e),
        delta=float(delta),
        loglik=float("nan"),
        fixed_effects=beta.numpy(),
        fixed_effects_se=np.sqrt(np.diag(beta_cov.numpy())),
        n_samples=n,
        n_covariates=p - 1,
        method="he-cg",
    )
    result = BlupResult(
        residual=residual.numpy(),
        blup=blup.numpy(),
        cvblup=cvblup.numpy(),
        hat_diagonal=hat_diagonal.numpy(),
        weight_vector=weight_vector.numpy(),
    )
    return MatrixFreeResult(fit=fit, blup=result, cg_iterations=iterations, n_probes=n_probes)
