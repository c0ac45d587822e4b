"""QC statistics, HWE exact test, plink2-style filters and LD pruning against stored plink2 outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepprs.cli.main import main
from deepprs.errors import InputError
from deepprs.io import open_genotypes
from deepprs.qc import hwe_exact_pvalues, ld_prune, parse_indep_pairwise, run_qc, variant_stats
from deepprs.qc.stats import hwe_x_exact_pvalues
from deepprs.simulate import InMemoryGenotypes, simulate_genotypes

DATA = Path(__file__).parent / "data" / "pca"


def _run_cli(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _hwe_brute_force(hom1: int, het: int, hom2: int) -> float:
    """Exact HWE P by enumerating every het count with exact integer arithmetic (Wigginton 2005)."""
    n = hom1 + het + hom2
    n_a = 2 * hom1 + het
    n_b = 2 * hom2 + het
    probs = {}
    for h in range(n_a % 2, min(n_a, n_b) + 1, 2):
        aa, bb = (n_a - h) // 2, (n_b - h) // 2
        probs[h] = (math.factorial(n) * math.factorial(n_a) * math.factorial(n_b) * 2**h
                    / (math.factorial(aa) * math.factorial(h) * math.factorial(bb) * math.factorial(2 * n)))
    observed = probs[het]
    return min(1.0, sum(p for p in probs.values() if p <= observed * (1 + 1e-9)))


@pytest.mark.parametrize("counts", [(10, 50, 40), (0, 30, 0), (45, 2, 53), (1, 1, 1), (100, 0, 3),
                                    (3, 80, 17), (0, 1, 99), (25, 50, 25)])
def test_hwe_matches_brute_force_enumeration(counts):
    p = hwe_exact_pvalues(np.array([counts[0]]), np.array([counts[1]]), np.array([counts[2]]))[0]
    assert p == pytest.approx(_hwe_brute_force(*counts), rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 60))
def test_hwe_symmetric_in_allele_labels_and_a_probability(hom1, het, hom2):
    p = hwe_exact_pvalues(np.array([hom1, hom2]), np.array([het, het]), np.array([hom2, hom1]))
    assert p[0] == pytest.approx(p[1], rel=1e-12)
    assert 0.0 < p[0] <= 1.0
    if hom1 + het + hom2 > 0 and min(2 * hom1 + het, 2 * hom2 + het) > 0:
        assert p[0] == pytest.approx(_hwe_brute_force(hom1, het, hom2), rel=1e-7)


@pytest.mark.parametrize("prefix", ["eur_region", "qcsim"])
def test_hwe_and_counts_match_plink2_hardy(prefix):
    hardy = pd.read_csv(DATA / f"{prefix}.hardy", sep="\t")
    with open_genotypes(DATA / prefix) as source:
        stats = variant_stats(source)
    merged = stats.merge(hardy, on="ID")
    assert len(merged) == len(stats) == len(hardy)
    # plink2's .hardy A1 is the .bim's sixth column, i.e. our AX
    assert (merged["AX_x"] == merged["A1_y"]).all() and (merged["A1_x"] == merged["AX_y"]).all()
    np.testing.assert_array_equal(merged["HOM_AX_CT"], merged["HOM_A1_CT_y"])
    np.testing.assert_array_equal(merged["HET_CT"], merged["HET_A1_CT"])
    np.testing.assert_array_equal(merged["HOM_A1_CT_x"], merged["TWO_AX_CT"])
    # plink2 prints 6 significant digits
    np.testing.assert_allclose(merged["HWE_P"], merged["P"], rtol=2e-5, atol=0)
    assert (merged["P"] < 1e-6).sum() > 0                       # the fixture exercises the tail


def test_frequency_and_missingness_brute_force():
    with open_genotypes(DATA / "qcsim") as source:
        raw = source.read(dtype=np.int8, missing="raw").astype(float)
        stats = variant_stats(source)
        result = run_qc(source)
    raw[raw < 0] = np.nan
    np.testing.assert_allclose(stats["A1_FREQ"], np.nanmean(raw, axis=0) / 2, rtol=1e-12)
    np.testing.assert_allclose(stats["MISSING_RATE"], np.isnan(raw).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.sample_report["MISSING_RATE"], np.isnan(raw).mean(axis=1), rtol=1e-12)


def test_filters_match_plink2():
    kept_variants = set((DATA / "qcsim_filtered.snplist").read_text().split())
    kept_samples = set(pd.read_csv(DATA / "qcsim_filtered.id", sep="\t")["IID"])
    with open_genotypes(DATA / "qcsim") as source:
        result = run_qc(source, maf=0.05, geno=0.02, mind=0.02, hwe=1e-6)
    assert set(result.variant_report.loc[result.variant_pass, "ID"]) == kept_variants
    assert set(result.sample_report.loc[result.sample_pass, "IID"]) == kept_samples
    summary = result.summary
    assert summary["n_samples_after"] == 290 and summary["n_variants_after"] == 1787
    assert summary["samples_removed"]["mind"] == 10
    assert summary["variants_removed"]["geno"] == 175         # plink2 applies --geno first: same count
    assert summary["variants_removed"]["monomorphic"] == 5
    report = result.variant_report
    assert (report.loc[report["PASS"] == 1, "REASON"] == ".").all()
    assert report.loc[report["PASS"] == 0, "REASON"].str.len().gt(1).all()


def test_monomorphic_removed_without_thresholds():
    dosage, samples, variants = simulate_genotypes(50, 20, seed=1)
    dosage[:, 3] = 0
    dosage[:, 7] = 2
    result = run_qc(InMemoryGenotypes(dosage, samples, variants))
    failed = result.variant_report.loc[~result.variant_pass, "ID"].tolist()
    assert failed == variants["id"].iloc[[3, 7]].tolist()
    assert (result.variant_report.loc[~result.variant_pass, "REASON"] == "monomorphic").all()


@pytest.mark.parametrize(("name", "settings_"), [
    ("w50", {"window": 50, "step": 5, "r2_threshold": 0.2}),
    ("200kb", {"window": None, "window_kb": 200, "step": 1, "r2_threshold": 0.5}),
])
def test_ld_prune_agrees_with_plink2(name, settings_):
    plink_in = set((DATA / f"eur_region_{name}.prune.in").read_text().split())
    with open_genotypes(DATA / "eur_region") as source:
        kept = ld_prune(source, **settings_)
        ids = source.variant_table["id"].to_numpy()
    agreement = np.mean(np.isin(ids, list(plink_in)) == kept)
    assert agreement >= 0.97, agreement                        # measured: 0.992 (w50), 0.998 (200kb)
    assert abs(kept.sum() - len(plink_in)) / len(plink_in) < 0.02


def test_ld_prune_leaves_no_pair_above_threshold_in_any_window():
    source = InMemoryGenotypes(*simulate_genotypes(400, 600, n_chromosomes=2, seed=4))
    kept = ld_prune(source, window=30, step=3, r2_threshold=0.3)
    dosage = source.read(dtype=np.float64)
    chrom = source.variant_table["chrom"].to_numpy()
    kept_index = np.flatnonzero(kept)
    for a in kept_index:
        partners = kept_index[(kept_index > a) & (kept_index < a + 30) & (chrom[kept_index] == chrom[a])]
        for b in partners:
            assert np.corrcoef(dosage[:, a], dosage[:, b])[0, 1] ** 2 <= 0.3 + 1e-9
    assert 0 < kept.sum() < 600


def test_parse_indep_pairwise_and_errors():
    assert parse_indep_pairwise(["500kb", "1", "0.1"]) == {"window": None, "window_kb": 500.0, "step": 1,
                                                          "r2_threshold": 0.1}
    assert parse_indep_pairwise(["50", "5", "0.2"])["window"] == 50
    with pytest.raises(InputError):
        parse_indep_pairwise(["fifty", "5", "0.2"])
    source = InMemoryGenotypes(*simulate_genotypes(20, 20, seed=1))
    with pytest.raises(InputError):
        ld_prune(source, window=None, window_kb=100, step=5, r2_threshold=0.2)


def test_cli_qc_outputs(tmp_path):
    out = tmp_path / "qc"
    code = _run_cli(["qc", "--bfile", str(DATA / "qcsim"), "--maf", "0.05", "--geno", "0.02",
                     "--mind", "0.02", "--hwe", "1e-6", "--indep-pairwise", "50", "5", "0.2", "--make-bed",
                     "--out", str(out), "--quiet"])
    assert code == 0
    variants = pd.read_csv(f"{out}.qc.variants.tsv", sep="\t")
    samples = pd.read_csv(f"{out}.qc.samples.tsv", sep="\t")
    assert list(variants.columns) == ["ID", "CHROM", "POS", "A1", "A1_FREQ", "MISSING_RATE", "HWE_P", "PASS",
                                      "REASON"]
    assert list(samples.columns) == ["FID", "IID", "MISSING_RATE", "PASS"]
    summary = json.loads(Path(f"{out}.qc.json").read_text())
    assert (summary["n_samples_before"], summary["n_samples_after"]) == (300, 290)
    assert (summary["n_variants_before"], summary["n_variants_after"]) == (2000, 1787)
    prune_in = Path(f"{out}.prune.in").read_text().split()
    prune_out = Path(f"{out}.prune.out").read_text().split()
    assert len(prune_in) + len(prune_out) == 1787
    assert set(prune_in) <= set((DATA / "qcsim_filtered.snplist").read_text().split())
    with open_genotypes(out) as filtered:
        assert filtered.shape == (290, 1787)
        assert set(filtered.variant_table["id"]) == set((DATA / "qcsim_filtered.snplist").read_text().split())


def test_cli_qc_bad_threshold_exit_2(tmp_path, capsys):
    out = tmp_path / "bad"
    assert _run_cli(["qc", "--bfile", str(DATA / "qcsim"), "--maf", "0.7", "--out", str(out), "--quiet"]) == 2
    assert "--maf" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.log"]


@settings(max_examples=8, deadline=None)
@given(chunk=st.integers(1, 300), block_size=st.integers(1, 500))
def test_streaming_block_sizes_do_not_change_results(chunk, block_size):
    with open_genotypes(DATA / "qcsim") as source:
        variants = np.arange(400)
        reference_kept = ld_prune(source, window=20, step=3, r2_threshold=0.3, variants=variants)
        kept = ld_prune(source, window=20, step=3, r2_threshold=0.3, variants=variants, chunk=chunk)
        np.testing.assert_array_equal(kept, reference_kept)
        reference_stats = variant_stats(source, variants=variants)
        stats = variant_stats(source, variants=variants, block_size=block_size)
        pd.testing.assert_frame_equal(stats, reference_stats)


def test_hwe_window_equals_full_enumeration_at_biobank_sizes():
    """Large samples sum only the het classes near the mode (_hwe_windowed); the P-values equal the
    full enumeration (itself checked against brute force above), in HWE and far from it."""
    from deepprs.qc.stats import _hwe_chunk, _hwe_windowed

    rng = np.random.default_rng(4)
    n = rng.integers(2_000, 20_000, 600)
    q = rng.uniform(0.001, 0.5, 600)
    f = rng.choice([0.0, 0.0, 0.02, -0.02, 0.2, 0.8], 600)            # inbreeding-like deviations
    p_rare = np.clip(q * q + f * q * (1 - q), 0, 1)
    p_het = np.clip(2 * q * (1 - q) * (1 - f), 0, 1 - p_rare)
    hom_rare = rng.binomial(n, p_rare)
    het = rng.binomial(n - hom_rare, p_het / np.maximum(1 - p_rare, 1e-12))
    counts = np.stack([hom_rare, het, n - hom_rare - het], axis=1)
    counts = np.column_stack([counts.min(axis=1, where=[True, False, True], initial=2**62),
                              counts[:, 1], counts.max(axis=1, where=[True, False, True], initial=-1)])
    for midp in (False, True):
        windowed, full_rows = _hwe_windowed(counts, midp)
        common_in_hwe = (f == 0.0) & (q > 0.05)                          # the window is used for these
        assert np.isin(np.flatnonzero(common_in_hwe), full_rows).mean() < 0.02
        reference = np.concatenate([_hwe_chunk(counts[i : i + 50], midp) for i in range(0, len(counts), 50)])
        kept = np.setdiff1d(np.arange(len(counts)), full_rows)
        np.testing.assert_allclose(windowed[kept], reference[kept], rtol=1e-9, atol=0)
        np.testing.assert_allclose(hwe_exact_pvalues(counts[:, 0], counts[:, 1], counts[:, 2], midp=midp),
                                   reference, rtol=1e-9, atol=0)
    assert (reference < 1e-50).any() and (reference > 0.5).any()


def test_hwe_chunks_are_maximal_under_the_cell_bound_and_threads_do_not_change_p_values(monkeypatch):
    """The exact test's work chunks (rows sorted by width) hold at most max_cells padded cells, each as
    large as allowed, and cover every row in order; one thread and two give the same P-values (to
    rounding)."""
    from deepprs.qc.stats import _sorted_chunks

    rng = np.random.default_rng(7)
    for _ in range(300):
        width = np.sort(rng.integers(1, 50, int(rng.integers(0, 60))))
        rows, max_cells = np.arange(len(width)), int(rng.integers(1, 300))
        chunks = _sorted_chunks(rows, width, max_cells)
        assert (np.concatenate(chunks).tolist() if chunks else []) == rows.tolist()
        assert all(len(chunk) == 1 or len(chunk) * width[chunk[-1]] <= max_cells for chunk in chunks)
        assert all((len(a) + 1) * width[b[0]] > max_cells for a, b in zip(chunks[:-1], chunks[1:], strict=True))
    n = rng.integers(500, 5_000, 3_000)
    q = rng.uniform(0.001, 0.5, 3_000)
    hom_rare = rng.binomial(n, q * q)
    het = rng.binomial(n - hom_rare, 2 * q * (1 - q) / (1 - q * q))
    from deepprs.qc import stats

    p_values, pools = {}, []
    real_map = stats._thread_map

    def recording_map(function, items, workers):
        pools.append(workers)
        return real_map(function, items, workers)

    monkeypatch.setattr(stats, "_thread_map", recording_map)
    for threads in (1, 2):
        monkeypatch.setattr(stats, "exact_test_threads", lambda threads=threads: threads)
        p_values[threads] = hwe_exact_pvalues(hom_rare, het, n - hom_rare - het, max_cells=40_000)
    assert set(pools) == {1, 2}
    # (the chunks' cell budget is split between the threads: other chunk widths, last-bit sums)
    np.testing.assert_allclose(p_values[1], p_values[2], rtol=1e-13, atol=0)


def test_exact_test_threads_follow_threads_setting_and_are_capped(monkeypatch):
    """--threads (OMP_NUM_THREADS, its first field when nested), else the usable cores; at most
    MAX_TEST_THREADS (the chunks share one memory budget anyway)."""
    import os

    from deepprs.qc import stats

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    for setting, expected in (("3", 3), ("4,2", 4), ("", stats.MAX_TEST_THREADS), ("x", stats.MAX_TEST_THREADS),
                              ("100", stats.MAX_TEST_THREADS)):
        monkeypatch.setenv("OMP_NUM_THREADS", setting)
        assert stats.exact_test_threads() == expected
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert stats.exact_test_threads() == 1


# ----- chrX exact test with males (plink2 --hardy's .hardy.x, Graffelman & Weir 2016) -----

SEXCHR = Path(__file__).parent / "data" / "gwas_sexchr"
HARDY_X_COUNTS = ["FEMALE_HOM_A1_CT", "FEMALE_HET_A1_CT", "FEMALE_TWO_AX_CT", "MALE_A1_CT", "MALE_AX_CT"]


def _hwe_x_brute_force(f_aa: int, f_ab: int, f_bb: int, m_a: int, m_b: int, midp: bool = False) -> float:
    """chrX exact P by enumerating every table (female genotype counts, male allele counts) with the
    observed allele totals and numbers of females and males, in exact rational arithmetic: a table's
    weight is 2^f_AB / (f_AA! f_AB! f_BB! m_A! m_B!), normalised by the sum over all tables."""
    from fractions import Fraction

    f_aa, f_ab, f_bb, m_a, m_b = map(int, (f_aa, f_ab, f_bb, m_a, m_b))
    n_f, n_m, n_a = f_aa + f_ab + f_bb, m_a + m_b, 2 * f_aa + f_ab + m_a
    fact = math.factorial

    def weight(x: int, h: int, y: int, ma: int, mb: int) -> Fraction:
        return Fraction(2**h, fact(x) * fact(h) * fact(y) * fact(ma) * fact(mb))

    observed = weight(f_aa, f_ab, f_bb, m_a, m_b)
    total = tail = ties = Fraction(0)
    for ma in range(n_m + 1):
        a = n_a - ma                                   # female A1 copies
        if not 0 <= a <= 2 * n_f:
            continue
        for h in range(a % 2, min(a, 2 * n_f - a) + 1, 2):
            w = weight((a - h) // 2, h, n_f - (a - h) // 2 - h, ma, n_m - ma)
            total += w
            tail += w if w <= observed else 0
            ties += w if w == observed else 0
    return float((tail - ties / 2 if midp else tail) / total)


def _hwe_x_full(f_aa: int, f_ab: int, f_bb: int, m_a: int, m_b: int, midp: bool = False) -> float:
    """The chrX exact P summing every table in floating point (log-gamma; no windows, no tables)."""
    from scipy.special import gammaln

    n_f, n_m, n_a = f_aa + f_ab + f_bb, m_a + m_b, 2 * f_aa + f_ab + m_a
    m = np.arange(n_m + 1)[:, None]
    a = n_a - m
    h = np.arange(2 * n_f + 1)[None, :]
    valid = (a >= 0) & (a <= 2 * n_f) & (h <= np.minimum(a, 2 * n_f - a)) & ((h - a) % 2 == 0)
    x = np.where(valid, (a - h) // 2, 0)
    hh = np.where(valid, h, 0)
    mm = np.where(valid, m, 0)
    log_w = hh * np.log(2) - gammaln(x + 1) - gammaln(hh + 1) - gammaln(n_f - x - hh + 1) - gammaln(mm + 1) \
        - gammaln(n_m - mm + 1)
    log_w = np.where(valid, log_w, -np.inf)
    log_obs = f_ab * np.log(2) - gammaln(f_aa + 1) - gammaln(f_ab + 1) - gammaln(f_bb + 1) - gammaln(m_a + 1) \
        - gammaln(m_b + 1)
    top = log_w.max()
    w = np.exp(log_w - top)
    tail = w[log_w <= log_obs + 1e-7].sum()
    if midp:
        tail -= 0.5 * w[np.abs(log_w - log_obs) <= 1e-7].sum()
    return float(tail / w.sum())


def _random_x_counts(rng: np.random.Generator, n: int, max_f: int, max_m: int) -> np.ndarray:
    """Female genotype and male allele counts in and out of HWE, with sex-specific frequencies."""
    rows = []
    for _ in range(n):
        n_f, n_m = int(rng.integers(0, max_f + 1)), int(rng.integers(0, max_m + 1))
        q = float(np.exp(rng.uniform(np.log(0.002), np.log(0.5))))
        f = rng.choice([0.0, 0.0, 0.05, -0.05, 0.3, -0.3])
        probs = np.clip([q * q + f * q * (1 - q), 2 * q * (1 - q) * (1 - f), (1 - q) ** 2 + f * q * (1 - q)], 0, 1)
        female = rng.multinomial(n_f, probs / probs.sum())
        m_a = rng.binomial(n_m, min(1.0, q * rng.choice([1.0, 1.0, 0.5, 1.5])))
        rows.append([*female, m_a, n_m - m_a])
    return np.array(rows)


def test_hwe_x_matches_brute_force_enumeration():
    rng = np.random.default_rng(2016)
    counts = np.vstack([_random_x_counts(rng, 250, 24, 24),
                        [[0, 0, 0, 3, 2], [4, 0, 0, 2, 0], [0, 0, 5, 0, 0], [3, 2, 1, 0, 0], [0, 1, 0, 0, 3],
                         [0, 0, 1, 3, 3], [0, 0, 16, 6, 10], [10, 0, 10, 5, 5], [0, 20, 0, 0, 20]]])
    for midp in (False, True):
        ours = hwe_x_exact_pvalues(*counts.T, midp=midp)
        reference = np.array([_hwe_x_brute_force(*row, midp=midp) for row in counts])
        np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=0)
    assert (reference < 1e-6).any() and (reference == 0.5).any()          # far tails and single tables


def test_hwe_x_equals_full_enumeration_at_larger_counts():
    """Hundreds to thousands of each sex, in HWE and far from it: the central-mass tables and the tail
    windows give the P-values of a plain sum over every table."""
    rng = np.random.default_rng(558)
    counts = np.vstack([_random_x_counts(rng, 30, 700, 700), _random_x_counts(rng, 6, 2000, 1500),
                        [[300, 50, 300, 400, 400], [100, 900, 100, 500, 500], [600, 300, 100, 100, 600],
                         [1500, 30, 0, 200, 1400], [2, 2, 1800, 60, 1200]]])   # far from HWE
    for midp in (False, True):
        ours = hwe_x_exact_pvalues(*counts.T, midp=midp)
        reference = np.array([_hwe_x_full(*row, midp=midp) for row in counts])
        np.testing.assert_allclose(ours, reference, rtol=1e-7, atol=1e-300)
    assert (reference < 1e-20).any() and (reference > 0.5).any()


def test_hwe_x_relabelling_no_males_and_single_tables():
    rng = np.random.default_rng(3)
    counts = _random_x_counts(rng, 200, 300, 300)
    swapped = counts[:, [2, 1, 0, 4, 3]]
    for midp in (False, True):
        np.testing.assert_allclose(hwe_x_exact_pvalues(*counts.T, midp=midp),
                                   hwe_x_exact_pvalues(*swapped.T, midp=midp), rtol=1e-12)
    # without male calls: the females' autosomal test
    females = counts[:, :3]
    np.testing.assert_array_equal(hwe_x_exact_pvalues(*females.T, 0 * females[:, 0], 0 * females[:, 0]),
                                  hwe_exact_pvalues(*females.T))
    # one possible table (monomorphic, or no female call): 1, mid-p 0.5 (as plink2)
    single = np.array([[0, 0, 16, 0, 16], [0, 0, 0, 8, 8], [0, 0, 0, 0, 0], [5, 0, 0, 3, 0]])
    assert hwe_x_exact_pvalues(*single.T).tolist() == [1.0] * 4
    assert hwe_x_exact_pvalues(*single.T, midp=True).tolist() == [0.5] * 4


@pytest.mark.parametrize(("name", "midp"), [("plink2_pedigree", False), ("plink2_hwex", False),
                                            ("plink2_hwex_midp", True)])
def test_hwe_x_matches_plink2_hardy_x(name, midp):
    hardy = pd.read_csv(SEXCHR / f"{name}.hardy.x", sep="\t")
    ours = hwe_x_exact_pvalues(*(hardy[column].to_numpy() for column in HARDY_X_COUNTS), midp=midp)
    np.testing.assert_allclose(ours, hardy["MIDP" if midp else "P"], rtol=1e-5, atol=0)   # 6 significant digits


@pytest.mark.parametrize("midp", [False, True])
def test_variant_stats_tests_chrx_with_males_like_plink2(midp):
    """deepprs qc's HWE_P on chrX: females and the males' hemizygous calls (heterozygous male calls
    missing, unknown sex left out); over plink2's founders it is plink2's .hardy.x P."""
    hardy = pd.read_csv(SEXCHR / f"plink2_hwex{'_midp' if midp else ''}.hardy.x", sep="\t")
    with open_genotypes(SEXCHR / "hwex") as source:
        table = source.sample_table
        founders = np.flatnonzero((table["father"].astype(str) == "0") & (table["mother"].astype(str) == "0"))
        stats = variant_stats(source, samples=founders, hwe_midp=midp)
    assert stats["ID"].tolist() == hardy["ID"].tolist()
    np.testing.assert_allclose(stats["HWE_P"], hardy["MIDP" if midp else "P"], rtol=1e-5, atol=0)


def test_autosomal_midp_of_a_single_possible_table_is_one_half_as_plink2():
    """plink2 2.00a3.5 ``--hardy midp`` on 20 samples: a monomorphic variant prints MIDP 0.5 and
    (13, 5, 2) prints 0.118503 (run by hand: write_bed of these counts, ``plink2 --bfile t --hardy midp``)."""
    from deepprs.qc.stats import hwe_exact_pvalues

    midp = hwe_exact_pvalues(np.array([0, 2, 0]), np.array([0, 5, 0]), np.array([20, 13, 0]), midp=True)
    np.testing.assert_allclose(midp, [0.5, 0.118503, 0.5], rtol=5e-6)
    plain = hwe_exact_pvalues(np.array([0, 0]), np.array([0, 0]), np.array([20, 0]))
    np.testing.assert_array_equal(plain, [1.0, 1.0])


def test_hwe_x_far_from_equilibrium_at_biobank_sizes_in_bounded_time_and_memory():
    """200,000 of each sex. An observed table whose P-value underflows float64 gives 0 at once (it took
    ~55 s: every table of thousands of rows was enumerated); P-values of 1e-290 and so on are right and
    a batch of them stays within bounded memory (it took ~1.4 GB per such variant, 22 GB for 16, held
    all at once for a batch of up to 1,024 variants). plink2 2.00a3.5 prints 5.89825e-291 and 0."""
    import time
    import tracemalloc

    start = time.perf_counter()
    underflow = hwe_x_exact_pvalues([0, 140000], [200000, 20000], [0, 40000], [100000, 20000], [100000, 180000])
    assert underflow.tolist() == [0.0, 0.0]
    assert time.perf_counter() - start < 5.0
    k = 3
    male_a1 = 90000 + 600 * np.arange(k)
    tracemalloc.start()
    try:
        far = hwe_x_exact_pvalues(np.full(k, 50000), np.full(k, 100000), 50000 - np.arange(k), male_a1,
                                  200000 - male_a1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(far[0], 5.89825e-291, rtol=1e-5)
    assert (far > 0).all() and (far < 1e-200).all()
    assert peak < 1.5 * 2**30, f"peak {peak / 2**30:.1f} GiB"


def test_hwe_x_inbred_at_biobank_sizes_sums_only_the_tails_shells():
    """200,000 of each sex, F = 0.05 (P ~ 1e-80..1e-140): each row's tails are summed from where its
    cells cross P_obs outward (tens of ms per variant; tabulating rows from their modes took ~0.4 s);
    midp takes off half the observed table (and any ties), a small part of such a tail."""
    import time

    rng = np.random.default_rng(7)
    k, n, f = 20, 200000, 0.05
    p = rng.uniform(0.05, 0.5, k)
    hom = p * p + f * p * (1 - p)
    het = 2 * p * (1 - p) * (1 - f)
    female = np.array([rng.multinomial(n, [x, y, 1 - x - y]) for x, y in zip(hom, het, strict=True)])
    male_a1 = rng.binomial(n, p)
    start = time.perf_counter()
    plain = hwe_x_exact_pvalues(*female.T, male_a1, n - male_a1)
    assert time.perf_counter() - start < 4.0
    assert ((plain > 1e-200) & (plain < 1e-40)).all()
    midp = hwe_x_exact_pvalues(*female.T, male_a1, n - male_a1, midp=True)
    assert (midp < plain).all()
    np.testing.assert_allclose(midp, plain, rtol=1e-3)


@pytest.mark.parametrize("name", ["eur_region", "qcsim"])  # 379 samples (a padded byte) / missing calls
def test_bed_genotype_counts_on_packed_bytes_equal_the_int8_path(name):
    """.bed counts come from popcounts on the packed bytes: the same numbers as the int8 path of any
    other reader, for all samples, a shuffled subset (padding columns and excluded samples count
    nowhere) and variants in any order; a sample listed twice falls back to the int8 path."""
    from deepprs.qc.stats import genotype_counts

    class NotABed:  # the same source through the generic path
        def __init__(self, source):
            self._source = source

        def __getattr__(self, name):
            return getattr(self._source, name)

    fields = ("n_hom_a1", "n_het", "n_hom_other", "n_missing", "sample_missing")
    rng = np.random.default_rng(4)
    with open_genotypes(DATA / name) as source:
        assert type(source).__name__ == "BedReader"
        from deepprs.io.genotypes import SampleSubset

        kept = SampleSubset(source, rng.permutation(source.n_samples)[:200])  # a --keep view: counted on the bytes
        np.testing.assert_array_equal(genotype_counts(kept, progress=False).sample_missing,
                                      genotype_counts(NotABed(kept), progress=False).sample_missing)
        np.testing.assert_array_equal(genotype_counts(kept, progress=False).n_het,
                                      genotype_counts(NotABed(kept), progress=False).n_het)
        subsets = [(None, None),
                   (rng.permutation(source.n_samples)[: source.n_samples // 2 + 1],
                    rng.permutation(source.n_variants)[: source.n_variants // 2]),
                   (np.array([3, 3, 10]), None)]
        for samples, variants in subsets:
            fast = genotype_counts(source, samples=samples, variants=variants, block_size=256, progress=False)
            slow = genotype_counts(NotABed(source), samples=samples, variants=variants, block_size=256,
                                   progress=False)
            assert fast.n_samples == slow.n_samples
            for field in fields:
                np.testing.assert_array_equal(getattr(fast, field), getattr(slow, field), err_msg=field)
        raw = source.read(dtype=np.int8, missing="raw")
        assert (source.n_samples % 4 != 0) if name == "eur_region" else (raw < 0).sum() > 100
        every = genotype_counts(source, progress=False)
        np.testing.assert_array_equal(every.n_missing, (raw < 0).sum(axis=0))
        np.testing.assert_array_equal(every.sample_missing, (raw < 0).sum(axis=1))
        np.testing.assert_array_equal(every.n_het, (raw == 1).sum(axis=0))


def test_counts_on_a_closed_bed_are_an_input_error():
    from deepprs.io.bed import BedReader
    from deepprs.qc.stats import genotype_counts

    reader = BedReader(DATA / "qcsim")
    reader.close()
    with pytest.raises(InputError, match="is closed"):
        genotype_counts(reader, progress=False)
    with pytest.raises(InputError, match="is closed"):
        reader.read(variants=slice(0, 2))
