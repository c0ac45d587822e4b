"""Genotype readers and writers, phenotype/covariate tables, sample alignment, packed genotypes."""

from deepprs.io.bed import BedReader, read_bim, read_fam, write_bed
from deepprs.io.cohort import Cohort, genotype_path, load_cohort
from deepprs.io.genotypes import GenotypeBlock, GenotypeSource, open_genotypes
from deepprs.io.packed import PackedGenotypes
from deepprs.io.tables import (
    SampleAlignment,
    align_samples,
    read_covariates,
    read_phenotypes,
    read_sample_list,
)

__all__ = [
    "BedReader", "Cohort", "genotype_path", "load_cohort", "GenotypeBlock", "GenotypeSource", "PackedGenotypes", "SampleAlignment", "align_samples",
    "open_genotypes", "read_bim", "read_covariates", "read_fam", "read_phenotypes", "read_sample_list",
    "write_bed",
]
