"""The HTML report: parsers checked against independent computations, the page's structure,
and a headless-Chromium render of a synthetic analysis folder."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from deepprs.report import build_report, load_sections, render_report
from deepprs.report.base import read_table
from deepprs.report.sections.benchmark import calibration_slope, model_estimates, twin_table, widen_summary
from deepprs.report.sections.gwas import lambda_gc, load_glm, top_hits
from deepprs.utils.runlog import RunLog

FIXTURES = Path(__file__).parent / "data" / "report"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ALL_SECTIONS = {
    "section-data",
    "section-gwas",
    "section-heritability",
    "section-benchmark",
    "section-provenance",
}
MODELS = ["ct", "ridge", "mlp", "mlp-linear"]
# a trait name with markup: it must arrive escaped
TRAIT = "height <b>cm</b>"


# ---------------------------------------------------------------- the synthetic analysis folder
def _write_tsv(path: Path, table: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, na_rep="NA")


def write_glm_linear(
    path: Path, rng: np.random.Generator, n_variants: int = 600, causal: tuple[int, ...] = (40, 41, 300)
) -> pd.DataFrame:
    """A plink2 alpha-5-layout .glm.linear with a few planted hits (one row per variant, TEST=ADD)."""
    chrom = np.repeat([1, 2, 3], n_variants // 3)
    pos = np.concatenate([np.sort(rng.choice(10**6, n_variants // 3, replace=False)) + 1 for _ in range(3)])
    t_stat = rng.standard_normal(n_variants)
    t_stat[list(causal)] = [9.0, -7.5, 6.5]
    obs = 500
    p = 2 * stats.t.sf(np.abs(t_stat), obs - 2)
    se = np.full(n_variants, 0.05)
    ref = rng.choice(list("ACGT"), n_variants)
    alt = np.array([{"A": "G", "C": "T", "G": "A", "T": "C"}[a] for a in ref])
    table = pd.DataFrame(
        {
            "#CHROM": chrom,
            "POS": pos,
            "ID": [f"rs{1000 + k}" for k in range(n_variants)],
            "REF": ref,
            "ALT": alt,
            "A1": alt,
            "OMITTED": ref,
            "A1_FREQ": rng.uniform(0.05, 0.5, n_variants).round(4),
            "TEST": "ADD",
            "OBS_CT": obs,
            "BETA": (t_stat * se).round(6),
            "SE": se,
            "T_STAT": t_stat.round(5),
            "P": p,
            "ERRCODE": ".",
        }
    )
    _write_tsv(path, table)
    return table


def write_analysis_folder(root: Path, seed: int = 7) -> Path:
    """Every file type the report reads, written in the documented formats."""
    rng = np.random.default_rng(seed)
    n_samples = 120
    fid = [f"F{k}" for k in range(n_samples)]
    iid = [f"SAMPLEID{k:04d}" for k in range(n_samples)]

    (root / "qc").mkdir(parents=True)
    (root / "qc" / "cohort.qc.json").write_text(
        json.dumps(
            {
                "n_samples_before": 130,
                "n_samples_after": 120,
                "n_variants_before": 700,
                "n_variants_after": 600,
                "removed": {"mind": 10, "geno": 40, "maf": 50, "hwe": 10},
                "thresholds": {"maf": 0.01, "hwe": 1e-6},
            }
        )
    )
    maf = rng.uniform(0.01, 0.5, 700)
    _write_tsv(root / "qc" / "cohort.qc.variants.tsv", pd.DataFrame({
        "ID": [f"v{k}" for k in range(700)], "CHROM": 1, "POS": np.arange(700) + 1, "A1": "A", "A1_FREQ": maf,
        "MISSING_RATE": rng.uniform(0, 0.1, 700), "HWE_P": rng.uniform(size=700), "PASS": (maf > 0.02).astype(int),
        "REASON": "."}))
    pcs = pd.DataFrame(
        {"#FID": fid, "IID": iid, **{f"PC{k}": rng.standard_normal(n_samples) for k in range(1, 5)}}
    )
    _write_tsv(root / "pca" / "cohort.eigenvec", pcs)
    (root / "pca" / "cohort.eigenval").write_text("\n".join(f"{v:.4f}" for v in (5.1, 3.2, 2.0, 1.4)) + "\n")

    write_glm_linear(root / "gwas" / "cohort.trait.glm.linear", rng)

    (root / "lmm").mkdir()
    (root / "lmm" / "trait.h2.json").write_text(
        json.dumps(
            {
                "trait": TRAIT,
                "h2": 0.48,
                "h2_se": 0.06,
                "sigma_g": 0.52,
                "sigma_e": 0.56,
                "loglik": -812.3,
                "n": 120,
            }
        )
    )
    genetic = rng.standard_normal(n_samples)
    _write_tsv(
        root / "lmm" / "trait.cvblup.tsv",
        pd.DataFrame(
            {
                "FID": fid,
                "IID": iid,
                "BLUP": genetic,
                "CVBLUP": 0.8 * genetic + 0.1 * rng.standard_normal(n_samples),
            }
        ),
    )
    traits = ["t1", "t2", "t3"]
    _write_tsv(
        root / "lmm" / "traits.pleiotropy.tsv",
        pd.DataFrame({"trait": traits, **{u: rng.uniform(-0.5, 0.5, 3).round(3) for u in traits}}),
    )

    results = []
    truth = {"ct": 0.20, "ridge": 0.30, "mlp": 0.34, "mlp-linear": 0.29}
    for fold in range(5):
        for model in MODELS:
            r2 = truth[model] + 0.02 * rng.standard_normal()
            results.append(
                {
                    "model": model,
                    "fold": fold,
                    "n_train": 96,
                    "n_test": 24,
                    "r2": r2,
                    "r2_corr": r2 + 0.01,
                    "seconds": 1.5,
                }
            )
    results_table = pd.DataFrame(results)
    _write_tsv(root / "benchmark" / "results.tsv", results_table)
    pooled = results_table.groupby("model", sort=False)["r2"].mean()
    _write_tsv(
        root / "benchmark" / "summary.tsv",
        pd.DataFrame(
            {
                "model": pooled.index,
                "r2": pooled.to_numpy(),
                "r2_lo": pooled.to_numpy() - 0.05,
                "r2_hi": pooled.to_numpy() + 0.05,
                "n": 120,
            }
        ),
    )
    phenotype = rng.standard_normal(n_samples)
    predictions = [
        {
            "FID": f,
            "IID": i,
            "fold": k % 5,
            "model": model,
            "prediction": truth[model] * y + 0.3 * rng.standard_normal(),
            "phenotype": y,
        }
        for model in MODELS
        for k, (f, i, y) in enumerate(zip(fid, iid, phenotype, strict=True))
    ]
    _write_tsv(root / "benchmark" / "predictions.tsv", pd.DataFrame(predictions))
    history = [
        {
            "model": "mlp",
            "fold": fold,
            "epoch": epoch,
            "train_loss": 1 / (epoch + 1) + 0.5,
            "val_loss": 1 / (epoch + 1) + 0.6 + 0.01 * epoch,
        }
        for fold in range(2)
        for epoch in range(20)
    ]
    _write_tsv(root / "benchmark" / "mlp.history.tsv", pd.DataFrame(history))

    with RunLog(
        root / "gwas" / "cohort",
        "gwas",
        argv=["deepprs", "gwas", "--out", "gwas/cohort"],
        quiet=True,
        parameters={"pheno_name": ["trait"]},
    ) as log:
        log.info("1 phenotype, 600 variants")
    return root


@pytest.fixture(scope="module")
def analysis_dir_fixture(tmp_path_factory) -> Path:
    return write_analysis_folder(tmp_path_factory.mktemp("analysis"))


@pytest.fixture(scope="module")
def report_fixture(analysis_dir_fixture, tmp_path_factory) -> Path:
    return build_report(analysis_dir_fixture, tmp_path_factory.mktemp("report") / "report.html")


# ---------------------------------------------------------------- HTML structure (always runs)
class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.images: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append(tag)
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag == "img":
            self.images.append(attributes)
        if tag in ("a", "link") and "href" in attributes:
            self.links.append(attributes["href"])

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_sections_registered_in_order():
    ids = [section.id for section in load_sections()]
    assert ids == ["data", "gwas", "heritability", "benchmark", "provenance"]


def test_page_structure(report_fixture):
    page = _parse(report_fixture)
    assert ALL_SECTIONS <= page.ids
    for plot_id in (
        "plot-pca",
        "plot-manhattan",
        "plot-qq",
        "plot-pleiotropy",
        "plot-benchmark-r2",
        "plot-calibration",
        "table-top-hits",
        "table-h2",
        "table-twins",
        "table-provenance",
    ):
        assert plot_id in page.ids, plot_id
    # every plot is an inline PNG
    assert len(page.images) >= 9
    for image in page.images:
        assert image["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(image["src"].split(",", 1)[1])[:8] == PNG_MAGIC
        assert image.get("alt")
    assert "script" not in page.tags
    # self-contained: no network resources; the only links are the in-page TOC and relative log links
    assert not [href for href in page.links if href.startswith(("http:", "https:", "//"))]
    assert all(href.startswith("#") or href.endswith(".log") for href in page.links)
    text = report_fixture.read_text()
    assert "Traceback" not in text and "could not render" not in text
    assert "@import" not in text and "url(" not in text


def test_text_is_escaped_and_no_sample_ids(report_fixture):
    text = report_fixture.read_text()
    assert "height &lt;b&gt;cm&lt;/b&gt;" in text
    assert "<b>cm</b>" not in text
    # individual-level rows never reach the page (only plots and aggregates)
    assert "SAMPLEID" not in text


def test_top_hits_name_the_effect_allele(analysis_dir_fixture, report_fixture):
    glm = read_table(analysis_dir_fixture / "gwas" / "cohort.trait.glm.linear")
    expected = glm.nsmallest(3, "P")
    hits = top_hits(load_glm(analysis_dir_fixture / "gwas" / "cohort.trait.glm.linear"))
    assert list(hits["id"][:3]) == list(expected["ID"])
    assert list(hits["effect allele (A1)"][:3]) == list(expected["A1"])
    assert list(hits["other allele"][:3]) == list(expected["OMITTED"])
    assert "effect allele (A1)" in report_fixture.read_text()


def test_missing_sections_are_left_out(tmp_path):
    write_glm_linear(tmp_path / "only.glm.linear", np.random.default_rng(1))
    page, section_ids, notes = render_report(tmp_path, tmp_path / "r.html")
    assert section_ids == ["section-gwas"] and notes == []
    assert 'id="section-benchmark"' not in page


def test_bad_file_becomes_a_note_not_a_crash(tmp_path):
    (tmp_path / "broken.glm.linear").write_text("#CHROM\tPOS\tID\nnot a glm\n")
    write_glm_linear(tmp_path / "sub" / "fine.glm.linear", np.random.default_rng(2))
    page, section_ids, notes = render_report(tmp_path, tmp_path / "r.html")
    assert section_ids == ["section-gwas"]
    assert len(notes) == 1 and "no P or NEG_LOG10_P" in notes[0]
    assert "Traceback" not in page


def test_hidden_temporary_files_are_ignored(tmp_path):
    write_glm_linear(tmp_path / ".trait.glm.linear.tmp123", np.random.default_rng(3))
    write_glm_linear(tmp_path / ".hidden" / "t.glm.linear", np.random.default_rng(3))
    assert render_report(tmp_path, tmp_path / "r.html")[1] == []


# ---------------------------------------------------------------- parsers vs independent truth
def test_lambda_gc_matches_normal_quantiles():
    rng = np.random.default_rng(5)
    z = rng.standard_normal(20001) * 1.1  # inflated by 1.21 in chi-square
    p = 2 * stats.norm.sf(np.abs(z))
    expected = np.median(z**2) / stats.chi2.ppf(0.5, 1)
    assert lambda_gc(p) == pytest.approx(expected, rel=1e-6)
    assert lambda_gc(p) == pytest.approx(1.21, abs=0.05)


def test_plink2_linear_fixture_keeps_additive_rows_only():
    gwas = load_glm(FIXTURES / "plink2_lin.PHENO.glm.linear")
    raw = pd.read_csv(FIXTURES / "plink2_lin.PHENO.glm.linear", sep="\t")
    additive = raw[raw["TEST"] == "ADD"]
    assert len(gwas) == len(additive) == 300
    np.testing.assert_allclose(gwas["p"], additive["P"])
    np.testing.assert_allclose(gwas["beta"], additive["BETA"])
    # no OMITTED column in this plink2 build: the other allele is REF/ALT minus A1
    expected_other = np.where(additive["A1"] == additive["ALT"], additive["REF"], additive["ALT"])
    assert list(gwas["other_allele"]) == list(expected_other)


def test_plink2_logistic_fixture():
    gwas = load_glm(FIXTURES / "plink2_bin.BIN.glm.logistic.hybrid")
    raw = pd.read_csv(FIXTURES / "plink2_bin.BIN.glm.logistic.hybrid", sep="\t")
    assert len(gwas) == 300
    np.testing.assert_allclose(gwas["or"], raw["OR"])
    np.testing.assert_allclose(gwas["se"], raw["LOG(OR)_SE"])
    np.testing.assert_allclose(gwas["a1_freq"], raw["A1_FREQ"])
    assert "OR (per A1)" in top_hits(gwas).columns


def test_neg_log10_p_column(tmp_path):
    table = write_glm_linear(tmp_path / "a.glm.linear", np.random.default_rng(4))
    table["NEG_LOG10_P"] = -np.log10(table.pop("P"))
    _write_tsv(tmp_path / "b.glm.linear", table)
    np.testing.assert_allclose(
        load_glm(tmp_path / "b.glm.linear")["p"], load_glm(tmp_path / "a.glm.linear")["p"], rtol=1e-9
    )


def test_model_estimates_from_folds_match_t_interval(analysis_dir_fixture):
    results = read_table(analysis_dir_fixture / "benchmark" / "results.tsv")
    estimates = model_estimates(results, None, "r2").set_index("model")
    ridge = results.loc[results["model"] == "ridge", "r2"].to_numpy()
    low, high = stats.t.interval(0.95, len(ridge) - 1, loc=ridge.mean(), scale=stats.sem(ridge))
    assert estimates.loc["ridge", "estimate"] == pytest.approx(ridge.mean())
    assert estimates.loc["ridge", "low"] == pytest.approx(low)
    assert estimates.loc["ridge", "high"] == pytest.approx(high)


def test_summary_is_preferred_and_long_summaries_are_widened(analysis_dir_fixture):
    summary = read_table(analysis_dir_fixture / "benchmark" / "summary.tsv")
    estimates = model_estimates(None, summary, "r2").set_index("model")
    assert estimates.loc["mlp", "low"] == pytest.approx(summary.set_index("model").loc["mlp", "r2_lo"])
    long = pd.DataFrame(
        {
            "model": ["a", "a", "b"],
            "metric": ["r2", "auc", "r2"],
            "estimate": [0.1, 0.7, 0.2],
            "ci_low": [0.05, 0.6, 0.1],
            "ci_high": [0.15, 0.8, 0.3],
        }
    )
    wide = widen_summary(long).set_index("model")
    assert wide.loc["a", "auc_hi"] == 0.8 and wide.loc["b", "r2_lo"] == 0.1
    assert model_estimates(None, widen_summary(long), "r2").set_index("model").loc["b", "high"] == 0.3


def test_twin_table_paired_difference(analysis_dir_fixture):
    results = read_table(analysis_dir_fixture / "benchmark" / "results.tsv")
    estimates = {"r2": model_estimates(results, None, "r2")}
    twins = twin_table(results, estimates)
    assert list(twins["network"]) == ["mlp"]
    wide = results.pivot(index="fold", columns="model", values="r2")
    difference = wide["mlp"] - wide["mlp-linear"]
    row = twins.iloc[0]
    assert row["difference (non-linearity)"] == pytest.approx(difference.mean())
    low, _ = stats.t.interval(0.95, 4, loc=difference.mean(), scale=stats.sem(difference))
    assert row["fold diff low"] == pytest.approx(low)
    assert row["folds network better"] == f"{int((difference > 0).sum())}/5"


def test_calibration_slope_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(11)
    score = rng.standard_normal(400)
    quantitative = 0.7 * score + rng.standard_normal(400)
    intercept, slope = calibration_slope(score, quantitative, binary=False)
    fit = sm.OLS(quantitative, sm.add_constant(score)).fit()
    assert (intercept, slope) == pytest.approx(tuple(fit.params), rel=1e-8)
    binary = (rng.random(400) < 1 / (1 + np.exp(-(0.3 + 1.5 * score)))).astype(float)
    intercept, slope = calibration_slope(score, binary, binary=True)
    fit = sm.Logit(binary, sm.add_constant(score)).fit(disp=0)
    assert (intercept, slope) == pytest.approx(tuple(fit.params), rel=1e-6)


# ---------------------------------------------------------------- CLI
def test_cli_writes_report_log_and_provenance(analysis_dir_fixture, tmp_path):
    from deepprs.cli.main import main

    out = tmp_path / "cli" / "report.html"
    try:
        main(["report", "--in", str(analysis_dir_fixture), "--out", str(out), "--quiet"])
    except SystemExit as exit_info:  # success may return or exit 0
        assert exit_info.code in (0, None)
    assert out.is_file() and (tmp_path / "cli" / "report.log").is_file()
    provenance = json.loads((tmp_path / "cli" / "report.provenance.json").read_text())
    assert provenance["command"] == "report" and provenance["outputs"] == [str(out)]
    assert "section-benchmark" in (tmp_path / "cli" / "report.log").read_text()


def test_cli_missing_folder_is_a_user_error(tmp_path, capsys):
    from deepprs.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", "--in", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html"), "--quiet"])
    assert exit_info.value.code == 2
    assert "--in" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


# ---------------------------------------------------------------- headless browser
def _chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if binary is None:
        pytest.skip("no chromium/chromium-browser/google-chrome on PATH; the browser render test needs one")
    return binary


def test_renders_in_headless_chromium(report_fixture, tmp_path):
    binary = _chromium()
    flags = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = report_fixture.resolve().as_uri()
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for section_id in ALL_SECTIONS:
        assert f'id="{section_id}"' in dom.stdout
    assert dom.stdout.count('src="data:image/png;base64,') >= 9
    assert "Traceback" not in dom.stdout
    screenshot = tmp_path / "report.png"
    shot = subprocess.run(
        flags + [f"--screenshot={screenshot}", "--window-size=1280,4000", "--hide-scrollbars", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 10_000
    assert screenshot.read_bytes()[:8] == PNG_MAGIC


def test_own_plots_when_deepprs_plots_is_absent(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "deepprs.plots", None)  # import now raises ImportError
    write_glm_linear(tmp_path / "t.glm.linear", np.random.default_rng(6))
    page, section_ids, notes = render_report(tmp_path, tmp_path / "r.html")
    assert section_ids == ["section-gwas"] and notes == []
    assert 'id="plot-manhattan"' in page and 'id="plot-qq"' in page
    assert page.count("data:image/png;base64,") == 2


def test_calibration_takes_the_phenotype_named_in_benchmark_json(tmp_path):
    from deepprs.report.base import ReportContext
    from deepprs.report.sections.benchmark import calibration, with_phenotype

    rng = np.random.default_rng(8)
    n = 200
    ids = [f"S{k}" for k in range(n)]
    phenotype = rng.standard_normal(n)
    _write_tsv(tmp_path / "trait.pheno", pd.DataFrame({"FID": ids, "IID": ids, "OTHER": 1.0, "PHENO": phenotype}))
    (tmp_path / "benchmark.json").write_text(json.dumps({"phenotype_file": str(tmp_path / "trait.pheno"),
                                                         "phenotype": "PHENO"}))
    order = rng.permutation(n)  # predictions in another order than the phenotype file
    prediction = 0.5 * phenotype + 0.2
    predictions = pd.DataFrame({"FID": np.array(ids)[order], "IID": np.array(ids)[order], "fold": 0,
                                "model": "ridge", "prediction": prediction[order]})
    merged = with_phenotype(predictions, tmp_path, ReportContext(tmp_path, tmp_path / "r.html"))
    np.testing.assert_allclose(merged["phenotype"], phenotype[order])
    _, slopes = calibration(merged)
    # y = 2 (prediction - 0.2) exactly: slope 2, intercept -0.4, r2 1
    assert slopes.loc[0, "calibration slope"] == pytest.approx(2.0)
    assert slopes.loc[0, "calibration intercept"] == pytest.approx(-0.4)
    assert slopes.loc[0, "r2 (squared correlation)"] == pytest.approx(1.0)


def test_pleiotropy_long_table_keeps_trait_order_and_fdr(tmp_path):
    from deepprs.report.sections.heritability import read_pleiotropy

    long = pd.DataFrame({"PRS_TRAIT": ["b", "b", "a", "a"], "PHENO_TRAIT": ["b", "a", "b", "a"],
                         "R": [0.9, 0.1, 0.2, 0.8], "P": [1e-9, 0.3, 0.1, 1e-8], "FDR": [1e-8, 0.3, 0.15, 1e-7],
                         "N": 100})
    _write_tsv(tmp_path / "x.pleiotropy.tsv", long)
    matrix, fdr = read_pleiotropy(tmp_path / "x.pleiotropy.tsv")
    assert list(matrix.index) == ["b", "a"] and list(matrix.columns) == ["b", "a"]
    assert matrix.loc["a", "b"] == 0.2 and matrix.loc["b", "a"] == 0.1  # asymmetric, not transposed
    assert fdr.loc["a", "b"] == 0.15


def test_learning_curves_parsed_from_a_benchmark_log(tmp_path):
    from deepprs.report.sections.benchmark import history_from_log

    lines = ["deepprs 0.1.0 benchmark", "fold 0 ct: r2 0.4 (1.0 s)"]
    for model, n_epochs in (("mlp", 3), ("mlp-linear", 2)):
        lines += [f"epoch epoch {e}, train_loss {1 / (e + 1):.4g}, seconds 0.1, val_loss {2 - e / 10:.4g}"
                  for e in range(n_epochs)]
        lines.append(f"fold 1 {model}: r2 0.1 (2.0 s)")
    (tmp_path / "benchmark.log").write_text("\n".join(lines) + "\n")
    history = history_from_log(tmp_path / "benchmark.log")
    assert list(history.columns) == ["model", "fold", "epoch", "train_loss", "val_loss"]
    assert history.groupby("model").size().to_dict() == {"mlp": 3, "mlp-linear": 2}
    assert history["val_loss"].tolist() == [2.0, 1.9, 1.8, 2.0, 1.9]
    assert set(history["fold"]) == {"1"}


def test_qc_tables_become_histograms(tmp_path):
    from deepprs.report.sections.data_summary import qc_figures

    rng = np.random.default_rng(9)
    n = 300
    freq = rng.uniform(0.01, 0.99, n)
    _write_tsv(tmp_path / "c.qc.variants.tsv", pd.DataFrame({
        "ID": [f"v{k}" for k in range(n)], "CHROM": 1, "POS": np.arange(n) + 1, "A1": "A", "A1_FREQ": freq,
        "MISSING_RATE": 0.0, "HWE_P": rng.uniform(size=n), "PASS": (freq > 0.05).astype(int), "REASON": "."}))
    _write_tsv(tmp_path / "c.qc.samples.tsv", pd.DataFrame({
        "FID": ["a", "b", "c"], "IID": ["a", "b", "c"], "MISSING_RATE": [0.0, 0.01, 0.2], "PASS": [1, 1, 0]}))
    figures = qc_figures(tmp_path / "c.qc.variants.tsv", tmp_path / "c.qc.samples.tsv")
    # MAF, HWE and sample missingness; the constant variant missing rate is left out
    assert [f.count("data:image/png;base64,") for f in figures] == [1, 1, 1]
    assert "minor allele frequency" in figures[0] and "sample missing rate" in figures[2]
