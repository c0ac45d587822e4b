"""Load genotypes, phenotypes and covariates together (what every command starts with)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource, open_genotypes
from deepprs.io.tables import (
    FID_ABSENT,
    SampleAlignment,
    align_samples,
    read_covariates,
    read_phenotypes,
    read_sample_list,
)


@dataclass
class Cohort:
    """A genotype source plus the aligned sample subset, phenotypes and covariates."""

    genotypes: GenotypeSource
    alignment: SampleAlignment

    @property
    def sample_index(self):
        return self.alignment.genotype_index

    @property
    def sample_ids(self) -> pd.MultiIndex:
        return self.alignment.sample_ids

    @property
    def phenotypes(self) -> pd.DataFrame | None:
        return self.alignment.phenotypes

    @property
    def covariates(self) -> pd.DataFrame | None:
        return self.alignment.covariates


def genotype_path(bfile: str | None = None, pfile: str | None = None,
                  bgen: str | None = None, sample: str | None = None) -> tuple[str, str]:
    """Resolve the one genotype flag given (``--bfile``/``--pfile``/``--bgen``) to (path, format);
    ``--sample`` goes only with ``--bgen``."""
    given = [(p, f) for p, f in ((bfile, "bed"), (pfile, "pgen"), (bgen, "bgen")) if p]
    if len(given) != 1:
        raise InputError("give exactly one of --bfile, --pfile or --bgen")
    if sample and not bgen:
        raise InputError("--sample names the samples of a --bgen file; .bed/.pgen samples come from the .fam/.psam")
    return given[0]


def load_cohort(genotypes: str | Path | GenotypeSource, *, file_format: str | None = None,
                pheno: str | Path | None = None, pheno_names: list[str] | None = None,
                covar: str | Path | None = None, covar_names: list[str] | None = None,
                keep: str | Path | None = None, remove: str | Path | None = None,
                allow_duplicate_variant_ids: bool = False, sample_path: str | Path | None = None) -> Cohort:
    """Open genotypes and align phenotype/covariate tables and sample lists to them
    (``sample_path``: the Oxford ``.sample`` file of a BGEN, see :func:`open_genotypes`).

    Examples
    --------
    >>> cohort = load_cohort("data/cohort", pheno="trait.pheno", pheno_names=["BMI"])  # doctest: +SKIP
    >>> cohort.alignment.report()                                                      # doctest: +SKIP
    '1980 samples kept; 20 dropped: phenotype missing'
    """
    source = genotypes if isinstance(genotypes, GenotypeSource) else open_genotypes(
        genotypes, file_format=file_format, allow_duplicate_variant_ids=allow_duplicate_variant_ids,
        sample_path=sample_path)
    phenotypes = read_phenotypes(pheno, pheno_names) if pheno else None
    covariates = read_covariates(covar, covar_names) if covar else None
    alignment = align_samples(
        source.sample_ids, phenotypes=phenotypes, covariates=covariates,
        keep=read_sample_list(keep, "--keep") if keep else None,
        remove=read_sample_list(remove, "--remove") if remove else None,
        pheno_path=str(pheno) if pheno else None,
        genotype_fid_absent=bool(source.sample_table.attrs.get(FID_ABSENT, False)),
    )
    return Cohort(genotypes=source, alignment=alignment)
