"""Heritability and cvBLUP: ``*.h2.json``, ``*.cvblup.tsv`` and the ``*.pleiotropy.tsv`` matrix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.report.base import ReportContext, Section, find_column, read_table, register_section
from deepprs.report.html import (
    PALETTE,
    callout,
    esc,
    figure_img,
    new_figure,
    source_note,
    table_html,
)

H2_FIELDS = ("trait", "h2", "h2_se", "sigma_g", "sigma_e", "loglik", "n")


def h2_table(files: list[Path], context: ReportContext) -> pd.DataFrame:
    """One row per ``*.h2.json``: trait, h2, h2_se, sigma_g, sigma_e, loglik, n (+ other scalars)."""
    rows = []
    for path in files:
        record = json.loads(path.read_text())
        records = record if isinstance(record, list) else [record]
        for item in records:
            if not isinstance(item, dict):
                continue
            row = {"file": context.rel(path)}
            row["trait"] = item.get("trait", item.get("phenotype", path.name.removesuffix(".h2.json")))
            row.update(
                {
                    key: value
                    for key, value in item.items()
                    if isinstance(value, (int, float, str)) and key not in ("trait", "phenotype")
                }
            )
            rows.append(row)
    table = pd.DataFrame(rows)
    # long free text (method notes) would stretch the table; it is in the JSON file
    long_text = [c for c in table.columns if c != "file" and table[c].astype(str).str.len().max() > 60]
    table = table.drop(columns=long_text)
    ordered = [c for c in ("file",) + H2_FIELDS if c in table.columns]
    return table[ordered + [c for c in table.columns if c not in ordered]]


def read_pleiotropy(path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The cross-trait matrix (rows = cvBLUP trait, columns = phenotype) and its FDR matrix.

    Accepts the long table of ``deepprs pleiotropy`` (``PRS_TRAIT PHENO_TRAIT R P FDR N``; any two
    name columns and an ``r``/``corr`` column) or a matrix whose first column holds row names
    (then there is no FDR matrix).
    """
    table = read_table(path)
    value = find_column(table, "r", "corr", "correlation", "rho")
    names = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if value is not None and len(names) >= 2:
        rows = list(dict.fromkeys(table[names[0]]))
        columns = list(dict.fromkeys(table[names[1]]))

        def wide(column: str) -> pd.DataFrame:
            matrix = table.pivot_table(index=names[0], columns=names[1], values=column, aggfunc="first")
            return matrix.reindex(index=rows, columns=columns)

        fdr = find_column(table, "FDR", "q", "q_value")
        return wide(value), (wide(fdr) if fdr is not None else None)
    matrix = table.set_index(table.columns[0])
    return matrix.apply(pd.to_numeric, errors="coerce"), None


def cvblup_figures(table: pd.DataFrame, name: str) -> list[str]:
    """Histogram of cvBLUP (and BLUP) and the BLUP vs cvBLUP scatter (no sample identifiers)."""
    blup_column = find_column(table, "BLUP")
    cvblup_column = find_column(table, "CVBLUP", "cvBLUP")
    figures = []
    figure, axes = new_figure(4.8, 3.8)
    for column, colour in ((blup_column, PALETTE[1]), (cvblup_column, PALETTE[0])):
        if column is not None:
            values = pd.to_numeric(table[column], errors="coerce").dropna()
            axes.hist(values, bins=40, alpha=0.6, color=colour, label=column)
    axes.set_xlabel("predicted genetic value")
    axes.set_ylabel("samples")
    axes.set_title(f"{name}: distribution")
    axes.legend(frameon=False, fontsize=8)
    figures.append(figure_img(figure, alt=f"cvBLUP histogram for {name}"))
    if blup_column is not None and cvblup_column is not None:
        blup = pd.to_numeric(table[blup_column], errors="coerce").to_numpy(float)
        cvblup = pd.to_numeric(table[cvblup_column], errors="coerce").to_numpy(float)
        ok = np.isfinite(blup) & np.isfinite(cvblup)
        figure, axes = new_figure(4.4, 3.8)
        axes.scatter(blup[ok], cvblup[ok], s=7, alpha=0.6, color=PALETTE[0], edgecolors="none")
        low, high = float(np.min(blup[ok], initial=0)), float(np.max(blup[ok], initial=1))
        axes.plot([low, high], [low, high], color="#999999", lw=0.8, ls="--")
        r = np.corrcoef(blup[ok], cvblup[ok])[0, 1] if ok.sum() > 2 else float("nan")
        axes.set_xlabel("BLUP (in-sample)")
        axes.set_ylabel("cvBLUP (leave-one-out)")
        axes.set_title(f"{name}: r = {r:.3f}")
        figures.append(
            figure_img(
                figure,
                alt=f"BLUP vs cvBLUP for {name}",
                caption="cvBLUP shrinks towards 0 relative to BLUP: it does not "
                "use the sample's own phenotype.",
            )
        )
    return figures


def heatmap_figure(matrix: pd.DataFrame, *, title: str, fdr: pd.DataFrame | None = None,
                   fdr_threshold: float = 0.05):
    """Diverging heatmap with the value printed in each cell (when the matrix is small);
    ``*`` marks cells with FDR below ``fdr_threshold``."""
    n_rows, n_columns = matrix.shape
    figure, axes = new_figure(max(4.0, 0.6 * n_columns + 2.5), max(3.2, 0.5 * n_rows + 1.8))
    values = matrix.to_numpy(float)
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    image = axes.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axes.set_xticks(range(n_columns))
    axes.set_xticklabels([str(c) for c in matrix.columns], rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(n_rows))
    axes.set_yticklabels([str(i) for i in matrix.index], fontsize=8)
    axes.set_xlabel("phenotype")
    axes.set_ylabel("cvBLUP of trait")
    if n_rows * n_columns <= 144:
        for i in range(n_rows):
            for j in range(n_columns):
                if np.isfinite(values[i, j]):
                    dark = abs(values[i, j]) > 0.6 * limit
                    star = "*" if fdr is not None and fdr.iloc[i, j] < fdr_threshold else ""
                    axes.text(
                        j,
                        i,
                        f"{values[i, j]:.2f}{star}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if dark else "black",
                    )
    figure.colorbar(image, ax=axes, shrink=0.8, label="correlation")
    axes.set_title(title)
    return figure


@register_section
class HeritabilitySection(Section):
    """REML heritability, BLUP/cvBLUP distributions and the cross-trait cvBLUP matrix."""

    id = "heritability"
    title = "Heritability and cvBLUP"
    order = 30
    patterns = ("*.h2.json", "*.cvblup.tsv", "*.pleiotropy.tsv")

    def render(self, files: list[Path], context: ReportContext) -> str:
        parts = []
        h2_files = [p for p in files if p.name.endswith(".h2.json")]
        if h2_files:
            parts.append("<h3>SNP heritability (REML)</h3>")
            parts.append(source_note([context.rel(p) for p in h2_files]))
            parts.append(table_html(h2_table(h2_files, context), element_id="table-h2"))
        for path in [p for p in files if p.name.endswith(".cvblup.tsv")]:
            name = path.name.removesuffix(".cvblup.tsv")
            table = read_table(path)
            parts.append(f"<h3>cvBLUP: {esc(name)}</h3>")
            parts.append(source_note([context.rel(path)]))
            numeric = table.select_dtypes("number")
            parts.append(
                table_html(
                    numeric.describe().T.reset_index().rename(columns={"index": "column"}),
                    caption=f"{len(table)} samples",
                )
            )
            parts.append('<div class="figures">' + "".join(cvblup_figures(table, name)) + "</div>")
        for path in [p for p in files if p.name.endswith(".pleiotropy.tsv")]:
            name = path.name.removesuffix(".pleiotropy.tsv")
            parts.append(f"<h3>Cross-trait cvBLUP correlations: {esc(name)}</h3>")
            parts.append(source_note([context.rel(path)]))
            matrix, fdr = read_pleiotropy(path)
            if matrix.empty or not np.isfinite(matrix.to_numpy(float)).any():
                parts.append(callout(f"{context.rel(path)}: no numeric correlations found"))
                continue
            parts.append(
                '<div class="figures">'
                + figure_img(
                    heatmap_figure(matrix, title=name, fdr=fdr),
                    alt=f"pleiotropy heatmap {name}",
                    element_id="plot-pleiotropy",
                    caption="corr(cvBLUP of the row trait, phenotype of the column trait); "
                    "asymmetric by design."
                    + (" * FDR < 0.05 (Benjamini-Yekutieli)." if fdr is not None else ""),
                )
                + "</div>"
            )
        return "".join(parts)
