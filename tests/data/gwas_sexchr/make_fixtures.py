"""Rebuild the sex-chromosome GWAS fixtures (run from this folder) and plink2 2.00a3.5's --glm outputs.

    python3 make_fixtures.py

One .bed (240 samples x 48 variants, ~3 % missing) with several .bim files (chromosome codes written
as letters, as plink 1 numbers and with a chr prefix) and .fam files (sex: mixed with unknowns, all
unknown, males and unknowns only, all known). The .bed is written here byte by byte, so the
fixtures do not depend on deepprs.
"""

import itertools
import subprocess

import numpy as np

n, m = 240, 48
rng = np.random.default_rng(11)
chromosomes = ["X"] * 12 + ["Y"] * 8 + ["XY"] * 8 + ["MT"] * 8 + ["1"] * 12
codes = {
    "letters": {"X": "X", "Y": "Y", "XY": "XY", "MT": "MT", "1": "1"},
    "numeric": {"X": "23", "Y": "24", "XY": "25", "MT": "26", "1": "1"},
    "prefixed": {"X": "chrX", "Y": "chrY", "XY": "chrXY", "MT": "chrM", "1": "chr1"},
}
freq = rng.uniform(0.1, 0.6, m)
genotypes = rng.binomial(2, freq[:, None], size=(m, n))          # (variants, samples) A1 counts
missing = rng.random((m, n)) < 0.03
sex = rng.choice([1, 2, 0], size=n, p=[0.45, 0.45, 0.10])
sexes = {
    "mixed": sex,
    "unknown": np.zeros(n, dtype=int),
    "males": np.where(sex == 2, 1, sex),
    "known": np.where(sex == 0, 2, sex),
}

# .bed: code 00 = two A1 (first .bim allele), 01 = missing, 10 = het, 11 = no A1
code = np.choose(genotypes, [3, 2, 0]).astype(np.uint8)
code[missing] = 1
padded = np.zeros((m, -(-n // 4) * 4), dtype=np.uint8)
padded[:, :n] = code
packed = (padded.reshape(m, -1, 4) << np.array([0, 2, 4, 6], dtype=np.uint8)).sum(axis=2).astype(np.uint8)
with open("sexchr.bed", "wb") as handle:
    handle.write(bytes([0x6C, 0x1B, 0x01]) + packed.tobytes())
alleles = list(itertools.permutations("ACGT", 2))
for name, mapping in codes.items():
    with open(f"{name}.bim", "w") as handle:
        for j in range(m):
            a1, a2 = alleles[j % len(alleles)]
            handle.write(f"{mapping[chromosomes[j]]}\tv{j}\t0\t{1000 * (j + 1)}\t{a1}\t{a2}\n")
for name, values in sexes.items():
    with open(f"{name}.fam", "w") as handle:
        handle.write("".join(f"F{i}\tI{i}\t0\t0\t{values[i]}\t-9\n" for i in range(n)))

# pedigree.fam: mixed.fam with parents listed for some samples (non-founders, left out of plink2's
# frequencies and HWE tests)
with open("pedigree.fam", "w") as handle:
    for i in range(n):
        father = f"F{i + 2}" if i % 4 == 0 else "0"
        mother = f"M{i + 1}" if i % 7 == 2 else "0"
        handle.write(f"F{i}\tI{i}\t{father}\t{mother}\t{sexes['mixed'][i]}\t-9\n")

covariates = rng.normal(size=(n, 2))
dosage = np.where(missing, np.nan, genotypes).T
effects = np.zeros(m)
effects[[0, 3, 13, 21, 30, 40]] = 0.4
y = (np.nan_to_num(dosage - np.nanmean(dosage, 0)) @ effects + covariates @ [0.3, -0.2]
     + 0.5 * (sex == 1) + rng.normal(size=n))
status = (y + rng.normal(size=n) > np.median(y)).astype(int) + 1
with open("sexchr.pheno", "w") as handle:
    handle.write("FID\tIID\tQ\tCC\n" + "".join(f"F{i}\tI{i}\t{y[i]:.6f}\t{status[i]}\n" for i in range(n)))
with open("sexchr.covar", "w") as handle:
    handle.write("FID\tIID\tC1\tC2\n" + "".join(
        f"F{i}\tI{i}\t{covariates[i, 0]:.6f}\t{covariates[i, 1]:.6f}\n" for i in range(n)))

RUNS = [  # (output name, .bim, .fam, phenotype, with covariates)
    ("letters_mixed", "letters", "mixed", "Q", False),
    ("letters_mixed_covar", "letters", "mixed", "Q", True),
    ("letters_mixed_covar", "letters", "mixed", "CC", True),
    ("numeric_mixed", "numeric", "mixed", "Q", False),
    ("prefixed_mixed", "prefixed", "mixed", "Q", False),
    ("letters_unknown", "letters", "unknown", "Q", False),
    ("letters_males", "letters", "males", "Q", False),
    ("letters_known_covar", "letters", "known", "Q", True),
]
for out, bim, fam, pheno, with_covar in RUNS:
    subprocess.run(
        ["plink2", "--bed", "sexchr.bed", "--bim", f"{bim}.bim", "--fam", f"{fam}.fam", "--pheno", "sexchr.pheno",
         "--pheno-name", pheno, *(["--covar", "sexchr.covar"] if with_covar else []),
         "--glm", "hide-covar" if with_covar else "allow-no-covars", "omit-ref", "cols=+a1freq,+ax",
         "--threads", "1", "--out", f"plink2_{out}"],
        check=True, stdout=subprocess.DEVNULL,
    )
# the statistics behind --geno / --maf / --hwe (tests of deepprs.qc.filters.filter_statistics)
subprocess.run(["plink2", "--bed", "sexchr.bed", "--bim", "letters.bim", "--fam", "pedigree.fam", "--freq",
                "--missing", "variant-only", "--hardy", "--threads", "1", "--out", "plink2_pedigree"],
               check=True, stdout=subprocess.DEVNULL)
subprocess.run("rm -f plink2_*.log", shell=True, check=True)
