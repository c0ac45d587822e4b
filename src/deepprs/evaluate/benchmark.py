"""Cross-validated PRS benchmark: every model, every fold, honest comparisons.

Each fold fits each model on the training samples only (variant screening, standardisation and
tuning happen inside ``fit``) and predicts the held-out samples.  Every non-linear model
(``is_linear = False``) is accompanied by its *linear twin* (the same network with activations
removed, ``linear_twin=True``; Kelemen et al. 2025), reported as ``<name>-linear``.  The
summary compares each network with the best linear model and with its twin by a paired
bootstrap on the pooled out-of-fold predictions.

With ``joint_tagging_check`` every model is also run on LD-clumped inputs (clumping on the
training fold's marginal p-values, r² 0.1, 500 kb window when positions are known), reported
as ``<name>@clumped``: a network edge that disappears after clumping came from joint tagging,
not from non-additive biology.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepprs.errors import InputError
from deepprs.evaluate.data import build_model, is_linear_model, params_for
from deepprs.evaluate.features import cvblup_feature as cvblup_feature_fn
from deepprs.evaluate.features import external_score, format_score_report
from deepprs.evaluate.metrics import (
    auc,
    bootstrap_ci,
    calibration_slope,
    liability_r2,
    paired_bootstrap,
    r2,
    r2_sse,
)
from deepprs.io.packed import PackedGenotypes
from deepprs.models.base import accepts_variant_table, is_binary_target
from deepprs.models.screening import clump, marginal_association
from deepprs.utils.runlog import atomic_output, atomic_path, current_run, track

RESULT_COLUMNS = ["model", "fold", "n_train", "n_test", "r2", "r2_sse", "calibration_slope"]


@dataclass
class BenchmarkResult:
    """Per-fold metrics, out-of-fold predictions, the summary and the settings."""

    results: pd.DataFrame
    predictions: pd.DataFrame
    summary: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    phenotype: np.ndarray | None = None


def _log(message: str) -> None:
    run = current_run()
    if run is not None:
        run.info(message)


def _fold_metrics(y: np.ndarray, pred: np.ndarray, binary: bool, prevalence: float | None) -> dict[str, float]:
    row = {"r2": r2(y, pred), "r2_sse": r2_sse(y, pred), "calibration_slope": calibration_slope(y, pred)}
    if binary:
        row["auc"] = auc(y, pred)
        row["liability_r2"] = liability_r2(y, pred, prevalence) if prevalence is not None else float("nan")
    return row


def clumped_variants(
    genotypes: PackedGenotypes | np.ndarray,
    y: np.ndarray,
    covariates: np.ndarray | None,
    variant_table: pd.DataFrame | None,
    *,
    r2_threshold: float = 0.1,
    window_kb: float = 500.0,
    window: int = 250,
) -> np.ndarray:
    """LD-clumped inputs from training data (sorted variant indices)."""
    _, pvalue = marginal_association(genotypes, y, covariates=covariates)
    if variant_table is not None and "pos" in variant_table:
        kept = clump(
            genotypes,
            pvalue,
            r2=r2_threshold,
            chrom=variant_table["chrom"].astype(str).to_numpy(),
            pos=variant_table["pos"].to_numpy(),
            window_kb=window_kb,
        )
    else:
        kept = clump(genotypes, pvalue, r2=r2_threshold, window=window)
    return np.sort(kept)


def external_features(
    genotypes: PackedGenotypes | np.ndarray, variant_table: pd.DataFrame | None, score_weights: dict[str, pd.DataFrame]
) -> np.ndarray | None:
    """One ``SCORE_SUM`` column per external weights table (no phenotype used: computed for all samples)."""
    if not score_weights:
        return None
    if variant_table is None:
        raise InputError("external PRS weights need the genotype file's variant table to match variant IDs")
    columns = []
    for name, weights in score_weights.items():
        score, report = external_score(genotypes, variant_table, weights)
        _log(format_score_report(f"external score {name}", report))
        columns.append(score)
    return np.column_stack(columns)


def _subset_variants(genotypes: PackedGenotypes | np.ndarray, variants: np.ndarray) -> PackedGenotypes | np.ndarray:
    if isinstance(genotypes, PackedGenotypes):
        from deepprs.models.screening import dense_columns

        dosage = dense_columns(genotypes, None, variants)
        return PackedGenotypes.from_dosage(dosage)
    return np.asarray(genotypes)[:, variants]


def _subset_rows(genotypes, rows: np.ndarray):
    if isinstance(genotypes, PackedGenotypes):
        return genotypes.subset_samples(rows)
    return np.asarray(genotypes)[rows]


def model_runs(models: list[str]) -> list[tuple[str, str, bool]]:
    """(reported name, registered name, linear_twin) for each requested model plus twins."""
    runs: list[tuple[str, str, bool]] = []
    for name in models:
        runs.append((name, name, False))
        if not is_linear_model(name):
            runs.append((f"{name}-linear", name, True))
    return runs


def run_benchmark(
    genotypes: PackedGenotypes | np.ndarray,
    phenotype: np.ndarray,
    *,
    models: list[str],
    folds: np.ndarray,
    covariates: np.ndarray | None = None,
    sample_ids: pd.MultiIndex | None = None,
    variant_table: pd.DataFrame | None = None,
    config: dict[str, Any] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    prevalence: float | None = None,
    joint_tagging_check: bool = False,
    device: str | None = None,
    score_weights: dict[str, pd.DataFrame] | None = None,
    cvblup_feature: bool = False,
) -> BenchmarkResult:
    """Cross-validate ``models`` on the given folds.

    Parameters
    ----------
    genotypes
        :class:`PackedGenotypes` or dense dosages, shape (n_samples, n_variants).
    phenotype : ndarray, shape (n_samples,)
    models
        Registered model names (``ct, ridge, enet, lasso, bayesr, mlp, ...``).
    folds : ndarray of int, shape (n_samples,)
        Fold label per sample (from :func:`deepprs.train.cv.make_folds`).
    config
        Model parameters, ``{model_name: {...}}``.
    prevalence
        Population prevalence for the liability-scale R² of a 0/1 trait.
    score_weights
        ``{name: weights}`` external PRS weights (``ID A1 BETA``, :func:`read_score_weights`); each
        adds its ``SCORE_SUM`` as a covariate column of every model (needs ``variant_table``).
    cvblup_feature
        Add the cvBLUP as a covariate column, fitted inside each training fold
        (:func:`deepprs.evaluate.features.cvblup_feature`: LOO cvBLUP for training samples,
        out-of-sample BLUP for test samples).

    Returns
    -------
    BenchmarkResult
        ``results`` (model fold n_train n_test r2 r2_sse calibration_slope [auc liability_r2]
        fit_seconds), ``predictions`` (FID IID fold model prediction), ``summary``.
    """
    y = np.asarray(phenotype, dtype=np.float64).ravel()
    n = len(y)
    folds = np.asarray(folds)
    if folds.shape != (n,):
        raise InputError(f"folds has {folds.shape[0]} labels for {n} samples")
    if np.isnan(y).any():
        raise InputError("phenotype has missing values; drop those samples before the benchmark")
    if not models:
        raise InputError("--models is empty; name at least one model (e.g. ridge,enet)")
    config = config or {}
    binary = bool(is_binary_target(y))
    if sample_ids is None:
        sample_ids = pd.MultiIndex.from_arrays(
            [np.arange(n).astype(str), np.arange(n).astype(str)], names=["FID", "IID"]
        )
    runs = model_runs(models)
    rows: list[dict[str, Any]] = []
    predictions: dict[str, np.ndarray] = {}
    fold_labels = np.unique(folds)
    jobs = [
        (f, suffix, run)
        for f in fold_labels
        for suffix in (["", "@clumped"] if joint_tagging_check else [""])
        for run in runs
    ]
    external = external_features(genotypes, variant_table, score_weights or {})
    base_covariates = covariates
    if external is not None:
        covariates = external if covariates is None else np.column_stack([covariates, external])
    clumped_cache: dict[Any, np.ndarray] = {}
    cvblup_cache: dict[Any, tuple[np.ndarray, np.ndarray]] = {}
    for fold, suffix, (label, name, twin) in track(jobs, "benchmark"):
        train = np.flatnonzero(folds != fold)
        test = np.flatnonzero(folds == fold)
        cov_train = None if covariates is None else covariates[train]
        cov_test = None if covariates is None else covariates[test]
        if cvblup_feature:
            if fold not in cvblup_cache:
                train_feature, test_feature, h2 = cvblup_feature_fn(genotypes, y, train, test, base_covariates)
                cvblup_cache[fold] = (train_feature, test_feature)
                _log(f"fold {fold}: in-fold cvBLUP feature (REML h2 {h2:.3f} on the training samples)")
            train_feature, test_feature = cvblup_cache[fold]
            cov_train = train_feature[:, None] if cov_train is None else np.column_stack([cov_train, train_feature])
            cov_test = test_feature[:, None] if cov_test is None else np.column_stack([cov_test, test_feature])
        x_train = _subset_rows(genotypes, train)
        x_test = _subset_rows(genotypes, test)
        if suffix:
            if fold not in clumped_cache:
                clumped_cache[fold] = clumped_variants(x_train, y[train], cov_train, variant_table)
                _log(f"fold {fold}: {len(clumped_cache[fold])} LD-clumped variants for the joint-tagging check")
            x_train = _subset_variants(x_train, clumped_cache[fold])
            x_test = _subset_variants(x_test, clumped_cache[fold])
        model = build_model(name, params_for(name, config), seed=seed, device=device, linear_twin=twin)
        t0 = time.time()
        fit_kwargs: dict[str, Any] = {}
        if variant_table is not None and accepts_variant_table(model):
            fit_kwargs["variant_table"] = (
                variant_table.iloc[clumped_cache[fold]].reset_index(drop=True) if suffix else variant_table
            )
        model.fit(x_train, y[train], covariates=cov_train, **fit_kwargs)
        fit_seconds = time.time() - t0
        pred = np.asarray(model.predict(x_test, covariates=cov_test), dtype=np.float64)
        key = label + suffix
        predictions.setdefault(key, np.full(n, np.nan))[test] = pred
        row = {"model": key, "fold": int(fold), "n_train": len(train), "n_test": len(test)}
        row.update(_fold_metrics(y[test], pred, binary, prevalence))
        row["fit_seconds"] = round(fit_seconds, 3)
        rows.append(row)
        _log(f"fold {fold} {key}: r2 {row['r2']:.4f} ({fit_seconds:.1f} s)")
    columns = RESULT_COLUMNS + (["auc", "liability_r2"] if binary else []) + ["fit_seconds"]
    results = pd.DataFrame(rows)[columns]
    prediction_table = pd.concat(
        [
            pd.DataFrame(
                {
                    "FID": sample_ids.get_level_values(0).astype(str),
                    "IID": sample_ids.get_level_values(1).astype(str),
                    "fold": folds.astype(int),
                    "model": key,
                    "prediction": values,
                }
            )
            for key, values in predictions.items()
        ],
        ignore_index=True,
    )
    summary = summarise(
        y,
        predictions,
        results,
        runs=runs,
        n_boot=n_boot,
        seed=seed,
        binary=binary,
        prevalence=prevalence,
        suffixes=["", "@clumped"] if joint_tagging_check else [""],
    )
    settings = {
        "models": models,
        "runs": [r[0] for r in runs],
        "n_samples": n,
        "n_folds": int(len(fold_labels)),
        "n_variants": int(
            genotypes.n_variants if isinstance(genotypes, PackedGenotypes) else np.asarray(genotypes).shape[1]
        ),
        "n_covariates": 0 if covariates is None else int(np.asarray(covariates).shape[1]),
        "binary": binary,
        "prevalence": prevalence,
        "n_boot": n_boot,
        "seed": seed,
        "joint_tagging_check": joint_tagging_check,
        "config": config,
        "score_weights": sorted(score_weights or {}),
        "cvblup_feature": cvblup_feature,
    }
    return BenchmarkResult(
        results=results, predictions=prediction_table, summary=summary, settings=settings, phenotype=y
    )


def summarise(
    y: np.ndarray,
    predictions: dict[str, np.ndarray],
    results: pd.DataFrame,
    *,
    runs: list[tuple[str, str, bool]],
    n_boot: int,
    seed: int,
    binary: bool,
    prevalence: float | None,
    suffixes: list[str],
) -> pd.DataFrame:
    """Pooled out-of-fold metrics with bootstrap CIs; paired comparisons for every network."""
    rows: list[dict[str, Any]] = []
    linear_runs = {label for label, name, twin in runs if is_linear_model(name) and not twin}
    for suffix in suffixes:
        pooled: dict[str, float] = {}
        block: list[dict[str, Any]] = []
        for label, name, twin in runs:
            key = label + suffix
            if key not in predictions:
                continue
            pred = predictions[key]
            estimate, lower, upper = bootstrap_ci(r2, y, pred, n_boot=n_boot, seed=seed)
            fold_r2 = results.loc[results["model"] == key, "r2"]
            row = {
                "model": key,
                "is_linear": bool(is_linear_model(name) or twin),
                "pooled_r2": estimate,
                "r2_ci_lower": lower,
                "r2_ci_upper": upper,
                "mean_fold_r2": float(fold_r2.mean()),
                "sd_fold_r2": float(fold_r2.std(ddof=1)) if len(fold_r2) > 1 else float("nan"),
                "pooled_r2_sse": r2_sse(y, pred),
                "calibration_slope": calibration_slope(y, pred),
            }
            if binary:
                a, a_lo, a_hi = bootstrap_ci(auc, y, pred, n_boot=n_boot, seed=seed)
                row.update({"pooled_auc": a, "auc_ci_lower": a_lo, "auc_ci_upper": a_hi})
                if prevalence is not None:
                    row["liability_r2"] = liability_r2(y, pred, prevalence)
            row["_network"] = not is_linear_model(name) and not twin
            row["_base"] = label
            pooled[key] = estimate
            block.append(row)
        linear_keys = [label + suffix for label in linear_runs if label + suffix in pooled]
        best_linear = max(linear_keys, key=lambda k: pooled[k]) if linear_keys else None
        for row in block:
            key = row["model"]
            if not row.pop("_network"):
                row.pop("_base")
                continue
            base = row.pop("_base")
            if best_linear is not None:
                diff, (lo, hi), p = paired_bootstrap(
                    r2, y, predictions[key], predictions[best_linear], n_boot=n_boot, seed=seed
                )
                row.update(
                    {
                        "best_linear": best_linear,
                        "diff_vs_best_linear": diff,
                        "diff_best_ci_lower": lo,
                        "diff_best_ci_upper": hi,
                        "p_vs_best_linear": p,
                    }
                )
            twin_key = f"{base}-linear{suffix}"
            if twin_key in predictions:
                diff, (lo, hi), p = paired_bootstrap(
                    r2, y, predictions[key], predictions[twin_key], n_boot=n_boot, seed=seed
                )
                row.update(
                    {
                        "linear_twin": twin_key,
                        "diff_vs_twin": diff,
                        "diff_twin_ci_lower": lo,
                        "diff_twin_ci_upper": hi,
                        "p_vs_twin": p,
                    }
                )
        rows.extend(block)
    return pd.DataFrame(rows)


def _write_tsv(table: pd.DataFrame, path: Path) -> None:
    with atomic_output(path) as handle:
        table.to_csv(handle, sep="\t", index=False, float_format="%.6g", na_rep="NA")


def write_benchmark(result: BenchmarkResult, out_dir: str | Path) -> list[Path]:
    """Write results.tsv, predictions.tsv, summary.tsv, benchmark.json and the two plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in (
        ("results.tsv", result.results),
        ("predictions.tsv", result.predictions),
        ("summary.tsv", result.summary),
    ):
        _write_tsv(table, out_dir / name)
        written.append(out_dir / name)
    with atomic_output(out_dir / "benchmark.json") as handle:
        json.dump(result.settings, handle, indent=2, default=str)
        handle.write("\n")
    written.append(out_dir / "benchmark.json")
    summary = result.summary
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(summary) + 2), 4))
    colours = ["#4477aa" if lin else "#cc6677" for lin in summary["is_linear"]]
    heights = summary["pooled_r2"].to_numpy()
    errors = np.vstack([heights - summary["r2_ci_lower"].to_numpy(), summary["r2_ci_upper"].to_numpy() - heights])
    ax.bar(np.arange(len(summary)), heights, yerr=np.clip(errors, 0, None), color=colours, capsize=4)
    ax.set_xticks(np.arange(len(summary)))
    ax.set_xticklabels(summary["model"], rotation=45, ha="right")
    ax.set_ylabel("pooled out-of-fold R² (95% bootstrap CI)")
    ax.set_title("PRS benchmark (blue: linear, red: non-linear)")
    fig.tight_layout()
    with atomic_path(out_dir / "benchmark_r2.png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    written.append(out_dir / "benchmark_r2.png")
    fig, ax = plt.subplots(figsize=(5, 5))
    predictions = result.predictions
    y_all = result.phenotype
    if y_all is not None:
        for key, group in predictions.groupby("model", sort=False):
            pred = group["prediction"].to_numpy()
            order = np.argsort(pred)
            bins = np.array_split(order, min(10, max(1, len(order) // 5)))
            ax.plot([pred[b].mean() for b in bins], [y_all[b].mean() for b in bins], marker="o", label=key)
    lims = ax.get_xlim()
    ax.plot(lims, lims, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("mean prediction (decile)")
    ax.set_ylabel("mean outcome (decile)")
    ax.set_title("calibration of out-of-fold predictions")
    if len(predictions["model"].unique()) <= 12:
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out_dir / "calibration.png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    written.append(out_dir / "calibration.png")
    return written
