"""Regenerate qcsim.bed/.bim/.fam (simulated genotypes with planted QC failures); see README.md."""

import numpy as np

from deepprs.io import write_bed
from deepprs.simulate import simulate_genotypes

dosage, samples, variants = simulate_genotypes(300, 2000, n_chromosomes=2, missing_rate=0.01, seed=7)
rng = np.random.default_rng(7)
bad_samples = rng.choice(300, 10, replace=False)
for i in bad_samples:                                   # ~4% extra missing calls
    dosage[i, rng.random(2000) < 0.04] = -1
hwe_variants = rng.choice(2000, 20, replace=False)
for j in hwe_variants:                                  # heterozygote deficit -> HWE failure
    het = np.flatnonzero(dosage[:, j] == 1)
    dosage[het[: len(het) // 2], j] = 2
    dosage[het[len(het) // 2:], j] = 0
mono = rng.choice(np.setdiff1d(np.arange(2000), hwe_variants), 5, replace=False)
dosage[:, mono] = np.where(dosage[:, mono] < 0, -1, 0)  # monomorphic
high_missing = rng.choice(2000, 30, replace=False)
for j in high_missing:
    dosage[rng.random(300) < 0.05, j] = -1
write_bed("qcsim", dosage, samples, variants)
