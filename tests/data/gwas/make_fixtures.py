"""Rebuild the GWAS fixtures and plink2 reference outputs (see README.md). Needs plink2 on PATH.

Run from this folder:  python3 make_fixtures.py /work/shared/data/1000g_eur_subset
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.io import write_bed

EUR = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/1000g_eur_subset")
GLM_COLS = "cols=+a1freq,+ax"


def plink2(*args: str) -> None:
    subprocess.run(["plink2", "--threads", "1", *args], check=True, stdout=subprocess.DEVNULL)


# ---- real genotypes: 379 samples x 2,000 variants of chr22 --------------------------------------
bim = pd.read_csv(EUR / "EUR_subset.bim", sep=r"\s+", header=None)
ids = bim.loc[bim[0] == 22, 1].iloc[:2000]
Path("eur.extract").write_text("\n".join(ids) + "\n")
plink2("--bfile", str(EUR / "EUR_subset"), "--extract", "eur.extract", "--make-bed", "--out", "eur")
Path("eur.extract").unlink()
table = pd.read_csv(EUR / "EUR_subset.pheno.covars", sep=r"\s+", dtype=str, keep_default_na=False)
table[["FID", "IID", "QCOV1", "QCOV2", "CAT_COV"]].to_csv("eur.covar", sep="\t", index=False)
# plink2 2.00a3.5 wants missing categories (NA, -9) spelled NONE (its --missing-catname default), not NA
for_plink2 = table[["FID", "IID", "QCOV1", "QCOV2", "CAT_COV"]].copy()
for_plink2["CAT_COV"] = for_plink2["CAT_COV"].replace(["NA", "-9"], "NONE")
for_plink2.to_csv("eur.plink2.covar", sep="\t", index=False)
pheno = table[["FID", "IID", "PHENO"]].copy()
values = pd.to_numeric(pheno["PHENO"], errors="coerce")
# binary trait in plink's 1 = control / 2 = case coding: the top 40% of PHENO are cases
pheno["CASE"] = np.where(values.isna(), "NA", np.where(values > values.quantile(0.6), "2", "1"))
pheno.to_csv("eur.pheno", sep="\t", index=False)

# ---- simulated genotypes with missing calls, a monomorphic and a separating variant ---------------
rng = np.random.default_rng(2024)
n, m = 300, 400
freq = rng.uniform(0.03, 0.5, m)
dosage = rng.binomial(2, freq, size=(n, m)).astype(float)
dosage[rng.random((n, m)) < 0.03] = np.nan
dosage[:, 7] = 0.0  # monomorphic
covar = pd.DataFrame({"C1": rng.normal(size=n), "C2": rng.uniform(size=n)})
liability = 0.4 * np.nan_to_num(dosage[:, 0]) + 0.5 * covar["C1"].to_numpy() + rng.normal(size=n)
case = liability > np.quantile(liability, 0.7)
separating = np.zeros(n)
carriers = rng.choice(np.flatnonzero(case), 12, replace=False)
separating[carriers] = 1.0  # only cases carry A1: quasi-separation -> Firth
dosage[:, 11] = separating
samples = pd.DataFrame({"fid": [f"F{i}" for i in range(n)], "iid": [f"S{i}" for i in range(n)]})
variants = pd.DataFrame(
    {
        "chrom": np.where(np.arange(m) < 250, "1", "2"),
        "pos": np.arange(m) * 100 + 1,
        "id": [f"sv{j}" for j in range(m)],
        "ref": "A",
        "alt": "G",
        "a1": "G",
        "cm": 0.0,
    }
)
write_bed("sim", dosage, samples, variants)
q1 = 0.3 * np.nan_to_num(dosage[:, 3]) + 0.4 * covar["C1"].to_numpy() + rng.normal(size=n)
q2 = rng.normal(size=n) * 2 + 5
q2[rng.random(n) < 0.1] = np.nan
sim_pheno = pd.DataFrame({"FID": samples.fid, "IID": samples.iid, "Q1": q1, "Q2": q2, "B1": np.where(case, 2, 1)})
sim_pheno.to_csv("sim.pheno", sep="\t", index=False, na_rep="NA", float_format="%.8g")
pd.DataFrame({"FID": samples.fid, "IID": samples.iid, "C1": covar.C1, "C2": covar.C2}).to_csv(
    "sim.covar", sep="\t", index=False, float_format="%.8g"
)

# ---- plink2 reference runs ---------------------------------------------------------------------------
plink2(
    "--bfile",
    "eur",
    "--pheno",
    "eur.pheno",
    "--pheno-name",
    "PHENO",
    "--glm",
    "allow-no-covars",
    "omit-ref",
    GLM_COLS,
    "--out",
    "plink2_eur_nocov",
)
plink2(
    "--bfile",
    "eur",
    "--pheno",
    "eur.pheno",
    "--pheno-name",
    "PHENO",
    "CASE",
    "--covar",
    "eur.plink2.covar",
    "--glm",
    "hide-covar",
    "omit-ref",
    GLM_COLS,
    "--out",
    "plink2_eur_cov",
)
plink2(
    "--bfile",
    "sim",
    "--pheno",
    "sim.pheno",
    "--glm",
    "allow-no-covars",
    "omit-ref",
    GLM_COLS,
    "--out",
    "plink2_sim_nocov",
)
plink2(
    "--bfile",
    "sim",
    "--pheno",
    "sim.pheno",
    "--covar",
    "sim.covar",
    "--glm",
    "hide-covar",
    "omit-ref",
    GLM_COLS,
    "--out",
    "plink2_sim_cov",
)
# variant filters (tests/test_gwas_filters.py): a keep list and ID lists derived from sim.fam / sim.bim
fam_lines = Path("sim.fam").read_text().splitlines()
Path("sim.keep").write_text("".join("\t".join(line.split()[:2]) + "\n"
                                    for i, line in enumerate(fam_lines, start=1) if i % 10 != 3))
bim_ids = [line.split()[1] for line in Path("sim.bim").read_text().splitlines()]
Path("sim.extract").write_text("".join(f"{v}\n" for i, v in enumerate(bim_ids, start=1) if i % 8 != 0))
Path("sim.exclude").write_text("".join(f"{v}\n" for i, v in enumerate(bim_ids, start=1) if i % 13 == 0))
plink2(
    "--bfile", "sim", "--pheno", "sim.pheno", "--pheno-name", "Q2", "--covar", "sim.covar", "--keep", "sim.keep",
    "--extract", "sim.extract", "--exclude", "sim.exclude", "--chr", "1", "--maf", "0.08", "--geno", "0.035",
    "--hwe", "0.02", "--glm", "hide-covar", "omit-ref", GLM_COLS, "--out", "plink2_sim_filters",
)
for log in Path(".").glob("plink2_*.log"):
    log.unlink()
for leftover in ("eur.log", "eur.nosex", "eur.plink2.covar"):
    Path(leftover).unlink(missing_ok=True)
