"""GWAS: plink2-format ``*.glm.linear`` / ``*.glm.logistic[.hybrid]`` / ``*.glm.firth`` files.

Manhattan and QQ plots (from :mod:`deepprs.plots` when it is installed, else drawn here),
genomic inflation λGC = median(χ²₁) / 0.4549, and the ten strongest hits with the effect
allele (A1) named.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from deepprs.errors import InputError
from deepprs.report.base import ReportContext, Section, find_column, read_table, register_section
from deepprs.report.html import (
    PALETTE,
    cards,
    esc,
    figure_img,
    new_figure,
    png_img,
    source_note,
    table_html,
)
from deepprs.utils.runlog import current_run

GLM_SUFFIXES = (".glm.linear", ".glm.logistic.hybrid", ".glm.logistic", ".glm.firth")
GENOME_WIDE = 5e-8
SUGGESTIVE = 1e-5
# points with P above this are thinned in the Manhattan plot (they carry no information at that scale)
_THIN_ABOVE_P = 1e-2
_MAX_THINNED_POINTS = 40_000


def load_glm(path: Path) -> pd.DataFrame:
    """Read a plink2 ``--glm`` file and return the additive-test rows with standard columns.

    Returns
    -------
    pandas.DataFrame
        Columns ``chrom, pos, id, effect_allele, other_allele, a1_freq, n, beta, se, p`` (``or``
        for logistic files with an OR column; missing optional columns are NaN), one row per
        variant, rows with a missing P dropped.
    """
    table = read_table(path)
    test = find_column(table, "TEST")
    if test is not None:
        table = table[table[test].astype(str) == "ADD"]
    p_column = find_column(table, "P")
    log10_column = find_column(table, "NEG_LOG10_P", "LOG10P")
    if p_column is not None:
        p_values = pd.to_numeric(table[p_column], errors="coerce")
    elif log10_column is not None:
        p_values = 10.0 ** -pd.to_numeric(table[log10_column], errors="coerce")
    else:
        raise InputError(f"{path}: no P or NEG_LOG10_P column; is this a plink2 --glm output?")
    chrom_column = find_column(table, "CHROM", "#CHROM", "CHR")
    pos_column = find_column(table, "POS", "BP", "GENPOS")
    if chrom_column is None or pos_column is None:
        raise InputError(f"{path}: no #CHROM/POS columns; is this a plink2 --glm output?")
    effect = find_column(table, "A1", "ALLELE1")

    def column(*names: str) -> pd.Series:
        name = find_column(table, *names)
        if name is None:
            return pd.Series(np.nan, index=table.index)
        return table[name]

    other = column("OMITTED", "AX", "ALLELE0")
    if other.isna().all() and effect is not None and find_column(table, "REF") and find_column(table, "ALT"):
        ref, alt = table[find_column(table, "REF")].astype(str), table[find_column(table, "ALT")].astype(str)
        other = ref.where(table[effect].astype(str) != ref, alt)
    result = pd.DataFrame(
        {
            "chrom": table[chrom_column].astype(str),
            "pos": pd.to_numeric(table[pos_column], errors="coerce"),
            "id": column("ID", "SNP", "RSID"),
            "effect_allele": table[effect] if effect is not None else np.nan,
            "other_allele": other,
            "a1_freq": pd.to_numeric(column("A1_FREQ", "A1FREQ"), errors="coerce"),
            "n": pd.to_numeric(column("OBS_CT", "N"), errors="coerce"),
            "beta": pd.to_numeric(column("BETA"), errors="coerce"),
            "or": pd.to_numeric(column("OR"), errors="coerce"),
            "se": pd.to_numeric(column("SE", "LOG(OR)_SE"), errors="coerce"),
            "p": p_values,
        }
    )
    return result[result["p"].notna()].reset_index(drop=True)


def lambda_gc(p_values: np.ndarray) -> float:
    """Genomic inflation factor: median of χ²₁ quantiles of the P-values over the null median."""
    p_values = np.asarray(p_values, dtype=float)
    p_values = p_values[np.isfinite(p_values) & (p_values > 0) & (p_values <= 1)]
    if p_values.size == 0:
        return float("nan")
    return float(np.median(stats.chi2.isf(p_values, df=1)) / stats.chi2.ppf(0.5, df=1))


def _chrom_order(chrom: str) -> tuple[int, str]:
    names = {"X": 23, "Y": 24, "XY": 25, "MT": 26, "M": 26}
    text = chrom.removeprefix("chr")
    return (int(text), "") if text.isdigit() else (names.get(text.upper(), 99), text)


def manhattan_figure(gwas: pd.DataFrame, *, title: str):
    """Manhattan plot: −log10 P against genomic position, chromosomes in alternating colours."""
    figure, axes = new_figure(11.0, 3.9)
    chromosomes = sorted(gwas["chrom"].unique(), key=_chrom_order)
    offset = 0.0
    ticks, labels = [], []
    neg_log10 = -np.log10(np.clip(gwas["p"].to_numpy(float), 1e-300, 1.0))
    rng = np.random.default_rng(0)
    n_thin = int((gwas["p"] > _THIN_ABOVE_P).sum())
    keep_fraction = min(1.0, _MAX_THINNED_POINTS / max(n_thin, 1))
    for k, chrom in enumerate(chromosomes):
        mask = (gwas["chrom"] == chrom).to_numpy()
        positions = gwas.loc[mask, "pos"].to_numpy(float)
        values = neg_log10[mask]
        shown = (gwas.loc[mask, "p"].to_numpy() <= _THIN_ABOVE_P) | (rng.random(mask.sum()) < keep_fraction)
        low, high = np.nanmin(positions), np.nanmax(positions)
        x = offset + positions - low
        axes.scatter(
            x[shown],
            values[shown],
            s=5,
            color=PALETTE[0] if k % 2 == 0 else "#7f9fb8",
            edgecolors="none",
            rasterized=True,
        )
        ticks.append(offset + (high - low) / 2)
        labels.append(chrom)
        offset += (high - low) + max((high - low) * 0.02, 1.0)
    axes.axhline(-np.log10(GENOME_WIDE), color="#D55E00", lw=0.9, ls="--", label="P = 5e-8")
    axes.axhline(-np.log10(SUGGESTIVE), color="#999999", lw=0.8, ls=":", label="P = 1e-5")
    axes.set_xticks(ticks)
    axes.set_xticklabels(labels, fontsize=8)
    axes.set_xlabel("chromosome")
    axes.set_ylabel("−log10 P")
    axes.set_ylim(bottom=0)
    axes.set_title(title)
    axes.legend(loc="upper right", fontsize=8, frameon=False)
    return figure


def qq_figure(p_values: np.ndarray, *, title: str):
    """QQ plot of −log10 P against the uniform expectation with a pointwise 95% band."""
    p_values = np.sort(np.clip(np.asarray(p_values, float), 1e-300, 1.0))
    n = p_values.size
    ranks = np.arange(1, n + 1)
    expected = -np.log10(ranks / (n + 1))
    observed = -np.log10(p_values)
    # order statistics of n uniforms: the k-th smallest is Beta(k, n - k + 1)
    lower = -np.log10(stats.beta.ppf(0.975, ranks, n - ranks + 1))
    upper = -np.log10(stats.beta.ppf(0.025, ranks, n - ranks + 1))
    figure, axes = new_figure(4.4, 3.9)
    axes.fill_between(expected, lower, upper, color="#dddddd", lw=0, label="95% band")
    axes.scatter(expected, observed, s=5, color=PALETTE[0], edgecolors="none", rasterized=True)
    limit = float(max(expected.max(), 1.0))
    axes.plot([0, limit], [0, limit], color="#D55E00", lw=0.9)
    axes.set_xlabel("expected −log10 P")
    axes.set_ylabel("observed −log10 P")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize=8, frameon=False)
    return figure


def _external_plot(function_name: str, data: object, *, title: str, alt: str) -> str | None:
    """Draw with ``deepprs.plots.<function_name>(data, png_path, title=...)`` when that module
    exists; return the embedded ``<figure>``, or None so that the caller draws its own."""
    try:
        plots = importlib.import_module("deepprs.plots")
    except ImportError:
        return None
    function = getattr(plots, function_name, None)
    if function is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{function_name}.png"
        try:
            function(data, path, title=title)
            png = path.read_bytes()
        except Exception:  # an API still in flux must not break the report; fall back to ours
            return None
        finally:
            run = current_run()
            if run is not None:  # a scratch file, not an output of the run
                run.outputs = [output for output in run.outputs if output != path]
    return png_img(png, alt=alt)


def top_hits(gwas: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` smallest P-values as a display table naming the effect allele (A1)."""
    hits = gwas.nsmallest(n, "p")
    display = pd.DataFrame(
        {
            "chrom": hits["chrom"],
            "pos": hits["pos"].astype("Int64"),
            "id": hits["id"],
            "effect allele (A1)": hits["effect_allele"],
            "other allele": hits["other_allele"],
        }
    )
    if hits["a1_freq"].notna().any():
        display["A1 freq"] = hits["a1_freq"]
    if hits["beta"].notna().any():
        display["beta (per A1)"] = hits["beta"]
    if hits["or"].notna().any():
        display["OR (per A1)"] = hits["or"]
    if hits["se"].notna().any():
        display["SE"] = hits["se"]
    if hits["n"].notna().any():
        display["N"] = hits["n"].astype("Int64")
    display["P"] = hits["p"]
    return display


@register_section
class GwasSection(Section):
    """Manhattan and QQ plots, λGC and top hits for every plink2-style association file."""

    id = "gwas"
    title = "GWAS"
    order = 20
    patterns = tuple(f"*{suffix}" for suffix in GLM_SUFFIXES) + tuple(
        f"*{suffix}.gz" for suffix in GLM_SUFFIXES
    )

    def render(self, files: list[Path], context: ReportContext) -> str:
        parts = []
        for index, path in enumerate(files):
            gwas = load_glm(path)
            name = path.name.removesuffix(".gz")
            parts.append(f"<h3>{esc(name)}</h3>")
            parts.append(source_note([context.rel(path)]))
            if gwas.empty:
                parts.append("<p>no tested variants</p>")
                continue
            inflation = lambda_gc(gwas["p"].to_numpy())
            parts.append(
                cards(
                    [
                        ("variants tested", len(gwas)),
                        ("P < 5e-8", int((gwas["p"] < GENOME_WIDE).sum())),
                        ("P < 1e-5", int((gwas["p"] < SUGGESTIVE).sum())),
                        ("λGC", round(inflation, 3)),
                        ("median N", float(gwas["n"].median()) if gwas["n"].notna().any() else "NA"),
                    ]
                )
            )
            suffix = "" if index == 0 else f"-{index}"
            plink_columns = pd.DataFrame({"CHROM": gwas["chrom"], "POS": gwas["pos"], "P": gwas["p"]})
            qq_title = f"QQ, λGC = {inflation:.3f}"
            manhattan = _external_plot(
                "manhattan_plot", plink_columns, title=name, alt=f"Manhattan plot of {name}"
            ) or figure_img(manhattan_figure(gwas, title=name), alt=f"Manhattan plot of {name}")
            qq = _external_plot(
                "qq_plot", gwas["p"].to_numpy(), title=qq_title, alt=f"QQ plot of {name}"
            ) or figure_img(qq_figure(gwas["p"].to_numpy(), title=qq_title), alt=f"QQ plot of {name}")
            manhattan = manhattan.replace("<img ", f'<img id="plot-manhattan{suffix}" ', 1)
            qq = qq.replace("<img ", f'<img id="plot-qq{suffix}" ', 1)
            parts.append(f'<div class="figures">{manhattan}{qq}</div>')
            parts.append(
                table_html(
                    top_hits(gwas),
                    caption="Top 10 variants by P (additive test)",
                    element_id=f"table-top-hits{suffix}",
                )
            )
        return "".join(parts)
