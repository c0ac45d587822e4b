"""Model bundles, variant matching, scoring and weight export.

Independent truth: plink2 ``--score`` (run live when plink2 is installed; a stored
``plink2_weights.sscore`` fixture otherwise, see tests/data/prs/README.md) and dosages written
with swapped alleles.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepprs.cli.main import main
from deepprs.errors import InputError
from deepprs.evaluate.data import load_prs_data
from deepprs.io.bed import write_bed
from deepprs.io.genotypes import open_genotypes
from deepprs.models.base import make_model
from deepprs.models.bundle import (
    VARIANT_COLUMNS,
    export_weights,
    load_model,
    match_variants,
    predict_from_bundle,
    save_model,
)

DATA = Path(__file__).parent / "data" / "prs"
PREFIX = str(DATA / "eur_chr22")
PHENO = str(DATA / "eur_chr22.pheno")


pytestmark = pytest.mark.usefixtures("one_blas_thread")  # see conftest.py


@pytest.fixture(scope="module")
def fixture_data():
    return load_prs_data(PREFIX, pheno=PHENO, pheno_name="PHENO", covar=PHENO, covar_names=["QCOV1", "QCOV2"])


def read_sscore(path):
    table = pd.read_csv(path, sep="\t")
    table.columns = [c.lstrip("#") for c in table.columns]
    return table


def run_cli(args):
    """Run the CLI in-process; return its exit code (0 when it returns normally)."""
    try:
        main(args)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def assert_equal_up_to_offset(a, b, atol=1e-6):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert np.corrcoef(a, b)[0, 1] > 1 - 1e-10
    difference = a - b
    assert np.ptp(difference) < atol, np.ptp(difference)


@pytest.mark.parametrize("name", ["ridge", "ct", "bayesr"])
def test_bundle_round_trip_identical_predictions(tmp_path, fixture_data, name):
    params = {"cv": 2} if name == "ct" else {}
    model = make_model(name, **params).fit(
        fixture_data.genotypes, fixture_data.phenotype, covariates=fixture_data.covariates
    )
    save_model(
        model,
        tmp_path / "bundle",
        variant_table=fixture_data.variant_table,
        training_info={"phenotype": "PHENO"},
    )
    files = sorted(p.name for p in (tmp_path / "bundle").iterdir())
    assert files == ["model.json", "model.safetensors", "provenance.json", "variants.tsv"]
    loaded, table = load_model(tmp_path / "bundle")
    assert list(table.columns) == VARIANT_COLUMNS
    assert table["A1"].tolist() == fixture_data.variant_table["a1"].tolist()
    np.testing.assert_allclose(table["CENTER"], model.center_, rtol=1e-9)
    before = model.predict(fixture_data.genotypes, covariates=fixture_data.covariates)
    after = loaded.predict(fixture_data.genotypes, covariates=fixture_data.covariates)
    np.testing.assert_array_equal(before, after)
    record = json.loads((tmp_path / "bundle" / "model.json").read_text())
    assert record["model"] == name and record["is_linear"] is True
    assert "A1" in record["effect_allele"] and record["deepprs_version"]
    if name == "bayesr":
        np.testing.assert_array_equal(loaded.pip_, model.pip_)


def model_table(rows):
    return pd.DataFrame(rows, columns=["ID", "A1", "REF"])


def test_match_variants_flip_ambiguous_absent_mismatch():
    target = pd.DataFrame(
        {
            "id": ["v1", "v2", "v3", "v4", "v5", "v6"],
            "a1": ["A", "G", "A", "C", "T", "A"],
            "ref": ["G", "A", "T", "G", "C", "G"],
        }
    )
    model = model_table(
        [
            ["v1", "A", "G"],  # same alleles -> keep
            ["v2", "A", "G"],  # swapped -> flip
            ["v3", "A", "T"],  # A/T ambiguous -> drop
            ["v4", "C", "G"],  # C/G ambiguous -> drop
            ["v5", "A", "C"],  # allele mismatch -> drop
            ["v9", "A", "G"],
        ]
    )  # absent -> drop
    index, flip, report = match_variants(model, target)
    assert index.tolist() == [0, 1, -1, -1, -1, -1]
    assert flip.tolist() == [False, True, False, False, False, False]
    assert report == {
        "n_model": 6,
        "matched": 2,
        "flipped": 1,
        "ambiguous_dropped": 2,
        "absent": 1,
        "allele_mismatch": 1,
        "duplicate_target_id": 0,
    }
    index, _, report = match_variants(model, target, keep_ambiguous=True)
    assert index.tolist()[:4] == [0, 1, 2, 3] and report["ambiguous_dropped"] == 0


def test_scores_identical_on_allele_swapped_target(tmp_path, fixture_data):
    model = make_model("ridge").fit(fixture_data.genotypes, fixture_data.phenotype)
    save_model(model, tmp_path / "bundle", variant_table=fixture_data.variant_table)
    source = open_genotypes(PREFIX)
    dosage = source.read(dtype=np.float64)
    variants = source.variant_table.copy()
    swap = np.arange(len(variants)) % 3 == 0
    variants.loc[swap, ["a1", "ref"]] = variants.loc[swap, ["ref", "a1"]].to_numpy()
    variants["alt"] = variants["a1"]
    swapped = dosage.copy()
    swapped[:, swap] = 2 - swapped[:, swap]
    write_bed(tmp_path / "swapped", swapped, source.sample_table, variants)
    original = predict_from_bundle(tmp_path / "bundle", PREFIX, keep_ambiguous=True)
    flipped = predict_from_bundle(tmp_path / "bundle", str(tmp_path / "swapped"))
    report = flipped.attrs["match_report"]
    ambiguous = report["ambiguous_dropped"]
    assert report["flipped"] > 400 and ambiguous > 100
    # the swapped target drops ambiguous variants; keep them out of the original for comparison
    non_ambiguous = predict_from_bundle(tmp_path / "bundle", PREFIX)
    np.testing.assert_allclose(flipped["SCORE"], non_ambiguous["SCORE"], rtol=1e-10, atol=1e-12)
    assert not np.allclose(original["SCORE"], non_ambiguous["SCORE"])
    # an absent variant scores as missing = at the training mean (contributes 0)
    variants.loc[5, "id"] = "renamed"
    write_bed(
        tmp_path / "renamed",
        dosage,
        source.sample_table,
        source.variant_table.assign(id=source.variant_table["id"].where(np.arange(len(variants)) != 5, "renamed")),
    )
    renamed = predict_from_bundle(tmp_path / "bundle", str(tmp_path / "renamed"), keep_ambiguous=True)
    assert renamed.attrs["match_report"]["absent"] == 1
    expected = original["SCORE"] - (dosage[:, 5] - model.center_[5]) * model.coef_[5]
    np.testing.assert_allclose(renamed["SCORE"], expected, rtol=1e-9, atol=1e-12)


def weights_bundle(tmp_path):
    """A linear bundle holding the stored fixture weights (every 5th names the .bim A2 allele)."""
    source = open_genotypes(PREFIX)
    weights = pd.read_csv(DATA / "weights.plink.txt", sep="\t")
    table = source.variant_table
    assert weights["ID"].tolist() == table["id"].tolist()
    named_a2 = (weights["A1"] != table["a1"]).to_numpy()
    mean_a1 = np.nanmean(source.read(dtype=np.float64), axis=0)
    variants = pd.DataFrame(
        {
            "ID": table["id"],
            "CHROM": table["chrom"].astype(str),
            "POS": table["pos"],
            "A1": weights["A1"],
            "REF": np.where(named_a2, table["a1"], table["ref"]),
            "ALT": table["alt"],
            "CENTER": np.where(named_a2, 2 - mean_a1, mean_a1),
        }
    )
    model = make_model("ridge", lambdas=[1.0])
    model.coef_ = weights["BETA"].to_numpy(dtype=float)
    model.center_ = variants["CENTER"].to_numpy()
    model.intercept_, model.covariate_coef_ = 0.0, np.zeros(0)
    model.is_binary_, model.n_covariates_, model.n_features_in_ = False, 0, len(variants)
    model.lambda_, model.h2_equivalent_ = 1.0, 0.5
    save_model(model, tmp_path / "weights_bundle", variant_table=variants)
    return tmp_path / "weights_bundle", int(named_a2.sum())


def test_predict_reproduces_stored_plink2_scores_with_flips(tmp_path):
    bundle, n_flipped = weights_bundle(tmp_path)
    scores = predict_from_bundle(bundle, PREFIX, keep_ambiguous=True)
    assert scores.attrs["match_report"]["flipped"] == n_flipped == 255
    plink = read_sscore(DATA / "plink2_weights.sscore")
    assert scores["IID"].tolist() == plink["IID"].astype(str).tolist()
    assert_equal_up_to_offset(scores["SCORE"], plink["BETA_SUM"], atol=1e-5)
    # export writes back exactly the stored weights file
    export_weights(bundle, tmp_path / "w.txt", file_format="plink-score")
    exported = pd.read_csv(tmp_path / "w.txt", sep="\t")
    stored = pd.read_csv(DATA / "weights.plink.txt", sep="\t")
    assert exported[["ID", "A1"]].equals(stored[["ID", "A1"]])
    np.testing.assert_allclose(exported["BETA"], stored["BETA"], rtol=1e-9)


def check_pgs_header(lines):
    """The PGS Catalog 2.0 header fields (FORMATS.md §2.3), then the column line."""
    assert lines[0].startswith("###PGS CATALOG SCORING FILE")
    fields = dict(line[1:].split("=", 1) for line in lines if line.startswith("#") and not line.startswith("##"))
    for key in (
        "format_version",
        "pgs_id",
        "pgs_name",
        "trait_reported",
        "trait_mapped",
        "trait_efo",
        "genome_build",
        "variants_number",
        "weight_type",
        "pgp_id",
        "citation",
    ):
        assert key in fields, key
    assert fields["format_version"] == "2.0"
    assert "##POLYGENIC SCORE (PGS) INFORMATION" in lines and "##SOURCE INFORMATION" in lines
    columns_line = next(line for line in lines if not line.startswith("#"))
    columns = columns_line.split("\t")
    assert "effect_allele" in columns and "effect_weight" in columns
    assert "rsID" in columns or {"chr_name", "chr_position"} <= set(columns)
    n_rows = len(lines) - lines.index(columns_line) - 1
    assert int(fields["variants_number"]) == n_rows
    return columns


def test_cli_fit_predict_export_and_plink2(tmp_path):
    out = tmp_path / "ridge"
    assert (
        run_cli(
            [
                "fit",
                "--bfile",
                PREFIX,
                "--pheno",
                PHENO,
                "--pheno-name",
                "PHENO",
                "--model",
                "ridge",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert (out / "fit.log").exists() and (out / "model.safetensors").exists()
    assert (
        run_cli(
            [
                "predict",
                "--model",
                str(out),
                "--bfile",
                PREFIX,
                "--out",
                str(tmp_path / "pred"),
                "--quiet",
                "--keep-ambiguous",
            ]
        )
        == 0
    )
    assert (tmp_path / "pred.sscore").read_text().startswith("#FID\tIID\tSCORE\n")
    assert "variant matching: 1500 of 1500" in (tmp_path / "pred.log").read_text()
    predicted = read_sscore(tmp_path / "pred.sscore")
    for target, fmt in ((tmp_path / "w.txt", "plink-score"), (tmp_path / "w.pgs.txt.gz", "pgs-catalog")):
        assert run_cli(["export", "--model", str(out), "--format", fmt, "--out", str(target), "--quiet"]) == 0
    with gzip.open(tmp_path / "w.pgs.txt.gz", "rt") as handle:
        lines = handle.read().splitlines()
    columns = check_pgs_header(lines)
    assert columns[:5] == ["rsID", "chr_name", "chr_position", "effect_allele", "other_allele"]
    weights = pd.read_csv(tmp_path / "w.txt", sep="\t")
    assert list(weights.columns) == ["ID", "A1", "BETA"]
    if shutil.which("plink2"):
        subprocess.run(
            [
                "plink2",
                "--bfile",
                PREFIX,
                "--score",
                str(tmp_path / "w.txt"),
                "1",
                "2",
                "3",
                "header-read",
                "cols=+scoresums",
                "--out",
                str(tmp_path / "plink"),
            ],
            check=True,
            capture_output=True,
        )
        plink = read_sscore(tmp_path / "plink.sscore")
        assert_equal_up_to_offset(predicted["SCORE"], plink["BETA_SUM"], atol=1e-5)


def test_cli_fit_bayesr_writes_pip_table(tmp_path):
    out = tmp_path / "bayesr"
    args = ["fit", "--bfile", PREFIX, "--pheno", PHENO, "--pheno-name", "PHENO", "--model", "bayesr"]
    assert run_cli([*args, "--out", str(out), "--quiet"]) == 0
    pip = pd.read_csv(out / "pip.tsv", sep="\t")
    assert list(pip.columns) == ["ID", "CHROM", "POS", "A1", "PIP", "BETA"]
    assert len(pip) == 1500 and pip["PIP"].is_monotonic_decreasing
    model, _ = load_model(out)
    np.testing.assert_allclose(np.sort(pip["PIP"])[::-1], np.sort(model.pip_)[::-1], rtol=1e-5)


def test_export_rejects_non_linear_and_bad_format(tmp_path, fixture_data):
    model = make_model("ridge", lambdas=[10.0]).fit(fixture_data.genotypes, fixture_data.phenotype)
    save_model(model, tmp_path / "b", variant_table=fixture_data.variant_table)
    with pytest.raises(InputError, match="--format"):
        export_weights(tmp_path / "b", tmp_path / "x.txt", file_format="vcf")
    record = json.loads((tmp_path / "b" / "model.json").read_text())
    record["is_linear"], record["model"] = False, "mlp"
    (tmp_path / "b" / "model.json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="not linear"):
        export_weights(tmp_path / "b", tmp_path / "x.txt")
    assert run_cli(["export", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "y.txt"), "--quiet"]) == 2
    assert not (tmp_path / "x.txt").exists()


def test_cli_predict_with_covariates_equals_model_predict(tmp_path, fixture_data):
    out = tmp_path / "ridge_cov"
    args = ["fit", "--bfile", PREFIX, "--pheno", PHENO, "--pheno-name", "PHENO", "--covar", PHENO]
    assert run_cli([*args, "--covar-name", "QCOV1,QCOV2", "--model", "ridge", "--out", str(out), "--quiet"]) == 0
    predict = ["predict", "--model", str(out), "--bfile", PREFIX, "--covar", PHENO, "--covar-name", "QCOV1,QCOV2"]
    assert run_cli([*predict, "--keep-ambiguous", "--out", str(tmp_path / "p"), "--quiet"]) == 0
    scores = read_sscore(tmp_path / "p.sscore")
    model, _ = load_model(out)
    expected = model.predict(fixture_data.genotypes, covariates=fixture_data.covariates)
    scored = dict(zip(scores["IID"].astype(str), scores["SCORE"], strict=True))
    iids = fixture_data.sample_ids.get_level_values(1).astype(str)
    np.testing.assert_allclose([scored[i] for i in iids], expected, rtol=1e-8, atol=1e-10)


def test_cli_fit_ct_clumps_in_kb_from_the_bim_positions(tmp_path):
    """`deepprs fit` hands ct the variant table, so clumping uses plink's 250 kb window, not a variant count."""
    out = tmp_path / "ct"
    command = ["fit", "--bfile", PREFIX, "--pheno", PHENO, "--pheno-name", "PHENO", "--model", "ct"]
    assert run_cli([*command, "--out", str(out), "--quiet"]) == 0
    metadata = json.loads((out / "model.json").read_text())
    assert json.dumps(metadata).count('"clump_window": "250 kb"') == 1
