"""One call that runs a whole GWAS like ``plink2 --glm``: trait-type detection, linear or
logistic (firth-fallback) regression, plink2-format files, λGC, Manhattan and QQ plots.

Trait type (plink2 convention): a phenotype whose non-missing values are all 1 or 2 is
case/control with 1 = control, 2 = case; all 0 or 1 is case/control with 0 = control, 1 = case
(plink2's ``--1``). Anything else is quantitative. ``linear_only=True`` treats every trait as
quantitative.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepprs.assoc.bedscan import stop_bed_scan
from deepprs.assoc.linear import gwas_linear
from deepprs.assoc.output import (
    binary_coding,
    genomic_control,
    glm_suffix,
    same_variants,
    to_case_control,
    variant_prefix,
    write_glm,
)
from deepprs.assoc.vif import MAX_CORR, MAX_VIF, check_limits
from deepprs.errors import InputError
from deepprs.io.cohort import Cohort
from deepprs.utils.runlog import current_run


@dataclass
class GwasResult:
    """Per-phenotype results of :func:`run_gwas`.

    Attributes
    ----------
    tables : dict name -> DataFrame in plink2 ``--glm`` layout
    binary : dict name -> bool (case/control trait)
    lambda_gc : dict name -> float
    files : list of Path written (empty when ``out`` was None)
    """

    tables: dict[str, pd.DataFrame]
    binary: dict[str, bool]
    lambda_gc: dict[str, float]
    files: list[Path] = field(default_factory=list)


def _info(message: str) -> None:
    run = current_run()
    if run is not None:
        run.info(message)


@contextlib.contextmanager
def _step(name: str) -> Iterator[None]:
    run = current_run()
    if run is None:
        yield
    else:
        with run.step(name):
            yield


def run_gwas(
    cohort: Cohort,
    *,
    out: str | Path | None = None,
    loco_covariates: pd.DataFrame | None = None,
    linear_only: bool = False,
    block_size: int = 4096,
    device: str | torch.device = "cpu",
    gz: bool = False,
    plots: bool = True,
    progress: bool = True,
    max_vif: float = MAX_VIF,
    max_corr: float = MAX_CORR,
    variant_index: np.ndarray | None = None,
) -> GwasResult:
    """Test every phenotype of ``cohort`` against every variant (or those of ``variant_index``).

    Parameters
    ----------
    cohort
        From :func:`deepprs.io.load_cohort` (phenotypes required; covariates optional).
    out
        Output prefix; writes ``OUT.<pheno>.glm.linear`` or ``OUT.<pheno>.glm.logistic.hybrid``
        (``.gz`` with ``gz``) and, with ``plots``, ``OUT.<pheno>.manhattan.png`` / ``.qq.png``.
        ``None`` writes nothing.
    loco_covariates : DataFrame (n × chromosomes), optional
        Rows aligned with ``cohort.sample_ids``; see :func:`deepprs.assoc.loco.read_cvblup_loco`.
    block_size
        Variants per block for linear regression (logistic uses blocks of at most 256).
    max_vif, max_corr
        plink2's ``--vif`` (50) and ``--max-corr`` (0.999): covariates failing them over a design's
        samples stop the run; variants failing them get ERRCODE ``CORR_TOO_HIGH`` /
        ``VIF_INFINITE`` / ``VIF_TOO_HIGH`` (see :mod:`deepprs.assoc.vif`).
    variant_index : ndarray of int, optional
        Positions in the genotype file's variant table to test (e.g. from
        :class:`deepprs.qc.filters.VariantFilter`); default all.
    """
    if cohort.phenotypes is None:
        raise InputError("gwas needs phenotypes: pass --pheno FILE")
    phenotypes = cohort.phenotypes
    max_vif, max_corr = check_limits(max_vif, max_corr)
    codes = {name: (None if linear_only else binary_coding(phenotypes[name])) for name in phenotypes.columns}
    quantitative = [name for name, code in codes.items() if code is None]
    binary = [name for name, code in codes.items() if code is not None]
    common = dict(
        covariates=cohort.covariates,
        sample_index=cohort.sample_index,
        variant_index=variant_index,
        loco_covariates=loco_covariates,
        device=device,
        progress=progress,
        max_vif=max_vif,
        max_corr=max_corr,
    )
    tables: dict[str, pd.DataFrame] = {}
    if quantitative:
        _info(f"linear regression for {len(quantitative)} quantitative trait(s): {', '.join(quantitative)}")
        with _step("linear regression"):
            tables.update(gwas_linear(cohort.genotypes, phenotypes[quantitative], block_size=block_size, **common))
    # a background .bed scan started by the CLI (deepprs.assoc.bedscan) only serves the linear step
    stop_bed_scan()
    if binary:
        from deepprs.assoc.logistic import gwas_logistic  # imported on demand: scipy + Firth code

        recoded = pd.DataFrame(
            {name: to_case_control(phenotypes[name], codes[name]) for name in binary}, index=phenotypes.index
        )
        for name in binary:
            counts = recoded[name].value_counts()
            _info(
                f"phenotype {name}: case/control ({'1/2' if codes[name] == '12' else '0/1'} coding), "
                f"{int(counts.get(1.0, 0))} cases, {int(counts.get(0.0, 0))} controls; logistic regression "
                "with Firth fallback"
            )
        with _step("logistic regression"):
            tables.update(gwas_logistic(cohort.genotypes, recoded, block_size=min(block_size, 256), **common))
    result = GwasResult(
        tables={name: tables[name] for name in phenotypes.columns},
        binary={name: codes[name] is not None for name in phenotypes.columns},
        lambda_gc={},
    )
    shared: tuple[pd.DataFrame, list[str]] | None = None  # the variant columns' text, shared by the tables
    for name, table in result.tables.items():
        lam = genomic_control(table["P"].to_numpy(dtype=float))
        result.lambda_gc[name] = lam
        tested = int(np.isfinite(table["P"].to_numpy(dtype=float)).sum())
        _info(f"phenotype {name}: {tested} of {len(table)} variants tested; lambda GC = {lam:.4f}")
        if out is None:
            continue
        with _step(f"write {name} results"):
            if len(result.tables) > 1 and (shared is None or not same_variants(shared[0], table)):
                shared = (table, variant_prefix(table))
            path = write_glm(table, f"{out}.{name}.{glm_suffix(result.binary[name])}", gz=gz,
                             prefix=None if shared is None else shared[1])
        result.files.append(path)
        if plots:
            from deepprs.plots import manhattan_plot, qq_plot

            with _step(f"plot {name}"):
                result.files.append(manhattan_plot(table, f"{out}.{name}.manhattan.png", title=name))
                result.files.append(qq_plot(table["P"].to_numpy(dtype=float), f"{out}.{name}.qq.png", title=name))
    for path in result.files:
        _info(f"wrote {path}")
    return result
