"""Acceptance runs of the PRS benchmark harness with every network (issue criteria a, b, c).

    python3 benchmarks/bench_prs_acceptance.py                    # a, b, c, c2 (~25 min, 1 thread)
    python3 benchmarks/bench_prs_acceptance.py --parts b          # one part (report re-assembled)
    python3 benchmarks/bench_prs_acceptance.py --parts ""         # only re-assemble the report
    python3 benchmarks/bench_prs_acceptance.py --folds-a 5        # more folds for part a

a. Additive trait, h2 0.5, N = 5,000 simulated samples x ``--m-a`` variants (default 2,000) with LD
   blocks (``deepprs.simulate.simulate_genotypes``, blocks of 100, rho 0.95), every variant causal.
   Models: ridge + mlp, vae, lcn, attention, hybrid (each with its linear twin), through
   :func:`deepprs.evaluate.benchmark.run_benchmark`.  Ridge's pooled out-of-fold R² is compared
   with Daetwyler et al. (2008), ``h2 / (1 + M_e / (N_train h2))``, for three choices of M_e:
   the number of variants M (no LD); the LD-based effective number ``M_e = M² / sum_ij r_ij²``
   (r² bias-corrected by ``(r² - 1/N)``; equals ``1 / var(off-diagonal GRM)``, Goddard 2009);
   and the M_e implied by applying Daetwyler's formula to each eigen-component of the
   within-block LD matrices (:func:`eigen_expectation`; equal to Daetwyler when there is no LD).
b. Pure pairwise epistasis (``simulate_trait(model='epistasis')``: ``--pairs-b`` groups of two
   variants, product of centred dosages, no marginal effects), h2 0.8, N = 3,000, M = 300: ridge
   vs mlp (+ twin).  A companion additive trait (h2 0.5, 30 causal) on the same genotypes checks
   that the MLP's linear twin matches ridge.
c. Real genotypes: 1000 Genomes EUR subset (379 x 54,051) and its PHENO with covariates QCOV1,
   QCOV2, through the CLI (``deepprs benchmark``): ridge, bayesr, mlp, hybrid.  The hybrid's
   linear path is ridge; its paired difference against ridge is added below the summary.
c2. The same data with ``lasso`` and a hybrid whose linear path is lasso (ridge predicts ~0 on
   this sparse trait, so c alone cannot show the hybrid holding a useful linear path).

Network budgets (set in ``NETWORK_CONFIG_*``; early stopping on a 20 % validation split, then a refit
on the whole training fold for the chosen epoch count): a. mlp: SGD + momentum 0.9, lr 3e-4, EMA
weight averaging (``ema_decay`` 0.999), at most 150 epochs, patience 10, batch 256, an ensemble
of 5 seeds; vae, lcn,
attention, hybrid: Adam, at most 30 epochs, patience 5, batch 256; vae and attention screen the
top 500 variants by marginal p-value inside each training fold, the others use all M; the
hybrid fits its ridge skip path in 3 inner folds.  b. mlp hidden (64, 32), dropout 0.1, SGD +
momentum lr 1e-2 with EMA weight averaging, at most 80 epochs, patience 8, an ensemble of 3 seeds
(all 300 variants).  The linear twins use the same recipe as their networks.  c, c2. top 2,000
variants (in-fold screening), at most 40 epochs, patience 5; the hybrid's skip path in 5 inner folds.

Extra paired bootstraps (same ``paired_bootstrap`` as the harness, 1,000 replicates) compare each
linear twin and the hybrid with ridge.  Writes bench_out/prs_acceptance/<part>/ and
benchmarks/RESULTS_prs_acceptance.md (its hand-written "## Reading the numbers" section, to the
end of the file, is kept when the report is re-assembled).  Part a takes ~12 min with 1 thread
(the MLP and its twin are 5-seed ensembles), b ~1 min, c ~6 min, c2 ~3.5 min.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = Path("/work/shared/data/1000g_eur_subset")

# SGD + momentum (Kelemen et al.'s recipe) with Polyak (EMA) weight averaging for the MLP (and so its
# linear twin): with Adam the twin lagged ridge by 0.057 (a) and 0.009 (b); see RESULTS_prs_acceptance.md
MLP_RECIPE = {"optimizer": "sgd", "ema_decay": 0.999}
NETWORK_CONFIG_A = {
    "mlp": {"epochs": 150, "patience": 10, "batch_size": 256, "lr": 3e-4, "n_seeds": 5, **MLP_RECIPE},
    "vae": {"epochs": 30, "patience": 5, "batch_size": 256, "top_k": 500},
    "lcn": {"epochs": 30, "patience": 5, "batch_size": 256},
    "attention": {"epochs": 30, "patience": 5, "batch_size": 256, "top_k": 500, "window": 25},
    "hybrid": {"epochs": 30, "patience": 5, "batch_size": 256, "linear_folds": 3},
}
NETWORK_CONFIG_B = {
    "mlp": {"epochs": 80, "patience": 8, "hidden": [64, 32], "dropout": 0.1, "lr": 1e-2, "n_seeds": 3, **MLP_RECIPE},
}
NETWORK_CONFIG_C = {
    "mlp": {"epochs": 40, "patience": 5, "top_k": 2000},
    "hybrid": {"epochs": 40, "patience": 5, "top_k": 2000},
}


NOTES_HEADING = "## Reading the numbers"
"""Everything from this heading to the end of the results file is hand-written and kept on re-runs."""


def effective_number(dosage: np.ndarray) -> float:
    """LD-based effective number of variants ``M² / sum_ij (r_ij² - 1/N)`` (diagonal exact 1).

    Parameters
    ----------
    dosage : ndarray, shape (n_samples, n_variants)
    """
    n, m = dosage.shape
    z = (dosage - dosage.mean(0)) / dosage.std(0)
    corr = (z.T @ z) / n
    r2 = corr**2 - 1.0 / n
    np.fill_diagonal(r2, 1.0)
    return float(m * m / r2.sum())


def ld_eigenvalues(dosage: np.ndarray, block_size: int) -> np.ndarray:
    """Eigenvalues of the within-block LD (correlation) matrices, shape (n_variants,).

    ``simulate_genotypes`` draws independent blocks of ``block_size`` adjacent variants, so the LD
    matrix is block diagonal; per-block estimates avoid the noise of a full M x M sample matrix.
    """
    n, m = dosage.shape
    z = (dosage - dosage.mean(0)) / dosage.std(0)
    blocks = [
        np.linalg.eigvalsh(z[:, b : b + block_size].T @ z[:, b : b + block_size] / n) for b in range(0, m, block_size)
    ]
    return np.clip(np.concatenate(blocks), 0.0, None)


def eigen_expectation(h2: float, n_train: float, eigenvalues: np.ndarray) -> float:
    """Daetwyler's expectation summed over LD eigen-components (infinitesimal model, BLUP).

    Component i carries genetic variance ``h2 λ_i / M`` and is estimated with reliability
    ``x_i / (1 + x_i)``, ``x_i = N h2 λ_i / M``; the expected R² is ``(h2 / M) Σ λ_i x_i / (1 + x_i)``.
    With no LD (all λ = 1) this is exactly ``h2 / (1 + M / (N h2))``.
    """
    m = len(eigenvalues)
    x = n_train * h2 * eigenvalues / m
    return float(h2 / m * np.sum(eigenvalues * x / (1.0 + x)))


def daetwyler(h2: float, n_train: float, m_e: float) -> float:
    """Expected prediction R² of a linear predictor (Daetwyler et al. 2008)."""
    return h2 / (1.0 + m_e / (n_train * h2))


def extra_pairs(result, pairs: list[tuple[str, str]], n_boot: int, seed: int) -> pd.DataFrame:
    """Paired bootstrap of pooled R² for (model, reference) pairs from the out-of-fold predictions."""
    from deepprs.evaluate.metrics import paired_bootstrap, r2

    y = result.phenotype
    wide = {key: group["prediction"].to_numpy() for key, group in result.predictions.groupby("model", sort=False)}
    rows = []
    for model, reference in pairs:
        if model not in wide or reference not in wide:
            continue
        diff, (lo, hi), p = paired_bootstrap(r2, y, wide[model], wide[reference], n_boot=n_boot, seed=seed)
        rows.append({"model": model, "reference": reference, "diff": diff, "lo": lo, "hi": hi, "p": p})
    return pd.DataFrame(rows)


def summary_table(result) -> str:
    summary = result.summary
    fit = result.results.groupby("model")["fit_seconds"].mean()
    lines = [
        "| model | pooled R² [95% CI] | mean fold R² (sd) | calibration slope | mean fit s/fold |",
        "|---|---|---|---|---|",
    ]
    for row in summary.itertuples():
        lines.append(
            f"| {row.model} | {row.pooled_r2:.4f} [{row.r2_ci_lower:.4f}, {row.r2_ci_upper:.4f}] | "
            f"{row.mean_fold_r2:.4f} ({row.sd_fold_r2:.4f}) | {row.calibration_slope:.3f} | {fit[row.model]:.1f} |"
        )
    lines += [
        "",
        "| network | vs best linear: diff [95% CI], P | vs linear twin: diff [95% CI], P |",
        "|---|---|---|",
    ]
    for row in summary.itertuples():
        if not isinstance(getattr(row, "linear_twin", None), str):
            continue
        lines.append(
            f"| {row.model} | {row.best_linear}: {row.diff_vs_best_linear:+.4f} [{row.diff_best_ci_lower:+.4f}, "
            f"{row.diff_best_ci_upper:+.4f}], P {row.p_vs_best_linear:.3g} | {row.linear_twin}: "
            f"{row.diff_vs_twin:+.4f} [{row.diff_twin_ci_lower:+.4f}, {row.diff_twin_ci_upper:+.4f}], "
            f"P {row.p_vs_twin:.3g} |"
        )
    return "\n".join(lines)


def pairs_table(pairs: pd.DataFrame) -> str:
    lines = ["| model | reference | R² difference [95% CI] | P |", "|---|---|---|---|"]
    for row in pairs.itertuples():
        lines.append(
            f"| {row.model} | {row.reference} | {row.diff:+.4f} [{row.lo:+.4f}, {row.hi:+.4f}] | {row.p:.3g} |"
        )
    return "\n".join(lines)


def write_out(result, out_dir: Path) -> None:
    from deepprs.evaluate.benchmark import write_benchmark

    write_benchmark(result, out_dir)


def part_a(args) -> str:
    from deepprs.evaluate.benchmark import run_benchmark
    from deepprs.simulate import simulate_genotypes, simulate_trait
    from deepprs.train.cv import make_folds

    n, m, h2 = 5000, args.m_a, 0.5
    dosage, _, variant_table = simulate_genotypes(n, m, seed=11)
    trait = simulate_trait(dosage, model="additive", n_causal=m, h2=h2, seed=12)
    m_e = effective_number(dosage)
    expected_eigen = eigen_expectation(h2, n * (args.folds_a - 1) / args.folds_a, ld_eigenvalues(dosage, 100))
    folds = make_folds(np.arange(n).astype(str), args.folds_a, seed=args.seed)
    n_train = n * (args.folds_a - 1) / args.folds_a
    models = ["ridge", "mlp", "vae", "lcn", "attention", "hybrid"]
    start = time.perf_counter()
    result = run_benchmark(
        dosage,
        trait.phenotype,
        models=models,
        folds=folds,
        variant_table=variant_table.rename(columns=str.lower),
        config=NETWORK_CONFIG_A,
        n_boot=args.n_boot,
        seed=args.seed,
        device="cpu",
    )
    wall = time.perf_counter() - start
    write_out(result, args.out / "a_additive")
    pairs = extra_pairs(
        result,
        [(f"{name}-linear", "ridge") for name in models[1:]] + [("hybrid", "ridge")],
        args.n_boot,
        args.seed,
    )
    ridge = result.summary.set_index("model").loc["ridge"]
    realised = float(np.var(trait.genetic_value) / np.var(trait.phenotype))
    text = [
        "## a. Additive trait, simulated genotypes with LD",
        "",
        f"N = {n} samples, M = {m} variants (`simulate_genotypes(5000, {m}, seed=11)`: LD blocks of 100, rho 0.95), "
        f"all {m} variants causal, h2 0.5 (realised {realised:.3f}, `simulate_trait(model='additive', seed=12)`); "
        f"{args.folds_a}-fold CV (N_train = {n_train:.0f}); wall clock {wall:.0f} s.",
        "",
        summary_table(result),
        "",
        "Linear twins and the hybrid against ridge (paired bootstrap):",
        "",
        pairs_table(pairs),
        "",
        "Daetwyler expectation for ridge, h2 / (1 + M_e / (N_train h2)):",
        "",
        "| M_e | value | expected R² | ridge pooled R² [95% CI] |",
        "|---|---|---|---|",
        f"| M (number of variants) | {m} | {daetwyler(h2, n_train, m):.4f} | "
        f"{ridge.pooled_r2:.4f} [{ridge.r2_ci_lower:.4f}, {ridge.r2_ci_upper:.4f}] |",
        f"| LD-based M²/Σr² (bias-corrected) | {m_e:.0f} | {daetwyler(h2, n_train, m_e):.4f} | |",
        f"| implied by the LD eigenvalues (Σ over within-block eigen-components, see `eigen_expectation`) | "
        f"{n_train * h2 * (h2 / expected_eigen - 1):.0f} | {expected_eigen:.4f} | |",
    ]
    return "\n".join(text)


def part_b(args) -> str:
    from deepprs.evaluate.benchmark import run_benchmark
    from deepprs.simulate import simulate_genotypes, simulate_trait
    from deepprs.train.cv import make_folds

    n, m = 3000, 300
    dosage, _, _ = simulate_genotypes(n, m, seed=21)
    folds = make_folds(np.arange(n).astype(str), args.folds, seed=args.seed)
    sections = ["## b. Pairwise epistasis vs additive, MLP against ridge", ""]
    for label, kwargs in (
        ("epistasis", {"model": "epistasis", "n_causal": 2 * args.pairs_b, "h2": 0.8, "order": 2}),
        ("additive", {"model": "additive", "n_causal": 30, "h2": 0.5}),
    ):
        trait = simulate_trait(dosage, seed=22, **kwargs)
        start = time.perf_counter()
        result = run_benchmark(
            dosage,
            trait.phenotype,
            models=["ridge", "mlp"],
            folds=folds,
            config=NETWORK_CONFIG_B,
            n_boot=args.n_boot,
            seed=args.seed,
            device="cpu",
        )
        wall = time.perf_counter() - start
        write_out(result, args.out / f"b_{label}")
        pairs = extra_pairs(result, [("mlp-linear", "ridge")], args.n_boot, args.seed)
        sections += [
            f"### {label}: `simulate_trait(model='{kwargs['model']}', n_causal={kwargs['n_causal']}, "
            f"h2={kwargs['h2']}, seed=22)`",
            "",
            f"N = {n}, M = {m} (`simulate_genotypes({n}, {m}, seed=21)`), {args.folds}-fold CV, "
            f"wall clock {wall:.0f} s.",
            "",
            summary_table(result),
            "",
            pairs_table(pairs),
            "",
        ]
    return "\n".join(sections)


def run_cli_benchmark(args, name: str, models: str, config_params: dict, pairs: list[tuple[str, str]]):
    """``deepprs benchmark`` on the EUR subset PHENO (+ QCOV1 QCOV2); returns tables and the command."""
    out = args.out / name
    out.mkdir(parents=True, exist_ok=True)
    config = out / "config.json"
    config.write_text(json.dumps(config_params, indent=2) + "\n")
    pheno = DATA / "EUR_subset.pheno.covars"
    command = ["benchmark", "--bfile", str(DATA / "EUR_subset"), "--pheno", str(pheno), "--pheno-name", "PHENO"]
    command += ["--covar", str(pheno), "--covar-name", "QCOV1,QCOV2", "--models", models]
    command += ["--folds", str(args.folds), "--n-boot", str(args.n_boot), "--seed", str(args.seed)]
    command += [
        "--config",
        str(config),
        "--device",
        "cpu",
        "--threads",
        str(args.threads),
        "--quiet",
        "--out",
        str(out),
    ]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "deepprs.cli.main", *command], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"deepprs benchmark failed ({name})")
    wall = time.perf_counter() - start

    class Loaded:  # the files written by the CLI, in BenchmarkResult's shape
        summary = pd.read_csv(out / "summary.tsv", sep="\t")
        results = pd.read_csv(out / "results.tsv", sep="\t")
        predictions = pd.read_csv(out / "predictions.tsv", sep="\t", dtype={"FID": str, "IID": str})

    table = pd.read_csv(pheno, sep=r"\s+", dtype={"FID": str, "IID": str})
    first = Loaded.predictions[Loaded.predictions["model"] == Loaded.predictions["model"].iloc[0]]
    Loaded.phenotype = first.merge(table, on=["FID", "IID"], how="left")["PHENO"].to_numpy(dtype=float)
    shown = " ".join(("deepprs", *command)).replace(str(config), "CONFIG.json")
    lines = [
        f"379 samples x 54,051 SNPs, covariates QCOV1 QCOV2, {args.folds}-fold CV; wall clock {wall:.0f} s.",
        "",
        f"`{shown}`",
        "",
        f"CONFIG.json: `{json.dumps(config_params)}`",
        "",
        summary_table(Loaded),
        "",
        "Paired bootstrap against the linear references:",
        "",
        pairs_table(extra_pairs(Loaded, pairs, args.n_boot, args.seed)),
    ]
    return "\n".join(lines)


def part_c(args) -> str:
    body = run_cli_benchmark(
        args,
        "c_eur_pheno",
        "ridge,bayesr,mlp,hybrid",
        NETWORK_CONFIG_C,
        [("hybrid", "ridge"), ("bayesr", "ridge"), ("mlp-linear", "ridge")],
    )
    return "## c. Real genotypes: 1000 Genomes EUR subset, PHENO (hybrid's linear path: ridge)\n\n" + body


def part_c2(args) -> str:
    """The hybrid with a lasso skip path (ridge is ~0 on this sparse trait, so c alone says little)."""
    config = {"hybrid": dict(NETWORK_CONFIG_C["hybrid"], linear_model="lasso")}
    body = run_cli_benchmark(
        args, "c2_eur_pheno_lasso_path", "lasso,hybrid", config, [("hybrid", "lasso"), ("hybrid-linear", "lasso")]
    )
    return "### c2. The same data, hybrid with a lasso linear path\n\n" + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="a,b,c,c2")
    parser.add_argument("--folds", type=int, default=5, help="CV folds for parts b and c")
    parser.add_argument("--folds-a", type=int, default=3, help="CV folds for part a")
    parser.add_argument("--m-a", type=int, default=2000, help="variants in part a")
    parser.add_argument("--pairs-b", type=int, default=8, help="interacting pairs in part b")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "prs_acceptance")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS_prs_acceptance.md")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    for part in parts:
        t0 = time.perf_counter()
        section = {"a": part_a, "b": part_b, "c": part_c, "c2": part_c2}[part](args)
        wall = time.perf_counter() - t0
        command = " ".join(["python3 benchmarks/bench_prs_acceptance.py", *sys.argv[1:]])
        stamp = f"_Part {part}: `{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {wall:.0f} s._"
        (args.out / f"section_{part}.md").write_text(section + "\n\n" + stamp + "\n")
        print(f"part {part}: {wall:.0f} s", flush=True)
    # the report holds every part whose section exists (parts may run as separate processes)
    sections = [
        (args.out / f"section_{part}.md").read_text()
        for part in ("a", "b", "c", "c2")
        if (args.out / f"section_{part}.md").exists()
    ]
    header = [
        "# PRS acceptance runs: the benchmark harness end to end with networks",
        "",
        "Reproduce: `python3 benchmarks/bench_prs_acceptance.py` (parts a, b, c, c2 in one process), or one part at a "
        "time with `--parts a` etc. (each part writes bench_out/prs_acceptance/section_<part>.md and the report "
        f"is assembled from those). Machine: {platform.platform()}, {os.cpu_count()} CPUs shared with other jobs.",
        "",
        "Pooled R² = squared correlation over all out-of-fold predictions; CI = percentile bootstrap "
        f"({args.n_boot} replicates); paired differences = paired bootstrap of the pooled R² "
        "(P two-sided, smallest possible 2/(n_boot + 1)). Network budgets are in the script's docstring.",
        "",
    ]
    # hand-written notes ("## Reading the numbers" to the end) survive a re-run
    notes = ""
    if args.results.exists():
        old = args.results.read_text()
        marker = old.find(NOTES_HEADING)
        notes = old[marker:] if marker >= 0 else ""
    report = "\n".join(header + sections)
    args.results.write_text(report + ("\n" + notes if notes else ""))
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
