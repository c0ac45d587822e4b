"""cvBLUP estimator, SNP weights, LOCO and multi-trait fits (exact or matrix-free).

SNP weights (the scoring rule, exactly): with z_ij = (x_ij - mean_j)/scale_j (0 when missing),
b = (σg²/M) Zᵀ V⁻¹ r satisfies Z b = ĝ.  Per counted allele (A1) on the raw dosage scale,
``BETA_j = b_j / scale_j`` and

    ĝ_i = Σ_j (x_ij - mean_j) BETA_j = Σ_j x_ij BETA_j + score_offset,
    score_offset = -Σ_j mean_j BETA_j,

where ``mean_j`` = twice the A1 frequency among the fitted samples.  Hence
``plink2 --bfile P --score OUT.snp_weights.tsv 1 2 3 header-read cols=+scoresums`` gives
``SCORE_SUM`` with ĝ = SCORE_SUM + score_offset (``score_offset`` is in OUT.h2.json); adding
``center`` to ``--score`` gives ĝ directly when plink2's allele frequencies are those of the
fitted samples.  Missing calls are mean-imputed in both.  These are full-sample (not
leave-one-out) weights, for scoring *new* people.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource, as_index
from deepprs.lmm.grm import (
    GenotypeLike,
    grm_cross_product,
    iter_dosage_blocks,
    iter_standardized_blocks,
    n_samples_and_variants,
)
from deepprs.lmm.matrix_free import GenotypeOperator, fit_matrix_free
from deepprs.lmm.reml import BlupResult, EigenGRM, RemlFit, blup_cvblup, fit_reml
from deepprs.utils.runlog import current_run, estimate_memory, track

METHODS = ("auto", "exact", "matrix-free")


def _step(name: str):
    """Time a step in the active run log (no-op outside the CLI)."""
    run = current_run()
    return run.step(name) if run is not None else contextlib.nullcontext()


def _info(message: str) -> None:
    run = current_run()
    if run is not None:
        run.info(message)


@dataclass
class SnpWeights:
    """Per-allele SNP weights on the raw dosage scale.

    Attributes
    ----------
    variant_index : ndarray of int, shape (m,)   positions in the genotype input (polymorphic variants)
    beta : ndarray, shape (m,)                   effect per copy of the counted allele (A1)
    center : ndarray, shape (m,)                 mean dosage of A1 in the fitted samples
    score_offset : float                         ĝ = dosage @ beta + score_offset
    """

    variant_index: np.ndarray
    beta: np.ndarray
    center: np.ndarray
    score_offset: float


def snp_weights_exact(
    genotypes: GenotypeLike,
    weight_vector: np.ndarray,
    *,
    sample_index: np.ndarray | None = None,
    variant_index: np.ndarray | None = None,
    block_size: int = 2000,
    device: torch.device | str = "cpu",
) -> SnpWeights:
    """SNP weights b = Zᵀα/M (α = σg² V⁻¹ r), mapped to per-allele BETA (one streamed pass).

    Parameters
    ----------
    weight_vector : ndarray, shape (n,)   α from :class:`~deepprs.lmm.reml.BlupResult`
    """
    alpha = torch.as_tensor(np.asarray(weight_vector, dtype=np.float64), device=device)
    index, raw, center, scale = [], [], [], []
    for block in iter_standardized_blocks(
        genotypes,
        sample_index=sample_index,
        variant_index=variant_index,
        block_size=block_size,
        device=device,
    ):
        index.append(block.variant_index)
        raw.append((block.z.T @ alpha).cpu().numpy())
        center.append(block.mean)
        scale.append(block.scale)
    return _finish_weights(
        np.concatenate(index), np.concatenate(raw), np.concatenate(center), np.concatenate(scale)
    )


def _finish_weights(
    index: np.ndarray, z_alpha: np.ndarray, center: np.ndarray, scale: np.ndarray
) -> SnpWeights:
    beta = z_alpha / len(index) / scale
    return SnpWeights(variant_index=index, beta=beta, center=center, score_offset=float(-(center @ beta)))


def _variant_codes(genotypes: GenotypeLike, chromosomes: np.ndarray | None) -> np.ndarray | None:
    if chromosomes is not None:
        return np.asarray(chromosomes).astype(str)
    if isinstance(genotypes, GenotypeSource):
        return genotypes.variant_table["chrom"].astype(str).to_numpy()
    return None


class CvBLUP:
    """LMM fit by REML with BLUP, cvBLUP (leave-one-out BLUP), SNP weights and optional LOCO.

    Parameters
    ----------
    method : {"auto", "exact", "matrix-free"}
        "exact": GRM + eigendecomposition + REML; "matrix-free": randomized HE + CG (large N);
        "auto": exact when n_samples <= ``exact_max_n``.
    exact_max_n : int
    loco : bool
        Also compute one cvBLUP per left-out chromosome (``loco_cvblup_``).
    block_size : int
        Variants per streamed genotype block.
    n_probes : int
        Hutchinson probes (matrix-free path).
    cg_tol : float
        Relative residual of the CG solves (matrix-free path).
    device : str
        Torch device for the GRM and its eigendecomposition.
    random_state : int
        Seed for the probes.

    Attributes (after ``fit``)
    --------------------------
    h2_, h2_se_, sigma_g_, sigma_e_ (variance components σg², σe²), delta_, loglik_ (NaN on the
    matrix-free path), fixed_effects_ (intercept first), blup_, cvblup_, hat_diagonal_, residual_
    (n,); snp_weights_ (m,) per A1 copy, snp_index_ (m,) variant positions, center_ (m,),
    score_offset_; n_samples_, n_variants_, method_; with ``loco``: loco_cvblup_ (DataFrame n ×
    chromosomes), loco_h2_ (dict).

    Examples
    --------
    >>> model = CvBLUP().fit(dosage, phenotype)              # doctest: +SKIP
    >>> model.h2_, model.cvblup_[:3]                          # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        method: str = "auto",
        exact_max_n: int = 20_000,
        loco: bool = False,
        block_size: int = 2000,
        n_probes: int = 100,
        cg_tol: float = 1e-6,
        device: str = "cpu",
        random_state: int = 0,
    ) -> None:
        self.method = method
        self.exact_max_n = exact_max_n
        self.loco = loco
        self.block_size = block_size
        self.n_probes = n_probes
        self.cg_tol = cg_tol
        self.device = device
        self.random_state = random_state

    def get_params(self) -> dict:
        return {
            k: getattr(self, k)
            for k in (
                "method",
                "exact_max_n",
                "loco",
                "block_size",
                "n_probes",
                "cg_tol",
                "device",
                "random_state",
            )
        }

    def _resolve_method(self, n: int) -> str:
        if self.method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.method == "auto":
            return "exact" if n <= self.exact_max_n else "matrix-free"
        return self.method

    def fit(
        self,
        genotypes: GenotypeLike,
        y: np.ndarray,
        covariates: np.ndarray | None = None,
        *,
        sample_index: np.ndarray | None = None,
        variant_index: np.ndarray | None = None,
        chromosomes: np.ndarray | None = None,
    ) -> CvBLUP:
        """Fit the LMM.

        Parameters
        ----------
        genotypes : GenotypeSource, dense dosage (n_total × m_total, NaN = missing) or PackedGenotypes
        y : ndarray, shape (n,)   phenotype of the samples in ``sample_index`` (in that order)
        covariates : ndarray, shape (n, c), optional (an intercept is always added)
        sample_index : ndarray of int, shape (n,), optional   rows of ``genotypes`` (default all)
        variant_index : ndarray of int, optional              variants to use (default all)
        chromosomes : array of str, shape (m_total,), optional
            Chromosome per variant, needed for ``loco`` unless ``genotypes`` is a GenotypeSource.

        Returns
        -------
        self
        """
        n_total, m_total = n_samples_and_variants(genotypes)
        samples = as_index(sample_index, n_total, "sample")
        variants = as_index(variant_index, m_total, "variant")
        y = np.asarray(y, dtype=np.float64).ravel()
        if y.shape[0] != len(samples):
            raise InputError(f"y has {y.shape[0]} values but {len(samples)} samples were selected")
        method = self._resolve_method(len(samples))
        codes = _variant_codes(genotypes, chromosomes)
        if self.loco and codes is None:
            raise InputError("loco=True needs the chromosome of every variant (pass chromosomes=...)")
        device = torch.device(self.device)
        if method == "exact":
            self._fit_exact(genotypes, y, covariates, samples, variants, codes, device)
        else:
            self._fit_matrix_free(genotypes, y, covariates, samples, variants, codes, device)
        self.method_ = method
        self.n_samples_ = len(samples)
        return self

    # -- exact path -----------------------------------------------------------------------------
    def _fit_exact(self, genotypes, y, covariates, samples, variants, codes, device) -> None:
        n = len(samples)
        estimate_memory("GRM and its eigenvectors", 3 * n * n * 8)
        per_chrom: dict[str, tuple[torch.Tensor, int]] = {}
        with _step("GRM (streamed genotype pass)"):
            if self.loco:
                chrom_codes = codes[variants]
                keep_all = n * n * 8 * len(pd.unique(chrom_codes)) <= 4 * 2**30
                cross_product = torch.zeros((n, n), dtype=torch.float64, device=device)
                n_kept = 0
                for code in track(pd.unique(chrom_codes), "GRM per chromosome"):
                    part, m_part = grm_cross_product(
                        genotypes,
                        sample_index=samples,
                        variant_index=variants[chrom_codes == code],
                        block_size=self.block_size,
                        device=device,
                    )
                    cross_product += part
                    n_kept += m_part
                    per_chrom[code] = (part if keep_all else None, m_part)
            else:
                cross_product, n_kept = grm_cross_product(
                    genotypes,
                    sample_index=samples,
                    variant_index=variants,
                    block_size=self.block_size,
                    device=device,
                )
        if n_kept == 0:
            raise InputError("no polymorphic variants among the selected samples; cannot build a GRM")
        with _step("eigendecomposition of the GRM"):
            eigen = EigenGRM.from_grm(cross_product / n_kept)
        with _step("REML, BLUP and cvBLUP"):
            fit = fit_reml(eigen, y, covariates)
            blup = blup_cvblup(eigen, y, covariates, fit)
        del eigen
        with _step("SNP weights (second genotype pass)"):
            weights = snp_weights_exact(
                genotypes,
                blup.weight_vector,
                sample_index=samples,
                variant_index=variants,
                block_size=self.block_size,
                device=device,
            )
        self._store(fit, blup, weights, n_kept)
        if self.loco:
            columns, h2s = {}, {}
            for code in track(list(per_chrom), "LOCO fits"):
                part, m_part = per_chrom[code]
                if part is None:
                    part, m_part = grm_cross_product(
                        genotypes,
                        sample_index=samples,
                        variant_index=variants[codes[variants] == code],
                        block_size=self.block_size,
                        device=device,
                    )
                if n_kept - m_part == 0:
                    raise InputError(f"LOCO needs variants on at least two chromosomes (only {code} present)")
                loco_eigen = EigenGRM.from_grm((cross_product - part) / (n_kept - m_part))
                loco_fit = fit_reml(loco_eigen, y, covariates)
                columns[code] = blup_cvblup(loco_eigen, y, covariates, loco_fit).cvblup
                h2s[code] = loco_fit.h2
                _info(f"LOCO chromosome {code}: h2 = {loco_fit.h2:.4f} (M = {n_kept - m_part})")
            self.loco_cvblup_ = pd.DataFrame(columns)
            self.loco_h2_ = h2s

    # -- matrix-free path -----------------------------------------------------------------------
    def _fit_matrix_free(self, genotypes, y, covariates, samples, variants, codes, device) -> None:
        operator = GenotypeOperator.from_genotypes(
            genotypes,
            sample_index=samples,
            variant_index=variants,
            chromosomes=codes,
            block_size=self.block_size,
            device=device,
        )
        result = fit_matrix_free(
            operator, y, covariates, n_probes=self.n_probes, seed=self.random_state, tol=self.cg_tol
        )
        index, z_alpha = operator.transpose_matmat(torch.as_tensor(result.blup.weight_vector)[:, None])
        center, scale = operator.scales()
        weights = _finish_weights(index, z_alpha[:, 0], center, scale)
        self._store(result.fit, result.blup, weights, operator.n_variants())
        self.cg_iterations_ = result.cg_iterations
        if self.loco:
            columns, h2s = {}, {}
            for code in track(operator.chromosomes, "LOCO fits"):
                if operator.n_variants(code) == 0:
                    raise InputError(f"LOCO needs variants on at least two chromosomes (only {code} present)")
                loco = fit_matrix_free(
                    operator,
                    y,
                    covariates,
                    exclude=code,
                    n_probes=self.n_probes,
                    seed=self.random_state,
                    tol=self.cg_tol,
                )
                columns[code] = loco.blup.cvblup
                h2s[code] = loco.fit.h2
            self.loco_cvblup_ = pd.DataFrame(columns)
            self.loco_h2_ = h2s

    def _store(self, fit: RemlFit, blup: BlupResult, weights: SnpWeights, n_kept: int) -> None:
        self.fit_ = fit
        self.h2_, self.h2_se_ = fit.h2, fit.h2_se
        self.sigma_g_, self.sigma_e_, self.delta_ = fit.sigma_g, fit.sigma_e, fit.delta
        self.loglik_ = fit.loglik
        self.fixed_effects_ = fit.fixed_effects
        self.blup_, self.cvblup_ = blup.blup, blup.cvblup
        self.hat_diagonal_, self.residual_ = blup.hat_diagonal, blup.residual
        self.snp_weights_, self.snp_index_ = weights.beta, weights.variant_index
        self.center_, self.score_offset_ = weights.center, weights.score_offset
        self.n_variants_ = n_kept

    def predict(self, genotypes: GenotypeLike, *, sample_index: np.ndarray | None = None) -> np.ndarray:
        """Genetic value Σ_j (x_ij - center_j) BETA_j for (new) samples; missing calls count as center_j.

        ``genotypes`` must have the fitted variants at the same positions (``snp_index_``).

        Returns
        -------
        ndarray, shape (n_selected_samples,)
        """
        if not hasattr(self, "snp_weights_"):
            raise InputError("CvBLUP is not fitted yet; call fit first")
        n_total, _ = n_samples_and_variants(genotypes)
        out = np.zeros(len(as_index(sample_index, n_total, "sample")))
        position = {int(v): k for k, v in enumerate(self.snp_index_)}
        for block_index, dosage in iter_dosage_blocks(
            genotypes, sample_index=sample_index, variant_index=self.snp_index_, block_size=self.block_size
        ):
            k = np.array([position[int(v)] for v in block_index])
            centred = np.where(np.isnan(dosage), 0.0, dosage - self.center_[k])
            out += centred @ self.snp_weights_[k]
        return out


@dataclass
class TraitFit:
    """One trait's fit inside :func:`fit_traits`."""

    fit: RemlFit
    blup: BlupResult
    sample_mask: np.ndarray = field(repr=False)


def fit_traits(
    genotypes: GenotypeLike,
    phenotypes: np.ndarray,
    covariates: np.ndarray | None = None,
    *,
    sample_index: np.ndarray | None = None,
    variant_index: np.ndarray | None = None,
    method: str = "auto",
    exact_max_n: int = 20_000,
    block_size: int = 2000,
    n_probes: int = 100,
    device: str = "cpu",
    random_state: int = 0,
) -> list[TraitFit]:
    """REML + cvBLUP for several traits, reusing one GRM eigendecomposition per missingness pattern.

    The GRM is standardised once over all ``sample_index`` samples; a trait with missing values
    uses the sub-GRM of its non-missing samples (as GCTA does with ``--keep``), and traits that
    share the same non-missing samples share one eigendecomposition.

    Parameters
    ----------
    phenotypes : ndarray, shape (n, T), NaN = missing

    Returns
    -------
    list of TraitFit (one per column); ``blup.cvblup`` covers the samples where ``sample_mask``.
    """
    n_total, m_total = n_samples_and_variants(genotypes)
    samples = as_index(sample_index, n_total, "sample")
    phenotypes = np.asarray(phenotypes, dtype=np.float64)
    if phenotypes.ndim == 1:
        phenotypes = phenotypes[:, None]
    if phenotypes.shape[0] != len(samples):
        raise InputError(f"phenotypes have {phenotypes.shape[0]} rows, expected {len(samples)}")
    n = len(samples)
    resolved = CvBLUP(method=method, exact_max_n=exact_max_n)._resolve_method(n)
    masks = ~np.isnan(phenotypes)
    results: list[TraitFit | None] = [None] * phenotypes.shape[1]
    patterns: dict[bytes, list[int]] = {}
    for t in range(phenotypes.shape[1]):
        if masks[:, t].sum() < 3:
            raise InputError(f"trait {t + 1} has fewer than 3 non-missing values")
        patterns.setdefault(masks[:, t].tobytes(), []).append(t)
    grm_matrix = None
    operator = None
    if resolved == "exact":
        cross_product, n_kept = grm_cross_product(
            genotypes, sample_index=samples, variant_index=variant_index, block_size=block_size, device=device
        )
        grm_matrix = cross_product / max(n_kept, 1)
        del cross_product
    for traits in patterns.values():
        mask = masks[:, traits[0]]
        cov = None if covariates is None else np.asarray(covariates, dtype=np.float64)[mask]
        if resolved == "exact":
            index = torch.as_tensor(np.flatnonzero(mask), device=grm_matrix.device)
            eigen = EigenGRM.from_grm(grm_matrix[index][:, index])
            for t in traits:
                fit = fit_reml(eigen, phenotypes[mask, t], cov)
                results[t] = TraitFit(
                    fit=fit, blup=blup_cvblup(eigen, phenotypes[mask, t], cov, fit), sample_mask=mask
                )
        else:
            operator = GenotypeOperator.from_genotypes(
                genotypes,
                sample_index=samples[mask],
                variant_index=variant_index,
                block_size=block_size,
                device=device,
            )
            for t in traits:
                res = fit_matrix_free(
                    operator, phenotypes[mask, t], cov, n_probes=n_probes, seed=random_state
                )
                results[t] = TraitFit(fit=res.fit, blup=res.blup, sample_mask=mask)
    return [r for r in results if r is not None]
