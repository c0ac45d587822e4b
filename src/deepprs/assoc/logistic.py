"""Logistic-regression GWAS for case/control traits with plink2's default ``firth-fallback``.

Per variant: logistic regression of the case status on [1, covariates, dosage] over the samples
with a called genotype, fitted by Newton–Raphson (IRLS) batched over the variants of a block in
torch. When the ordinary fit does not converge (typically complete or quasi-complete separation)
or the genotype separates cases from controls, the variant is refitted by Firth's penalised
likelihood (Firth 1993; Heinze & Schemper 2002: score Xᵀ(y − p + h(½ − p)), h the hat-matrix
diagonal, step halving on the penalised log-likelihood) and flagged ``FIRTH? = Y``. Wald
statistics use the inverse information at the estimate, as plink2 does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy import special

from deepprs.assoc.blocks import iter_dosage_blocks, n_columns
from deepprs.assoc.design import chromosome_designs, phenotype_groups, testable_variants
from deepprs.assoc.linear import (
    _variant_columns,
    chromosome_segments,
    haploid_scale,
    prepare_inputs,
)
from deepprs.assoc.vif import MAX_CORR, MAX_VIF, check_limits, correlation_checks, errcode_strings, masked_sscp
from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource, sample_sex
from deepprs.utils.device import resolve_device
from deepprs.utils.memory import keep_freed_memory
from deepprs.utils.runlog import track

LOGISTIC_COLUMNS = [
    "CHROM",
    "POS",
    "ID",
    "REF",
    "ALT",
    "A1",
    "OMITTED",
    "A1_FREQ",
    "FIRTH?",
    "TEST",
    "OBS_CT",
    "OR",
    "LOG(OR)_SE",
    "Z_STAT",
    "P",
    "ERRCODE",
]
MAX_ITER = 25
FIRTH_MAX_ITER = 100
TOLERANCE = 1e-9
# (block, samples) float64 working matrices of at most ~10 MB each (a Newton fit keeps about a dozen):
# 128 variants a fit at N 10,000. With 5,000,000 (256 variants) a 20,000-variant run at N 10,000 peaked
# at 954-1,074 MiB in 21.4-21.5 s; with this bound at 725-734 MiB in 18.7-19.0 s (alternating pairs).
MAX_DESIGN_ELEMENTS = 1_280_000


class _Problem:
    """Logistic models sharing the covariate columns C (n × k) with one dosage column per model.

    Every per-model quantity is a GEMM of a (models × n) matrix with a fixed matrix built from C
    (the packed products c_j c_l for the information matrix), so the (models, n, k + 1) design is
    never materialised.
    """

    def __init__(self, covariates: torch.Tensor, y: torch.Tensor, firth: bool) -> None:
        self.c = covariates
        self.y = y
        self.firth = firth
        k = covariates.shape[1]
        rows, cols = torch.triu_indices(k, k, device=covariates.device)
        self.rows, self.cols = rows, cols
        self.cc = covariates[:, rows] * covariates[:, cols]  # (n, K2)
        self.off_diagonal = (rows != cols).to(covariates.dtype)

    def evaluate(self, dosage: torch.Tensor, mask: torch.Tensor, beta: torch.Tensor):
        # (b, n) work in place where possible: each fresh (b, n) temporary is ~20 MB of new pages
        k = self.c.shape[1]
        eta = torch.addmm(beta[:, k:] * dosage, beta[:, :k], self.c.T)
        prob = torch.sigmoid(eta) if self.firth else eta.sigmoid_()
        weight = torch.rsub(prob, 1).mul_(prob).mul_(mask)  # p (1 - p) on the rows used
        info = self.information(dosage, weight)
        if not self.firth:  # the plain Newton iteration needs no likelihood value
            return torch.zeros(dosage.shape[0], dtype=dosage.dtype, device=dosage.device), prob, weight, info
        softplus = torch.nn.functional.softplus
        value = -(mask * (self.y * softplus(-eta) + (1 - self.y) * softplus(eta))).sum(1)
        sign, logdet = torch.linalg.slogdet(info)
        value = value + 0.5 * torch.where(sign > 0, logdet, torch.full_like(logdet, -torch.inf))
        return value, prob, weight, info

    def information(self, dosage: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """[[CᵀWC, CᵀWg], [gᵀWC, gᵀWg]] per model, shape (b, k + 1, k + 1)."""
        b = dosage.shape[0]
        k = self.c.shape[1]
        info = torch.empty(b, k + 1, k + 1, dtype=dosage.dtype, device=dosage.device)
        packed = weight @ self.cc
        info[:, self.rows, self.cols] = packed
        info[:, self.cols, self.rows] = packed
        weighted_dosage = weight * dosage
        cross = weighted_dosage @ self.c
        info[:, :k, k] = cross
        info[:, k, :k] = cross
        info[:, k, k] = _row_dot(weighted_dosage, dosage)
        return info

    def score(self, dosage: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return torch.cat([residual @ self.c, _row_dot(residual, dosage).unsqueeze(1)], dim=1)

    def hat(self, dosage: torch.Tensor, weight: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        """Diagonal of W^½ X I⁻¹ Xᵀ W^½ per model, shape (b, n)."""
        k = self.c.shape[1]
        block = inverse[:, self.rows, self.cols] * (1 + self.off_diagonal)
        quadratic = block @ self.cc.T
        linear = inverse[:, :k, k] @ self.c.T
        return weight * (quadratic + 2 * dosage * linear + dosage**2 * inverse[:, k, k].unsqueeze(1))


def _row_dot(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Row-wise dot products of two (b, n) matrices -> (b,), without a (b, n) temporary."""
    return torch.bmm(left.unsqueeze(1), right.unsqueeze(2)).reshape(-1)


def fit_logistic(
    covariates: torch.Tensor,
    dosage: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    *,
    firth: bool = False,
    max_iter: int | None = None,
    start: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched (Firth-penalised) logistic regressions of y on [covariates, dosage] by Newton–Raphson.

    Parameters
    ----------
    covariates : Tensor, shape (n, k)
        Shared columns, intercept included.
    dosage : Tensor, shape (b, n)
        The last predictor of each of the b models.
    y : Tensor, shape (n,)
        0/1 outcome.
    mask : Tensor, shape (b, n)
        1 for the rows each model uses, 0 for the rows it ignores.
    firth
        Maximise the Firth-penalised likelihood ``l(β) + ½ log det I(β)`` (with step halving).
    start : Tensor, shape (k,), optional
        Starting covariate coefficients (e.g. the covariates-only fit); the dosage starts at 0.

    Returns
    -------
    beta : Tensor (b, k + 1); se : Tensor (b, k + 1) from the inverse information at ``beta``;
    converged : bool Tensor (b,)
    """
    problem = _Problem(covariates, y, firth)
    b = dosage.shape[0]
    p = covariates.shape[1] + 1
    max_iter = max_iter or (FIRTH_MAX_ITER if firth else MAX_ITER)
    beta = torch.zeros(b, p, dtype=dosage.dtype, device=dosage.device)
    if start is not None:
        beta[:, : p - 1] = start
    converged = torch.zeros(b, dtype=torch.bool, device=dosage.device)
    active = torch.arange(b, device=dosage.device)
    ga, ma, ba = dosage, mask, beta.clone()
    previous = torch.zeros_like(ba)  # each model's last step
    value, prob, weight, info = problem.evaluate(ga, ma, ba)
    for _ in range(max_iter):
        if active.numel() == 0:
            break
        residual = torch.sub(y, prob).mul_(ma)
        inverse, status = torch.linalg.inv_ex(info)
        if firth:
            residual.addcmul_(problem.hat(ga, weight, inverse).mul_(ma), torch.rsub(prob, 0.5))
        step = torch.bmm(inverse, problem.score(ga, residual).unsqueeze(2)).squeeze(2)
        del residual, prob, weight  # (b, n) each: not needed past the step (lower peak memory)
        ok = (status == 0) & torch.isfinite(step).all(1)
        step = torch.where(ok.unsqueeze(1), step, torch.zeros_like(step))
        if firth:
            # The Firth step uses the information matrix, not the penalised likelihood's Hessian;
            # where the penalty dominates the curvature (a singleton carrier) it overshoots by ~2x
            # and the iteration settles into a 2-cycle around the maximum between two points of
            # equal penalised likelihood. A step that takes back more than a quarter of the
            # previous one is halved: the 2-cycle then lands on the maximum.
            reverses = (step * previous).sum(1) < -0.25 * (previous * previous).sum(1)
            step = torch.where(reverses.unsqueeze(1), step / 2, step)
        candidate = ba + step
        new = problem.evaluate(ga, ma, candidate)
        if firth:  # step halving on the penalised log-likelihood
            for _halving in range(25):
                worse = ~(new[0] >= value - 1e-12 * value.abs())
                if not worse.any():
                    break
                step = torch.where(worse.unsqueeze(1), step / 2, step)
                candidate = ba + step
                trial = problem.evaluate(ga, ma, candidate)
                new = tuple(
                    torch.where(worse.view(-1, *([1] * (t.dim() - 1))), t, old)
                    for t, old in zip(trial, new, strict=True)
                )
        ba = candidate
        previous = step
        value, prob, weight, info = new
        beta[active] = ba
        done = step.abs().amax(1) < TOLERANCE * (1 + ba.abs().amax(1))
        bad = ~ok | ~torch.isfinite(ba).all(1)
        converged[active[done & ~bad]] = True
        keep = ~(done | bad)
        active = active[keep]
        ga, ma, ba, previous = ga[keep], ma[keep], ba[keep], previous[keep]
        value, prob, weight, info = value[keep], prob[keep], weight[keep], info[keep]
    plain = _Problem(covariates, y, firth=False)
    final_info = plain.evaluate(dosage, mask, torch.nan_to_num(beta))[3]
    inverse, status = torch.linalg.inv_ex(final_info)
    se = torch.sqrt(torch.diagonal(inverse, dim1=1, dim2=2).clamp(min=0))
    converged &= (status == 0) & torch.isfinite(beta).all(1)
    return beta, se, converged


def null_fit(covariates: torch.Tensor, y: torch.Tensor, max_iter: int = 50) -> torch.Tensor:
    """Covariates-only logistic fit (Newton–Raphson), shape (k,); the start of every variant's fit."""
    beta = torch.zeros(covariates.shape[1], dtype=covariates.dtype, device=covariates.device)
    for _ in range(max_iter):
        prob = torch.sigmoid(covariates @ beta)
        info = covariates.T @ (covariates * (prob * (1 - prob)).unsqueeze(1))
        # (a k × k solve, on the CPU: CUDA's lstsq only has the full-rank "gels" driver, where the
        # CPU's default "gelsy" also handles a rank-deficient information matrix)
        step = torch.linalg.lstsq(info.cpu(), (covariates.T @ (y - prob)).cpu()).solution.to(beta.device)
        if not torch.isfinite(step).all():
            return torch.zeros_like(beta)
        beta = beta + step
        if step.abs().max() < TOLERANCE * (1 + beta.abs().max()):
            break
    return beta


def _separated(dosage: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Genotype-only (quasi-)separation: every case's dosage ≥ every control's, or ≤."""
    big = torch.tensor(9.0, dtype=dosage.dtype, device=dosage.device)
    case = (mask > 0) & (y > 0.5)
    ctrl = (mask > 0) & (y < 0.5)
    case_min = torch.where(case, dosage, big).amin(1)
    case_max = torch.where(case, dosage, -big).amax(1)
    ctrl_min = torch.where(ctrl, dosage, big).amin(1)
    ctrl_max = torch.where(ctrl, dosage, -big).amax(1)
    return (case_min >= ctrl_max) | (case_max <= ctrl_min)


def gwas_logistic(
    genotypes: GenotypeSource,
    phenotypes: pd.DataFrame,
    *,
    covariates: pd.DataFrame | None = None,
    sample_index: np.ndarray | None = None,
    variant_index: np.ndarray | None = None,
    loco_covariates: pd.DataFrame | None = None,
    block_size: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
    max_vif: float = MAX_VIF,
    max_corr: float = MAX_CORR,
) -> dict[str, pd.DataFrame]:
    """Per-variant logistic regression for case/control traits (plink2 ``--glm`` firth-fallback).

    Parameters
    ----------
    phenotypes : DataFrame, shape (n, P)
        Case/control status coded 0 = control, 1 = case (NaN = missing); see
        :func:`deepprs.assoc.output.to_case_control` for plink's 1/2 coding.
    covariates, sample_index, variant_index, loco_covariates, device
        As in :func:`deepprs.assoc.linear.gwas_linear`.
    block_size
        Variants per batched fit (memory ~ block_size × N × n_params × 8 bytes × a few).
    max_vif, max_corr
        plink2's ``--vif`` / ``--max-corr`` predictor checks, as in
        :func:`deepprs.assoc.linear.gwas_linear` (variants failing them are not fitted).

    Returns
    -------
    dict mapping phenotype name -> DataFrame with columns ``CHROM POS ID REF ALT A1 OMITTED
    A1_FREQ FIRTH? TEST OBS_CT OR LOG(OR)_SE Z_STAT P ERRCODE`` (OR per copy of A1).

    Notes
    -----
    Calls :func:`deepprs.utils.memory.keep_freed_memory`: with glibc, malloc then keeps up to 256 MB of
    freed memory for reuse for the rest of the process (set ``MALLOC_TRIM_THRESHOLD_`` before starting
    Python to keep your own setting). Without it each Newton step's (b, n) arrays were fresh pages:
    8-9 million page faults on the 20,000-variant benchmark, 26-28 s instead of 15.6 s.
    """
    keep_freed_memory()
    max_vif, max_corr = check_limits(max_vif, max_corr)
    sample_index, variant_index = prepare_inputs(
        genotypes, phenotypes, covariates, sample_index, variant_index, loco_covariates
    )
    for name in phenotypes.columns:
        observed = phenotypes[name].dropna()
        if not observed.isin([0.0, 1.0]).all():
            raise InputError(f"phenotype {name}: logistic regression needs 0/1 (control/case) values")
    device = resolve_device(device)
    width = n_columns(genotypes)
    groups = phenotype_groups(phenotypes)
    cov_names = [] if covariates is None else [str(c) for c in covariates.columns]
    base_cov = None if covariates is None else covariates.to_numpy(dtype=np.float64)
    names = [str(c) for c in phenotypes.columns]
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in names}
    # bound the (block, samples) float64 working matrices (MAX_DESIGN_ELEMENTS)
    block_size = max(1, min(block_size, MAX_DESIGN_ELEMENTS // len(sample_index)))
    sex = sample_sex(genotypes, sample_index)
    variant_index = testable_variants(genotypes.variant_table, variant_index, sex)
    segments = list(chromosome_segments(genotypes.variant_table, variant_index, loco_covariates))
    n_blocks = sum(-(-len(seg) // block_size) for _, seg in segments)
    progress_iter = track(
        _blocks(genotypes, segments, block_size),
        "logistic GWAS",
        total=n_blocks,
        disable=None if progress else True,
    )
    designs: dict[tuple[str | None, str], list] = {}
    for key, block in progress_iter:
        if key not in designs:
            designs = {key: chromosome_designs(key[0], groups, phenotypes, base_cov, cov_names, loco_covariates,
                                               sample_index, width, max_vif=max_vif, max_corr=max_corr, sex=sex,
                                               sex_chromosome=key[1])}
        for design in designs[key]:
            for j, name in enumerate(design.pheno_names):
                parts[name].append(_logistic_block(block, design, j, device, genotypes.variant_table,
                                                   max_vif=max_vif, max_corr=max_corr))
    tables = {}
    for name in names:
        table = pd.concat(parts[name], ignore_index=True) if parts[name] else pd.DataFrame(columns=LOGISTIC_COLUMNS)
        table = table.sort_values("_index", kind="stable").reset_index(drop=True)
        tables[name] = table[LOGISTIC_COLUMNS]
    return tables


def _blocks(genotypes, segments, block_size):
    for key, segment in segments:
        for block in iter_dosage_blocks(genotypes, segment, block_size):
            yield key, block


def _logistic_block(block, design, column: int, device: torch.device, variant_table: pd.DataFrame, *,
                    max_vif: float = MAX_VIF, max_corr: float = MAX_CORR) -> pd.DataFrame:
    rows = np.flatnonzero(design.weight)
    n_used = len(rows)
    b = len(block.variant_index)
    dosage = block.dosage[:, rows].to(device=device, dtype=torch.float64)  # (b, n_used)
    position = np.full(design.weight.shape[0], -1)
    position[rows] = np.arange(n_used)
    mask = torch.ones(b, n_used, dtype=torch.float64)
    keep = position[block.missing_sample] >= 0
    excluded_model = torch.from_numpy(block.missing_variant[keep].astype(np.int64))
    excluded_sample = torch.from_numpy(position[block.missing_sample[keep]].astype(np.int64))
    mask[excluded_model, excluded_sample] = 0.0
    mask = mask.to(device)
    y = torch.from_numpy(design.phenotype[rows, column]).to(device)
    covariates = torch.from_numpy(np.column_stack([np.ones(n_used), design.covariates[rows]])).to(device)
    obs_ct = mask.sum(1)
    dosage_sum = (dosage * mask).sum(1)
    g_mean = dosage_sum / obs_ct.clamp(min=1)
    g_var = ((dosage - g_mean.unsqueeze(1)) ** 2 * mask).sum(1)
    constant = ~(g_var > 1e-8)
    # plink2's CORR_TOO_HIGH / VIF_INFINITE / VIF_TOO_HIGH on [g, covariates] over the observed samples
    if design.covariates.shape[1]:
        check_code = correlation_checks(
            masked_sscp(dosage, mask, covariates[:, 1:], g_sum=dosage_sum, g_tss=g_var,
                        excluded=(excluded_model.to(device), excluded_sample.to(device))),
            max_vif=max_vif, max_corr=max_corr,
        )[0]
    else:
        check_code = torch.zeros(b, dtype=torch.int64, device=device)
    checked = check_code != 0
    n_params = covariates.shape[1] + 1
    beta = torch.full((b, n_params), float("nan"), dtype=torch.float64, device=device)
    se = torch.full_like(beta, float("nan"))
    converged = torch.zeros(b, dtype=torch.bool, device=device)
    testable = torch.nonzero(~constant & ~checked).squeeze(1)
    start = null_fit(covariates, y)
    if testable.numel():
        beta[testable], se[testable], converged[testable] = fit_logistic(
            covariates, dosage[testable], y, mask[testable], start=start
        )
    separated = _separated(dosage, y, mask) & ~constant & ~checked
    use_firth = (~converged | separated) & ~constant & ~checked
    firth_ok = torch.zeros(b, dtype=torch.bool, device=device)
    if use_firth.any():
        idx = torch.nonzero(use_firth).squeeze(1)
        f_beta, f_se, f_conv = fit_logistic(covariates, dosage[idx], y, mask[idx], firth=True, start=start)
        beta[idx], se[idx], firth_ok[idx] = f_beta, f_se, f_conv
    scale = haploid_scale(variant_table, block.variant_index)  # chrY / chrM: per haploid copy, as plink2
    log_or = beta[:, -1].cpu().numpy() * scale
    log_or_se = se[:, -1].cpu().numpy() * scale
    errcode = errcode_strings(check_code.cpu().numpy())
    use_firth_np = use_firth.cpu().numpy()
    errcode[use_firth_np & ~firth_ok.cpu().numpy()] = "FIRTH_CONVERGE_FAIL"
    a1_freq = (dosage_sum / (2 * obs_ct.clamp(min=1))).cpu().numpy()
    constant_np = constant.cpu().numpy()
    errcode[constant_np] = "CONST_OMITTED_ALLELE"
    df_resid = obs_ct.cpu().numpy() - n_params
    errcode[df_resid < 1] = "SAMPLE_CT<=PREDICTOR_CT"
    failed = errcode != "."
    z_stat = np.where(failed, np.nan, log_or / log_or_se)
    table = _variant_columns(variant_table.iloc[block.variant_index]).reset_index(drop=True)
    table["A1_FREQ"] = a1_freq
    table["FIRTH?"] = np.where(use_firth_np & ~constant_np, "Y", "N")
    table["TEST"] = "ADD"
    table["OBS_CT"] = obs_ct.cpu().numpy().astype(np.int64)
    table["OR"] = np.where(failed, np.nan, np.exp(log_or))
    table["LOG(OR)_SE"] = np.where(failed, np.nan, log_or_se)
    table["Z_STAT"] = z_stat
    table["P"] = special.ndtr(-np.abs(z_stat)) * 2
    table["ERRCODE"] = errcode
    table["_index"] = block.variant_index
    return table
