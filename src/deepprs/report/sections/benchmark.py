"""PRS benchmark: ``results.tsv`` (per model × fold), ``summary.tsv`` (pooled, with CIs),
``predictions.tsv`` (calibration) and training histories (learning curves).

The harness output is parsed by column name and everything that is present is shown, so new
metrics appear without changes here.  Network models are compared with their linear twins
(``<model>-linear``): the same architecture without activations (Kelemen et al.).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from deepprs.report.base import ReportContext, Section, find_column, find_files, read_table, register_section
from deepprs.report.html import (
    PALETTE,
    callout,
    esc,
    figure_img,
    new_figure,
    source_note,
    table_html,
)

TWIN_SUFFIX = "-linear"
# metrics shown as bar charts, in this order, when present
BAR_METRICS = ("r2", "auc", "liability_r2", "r2_liability")
KNOWN_METRICS = ("r2", "r2_corr", "r2_cor", "r2_sse", "r2_ss", "auc", "liability_r2", "r2_liability",
                 "calibration_slope", "pearson_r", "r", "mse", "rmse", "nagelkerke_r2")
NOT_METRICS = {"fold", "n_train", "n_test", "n_variants", "seed", "repeat", "epoch", "n", "n_cases",
               "n_controls"}
_LOW = ("lo", "low", "lower", "l95", "lcl", "ci_lo", "ci_low", "ci_lower", "ci_l")
_HIGH = ("hi", "high", "upper", "u95", "ucl", "ci_hi", "ci_high", "ci_upper", "ci_u")
OBSERVED_NAMES = ("phenotype", "pheno", "y", "observed", "y_true", "target", "truth")
HISTORY_PATTERNS = ("*history*.tsv", "*history*.csv", "*history*.json", "*learning_curve*.tsv",
                    "*learning_curve*.csv", "*learning_curve*.json")


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Numeric columns that hold a metric (not counts, folds or CI bounds)."""
    out = []
    for column in table.columns:
        name = str(column).lower()
        if name in NOT_METRICS or not pd.api.types.is_numeric_dtype(table[column]):
            continue
        if ci_bounds(table, str(column)) is None and _is_bound(name):
            continue
        if name.endswith(("_se", "_sd", "_p", "_pvalue", "seconds", "_s", "_time")) or name in (
            "se",
            "sd",
            "time",
        ):
            continue
        out.append(str(column))
    known = [c for c in out if c.lower() in KNOWN_METRICS]
    return known + [c for c in out if c not in known]


def _is_bound(name: str) -> bool:
    return any(name.endswith(f"_{suffix}") or name.startswith(f"{suffix}_") for suffix in _LOW + _HIGH)


def ci_bounds(table: pd.DataFrame, metric: str) -> tuple[str, str] | None:
    """Names of the lower/upper CI columns of ``metric`` (``r2_lo``/``r2_hi``, ``r2_ci_low`` …)."""
    lower_names = {str(c).lower(): str(c) for c in table.columns}
    for low, high in zip(_LOW, _HIGH, strict=True):
        for template in ("{m}_{b}", "{b}_{m}", "{m}.{b}"):
            low_name = template.format(m=metric.lower(), b=low)
            high_name = template.format(m=metric.lower(), b=high)
            if low_name in lower_names and high_name in lower_names:
                return lower_names[low_name], lower_names[high_name]
    return None


def widen_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Turn a long summary (``model metric estimate ci_low ci_high``) into one row per model."""
    metric = find_column(summary, "metric")
    model = find_column(summary, "model")
    value = find_column(summary, "estimate", "value", "mean", "pooled")
    if metric is None or model is None or value is None:
        return summary
    low = find_column(summary, *[f"ci_{b}" for b in ("low", "lo", "lower")], "lo", "low", "lower", "l95")
    high = find_column(summary, *[f"ci_{b}" for b in ("high", "hi", "upper")], "hi", "high", "upper", "u95")
    rows: dict[str, dict[str, float]] = {}
    for record in summary.to_dict("records"):
        row = rows.setdefault(str(record[model]), {"model": str(record[model])})
        name = str(record[metric])
        row[name] = record[value]
        if low is not None and high is not None:
            row[f"{name}_lo"], row[f"{name}_hi"] = record[low], record[high]
    return pd.DataFrame(list(rows.values()))


def model_estimates(
    results: pd.DataFrame | None, summary: pd.DataFrame | None, metric: str
) -> pd.DataFrame | None:
    """Per-model estimate and 95% CI of ``metric``.

    From ``summary.tsv`` when it has the metric (pooled estimate and its CI columns); otherwise
    the mean over folds of ``results.tsv`` with a t-interval over folds.

    Returns
    -------
    pandas.DataFrame or None
        Columns ``model, estimate, low, high, source``.
    """
    summary_metric = None if summary is None else find_column(summary, metric, f"pooled_{metric}")
    if summary is not None and find_column(summary, "model") and summary_metric:
        model_column, metric_column = find_column(summary, "model"), summary_metric
        rows = summary[summary[model_column].notna()]
        bounds = ci_bounds(summary, metric_column) or ci_bounds(summary, metric)
        frame = pd.DataFrame(
            {
                "model": rows[model_column].astype(str),
                "estimate": pd.to_numeric(rows[metric_column], errors="coerce"),
            }
        )
        frame["low"] = pd.to_numeric(rows[bounds[0]], errors="coerce") if bounds else np.nan
        frame["high"] = pd.to_numeric(rows[bounds[1]], errors="coerce") if bounds else np.nan
        frame["source"] = "summary.tsv (pooled)" + ("" if bounds else ", no CI columns")
        frame = frame[frame["estimate"].notna()]
        if not frame.empty:
            return frame.reset_index(drop=True)
    if results is not None and find_column(results, "model") and find_column(results, metric):
        model_column, metric_column = find_column(results, "model"), find_column(results, metric)
        rows = []
        for model, group in results.groupby(model_column, sort=False):
            values = pd.to_numeric(group[metric_column], errors="coerce").dropna().to_numpy()
            if values.size == 0:
                continue
            mean = float(values.mean())
            if values.size > 1:
                half = stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
            else:
                half = np.nan
            rows.append(
                {
                    "model": str(model),
                    "estimate": mean,
                    "low": mean - half,
                    "high": mean + half,
                    "source": f"results.tsv (mean of {values.size} folds, t 95% CI)",
                }
            )
        if rows:
            return pd.DataFrame(rows)
    return None


def bar_figure(estimates: pd.DataFrame, metric: str):
    """Horizontal bars per model with 95% CI whiskers; linear twins drawn lighter next to their network."""
    order = _twin_order(list(estimates["model"]))
    estimates = estimates.set_index("model").loc[order].reset_index()
    figure, axes = new_figure(6.2, max(2.4, 0.42 * len(estimates) + 1.2))
    positions = np.arange(len(estimates))[::-1]
    colours = [PALETTE[4] if model.endswith(TWIN_SUFFIX) else PALETTE[0] for model in estimates["model"]]
    axes.barh(positions, estimates["estimate"], color=colours, height=0.65)
    has_ci = estimates[["low", "high"]].notna().all(axis=1).to_numpy()
    if has_ci.any():
        error = np.vstack(
            [estimates["estimate"] - estimates["low"], estimates["high"] - estimates["estimate"]]
        )
        axes.errorbar(
            estimates["estimate"][has_ci],
            positions[has_ci],
            xerr=error[:, has_ci],
            fmt="none",
            ecolor="#333333",
            capsize=3,
            lw=1,
        )
    axes.set_yticks(positions)
    axes.set_yticklabels(estimates["model"])
    axes.axvline(0, color="#999999", lw=0.8)
    axes.set_xlabel(f"{metric} (95% CI)")
    axes.set_title(f"{metric} by model")
    return figure


def _twin_order(models: list[str]) -> list[str]:
    """Models in their order, each ``<m>-linear`` moved right after ``<m>``."""
    ordered: list[str] = []
    for model in models:
        if model.endswith(TWIN_SUFFIX) and model.removesuffix(TWIN_SUFFIX) in models:
            continue
        ordered.append(model)
        if f"{model}{TWIN_SUFFIX}" in models:
            ordered.append(f"{model}{TWIN_SUFFIX}")
    return ordered


def twin_table(
    results: pd.DataFrame | None, estimates: dict[str, pd.DataFrame], summary: pd.DataFrame | None = None
) -> pd.DataFrame | None:
    """Network vs linear twin: pooled metrics, the difference, per-fold paired differences and,
    when ``summary.tsv`` has them, the harness's paired-bootstrap CI and P of the difference."""
    models = set()
    for frame in estimates.values():
        models.update(frame["model"])
    if results is not None and find_column(results, "model"):
        models.update(results[find_column(results, "model")].astype(str))
    pairs = [
        (m.removesuffix(TWIN_SUFFIX), m)
        for m in sorted(models)
        if m.endswith(TWIN_SUFFIX) and m.removesuffix(TWIN_SUFFIX) in models
    ]
    if not pairs:
        return None
    rows = []
    for network, twin in pairs:
        for metric, frame in estimates.items():
            by_model = frame.set_index("model")["estimate"]
            if network not in by_model or twin not in by_model:
                continue
            row = {
                "network": network,
                "linear twin": twin,
                "metric": metric,
                "network value": by_model[network],
                "twin value": by_model[twin],
                "difference (non-linearity)": by_model[network] - by_model[twin],
            }
            row.update(_paired_bootstrap(summary, network, metric))
            row.update(_paired_folds(results, network, twin, metric))
            rows.append(row)
    return pd.DataFrame(rows) if rows else None


def _paired_bootstrap(summary: pd.DataFrame | None, network: str, metric: str) -> dict[str, object]:
    """The harness's paired comparison with the twin (``diff_vs_twin``, its CI and ``p_vs_twin``)."""
    if summary is None or metric != "r2" or find_column(summary, "model") is None:
        return {}
    rows = summary[summary[find_column(summary, "model")].astype(str) == network]
    if rows.empty:
        return {}
    row = rows.iloc[0]
    names = {"bootstrap diff": ("diff_vs_twin",),
             "bootstrap CI low": ("diff_twin_ci_lower", "diff_twin_ci_low"),
             "bootstrap CI high": ("diff_twin_ci_upper", "diff_twin_ci_high"), "bootstrap P": ("p_vs_twin",)}
    out: dict[str, object] = {}
    for label, candidates in names.items():
        column = find_column(summary, *candidates)
        if column is not None:
            out[label] = row[column]
    return out


def comparison_table(summary: pd.DataFrame | None) -> pd.DataFrame | None:
    """Paired comparisons stored in ``summary.tsv`` (``diff_*``/``p_vs_*`` columns), one row per model
    that has any, with the reference model named (``best_linear``, ``linear_twin``)."""
    if summary is None or find_column(summary, "model") is None:
        return None
    columns = [c for c in summary.columns
               if str(c).startswith(("diff_", "p_vs_")) or str(c) in ("best_linear", "linear_twin")]
    if not columns:
        return None
    table = summary[[find_column(summary, "model"), *columns]]
    table = table[table[columns].notna().any(axis=1)]
    return table if not table.empty else None


def _paired_folds(results: pd.DataFrame | None, network: str, twin: str, metric: str) -> dict[str, object]:
    """Per-fold paired difference network − twin: mean, t 95% CI and folds won."""
    if results is None:
        return {}
    model, fold, value = (
        find_column(results, "model"),
        find_column(results, "fold"),
        find_column(results, metric),
    )
    if model is None or fold is None or value is None:
        return {}
    wide = results.pivot_table(index=fold, columns=model, values=value, aggfunc="mean")
    if network not in wide or twin not in wide:
        return {}
    difference = (wide[network] - wide[twin]).dropna().to_numpy()
    if difference.size < 2:
        return {}
    half = stats.t.ppf(0.975, difference.size - 1) * difference.std(ddof=1) / np.sqrt(difference.size)
    return {
        "paired folds": int(difference.size),
        "fold diff low": difference.mean() - half,
        "fold diff high": difference.mean() + half,
        "folds network better": f"{int((difference > 0).sum())}/{difference.size}",
    }


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def calibration_slope(prediction: np.ndarray, observed: np.ndarray, *, binary: bool) -> tuple[float, float]:
    """(intercept, slope) of observed on predicted: OLS for a quantitative trait, logistic
    regression on the log-odds (Newton–Raphson) for a binary one.  1 and 0 = perfectly calibrated."""
    design = np.column_stack([np.ones_like(prediction), prediction])
    if not binary:
        coef, *_ = np.linalg.lstsq(design, observed, rcond=None)
        return float(coef[0]), float(coef[1])
    coef = np.zeros(2)
    for _ in range(50):
        p = _sigmoid(design @ coef)
        gradient = design.T @ (observed - p)
        hessian = design.T @ (design * (p * (1 - p))[:, None])
        step = np.linalg.solve(hessian + 1e-9 * np.eye(2), gradient)
        coef += step
        if np.abs(step).max() < 1e-10:
            break
    return float(coef[0]), float(coef[1])


def calibration(predictions: pd.DataFrame) -> tuple[object, pd.DataFrame] | None:
    """Decile calibration plot (mean observed vs mean predicted per model) and slope table."""
    model = find_column(predictions, "model")
    prediction = find_column(predictions, "prediction", "pred", "score", "prs")
    observed = find_column(predictions, *OBSERVED_NAMES)
    if observed is None and prediction is not None:
        skip = {str(c).lower() for c in (model, prediction)} | {"fid", "iid", "fold", "sid"}
        candidates = [
            c
            for c in predictions.columns
            if str(c).lower() not in skip and pd.api.types.is_numeric_dtype(predictions[c])
        ]
        observed = candidates[0] if len(candidates) == 1 else None
    if prediction is None or observed is None:
        return None
    groups = predictions.groupby(model, sort=False) if model is not None else [("prediction", predictions)]
    figure, axes = new_figure(5.2, 4.4)
    rows = []
    binary_trait = False
    for index, (name, group) in enumerate(groups):
        scores = pd.to_numeric(group[prediction], errors="coerce").to_numpy(float)
        truth = pd.to_numeric(group[observed], errors="coerce").to_numpy(float)
        ok = np.isfinite(scores) & np.isfinite(truth)
        scores, truth = scores[ok], truth[ok]
        if scores.size < 10:
            continue
        binary_trait = set(np.unique(truth)) <= {0.0, 1.0}
        probability_scale = binary_trait and scores.min() >= 0 and scores.max() <= 1
        if binary_trait and probability_scale:
            scores = np.log(np.clip(scores, 1e-9, 1 - 1e-9) / np.clip(1 - scores, 1e-9, 1))
        intercept, slope = calibration_slope(scores, truth, binary=binary_trait)
        shown = _sigmoid(scores) if binary_trait else scores
        bins = np.array_split(np.argsort(shown), min(10, scores.size // 5))
        x = [shown[b].mean() for b in bins]
        y = [truth[b].mean() for b in bins]
        colour = PALETTE[index % len(PALETTE)]
        style = "--" if str(name).endswith(TWIN_SUFFIX) else "-"
        axes.plot(x, y, style, marker="o", ms=3.5, color=colour, label=str(name), lw=1.2)
        r = np.corrcoef(scores, truth)[0, 1] if scores.std() > 0 else float("nan")
        rows.append(
            {
                "model": str(name),
                "n": int(scores.size),
                "calibration intercept": intercept,
                "calibration slope": slope,
                "r2 (squared correlation)": r * r,
            }
        )
    if not rows:
        return None
    limits = [*axes.get_xlim(), *axes.get_ylim()]
    axes.plot([min(limits), max(limits)], [min(limits), max(limits)], color="#999999", lw=0.8, ls=":")
    axes.set_xlabel("mean predicted risk" if binary_trait else "mean prediction (decile)")
    axes.set_ylabel("observed case fraction" if binary_trait else "mean phenotype")
    axes.set_title("Calibration (pooled test folds)")
    axes.legend(fontsize=7, frameon=False, ncol=2)
    return figure, pd.DataFrame(rows)


def with_phenotype(predictions: pd.DataFrame, folder: Path, context: ReportContext) -> pd.DataFrame:
    """Add the observed phenotype to ``predictions`` when they lack it.

    The phenotype file and column are taken from ``benchmark.json`` (``phenotype_file``,
    ``phenotype``) in the same folder; samples are matched on FID and IID.
    """
    settings_path = folder / "benchmark.json"
    has_observed = find_column(predictions, *OBSERVED_NAMES)
    if has_observed is not None or not settings_path.is_file():
        return predictions
    try:
        settings = json.loads(settings_path.read_text())
        phenotype_file = Path(settings["phenotype_file"])
        name = settings.get("phenotype")
    except (json.JSONDecodeError, KeyError, TypeError):
        return predictions
    if not phenotype_file.is_absolute() and not phenotype_file.is_file():
        phenotype_file = folder / phenotype_file
    if not phenotype_file.is_file():
        context.notes.append(f"{context.rel(settings_path)}: phenotype file {phenotype_file} not found; "
                             "no calibration plot")
        return predictions
    phenotypes = read_table(phenotype_file)
    fid, iid = find_column(phenotypes, "FID"), find_column(phenotypes, "IID")
    value = find_column(phenotypes, name) if name else None
    if value is None:
        numeric = [c for c in phenotypes.columns if c not in (fid, iid)]
        value = numeric[0] if len(numeric) == 1 else None
    pred_fid, pred_iid = find_column(predictions, "FID"), find_column(predictions, "IID")
    if iid is None or value is None or pred_iid is None:
        return predictions
    keys_left = [c for c in (pred_fid, pred_iid) if c is not None]
    keys_right = [c for c in (fid, iid) if c is not None]
    if len(keys_left) != len(keys_right):
        keys_left, keys_right = [pred_iid], [iid]
    observed = phenotypes[keys_right + [value]].rename(
        columns=dict(zip(keys_right + [value], keys_left + ["phenotype"], strict=True)))
    for key in keys_left:
        observed[key] = observed[key].astype(str)
    merged = predictions.astype({key: str for key in keys_left}).merge(observed, on=keys_left, how="left")
    return merged


def read_history(path: Path) -> pd.DataFrame:
    """A training history as a table: TSV/CSV with a header, or JSON (dict of lists or list of dicts)."""
    if path.suffix == ".json":
        record = json.loads(path.read_text())
        if isinstance(record, dict) and "history" in record:
            record = record["history"]
        return pd.DataFrame(record)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    return read_table(path)


_EPOCH_LINE = re.compile(r"^epoch (?P<fields>epoch \d+(?:, [\w.]+ [-+\w.]+)*)\s*$")
_FOLD_LINE = re.compile(r"^fold (?P<fold>\S+) (?P<model>\S+): ")


def history_from_log(path: Path) -> pd.DataFrame | None:
    """Training histories parsed from a benchmark log (used when no ``history`` file exists).

    The trainer logs ``epoch epoch 3, train_loss 0.9, ..., val_loss 1.0`` per epoch and the
    harness then ``fold 0 mlp: r2 ...``; the epochs before a fold line belong to that run.
    """
    rows: list[dict[str, object]] = []
    pending: list[dict[str, object]] = []
    for line in path.read_text(errors="replace").splitlines():
        epoch_match = _EPOCH_LINE.match(line)
        if epoch_match:
            record: dict[str, object] = {}
            for item in epoch_match.group("fields").split(", "):
                key, _, value = item.partition(" ")
                try:
                    record[key] = float(value)
                except ValueError:
                    continue
            pending.append(record)
            continue
        fold_match = _FOLD_LINE.match(line)
        if fold_match:
            for record in pending:
                rows.append({"model": fold_match.group("model"), "fold": fold_match.group("fold"), **record})
            pending = []
    if not rows:
        return None
    history = pd.DataFrame(rows)
    keep = ["model", "fold", "epoch"] + [c for c in history.columns if "loss" in str(c)]
    return history[[c for c in keep if c in history.columns]]


def learning_curve_figure(history: pd.DataFrame, *, title: str):
    """One panel per loss/metric column against the epoch; one line per (model, fold)."""
    epoch = find_column(history, "epoch", "step", "iteration")
    keys = [c for c in (find_column(history, "model"), find_column(history, "fold")) if c is not None]
    skip = set(keys) | ({epoch} if epoch else set())
    values = [c for c in history.columns if c not in skip and pd.api.types.is_numeric_dtype(history[c])][:4]
    if not values:
        return None
    figure = new_figure(min(4.2 * len(values), 12.0), 3.4)[0]
    figure.clear()
    axes_list = figure.subplots(1, len(values), squeeze=False)[0]
    groups = history.groupby(keys, sort=False) if keys else [("all", history)]
    for index, (name, group) in enumerate(groups):
        x = group[epoch] if epoch else np.arange(len(group))
        label = " ".join(str(v) for v in name) if isinstance(name, tuple) else str(name)
        for axes, column in zip(axes_list, values, strict=False):
            axes.plot(x, group[column], lw=1.1, color=PALETTE[index % len(PALETTE)], label=label)
    for axes, column in zip(axes_list, values, strict=False):
        axes.set_xlabel(epoch or "step")
        axes.set_title(str(column), fontsize=10)
        axes.spines[["top", "right"]].set_visible(False)
    if keys and len(groups) <= 12:
        axes_list[-1].legend(fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=11)
    return figure


@register_section
class BenchmarkSection(Section):
    """Per-model accuracy with CIs, network vs linear twin, calibration and learning curves."""

    id = "benchmark"
    title = "PRS benchmark"
    order = 40
    patterns = ("results.tsv", "summary.tsv", "predictions.tsv") + HISTORY_PATTERNS

    def render(self, files: list[Path], context: ReportContext) -> str:
        history_files = [p for p in files if p.name not in ("results.tsv", "summary.tsv", "predictions.tsv")]
        folders = sorted({p.parent for p in files if p not in history_files})
        parts = []
        for folder in folders:
            parts.append(self._benchmark(folder, context))
        if history_files:
            parts.append("<h3>Learning curves</h3>")
            figures = []
            for path in history_files:
                history = read_history(path)
                figure = learning_curve_figure(history, title=context.rel(path))
                if figure is not None:
                    figures.append(figure_img(figure, alt=f"learning curve {path.name}", wide=True))
            parts.append(source_note([context.rel(p) for p in history_files]))
            parts.append('<div class="figures" id="learning-curves">' + "".join(figures) + "</div>")
        return "".join(parts)

    def _benchmark(self, folder: Path, context: ReportContext) -> str:
        results_path, summary_path = folder / "results.tsv", folder / "summary.tsv"
        results = read_table(results_path) if results_path.is_file() else None
        summary = widen_summary(read_table(summary_path)) if summary_path.is_file() else None
        parts = [f"<h3>Benchmark: {esc(context.rel(folder) if folder != context.analysis_dir else '.')}</h3>"]
        present = [p for p in (results_path, summary_path, folder / "predictions.tsv") if p.is_file()]
        parts.append(source_note([context.rel(p) for p in present]))
        if results is not None:
            model = find_column(results, "model")
            fold = find_column(results, "fold")
            facts = []
            if model:
                facts.append(f"{results[model].nunique()} models")
            if fold:
                facts.append(f"{results[fold].nunique()} folds")
            for column in ("n_train", "n_test"):
                found = find_column(results, column)
                if found:
                    facts.append(f"{column} ≈ {results[found].median():.0f}")
            parts.append(f"<p>{esc(', '.join(facts))}</p>")

        metrics = [
            m for m in BAR_METRICS if any(t is not None and find_column(t, m) for t in (results, summary))
        ]
        if not metrics and results is not None:
            metrics = metric_columns(results)[:2]
        estimates: dict[str, pd.DataFrame] = {}
        figures = []
        for metric in metrics:
            frame = model_estimates(results, summary, metric)
            if frame is None:
                continue
            estimates[metric] = frame
            figures.append(
                figure_img(
                    bar_figure(frame, metric),
                    alt=f"{metric} by model",
                    element_id=f"plot-benchmark-{metric}",
                    caption=f"{frame['source'].iloc[0]}; lighter bars: linear twins.",
                )
            )
        if figures:
            parts.append('<div class="figures">' + "".join(figures) + "</div>")

        twins = twin_table(results, estimates, summary)
        if twins is not None:
            parts.append("<h4>Network vs linear twin</h4>")
            parts.append(
                '<p class="note">Difference = network − the same network without activations, '
                "on the same test samples: the part of the accuracy that needs non-linearity.</p>"
            )
            parts.append(table_html(twins, element_id="table-twins"))

        comparisons = comparison_table(summary)
        if comparisons is not None:
            parts.append("<h4>Paired comparisons (from summary.tsv)</h4>")
            parts.append(table_html(comparisons, element_id="table-comparisons"))
        if summary is not None:
            shown = [c for c in summary.columns if comparisons is None or c not in comparisons.columns[1:]]
            parts.append("<h4>Summary</h4>" + table_html(summary[shown], element_id="table-summary"))
        if results is not None:
            shown = [
                c
                for c in results.columns
                if c in (find_column(results, "model"), find_column(results, "fold"))
                or str(c).lower() in ("n_train", "n_test")
                or c in metric_columns(results)
            ]
            parts.append(
                "<details><summary>Per-fold results</summary>"
                + table_html(results[shown] if shown else results, element_id="table-results")
                + "</details>"
            )
        for extra in sorted(find_files(folder, ("*.tsv",))):
            if (
                extra.parent == folder
                and extra.name not in ("results.tsv", "summary.tsv", "predictions.tsv")
                and re.search(r"compar|paired|pairwise", extra.name)
            ):
                parts.append(f"<h4>{esc(extra.name)}</h4>" + table_html(read_table(extra)))

        log_path = folder / "benchmark.log"
        if log_path.is_file() and not find_files(folder, HISTORY_PATTERNS):
            history = history_from_log(log_path)
            if history is not None:
                figure = learning_curve_figure(history, title="training and validation loss per epoch")
                if figure is not None:
                    parts.append("<h4>Learning curves</h4>")
                    parts.append(source_note([context.rel(log_path)]))
                    image = figure_img(figure, alt="learning curves", element_id="plot-learning-curves",
                                       wide=True)
                    parts.append(f'<div class="figures">{image}</div>')

        predictions_path = folder / "predictions.tsv"
        if predictions_path.is_file():
            calibrated = calibration(with_phenotype(read_table(predictions_path), folder, context))
            if calibrated is None:
                parts.append(
                    callout(
                        f"{context.rel(predictions_path)}: no prediction/phenotype columns; "
                        "no calibration plot"
                    )
                )
            else:
                figure, slopes = calibrated
                parts.append("<h4>Calibration</h4>")
                parts.append(
                    '<div class="figures">'
                    + figure_img(
                        figure,
                        alt="calibration plot",
                        element_id="plot-calibration",
                        caption="Deciles of the prediction; dotted line: perfect calibration.",
                    )
                    + "</div>"
                )
                parts.append(table_html(slopes, element_id="table-calibration"))
        return "".join(parts)
