"""File-level drivers behind ``deepprs cvblup`` and ``deepprs pleiotropy`` (usable from Python).

Output files (tab-separated, one header line):

* ``OUT.h2.json`` — h2, h2_se, sigma_g, sigma_e (variance components σg², σe²), loglik, n,
  n_variants, method, delta, fixed_effects, score_offset;
* ``OUT.cvblup.tsv`` — ``FID IID BLUP CVBLUP`` (analysed samples, genotype-file order);
* ``OUT.snp_weights.tsv`` — ``ID A1 BETA A1_MEAN``: BETA per copy of A1 on the raw dosage scale,
  A1_MEAN = mean A1 dosage of the fitted samples; ready for
  ``plink2 --score OUT.snp_weights.tsv 1 2 3 header-read cols=+scoresums``, which gives
  BLUP = BETA_SUM + score_offset (score_offset in OUT.h2.json; see :mod:`deepprs.lmm.cvblup`);
* ``OUT.cvblup.loco.tsv`` (``--loco``) — ``FID IID`` then one column per chromosome code (as in
  the .bim): the cvBLUP with that chromosome left out of the GRM;
* ``OUT.pleiotropy.tsv`` — ``PRS_TRAIT PHENO_TRAIT R P FDR N``; ``OUT.pleiotropy.matrix.tsv``
  (rows PRS_TRAIT = cvBLUP, columns PHENO_TRAIT); ``OUT.pleiotropy.png``;
  ``OUT.pleiotropy.cvblup.tsv`` (``FID IID`` + one cvBLUP column per trait) and
  ``OUT.pleiotropy.h2.tsv`` (TRAIT N H2 H2_SE SIGMA_G SIGMA_E LOGLIK METHOD).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.errors import InputError
from deepprs.io.cohort import Cohort, load_cohort
from deepprs.lmm.cvblup import CvBLUP, fit_traits
from deepprs.lmm.pleiotropy import pleiotropy_matrix, pleiotropy_table, plot_pleiotropy
from deepprs.utils.device import resolve_device
from deepprs.utils.runlog import atomic_output, atomic_path, current_run


def _info(message: str) -> None:
    run = current_run()
    if run is not None:
        run.info(message)


def _number(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _load(
    genotypes: str,
    file_format: str | None,
    pheno: str | None,
    pheno_names: list[str] | None,
    covar: str | None,
    covar_names: list[str] | None,
    keep: str | None,
    remove: str | None,
    sample_path: str | None = None,
) -> Cohort:
    if not pheno:
        raise InputError("--pheno is required (a table with FID IID and phenotype columns)")
    cohort = load_cohort(
        genotypes,
        file_format=file_format,
        sample_path=sample_path,
        pheno=pheno,
        pheno_names=pheno_names,
        covar=covar,
        covar_names=covar_names,
        keep=keep,
        remove=remove,
    )
    _info(cohort.alignment.report())
    return cohort


def _covariate_matrix(cohort: Cohort, mask: np.ndarray) -> tuple[np.ndarray | None, list[str]]:
    if cohort.covariates is None or cohort.covariates.shape[1] == 0:
        return None, []
    return cohort.covariates.to_numpy(dtype=np.float64)[mask], [str(c) for c in cohort.covariates.columns]


def _write_table(table: pd.DataFrame, path: str) -> None:
    with atomic_output(path) as handle:
        table.to_csv(handle, sep="\t", index=False, float_format="%.10g", na_rep="NA")


@dataclass
class CvblupRun:
    """What :func:`run_cvblup` fitted and wrote."""

    model: CvBLUP
    sample_ids: pd.MultiIndex
    outputs: list[str]


def run_cvblup(
    genotypes: str,
    *,
    out: str,
    pheno: str | None,
    pheno_name: str | None = None,
    file_format: str | None = None,
    sample_path: str | None = None,
    covar: str | None = None,
    covar_names: list[str] | None = None,
    keep: str | None = None,
    remove: str | None = None,
    loco: bool = False,
    method: str = "auto",
    exact_max_n: int = 20_000,
    n_probes: int = 100,
    block_size: int = 2000,
    device: str = "cpu",
    seed: int = 0,
) -> CvblupRun:
    """Fit one trait and write OUT.h2.json, OUT.cvblup.tsv, OUT.snp_weights.tsv (+ OUT.cvblup.loco.tsv)."""
    cohort = _load(
        genotypes, file_format, pheno, [pheno_name] if pheno_name else None, covar, covar_names, keep, remove,
        sample_path,
    )
    phenotypes = cohort.phenotypes
    if phenotypes.shape[1] != 1:
        raise InputError(
            f"phenotype file {pheno} has {phenotypes.shape[1]} columns "
            f"({', '.join(phenotypes.columns[:5])}); choose one with --pheno-name"
        )
    trait = str(phenotypes.columns[0])
    values = phenotypes.iloc[:, 0].to_numpy(dtype=np.float64)
    mask = ~np.isnan(values)
    if mask.sum() < 10:
        raise InputError(
            f"phenotype {trait} has only {int(mask.sum())} non-missing samples; need at least 10"
        )
    covariates, covariate_names = _covariate_matrix(cohort, mask)
    torch_device = resolve_device(device)
    model = CvBLUP(
        method=method,
        exact_max_n=exact_max_n,
        loco=loco,
        n_probes=n_probes,
        block_size=block_size,
        device=str(torch_device),
        random_state=seed,
    )
    model.fit(cohort.genotypes, values[mask], covariates, sample_index=cohort.sample_index[mask])
    _info(
        f"h2 = {model.h2_:.4f} (SE {model.h2_se_:.4f}); method {model.method_}; n = {model.n_samples_}, "
        f"M = {model.n_variants_}"
    )
    sample_ids = cohort.sample_ids[mask]
    id_columns = {"FID": sample_ids.get_level_values(0), "IID": sample_ids.get_level_values(1)}
    summary = {
        "phenotype": trait,
        "h2": _number(model.h2_),
        "h2_se": _number(model.h2_se_),
        "sigma_g": _number(model.sigma_g_),
        "sigma_e": _number(model.sigma_e_),
        "loglik": _number(model.loglik_),
        "n": int(model.n_samples_),
        "n_variants": int(model.n_variants_),
        "method": "REML (eigendecomposition, FaST-LMM/GEMMA form)"
        if model.method_ == "exact"
        else "randomized Haseman-Elston + conjugate gradients (matrix-free)",
        "delta": _number(model.delta_),
        "fixed_effects": dict(
            zip(["intercept", *covariate_names], map(float, model.fixed_effects_), strict=True)
        ),
        "score_offset": float(model.score_offset_),
        "notes": "sigma_g and sigma_e are the variance components (sigma_g^2, sigma_e^2) on the phenotype "
        "scale, as GEMMA's vg/ve; h2 = sigma_g/(sigma_g+sigma_e); "
        "BLUP = sum_j dosage_A1 * BETA + score_offset",
    }
    if loco:
        summary["loco_h2"] = {k: float(v) for k, v in model.loco_h2_.items()}
    outputs = [f"{out}.h2.json", f"{out}.cvblup.tsv", f"{out}.snp_weights.tsv"]
    with atomic_output(outputs[0]) as handle:
        handle.write(json.dumps(summary, indent=2) + "\n")
    _write_table(pd.DataFrame({**id_columns, "BLUP": model.blup_, "CVBLUP": model.cvblup_}), outputs[1])
    variant_table = cohort.genotypes.variant_table.iloc[model.snp_index_]
    _write_table(
        pd.DataFrame(
            {
                "ID": variant_table["id"].to_numpy(),
                "A1": variant_table["a1"].to_numpy(),
                "BETA": model.snp_weights_,
                "A1_MEAN": model.center_,
            }
        ),
        outputs[2],
    )
    if loco:
        outputs.append(f"{out}.cvblup.loco.tsv")
        loco_table = pd.DataFrame(id_columns)
        for code in model.loco_cvblup_.columns:
            loco_table[str(code)] = model.loco_cvblup_[code].to_numpy()
        _write_table(loco_table, outputs[-1])
    return CvblupRun(model=model, sample_ids=sample_ids, outputs=outputs)


def run_pleiotropy(
    genotypes: str,
    *,
    out: str,
    pheno: str | None,
    pheno_names: list[str] | None = None,
    file_format: str | None = None,
    sample_path: str | None = None,
    covar: str | None = None,
    covar_names: list[str] | None = None,
    keep: str | None = None,
    remove: str | None = None,
    method: str = "auto",
    exact_max_n: int = 20_000,
    n_probes: int = 100,
    block_size: int = 2000,
    device: str = "cpu",
    seed: int = 0,
) -> pd.DataFrame:
    """cvBLUP for every trait and the asymmetric corr(cvBLUP_t, y_u) table; writes the OUT.pleiotropy.* files.

    Returns
    -------
    DataFrame PRS_TRAIT PHENO_TRAIT R P FDR N
    """
    cohort = _load(genotypes, file_format, pheno, pheno_names, covar, covar_names, keep, remove, sample_path)
    phenotypes = cohort.phenotypes
    traits = [str(c) for c in phenotypes.columns]
    all_rows = np.ones(len(phenotypes), dtype=bool)
    covariates, _ = _covariate_matrix(cohort, all_rows)
    torch_device = resolve_device(device)
    fits = fit_traits(
        cohort.genotypes,
        phenotypes.to_numpy(dtype=np.float64),
        covariates,
        sample_index=cohort.sample_index,
        method=method,
        exact_max_n=exact_max_n,
        block_size=block_size,
        n_probes=n_probes,
        device=str(torch_device),
        random_state=seed,
    )
    cvblups = pd.DataFrame(np.nan, index=range(len(phenotypes)), columns=traits)
    summary_rows = []
    for trait, trait_fit in zip(traits, fits, strict=True):
        cvblups.loc[trait_fit.sample_mask, trait] = trait_fit.blup.cvblup
        f = trait_fit.fit
        summary_rows.append((trait, f.n_samples, f.h2, f.h2_se, f.sigma_g, f.sigma_e, f.loglik, f.method))
        _info(f"{trait}: h2 = {f.h2:.4f} (SE {f.h2_se:.4f}), n = {f.n_samples}")
    table = pleiotropy_table(cvblups, phenotypes.reset_index(drop=True))
    sample_ids = cohort.sample_ids
    _write_table(table, f"{out}.pleiotropy.tsv")
    _write_table(
        pleiotropy_matrix(table).rename_axis("PRS_TRAIT").reset_index(), f"{out}.pleiotropy.matrix.tsv"
    )
    with atomic_path(f"{out}.pleiotropy.png") as tmp:
        plot_pleiotropy(table, tmp)
    cvblup_table = pd.concat(
        [
            pd.DataFrame({"FID": sample_ids.get_level_values(0), "IID": sample_ids.get_level_values(1)}),
            cvblups,
        ],
        axis=1,
    )
    _write_table(cvblup_table, f"{out}.pleiotropy.cvblup.tsv")
    _write_table(
        pd.DataFrame(
            summary_rows, columns=["TRAIT", "N", "H2", "H2_SE", "SIGMA_G", "SIGMA_E", "LOGLIK", "METHOD"]
        ),
        f"{out}.pleiotropy.h2.tsv",
    )
    return table


def loco_table_path(out: str | Path) -> Path:
    """Path of the LOCO cvBLUP table that ``deepprs gwas --cvblup-covar OUT`` reads."""
    return Path(f"{out}.cvblup.loco.tsv")
