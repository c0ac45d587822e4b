"""Penalised logistic ridge/enet/lasso vs least squares on a binary trait, and the BayesR sweep speed.

    python3 benchmarks/bench_linear_binary.py                       # 1000G EUR subset, 5 folds
    python3 benchmarks/bench_linear_binary.py --folds 3 --skip-bayesr

Data: /work/shared/data/1000g_eur_subset (379 samples × 54,051 SNPs); binary trait = PHENO above
its 60th percentile (40% cases), samples with PHENO missing dropped.  For each outer fold every
model is fitted on the training samples (inner CV inside ``fit``) and scored on the held-out fold:
``task='binary'`` (penalised logistic, the default for a 0/1 trait) against ``task='regression'``
(least squares on 0/1).  Reports pooled out-of-fold AUC and mean fit time.

BayesR: one call of the VB routine on the standardised training matrix of fold 0 (about 300 × 54k),
the blocked sweep (``deepprs.models.linear.bayesr_vb``) against the one-variant-at-a-time sweep
kept in ``tests/test_models_linear.py`` (``bayesr_vb_reference``), same seed, same visiting order;
prints wall time and the largest difference of the posterior means.

All BLAS pools are limited to ``--threads`` (default 1).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = Path("/work/shared/data/1000g_eur_subset")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="ridge,lasso,enet")
    parser.add_argument("--skip-bayesr", action="store_true")
    parser.add_argument("--skip-binary", action="store_true")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    from deepprs.evaluate.data import load_prs_data
    from deepprs.models.base import make_model
    from deepprs.models.linear import bayesr_vb, inner_folds
    from deepprs.models.screening import covariate_basis, dense_columns, training_stats

    data = load_prs_data(str(DATA / "EUR_subset"), pheno=str(DATA / "EUR_subset.pheno.covars"), pheno_name="PHENO")
    genotypes, phenotype = data.genotypes, np.asarray(data.phenotype, dtype=np.float64)
    y = (phenotype > np.quantile(phenotype, 0.6)).astype(np.float64)
    n, m = genotypes.n_samples, genotypes.n_variants
    print(f"data: {n} samples x {m} variants, {int(y.sum())} cases; {args.threads} thread(s)")
    folds = inner_folds(n, args.folds, 2024)
    with threadpool_limits(args.threads):
        if not args.skip_binary:
            print("| model | task | pooled OOF AUC | mean fit s |")
            print("|---|---|---|---|")
            for name in args.models.split(","):
                for task in ("binary", "regression"):
                    prediction = np.zeros(n)
                    seconds = []
                    for fold in range(args.folds):
                        train, test = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
                        t0 = time.perf_counter()
                        model = make_model(name, task=task).fit(genotypes.subset_samples(train), y[train])
                        seconds.append(time.perf_counter() - t0)
                        prediction[test] = model.predict(genotypes.subset_samples(test))
                    auc = roc_auc_score(y, prediction)
                    print(f"| {name} | {task} | {auc:.4f} | {np.mean(seconds):.1f} |", flush=True)
        if not args.skip_bayesr:
            sys.path.insert(0, str(HERE.parent / "tests"))
            from test_models_linear import bayesr_vb_reference

            train = np.flatnonzero(folds != 0)
            x_train = genotypes.subset_samples(train)
            mean, sd = training_stats(x_train)
            z = dense_columns(x_train, None, np.arange(m), center=mean, scale=sd)
            basis = covariate_basis(None, len(train))
            z -= basis @ (basis.T @ z)
            target = phenotype[train] - phenotype[train].mean()
            gamma = np.array([0.0, 1e-4, 1e-3, 1e-2])
            t0 = time.perf_counter()
            old = bayesr_vb_reference(z, target, variance_classes=gamma)
            t_old = time.perf_counter() - t0
            t0 = time.perf_counter()
            new = bayesr_vb(z, target, variance_classes=gamma)
            t_new = time.perf_counter() - t0
            print(
                f"BayesR VB on {z.shape[0]} x {z.shape[1]}: one-at-a-time {t_old:.1f} s ({old['n_iter']} sweeps), "
                f"blocked {t_new:.1f} s ({new['n_iter']} sweeps); max |mean diff| "
                f"{np.max(np.abs(old['mean'] - new['mean'])):.2e}, max |pip diff| "
                f"{np.max(np.abs(old['pip'] - new['pip'])):.2e}"
            )


if __name__ == "__main__":
    main()
