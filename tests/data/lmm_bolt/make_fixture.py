"""Regenerate the simulated cohort behind the BOLT-REML fixture (see README.md).

Usage: ``python3 make_fixture.py PREFIX`` writes ``PREFIX.bed/.bim/.fam`` and ``PREFIX.pheno``
(tab-separated ``FID IID SIM1 SIM2 SIM3``) and prints the SHA-256 of the ``.bed``; it also writes
``PREFIX_copy{1..4}.bed/.bim/.fam``, the same cohort with samples and variants shuffled (BOLT-REML has no
seed option: each shuffled copy is an independent Monte-Carlo run, exact REML is unchanged).
The test suite calls :func:`simulate_cohort` with the same constants, so only BOLT's and
GEMMA's outputs are stored.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pandas as pd

from deepprs.simulate import simulate_genotypes, simulate_trait

N_SAMPLES = 2000
N_VARIANTS = 6000
N_CHROMOSOMES = 3
GENOTYPE_SEED = 20261122
# (column, h2, number of causal variants, trait seed)
TRAITS = (("SIM1", 0.5, 2000, 1), ("SIM2", 0.5, 6000, 2), ("SIM3", 0.3, 1000, 3))


def simulate_cohort() -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return ``dosage (N, M) int8, sample_table, variant_table, phenotype table (FID IID SIM1..3)``."""
    dosage, sample_table, variant_table = simulate_genotypes(
        N_SAMPLES, N_VARIANTS, n_chromosomes=N_CHROMOSOMES, seed=GENOTYPE_SEED
    )
    pheno = pd.DataFrame({"FID": sample_table["fid"].to_numpy(), "IID": sample_table["iid"].to_numpy()})
    for column, h2, n_causal, seed in TRAITS:
        trait = simulate_trait(dosage, model="additive", n_causal=n_causal, h2=h2, seed=seed)
        pheno[column] = trait.phenotype
    return dosage, sample_table, variant_table, pheno


def bed_sha256(path: str) -> str:
    """SHA-256 hex digest of a file."""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


if __name__ == "__main__":
    from deepprs.io import write_bed

    prefix = sys.argv[1]
    dosage, sample_table, variant_table, pheno = simulate_cohort()
    write_bed(prefix, dosage, sample_table, variant_table)
    pheno.to_csv(f"{prefix}.pheno", sep="\t", index=False, float_format="%.10g")
    print(bed_sha256(f"{prefix}.bed"))
    for copy in range(1, 5):
        rng = np.random.default_rng(100 + copy)
        samples, variants = rng.permutation(len(sample_table)), rng.permutation(len(variant_table))
        write_bed(
            f"{prefix}_copy{copy}",
            dosage[samples][:, variants],
            sample_table.iloc[samples].reset_index(drop=True),
            variant_table.iloc[variants].reset_index(drop=True),
        )
