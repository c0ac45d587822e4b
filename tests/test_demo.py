"""The demo pipeline end to end on a small cohort (300 samples x 1,000 variants)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepprs.demo as demo
from deepprs.demo import command_available, run_demo

# step folder -> the report section its outputs feed
SECTION_OF_STEP = {
    "qc": "section-data",
    "pca": "section-data",
    "gwas": "section-gwas",
    "cvblup": "section-heritability",
    "benchmark": "section-benchmark",
}


def _steps_that_ran(out: Path) -> set[str]:
    return {path.parent.name for path in out.glob("*/*.provenance.json")}


@pytest.fixture(scope="module")
def demo_fixture(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        # a few epochs are enough to exercise the network step; the test checks wiring, not accuracy
        patch.setattr(demo, "BENCHMARK_CONFIG", {"mlp": {"epochs": 4, "patience": 2}})
        report = run_demo(out, n_samples=300, n_variants=1000, seed=3, quiet=True)
    assert report == out / "report.html"
    return out


def test_report_has_a_section_for_every_step_that_ran(demo_fixture):
    text = (demo_fixture / "report.html").read_text()
    ran = _steps_that_ran(demo_fixture)
    # the simulation helpers are part of the package: these always run
    assert {"genotypes", "trait", "report"} <= ran
    for step, section in SECTION_OF_STEP.items():
        if step in ran:
            assert f'id="{section}"' in text, f"{step} ran but {section} is missing"
    assert 'id="section-provenance"' in text
    assert "Traceback" not in text and "could not render" not in text


def test_report_calibration_agrees_with_the_benchmark_summary(demo_fixture):
    """The report recomputes calibration from predictions.tsv + the phenotype file; the harness
    computed it on its own: the two must agree."""
    if "benchmark" not in _steps_that_ran(demo_fixture):
        pytest.skip("the benchmark step did not run in this installation")
    from deepprs.report.base import ReportContext, read_table
    from deepprs.report.sections.benchmark import calibration, with_phenotype

    folder = demo_fixture / "benchmark"
    predictions = with_phenotype(read_table(folder / "predictions.tsv"), folder,
                                 ReportContext(demo_fixture, demo_fixture / "report.html"))
    _, slopes = calibration(predictions)
    summary = read_table(folder / "summary.tsv").set_index("model")
    assert set(slopes["model"]) == set(summary.index) >= {"ct", "ridge", "mlp", "mlp-linear"}
    for row in slopes.to_dict("records"):
        expected = summary.loc[row["model"]]
        assert row["calibration slope"] == pytest.approx(expected["calibration_slope"], rel=1e-3)
        assert row["r2 (squared correlation)"] == pytest.approx(expected["pooled_r2"], rel=1e-3)


def test_steps_record_their_own_command_line(demo_fixture):
    provenance = json.loads((demo_fixture / "trait" / "trait.provenance.json").read_text())
    assert provenance["command"] == "simulate"
    assert provenance["argv"][:2] == ["deepprs", "simulate"]
    assert "--h2" in provenance["argv"] and provenance["argv"][provenance["argv"].index("--h2") + 1] == "0.5"
    log = (demo_fixture / "genotypes" / "cohort.log").read_text()
    assert "--n-samples 300" in log and "--n-variants 1000" in log


def test_simulated_cohort_has_the_requested_size_and_heritability(demo_fixture):
    fam = pd.read_csv(demo_fixture / "genotypes" / "cohort.fam", sep=r"\s+", header=None)
    bim = pd.read_csv(demo_fixture / "genotypes" / "cohort.bim", sep=r"\s+", header=None)
    assert len(fam) == 300 and len(bim) == 1000
    pheno = pd.read_csv(demo_fixture / "trait" / "trait.pheno", sep="\t")
    gvalue = pd.read_csv(demo_fixture / "trait" / "trait.gvalue.tsv", sep="\t")
    # additive model: Var(g) = h2 = 0.5 exactly in-sample, noise N(0, 0.5)
    assert np.var(gvalue["GVALUE"]) == pytest.approx(0.5, rel=0.02)
    assert np.var(pheno["PHENO"]) == pytest.approx(1.0, abs=0.25)


def test_quiet_demo_prints_nothing(tmp_path, capfd, monkeypatch):
    # only the cheap steps: this checks the console, not the analysis
    monkeypatch.setattr(demo, "STEPS", (demo.step_genotypes, demo.step_trait))
    run_demo(tmp_path, n_samples=60, n_variants=200, quiet=True)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert (tmp_path / "report.html").is_file()


def test_unavailable_step_is_skipped_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "STEPS", (demo.step_genotypes, demo.step_trait, demo.step_cvblup))
    real = demo.command_available
    monkeypatch.setattr(demo, "command_available", lambda name: name != "cvblup" and real(name))
    from deepprs.cli.main import main

    out = tmp_path / "demo"
    try:
        main(["demo", "--out", str(out), "--n-samples", "60", "--n-variants", "200", "--quiet"])
    except SystemExit as exit_info:
        assert exit_info.code in (0, None)
    log = (out / "demo.log").read_text()
    assert "[cvblup] skipped: `deepprs cvblup` is not available" in log
    assert "steps skipped: cvblup" in log
    assert not (out / "cvblup").exists()
    assert 'id="section-heritability"' not in (out / "report.html").read_text()


def test_failing_step_does_not_stop_the_demo(tmp_path, monkeypatch):
    def broken(state):
        demo.run_command(state, "gwas", ["simulate", "--bfile", str(tmp_path / "missing"), "--out",
                                         str(tmp_path / "gwas" / "x"), "--n-causal", "5", "--h2", "0.5"])

    def after(state):
        failed.extend(state.failed)

    failed: list[str] = []
    monkeypatch.setattr(demo, "STEPS", (broken, after))
    report = run_demo(tmp_path, n_samples=60, n_variants=200, quiet=True)
    assert report.is_file()
    assert failed == ["gwas"]
    assert "error:" in (tmp_path / "gwas" / "x.log").read_text()
    assert not (tmp_path / "gwas" / "x.provenance.json").exists()


def test_command_available():
    assert command_available("simulate-genotypes")
    assert not command_available("no-such-command")


def test_demo_rejects_tiny_sizes(tmp_path):
    from deepprs.errors import InputError

    with pytest.raises(InputError, match="--n-samples"):
        run_demo(tmp_path, n_samples=10, n_variants=1000, quiet=True)
