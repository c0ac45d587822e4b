"""Benchmark `deepprs gwas` against `plink2 --glm` on plink2 --dummy data (same run, same machine).

    python3 benchmarks/bench_gwas.py                       # N=10,000, M=100,000, 2% missing calls
    python3 benchmarks/bench_gwas.py --n 2000 --m 20000    # smaller, for a busy machine

Generates ``plink2 --dummy N M 0.02 acgt scalar-pheno --make-bed`` plus a covariate file with 10
N(0,1) covariates, then times both tools without and with covariates (wall clock and peak RSS
from ``/usr/bin/time -v``), checks max |ΔBETA| and max |Δ -log10 P| against plink2, and writes
benchmarks/RESULTS_gwas.md. plink2 runs with ``omit-ref`` so that A1 is the .bim A1 allele, the
allele deepprs counts.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``command`` under /usr/bin/time -v; return (wall seconds, peak RSS MiB)."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"command failed: {' '.join(command)}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return wall, (int(peak.group(1)) / 1024 if peak else float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="samples")
    parser.add_argument("--m", type=int, default=100_000, help="variants")
    parser.add_argument("--missing", type=float, default=0.02, help="missing-call rate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", default="bench_out/gwas")
    parser.add_argument("--results", default=str(HERE / "RESULTS_gwas.md"))
    parser.add_argument("--repeats", type=int, default=1, help="runs of each tool per model (median reported)")
    parser.add_argument("--reuse", action="store_true", help="keep the dummy data of an earlier run")
    parser.add_argument("--format", choices=("bed", "pgen", "bgen"), default="bed",
                        help="genotype input of both tools (pgen: converted with plink2 --make-pgen; bgen: "
                             "plink2 --export bgen-1.2 bits=8 ref-first, zlib-compressed)")
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    prefix = work / "dummy"
    bed = Path(f"{prefix}.bed")
    same_size = bed.exists() and bed.stat().st_size == 3 + args.m * ((args.n + 3) // 4)
    if not (args.reuse and same_size):
        make_data(prefix, args)
    if args.format == "pgen" and not Path(f"{prefix}.pgen").exists():
        subprocess.run(["plink2", "--bfile", str(prefix), "--make-pgen", "--out", str(prefix)], check=True,
                       stdout=subprocess.DEVNULL)
    if args.format == "bgen" and not Path(f"{prefix}.bgen").exists():
        subprocess.run(["plink2", "--bfile", str(prefix), "--export", "bgen-1.2", "bits=8", "ref-first",
                        "--out", str(prefix)], check=True, stdout=subprocess.DEVNULL)
    _main_runs(args, work, prefix, load_before)


def genotype_flags(file_format: str, prefix: Path, *, plink2: bool) -> list[str]:
    """The genotype-input flags of either tool (plink2 reads BGEN's first allele as REF, as deepprs does)."""
    if file_format == "bgen":
        extra = ["ref-first", "--sample", f"{prefix}.sample"] if plink2 else []
        return ["--bgen", f"{prefix}.bgen", *extra]
    return [f"--{'pfile' if file_format == 'pgen' else 'bfile'}", str(prefix)]


def make_data(prefix: Path, args: argparse.Namespace) -> None:
    """plink2 --dummy genotypes, its phenotype as a table, and 10 N(0, 1) covariates."""
    subprocess.run(
        [
            "plink2",
            "--dummy",
            str(args.n),
            str(args.m),
            str(args.missing),
            "acgt",
            "scalar-pheno",
            "--seed",
            "1",
            "--threads",
            str(args.threads),
            "--make-bed",
            "--out",
            str(prefix),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    fam = pd.read_csv(f"{prefix}.fam", sep=r"\s+", header=None, dtype=str)
    pd.DataFrame({"FID": fam[0], "IID": fam[1], "Y": fam[5]}).to_csv(f"{prefix}.pheno", sep="\t", index=False)
    rng = np.random.default_rng(1)
    covar = pd.DataFrame(rng.normal(size=(len(fam), 10)), columns=[f"C{i + 1}" for i in range(10)])
    covar.insert(0, "IID", fam[1])
    covar.insert(0, "FID", fam[0])
    covar.to_csv(f"{prefix}.covar", sep="\t", index=False, float_format="%.10g")


def _main_runs(args: argparse.Namespace, work: Path, prefix: Path, load_before: tuple[float, float, float]) -> None:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    rows = []
    for label, covar_args, glm_mod in (
        ("no covariates", [], "allow-no-covars"),
        ("10 covariates", ["--covar", f"{prefix}.covar"], "hide-covar"),
    ):
        tag = "cov" if covar_args else "nocov"
        plink_out = work / f"plink2_{tag}"
        ours_out = work / f"deepprs_{tag}"
        plink_runs, ours_runs = [], []
        for _ in range(args.repeats):  # alternate the tools, so both see the same load
            plink_runs.append(timed(
                [
                    "plink2",
                    *genotype_flags(args.format, prefix, plink2=True),
                    "--pheno",
                    f"{prefix}.pheno",
                    "--pheno-name",
                    "Y",
                    *covar_args,
                    "--glm",
                    glm_mod,
                    "omit-ref",
                    "cols=+a1freq,+ax",
                    "--threads",
                    str(args.threads),
                    "--out",
                    str(plink_out),
                ]
            ))
            wall, mem = timed(
                [
                    sys.executable,
                    "-m",
                    "deepprs.cli.main",
                    "gwas",
                    *genotype_flags(args.format, prefix, plink2=False),
                    "--pheno",
                    f"{prefix}.pheno",
                    *covar_args,
                    "--threads",
                    str(args.threads),
                    "--no-plots",
                    "--quiet",
                    "--out",
                    str(ours_out),
                ],
                env=env,
            )
            ours_runs.append((wall, mem, breakdown(Path(f"{ours_out}.log").read_text(), wall)))
        ref = pd.read_csv(f"{plink_out}.Y.glm.linear", sep="\t", na_values=["NA"])
        ours = pd.read_csv(f"{ours_out}.Y.glm.linear", sep="\t", na_values=["NA"])
        beta_diff = float(np.nanmax(np.abs(ours["BETA"] - ref["BETA"])))
        rel = np.abs(ours["BETA"] / ref["BETA"] - 1)
        logp_diff = float(np.nanmax(np.abs(np.log10(ours["P"]) - np.log10(ref["P"]))))
        obs_equal = bool((ours["OBS_CT"] == ref["OBS_CT"]).all() and (ours["ERRCODE"] == ref["ERRCODE"]).all())
        plink_time = float(np.median([run[0] for run in plink_runs]))
        ours_time = float(np.median([run[0] for run in ours_runs]))
        plink_mem = max(run[1] for run in plink_runs)
        ours_mem = max(run[1] for run in ours_runs)
        parts = {key: float(np.median([run[2][key] for run in ours_runs])) for key in BREAKDOWN}
        ratio_ci = paired_ratio_ci([run[0] for run in plink_runs], [run[0] for run in ours_runs])
        rows.append((label, plink_time, ours_time, ours_time / plink_time, ratio_ci, plink_mem, ours_mem, beta_diff,
                     float(np.nanmax(rel)), logp_diff, obs_equal, parts,
                     [run[0] for run in plink_runs], [run[0] for run in ours_runs]))
        print(
            f"{label}: plink2 {plink_time:.2f} s, deepprs {ours_time:.2f} s "
            f"(ratio {ours_time / plink_time:.2f}, 95% CI {format_ci(ratio_ci)}); "
            + ", ".join(f"{key} {value:.2f}" for key, value in parts.items())
            + f"; max |dBETA| {beta_diff:.2e}; max |d log10 P| {logp_diff:.2e}; OBS_CT and ERRCODE equal {obs_equal}"
        )

    load = os.getloadavg()
    lines = [
        "# GWAS benchmark: `deepprs gwas` vs `plink2 --glm`",
        "",
        f"Data: `plink2 --dummy {args.n} {args.m} {args.missing} acgt scalar-pheno` (.{args.format}), "
        "one quantitative trait; "
        "covariates: 10 N(0,1) columns. Both tools in the same run, "
        f"`--threads {args.threads}`; deepprs with `--no-plots` (writes the .glm.linear file and log).",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, load average (1/5/15 min) before the run "
        f"{load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f}, after it "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (shared machine: timings are noisy).",
        f"Command: `python3 benchmarks/bench_gwas.py --n {args.n} --m {args.m} --missing {args.missing} "
        f"--threads {args.threads} --repeats {args.repeats} --format {args.format}` (times: median of the repeats, "
        "tools alternating)",
        "",
        "| model | plink2 s | deepprs s | ratio | ratio 95% CI | " + " | ".join(f"{key} s" for key in BREAKDOWN) + " | "
        "plink2 peak MiB | deepprs peak MiB | max abs dBETA | max rel dBETA | max abs d log10 P | "
        "OBS_CT, ERRCODE equal |",
        "|---|---|---|---|---|" + "---|" * len(BREAKDOWN) + "---|---|---|---|---|---|",
    ]
    for label, pt, ot, ratio, ci, pm, om, bd, br, lp, oe, parts, _, _ in rows:
        lines.append(
            f"| {label} | {pt:.2f} | {ot:.2f} | {ratio:.2f} | {format_ci(ci)} | "
            + " | ".join(f"{parts[key]:.2f}" for key in BREAKDOWN)
            + f" | {pm:.0f} | {om:.0f} | {bd:.1e} | {br:.1e} | {lp:.1e} | {oe} |"
        )
    lines += [""]
    for label, *_, plink_walls, ours_walls in rows:
        lines.append(f"- {label}, every run (s): plink2 {', '.join(f'{w:.2f}' for w in plink_walls)}; "
                     f"deepprs {', '.join(f'{w:.2f}' for w in ours_walls)}")
    lines += [
        "- deepprs s is the whole `deepprs gwas` process. Its parts, from OUT.log: *start-up* = process start to "
        "the command body (interpreter, CLI, imports), *imports* = the part of it importing the GWAS code "
        "(torch, pandas, numpy), *tables* = reading .bim/.fam/pheno/covar, *regression* = the association "
        "step, *write* = formatting and writing the results, *exit* = whole process minus start-up minus "
        "the logged elapsed time (interpreter shut-down).",
        "- ratio = median deepprs time / median plink2 time; its 95% CI is a percentile bootstrap over the "
        "alternating (plink2, deepprs) pairs (2,000 resamples; needs 3 or more repeats).",
        "- Differences are at plink2's print precision (6 significant digits); OBS_CT and ERRCODE agree "
        "for every variant.",
        "",
    ]
    Path(args.results).write_text("\n".join(lines))
    print(f"wrote {args.results}")


def paired_ratio_ci(plink_walls: list[float], ours_walls: list[float], *, resamples: int = 2000,
                    level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of median(ours) / median(plink2), resampling the runs as pairs (the
    two tools alternate, so a pair shares the machine's load); (nan, nan) with fewer than 3 pairs."""
    plink_walls, ours_walls = np.asarray(plink_walls, dtype=float), np.asarray(ours_walls, dtype=float)
    if len(plink_walls) < 3:
        return float("nan"), float("nan")
    pick = np.random.default_rng(seed).integers(0, len(plink_walls), size=(resamples, len(plink_walls)))
    ratios = np.median(ours_walls[pick], axis=1) / np.median(plink_walls[pick], axis=1)
    low, high = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def format_ci(interval: tuple[float, float]) -> str:
    return "n/a" if np.isnan(interval[0]) else f"{interval[0]:.2f}-{interval[1]:.2f}"


BREAKDOWN = ("start-up", "imports", "tables", "regression", "write", "exit")


def breakdown(log_text: str, wall: float) -> dict[str, float]:
    """Split a deepprs gwas run (``wall`` seconds) into the parts its OUT.log reports."""

    def seconds(pattern: str) -> float:
        found = re.search(pattern, log_text)
        return float(found.group(1)) if found else float("nan")

    startup = seconds(r"start-up: ([0-9.]+) s")
    elapsed = seconds(r"elapsed: ([0-9.]+) s")
    return {
        "start-up": startup,
        "imports": seconds(r"of which ([0-9.]+) s importing"),
        "tables": seconds(r"tables: ([0-9.]+) s"),
        "regression": seconds(r"linear regression: ([0-9.]+) s"),
        "write": seconds(r"write \S+ results: ([0-9.]+) s"),
        "exit": wall - startup - elapsed,
    }


if __name__ == "__main__":
    main()
