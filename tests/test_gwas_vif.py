"""plink2's predictor checks (CORR_TOO_HIGH / VIF_INFINITE / VIF_TOO_HIGH, --vif / --max-corr) in
``deepprs gwas``, against stored plink2 2.00a3.5 outputs (tests/data/gwas_vif/README.md) and a
brute-force numpy re-implementation (np.corrcoef + inv over each variant's called samples)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepprs.assoc import gwas_linear
from deepprs.assoc.logistic import gwas_logistic
from deepprs.assoc.output import binary_coding, read_glm, to_case_control
from deepprs.assoc.vif import (
    CORR_TOO_HIGH,
    VIF_INFINITE,
    VIF_TOO_HIGH,
    PredictorCheck,
    check_covariates,
    correlation_checks,
    masked_sscp,
    observed_gram,
)
from deepprs.cli.main import main
from deepprs.errors import InputError
from deepprs.io import load_cohort, open_genotypes, write_bed

DATA = Path(__file__).parent / "data" / "gwas_vif"
RUNS = {  # fixture suffix -> keyword arguments (the plink2 flags of README.md)
    "default": {},
    "vif1000": {"max_vif": 1000.0},
    "maxcorr": {"max_corr": 0.99999, "max_vif": 100000.0},
}


@pytest.fixture(scope="module")
def cohort():
    return load_cohort(DATA / "vif", pheno=DATA / "vif.pheno", covar=DATA / "vif.covar")


def _plink2(name: str) -> pd.DataFrame:
    return read_glm(DATA / name)


def _close(ours: pd.Series, ref: pd.Series, rtol: float) -> None:
    # plink2 prints 6 significant digits
    np.testing.assert_allclose(ours.to_numpy(dtype=float), ref.to_numpy(dtype=float), rtol=rtol, atol=1e-300)


@pytest.mark.parametrize("run", list(RUNS))
def test_linear_errcodes_and_statistics_match_plink2(cohort, run):
    ours = gwas_linear(cohort.genotypes, cohort.phenotypes[["y"]], covariates=cohort.covariates,
                       sample_index=cohort.sample_index, progress=False, **RUNS[run])["y"]
    ref = _plink2(f"plink2_vif_{run}.y.glm.linear")
    assert list(ours["ID"]) == list(ref["ID"])
    assert list(ours["ERRCODE"]) == list(ref["ERRCODE"])
    assert (ours["OBS_CT"].to_numpy() == ref["OBS_CT"].to_numpy()).all()
    tested = (ref["ERRCODE"] == ".").to_numpy()
    assert np.isnan(ours.loc[~tested, "BETA"]).all() and np.isnan(ours.loc[~tested, "P"]).all()
    for column in ("BETA", "SE", "T_STAT", "P"):
        _close(ours.loc[tested, column], ref.loc[tested, column], rtol=2e-5)


def test_fixture_covers_every_rule():
    codes = dict(zip(*(_plink2("plink2_vif_default.y.glm.linear")[c] for c in ("ID", "ERRCODE")), strict=True))
    assert codes["v3"] == codes["v23"] == "VIF_INFINITE"  # without / with missing calls
    assert codes["v5"] == codes["v25"] == "CORR_TOO_HIGH"
    assert codes["v7"] == codes["v9"] == "VIF_TOO_HIGH"  # via the genotype / via a covariate
    assert sum(code == "." for code in codes.values()) == 24


def test_covariate_vif_raised_by_the_genotype_is_checked(cohort):
    """v9's own VIF is below 50; only the covariates' VIFs (with v9 in the model) exceed it."""
    data = pd.read_csv(DATA / "vif.covar", sep=" ")
    dosage = cohort.genotypes.read(variants=np.array([9]))[:, 0]
    corr = np.corrcoef(np.column_stack([dosage, data.iloc[:, 2:].to_numpy()]), rowvar=False)
    vif = np.diag(np.linalg.inv(corr))
    assert vif[0] < 50 < vif[1:].max()
    assert np.diag(np.linalg.inv(corr[1:, 1:])).max() < 50  # without v9 every covariate passes
    ours = gwas_linear(cohort.genotypes, cohort.phenotypes[["y"]], covariates=cohort.covariates,
                       sample_index=cohort.sample_index, progress=False,
                       variant_index=np.array([9]), max_vif=float(vif[1:].max()) * 1.001)["y"]
    assert ours["ERRCODE"].tolist() == ["."]


@pytest.mark.parametrize("run", list(RUNS))
def test_logistic_errcodes_match_plink2(cohort, run):
    status = cohort.phenotypes["cc"]
    recoded = pd.DataFrame({"cc": to_case_control(status, binary_coding(status))}, index=cohort.phenotypes.index)
    ours = gwas_logistic(cohort.genotypes, recoded, covariates=cohort.covariates, sample_index=cohort.sample_index,
                         progress=False, **RUNS[run])["cc"]
    ref = _plink2(f"plink2_vif_{run}.cc.glm.logistic.hybrid")
    expected = ref["ERRCODE"].copy()
    # plink2 2.00a3.5's logistic check runs in single precision: exactly singular -> VIF_TOO_HIGH (README)
    expected[ref["ID"].isin(["v3", "v23"])] = "VIF_INFINITE"
    assert list(ours["ERRCODE"]) == list(expected)
    tested = (ref["ERRCODE"] == ".").to_numpy()
    _close(ours.loc[tested, "OR"], ref.loc[tested, "OR"], rtol=1e-4)


def test_vif_flag_lets_a_variant_through_and_its_beta_matches_plink2(cohort):
    default = gwas_linear(cohort.genotypes, cohort.phenotypes[["y"]], covariates=cohort.covariates,
                          sample_index=cohort.sample_index, progress=False)["y"]
    raised = gwas_linear(cohort.genotypes, cohort.phenotypes[["y"]], covariates=cohort.covariates,
                         sample_index=cohort.sample_index, progress=False, max_vif=1000)["y"]
    ref = _plink2("plink2_vif_vif1000.y.glm.linear")
    v7 = (raised["ID"] == "v7").to_numpy()
    assert default.loc[v7, "ERRCODE"].item() == "VIF_TOO_HIGH" and raised.loc[v7, "ERRCODE"].item() == "."
    _close(raised.loc[v7, "BETA"], ref.loc[v7, "BETA"], rtol=2e-5)


@pytest.mark.parametrize(
    ("covar", "words"),
    [
        ("corr_too_high.covar", ["'p1'", "'p2'", "CORR_TOO_HIGH", "--max-corr"]),
        ("vif_too_high.covar", ["'q1'", "VIF_TOO_HIGH", "--vif"]),
    ],
)
def test_covariates_failing_the_checks_stop_the_run(covar, words):
    run = load_cohort(DATA / "vif", pheno=DATA / "vif.pheno", pheno_names=["y"], covar=DATA / covar)
    with pytest.raises(InputError) as error:
        gwas_linear(run.genotypes, run.phenotypes, covariates=run.covariates, sample_index=run.sample_index,
                    progress=False)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    # raising the limits lets the run through
    tables = gwas_linear(run.genotypes, run.phenotypes, covariates=run.covariates, sample_index=run.sample_index,
                         progress=False, max_corr=0.99999, max_vif=1e6)
    assert len(tables["y"]) == 30


def test_cli_refuses_with_exit_code_2_and_writes_no_results(tmp_path, capsys):
    out = tmp_path / "refused"
    with pytest.raises(SystemExit) as stop:
        main(["gwas", "--bfile", str(DATA / "vif"), "--pheno", str(DATA / "vif.pheno"), "--pheno-name", "y",
              "--covar", str(DATA / "corr_too_high.covar"), "--out", str(out), "--no-plots", "--quiet"])
    assert stop.value.code == 2
    assert "CORR_TOO_HIGH" in capsys.readouterr().err
    assert not list(tmp_path.glob("refused*.glm.*")) and not list(tmp_path.glob("*.png"))


def test_cli_vif_and_max_corr_flags(tmp_path):
    out = tmp_path / "raised"
    try:
        main(["gwas", "--bfile", str(DATA / "vif"), "--pheno", str(DATA / "vif.pheno"), "--pheno-name", "y",
              "--covar", str(DATA / "vif.covar"), "--out", str(out), "--no-plots", "--quiet",
              "--vif", "100000", "--max-corr", "0.99999"])
    except SystemExit as stop:
        assert stop.code in (0, None)
    ours = read_glm(tmp_path / "raised.y.glm.linear")
    ref = _plink2("plink2_vif_maxcorr.y.glm.linear")
    assert list(ours["ERRCODE"]) == list(ref["ERRCODE"])
    tested = (ref["ERRCODE"] == ".").to_numpy()
    _close(ours.loc[tested, "BETA"], ref.loc[tested, "BETA"], rtol=2e-5)
    with pytest.raises(SystemExit) as stop:
        main(["gwas", "--bfile", str(DATA / "vif"), "--pheno", str(DATA / "vif.pheno"), "--out", str(out),
              "--vif", "0.5", "--quiet"])
    assert stop.value.code == 2


# ---------------------------------------------------------------- brute force against numpy


def _numpy_code(x: np.ndarray, max_vif: float, max_corr: float) -> tuple[int, np.ndarray]:
    """plink2's rules on the predictors x (n × p) by np.corrcoef + np.linalg.inv."""
    corr = np.corrcoef(x, rowvar=False)
    if (np.abs(corr - np.diag(np.diag(corr))) > max_corr).any():
        return CORR_TOO_HIGH, np.full(x.shape[1], np.inf)
    vif = np.diag(np.linalg.inv(corr))
    return (VIF_TOO_HIGH if (vif > max_vif).any() else 0), vif


def _random_study(tmp_path, seed: int = 7):
    """300 samples, 40 variants (most with missing calls), 6 covariates: c2 ~ c1 (VIF ~ 9),
    c3-c5 built from v0-v3 (their models' VIFs spread over 10-200), c6 with a large mean."""
    rng = np.random.default_rng(seed)
    n, m = 300, 40
    dosage = rng.binomial(2, rng.uniform(0.2, 0.5, m), size=(n, m)).astype(float)
    missing = rng.random((n, m)) < rng.uniform(0, 0.08, m)
    c1 = rng.normal(size=n)
    covariates = np.column_stack([
        c1,
        c1 + 0.35 * rng.normal(size=n),
        dosage[:, 0] + 0.06 * rng.normal(size=n),
        dosage[:, 1] + 0.3 * rng.normal(size=n),
        dosage[:, 2] + dosage[:, 3] + 0.3 * rng.normal(size=n),
        rng.normal(size=n) * 3 + 40,  # large mean: tests the centring
    ])
    samples = pd.DataFrame({"fid": [f"f{i}" for i in range(n)], "iid": [f"i{i}" for i in range(n)]})
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(m) + 1, "id": [f"v{j}" for j in range(m)],
                             "ref": "A", "alt": "G", "a1": "G", "cm": 0.0})
    write_bed(tmp_path / "rand", np.where(missing, np.nan, dosage), samples, variants)
    phenotypes = pd.DataFrame({"y": dosage[:, 0] * 0.2 + rng.normal(size=n)})
    return dosage, missing, covariates, phenotypes, open_genotypes(tmp_path / "rand")


def test_per_variant_checks_match_numpy_brute_force(tmp_path):
    dosage, missing, covariates, phenotypes, source = _random_study(tmp_path)
    table = pd.DataFrame(covariates, columns=[f"c{j + 1}" for j in range(covariates.shape[1])])
    names = {0: ".", VIF_TOO_HIGH: "VIF_TOO_HIGH", CORR_TOO_HIGH: "CORR_TOO_HIGH"}

    def expected(max_vif: float, max_corr: float) -> list[str]:
        out = []
        for j in range(dosage.shape[1]):
            called = ~missing[:, j]
            out.append(names[_numpy_code(np.column_stack([dosage[called, j], covariates[called]]), max_vif,
                                         max_corr)[0]])
        return out

    max_vifs = np.array([
        _numpy_code(np.column_stack([dosage[~missing[:, j], j], covariates[~missing[:, j]]]), np.inf, 1.0)[1].max()
        for j in range(dosage.shape[1])
    ])
    top = np.sort(max_vifs)[-6:]
    assert top[0] < 15 and top[-1] > 60  # the thresholds below split the variants
    limits = [(float(v), 0.999) for v in (top[:-1] + top[1:]) / 2] + [(50.0, 0.999), (1e6, 0.98)]
    outcomes = []
    for max_vif, max_corr in limits:
        ours = gwas_linear(source, phenotypes, covariates=table, block_size=16, progress=False,
                           max_vif=max_vif, max_corr=max_corr)["y"]
        outcomes.append(ours["ERRCODE"].tolist())
        assert outcomes[-1] == expected(max_vif, max_corr), (max_vif, max_corr)
    assert len({tuple(c) for c in outcomes}) >= len(limits) - 1  # the thresholds change the outcome
    assert "CORR_TOO_HIGH" in outcomes[-1]


def test_sscp_through_the_basis_matches_numpy(tmp_path):
    """PredictorCheck.sscp (from A = I − Q_mᵀQ_m, Qᵀg, Σg, Σ(g−ḡ)²) and masked_sscp equal the
    centred cross-products of [g, C] over the called samples."""
    dosage, missing, covariates, _, _ = _random_study(tmp_path)
    n, m = dosage.shape
    basis, _ = np.linalg.qr(np.column_stack([np.ones(n), covariates]))
    names = [f"c{j + 1}" for j in range(covariates.shape[1])]
    check = PredictorCheck(basis, covariates, check_covariates(covariates, names, max_vif=1e9))
    observed = (~missing).astype(float)  # (n, m)
    g0 = np.where(missing, 0.0, dosage)
    gram = np.einsum("nv,nk,nl->vkl", observed, basis, basis)
    q_g = g0.T @ basis
    g_sum = g0.sum(0)
    obs_ct = observed.sum(0)
    g_tss = (g0**2).sum(0) - g_sum**2 / obs_ct
    t = torch.from_numpy
    ours = check.sscp(t(gram), t(q_g), t(g_sum), t(g_tss), t(obs_ct)).numpy()
    masked = masked_sscp(t(g0.T.copy()), t(observed.T.copy()), t(covariates)).numpy()
    for j in range(m):
        called = ~missing[:, j]
        x = np.column_stack([dosage[called, j], covariates[called]])
        expected = np.cov(x, rowvar=False) * (called.sum() - 1)
        np.testing.assert_allclose(ours[j], expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
        np.testing.assert_allclose(masked[j], expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())


def test_codes_from_packed_missing_sums_match_numpy_and_skip_leaves_rows_unchecked(tmp_path):
    """PredictorCheck.codes on the packed triu(Q_mᵀQ_m) of each variant (batch last) gives the
    brute-force codes; rows in ``skip`` keep code OK (the caller names their error)."""
    dosage, missing, covariates, _, _ = _random_study(tmp_path)
    n, m = dosage.shape
    basis, _ = np.linalg.qr(np.column_stack([np.ones(n), covariates]))
    names = [f"c{j + 1}" for j in range(covariates.shape[1])]
    check = PredictorCheck(basis, covariates, check_covariates(covariates, names, max_vif=1e9),
                           max_vif=12.0, max_corr=0.999)
    observed = (~missing).astype(float)
    g0 = np.where(missing, 0.0, dosage)
    rows, cols = np.triu_indices(basis.shape[1])
    missing_outer = np.einsum("nv,nk,nl->klv", 1.0 - observed, basis, basis)[rows, cols]  # (k(k+1)/2, m)
    q_g = g0.T @ basis
    g_sum, obs_ct = g0.sum(0), observed.sum(0)
    g_tss = (g0**2).sum(0) - g_sum**2 / obs_ct
    design = [np.column_stack([np.ones(int(obs_ct[j])), covariates[~missing[:, j]]]) for j in range(m)]
    g_mg = np.array([
        np.sum((g - d @ np.linalg.lstsq(d, g, rcond=None)[0]) ** 2)
        for g, d in ((dosage[~missing[:, j], j], design[j]) for j in range(m))
    ])
    expected = np.array([_numpy_code(np.column_stack([dosage[~missing[:, j], j], covariates[~missing[:, j]]]),
                                     12.0, 0.999)[0] for j in range(m)])
    t = torch.from_numpy
    args = (t(np.ascontiguousarray(missing_outer)), t(q_g), t(g_sum), t(g_tss), t(g_mg), t(obs_ct))
    codes = check.codes(*args).numpy()
    np.testing.assert_array_equal(codes, expected)
    failing = np.flatnonzero(expected != 0)
    assert len(failing) >= 2
    skip = np.zeros(m, dtype=bool)
    skip[failing[::2]] = True
    skipped = check.codes(*args, skip=t(skip)).numpy()
    np.testing.assert_array_equal(skipped, np.where(skip, 0, expected))


def test_correlation_checks_rules_and_precedence():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(400, 3))
    cases = {
        "independent": (z, 0),
        "pair": (np.column_stack([z[:, 0], z[:, 0] + 0.01 * z[:, 1], z[:, 2]]), CORR_TOO_HIGH),
        "singular": (np.column_stack([z[:, 0], z[:, 1], z[:, 0] - 2 * z[:, 1]]), VIF_INFINITE),
        "vif": (np.column_stack([z[:, 0], z[:, 1], z[:, 0] + z[:, 1] + 0.1 * z[:, 2]]), VIF_TOO_HIGH),
    }
    sscp = np.stack([np.cov(x, rowvar=False) for x, _ in cases.values()])
    code, vif = correlation_checks(torch.from_numpy(sscp))
    assert code.tolist() == [expected for _, expected in cases.values()]
    x = cases["vif"][0]
    np.testing.assert_allclose(vif[3].numpy(), np.diag(np.linalg.inv(np.corrcoef(x, rowvar=False))), rtol=1e-10)
    # a larger --max-corr turns the near-duplicate pair into a VIF failure, a larger --vif lets it through
    assert correlation_checks(torch.from_numpy(sscp[1:2]), max_corr=0.99999)[0].item() == VIF_TOO_HIGH
    assert correlation_checks(torch.from_numpy(sscp[1:2]), max_corr=0.99999, max_vif=1e6)[0].item() == 0


def test_single_covariate_uses_the_correlation_not_plink2_a35_bug():
    """plink2 2.00a3.5 uses r·sd(c) with exactly one covariate on complete variants (README);
    deepprs uses r: scaling the covariate changes nothing."""
    rng = np.random.default_rng(5)
    g = rng.binomial(2, 0.3, 500).astype(float)
    c = g + rng.normal(scale=0.2, size=500)  # r ~ 0.95, VIF ~ 10
    for scale in (0.01, 1.0, 100.0):
        sscp = np.cov(np.column_stack([g, c * scale]), rowvar=False)
        assert correlation_checks(torch.from_numpy(sscp[None]))[0].item() == 0


def test_no_scipy_import_for_covariates_and_missing_call_sums():
    """The CLI imports scipy (~0.12 s) in the background: the steps before the P-values must not."""
    code = ("import sys, numpy as np, torch\n"
            "from deepprs.assoc.design import independent_covariates\n"
            "from deepprs.assoc.blocks import DosageBlock, missing_call_sums, to_sum_digits\n"
            "assert independent_covariates(np.zeros((5, 0)), []) == []\n"
            "x = np.random.default_rng(0).normal(size=(20, 3))\n"
            "assert independent_covariates(x, ['a', 'b', 'c']) == [0, 1, 2]\n"
            "block = DosageBlock(np.arange(2), torch.zeros(2, 4, dtype=torch.int8), np.array([0, 1]),\n"
            "                    np.array([3, 0]))\n"
            "sums = missing_call_sums(block, to_sum_digits(np.array([[0.0, 1], [2, 2], [4, 4], [8, 8]])))\n"
            "assert sums.tolist() == [[8.0, 8.0], [0.0, 1.0]], sums\n"
            "print('scipy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False"]


def test_independent_covariates_drop_later_linear_combinations_in_order():
    """Brute force: a column is kept when it raises the rank of [1, kept columns] (numpy SVD rank)."""
    from deepprs.assoc.design import independent_covariates

    rng = np.random.default_rng(11)
    n = 60
    c1, c2, c3 = rng.normal(size=(3, n))
    cases = {
        "middle": np.column_stack([c1, c2, c1 - 3 * c2 + 7.0, c3]),      # dependent column between independent ones
        "intercept": np.column_stack([c1, 2.0 * np.ones(n) + 0 * c1 + 1e-3 * c2, 5 * c1 + 2, c2]),
        "repeat": np.column_stack([c1, c1, c1 * 1e6, c2, c2 + c1, c3]),
        "wide": rng.normal(size=(4, 7)),                                   # more covariates than samples
        "wide_repeat": np.column_stack([c1[:4], c1[:4], 2 * c1[:4] + 1, c1[:4], c2[:4], c3[:4]]),
    }
    for label, matrix in cases.items():
        names = [f"x{j}" for j in range(matrix.shape[1])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            kept = independent_covariates(matrix, names)
        expected = []
        for j in range(matrix.shape[1]):
            base = np.column_stack([np.ones(len(matrix)), matrix[:, expected]])
            if np.linalg.matrix_rank(np.column_stack([base, matrix[:, j]])) > np.linalg.matrix_rank(base):
                expected.append(j)
        assert kept == expected, (label, kept, expected)
    with pytest.warns(UserWarning, match="dropping collinear covariate.*x2"):
        independent_covariates(cases["middle"], ["x0", "x1", "x2", "x3"])


def test_invalid_limits_are_refused(cohort):
    for kwargs in ({"max_vif": 0.5}, {"max_corr": 0.0}, {"max_corr": 1.5}):
        with pytest.raises(InputError):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gwas_linear(cohort.genotypes, cohort.phenotypes[["y"]], covariates=cohort.covariates,
                            sample_index=cohort.sample_index, progress=False, **kwargs)


def test_covariate_check_uses_each_designs_samples(tmp_path):
    """c2 duplicates c1 (|r| > 0.999) only on the samples where y2 is observed: the y design passes,
    the y2 design (its own samples) is refused; a LOCO column is checked with the covariates."""
    dosage, missing, covariates, phenotypes, source = _random_study(tmp_path)
    rng = np.random.default_rng(11)
    n = len(phenotypes)
    subset = np.arange(n) < 150
    c1 = covariates[:, 0]
    c2 = np.where(subset, c1 + 0.01 * rng.normal(size=n), rng.normal(size=n))
    table = pd.DataFrame({"c1": c1, "c2": c2})
    assert abs(np.corrcoef(c1, c2)[0, 1]) < 0.9 and abs(np.corrcoef(c1[subset], c2[subset])[0, 1]) > 0.999
    gwas_linear(source, phenotypes, covariates=table, progress=False)
    both = phenotypes.assign(y2=np.where(subset, phenotypes["y"], np.nan))
    with pytest.raises(InputError, match=r"'c1' and 'c2' \(phenotype y2\).*CORR_TOO_HIGH"):
        gwas_linear(source, both, covariates=table, progress=False)
    loco = pd.DataFrame({"1": covariates[:, 2] + covariates[:, 3] + 0.02 * rng.normal(size=n)})  # VIF_TOO_HIGH
    with pytest.raises(InputError, match=r"LOCO_1.*chromosome 1.*VIF_TOO_HIGH"):
        gwas_linear(source, phenotypes, covariates=pd.DataFrame(covariates[:, 1:4]), loco_covariates=loco,
                    progress=False)


def test_screen_bound_holds_under_heavy_non_random_missingness():
    """PredictorCheck.bound (the screen that skips the exact check) is >= every VIF of the model,
    with up to ~80% missing calls concentrated on samples with large covariate values."""
    rng = np.random.default_rng(1)
    n, m = 400, 200
    z = rng.normal(size=(n, 3))
    covariates = np.column_stack([z[:, 0], z[:, 0] + 0.4 * z[:, 1], z[:, 2] ** 2])
    dosage = rng.binomial(2, 0.3, size=(n, m)).astype(float)
    dosage[:, :50] = np.clip(np.rint(1 + covariates[:, :1] * rng.uniform(0.3, 1, 50)
                                     + 0.5 * rng.normal(size=(n, 50))), 0, 2)
    score = covariates[:, 0] + covariates[:, 2]
    missing = rng.random((n, m)) < rng.uniform(0.0, 0.4, m) * (score > np.median(score))[:, None] * 2
    basis, _ = np.linalg.qr(np.column_stack([np.ones(n), covariates]))
    check = PredictorCheck(basis, covariates, check_covariates(covariates, ["a", "b", "c"]))
    observed = (~missing).astype(float)
    true_max, g_tss, g_mg = [], [], []
    for j in range(m):
        called = ~missing[:, j]
        g = dosage[called, j]
        true_max.append(np.diag(np.linalg.inv(np.corrcoef(np.column_stack([g, covariates[called]]),
                                                          rowvar=False))).max())
        design = np.column_stack([np.ones(called.sum()), covariates[called]])
        residual = g - design @ np.linalg.lstsq(design, g, rcond=None)[0]
        g_mg.append(residual @ residual)
        g_tss.append(((g - g.mean()) ** 2).sum())
    t = torch.from_numpy
    gram = np.einsum("nv,nk,nl->vkl", observed, basis, basis)
    rows, cols = np.triu_indices(basis.shape[1])
    missing_outer = np.ascontiguousarray((np.eye(basis.shape[1]) - gram)[:, rows, cols].T)  # triu(Q_m'Q_m)
    np.testing.assert_allclose(observed_gram(t(missing_outer)).permute(2, 0, 1).numpy(), gram, atol=1e-12)
    bound, epsilon = check.bound(t(missing_outer), t(np.array(g_tss)), t(np.array(g_mg)), t(observed.sum(0)))
    valid = (epsilon < 1).numpy()
    ratio = np.array(true_max)[valid] / bound.numpy()[valid]
    assert valid.sum() > 50 and ratio.max() <= 1.0 + 1e-12
    assert ratio.max() > 0.5  # the bound is not vacuous
