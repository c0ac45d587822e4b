"""Per-phenotype-group regression designs: sample weights, covariate basis, residualised traits.

Phenotypes with the same set of non-missing samples share one design, so several traits are
tested in one pass over the genotypes. Constant or exactly collinear covariates are dropped with
a warning that names them (plink2 stops with an error for collinear ones); near-collinear ones
(a pair with |r| > ``max_corr`` or a VIF above ``max_vif`` over the design's samples) stop the run
like plink2's CORR_TOO_HIGH / VIF_TOO_HIGH (:func:`deepprs.assoc.vif.check_covariates`).

Sex chromosomes follow plink2 ``--glm`` (checked against plink2 2.00a3.5, tests/data/gwas_sexchr): on
chrX the designs gain a ``SEX`` covariate (1 = male, 2 = female) and drop samples of unknown sex
whenever both sexes are present (otherwise chrX is tested like an autosome); chrY is tested in males
only (and skipped when there are none); chrY and chrM genotypes count haploid copies (0/1), so their
BETA and SE are twice those of the 0/1/2 coding. The pseudo-autosomal code XY is autosomal.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepprs.assoc.vif import MAX_CORR, MAX_VIF, PredictorCheck, check_covariates
from deepprs.errors import InputError
from deepprs.utils.runlog import current_run

AUTOSOMAL, CHR_X, CHR_Y, CHR_MT = "", "X", "Y", "MT"
_PLINK_CODES = {"23": "X", "24": "Y", "25": "XY", "26": "MT", "M": "MT"}


def _plink_codes(codes: np.ndarray | pd.Series) -> tuple[np.ndarray, list[str]]:
    """(position of each variant's code among the distinct codes, plink2's form of each distinct code)."""
    values = codes if isinstance(codes, pd.Series) else np.asarray(codes).reshape(-1)
    inverse, unique = pd.factorize(values, use_na_sentinel=False)  # hashing: no sort of 10^5 strings
    mapped = []
    for code in map(str, unique):
        bare = code[3:] if code[:3].lower() == "chr" else code
        bare = (bare.lstrip("0") or "0") if bare.isdigit() else bare
        bare = bare.upper() if bare.upper() in ("X", "Y", "XY", "MT", "M") else bare
        mapped.append(_PLINK_CODES.get(bare, bare))
    return np.asarray(inverse), mapped


def plink_chromosome(codes: np.ndarray | pd.Series) -> np.ndarray:
    """plink2's output chromosome codes: a ``chr`` prefix and leading zeros dropped (UK Biobank's
    BGENs write 01, 02, ...), 23/24/25/26 and M written as X/Y/XY/MT (as plink2 prints them),
    other codes unchanged."""
    inverse, mapped = _plink_codes(codes)
    return np.asarray(mapped, dtype=object)[inverse]


def chromosome_class(codes: np.ndarray | pd.Series) -> np.ndarray:
    """Per variant: ``"X"`` (non-pseudo-autosomal chrX), ``"Y"``, ``"MT"`` or ``""`` (autosomes,
    the pseudo-autosomal XY and any other contig)."""
    inverse, mapped = _plink_codes(codes)
    classes = [code if code in (CHR_X, CHR_Y, CHR_MT) else AUTOSOMAL for code in mapped]
    return np.asarray(classes, dtype=object)[inverse]


def note(message: str) -> None:
    """An informational line in the active run log (nothing outside a command)."""
    run = current_run()
    if run is not None:
        run.info(message)


def warn(message: str) -> None:
    """Warn through the active run log (when inside a command) and the ``warnings`` module."""
    run = current_run()
    if run is not None:
        run.warn(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def independent_covariates(covariates: np.ndarray, names: list[str], *, context: str = "") -> list[int]:
    """Column positions of ``covariates`` (n × c) to keep: drop constant columns, then columns that
    are linear combinations of the intercept and earlier kept columns. A warning names every
    dropped column.

    A column is dependent when its centred, unit-norm values keep less than 1e-8 of their norm
    after projection off the earlier kept columns: |R_jj| of an unpivoted Householder QR
    (numpy's LAPACK; no scipy import). The first such column is dropped and the rest factorised
    again (a dependent column leaves an arbitrary direction in R's later columns).
    """
    n, c = covariates.shape
    if c == 0:
        return []
    where = f" ({context})" if context else ""
    spread = covariates.max(axis=0) - covariates.min(axis=0) if n else np.zeros(c)
    constant = [j for j in range(c) if not spread[j] > 0]
    if constant:
        warn(f"dropping constant covariate(s) {', '.join(names[j] for j in constant)}{where}")
    keep = [j for j in range(c) if j not in constant]
    if not keep:
        return []
    centred = covariates[:, keep] - covariates[:, keep].mean(axis=0)
    centred = centred / np.linalg.norm(centred, axis=0)
    columns = list(range(len(keep)))
    while columns:
        r = np.linalg.qr(centred[:, columns], mode="r")
        small = np.flatnonzero(np.abs(np.diag(r)) <= 1e-8)
        if len(small):  # the first dependent column; the ones after it are judged again without it
            del columns[small[0]]
            continue
        del columns[min(r.shape):]  # n independent columns span everything: the rest are dependent
        break
    independent = [keep[column] for column in columns]
    collinear = [j for j in keep if j not in independent]
    if collinear:
        warn(
            f"dropping collinear covariate(s) {', '.join(names[j] for j in collinear)}{where} "
            "(linear combinations of the intercept and other covariates)"
        )
    return independent


@dataclass
class Design:
    """Regression design of one phenotype group.

    Attributes
    ----------
    pheno_names : list of str
    weight : ndarray of float64, shape (n_columns,)
        1 for the samples used (genotype-file column order), 0 elsewhere.
    basis : ndarray of float64, shape (n_columns, k)
        Orthonormal basis of [1, covariates] over the used samples (zero rows elsewhere).
    phenotype : ndarray of float64, shape (n_columns, P)
        Raw phenotype values on the used samples (zero elsewhere).
    residual : ndarray of float64, shape (n_columns, P)
        Phenotypes residualised on ``basis`` over the used samples.
    covariate_names : list of str
        Covariates kept (intercept excluded).
    predictor_check : PredictorCheck
        plink2's per-variant CORR_TOO_HIGH / VIF_INFINITE / VIF_TOO_HIGH checks for this design.
    """

    pheno_names: list[str]
    weight: np.ndarray
    basis: np.ndarray
    phenotype: np.ndarray
    residual: np.ndarray
    covariates: np.ndarray
    covariate_names: list[str]
    predictor_check: PredictorCheck

    @property
    def n_used(self) -> int:
        return int(self.weight.sum())

    @property
    def n_params(self) -> int:
        """Intercept + covariates + genotype."""
        return self.basis.shape[1] + 1


def phenotype_groups(phenotypes: pd.DataFrame) -> list[list[str]]:
    """Group phenotype columns that are missing for exactly the same samples."""
    groups: dict[bytes, list[str]] = {}
    for name in phenotypes.columns:
        key = np.packbits(phenotypes[name].notna().to_numpy()).tobytes()
        groups.setdefault(key, []).append(str(name))
    return list(groups.values())


def build_design(
    pheno_names: list[str],
    phenotype_values: np.ndarray,
    covariates: np.ndarray | None,
    covariate_names: list[str],
    sample_index: np.ndarray,
    n_columns: int,
    *,
    context: str = "",
    max_vif: float = MAX_VIF,
    max_corr: float = MAX_CORR,
    sex: np.ndarray | None = None,
    sex_chromosome: str = AUTOSOMAL,
) -> Design:
    """Build the :class:`Design` of one phenotype group.

    Parameters
    ----------
    phenotype_values : ndarray, shape (n, P)
        Rows follow ``sample_index``; all non-missing for the rows used (NaN rows are dropped).
    covariates : ndarray, shape (n, c) or None
        Rows follow ``sample_index``; rows with any NaN are dropped (plink2 behaviour).
    sample_index : ndarray of int, shape (n,)
        Genotype-file positions of the rows.
    n_columns : int
        Width of the dosage blocks (file samples, possibly padded).
    max_vif, max_corr
        plink2's ``--vif`` / ``--max-corr``: the covariates over the used samples must pass them
        (else :class:`InputError`), and every variant's model is checked against them.
    sex : ndarray of int, shape (n,), optional
        1 = male, 2 = female, else unknown; rows follow ``sample_index``.
    sex_chromosome : {"", "X", "Y", "MT"}
        The design's variants: ``"X"`` adds plink2's SEX covariate (and drops unknown sex) when
        both sexes are present, ``"Y"`` keeps males only (see the module docstring).
    """
    used = ~np.isnan(phenotype_values).any(axis=1)
    if covariates is not None and covariates.shape[1]:
        used &= ~np.isnan(covariates).any(axis=1)
    if not used.any():
        raise InputError(f"phenotype(s) {', '.join(pheno_names)}: no sample has both the phenotype and all covariates")
    if sex_chromosome in (CHR_X, CHR_Y):
        sex = np.zeros(len(sample_index), dtype=int) if sex is None else np.asarray(sex)
        male, female = sex == 1, sex == 2
        if sex_chromosome == CHR_Y:
            used &= male
            note(f"phenotype(s) {', '.join(pheno_names)}, chrY: tested in the {int(used.sum())} male samples "
                 "(as plink2 --glm)")
            if not used.any():
                raise InputError(f"phenotype(s) {', '.join(pheno_names)}: no male sample has the phenotype and "
                                 "covariates, so chrY variants cannot be tested (plink2 stops too); leave them out "
                                 "(--chr / --exclude) or test this phenotype on its own")
        elif (used & male).any() and (used & female).any():
            unknown = int((used & ~(male | female)).sum())
            note(f"phenotype(s) {', '.join(pheno_names)}, chrX: SEX added as a covariate"
                 + (f"; {unknown} sample(s) of unknown sex left out there" if unknown else "") + " (as plink2 --glm)")
            used &= male | female
            sex_column = np.where(male, 1.0, 2.0)[:, None]
            covariates = sex_column if covariates is None else np.column_stack([covariates, sex_column])
            covariate_names = [*covariate_names, "SEX"]
    rows = sample_index[used]
    cov_used = np.zeros((int(used.sum()), 0)) if covariates is None else covariates[used]
    keep = independent_covariates(cov_used, covariate_names, context=context)
    cov_used = cov_used[:, keep]
    kept_names = [covariate_names[j] for j in keep]
    covariate_vif = check_covariates(cov_used, kept_names, max_vif=max_vif, max_corr=max_corr, context=context)
    design_matrix = np.column_stack([np.ones(len(rows)), cov_used])
    basis_used, _ = np.linalg.qr(design_matrix)
    y_used = phenotype_values[used].astype(np.float64)
    residual_used = y_used - basis_used @ (basis_used.T @ y_used)
    weight = np.zeros(n_columns)
    weight[rows] = 1.0
    basis = np.zeros((n_columns, basis_used.shape[1]))
    basis[rows] = basis_used
    phenotype = np.zeros((n_columns, y_used.shape[1]))
    phenotype[rows] = y_used
    residual = np.zeros_like(phenotype)
    residual[rows] = residual_used
    full_covariates = np.zeros((n_columns, cov_used.shape[1]))
    full_covariates[rows] = cov_used
    return Design(
        pheno_names=pheno_names,
        weight=weight,
        basis=basis,
        phenotype=phenotype,
        residual=residual,
        covariates=full_covariates,
        covariate_names=kept_names,
        predictor_check=PredictorCheck(basis_used, cov_used, covariate_vif, max_vif=max_vif, max_corr=max_corr),
    )


def loco_column(table: pd.DataFrame, chrom: str) -> object:
    """The column of a LOCO covariate table that belongs to chromosome ``chrom``."""
    for column in table.columns:
        if str(column) == chrom:
            return column
    raise InputError(f"no LOCO covariate column for chromosome {chrom}")


def chromosome_designs(chrom: str | None, groups: list[list[str]], phenotypes: pd.DataFrame,
                       base_covariates: np.ndarray | None, covariate_names: list[str],
                       loco_covariates: pd.DataFrame | None, sample_index: np.ndarray, width: int, *,
                       max_vif: float = MAX_VIF, max_corr: float = MAX_CORR, sex: np.ndarray | None = None,
                       sex_chromosome: str = AUTOSOMAL) -> list[Design]:
    """One design per phenotype group for the variants of chromosome ``chrom``.

    With LOCO covariates (``--cvblup-covar``) the chromosome's column is appended to the covariates;
    ``chrom=None`` means no LOCO column. ``sex`` and ``sex_chromosome``: see :func:`build_design`.
    """
    covariates, names = base_covariates, covariate_names
    if chrom is not None and loco_covariates is not None:
        extra = loco_covariates[loco_column(loco_covariates, chrom)].to_numpy(dtype=np.float64)[:, None]
        covariates = extra if covariates is None else np.column_stack([covariates, extra])
        names = [*names, f"LOCO_{chrom}"]
    where = "" if chrom is None else f", chromosome {chrom}"
    where += f", chr{sex_chromosome}" if sex_chromosome in (CHR_X, CHR_Y) and chrom is None else ""
    return [
        build_design(group, phenotypes[group].to_numpy(dtype=np.float64), covariates, names, sample_index,
                     width, context=f"phenotype {', '.join(group)}{where}", max_vif=max_vif, max_corr=max_corr,
                     sex=sex, sex_chromosome=sex_chromosome)
        for group in groups
    ]


def testable_variants(variant_table: pd.DataFrame, variant_index: np.ndarray, sex: np.ndarray) -> np.ndarray:
    """``variant_index`` without its chrY variants when no sample is male (plink2 skips them, with
    a warning here)."""
    chrom_class = chromosome_class(variant_table["chrom"].to_numpy()[variant_index])
    on_y = chrom_class == CHR_Y
    if on_y.any() and not (np.asarray(sex) == 1).any():
        if on_y.all():
            raise InputError(f"no variants left to test: all {len(variant_index)} are on chrY and no analysed "
                             "sample is male (sex from the .fam/.psam/.sample)")
        warn(f"skipping {int(on_y.sum())} chrY variant(s): no analysed sample is male (sex from the "
             ".fam/.psam/.sample)")
        return variant_index[~on_y]
    return variant_index
