"""Write weights.plink.txt: seeded random weights for the eur_chr22 fixture; every 5th variant
that is not strand-ambiguous (A/T, C/G) names the second .bim allele (A2) as the scored allele,
so scoring it exercises allele flips."""

import numpy as np
import pandas as pd

bim = pd.read_csv("eur_chr22.bim", sep=r"\s+", header=None, names=["chrom", "id", "cm", "pos", "a1", "a2"])
rng = np.random.default_rng(11)
beta = rng.normal(scale=0.01, size=len(bim))
pairs = bim["a1"] + bim["a2"]
ambiguous = pairs.isin(["AT", "TA", "CG", "GC"]).to_numpy()
allele = np.where((np.arange(len(bim)) % 5 == 0) & ~ambiguous, bim["a2"], bim["a1"])
pd.DataFrame({"ID": bim["id"], "A1": allele, "BETA": np.round(beta, 8)}).to_csv(
    "weights.plink.txt", sep="\t", index=False
)
