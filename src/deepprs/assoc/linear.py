"""Linear-regression GWAS with plink2 ``--glm`` semantics, streamed over variant blocks.

For every variant and quantitative phenotype: OLS of y on [1, covariates, dosage] over the
samples that have the phenotype, all covariates and a called genotype (no imputation).

Speed comes from the Frisch–Waugh–Lovell theorem. With Q an orthonormal basis of [1, C] over the
phenotype's samples and r = y − QQᵀy, the complete-data cross-products are one matrix product of
the dosage block with [w, Q, r]. A variant with missing calls m only needs the missing rows
subtracted: over the observed rows the covariate Gram matrix is A = I − Q_mᵀQ_m, Qᵀr becomes
−Q_mᵀr_m and rᵀr loses r_mᵀr_m (a batched k × k solve per variant); the zero-filled dosage needs
no correction. Then

    gᵀMg = gᵀg − q_gᵀA⁻¹q_g,   gᵀMr = gᵀr − q_gᵀA⁻¹q_r,   rᵀMr = rᵀr − q_rᵀA⁻¹q_r,
    BETA = gᵀMr / gᵀMg,  SE² = (rᵀMr − BETA·gᵀMr) / (OBS_CT − k − 1) / gᵀMg,

exactly the OLS fit on the observed rows. Products of the int8 dosages with real matrices are
computed exactly (int8 digit splitting, see :mod:`deepprs.assoc.blocks`), so results agree with
plink2's double-precision fits.

Speed notes (N = 10,000, 100,000 variants, see benchmarks/RESULTS_gwas.md): for ``.bed`` and
hard-call ``.pgen`` input the missing calls and gᵀg (from the homozygous-A1 counts) come from a
start-up scan (:mod:`deepprs.assoc.bedscan`) that the CLI runs in a forked process while torch is
being imported; blocks are decoded (into reused buffers) and their missing-call sums computed by two
worker threads ahead of the torch algebra (exact float32 ``embedding_bag`` sums of quantised digits,
see :func:`~deepprs.assoc.blocks.missing_call_sums`); the k × k quadratic forms come from a
Cholesky factorisation vectorised over the block's variants (:func:`gram_forms`; LU for the
matrices it rejects), and variants that provably pass plink2's predictor checks skip them; the small
per-block algebra runs on one thread (OpenMP barriers on tiny tensors cost milliseconds per op on a
loaded machine), and numpy's / scipy's BLAS on one thread beside the workers. Nothing before the
P-values imports scipy (its import, ~0.12 s, runs in a CLI background thread during the regression).

plink2's predictor checks (``--vif`` / ``--max-corr``: CORR_TOO_HIGH, VIF_INFINITE, VIF_TOO_HIGH
over each variant's observed samples, the covariates' VIFs included) come from the same
quantities (A, Qᵀg, Σg, gᵀMg) with a proven screen, see :mod:`deepprs.assoc.vif`.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepprs.assoc.bedscan import as_words, hom_a1_word_counts, linear_block_size, mask_words
from deepprs.assoc.blocks import (
    BlockBuffers,
    DigitMatrix,
    DosageBlock,
    SumDigits,
    concurrent_reads,
    dosage_bytes,
    exact_products,
    exclusion_mask,
    missing_call_sums,
    n_columns,
    read_dosage_block,
    squared_products,
    to_digits,
    to_sum_digits,
)
from deepprs.assoc.design import (
    AUTOSOMAL,
    CHR_MT,
    CHR_Y,
    Design,
    chromosome_class,
    chromosome_designs,
    phenotype_groups,
    plink_chromosome,
    testable_variants,
)
from deepprs.assoc.vif import MAX_CORR, MAX_VIF, VIF_INFINITE, check_limits, errcode_strings, observed_gram
from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource, as_index, sample_sex
from deepprs.utils.device import blas_threads, resolve_device, switch_interval
from deepprs.utils.runlog import track

GIL_SWITCH_SECONDS = 0.0005  # while prefetch workers run (the interpreter's default: 0.005)

LINEAR_COLUMNS = [
    "CHROM",
    "POS",
    "ID",
    "REF",
    "ALT",
    "A1",
    "OMITTED",
    "A1_FREQ",
    "TEST",
    "OBS_CT",
    "BETA",
    "SE",
    "T_STAT",
    "P",
    "ERRCODE",
]


@dataclass
class _LinearContext:
    design: Design
    products: DigitMatrix  # [w, Q, r]
    weight_digits: DigitMatrix  # [w] for sum of squared dosages
    # summed over each variant's missing calls: [w, q (x) r, r^2] (1 + kP + P columns), then triu(q q')
    corrections: SumDigits
    n_corrections: int  # 1 + kP + P
    residual_ss: np.ndarray  # (P,)
    or_mask: np.ndarray | None  # (bytes,) .bed exclusion mask of the unused columns
    or_words: np.ndarray | None  # the same as 64-bit words (None: every column used)
    all_samples_used: bool  # every sample of the genotype file is in the design


def _context(design: Design, n_samples: int) -> _LinearContext:
    basis, residual, weight = design.basis, design.residual, design.weight
    (n, k), n_pheno = basis.shape, residual.shape[1]
    # the columns summed over missing calls, [w, q (x) r, r^2, triu(q q')], written in place (fresh
    # n × 79 temporaries cost page faults while the first block waits for this context)
    n_corrections = 1 + k * n_pheno + n_pheno
    corrections = np.empty((n, n_corrections + k * (k + 1) // 2))
    corrections[:, 0] = weight
    for p in range(n_pheno):  # q (x) r: column 1 + j * P + p holds q_j r_p
        np.multiply(basis, residual[:, p : p + 1], out=corrections[:, 1 + p : 1 + k * n_pheno : n_pheno])
    np.square(residual, out=corrections[:, 1 + k * n_pheno : n_corrections])
    start = n_corrections
    for i in range(k):  # row i of the upper triangle (np.triu_indices order)
        np.multiply(basis[:, i : i + 1], basis[:, i:], out=corrections[:, start : start + k - i])
        start += k - i
    or_mask = exclusion_mask(weight) if len(weight) % 4 == 0 else None
    return _LinearContext(
        design=design,
        products=to_digits(np.column_stack([weight, basis, residual])),
        weight_digits=to_digits(weight[:, None]),
        corrections=to_sum_digits(corrections),
        n_corrections=n_corrections,
        residual_ss=(residual**2).sum(axis=0),
        or_mask=or_mask,
        or_words=None if or_mask is None else mask_words(or_mask),
        all_samples_used=bool((weight[:n_samples] > 0).all()),
    )


@dataclass
class _Prepared:
    """Per-design work done in a prefetch worker: the missing-call sums of the ``corrections`` (split
    into [w, q (x) r, r^2] and triu(q q')) and, on the CPU, the complete-data products (b × (1 + k + P))."""

    sums: tuple[np.ndarray, np.ndarray]
    products: torch.Tensor | None = None
    squares: torch.Tensor | None = None  # (b,) weighted sums of squared dosages (blocks without .bed bytes)


def _correction_sums(block: DosageBlock, ctx: _LinearContext) -> tuple[np.ndarray, np.ndarray]:
    """Missing-call sums of [w, q (x) r, r^2] ((1 + kP + P) × b) and of triu(q q') (k(k+1)/2 × b),
    one column per variant (the per-variant algebra works batch last)."""
    sums = np.ascontiguousarray(missing_call_sums(block, ctx.corrections).T)
    return sums[: ctx.n_corrections], sums[ctx.n_corrections :]


def _prepare_block(block: DosageBlock, contexts: list[_LinearContext], *, products: bool) -> list[_Prepared]:
    """Worker-thread part of a block: sums (always), products and sums of squares (``products``:
    CPU runs, where the matrix products then run beside the main thread's per-variant algebra)."""
    out = []
    for ctx in contexts:
        sums = _correction_sums(block, ctx)
        if not products:
            out.append(_Prepared(sums))
            continue
        counted = block.packed is not None or (block.hom_a1_all is not None and ctx.all_samples_used)
        squares = None if counted else squared_products(block.dosage, ctx.weight_digits)[:, 0]
        out.append(_Prepared(sums, exact_products(block.dosage, ctx.products), squares))
    return out


def gram_forms(
    gram: torch.Tensor, rhs: torch.Tensor, *, overwrite: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Quadratic forms of a batch of symmetric positive semi-definite matrices' inverses.

    With ``u = rhs[:, 0]`` and ``V = rhs[:, 1:]``: ``uᵀ A⁻¹ u``, ``uᵀ A⁻¹ V`` and the diagonal of
    ``Vᵀ A⁻¹ V``, which is all the per-variant regression needs. A column-by-column Cholesky
    factorisation A = LLᵀ with the forward substitution z = L⁻¹ rhs alongside, so that
    xᵀA⁻¹y = zₓᵀz_y. The batch is the last dimension: each step is a few elementwise ops on
    contiguous vectors of b values, at k = 11 and 4,096 matrices ~1.6 ms on one CPU thread, less
    than half of batched LAPACK (:func:`torch.linalg.cholesky_ex`, which also zeroes the upper
    triangles, and :func:`torch.linalg.solve_triangular`) and the layout changes it needs.
    Matrices with a pivot that is not positive (as LAPACK's ``potrf`` rejects them) go to LU
    (:func:`torch.linalg.solve_ex`), which reports the singular ones.

    Parameters
    ----------
    gram : Tensor, shape (k, k, b)
        Symmetric in its first two dimensions. With ``overwrite`` its lower triangle and
        diagonal receive L (the strict upper triangle is kept).
    rhs : Tensor, shape (k, 1 + r, b)
        Not modified.

    Returns
    -------
    uu : Tensor, shape (b,)
    uv : Tensor, shape (b, r)
    vv : Tensor, shape (b, r)
    info : Tensor of int, shape (b,)
        Non-zero where the matrix is singular (LU found a zero pivot); the forms there are not
        meaningful.
    """
    if gram.dim() != 3 or gram.shape[0] != gram.shape[1] or rhs.dim() != 3 or rhs.shape[0] != gram.shape[0] \
            or rhs.shape[2] != gram.shape[2]:
        raise ValueError("gram_forms takes batch-last tensors, gram (k, k, b) and rhs (k, 1 + r, b); got "
                         f"{tuple(gram.shape)} and {tuple(rhs.shape)}")
    k, _, b = gram.shape
    factor = gram if overwrite else gram.clone()
    diagonal = torch.diagonal(factor, 0, 0, 1).clone()  # (b, k): A's, for the LU fallback
    z = rhs.clone()
    rejected = torch.zeros(b, dtype=torch.bool, device=gram.device)
    for j in range(k):
        column = factor[j:, j]  # A[j:, j] -> L[j:, j], (k - j, b)
        if j:
            row = factor[j, :j]  # L[j, :j]
            column -= (factor[j:, :j] * row).sum(1)
            z[j] -= (z[:j] * row.unsqueeze(1)).sum(0)
        pivot = column[0]
        failed = ~(pivot > 0)  # (NaN too)
        rejected |= failed
        pivot.masked_fill_(failed, 1.0).sqrt_()
        column[1:] /= pivot
        z[j] /= pivot
    u = z[:, 0]
    uu = (u * u).sum(0)
    uv = (u.unsqueeze(1) * z[:, 1:]).sum(0).T
    vv = (z[:, 1:] * z[:, 1:]).sum(0).T
    info = torch.zeros(b, dtype=torch.int32, device=gram.device)
    hard = torch.nonzero(rejected).flatten()
    if hard.numel():
        upper = torch.triu(factor[:, :, hard].permute(2, 0, 1), 1)  # A's strict upper triangle, kept
        matrices = upper + upper.transpose(1, 2) + torch.diag_embed(diagonal[hard])
        given = rhs[:, :, hard].permute(2, 0, 1)  # (h, k, 1 + r)
        exact, hard_info = torch.linalg.solve_ex(matrices, given)
        uu[hard] = (given[:, :, 0] * exact[:, :, 0]).sum(1)
        uv[hard] = torch.einsum("hk,hkp->hp", given[:, :, 0], exact[:, :, 1:])
        vv[hard] = (given[:, :, 1:] * exact[:, :, 1:]).sum(1)
        info[hard] = hard_info
    return uu, uv, vv, info


def prefetch_blocks(
    source: GenotypeSource,
    tasks: list[tuple[Any, np.ndarray]],
    *,
    depth: int = 2,
    context: Callable[[Any], Any] | None = None,
    prepare: Callable[[DosageBlock, Any], Any] | None = None,
    workers: int | None = None,
) -> Iterator[tuple[Any, Any, DosageBlock, Any]]:
    """Read, decode and prepare the blocks of ``tasks`` in background threads, ``depth`` ahead.

    For each ``(key, block_index)`` of ``tasks``, in order, yields ``(key, ctx, block, prepared)``
    with ``ctx = context(key)`` (called in the calling thread once the block is queued, while the
    workers already read it and the blocks queued with it), ``block = read_dosage_block(source, block_index)`` and
    ``prepared = prepare(block, ctx)``
    (both in a worker thread; None without ``prepare``). numpy and torch release the GIL in their
    kernels, so on two cores the work on the next blocks overlaps the torch algebra of the
    current one, and the cores share the work.

    A yielded block is valid until the next one is requested: its dosage buffer is then reused
    for a later block.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    # as many workers as torch may use threads (--threads), at most 2 for a .bed, 1 for other readers
    if workers is None:
        workers = torch.get_num_threads()
    workers = max(1, min(concurrent_reads(source), depth, workers))
    pending: deque = deque()
    free_buffers: list[BlockBuffers] = []
    remaining = iter(tasks)

    def work(block_index: np.ndarray, ctx: Future, buffer: BlockBuffers | None) -> tuple[DosageBlock, Any]:
        block = read_dosage_block(source, block_index, buffer=buffer)
        return block, (None if prepare is None else prepare(block, ctx.result()))

    def submit(pool: ThreadPoolExecutor, key: Any, block_index: np.ndarray) -> None:
        # the worker starts reading at once and waits for the context only to prepare the block
        buffer = free_buffers.pop() if free_buffers else None
        ctx_slot: Future = Future()
        pending.append((key, ctx_slot, pool.submit(work, block_index, ctx_slot, buffer)))

    def build_contexts() -> None:
        # the contexts of the queued blocks, in order (a segment's designs: ~0.1 s for the first
        # block, cached for the next ones), built here while the workers read
        # (a context that fails reaches the handler below, which stops the waiting workers)
        for key, ctx_slot, _ in pending:
            if not ctx_slot.done():
                ctx_slot.set_result(None if context is None else context(key))

    # the workers give the GIL back between their kernels; a short switch interval gets it to them
    # soon after (e.g. while this thread builds a segment's designs)
    with switch_interval(GIL_SWITCH_SECONDS), ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for key, block_index in islice(remaining, depth):
                submit(pool, key, block_index)
            build_contexts()
            while pending:
                key, ctx_slot, future = pending.popleft()
                block, prepared = future.result()
                following = next(remaining, None)
                if following is not None:
                    submit(pool, *following)
                    build_contexts()
                yield key, ctx_slot.result(), block, prepared
                if block.buffer is not None:  # the caller is done with this block: reuse its buffer
                    free_buffers.append(block.buffer)
        except BaseException as exc:  # (Ctrl-C, an error, the generator closed early)
            for _, ctx_slot, _ in pending:  # a worker still waiting for its context stops, not hangs
                if not ctx_slot.done():
                    ctx_slot.set_exception(exc if isinstance(exc, Exception) else InputError("interrupted"))
            raise


def _linear_block(
    block: DosageBlock,
    ctx: _LinearContext,
    device: torch.device,
    prepared: _Prepared | None = None,
) -> dict[str, np.ndarray]:
    """OLS statistics for one block and one design; arrays of shape (b, P). ``prepared``: what a
    prefetch worker already computed for this block and design."""
    dosage = block.dosage.to(device)
    if prepared is None:
        prepared = _Prepared(_correction_sums(block, ctx))
    products = prepared.products
    products = exact_products(dosage, ctx.products) if products is None else products.to(device)  # (b, 1 + k + P)
    with _one_thread(device):
        return _linear_statistics(block, ctx, dosage, products, device, prepared.sums, prepared.squares)


def products_in_workers(device: torch.device) -> bool:
    """Whether the prefetch workers take the matrix products (CPU runs: they then run beside the
    main thread's algebra); on an accelerator the main thread does, on the device. Tests switch it
    off to run the accelerator's order of work on the CPU."""
    return device.type == "cpu"


@contextlib.contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """Run small batched algebra on one CPU thread: with more threads every tiny op waits at an
    OpenMP barrier, which costs milliseconds per op on a loaded machine."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _linear_statistics(
    block: DosageBlock,
    ctx: _LinearContext,
    dosage: torch.Tensor,
    products: torch.Tensor,
    device: torch.device,
    sums: tuple[np.ndarray, np.ndarray],
    squares: torch.Tensor | None = None,
) -> dict[str, np.ndarray]:
    """Per-variant statistics from the complete-data products (b × (1 + k + P)) of one block
    (``squares``: the weighted sums of squared dosages, when a worker already took them)."""
    design = ctx.design
    k = design.basis.shape[1]
    n_pheno = design.residual.shape[1]
    b = dosage.shape[0]
    q_g = products[:, 1 : 1 + k]
    g_r = products[:, 1 + k :]
    corr = torch.from_numpy(sums[0]).to(device)  # (1 + kP + P, b)
    dosage_sum = products[:, 0]
    n_missing = corr[0]
    # hard calls: sum of squared dosages = sum of dosages + 2 x (homozygous A1 calls), with the
    # counts from a start-up scan (every sample used) or from the .bed bytes
    if block.hom_a1_all is not None and ctx.all_samples_used:
        g_g = dosage_sum + 2.0 * torch.from_numpy(block.hom_a1_all.astype(np.float64)).to(device)
    elif block.packed is not None and ctx.or_mask is not None:
        words = block.words if block.words is not None else as_words(block.packed)
        hom_a1 = torch.from_numpy(hom_a1_word_counts(words, ctx.or_words).astype(np.float64)).to(device)
        g_g = dosage_sum + 2.0 * hom_a1
    elif squares is not None:
        g_g = squares.to(device)
    else:
        g_g = squared_products(dosage, ctx.weight_digits)[:, 0]
    missing_outer = torch.from_numpy(sums[1]).to(device)  # triu(Q_m'Q_m), (k(k+1)/2, b)
    rhs = torch.empty(k, 1 + n_pheno, b, dtype=torch.float64, device=device)
    rhs[:, 0] = q_g.T
    torch.neg(corr[1 : 1 + k * n_pheno].view(k, n_pheno, b), out=rhs[:, 1:])  # Q_obs'r = -Q_m'r_m
    r_r = torch.from_numpy(ctx.residual_ss).to(device) - corr[1 + k * n_pheno :].T  # (b, P)
    g_form, cross_form, r_form, info = gram_forms(observed_gram(missing_outer), rhs, overwrite=True)
    g_mg = g_g - g_form
    g_mr = g_r - cross_form
    r_mr = r_r - r_form
    obs_ct = design.n_used - n_missing
    # genotype variance over the observed rows, for the constant-genotype and VIF checks
    g_tss = g_g - dosage_sum**2 / obs_ct.clamp(min=1)
    with torch.no_grad():
        beta = g_mr / g_mg.unsqueeze(1)
        df = (obs_ct - k - 1).unsqueeze(1)
        sigma2 = (r_mr - beta * g_mr) / df
        se = torch.sqrt(sigma2.clamp(min=0) / g_mg.unsqueeze(1))
        t_stat = beta / se
    out = {
        "OBS_CT": obs_ct.cpu().numpy(),
        "A1_FREQ": (dosage_sum / (2 * obs_ct.clamp(min=1))).cpu().numpy(),
        "BETA": beta.cpu().numpy(),
        "SE": se.cpu().numpy(),
        "T_STAT": t_stat.cpu().numpy(),
        "df": df.cpu().numpy()[:, 0],
    }
    # plink2 2.00a3.5 reports a genotype constant over the observed samples as CONST_OMITTED_ALLELE,
    # whichever allele is fixed; too few samples is SAMPLE_CT<=PREDICTOR_CT. Neither gets the checks.
    constant = ~(g_tss > 1e-8 * g_g.clamp(min=1.0))
    too_few = df[:, 0] < 1
    # plink2's CORR_TOO_HIGH / VIF_INFINITE / VIF_TOO_HIGH over each variant's observed rows
    check_code = design.predictor_check.codes(
        missing_outer, q_g, dosage_sum, g_tss, g_mg, obs_ct,
        direct=lambda rows: _direct_sscp(block, design, dosage, rows), skip=constant | too_few,
    )
    check_code[info != 0] = VIF_INFINITE  # covariates singular over the observed rows
    errcode = errcode_strings(check_code.cpu().numpy())
    errcode[constant.cpu().numpy()] = "CONST_OMITTED_ALLELE"
    errcode[too_few.cpu().numpy()] = "SAMPLE_CT<=PREDICTOR_CT"
    out["ERRCODE"] = errcode
    return out


def _direct_sscp(block: DosageBlock, design: Design, dosage: torch.Tensor, rows: torch.Tensor,
                 chunk: int = 64) -> torch.Tensor:
    """Centred cross-products of [dosage, covariates] over each variant's observed samples,
    computed from the data, for a few rows of the block -> (len(rows), c + 1, c + 1)."""
    device = dosage.device
    covariates = torch.from_numpy(design.covariates).to(device)
    position = np.full(dosage.shape[0], -1)
    parts = []
    for start in range(0, len(rows), chunk):
        rows_np = rows[start : start + chunk].cpu().numpy()
        mask = np.tile(design.weight, (len(rows_np), 1))
        position[:] = -1
        position[rows_np] = np.arange(len(rows_np))
        missing = position[block.missing_variant] >= 0
        mask[position[block.missing_variant[missing]], block.missing_sample[missing]] = 0.0
        mask_t = torch.from_numpy(mask).to(device)
        predictors = torch.cat(
            [dosage[rows_np].to(torch.float64).unsqueeze(2), covariates.unsqueeze(0).expand(len(rows_np), -1, -1)],
            dim=2,
        )  # (f, n_columns, c + 1)
        n_obs = mask_t.sum(1).clamp(min=1)
        mean = torch.einsum("fn,fnp->fp", mask_t, predictors) / n_obs.unsqueeze(1)
        centred = (predictors - mean.unsqueeze(1)) * mask_t.unsqueeze(2)
        parts.append(centred.transpose(1, 2) @ centred)
    return torch.cat(parts)


def _variant_columns(variant_table: pd.DataFrame) -> pd.DataFrame:
    """The variant columns of a ``--glm`` table. Text columns stay Python-string (object) columns,
    the form the writer formats: pandas' string columns would convert every value twice (~30 ms
    per 100,000 variants)."""
    def text(values: np.ndarray) -> pd.Series:
        return pd.Series(values, dtype=object, copy=False)

    a1, ref, alt = (variant_table[column].astype(str).to_numpy(dtype=object) for column in ("a1", "ref", "alt"))
    return pd.DataFrame(
        {
            "CHROM": text(plink_chromosome(variant_table["chrom"])),
            "POS": variant_table["pos"].to_numpy(),
            "ID": text(variant_table["id"].astype(str).to_numpy(dtype=object)),
            "REF": text(ref),
            "ALT": text(alt),
            "A1": text(a1),
            "OMITTED": text(np.where(a1 == alt, ref, alt)),
        },
        copy=False,
    )


def _p_from_t(t_stat: np.ndarray, df: np.ndarray) -> np.ndarray:
    from scipy import special  # imported when first needed (~0.15 s of start-up)

    with np.errstate(invalid="ignore"):
        return 2.0 * special.stdtr(df, -np.abs(t_stat))


def prepare_inputs(
    genotypes: GenotypeSource,
    phenotypes: pd.DataFrame,
    covariates: pd.DataFrame | None,
    sample_index: np.ndarray | None,
    variant_index: np.ndarray | None,
    loco_covariates: pd.DataFrame | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes; return (sample_index, variant_index) as int arrays."""
    sample_index = as_index(sample_index, genotypes.n_samples, "sample")
    variant_index = as_index(variant_index, genotypes.n_variants, "variant")
    if len(phenotypes) != len(sample_index):
        raise InputError(f"phenotypes have {len(phenotypes)} rows but sample_index selects {len(sample_index)} samples")
    for name, table in (("covariates", covariates), ("loco_covariates", loco_covariates)):
        if table is not None and len(table) != len(sample_index):
            raise InputError(f"{name} have {len(table)} rows but sample_index selects {len(sample_index)} samples")
    if phenotypes.shape[1] == 0:
        raise InputError("no phenotype columns to test")
    return sample_index, variant_index


def chromosome_segments(
    variant_table: pd.DataFrame, variant_index: np.ndarray, loco_covariates: pd.DataFrame | None
) -> Iterator[tuple[tuple[str | None, str], np.ndarray]]:
    """Split ``variant_index`` into the groups that share regression designs, in order of first
    appearance: by chromosome when LOCO covariates are used, and by sex-chromosome class (chrX and
    chrY get their own designs, see :mod:`deepprs.assoc.design`).

    Yields
    ------
    (loco_chromosome or None, sex_chromosome), variant positions
    """
    chrom = variant_table["chrom"].astype(str).to_numpy()[variant_index]
    sex_class = chromosome_class(chrom)
    sex_class[sex_class == CHR_MT] = AUTOSOMAL           # haploid coding only; the autosomal design
    if loco_covariates is None:
        keys = sex_class
    else:
        available = [str(c) for c in loco_covariates.columns]
        for code in pd.unique(chrom):
            if code not in available:
                raise InputError(f"the LOCO cvBLUP file has no column for chromosome {code}; it has "
                                 f"{', '.join(available)}")
        keys = chrom
    for key in pd.unique(keys):
        members = keys == key
        yield ((None if loco_covariates is None else str(key)), str(sex_class[members][0])), variant_index[members]


def grid_blocks(segment: np.ndarray, block_size: int) -> list[np.ndarray]:
    """Split ``segment`` (ascending variant positions) at multiples of ``block_size``: each block then
    lies within one block of a start-up scan (:mod:`deepprs.assoc.bedscan`), which can serve it even
    when variants were filtered out or split by chromosome. A contiguous segment from 0 gives the
    scan's own blocks."""
    if len(segment) == 0:
        return []
    if not (np.diff(segment) > 0).all():  # pragma: no cover - segments are ascending
        return [segment[start : start + block_size] for start in range(0, len(segment), block_size)]
    cell = segment // block_size
    breaks = np.flatnonzero(np.diff(cell)) + 1
    return np.split(segment, breaks)


def haploid_scale(variant_table: pd.DataFrame, index: np.ndarray) -> np.ndarray:
    """Per variant of ``index``: 2 on chrY and chrM, whose genotypes count haploid copies (plink2
    codes them 0/1, so BETA and SE double), else 1."""
    kind = chromosome_class(variant_table["chrom"].to_numpy()[index])
    return np.where((kind == CHR_Y) | (kind == CHR_MT), 2.0, 1.0)


def gwas_linear(
    genotypes: GenotypeSource,
    phenotypes: pd.DataFrame,
    *,
    covariates: pd.DataFrame | None = None,
    sample_index: np.ndarray | None = None,
    variant_index: np.ndarray | None = None,
    loco_covariates: pd.DataFrame | None = None,
    block_size: int = 4096,
    device: str | torch.device = "cpu",
    progress: bool = True,
    max_vif: float = MAX_VIF,
    max_corr: float = MAX_CORR,
) -> dict[str, pd.DataFrame]:
    """Per-variant linear regression for quantitative traits (plink2 ``--glm``, ADD test).

    Parameters
    ----------
    genotypes
        Genotype source; dosages count ``variant_table.a1`` (the A1 / effect allele).
    phenotypes : DataFrame, shape (n, P)
        One column per trait, rows aligned with ``sample_index``; NaN = missing (dropped per trait).
    covariates : DataFrame, shape (n, c), optional
        Rows aligned with ``sample_index``; samples missing any covariate are dropped. Constant or
        collinear columns are dropped with a warning.
    sample_index : ndarray of int, shape (n,), optional
        Genotype-file rows of the samples (default: all, in file order).
    variant_index : ndarray of int, optional
        Variants to test (default: all).
    loco_covariates : DataFrame, shape (n, n_chromosomes), optional
        One column per chromosome code (e.g. LOCO cvBLUP predictions); for variants on
        chromosome c, column c is added as an extra covariate.
    block_size
        Variants per block (memory ~ block_size × N bytes for the int8 dosages, a few blocks in
        flight); lowered automatically so that a block stays within 64 MiB (e.g. 1,342 variants at
        50,000 samples, 139 at 480,000).
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    max_vif, max_corr
        plink2's ``--vif`` (default 50) and ``--max-corr`` (default 0.999). Covariates of a design
        with a pair correlated beyond ``max_corr`` or a VIF above ``max_vif`` over its samples stop
        the run (:class:`InputError`); a variant whose predictors [genotype, covariates] fail them
        over its observed samples gets ERRCODE ``CORR_TOO_HIGH``, ``VIF_INFINITE`` (singular) or
        ``VIF_TOO_HIGH`` (any predictor's VIF, the covariates' included) and no statistics.

    Returns
    -------
    dict mapping phenotype name -> DataFrame with columns
    ``CHROM POS ID REF ALT A1 OMITTED A1_FREQ TEST OBS_CT BETA SE T_STAT P ERRCODE`` (one ADD row
    per variant, variant-file order); BETA is per copy of A1; failed tests have NaN statistics
    and an ERRCODE other than ``"."``.

    Examples
    --------
    >>> from deepprs.io import load_cohort                                       # doctest: +SKIP
    >>> cohort = load_cohort("cohort", pheno="traits.tsv", covar="pcs.tsv")      # doctest: +SKIP
    >>> tables = gwas_linear(cohort.genotypes, cohort.phenotypes, covariates=cohort.covariates,
    ...                      sample_index=cohort.sample_index)                  # doctest: +SKIP
    """
    if block_size < 1:
        raise InputError("block_size must be >= 1")
    max_vif, max_corr = check_limits(max_vif, max_corr)
    sample_index, variant_index = prepare_inputs(
        genotypes, phenotypes, covariates, sample_index, variant_index, loco_covariates
    )
    device = resolve_device(device)
    width = n_columns(genotypes)
    # bounded memory at any N (float64 dosage blocks take 8 bytes a genotype)
    block_size = linear_block_size(block_size, genotypes.n_samples * dosage_bytes(genotypes))
    groups = phenotype_groups(phenotypes)
    cov_names = [] if covariates is None else [str(c) for c in covariates.columns]
    base_cov = None if covariates is None else covariates.to_numpy(dtype=np.float64)
    names = [str(c) for c in phenotypes.columns]
    stats: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in names}
    order: list[np.ndarray] = []
    sex = sample_sex(genotypes, sample_index)
    variant_index = testable_variants(genotypes.variant_table, variant_index, sex)
    tasks = [
        (key, block)
        for key, segment in chromosome_segments(genotypes.variant_table, variant_index, loco_covariates)
        for block in grid_blocks(segment, block_size)
    ]
    contexts: dict[tuple[str | None, str], list[_LinearContext]] = {}

    def contexts_for(key: tuple[str | None, str]) -> list[_LinearContext]:
        # built in this thread when the segment's first block is queued (warnings stay in order);
        # the blocks in flight keep a reference, so only the newest few are cached
        if key not in contexts:
            designs = chromosome_designs(key[0], groups, phenotypes, base_cov, cov_names, loco_covariates,
                                         sample_index, width, max_vif=max_vif, max_corr=max_corr, sex=sex,
                                         sex_chromosome=key[1])
            contexts[key] = [_context(design, genotypes.n_samples) for design in designs]
            while len(contexts) > 2:
                del contexts[next(iter(contexts))]
        return contexts[key]

    n_blocks = len(tasks)
    on_cpu = products_in_workers(device)
    # On the CPU every thread of the pipeline runs single-threaded torch: the prefetch workers
    # decode, sum the missing calls and take the int8 products while the main thread does the
    # per-variant algebra (two-thread torch kernels beside them only oversubscribe the cores).
    workers = torch.get_num_threads()
    blocks = prefetch_blocks(genotypes, tasks, context=contexts_for, workers=workers,
                             prepare=lambda block, ctxs: _prepare_block(block, ctxs, products=on_cpu))
    # (closed on the way out, on an error too: its threads stop and the switch interval is restored)
    with _one_thread(device), blas_threads(1), contextlib.closing(blocks):
        for _, block_contexts, block, prepared in track(
            blocks, "linear GWAS", total=n_blocks, disable=None if progress else True
        ):
            order.append(block.variant_index)
            for ctx, ctx_prepared in zip(block_contexts, prepared, strict=True):
                result = _linear_block(block, ctx, device, ctx_prepared)
                for j, name in enumerate(ctx.design.pheno_names):
                    stats[name].append({key: (value[:, j] if value.ndim == 2 else value)
                                        for key, value in result.items()})
    index = np.concatenate(order) if order else np.zeros(0, dtype=np.int64)
    variants = _variant_columns(genotypes.variant_table.iloc[index])
    scale = haploid_scale(genotypes.variant_table, index)  # chrY / chrM: per haploid copy, as plink2
    tables = {}
    sort = np.argsort(index, kind="stable")
    for name in names:
        merged = (
            {key: np.concatenate([part[key] for part in stats[name]]) for key in stats[name][0]}
            if stats[name]
            else {key: np.zeros(0) for key in ("OBS_CT", "A1_FREQ", "BETA", "SE", "T_STAT", "df", "ERRCODE")}
        )
        failed = merged["ERRCODE"] != "."
        table = variants.copy()
        table["A1_FREQ"] = merged["A1_FREQ"]
        table["TEST"] = "ADD"
        table["OBS_CT"] = merged["OBS_CT"].astype(np.int64)
        for key in ("BETA", "SE", "T_STAT"):
            table[key] = np.where(failed, np.nan, merged[key] * (scale if key != "T_STAT" else 1.0))
        table["P"] = np.where(failed, np.nan, _p_from_t(merged["T_STAT"], merged["df"]))
        table["ERRCODE"] = merged["ERRCODE"]
        tables[name] = table.iloc[sort].reset_index(drop=True)[LINEAR_COLUMNS]
    return tables
