"""Benchmark `deepprs cvblup` against GEMMA (REML h² on the same standardised GRM) on simulated data.

    python3 benchmarks/bench_cvblup.py                         # N=3,000, M=20,000, 1 thread each
    python3 benchmarks/bench_cvblup.py --n 2000 --m 20000 --threads 2

Simulates independent SNPs (A1 frequencies U(0.05, 0.5), 1% missing calls) and an additive trait
(h² = 0.5, 2,000 causal SNPs) and writes a PLINK 1 fileset.  Times, with wall clock and peak RSS
from ``/usr/bin/time -v``:

* ``deepprs cvblup`` (GRM + eigendecomposition + REML + BLUP/cvBLUP + SNP weights), and with
  ``--method matrix-free`` (randomized HE + CG);
* GEMMA: ``gemma -gk 2`` (standardised GRM, = deepprs' K) plus ``gemma -k ... -lmm 1`` restricted
  to one SNP (``-snps``), i.e. only the null-model REML whose "pve estimate" is GEMMA's h².

Both tools are limited to the same number of BLAS/torch threads.  Writes benchmarks/RESULTS_lmm.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def timed(command: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[float, float, str]:
    """Run under /usr/bin/time -v; return (wall seconds, peak RSS MiB, stdout+stderr)."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"command failed: {' '.join(command)}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return wall, (int(peak.group(1)) / 1024 if peak else float("nan")), proc.stdout + proc.stderr


def simulate(prefix: Path, n: int, m: int, seed: int) -> None:
    from deepprs.io import write_bed

    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.05, 0.5, m)
    dosage = rng.binomial(2, freq, size=(n, m)).astype(np.float32)
    causal = rng.choice(m, size=min(2000, m), replace=False)
    z = (dosage[:, causal] - dosage[:, causal].mean(0)) / dosage[:, causal].std(0)
    genetic = z @ rng.normal(size=len(causal))
    genetic *= np.sqrt(0.5) / genetic.std()
    y = genetic + rng.normal(size=n) * np.sqrt(0.5)
    dosage[rng.random(dosage.shape) < 0.01] = np.nan
    samples = pd.DataFrame(
        {
            "fid": [f"F{i}" for i in range(n)],
            "iid": [f"I{i}" for i in range(n)],
            "father": "0",
            "mother": "0",
            "sex": 0,
        }
    )
    variants = pd.DataFrame(
        {
            "chrom": np.where(np.arange(m) < m // 2, "1", "2"),
            "pos": np.arange(m) + 1,
            "id": [f"rs{j}" for j in range(m)],
            "ref": "A",
            "alt": "C",
            "a1": "C",
            "cm": 0.0,
        }
    )
    write_bed(prefix, dosage, samples, variants)
    pd.DataFrame({"FID": samples.fid, "IID": samples.iid, "Y": np.round(y, 6)}).to_csv(
        f"{prefix}.pheno", sep="\t", index=False
    )
    Path(f"{prefix}.gemma_pheno").write_text("\n".join(f"{v:.6f}" for v in y) + "\n")
    Path(f"{prefix}.one_snp").write_text("rs0\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--m", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "RESULTS_lmm.md"))
    args = parser.parse_args()
    threads = str(args.threads)
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": threads,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "sim"
        simulate(prefix, args.n, args.m, args.seed)
        rows = []
        wall, peak, _ = timed(
            [
                sys.executable,
                "-m",
                "deepprs.cli.main",
                "cvblup",
                "--bfile",
                str(prefix),
                "--pheno",
                f"{prefix}.pheno",
                "--out",
                f"{prefix}.exact",
                "--threads",
                threads,
                "--quiet",
            ],
            env,
        )
        exact = json.loads(Path(f"{prefix}.exact.h2.json").read_text())
        rows.append(("deepprs cvblup (exact REML)", wall, peak, exact["h2"], exact["h2_se"]))
        wall, peak, _ = timed(
            [
                sys.executable,
                "-m",
                "deepprs.cli.main",
                "cvblup",
                "--bfile",
                str(prefix),
                "--pheno",
                f"{prefix}.pheno",
                "--out",
                f"{prefix}.mf",
                "--method",
                "matrix-free",
                "--threads",
                threads,
                "--quiet",
            ],
            env,
        )
        mf = json.loads(Path(f"{prefix}.mf.h2.json").read_text())
        rows.append(("deepprs cvblup --method matrix-free", wall, peak, mf["h2"], mf["h2_se"]))
        cv_exact = pd.read_csv(f"{prefix}.exact.cvblup.tsv", sep="\t")["CVBLUP"]
        cv_mf = pd.read_csv(f"{prefix}.mf.cvblup.tsv", sep="\t")["CVBLUP"]
        wall_k, peak_k, _ = timed(
            ["gemma", "-bfile", str(prefix), "-p", f"{prefix}.gemma_pheno", "-gk", "2", "-o", "k"],
            env,
            cwd=tmp,
        )
        wall_l, peak_l, _ = timed(
            [
                "gemma",
                "-bfile",
                str(prefix),
                "-p",
                f"{prefix}.gemma_pheno",
                "-k",
                "output/k.sXX.txt",
                "-snps",
                f"{prefix}.one_snp",
                "-lmm",
                "1",
                "-o",
                "lmm",
            ],
            env,
            cwd=tmp,
        )
        log = (Path(tmp) / "output" / "lmm.log.txt").read_text()
        pve = float(re.search(r"pve estimate in the null model = (\S+)", log).group(1))
        pve_se = float(re.search(r"se\(pve\) in the null model = (\S+)", log).group(1))
        rows.append(("gemma -gk 2 + -lmm 1 (null REML)", wall_k + wall_l, max(peak_k, peak_l), pve, pve_se))
    table = pd.DataFrame(rows, columns=["tool", "wall_s", "peak_rss_mib", "h2", "h2_se"])
    gemma_wall = table["wall_s"].iloc[-1]
    table["time_vs_gemma"] = table["wall_s"] / gemma_wall
    lines = [
        "# `deepprs cvblup` vs GEMMA",
        "",
        f"Command: `python3 benchmarks/bench_cvblup.py --n {args.n} --m {args.m} --threads {args.threads}`  ",
        f"Data: simulated, N = {args.n:,}, M = {args.m:,} independent SNPs, 1% missing calls, h² = 0.5 "
        f"(2,000 causal).  Machine: {platform.platform()}, {os.cpu_count()} CPUs shared with other jobs, "
        f"{args.threads} BLAS/torch thread(s) per tool.  "
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| tool | wall (s) | peak RSS (MiB) | h² | SE(h²) | time / GEMMA |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in table.itertuples():
        lines.append(
            f"| {row.tool} | {row.wall_s:.1f} | {row.peak_rss_mib:.0f} | {row.h2:.4f} | {row.h2_se:.4f} "
            f"| {row.time_vs_gemma:.2f} |"
        )
    lines += [
        "",
        f"|h²(deepprs exact) − h²(GEMMA)| = {abs(exact['h2'] - pve):.2e}; "
        f"corr(cvBLUP exact, cvBLUP matrix-free) = {np.corrcoef(cv_exact, cv_mf)[0, 1]:.4f}.",
        "deepprs' wall time includes what GEMMA does not compute here: BLUP, cvBLUP, SNP weights (a second",
        "genotype pass) and the output files; GEMMA's includes writing the N × N kinship as text",
        "and reading it back.",
    ]
    previous = Path(args.out).read_text() if Path(args.out).exists() else ""
    notes = previous[previous.index("\n## Notes") :] if "\n## Notes" in previous else ""
    Path(args.out).write_text("\n".join(lines) + "\n" + notes)  # hand-written notes are kept
    print("\n".join(lines))


if __name__ == "__main__":
    main()
