"""Simulated traits with known truth (METHODS.md section 3).

Every model returns a :class:`SimulatedTrait`; its ``truth`` table has one row per causal variant
(``ID CHROM POS A1 EFFECT_TYPE WEIGHT PARTNERS A1_FREQ GXE_WEIGHT DROPPED``) from which the genetic
value can be recomputed exactly (:func:`genetic_value_from_truth`):

* additive / joint-tagging / gxe: ``g = sum_j WEIGHT_j (x_j - 2 A1_FREQ_j)
  [+ sum_j GXE_WEIGHT_j (x_j - 2 A1_FREQ_j) E]``, with ``x`` the A1 dosage;
* epistasis: one term per group of ``order`` variants (the group's IDs are in ``PARTNERS``):
  ``WEIGHT * prod_j (x_j - 2 A1_FREQ_j)``;
* yelmen: codes ``c = x - 1`` in {-1, 0, 1}; dominant ``WEIGHT * 1[c >= 0]``, recessive
  ``WEIGHT * 1[c = 1]``, pairwise ``WEIGHT * c_a c_b``, three-way ``WEIGHT * c_a c_b c_c``.

The reported genetic value is centred to mean 0 in the simulated samples. Missing genotypes are
mean-imputed (so a missing genotype contributes ``2 A1_FREQ``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource, as_index
from deepprs.simulate.genotypes import as_genotype_source
from deepprs.utils.runlog import atomic_output, track

MODELS = ("additive", "yelmen", "epistasis", "joint-tagging", "gxe")
TRUTH_COLUMNS = ["ID", "CHROM", "POS", "A1", "EFFECT_TYPE", "WEIGHT", "PARTNERS", "A1_FREQ", "GXE_WEIGHT",
                 "DROPPED"]
YELMEN_RATIO = (5, 5, 4, 6)  # dominant : recessive : pairwise : three-way (variants)


@dataclass
class SimulatedTrait:
    """A simulated phenotype with its truth.

    Attributes
    ----------
    sample_table : DataFrame, (n,) rows
        ``fid iid`` of the simulated samples.
    phenotype : ndarray, shape (n,)
        Continuous phenotype ``g + e``.
    phenotype_binary : ndarray of int8, shape (n,) or None
        Liability-threshold cases (1) / controls (0) when a prevalence was given.
    genetic_value : ndarray, shape (n,)
        Genetic value ``g`` (centred), including the GxE term for ``model="gxe"``.
    truth : DataFrame
        One row per causal variant (``TRUTH_COLUMNS``).
    environment : ndarray, shape (n,) or None
        The environmental covariate ``E`` (``model="gxe"``).
    dropped_causal : list of str
        Causal IDs to drop from the inputs (``model="joint-tagging"``).
    threshold : float or None
        Liability threshold on ``phenotype`` used for ``phenotype_binary``.
    parameters : dict
        Model, n_causal, h2, noise variance, realised h2 and the like.
    """

    sample_table: pd.DataFrame
    phenotype: np.ndarray
    phenotype_binary: np.ndarray | None
    genetic_value: np.ndarray
    truth: pd.DataFrame
    environment: np.ndarray | None = None
    dropped_causal: list[str] = field(default_factory=list)
    threshold: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def realised_h2(self) -> float:
        """``Var(g) / Var(y)`` in the sample."""
        return float(np.var(self.genetic_value) / np.var(self.phenotype))


# --------------------------------------------------------------------------------------------
# pure building blocks
# --------------------------------------------------------------------------------------------
def scale_to_variance(values: np.ndarray, target_variance: float) -> tuple[np.ndarray, float]:
    """Centre ``values`` and rescale them to the exact in-sample variance ``target_variance``.

    Returns the scaled values and the scale factor (``0`` when ``values`` is constant).
    """
    centred = values - values.mean()
    var = centred.var()
    factor = float(np.sqrt(target_variance / var)) if var > 0 else 0.0
    return centred * factor, factor


def liability_threshold(liability: np.ndarray, prevalence: float) -> tuple[np.ndarray, float]:
    """Cases are the top ``prevalence`` fraction of ``liability`` (in-sample quantile threshold).

    Returns
    -------
    binary : ndarray of int8, shape (n,)
    threshold : float
    """
    n = len(liability)
    n_cases = int(round(prevalence * n))
    order = np.argsort(-liability, kind="stable")
    binary = np.zeros(n, dtype=np.int8)
    binary[order[:n_cases]] = 1
    if 0 < n_cases < n:
        threshold = float((liability[order[n_cases - 1]] + liability[order[n_cases]]) / 2)
    else:
        threshold = float("inf") if n_cases == 0 else float("-inf")
    return binary, threshold


def yelmen_counts(n_causal: int) -> tuple[int, int, int, int]:
    """Numbers of dominant, recessive, pairwise and three-way variants in ratio 5:5:4:6.

    Pairwise counts are rounded to a multiple of 2 and three-way counts to a multiple of 3;
    the remainder goes to the dominant/recessive sets.
    """
    total = sum(YELMEN_RATIO)
    n_pair = 2 * int(round(n_causal * YELMEN_RATIO[2] / total / 2))
    n_triple = 3 * int(round(n_causal * YELMEN_RATIO[3] / total / 3))
    while n_pair + n_triple > n_causal:
        if n_triple >= 3:
            n_triple -= 3
        else:
            n_pair -= 2
    rest = n_causal - n_pair - n_triple
    n_dominant = int(np.ceil(rest / 2))
    return n_dominant, rest - n_dominant, n_pair, n_triple


def yelmen_terms(codes: np.ndarray, n_dominant: int, n_recessive: int, n_pair: int,
                 n_triple: int) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """Feature columns of the Yelmen design.

    Parameters
    ----------
    codes : ndarray, shape (n, K)
        ``x - 1`` codes of the causal variants in the order dominant, recessive, pairwise, three-way.

    Returns
    -------
    features : ndarray, shape (n, T)
        One column per term (dominant, recessive, pair, triple).
    members : list of ndarray
        Column positions (into ``codes``) of each term.
    effect_types : list of str
        ``dominant``, ``recessive``, ``pairwise`` or ``threeway`` per term.
    """
    columns, members, types = [], [], []
    start = 0
    for _ in range(n_dominant):
        columns.append((codes[:, start] >= 0).astype(float))
        members.append(np.array([start]))
        types.append("dominant")
        start += 1
    for _ in range(n_recessive):
        columns.append((codes[:, start] >= 1).astype(float))
        members.append(np.array([start]))
        types.append("recessive")
        start += 1
    for size, count, name in ((2, n_pair // 2, "pairwise"), (3, n_triple // 3, "threeway")):
        for _ in range(count):
            idx = np.arange(start, start + size)
            columns.append(np.prod(codes[:, idx], axis=1))
            members.append(idx)
            types.append(name)
            start += size
    features = np.column_stack(columns) if columns else np.zeros((codes.shape[0], 0))
    return features, members, types


def _groups(n_causal: int, order: int) -> list[np.ndarray]:
    """Consecutive groups of ``order`` positions ``0..n_causal-1``; the last may be smaller."""
    return [np.arange(s, min(s + order, n_causal)) for s in range(0, n_causal, order)]


# --------------------------------------------------------------------------------------------
# genotype access
# --------------------------------------------------------------------------------------------
def _read_causal(source: GenotypeSource, sample_index: np.ndarray, causal_index: np.ndarray,
                 block_size: int = 2000) -> np.ndarray:
    """Mean-imputed dosage of the causal variants, float64, shape (n, K), read in blocks."""
    dosage = np.empty((len(sample_index), len(causal_index)), dtype=np.float64)
    for block in source.iter_blocks(block_size, samples=sample_index, variants=causal_index,
                                    dtype=np.float64, missing="mean"):
        positions = np.searchsorted(causal_index, block.variant_index)
        dosage[:, positions] = block.dosage
    return dosage


def _choose_causal(source: GenotypeSource, sample_index: np.ndarray, n_causal: int,
                   rng: np.random.Generator, max_tries: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n_causal`` distinct polymorphic variants; returns (sorted index, dosage (n, K))."""
    m = source.n_variants
    causal = np.sort(rng.choice(m, size=n_causal, replace=False))
    dosage = _read_causal(source, sample_index, causal)
    excluded: set[int] = set()
    for _ in range(max_tries):
        mono = dosage.std(axis=0) == 0
        if not mono.any():
            return causal, dosage
        excluded.update(causal[mono].tolist())
        pool = np.setdiff1d(np.arange(m), np.r_[causal[~mono], np.fromiter(excluded, dtype=np.int64)])
        if len(pool) < mono.sum():
            break
        replacement = rng.choice(pool, size=int(mono.sum()), replace=False)
        causal = np.sort(np.r_[causal[~mono], replacement])
        dosage = _read_causal(source, sample_index, causal)
    raise InputError(f"could not find {n_causal} polymorphic variants among the {m} in the genotypes; "
                     "lower --n-causal or run deepprs qc first")


def tagging_counts(source: GenotypeSource, sample_index: np.ndarray, causal_index: np.ndarray, *,
                   window_bp: int = 500_000, r2_threshold: float = 0.5) -> np.ndarray:
    """For each causal variant, the number of *other* variants within ``window_bp`` on the same
    chromosome whose genotype r2 with it is >= ``r2_threshold``.

    Returns
    -------
    ndarray of int, shape (K,)
    """
    table = source.variant_table
    chrom = table["chrom"].astype(str).to_numpy()
    pos = table["pos"].to_numpy()
    counts = np.zeros(len(causal_index), dtype=np.int64)
    for k, j in enumerate(track(causal_index, "tagging variants of causal variants")):
        same = np.flatnonzero((chrom == chrom[j]) & (np.abs(pos - pos[j]) <= window_bp))
        others = same[same != j]
        if len(others) == 0:
            continue
        x = source.read(sample_index, np.r_[j, others], dtype=np.float64, missing="mean")
        x -= x.mean(axis=0)
        norms = np.sqrt((x**2).sum(axis=0))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (x[:, 1:].T @ x[:, 0]) / (norms[1:] * norms[0])
        counts[k] = int(np.sum(np.nan_to_num(r) ** 2 >= r2_threshold))
    return counts


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def _validate(model: str, n_causal: int, n_variants: int, h2: float | None, prevalence: float | None,
              noise_factor: float, order: int) -> None:
    if model not in MODELS:
        raise InputError(f"--model {model!r} is unknown; choose one of {', '.join(MODELS)}")
    if not 1 <= n_causal <= n_variants:
        raise InputError(f"--n-causal {n_causal} must be between 1 and the number of variants ({n_variants})")
    if model != "yelmen":
        if h2 is None:
            raise InputError(f"--h2 is required for --model {model}")
        if not 0.0 < h2 < 1.0:
            raise InputError(f"--h2 {h2} must be strictly between 0 and 1")
    elif h2 is not None and not 0.0 < h2 < 1.0:
        raise InputError(f"--h2 {h2} must be strictly between 0 and 1")
    if prevalence is not None and not 0.0 < prevalence < 1.0:
        raise InputError(f"--prevalence {prevalence} must be strictly between 0 and 1")
    if not noise_factor > 0:
        raise InputError(f"--noise-factor {noise_factor} must be > 0")
    if model == "epistasis" and order < 2:
        raise InputError(f"--order {order} must be >= 2 for --model epistasis")


def simulate_trait(genotypes: GenotypeSource | np.ndarray, *, model: str = "additive", n_causal: int,
                   h2: float | None = None, prevalence: float | None = None, noise_factor: float = 1.0,
                   order: int = 2, seed: int = 0, samples: Any = None, env: np.ndarray | None = None,
                   gxe_fraction: float = 0.5, tag_window_bp: int = 500_000,
                   tag_r2: float = 0.5) -> SimulatedTrait:
    """Simulate a phenotype with known causal variants.

    Parameters
    ----------
    genotypes
        A :class:`~deepprs.io.GenotypeSource` (or a dense samples x variants dosage matrix).
        Only the causal variants are read.
    model
        ``additive``: ``g = Z_C b``, ``b ~ N(0, 1)``, scaled so ``Var(g) = h2`` exactly in-sample,
        ``e ~ N(0, 1 - h2)``.
        ``yelmen``: codes in {-1, 0, 1}, disjoint dominant:recessive:pairwise:three-way causal sets in
        ratio 5:5:4:6, weights ``w ~ N(0, 1)``, ``e ~ N(0, noise_factor * Var(g))``; **h2 is
        ignored** (the realised h2 is ``1 / (1 + noise_factor)``).
        ``epistasis``: products of ``order`` standardised causal genotypes (Kelemen et al.), one
        term per group, weights ``N(0, 1)``, scaled to ``Var(g) = h2``.
        ``joint-tagging``: additive truth; causal variants with >= 2 other variants of r2 >= 0.5
        within 500 kb are listed in ``dropped_causal`` (drop them from the model inputs).
        ``gxe``: additive plus ``sum_j v_j z_j E`` with ``E ~ N(0, 1)`` (or ``env``), ``v ~ N(0, 1)``;
        the GxE part gets ``gxe_fraction`` of the genetic variance, total ``Var(g) = h2``.
    n_causal
        Number of causal variants (<= the number of variants).
    h2
        Heritability, strictly between 0 and 1 (required except for ``yelmen``).
    prevalence
        Fraction of cases for ``phenotype_binary`` (liability threshold on the phenotype).
    noise_factor
        ``s`` of the Yelmen design (only ``yelmen`` uses it).
    order
        Interaction order of ``epistasis``.
    seed
        Random seed.
    samples
        Sample subset (positions or bool mask) of the genotypes; default all.
    env
        Environmental covariate for ``gxe``, shape (n,); default standard normal draws.

    Returns
    -------
    SimulatedTrait

    Examples
    --------
    >>> from deepprs.simulate import simulate_genotypes, InMemoryGenotypes
    >>> source = InMemoryGenotypes(*simulate_genotypes(500, 1000, seed=1))
    >>> trait = simulate_trait(source, model="additive", n_causal=50, h2=0.5, seed=2)
    >>> round(float(trait.genetic_value.var()), 6)
    0.5
    """
    source = as_genotype_source(genotypes)
    _validate(model, n_causal, source.n_variants, h2, prevalence, noise_factor, order)
    sample_index = as_index(samples, source.n_samples, "sample")
    n = len(sample_index)
    if n < 2:
        raise InputError("need at least 2 samples to simulate a trait")
    rng = np.random.default_rng(seed)
    causal, dosage = _choose_causal(source, sample_index, n_causal, rng)
    a1_freq = dosage.mean(axis=0) / 2
    centred = dosage - 2 * a1_freq
    sd = centred.std(axis=0)
    z = centred / sd
    k = len(causal)
    effect_type = np.array(["additive"] * k, dtype=object)
    weight = np.zeros(k)
    gxe_weight = np.zeros(k)
    partners = np.array(["."] * k, dtype=object)
    table = source.variant_table.iloc[causal]
    ids = table["id"].astype(str).to_numpy()
    environment = None
    dropped: list[str] = []
    parameters: dict[str, Any] = {"model": model, "n_causal": k, "h2": h2, "seed": seed, "n_samples": n}

    if model in ("additive", "joint-tagging"):
        b = rng.standard_normal(k)
        g, factor = scale_to_variance(z @ b, h2)
        weight = b * factor / sd
        noise_var = 1.0 - h2
        if model == "joint-tagging":
            counts = tagging_counts(source, sample_index, causal, window_bp=tag_window_bp,
                                    r2_threshold=tag_r2)
            dropped = ids[counts >= 2].tolist()
            parameters.update(n_dropped=len(dropped), tag_window_bp=tag_window_bp, tag_r2=tag_r2)
    elif model == "gxe":
        if env is None:
            environment = rng.standard_normal(n)
        else:
            environment = np.asarray(env, dtype=np.float64).ravel()
            if environment.shape != (n,):
                raise InputError(f"env has {environment.size} values, expected one per sample ({n})")
        if not 0.0 <= gxe_fraction <= 1.0:
            raise InputError(f"gxe_fraction {gxe_fraction} must be in [0, 1]")
        b = rng.standard_normal(k)
        v = rng.standard_normal(k)
        additive_part = z @ b
        interaction_part = (z @ v) * environment
        c_add = np.sqrt((1.0 - gxe_fraction) / additive_part.var())
        c_int = np.sqrt(gxe_fraction / interaction_part.var())
        g, factor = scale_to_variance(c_add * additive_part + c_int * interaction_part, h2)
        weight = b * c_add * factor / sd
        gxe_weight = v * c_int * factor / sd
        effect_type[:] = "additive+gxe"
        partners[:] = "E"
        noise_var = 1.0 - h2
        parameters["gxe_fraction"] = gxe_fraction
    elif model == "epistasis":
        # random groups, so interacting variants are usually far apart (not neighbours in LD)
        perm = rng.permutation(k)
        groups = [perm[grp] for grp in _groups(k, order)]
        features = np.column_stack([np.prod(centred[:, grp], axis=1) for grp in groups])
        scale = np.array([np.prod(sd[grp]) for grp in groups])
        w = rng.standard_normal(len(groups))
        g, factor = scale_to_variance(features @ (w / scale), h2)
        for grp, w_g in zip(groups, w / scale * factor, strict=True):
            weight[grp] = w_g
            effect_type[grp] = f"epistasis{len(grp)}" if len(grp) > 1 else "additive"
            for j in grp:
                others = [ids[i] for i in grp if i != j]
                partners[j] = ",".join(others) if others else "."
        noise_var = 1.0 - h2
        parameters["order"] = order
    else:  # yelmen
        counts4 = yelmen_counts(k)
        perm = rng.permutation(k)
        codes = np.clip(dosage[:, perm] - 1.0, -1.0, 1.0)
        features, members, types = yelmen_terms(codes, *counts4)
        w = rng.standard_normal(features.shape[1])
        raw = features @ w
        g = raw - raw.mean()
        for term, members_t, type_t in zip(range(len(w)), members, types, strict=True):
            positions = perm[members_t]
            weight[positions] = w[term]
            effect_type[positions] = type_t
            for j in positions:
                others = [ids[i] for i in positions if i != j]
                partners[j] = ",".join(others) if others else "."
        noise_var = noise_factor * float(g.var())
        parameters.update(noise_factor=noise_factor, yelmen_counts=list(counts4), h2_ignored=h2 is not None)

    e = rng.standard_normal(n) * np.sqrt(noise_var)
    phenotype = g + e
    binary, threshold = (liability_threshold(phenotype, prevalence) if prevalence is not None
                         else (None, None))
    truth = pd.DataFrame({
        "ID": ids, "CHROM": table["chrom"].astype(str).to_numpy(), "POS": table["pos"].to_numpy(),
        "A1": table["a1"].astype(str).to_numpy(), "EFFECT_TYPE": effect_type, "WEIGHT": weight,
        "PARTNERS": partners, "A1_FREQ": a1_freq, "GXE_WEIGHT": gxe_weight,
        "DROPPED": np.isin(ids, dropped).astype(int),
    })
    parameters.update(noise_variance=noise_var, prevalence=prevalence,
                      realised_h2=float(g.var() / phenotype.var()))
    return SimulatedTrait(
        sample_table=source.sample_table.iloc[sample_index][["fid", "iid"]].reset_index(drop=True),
        phenotype=phenotype, phenotype_binary=binary, genetic_value=g, truth=truth,
        environment=environment, dropped_causal=dropped, threshold=threshold, parameters=parameters,
    )


def genetic_value_from_truth(truth: pd.DataFrame, dosage: np.ndarray,
                             environment: np.ndarray | None = None) -> np.ndarray:
    """Recompute the centred genetic value from a truth table (see the module docstring).

    Parameters
    ----------
    truth : DataFrame
        ``TRUTH_COLUMNS``, one row per causal variant.
    dosage : ndarray, shape (n, K)
        A1 dosage of the truth's variants, in the truth's row order (missing mean-imputed).
    environment : ndarray, shape (n,), optional
        ``E`` for rows with a non-zero ``GXE_WEIGHT``.

    Returns
    -------
    ndarray, shape (n,)
    """
    dosage = np.asarray(dosage, dtype=np.float64)
    row_of = {variant_id: i for i, variant_id in enumerate(truth["ID"].astype(str))}
    freq = truth["A1_FREQ"].to_numpy(dtype=float)
    weight = truth["WEIGHT"].to_numpy(dtype=float)
    centred = dosage - 2 * freq
    codes = dosage - 1.0
    g = np.zeros(dosage.shape[0])
    done: set[int] = set()
    for i, (kind, partners) in enumerate(zip(truth["EFFECT_TYPE"], truth["PARTNERS"], strict=True)):
        if i in done:
            continue
        members = [i] + ([row_of[p] for p in str(partners).split(",")] if partners not in (".", "E") else [])
        done.update(members)
        if kind in ("additive", "additive+gxe"):
            g += weight[i] * centred[:, i]
        elif kind.startswith("epistasis"):
            g += weight[i] * np.prod(centred[:, members], axis=1)
        elif kind == "dominant":
            g += weight[i] * (codes[:, i] >= 0)
        elif kind == "recessive":
            g += weight[i] * (codes[:, i] >= 1)
        elif kind in ("pairwise", "threeway"):
            g += weight[i] * np.prod(codes[:, members], axis=1)
        else:
            raise InputError(f"truth table: unknown EFFECT_TYPE {kind!r}")
    gxe = truth["GXE_WEIGHT"].to_numpy(dtype=float)
    if np.any(gxe != 0):
        if environment is None:
            raise InputError("truth table has GXE_WEIGHT values; pass the environment E")
        g += (centred @ gxe) * np.asarray(environment, dtype=float)
    return g - g.mean()


def write_simulated_trait(trait: SimulatedTrait, out: str | Path) -> list[Path]:
    """Write ``OUT.pheno``, ``OUT.truth.tsv``, ``OUT.gvalue.tsv`` (+ ``OUT.covar`` for gxe and
    ``OUT.dropped_causal.txt`` for joint-tagging) atomically.

    ``OUT.pheno`` has ``FID IID PHENO`` (and ``PHENO_BINARY`` 1/0 with a prevalence); the truth's
    ``A1`` is the effect allele.
    """
    out = str(out)
    ids = {"FID": trait.sample_table["fid"].to_numpy(), "IID": trait.sample_table["iid"].to_numpy()}
    pheno = pd.DataFrame({**ids, "PHENO": trait.phenotype})
    if trait.phenotype_binary is not None:
        pheno["PHENO_BINARY"] = trait.phenotype_binary.astype(int)
    written = []
    with atomic_output(f"{out}.pheno") as handle:
        pheno.to_csv(handle, sep="\t", index=False, float_format="%.8g")
    written.append(Path(f"{out}.pheno"))
    with atomic_output(f"{out}.truth.tsv") as handle:
        trait.truth[TRUTH_COLUMNS].to_csv(handle, sep="\t", index=False, float_format="%.10g")
    written.append(Path(f"{out}.truth.tsv"))
    with atomic_output(f"{out}.gvalue.tsv") as handle:
        pd.DataFrame({**ids, "GVALUE": trait.genetic_value}).to_csv(handle, sep="\t", index=False,
                                                                   float_format="%.10g")
    written.append(Path(f"{out}.gvalue.tsv"))
    if trait.environment is not None:
        with atomic_output(f"{out}.covar") as handle:
            pd.DataFrame({**ids, "E": trait.environment}).to_csv(handle, sep="\t", index=False,
                                                                float_format="%.10g")
        written.append(Path(f"{out}.covar"))
    if trait.parameters.get("model") == "joint-tagging":
        with atomic_output(f"{out}.dropped_causal.txt") as handle:
            handle.write("".join(f"{variant_id}\n" for variant_id in trait.dropped_causal))
        written.append(Path(f"{out}.dropped_causal.txt"))
    return written
