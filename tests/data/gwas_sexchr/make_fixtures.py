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

# chrX Hardy-Weinberg fixture (tests of deepprs.qc.stats.hwe_x_exact_pvalues and --hwe on chrX): 2400 samples
# (47 % female, 47 % male, 6 % unknown sex, 8 % with a father listed) x 28 chrX variants: in HWE over a range of
# frequencies, with female inbreeding (too few / too many hets), with male and female frequencies apart, and
# edge cases (monomorphic, no male call, no female call, very rare); 2 % of male calls are heterozygous (plink2
# counts them as missing), 2 % of all calls missing. Own random stream: the fixtures above do not change.
rng_x = np.random.default_rng(2016)
n_x = 2400
sex_x = rng_x.choice([2, 1, 0], size=n_x, p=[0.47, 0.47, 0.06])
has_father = rng_x.random(n_x) < 0.08
specs = [(q, q, 0.0) for q in (0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01, 0.004)]   # (female freq, male freq, F)
specs += [(q, q, f) for q, f in ((0.4, 0.05), (0.3, -0.06), (0.2, 0.1), (0.45, -0.12), (0.1, 0.3), (0.25, 0.02),
                                 (0.35, -0.02), (0.15, 0.5), (0.05, -0.04), (0.5, 0.2))]
specs += [(qf, qm, 0.0) for qf, qm in ((0.3, 0.35), (0.2, 0.12), (0.4, 0.25), (0.1, 0.2), (0.05, 0.02), (0.5, 0.45))]
m_x = len(specs) + 4
calls = np.zeros((m_x, n_x), dtype=int)                          # A1 (first .bim allele) counts, -1 missing
for j, (qf, qm, f) in enumerate(specs):
    probs = np.clip([qf * qf + f * qf * (1 - qf), 2 * qf * (1 - qf) * (1 - f), (1 - qf) ** 2 + f * qf * (1 - qf)],
                    0, None)
    female = rng_x.choice([2, 1, 0], size=n_x, p=probs / probs.sum())
    male = np.where(rng_x.random(n_x) < 0.02, 1, 2 * rng_x.binomial(1, qm, size=n_x))
    calls[j] = np.where(sex_x == 1, male, female)
j = len(specs)
calls[j + 1] = np.where(sex_x == 1, -1, rng_x.binomial(2, 0.3, n_x))              # (j: monomorphic) no male call
calls[j + 2] = np.where(sex_x == 2, -1, 2 * rng_x.binomial(1, 0.3, n_x))          # no female call
calls[j + 3] = np.where(sex_x == 1, 2 * rng_x.binomial(1, 0.001, n_x), rng_x.binomial(2, 0.001, n_x))
calls = np.where(rng_x.random(calls.shape) < 0.02, -1, calls)
code_x = np.choose(np.where(calls < 0, 3, calls), [3, 2, 0, 1]).astype(np.uint8)
padded_x = np.zeros((m_x, -(-n_x // 4) * 4), dtype=np.uint8)
padded_x[:, :n_x] = code_x
packed_x = (padded_x.reshape(m_x, -1, 4) << np.array([0, 2, 4, 6], dtype=np.uint8)).sum(axis=2).astype(np.uint8)
with open("hwex.bed", "wb") as handle:
    handle.write(bytes([0x6C, 0x1B, 0x01]) + packed_x.tobytes())
with open("hwex.bim", "w") as handle:
    handle.write("".join(f"X\tx{j}\t0\t{1000 * (j + 1)}\tA\tG\n" for j in range(m_x)))
with open("hwex.fam", "w") as handle:
    handle.write("".join(f"H{i}\tH{i}\t{f'H{i + 1}' if has_father[i] else '0'}\t0\t{sex_x[i]}\t-9\n"
                         for i in range(n_x)))
hwex = ["plink2", "--bfile", "hwex", "--threads", "1"]
for extra, out in ((["--hardy"], "plink2_hwex"), (["--hardy", "midp"], "plink2_hwex_midp"),
                   (["--hwe", "0.0003", "--write-snplist"], "plink2_hwex_hwe")):
    subprocess.run(hwex + extra + ["--out", out], check=True, stdout=subprocess.DEVNULL)
subprocess.run("rm -f plink2_*.log", shell=True, check=True)
