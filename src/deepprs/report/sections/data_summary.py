"""Data summary: QC counts (``*.qc.json``) and the genetic PCs (``*.eigenvec``, ``*.eigenval``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepprs.report.base import ReportContext, Section, find_column, read_table, register_section
from deepprs.report.html import PALETTE, callout, cards, esc, figure_img, json_html, new_figure, source_note

_COUNT_KEY = re.compile(
    r"^(n_)?(samples|variants)_(before|after|in|out|initial|final|kept|removed|input|output)$"
)


def qc_headline(record: dict[str, Any]) -> list[tuple[str, Any]]:
    """Headline counts from a QC record: keys like ``n_samples_before`` / ``variants_after``.

    Also looks one level down (``{"samples": {"before": 100, "after": 98}}``).
    """
    items: list[tuple[str, Any]] = []
    for key, value in record.items():
        if _COUNT_KEY.match(str(key)) and isinstance(value, (int, float)):
            items.append((str(key).removeprefix("n_").replace("_", " "), value))
        elif str(key).removeprefix("n_") in ("samples", "variants") and isinstance(value, dict):
            for stage, count in value.items():
                if isinstance(count, (int, float)):
                    items.append((f"{str(key).removeprefix('n_')} {stage}", count))
    return items


def qc_figures(variants_path: Path, samples_path: Path) -> list[str]:
    """Histograms of MAF, HWE −log10 P and missingness from the per-variant/per-sample QC tables
    (``ID CHROM POS A1 A1_FREQ MISSING_RATE HWE_P PASS REASON``; ``FID IID MISSING_RATE PASS``)."""
    figures = []
    if variants_path.is_file():
        variants = read_table(variants_path)
        passed = variants[find_column(variants, "PASS")].astype(bool) if find_column(variants, "PASS") else None
        panels = []
        frequency = find_column(variants, "A1_FREQ", "ALT_FREQS", "MAF")
        if frequency is not None:
            values = pd.to_numeric(variants[frequency], errors="coerce")
            panels.append(("minor allele frequency", np.minimum(values, 1 - values)))
        hwe = find_column(variants, "HWE_P", "P_HWE")
        if hwe is not None:
            p_values = pd.to_numeric(variants[hwe], errors="coerce").clip(lower=1e-300)
            panels.append(("HWE exact test −log10 P", -np.log10(p_values)))
        missing = find_column(variants, "MISSING_RATE", "F_MISS")
        if missing is not None:
            panels.append(("variant missing rate", pd.to_numeric(variants[missing], errors="coerce")))
        for label, values in panels:
            if values.nunique() > 1:  # a constant (e.g. no missing genotypes) says nothing as a histogram
                figures.append(_histogram(values, passed, label, what="variants"))
    if samples_path.is_file():
        samples = read_table(samples_path)
        missing = find_column(samples, "MISSING_RATE", "F_MISS")
        passed = samples[find_column(samples, "PASS")].astype(bool) if find_column(samples, "PASS") else None
        if missing is not None and samples[missing].nunique() > 1:
            figures.append(_histogram(pd.to_numeric(samples[missing], errors="coerce"), passed,
                                      "sample missing rate", what="samples"))
    return figures


def _histogram(values: pd.Series, passed: pd.Series | None, label: str, *, what: str) -> str:
    figure, axes = new_figure(3.4, 2.6)
    finite = values.replace([np.inf, -np.inf], np.nan)
    bins = np.histogram_bin_edges(finite.dropna(), bins=30) if finite.notna().any() else 10
    if passed is None:
        axes.hist(finite.dropna(), bins=bins, color=PALETTE[0])
    else:
        axes.hist([finite[passed].dropna(), finite[~passed].dropna()], bins=bins, stacked=True,
                  color=[PALETTE[0], PALETTE[5]], label=[f"pass ({int(passed.sum())})",
                                                         f"fail ({int((~passed).sum())})"])
        axes.legend(frameon=False, fontsize=7, loc="best")
    axes.set_xlabel(label)
    axes.set_ylabel(what)
    return figure_img(figure, alt=f"histogram of {label}")


def read_eigenvec(path: Path) -> pd.DataFrame:
    """plink2 (``#FID IID PC1 …`` or ``#IID PC1 …``) or plink 1.9 (no header) eigenvectors."""
    with open(path) as handle:
        first = handle.readline().split()
    if first and first[0].startswith("#"):
        return read_table(path)
    table = read_table(path, header=False)
    n_ids = 2 if table.shape[1] > 2 and not _is_number(str(table.iloc[0, 1])) else 1
    names = ["FID", "IID"][:n_ids] if n_ids == 2 else ["IID"]
    table.columns = names + [f"PC{k}" for k in range(1, table.shape[1] - n_ids + 1)]
    return table


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@register_section
class DataSummarySection(Section):
    """Samples and variants before and after QC, removals per filter, PC1 vs PC2."""

    id = "data"
    title = "Data summary"
    order = 10
    patterns = ("*.qc.json", "*.eigenvec", "*.eigenval")

    def render(self, files: list[Path], context: ReportContext) -> str:
        parts: list[str] = []
        for path in [p for p in files if p.name.endswith(".qc.json")]:
            parts.append(f"<h3>Quality control: {esc(path.name.removesuffix('.qc.json'))}</h3>")
            parts.append(source_note([context.rel(path)]))
            try:
                record = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                parts.append(callout(f"{context.rel(path)}: not valid JSON ({exc})"))
                continue
            if isinstance(record, dict):
                headline = qc_headline(record)
                if headline:
                    parts.append(cards(headline))
                # the headline counts are on the cards; the table keeps everything else
                record = {k: v for k, v in record.items()
                          if not (_COUNT_KEY.match(str(k)) and isinstance(v, (int, float)))}
            parts.append(json_html(record))
            figures = qc_figures(path.with_name(path.name.replace(".qc.json", ".qc.variants.tsv")),
                                 path.with_name(path.name.replace(".qc.json", ".qc.samples.tsv")))
            if figures:
                sources = [context.rel(p) for p in (path.with_name(path.name.replace(".qc.json", suffix))
                                                    for suffix in (".qc.variants.tsv", ".qc.samples.tsv"))
                           if p.is_file()]
                parts.append(source_note(sources) + '<div class="figures">' + "".join(figures) + "</div>")
        eigenvalues = {p.name.removesuffix(".eigenval"): p for p in files if p.name.endswith(".eigenval")}
        for path in [p for p in files if p.name.endswith(".eigenvec")]:
            stem = path.name.removesuffix(".eigenvec")
            parts.append(f"<h3>Principal components: {esc(stem)}</h3>")
            parts.append(self._pcs(path, eigenvalues.pop(stem, None), context))
        for stem, path in eigenvalues.items():
            parts.append(f"<h3>Eigenvalues: {esc(stem)}</h3>" + self._scree(path, context))
        return "".join(parts)

    def _pcs(self, path: Path, eigenval_path: Path | None, context: ReportContext) -> str:
        table = read_eigenvec(path)
        pc_columns = [c for c in table.columns if re.fullmatch(r"PC\d+", str(c))]
        sources = [context.rel(path)] + ([context.rel(eigenval_path)] if eigenval_path else [])
        out = [source_note(sources), cards([("samples", len(table)), ("PCs", len(pc_columns))])]
        figures = []
        if len(pc_columns) >= 2:
            figure, axes = new_figure(5.6, 4.6)
            axes.scatter(
                table[pc_columns[0]],
                table[pc_columns[1]],
                s=8,
                alpha=0.6,
                color=PALETTE[0],
                edgecolors="none",
            )
            axes.set_xlabel(pc_columns[0])
            axes.set_ylabel(pc_columns[1])
            axes.set_title(f"{pc_columns[0]} vs {pc_columns[1]} ({len(table)} samples)")
            figures.append(
                figure_img(
                    figure,
                    alt=f"PC1 vs PC2 scatter for {path.name}",
                    element_id="plot-pca",
                    caption="Each point is one sample (no identifiers shown).",
                )
            )
        else:
            out.append(callout(f"{context.rel(path)}: fewer than two PCs; no scatter plot"))
        if eigenval_path is not None:
            figures.append(self._scree_figure(eigenval_path))
        out.append('<div class="figures">' + "".join(figures) + "</div>")
        return "".join(out)

    def _scree(self, path: Path, context: ReportContext) -> str:
        return (
            source_note([context.rel(path)]) + '<div class="figures">' + self._scree_figure(path) + "</div>"
        )

    @staticmethod
    def _scree_figure(path: Path) -> str:
        eigenvalues = np.loadtxt(path, ndmin=1, dtype=float)
        figure, axes = new_figure(4.6, 4.6)
        ranks = np.arange(1, len(eigenvalues) + 1)
        axes.bar(ranks, eigenvalues, color=PALETTE[4])
        axes.set_xlabel("PC")
        axes.set_ylabel("eigenvalue")
        axes.set_title("Eigenvalues")
        axes.set_xticks(ranks)
        return figure_img(figure, alt=f"eigenvalues from {path.name}")
