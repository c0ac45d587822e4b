"""Write 8 re-ordered copies of tests/data/lmm/eur_lmm (samples and variants shuffled) for BOLT-REML.

Usage: ``python3 make_eur_orders.py OUTDIR`` writes ``OUTDIR/eur_p{1..8}.{bed,bim,fam}``. BOLT-REML has
no seed option; shuffling both samples (its Monte-Carlo noise draws) and variants (its random SNP
effects) gives independent Monte-Carlo runs, while exact REML does not depend on the order.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from deepprs.io import open_genotypes, write_bed

EUR = Path(__file__).resolve().parent.parent / "lmm" / "eur_lmm"

if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    source = open_genotypes(EUR)
    dosage = source.read()
    for copy in range(1, 9):
        rng = np.random.default_rng(1000 + copy)
        samples = rng.permutation(source.n_samples)
        variants = rng.permutation(source.n_variants)
        write_bed(
            out / f"eur_p{copy}",
            dosage[samples][:, variants],
            source.sample_table.iloc[samples].reset_index(drop=True),
            # cm = 0: BOLT rejects a shuffled .bim whose last genpos/bp ratio looks wrong ("Genetic map
            # appears wrong"); REML does not use genetic positions
            source.variant_table.iloc[variants].reset_index(drop=True).assign(cm=0.0),
        )
