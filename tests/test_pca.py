"""Randomized genotype PCA against plink2 --pca (stored outputs) and against an exact eigensolver."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepprs.cli.main import main
from deepprs.errors import InputError
from deepprs.io import open_genotypes
from deepprs.qc import genotype_pca
from deepprs.simulate import InMemoryGenotypes, simulate_genotypes

DATA = Path(__file__).parent / "data" / "pca"


def _run_cli(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def plink_fixture() -> tuple[pd.DataFrame, np.ndarray]:
    return pd.read_csv(DATA / "eur_pca.eigenvec", sep="\t"), np.loadtxt(DATA / "eur_pca.eigenval")


def _abs_corr(a: np.ndarray, b: np.ndarray) -> float:
    return abs(float(np.corrcoef(a, b)[0, 1]))


def test_randomized_pca_matches_plink2(plink_fixture):
    eigenvec, eigenval = plink_fixture
    with open_genotypes(DATA / "eur_pca") as source:
        result = genotype_pca(source, 10, method="randomized", seed=1)
    assert result.eigenvectors.shape == (379, 10) and result.n_variants == 3000
    assert list(result.sample_table["iid"]) == list(eigenvec["IID"])
    for k in range(5):
        assert _abs_corr(result.eigenvectors[:, k], eigenvec[f"PC{k + 1}"].to_numpy()) > 0.99
    # same scale as plink2: eigenvalues of Z Z^T / M, unit-norm eigenvectors
    np.testing.assert_allclose(result.eigenvalues[:5], eigenval[:5], rtol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(result.eigenvectors, axis=0), 1.0, rtol=1e-8)
    np.testing.assert_allclose(np.abs(result.eigenvectors[:, :5]),
                               np.abs(eigenvec[[f"PC{k}" for k in range(1, 6)]].to_numpy()), atol=2e-3)


def test_exact_grm_eigensolver_matches_plink2_and_brute_force(plink_fixture):
    eigenvec, eigenval = plink_fixture
    with open_genotypes(DATA / "eur_pca") as source:
        exact = genotype_pca(source, 10, method="exact")
        dosage = source.read(dtype=np.float64)
    for k in range(10):
        assert _abs_corr(exact.eigenvectors[:, k], eigenvec[f"PC{k + 1}"].to_numpy()) > 0.9999
    np.testing.assert_allclose(exact.eigenvalues, eigenval, rtol=1e-5)
    # brute force: numpy eigendecomposition of the GRM built densely in the test
    freq = dosage.mean(axis=0) / 2
    z = (dosage - 2 * freq) / np.sqrt(2 * freq * (1 - freq))
    values = np.linalg.eigvalsh(z @ z.T / z.shape[1])[::-1]
    np.testing.assert_allclose(exact.eigenvalues, values[:10], rtol=1e-10)


def test_randomized_equals_exact_on_structured_simulation():
    # two populations with shifted allele frequencies: a clear PC1
    dosage_a, samples, variants = simulate_genotypes(150, 800, seed=1)
    dosage_b, _, _ = simulate_genotypes(150, 800, seed=2, maf_range=(0.2, 0.5))
    samples_all = pd.concat([samples, samples.assign(fid=samples["fid"] + "b", iid=samples["iid"] + "b")])
    source = InMemoryGenotypes(np.vstack([dosage_a, dosage_b]), samples_all, variants)
    fast = genotype_pca(source, 4, method="randomized", block_size=97)
    exact = genotype_pca(source, 4, method="exact")
    np.testing.assert_allclose(fast.eigenvalues, exact.eigenvalues, rtol=1e-4)   # float32 block products
    for k in range(4):
        assert _abs_corr(fast.eigenvectors[:, k], exact.eigenvectors[:, k]) > 0.9999
    population = np.r_[np.zeros(150), np.ones(150)]
    assert _abs_corr(fast.eigenvectors[:, 0], population) > 0.9


def test_pca_skips_monomorphic_and_validates():
    dosage, samples, variants = simulate_genotypes(60, 100, seed=3)
    dosage[:, :7] = 0
    result = genotype_pca(InMemoryGenotypes(dosage, samples, variants), 3)
    assert result.n_variants == 93
    with pytest.raises(InputError):
        genotype_pca(InMemoryGenotypes(dosage, samples, variants), 60)
    with pytest.raises(InputError):
        genotype_pca(InMemoryGenotypes(dosage, samples, variants), 3, method="svd")


def test_cli_pca_writes_plink_style_files(tmp_path, plink_fixture):
    eigenvec, eigenval = plink_fixture
    extract = tmp_path / "subset.txt"
    with open_genotypes(DATA / "eur_pca") as source:
        extract.write_text("\n".join(source.variant_table["id"].iloc[::2]) + "\n")
    out = tmp_path / "pcs"
    assert _run_cli(["pca", "--bfile", str(DATA / "eur_pca"), "--pca", "5", "--method", "randomized",
                     "--out", str(out), "--quiet"]) == 0
    ours = pd.read_csv(f"{out}.eigenvec", sep="\t")
    assert list(ours.columns) == ["#FID", "IID", "PC1", "PC2", "PC3", "PC4", "PC5"]
    assert ours["#FID"].astype(str).tolist() == eigenvec["#FID"].astype(str).tolist()
    for k in range(1, 6):
        assert _abs_corr(ours[f"PC{k}"].to_numpy(), eigenvec[f"PC{k}"].to_numpy()) > 0.99
    np.testing.assert_allclose(np.loadtxt(f"{out}.eigenval"), eigenval[:5], rtol=1e-3)
    sub = tmp_path / "sub"
    assert _run_cli(["pca", "--bfile", str(DATA / "eur_pca"), "--pca", "3", "--extract", str(extract),
                     "--out", str(sub), "--quiet"]) == 0
    assert "1500 of 3000 variants" in Path(f"{sub}.log").read_text()


def test_cli_pca_bad_extract_exit_2(tmp_path, capsys):
    missing = tmp_path / "nothing.txt"
    missing.write_text("rsNOPE\n")
    assert _run_cli(["pca", "--bfile", str(DATA / "eur_pca"), "--extract", str(missing),
                     "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "--extract" in capsys.readouterr().err
