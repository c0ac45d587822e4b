"""Benchmark logistic `deepprs gwas` (Firth fallback) against `plink2 --glm` (firth-fallback) in one run.

    python3 benchmarks/bench_gwas_logistic.py                  # first 20,000 variants of the GWAS data
    python3 benchmarks/bench_gwas_logistic.py --variants 2000  # smaller

Uses the data of benchmarks/bench_gwas.py (``plink2 --dummy 10000 100000 0.02``, made if absent) with its
10 covariates, keeps the first ``--variants`` variants (``plink2 --extract --make-bed``) and draws a 30 %
case/control trait (1/2 coded, seed 3). Times both tools alternately (wall clock and peak RSS from
``/usr/bin/time -v``), compares FIRTH?, ERRCODE, OR and LOG(OR)_SE, and writes
benchmarks/RESULTS_gwas_logistic.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_gwas import make_data, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", default="bench_out/gwas")
    parser.add_argument("--results", default=str(HERE / "RESULTS_gwas_logistic.md"))
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    prefix = work / "dummy"
    if not Path(f"{prefix}.bed").exists():
        make_data(prefix, argparse.Namespace(n=10_000, m=100_000, missing=0.02, threads=args.threads))
    load_before = os.getloadavg()
    subset = work / f"logistic{args.variants}"
    ids = pd.read_csv(f"{prefix}.bim", sep="\t", header=None, usecols=[1])[1].head(args.variants)
    ids.to_csv(f"{subset}.ids", index=False, header=False)
    subprocess.run(["plink2", "--bfile", str(prefix), "--extract", f"{subset}.ids", "--make-bed", "--out",
                    str(subset)], check=True, stdout=subprocess.DEVNULL)
    fam = pd.read_csv(f"{subset}.fam", sep=r"\s+", header=None, dtype=str)
    status = np.where(np.random.default_rng(3).random(len(fam)) < 0.3, 2, 1)
    pd.DataFrame({"FID": fam[0], "IID": fam[1], "CC": status}).to_csv(f"{subset}.pheno", sep="\t", index=False)
    common = ["--bfile", str(subset), "--pheno", f"{subset}.pheno", "--covar", f"{prefix}.covar",
              "--threads", str(args.threads)]
    plink_runs, ours_runs, irls = [], [], []
    for _ in range(args.repeats):  # alternate the tools, so both see the same load
        plink_runs.append(timed(["plink2", *common, "--glm", "hide-covar", "omit-ref", "--out",
                                 str(work / "plink2_logistic")]))
        ours_runs.append(timed([sys.executable, "-m", "deepprs.cli.main", "gwas", *common, "--no-plots", "--quiet",
                                "--out", str(work / "deepprs_logistic")],
                               env=dict(os.environ, OMP_NUM_THREADS=str(args.threads))))
        found = re.search(r"logistic regression: ([0-9.]+) s", (work / "deepprs_logistic.log").read_text())
        irls.append(float(found.group(1)) if found else float("nan"))
    ref = pd.read_csv(work / "plink2_logistic.CC.glm.logistic.hybrid", sep="\t", na_values=["NA"])
    ours = pd.read_csv(work / "deepprs_logistic.CC.glm.logistic.hybrid", sep="\t", na_values=["NA"])
    firth = (ref["FIRTH?"] == "Y").to_numpy()
    rel_or = (np.abs(ours["OR"] - ref["OR"]) / ref["OR"]).to_numpy()
    rel_se = (np.abs(ours["LOG(OR)_SE"] - ref["LOG(OR)_SE"]) / ref["LOG(OR)_SE"]).to_numpy()
    differ = ref["ERRCODE"] != ours["ERRCODE"]
    plink_time = float(np.median([run[0] for run in plink_runs]))
    ours_time = float(np.median([run[0] for run in ours_runs]))
    load = os.getloadavg()
    lines = [
        "# Logistic GWAS benchmark: `deepprs gwas` vs `plink2 --glm` (Firth fallback)",
        "",
        f"Data: the first {args.variants:,} variants of `plink2 --dummy 10000 100000 0.02` (benchmarks/bench_gwas.py), "
        "10 N(0,1) covariates, a random 30 % case/control trait; `--threads "
        f"{args.threads}`, tools alternating. Machine: {platform.platform()}, {os.cpu_count()} CPUs, load average "
        f"{load_before[0]:.1f} before, {load[0]:.1f} after.",
        f"Command: `python3 benchmarks/bench_gwas_logistic.py --variants {args.variants} --repeats {args.repeats}`",
        "",
        "| plink2 s | deepprs s | ratio | deepprs logistic step s | plink2 peak MiB | deepprs peak MiB |",
        "|---|---|---|---|---|---|",
        f"| {plink_time:.2f} | {ours_time:.2f} | {ours_time / plink_time:.2f} | {np.median(irls):.2f} | "
        f"{max(run[1] for run in plink_runs):.0f} | {max(run[1] for run in ours_runs):.0f} |",
        "",
        f"- every run (s): plink2 {', '.join(f'{run[0]:.2f}' for run in plink_runs)}; "
        f"deepprs {', '.join(f'{run[0]:.2f}' for run in ours_runs)}",
        f"- FIRTH? equal for every variant: {bool((ref['FIRTH?'] == ours['FIRTH?']).all())} "
        f"({int(firth.sum())} Firth fits)",
        f"- ERRCODE differs on {int(differ.sum())} variant(s): "
        + (", ".join(f"{i} plink2 {a} / deepprs {b}" for i, a, b in
                     zip(ref["ID"][differ], ref["ERRCODE"][differ], ours["ERRCODE"][differ], strict=True)) or "none"),
        f"- max relative OR difference: ordinary fits {np.nanmax(rel_or[~firth]):.1e}, Firth fits "
        + (f"{np.nanmax(rel_or[firth & ~differ.to_numpy()]):.1e}" if (firth & ~differ.to_numpy()).any() else "-")
        + f"; LOG(OR)_SE within 5e-5 on {np.nanmean(rel_se[~firth] < 5e-5):.1%} of ordinary fits "
        f"(max {np.nanmax(rel_se[~firth]):.1e}; plink2 2.00a3.5's logistic arithmetic is partly single precision)",
        "",
    ]
    Path(args.results).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
