"""Benchmarks for the simulator, QC and PCA (run by hand; not a test).

    python3 benchmarks/bench_simqc.py [--eur /work/shared/data/1000g_eur_subset/EUR_subset] [--threads 1]

Measures: simulate_genotypes 2,000 x 10,000 wall time; simulate_trait at N=5,000 (realised h2);
QC + LD pruning on the full EUR set vs plink2 (if on PATH); randomized PCA of the full EUR set and
of its LD-pruned subset vs plink2 --pca (|r| of the top 5 PCs, eigenvalue ratios).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.io import open_genotypes
from deepprs.qc import genotype_pca, ld_prune, run_qc
from deepprs.simulate import InMemoryGenotypes, simulate_genotypes, simulate_trait


def timed(label: str, func, *args, **kwargs):
    start = time.perf_counter()
    value = func(*args, **kwargs)
    print(f"{label}: {time.perf_counter() - start:.2f} s")
    return value


def compare_pca(result, eigenvec_path: Path, eigenval_path: Path, label: str) -> None:
    plink_vec = pd.read_csv(eigenvec_path, sep="\t")
    plink_val = np.loadtxt(eigenval_path)
    corr = [abs(np.corrcoef(result.eigenvectors[:, k], plink_vec[f"PC{k + 1}"])[0, 1]) for k in range(5)]
    print(f"{label}: |r| top 5 PCs vs plink2 = {[f'{c:.6f}' for c in corr]}; "
          f"eigenvalue ratio = {np.round(result.eigenvalues[:5] / plink_val[:5], 5).tolist()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eur", default="/work/shared/data/1000g_eur_subset/EUR_subset")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    timed("simulate_genotypes 2000 x 10000", simulate_genotypes, 2000, 10000, seed=1)
    source = InMemoryGenotypes(*simulate_genotypes(5000, 2000, seed=2))
    trait = timed("simulate_trait additive N=5000 K=200", simulate_trait, source, model="additive",
                  n_causal=200, h2=0.5, prevalence=0.1, seed=3)
    print(f"  realised h2 = {trait.realised_h2:.4f} (target 0.5); "
          f"cases = {trait.phenotype_binary.mean():.4f}")

    plink2 = shutil.which("plink2")
    with open_genotypes(args.eur) as eur, tempfile.TemporaryDirectory() as tmp:
        timed(f"run_qc --maf 0.01 --hwe 1e-6 on {eur.shape}", run_qc, eur, maf=0.01, hwe=1e-6)
        kept = timed("ld_prune 50 5 0.1 (full EUR)", ld_prune, eur, window=50, step=5, r2_threshold=0.1)
        full = timed("genotype_pca k=10 randomized (full EUR)", genotype_pca, eur, 10, method="randomized")
        exact = timed("genotype_pca k=10 auto = exact GRM (full EUR)", genotype_pca, eur, 10)
        if plink2:
            out = Path(tmp) / "eur"
            t0 = time.perf_counter()
            subprocess.run([plink2, "--bfile", args.eur, "--pca", "10", "--out", str(out)], check=True,
                           capture_output=True)
            print(f"plink2 --pca 10 (full EUR): {time.perf_counter() - t0:.2f} s")
            compare_pca(full, Path(f"{out}.eigenvec"), Path(f"{out}.eigenval"),
                        "randomized, full EUR (54,051 SNPs)")
            compare_pca(exact, Path(f"{out}.eigenvec"), Path(f"{out}.eigenval"), "exact, full EUR")
            subprocess.run([plink2, "--bfile", args.eur, "--indep-pairwise", "50", "5", "0.1",
                            "--out", str(out)], check=True, capture_output=True)
            plink_in = set(Path(f"{out}.prune.in").read_text().split())
            ids = eur.variant_table["id"].to_numpy()
            print(f"LD pruning agreement with plink2 (full EUR, 50 5 0.1): "
                  f"{np.mean(np.isin(ids, list(plink_in)) == kept):.4f} "
                  f"(ours {kept.sum()}, plink2 {len(plink_in)})")
            subprocess.run([plink2, "--bfile", args.eur, "--extract", f"{out}.prune.in", "--pca", "10",
                            "--out", f"{out}_pruned"], check=True, capture_output=True)
            plink_pruned = genotype_pca(eur, 10, method="randomized",
                                        variants=np.flatnonzero(np.isin(ids, list(plink_in))))
            compare_pca(plink_pruned, Path(f"{out}_pruned.eigenvec"), Path(f"{out}_pruned.eigenval"),
                        "randomized, EUR pruned by plink2")
        else:
            print("plink2 not on PATH: skipped the comparisons")


if __name__ == "__main__":
    main()
