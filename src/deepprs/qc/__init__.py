"""Quality control: allele frequency, missingness, HWE exact test, filters, LD pruning, PCA."""

from deepprs.qc.filters import QCResult, run_qc, write_filtered_bed, write_qc
from deepprs.qc.pca import PCAResult, genotype_pca, write_pca
from deepprs.qc.prune import ld_prune, parse_indep_pairwise
from deepprs.qc.stats import GenotypeCounts, genotype_counts, hwe_exact_pvalues, variant_stats

__all__ = [
    "QCResult", "run_qc", "write_filtered_bed", "write_qc", "PCAResult", "genotype_pca", "write_pca",
    "ld_prune", "parse_indep_pairwise", "GenotypeCounts", "genotype_counts", "hwe_exact_pvalues",
    "variant_stats",
]
