"""Genotype readers and writers, phenotype/covariate tables, sample alignment, packed genotypes."""

from deepprs.io.bed import BedReader, read_bim, read_fam, write_bed
from deepprs.io.cohort import Cohort, genotype_path, load_cohort
from deepprs.io.genotypes import GenotypeBlock, GenotypeSource, open_genotypes
from deepprs.io.packed import PackedGenotypes
from deepprs.io.pgen import PgenReader, read_psam, read_pvar, write_pgen
from deepprs.io.standardize import allele_frequency, standardize
from deepprs.io.tables import (
    SampleAlignment,
    align_samples,
    in_sample_list,
    read_covariates,
    read_phenotypes,
    read_sample_list,
)

__all__ = [
    "BedReader", "Cohort", "GenotypeBlock", "GenotypeSource", "PackedGenotypes", "PgenReader", "SampleAlignment",
    "align_samples", "allele_frequency", "in_sample_list", "genotype_path", "load_cohort", "open_genotypes", "read_bim",
    "read_covariates", "read_fam", "read_phenotypes", "read_psam", "read_pvar", "read_sample_list", "standardize",
    "write_bed", "write_pgen",
]
