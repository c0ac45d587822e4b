"""Benchmark the linear PRS models with `deepprs benchmark` on real genotypes.

    python3 benchmarks/bench_prs.py                          # EUR PHENO + simulated trait, 5 folds
    python3 benchmarks/bench_prs.py --models ridge,enet      # fewer models on a busy machine

Data: /work/shared/data/1000g_eur_subset (379 samples x 54,051 SNPs, chr17-22).

1. The shipped (simulated) PHENO with covariates QCOV1 QCOV2, 5-fold CV.
2. Simulated additive traits on the same genotypes: for each value of ``--n-causal`` (default
   10 and 100) that many causal SNPs with N(0, 1) effects on standardised genotypes, h2 = 0.5,
   seed 1; no covariates.  The expected ridge/GBLUP accuracy (Daetwyler et al. 2008) for
   N_train ~ 303, M = 54,051, h2 0.5 is h2 / (1 + M / (N h2)) ~ 0.003, so only sparse methods can
   find anything, and only when the causal SNPs are few.

Each run writes bench_out/prs/<name>/ (results.tsv, summary.tsv, plots, benchmark.log) and the
tables go to benchmarks/RESULTS_prs.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DATA = Path("/work/shared/data/1000g_eur_subset")


def simulate_trait(prefix: Path, out: Path, n_causal: int, h2: float, seed: int) -> None:
    from deepprs.io.genotypes import open_genotypes

    source = open_genotypes(prefix)
    rng = np.random.default_rng(seed)
    causal = np.sort(rng.choice(source.n_variants, n_causal, replace=False))
    dosage = source.read(variants=causal, missing="mean", dtype=np.float64)
    z = (dosage - dosage.mean(0)) / np.where(dosage.std(0) > 0, dosage.std(0), 1.0)
    genetic = z @ rng.normal(size=n_causal)
    genetic *= np.sqrt(h2 / genetic.var())
    y = genetic + rng.normal(scale=np.sqrt(1 - h2), size=len(genetic))
    pd.DataFrame({"FID": source.sample_table["fid"], "IID": source.sample_table["iid"], "SIM": y}).to_csv(
        out, sep="\t", index=False
    )


def run(args: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "deepprs.cli.main", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"deepprs failed: {' '.join(args)}")
    return time.perf_counter() - start


def table(summary: pd.DataFrame, results: pd.DataFrame) -> str:
    lines = [
        "| model | pooled out-of-fold R² [95% CI] | mean fold R² (sd) | R² 1-SSE/SST | calibration slope | "
        "mean fit s/fold |",
        "|---|---|---|---|---|---|",
    ]
    seconds = results.groupby("model")["fit_seconds"].mean()
    for row in summary.itertuples():
        lines.append(
            f"| {row.model} | {row.pooled_r2:.4f} [{row.r2_ci_lower:.4f}, {row.r2_ci_upper:.4f}] | "
            f"{row.mean_fold_r2:.4f} ({row.sd_fold_r2:.4f}) | {row.pooled_r2_sse:.4f} | "
            f"{row.calibration_slope:.3f} | {seconds[row.model]:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="ct,ridge,enet,lasso,bayesr")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--n-causal", default="10,100", help="comma-separated causal SNP counts")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", default="bench_out/prs")
    parser.add_argument("--results", default=str(HERE / "RESULTS_prs.md"))
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = DATA / "EUR_subset"
    causal_counts = [int(v) for v in str(args.n_causal).split(",") if v.strip()]
    for n_causal in causal_counts:
        simulate_trait(prefix, workdir / f"sim{n_causal}.pheno", n_causal, 0.5, seed=1)
    common = [
        "--bfile",
        str(prefix),
        "--models",
        args.models,
        "--folds",
        str(args.folds),
        "--n-boot",
        str(args.n_boot),
        "--seed",
        "1",
        "--threads",
        str(args.threads),
        "--quiet",
    ]
    pheno = str(DATA / "EUR_subset.pheno.covars")
    runs = {
        "eur_pheno": [
            "benchmark",
            "--pheno",
            pheno,
            "--pheno-name",
            "PHENO",
            "--covar",
            pheno,
            "--covar-name",
            "QCOV1,QCOV2",
        ]
    }
    for n_causal in causal_counts:
        runs[f"eur_simulated_{n_causal}_causal"] = [
            "benchmark",
            "--pheno",
            str(workdir / f"sim{n_causal}.pheno"),
            "--pheno-name",
            "SIM",
        ]
    sections = []
    for name, command in runs.items():
        out = workdir / name
        wall = run([*command, *common, "--out", str(out)])
        summary = pd.read_csv(out / "summary.tsv", sep="\t")
        results = pd.read_csv(out / "results.tsv", sep="\t")
        command_line = "deepprs " + " ".join([*command, *common, "--out", str(out)])
        sections.append(
            f"## {name}\n\n`{command_line}`\n\nwall clock {wall:.0f} s "
            f"({args.folds} folds, all models)\n\n{table(summary, results)}\n"
        )
        print(sections[-1])
    header = (
        f"# PRS benchmark (linear models)\n\nGenerated by `python3 benchmarks/bench_prs.py "
        f"--models {args.models} --folds {args.folds} --n-boot {args.n_boot} --n-causal {args.n_causal}` "
        f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {platform.platform()}, "
        f"{os.cpu_count()} CPUs (shared with other jobs, so timings are pessimistic).\n\n"
        "Data: 1000 Genomes EUR subset, 379 samples x 54,051 SNPs (chr17-22). Pooled R² = squared "
        "correlation over all out-of-fold predictions; CI = 1,000-sample percentile bootstrap. "
        f"eur_simulated_K_causal: K causal SNPs, h2 = 0.5, seed 1.\n"
    )
    Path(args.results).write_text(header + "\n" + "\n".join(sections))


if __name__ == "__main__":
    main()
