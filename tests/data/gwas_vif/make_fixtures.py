"""Build the predictor-check fixtures (see README.md). Run in this folder: python3 make_fixtures.py"""

import subprocess

import numpy as np

rng = np.random.default_rng(2026)
N, M = 500, 30
maf = rng.uniform(0.15, 0.5, M)
G = rng.binomial(2, maf, size=(N, M)).astype(float)
miss = np.zeros((N, M), bool)
for j in range(20, 30):  # v20..v29 have ~4% missing calls
    miss[rng.random(N) < 0.04, j] = True


def obs(j):
    """Genotype j with missing calls zero-filled (the covariates built from it match on called samples)."""
    return np.where(miss[:, j], 0.0, G[:, j])


def standard(x):
    return (x - x.mean()) / x.std()


cov = {}
a, a2 = rng.normal(size=N), rng.normal(size=N)
cov["c1"], cov["c2"] = G[:, 3] / 2 + a, G[:, 3] / 2 - a  # v3 = c1 + c2 exactly: VIF_INFINITE
cov["c3"], cov["c4"] = obs(23) / 2 + a2, obs(23) / 2 - a2  # v23 (missing calls) = c3 + c4 on its samples
cov["c5"] = G[:, 5] + rng.normal(scale=0.02, size=N)  # |r(v5, c5)| ~ 0.9995: CORR_TOO_HIGH
cov["c6"] = obs(25) + rng.normal(scale=0.02, size=N)  # the same on a variant with missing calls
b = rng.normal(size=N)
cov["c7"] = G[:, 7] / 2 + b + rng.normal(scale=0.04, size=N)  # v7 ~ c7 + c8: genotype VIF ~100
cov["c8"] = G[:, 7] / 2 - b + rng.normal(scale=0.04, size=N)
# c10 = c9 + e, e small and partly explained by v9: c10's VIF rises above 50 when v9 enters,
# while v9's own VIF stays below 50
c9 = rng.normal(size=N)
e = 0.2 * standard(standard(G[:, 9]) + 0.25 * rng.normal(size=N))
cov["c9"], cov["c10"] = c9, c9 + e
names = list(cov)
C = np.column_stack([cov[k] for k in names])
y = 0.3 * G[:, 0] + C @ rng.normal(scale=0.1, size=C.shape[1]) + rng.normal(size=N)
cc = (rng.random(N) < 1 / (1 + np.exp(-(0.4 * (G[:, 1] - 1) + 0.2 * C[:, 0])))).astype(int) + 1


def write_bed(prefix):
    with open(prefix + ".fam", "w") as f:
        for i in range(N):
            f.write(f"F{i} I{i} 0 0 0 -9\n")
    with open(prefix + ".bim", "w") as f:
        for j in range(M):
            f.write(f"1 v{j} 0 {1000 + 10 * j} A C\n")
    code = {2: 0b00, 1: 0b10, 0: 0b11}  # .bed: 00 = homozygous first allele (A, counted)
    out = bytearray([0x6C, 0x1B, 0x01])
    for j in range(M):
        row = bytearray((N + 3) // 4)
        for i in range(N):
            row[i // 4] |= (0b01 if miss[i, j] else code[int(G[i, j])]) << (2 * (i % 4))
        out += row
    open(prefix + ".bed", "wb").write(bytes(out))


def write_table(path, columns):
    with open(path, "w") as f:
        f.write("FID IID " + " ".join(columns) + "\n")
        for i in range(N):
            f.write(f"F{i} I{i} " + " ".join(f"{columns[k][i]:.10g}" for k in columns) + "\n")


write_bed("vif")
write_table("vif.pheno", {"y": y, "cc": cc})
write_table("vif.covar", cov)
# start-of-run refusals (plink2 stops with exit code 7 on both)
z = rng.normal(size=(N, 3))
write_table("corr_too_high.covar", {"p1": z[:, 0], "p2": z[:, 0] + 0.03 * z[:, 1], "p3": z[:, 2]})
write_table("vif_too_high.covar", {"q1": z[:, 0], "q2": z[:, 1], "q3": z[:, 0] + z[:, 1] + 0.15 * z[:, 2]})

glm = ["--glm", "hide-covar", "omit-ref", "cols=+a1freq,+ax"]
base = ["plink2", "--bfile", "vif", "--pheno", "vif.pheno", "--covar", "vif.covar", "--threads", "1"]
runs = {
    "plink2_vif_default": [],
    "plink2_vif_vif1000": ["--vif", "1000"],
    "plink2_vif_maxcorr": ["--max-corr", "0.99999", "--vif", "100000"],
}
for out, extra in runs.items():
    subprocess.run([*base, *glm, *extra, "--out", out], check=True, capture_output=True)
for name in ("corr_too_high", "vif_too_high"):
    cmd = ["plink2", "--bfile", "vif", "--pheno", "vif.pheno", "--pheno-name", "y", "--covar", f"{name}.covar",
           *glm, "--out", f"plink2_{name}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    print(name, "plink2 exit code", done.returncode)

# what the design does, for the README
X = np.column_stack([G[:, 9], cov["c9"], cov["c10"]])
print("v9 model VIFs (g, c9, c10):", np.diag(np.linalg.inv(np.corrcoef(X, rowvar=False))).round(1))
X = np.column_stack([G[:, 7], cov["c7"], cov["c8"]])
print("v7 model VIFs (g, c7, c8):", np.diag(np.linalg.inv(np.corrcoef(X, rowvar=False))).round(1))
print("covariate VIFs:", np.diag(np.linalg.inv(np.corrcoef(C, rowvar=False))).round(2))
