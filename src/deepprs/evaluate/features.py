"""Extra per-sample inputs for the PRS models: external PRS weights and the cvBLUP, built in-fold.

Both enter every model as additional covariate columns (unpenalised in the linear models, side
inputs of the networks), so no model needs to know about them.

- **External PRS weights** (a plink2 ``--score`` file ``ID A1 BETA``, e.g. from a published GWAS):
  the feature is ``SCORE_SUM = Σ_j dosage_ij(A1_j) · BETA_j`` over the variants matched by ID, with
  the dosage of the other allele flipped (``2 - dosage``) where the file's A1 is the genotype file's
  REF, missing calls imputed at the variant's mean (plink2's default), and variants whose A1 is
  neither allele dropped. It uses no phenotype, so it is computed once for all samples.
- **cvBLUP** (:class:`deepprs.lmm.CvBLUP`): fitted *inside each training fold* (REML + BLUP on the
  training samples and their covariates). Training samples get their closed-form leave-one-out
  cvBLUP (not the in-sample BLUP, which contains their own phenotype); test samples get the BLUP
  of their genetic value from the training fit, ``Σ_j (x_ij − mean_j) β̂_j``. No test phenotype
  enters either column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource
from deepprs.io.packed import PackedGenotypes
from deepprs.models.screening import dense_columns


def read_score_weights(path: str | Path) -> pd.DataFrame:
    """Read a plink2 ``--score`` style weights file: a header with ``ID`` (or ``#ID``/``SNP``/``rsID``),
    ``A1`` (or ``effect_allele``) and ``BETA`` (or ``effect_weight``/``WEIGHT``).

    Returns
    -------
    DataFrame with columns ``ID A1 BETA`` (A1 upper-case, BETA float).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"score weights file {path} does not exist")
    table = pd.read_csv(path, sep=r"\s+", dtype=str, comment=None, engine="c")
    table.columns = [c.lstrip("#") for c in table.columns]
    aliases = {
        "ID": ("ID", "SNP", "rsID", "variant_id"),
        "A1": ("A1", "effect_allele"),
        "BETA": ("BETA", "effect_weight", "WEIGHT"),
    }
    picked = {}
    for name, options in aliases.items():
        found = [c for c in options if c in table.columns]
        if not found:
            raise InputError(f"score weights file {path}: no {name} column (expected one of {', '.join(options)})")
        picked[name] = table[found[0]]
    weights = pd.DataFrame(picked)
    beta = pd.to_numeric(weights["BETA"], errors="coerce")
    if beta.isna().any():
        bad = weights.loc[beta.isna(), "BETA"].iloc[0]
        raise InputError(f"score weights file {path}: non-numeric weight {bad!r}")
    if weights["ID"].duplicated().any():
        raise InputError(
            f"score weights file {path}: duplicate variant ID {weights['ID'][weights['ID'].duplicated()].iloc[0]!r}"
        )
    weights["A1"] = weights["A1"].str.upper()
    weights["BETA"] = beta.astype(np.float64)
    return weights.reset_index(drop=True)


def read_score_weights_files(paths: list[str] | None) -> dict[str, pd.DataFrame]:
    """``{file name: weights}`` for ``--score-weights`` (the file name names the model input)."""
    weights = {Path(path).name: read_score_weights(path) for path in paths or []}
    if len(weights) != len(paths or []):
        raise InputError("--score-weights: two files have the same name")
    return weights


def format_score_report(label: str, report: dict[str, int]) -> str:
    """One log line for an :func:`external_score` match report."""
    return (
        f"{label}: {report['matched']} of {report['n_weights']} weights used ({report['flipped']} flipped, "
        f"{report['absent']} absent, {report['allele_mismatch']} allele mismatch)"
    )


def external_score(
    genotypes: PackedGenotypes | np.ndarray | GenotypeSource,
    variant_table: pd.DataFrame,
    weights: pd.DataFrame,
    *,
    sample_index: np.ndarray | None = None,
    chunk: int = 2048,
) -> tuple[np.ndarray, dict[str, int]]:
    """``SCORE_SUM`` of every sample for one weights table (see the module docstring).

    Parameters
    ----------
    genotypes : PackedGenotypes, ndarray (n_samples, n_variants) or GenotypeSource   dosages of ``a1``
    variant_table : DataFrame with ``id a1 ref`` per genotype column
    weights : DataFrame ``ID A1 BETA`` (:func:`read_score_weights`)
    sample_index : rows to score (GenotypeSource only; default all)

    Returns
    -------
    score : ndarray, shape (n_samples,)
    report : dict with ``n_weights``, ``matched``, ``flipped``, ``absent``, ``allele_mismatch``
    """
    position = pd.Series(np.arange(len(variant_table)), index=variant_table["id"].astype(str).to_numpy())
    position = position[~position.index.duplicated(keep=False)]
    column = position.reindex(weights["ID"].astype(str).to_numpy()).to_numpy()
    present = ~np.isnan(column)
    column = np.where(present, column, 0).astype(np.int64)
    a1 = variant_table["a1"].astype(str).str.upper().to_numpy()[column]
    ref = variant_table["ref"].astype(str).str.upper().to_numpy()[column]
    same = present & (weights["A1"].to_numpy() == a1)
    flipped = present & ~same & (weights["A1"].to_numpy() == ref)
    used = same | flipped
    report = {
        "n_weights": int(len(weights)),
        "matched": int(used.sum()),
        "flipped": int(flipped.sum()),
        "absent": int((~present).sum()),
        "allele_mismatch": int((present & ~used).sum()),
    }
    if not used.any():
        raise InputError("score weights: no variant matched the genotype file by ID and allele")
    order = np.argsort(column[used], kind="stable")  # sorted columns: each chunk unpacks a short byte span
    columns = column[used][order]
    beta = weights["BETA"].to_numpy()[used][order]
    sign = np.where(flipped[used][order], -1.0, 1.0)
    if isinstance(genotypes, GenotypeSource):
        rows = np.arange(genotypes.n_samples) if sample_index is None else np.asarray(sample_index, dtype=np.int64)
        n = len(rows)
    else:
        n = genotypes.n_samples if isinstance(genotypes, PackedGenotypes) else np.asarray(genotypes).shape[0]
    score = np.full(n, float(np.sum(2.0 * beta[sign < 0])))  # flipped variants count 2 - dosage
    for start in range(0, len(columns), chunk):
        part = slice(start, start + chunk)
        if isinstance(genotypes, GenotypeSource):
            dosage = genotypes.read(rows, columns[part], dtype=np.float64, missing="nan")
        else:
            dosage = dense_columns(genotypes, None, columns[part])
        means = np.nanmean(dosage, axis=0)
        dosage = np.where(np.isnan(dosage), np.where(np.isnan(means), 0.0, means), dosage)
        score += dosage @ (beta[part] * sign[part])
    return score, report


def cvblup_feature(
    genotypes: PackedGenotypes | np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    covariates: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """In-fold cvBLUP: leave-one-out cvBLUP for ``train`` rows, out-of-sample BLUP for ``test`` rows.

    Parameters
    ----------
    genotypes : PackedGenotypes or ndarray, shape (n_samples, n_variants)
    y : ndarray, shape (n_samples,)   only ``y[train]`` is used
    train, test : ndarray of int       row indices
    covariates : ndarray, shape (n_samples, c), optional   fixed effects of the LMM (training rows)

    Returns
    -------
    train_feature : ndarray, shape (len(train),)
    test_feature : ndarray, shape (len(test),)
    h2 : float   REML h² of the training fold
    """
    from deepprs.lmm import CvBLUP

    model = CvBLUP().fit(
        genotypes,
        np.asarray(y, dtype=np.float64)[train],
        None if covariates is None else covariates[train],
        sample_index=train,
    )
    return np.asarray(model.cvblup_, dtype=np.float64), model.predict(genotypes, sample_index=test), float(model.h2_)


@dataclass
class FeatureScore:
    """One extra model input as a weights table: ``SCORE_SUM(ID, A1, BETA) + offset`` (stored in bundles)."""

    name: str
    weights: pd.DataFrame
    offset: float = 0.0

    def score(
        self,
        genotypes: PackedGenotypes | np.ndarray | GenotypeSource,
        variant_table: pd.DataFrame,
        *,
        sample_index: np.ndarray | None = None,
    ) -> tuple[np.ndarray, dict[str, int]]:
        score, report = external_score(genotypes, variant_table, self.weights, sample_index=sample_index)
        return score + self.offset, report


def training_features(
    genotypes: PackedGenotypes | np.ndarray,
    variant_table: pd.DataFrame,
    y: np.ndarray,
    covariates: np.ndarray | None,
    *,
    score_weights: dict[str, pd.DataFrame] | None = None,
    cvblup: bool = False,
) -> tuple[np.ndarray | None, list[FeatureScore], list[dict[str, int]]]:
    """Extra inputs for a final fit on all training samples (``deepprs fit``).

    External scores as in :func:`external_score`; the cvBLUP column is the leave-one-out cvBLUP of
    every training sample, and its :class:`FeatureScore` holds the LMM's SNP weights so that new
    samples get their BLUP, ``Σ_j x_ij β̂_j + score_offset``.

    Returns
    -------
    columns : ndarray (n_samples, n_features) or None
    features : list of FeatureScore, in column order (saved with the model for ``predict``)
    reports : list of match reports of the external scores
    """
    columns, features, reports = [], [], []
    for name, weights in (score_weights or {}).items():
        feature = FeatureScore(name, weights)
        score, report = feature.score(genotypes, variant_table)
        columns.append(score)
        features.append(feature)
        reports.append(report)
    if cvblup:
        from deepprs.lmm import CvBLUP

        model = CvBLUP().fit(genotypes, np.asarray(y, dtype=np.float64), covariates)
        rows = variant_table.iloc[model.snp_index_]
        weights = pd.DataFrame(
            {
                "ID": rows["id"].astype(str).to_numpy(),
                "A1": rows["a1"].astype(str).str.upper().to_numpy(),
                "BETA": np.asarray(model.snp_weights_, dtype=np.float64),
            }
        )
        columns.append(np.asarray(model.cvblup_, dtype=np.float64))
        features.append(FeatureScore("cvblup", weights, float(model.score_offset_)))
    return (np.column_stack(columns) if columns else None), features, reports
