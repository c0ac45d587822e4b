"""Rebuild the dosage GWAS fixtures (run from this folder): a .pgen with fractional dosages written by
pgenlib, the same data exported to BGEN 1.2 (16-bit) by plink2, and plink2 2.00a3.5's --glm outputs.

    python3 make_fixtures.py
"""

import subprocess

import numpy as np
import pgenlib

n, m = 300, 30
rng = np.random.default_rng(7)
freq = rng.uniform(0.05, 0.5, m)
dosage = np.zeros((m, n), np.float32)
for j in range(m):
    calls = rng.binomial(2, freq[j], n).astype(float)
    # imputation-like uncertainty: shrunk towards 2f, with noise; plink2's 1/16384 dosage units
    values = np.clip(0.7 * calls + 0.3 * 2 * freq[j] + rng.normal(0, 0.15, n), 0, 2)
    dosage[j] = np.round(values * 16384) / 16384
    dosage[j, rng.random(n) < 0.03] = -9  # missing
writer = pgenlib.PgenWriter(b"dose.pgen", n, m, False, dosage_present=True)
for j in range(m):
    writer.append_dosages(dosage[j])
writer.close()
with open("dose.pvar", "w") as handle:
    handle.write("#CHROM\tPOS\tID\tREF\tALT\n" + "".join(f"1\t{100 * (j + 1)}\tv{j}\tA\tG\n" for j in range(m)))
with open("dose.psam", "w") as handle:
    handle.write("#FID\tIID\tSEX\n" + "".join(f"F{i}\tI{i}\t{1 + i % 2}\n" for i in range(n)))
g = np.where(dosage < 0, np.nan, dosage).T
covariates = rng.normal(size=(n, 2))
effects = np.zeros(m)
effects[:5] = 0.5
y = np.nan_to_num(g - np.nanmean(g, 0)) @ effects + covariates @ [0.3, -0.2] + rng.normal(size=n)
status = (y + rng.normal(size=n) > np.median(y)).astype(int) + 1
with open("dose.pheno", "w") as handle:
    handle.write("FID\tIID\tQ\tCC\n" + "".join(f"F{i}\tI{i}\t{y[i]:.6f}\t{status[i]}\n" for i in range(n)))
with open("dose.covar", "w") as handle:
    handle.write("FID\tIID\tC1\tC2\n" + "".join(
        f"F{i}\tI{i}\t{covariates[i, 0]:.6f}\t{covariates[i, 1]:.6f}\n" for i in range(n)))
common = ["--pheno", "dose.pheno", "--covar", "dose.covar", "--glm", "hide-covar", "omit-ref"]
subprocess.run(["plink2", "--pfile", "dose", *common, "--out", "plink2_pgen"], check=True, stdout=subprocess.DEVNULL)
subprocess.run(["plink2", "--pfile", "dose", "--export", "bgen-1.2", "bits=16", "ref-first", "--out", "dose"],
               check=True, stdout=subprocess.DEVNULL)
subprocess.run(["plink2", "--bgen", "dose.bgen", "ref-first", "--sample", "dose.sample", *common,
                "--out", "plink2_bgen"], check=True, stdout=subprocess.DEVNULL)
# the statistics behind --geno / --maf / --hwe on dosage data (tests of deepprs.qc.filters.filter_statistics)
subprocess.run(["plink2", "--pfile", "dose", "--freq", "--missing", "variant-only", "--hardy", "--out", "plink2_pgen"],
               check=True, stdout=subprocess.DEVNULL)
