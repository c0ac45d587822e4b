"""Simulated genotypes (LD-block model, optional msprime) and traits with known truth."""

from deepprs.simulate.genotypes import (
    InMemoryGenotypes,
    as_genotype_source,
    simulate_genotypes,
    write_simulated_cohort,
)
from deepprs.simulate.traits import (
    MODELS,
    TRUTH_COLUMNS,
    SimulatedTrait,
    genetic_value_from_truth,
    liability_threshold,
    scale_to_variance,
    simulate_trait,
    tagging_counts,
    write_simulated_trait,
    yelmen_counts,
    yelmen_terms,
)

__all__ = [
    "InMemoryGenotypes", "as_genotype_source", "simulate_genotypes", "write_simulated_cohort",
    "MODELS", "TRUTH_COLUMNS", "SimulatedTrait", "genetic_value_from_truth", "liability_threshold",
    "scale_to_variance", "simulate_trait", "tagging_counts", "write_simulated_trait", "yelmen_counts",
    "yelmen_terms",
]
