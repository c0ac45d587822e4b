"""Loading a PRS training set and building models with run-time settings (shared by fit/benchmark)."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepprs.errors import InputError
from deepprs.io.cohort import load_cohort
from deepprs.io.packed import PackedGenotypes
from deepprs.models.base import MODEL_REGISTRY, PRSModel, make_model


@dataclass
class PRSData:
    """Genotypes, phenotype and covariates of the analysed samples, aligned.

    Attributes
    ----------
    genotypes : PackedGenotypes, shape (n_samples, n_variants)
    phenotype : ndarray, shape (n_samples,)
    covariates : ndarray, shape (n_samples, n_covariates) or None
    sample_ids : MultiIndex (FID, IID)
    variant_table : DataFrame (chrom pos id ref alt a1 cm), one row per variant
    phenotype_name, covariate_names
    """

    genotypes: PackedGenotypes
    phenotype: np.ndarray
    covariates: np.ndarray | None
    sample_ids: pd.MultiIndex
    variant_table: pd.DataFrame
    phenotype_name: str
    covariate_names: list[str]
    report: str = ""


def load_prs_data(
    genotypes: str,
    *,
    file_format: str | None = None,
    sample_path: str | None = None,
    pheno: str,
    pheno_name: str | None = None,
    covar: str | None = None,
    covar_names: list[str] | None = None,
    keep: str | None = None,
    remove: str | None = None,
) -> PRSData:
    """Open genotypes + one phenotype (+ covariates), drop samples missing any, pack the genotypes.

    .. warning:: holds the packed genotypes of all analysed samples in memory
       (n_samples × n_variants / 4 bytes).
    """
    cohort = load_cohort(
        genotypes,
        file_format=file_format,
        sample_path=sample_path,
        pheno=pheno,
        pheno_names=[pheno_name] if pheno_name else None,
        covar=covar,
        covar_names=covar_names,
        keep=keep,
        remove=remove,
    )
    phenotypes = cohort.phenotypes
    if phenotypes is None or phenotypes.shape[1] == 0:
        raise InputError(f"--pheno {pheno}: no phenotype column found")
    if pheno_name is None:
        if phenotypes.shape[1] > 1:
            raise InputError(
                f"--pheno {pheno} has {phenotypes.shape[1]} phenotype columns; choose one with --pheno-name"
            )
        pheno_name = str(phenotypes.columns[0])
    y = phenotypes[pheno_name].to_numpy(dtype=np.float64)
    keep_rows = np.isfinite(y)
    if keep_rows.sum() < 10:
        raise InputError(f"--pheno-name {pheno_name}: only {int(keep_rows.sum())} samples have a value; need >= 10")
    covariates = None
    covariate_names: list[str] = []
    if cohort.covariates is not None and cohort.covariates.shape[1]:
        covariates = cohort.covariates.to_numpy(dtype=np.float64)[keep_rows]
        covariate_names = [str(c) for c in cohort.covariates.columns]
    sample_index = np.asarray(cohort.sample_index)[keep_rows]
    packed = PackedGenotypes.from_source(cohort.genotypes, samples=sample_index)
    report = cohort.alignment.report()
    if (~keep_rows).any():
        report += f"; {int((~keep_rows).sum())} dropped: {pheno_name} missing"
    return PRSData(
        genotypes=packed,
        phenotype=y[keep_rows],
        covariates=covariates,
        sample_ids=cohort.sample_ids[keep_rows],
        variant_table=cohort.genotypes.variant_table.copy(),
        phenotype_name=pheno_name,
        covariate_names=covariate_names,
        report=report,
    )


def read_model_config(path: str | Path | None) -> dict[str, Any]:
    """Read ``--config FILE.json``: model parameters, either flat or ``{model_name: {...}}``."""
    if path is None:
        return {}
    path = Path(path)
    if not path.exists():
        raise InputError(f"--config {path} does not exist")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"--config {path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise InputError(f"--config {path}: expected a JSON object of parameters")
    return config


def params_for(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Parameters for ``name`` from a config: ``config[name]`` when present, else the flat keys."""
    if name in config and isinstance(config[name], dict):
        return dict(config[name])
    if any(isinstance(v, dict) for v in config.values()):
        return {}
    return dict(config)


def accepted_params(name: str) -> set[str]:
    """Constructor keyword names of registered model ``name``."""
    make_model_classes()
    cls = MODEL_REGISTRY.get(name)
    if cls is None:
        raise InputError(f"unknown model {name!r}; choose from {', '.join(sorted(MODEL_REGISTRY))}")
    return {p for p in inspect.signature(cls.__init__).parameters if p != "self"}


def make_model_classes() -> None:
    """Import the model modules so that the registry is complete."""
    import deepprs.models.linear  # noqa: F401

    try:
        import deepprs.models.neural  # noqa: F401
    except ImportError:
        pass


def build_model(
    name: str,
    params: dict[str, Any] | None = None,
    *,
    seed: int | None = None,
    device: str | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool | None = None,
    linear_twin: bool = False,
) -> PRSModel:
    """``make_model`` plus the run-time settings the model class accepts (seed, device, checkpoints)."""
    params = dict(params or {})
    accepted = accepted_params(name)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise InputError(
            f"--config: model {name!r} has no parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(accepted))}"
        )
    extras = {
        "random_state": seed,
        "device": device,
        "checkpoint_dir": None if checkpoint_dir is None else str(checkpoint_dir),
        "resume": resume,
    }
    for key, value in extras.items():
        if value is not None and key in accepted and key not in params:
            params[key] = value
    if linear_twin:
        params["linear_twin"] = True
    return make_model(name, **params)


def is_linear_model(name: str) -> bool:
    make_model_classes()
    cls = MODEL_REGISTRY.get(name)
    if cls is None:
        raise InputError(f"unknown model {name!r}; choose from {', '.join(sorted(MODEL_REGISTRY))}")
    return bool(cls.is_linear)
