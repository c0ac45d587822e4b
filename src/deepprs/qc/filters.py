"""Sample and variant QC filters like plink2 ``--mind --geno --hwe --maf``, plus LD pruning.

Order (as in plink2): ``--mind`` first (sample call rates over all variants), then the
variant statistics are recomputed on the kept samples and ``--geno`` (missing rate > threshold),
``--hwe`` (exact P < threshold) and ``--maf`` (MAF < threshold) are applied together.
Monomorphic variants (no copy of one allele among the kept samples) always fail.
Pruning (optional) runs last, on the variants that passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource, sample_sex
from deepprs.qc.prune import ld_prune
from deepprs.qc.stats import genotype_counts, hwe_exact_pvalues, hwe_x_exact_pvalues, variant_stats
from deepprs.utils.runlog import atomic_output

VARIANT_REPORT_COLUMNS = ["ID", "CHROM", "POS", "A1", "A1_FREQ", "MISSING_RATE", "HWE_P", "PASS", "REASON"]
SAMPLE_REPORT_COLUMNS = ["FID", "IID", "MISSING_RATE", "PASS"]


@dataclass
class QCResult:
    """Outcome of :func:`run_qc`.

    Attributes
    ----------
    variant_report : DataFrame, one row per input variant
        ``VARIANT_REPORT_COLUMNS`` (+ ``AX``, counts); statistics on the samples that passed ``--mind``.
        ``REASON`` lists every failed filter (``geno;maf``), ``.`` when passed.
    sample_report : DataFrame, one row per input sample
        ``FID IID MISSING_RATE PASS``.
    prune_in : ndarray of bool, shape (n_variants,) or None
        Kept by LD pruning (only variants that passed QC can be kept).
    summary : dict
        Counts before/after and removed per filter (written to ``OUT.qc.json``).
    """

    variant_report: pd.DataFrame
    sample_report: pd.DataFrame
    prune_in: np.ndarray | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def variant_pass(self) -> np.ndarray:
        return self.variant_report["PASS"].to_numpy(dtype=bool)

    @property
    def sample_pass(self) -> np.ndarray:
        return self.sample_report["PASS"].to_numpy(dtype=bool)


def _check_threshold(value: float | None, flag: str, upper: float = 1.0) -> None:
    if value is not None and not 0.0 <= value <= upper:
        raise InputError(f"{flag} {value} must be between 0 and {upper}")


def run_qc(genotypes: GenotypeSource, *, maf: float | None = None, geno: float | None = None,
           mind: float | None = None, hwe: float | None = None, hwe_midp: bool = False,
           indep_pairwise: dict[str, Any] | None = None, block_size: int = 4096) -> QCResult:
    """Run sample and variant QC (and optional LD pruning).

    Parameters
    ----------
    genotypes
        Genotype source.
    maf
        Remove variants with minor allele frequency < ``maf``.
    geno
        Remove variants with missing call rate > ``geno``.
    mind
        Remove samples with missing call rate > ``mind`` (over all variants).
    hwe
        Remove variants with Hardy-Weinberg exact P < ``hwe``.

    ``--maf``, ``--geno`` and ``--hwe`` and the report's ``A1_FREQ``, ``MISSING_RATE`` and ``HWE_P``
    use plink2's statistics (:func:`filter_statistics`) over the samples that pass ``--mind``:
    frequencies and HWE over the founders, chrX males counted once and tested with the females
    (Graffelman & Weir), chrY from the males only and not HWE-tested. The report's genotype counts
    (``HOM_A1_CT``, ...) are :func:`~deepprs.qc.stats.variant_stats`'s diploid counts.
    hwe_midp
        Use the mid-p HWE test.
    indep_pairwise
        Keywords for :func:`deepprs.qc.prune.ld_prune` (``window``, ``window_kb``, ``step``,
        ``r2_threshold``); pruning uses the samples and variants that passed.

    Returns
    -------
    QCResult
    """
    _check_threshold(maf, "--maf", 0.5)
    _check_threshold(geno, "--geno")
    _check_threshold(mind, "--mind")
    _check_threshold(hwe, "--hwe")
    n, m = genotypes.n_samples, genotypes.n_variants
    samples = genotypes.sample_table
    # one pass over every sample: their missing rates, and the variants' counts when all samples stay
    counts = genotype_counts(genotypes, block_size=block_size)
    sample_missing_rate = counts.sample_missing / max(m, 1)
    sample_pass = np.ones(n, dtype=bool) if mind is None else sample_missing_rate <= mind
    if not sample_pass.any():
        raise InputError(f"--mind {mind} removes all {n} samples; raise the threshold")
    kept_samples = np.flatnonzero(sample_pass)
    stats = variant_stats(genotypes, samples=kept_samples, block_size=block_size, hwe=False,
                          counts=counts if sample_pass.all() else None)
    # the filtered (and reported) frequency, missing rate and HWE P are plink2's: founders, chrX males
    # counted once, chrY males only (the genotype counts stay the diploid counts of every kept sample)
    plink = filter_statistics(genotypes, kept_samples, np.arange(m), block_size=block_size, hwe=True,
                              hwe_midp=hwe_midp)
    for column in ("A1_FREQ", "MISSING_RATE", "HWE_P"):
        stats[column] = plink[column].to_numpy()
    minor = plink["MINOR_FREQ"].to_numpy()  # NaN without founder calls: --maf keeps the variant, as plink2
    # deepprs's own "monomorphic" rule looks at every kept sample's calls (a variant that varies only
    # among non-founders is not monomorphic): from the counts, not 1 - frequency
    a1_count = 2 * stats["HOM_A1_CT"].to_numpy() + stats["HET_CT"].to_numpy()
    total = 2 * stats["OBS_CT"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        minor_all = np.minimum(a1_count, total - a1_count) / total
    reasons: dict[str, np.ndarray] = {}
    if geno is not None:
        reasons["geno"] = stats["MISSING_RATE"].to_numpy() > geno
    if hwe is not None:
        reasons["hwe"] = stats["HWE_P"].to_numpy() < hwe
    if maf is not None:
        reasons["maf"] = minor < maf          # (as plink2: a variant without calls is not a --maf failure)
    reasons["monomorphic"] = ~(minor_all > 0)  # no call, or one allele only: dropped by deepprs qc
    fail = np.zeros(m, dtype=bool)
    reason_text = np.full(m, "", dtype=object)
    for name, mask in reasons.items():
        fail |= mask
        reason_text = np.where(mask, np.where(reason_text == "", name, reason_text + ";" + name), reason_text)
    reason_text = np.where(reason_text == "", ".", reason_text)
    variant_report = stats.copy()
    variant_report["PASS"] = (~fail).astype(int)
    variant_report["REASON"] = reason_text
    variant_report = variant_report[VARIANT_REPORT_COLUMNS + [c for c in variant_report.columns
                                                              if c not in VARIANT_REPORT_COLUMNS]]
    sample_report = pd.DataFrame({"FID": samples["fid"].to_numpy(), "IID": samples["iid"].to_numpy(),
                                  "MISSING_RATE": sample_missing_rate, "PASS": sample_pass.astype(int)})
    summary: dict[str, Any] = {
        "n_samples_before": int(n), "n_samples_after": int(sample_pass.sum()),
        "n_variants_before": int(m), "n_variants_after": int((~fail).sum()),
        "samples_removed": {"mind": int((~sample_pass).sum())},
        "variants_removed": {name: int(mask.sum()) for name, mask in reasons.items()},
        "variants_removed_total": int(fail.sum()),
        "thresholds": {"maf": maf, "geno": geno, "mind": mind, "hwe": hwe, "hwe_midp": hwe_midp},
    }
    prune_in = None
    if indep_pairwise is not None:
        passed = np.flatnonzero(~fail)
        prune_in = np.zeros(m, dtype=bool)
        if len(passed):
            prune_in[passed] = ld_prune(genotypes, samples=np.flatnonzero(sample_pass), variants=passed,
                                        **indep_pairwise)
        summary["indep_pairwise"] = {**indep_pairwise, "n_prune_in": int(prune_in.sum()),
                                     "n_prune_out": int(len(passed) - prune_in.sum())}
    return QCResult(variant_report, sample_report, prune_in, summary)


def write_qc(result: QCResult, out: str | Path) -> list[Path]:
    """Write ``OUT.qc.variants.tsv``, ``OUT.qc.samples.tsv``, ``OUT.qc.json`` and, after pruning,
    ``OUT.prune.in`` / ``OUT.prune.out`` (IDs of QC-passing variants kept / removed by pruning)."""
    import json

    out = str(out)
    written = []
    with atomic_output(f"{out}.qc.variants.tsv") as handle:
        result.variant_report[VARIANT_REPORT_COLUMNS].to_csv(handle, sep="\t", index=False,
                                                             float_format="%.6g")
    written.append(Path(f"{out}.qc.variants.tsv"))
    with atomic_output(f"{out}.qc.samples.tsv") as handle:
        result.sample_report[SAMPLE_REPORT_COLUMNS].to_csv(handle, sep="\t", index=False, float_format="%.6g")
    written.append(Path(f"{out}.qc.samples.tsv"))
    if result.prune_in is not None:
        ids = result.variant_report["ID"].astype(str).to_numpy()
        passed = result.variant_pass
        with atomic_output(f"{out}.prune.in") as handle:
            handle.write("".join(f"{v}\n" for v in ids[result.prune_in]))
        with atomic_output(f"{out}.prune.out") as handle:
            handle.write("".join(f"{v}\n" for v in ids[passed & ~result.prune_in]))
        written += [Path(f"{out}.prune.in"), Path(f"{out}.prune.out")]
    with atomic_output(f"{out}.qc.json") as handle:
        json.dump(result.summary, handle, indent=2)
        handle.write("\n")
    written.append(Path(f"{out}.qc.json"))
    return written


def write_filtered_bed(genotypes: GenotypeSource, result: QCResult, out: str | Path, *,
                       use_prune: bool = False, block_size: int = 4096) -> None:
    """Write ``OUT.bed/.bim/.fam`` with the samples and variants that passed (and the pruned-in
    variants when ``use_prune``).

    .. warning:: materialises an int8 matrix of the kept samples x kept variants.
    """
    from deepprs.io.bed import write_bed

    keep_variants = result.variant_pass & (result.prune_in if use_prune and result.prune_in is not None
                                           else True)
    sample_index = np.flatnonzero(result.sample_pass)
    variant_index = np.flatnonzero(keep_variants)
    dosage = np.empty((len(sample_index), len(variant_index)), dtype=np.int8)
    start = 0
    for block in genotypes.iter_blocks(block_size, samples=sample_index, variants=variant_index,
                                       dtype=np.int8, missing="raw"):
        dosage[:, start:start + block.dosage.shape[1]] = block.dosage
        start += block.dosage.shape[1]
    write_bed(out, dosage, genotypes.sample_table.iloc[sample_index].reset_index(drop=True),
              genotypes.variant_table.iloc[variant_index].reset_index(drop=True))


def select_samples(genotypes: GenotypeSource, *, keep: str | Path | None = None,
                   remove: str | Path | None = None) -> np.ndarray:
    """Positions of the samples kept by ``--keep`` / ``--remove`` files (FID IID per line, or IIDs)."""
    from deepprs.io.tables import in_sample_list, read_sample_list

    ids = genotypes.sample_ids
    mask = np.ones(len(ids), dtype=bool)
    if keep is not None:
        mask &= in_sample_list(ids, read_sample_list(keep, "--keep"))
    if remove is not None:
        mask &= ~in_sample_list(ids, read_sample_list(remove, "--remove"))
    if not mask.any():
        raise InputError("no samples left after --keep/--remove; check the FID IID columns of those files")
    return np.flatnonzero(mask)


def restrict_samples(genotypes: GenotypeSource, *, keep: str | Path | None = None,
                     remove: str | Path | None = None) -> GenotypeSource:
    """The source itself, or a :class:`~deepprs.io.genotypes.SampleSubset` view for ``--keep``/``--remove``."""
    if keep is None and remove is None:
        return genotypes
    from deepprs.io.genotypes import SampleSubset

    return SampleSubset(genotypes, select_samples(genotypes, keep=keep, remove=remove))


def _variant_id_list(path: str | Path, flag: str) -> set[str]:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{flag} file {path} does not exist")
    return {line.split()[0] for line in path.read_text().splitlines() if line.strip()}


def select_variants(genotypes: GenotypeSource, extract: str | Path | None = None,
                    exclude: str | Path | None = None) -> np.ndarray:
    """Positions of the variants listed in an ``--extract`` file and not in an ``--exclude`` file
    (first column = variant ID)."""
    ids = genotypes.variant_table["id"].astype(str)
    mask = np.ones(genotypes.n_variants, dtype=bool)
    if extract is not None:
        wanted = _variant_id_list(extract, "--extract")
        mask &= ids.isin(wanted).to_numpy()
        if not mask.any():
            raise InputError(f"--extract {extract}: none of its {len(wanted)} IDs are in the genotype file")
    if exclude is not None:
        mask &= ~ids.isin(_variant_id_list(exclude, "--exclude")).to_numpy()
    return np.flatnonzero(mask)


def parse_chromosomes(spec: str) -> set[str]:
    """plink2 ``--chr`` lists: comma-separated codes and numeric ranges (``1-4,22,X``), returned in
    plink2's output spelling (``chr`` prefix dropped; 23/24/25/26 -> X/Y/XY/MT)."""
    from deepprs.assoc.design import plink_chromosome

    codes: list[str] = []
    for part in (piece.strip() for piece in spec.split(",")):
        if not part:
            continue
        low, sep, high = part.partition("-")
        if sep and not (low.strip().isdigit() and high.strip().isdigit()):
            raise InputError(f"--chr {spec}: ranges must be numeric (e.g. 1-22); list other codes one by one "
                             "(e.g. 1-22,X,Y)")
        if sep:
            if int(low) > int(high):
                raise InputError(f"--chr {spec}: range {part} runs backwards")
            codes.extend(str(code) for code in range(int(low), int(high) + 1))
        else:
            codes.append(part)
    if not codes:
        raise InputError("--chr needs at least one chromosome code (e.g. --chr 1-22,X)")
    return set(plink_chromosome(np.array(codes)).tolist())


HARD_CALL_THRESHOLD = 0.1  # plink2's --hard-call-threshold default


def filter_statistics(genotypes: GenotypeSource, samples: np.ndarray, variants: np.ndarray,
                      block_size: int = 4096, *, hwe: bool = True, hwe_midp: bool = False) -> pd.DataFrame:
    """The per-variant statistics plink2's ``--geno``, ``--maf`` and ``--hwe`` use, computed as plink2
    2.00 does (checked against its ``--missing``, ``--freq`` and ``--hardy`` outputs).

    - ``MISSING_RATE`` over ``samples`` (chrY: their males only).
    - ``A1_FREQ`` over the founders among ``samples`` (no father or mother ID), from dosages: chrX
      counts a male's call as one allele (dosage / 2) and samples of unknown sex as female; chrY uses
      the males only; other chromosomes are diploid.
    - ``HWE_P``: exact test over the founders' hard calls: autosomes and XY as diploid; chrX with
      plink2's test including males (:func:`~deepprs.qc.stats.hwe_x_exact_pvalues`, Graffelman & Weir
      2016) over the founder females (sex 2) and the founder males' hemizygous calls (sex 1; a
      heterozygous male call counts as missing, samples of unknown sex are left out: plink2's
      ``.hardy.x`` counts); NaN on chrY and chrM, which plink2 does not test; all NaN with
      ``hwe=False`` (the exact test is most of the cost); mid-p with ``hwe_midp``.

    Dosage data (BGEN, dosage .pgen) give hard calls as plink2 does: a dosage within 0.1 of 0, 1 or 2
    is that call, else the call is missing (``--geno``, ``--hwe``); frequencies use the dosages.
    Hard-call data are counted per sample group (``.bed``: bit-parallel on the packed bytes).

    Returns
    -------
    DataFrame with columns ``MISSING_RATE A1_FREQ MINOR_FREQ HWE_P``, one row per entry of ``variants``
    (NaN where there is nothing to count: plink2's filters then keep the variant)
    """
    from deepprs.assoc.design import CHR_X, CHR_Y, chromosome_class

    samples = np.asarray(samples, dtype=np.int64)
    variants = np.asarray(variants, dtype=np.int64)
    table = genotypes.sample_table.iloc[samples]
    sex = sample_sex(genotypes, samples)
    male = sex == 1
    founder = np.ones(len(samples), dtype=bool)
    for parent in ("father", "mother"):
        if parent in table:
            founder &= (table[parent].astype(str) == "0").to_numpy()
    groups = {"all": np.ones(len(samples), dtype=bool), "male": male, "founder_other": founder & ~male,
              "founder_male": founder & male}
    kind = chromosome_class(genotypes.variant_table["chrom"].to_numpy()[variants])
    test_x = hwe & bool((kind == CHR_X).any())
    if test_x:   # chrX's test counts females apart from the samples of unknown sex
        groups["founder_female"] = founder & (sex == 2)
    dosage_data = bool(getattr(genotypes, "may_have_dosages", False))
    if dosage_data:
        sums = _dosage_group_sums(genotypes, samples, variants, groups, block_size)
    else:
        sums = _hard_call_group_sums(genotypes, samples, variants, groups, block_size)
    not_observed = "dosage_missing" if dosage_data else "missing"  # for the frequencies
    with np.errstate(invalid="ignore", divide="ignore"):
        size = {name: float(mask.sum()) for name, mask in groups.items()}
        missing_rate = np.where(kind == CHR_Y, sums["male"]["missing"] / size["male"],
                                sums["all"]["missing"] / size["all"])
        other, males = sums["founder_other"], sums["founder_male"]
        other_observed = size["founder_other"] - other[not_observed]
        male_observed = size["founder_male"] - males[not_observed]
        # A1 allele count and allele total: diploid; chrX with a male call as one allele; chrY males
        a1_count = np.where(kind == CHR_X, other["a1"] + males["a1"] / 2,
                            np.where(kind == CHR_Y, males["a1"], other["a1"] + males["a1"]))
        total = np.where(kind == CHR_X, 2 * other_observed + male_observed,
                         np.where(kind == CHR_Y, 2 * male_observed, 2 * (other_observed + male_observed)))
        a1_freq = a1_count / total
        # from the counts, not 1 - A1_FREQ: 1 - 0.9 < 0.1 in floating point
        minor_freq = np.minimum(a1_count, total - a1_count) / total
    hom_a1 = other["hom_a1"] + males["hom_a1"]
    het = other["het"] + males["het"]
    called = size["founder_other"] - other["missing"] + size["founder_male"] - males["missing"]
    hwe_p = np.full(len(variants), np.nan)
    tested = (kind == "") & hwe
    if tested.any():
        hom_other = called[tested] - hom_a1[tested] - het[tested]
        hwe_p[tested] = hwe_exact_pvalues(hom_a1[tested].astype(np.int64), het[tested].astype(np.int64),
                                          hom_other.astype(np.int64), midp=hwe_midp)
    on_x = (kind == CHR_X) & test_x
    if on_x.any():
        females = sums["founder_female"]
        female_called = size["founder_female"] - females["missing"][on_x]
        male_called = size["founder_male"] - males["missing"][on_x]
        female_hom_a1, female_het = females["hom_a1"][on_x], females["het"][on_x]
        male_a1 = males["hom_a1"][on_x]
        hwe_p[on_x] = hwe_x_exact_pvalues(
            female_hom_a1.astype(np.int64), female_het.astype(np.int64),
            (female_called - female_hom_a1 - female_het).astype(np.int64),
            male_a1.astype(np.int64), (male_called - male_a1 - males["het"][on_x]).astype(np.int64),
            midp=hwe_midp)
    return pd.DataFrame({"MISSING_RATE": missing_rate, "A1_FREQ": a1_freq, "MINOR_FREQ": minor_freq, "HWE_P": hwe_p})


def _hard_call_group_sums(genotypes: GenotypeSource, samples: np.ndarray, variants: np.ndarray,
                          groups: dict[str, np.ndarray], block_size: int) -> dict[str, dict[str, np.ndarray]]:
    """Per group of ``samples``: homozygous-A1, heterozygous and missing call counts and A1 allele
    counts per variant (``.bed``: popcounts on the packed bytes; others: int8 reads).

    The groups overlap (all samples, males, founders by sex), so the calls are counted once per
    *atom*, the samples sharing one pattern of group memberships (e.g. founder males), and each
    group's counts are the sum of its atoms': 2 passes over the data where the 4 groups of a cohort
    of founders needed 4.
    """
    from deepprs.assoc.bedscan import as_words, exclusion_mask, genotype_word_counts, mask_words
    from deepprs.assoc.blocks import read_packed
    from deepprs.io.bed import BedReader

    m = len(variants)
    names = list(groups)
    membership = np.column_stack([np.asarray(groups[name], dtype=bool) for name in names])   # (n, groups)
    patterns, atom_of_sample = np.unique(membership, axis=0, return_inverse=True)
    atom_of_sample = atom_of_sample.ravel()
    atoms = [a for a in range(len(patterns)) if patterns[a].any()]  # (samples in no group: not counted)
    in_atom = {a: atom_of_sample == a for a in atoms}
    keys = ("hom_a1", "het", "missing")
    atom_sums = {a: {key: np.zeros(m) for key in keys} for a in atoms}
    if isinstance(genotypes, BedReader):
        width = genotypes.bytes_per_variant * 4
        or_words = {}
        for a in atoms:
            weight = np.zeros(width)
            weight[samples[in_atom[a]]] = 1.0
            or_words[a] = mask_words(exclusion_mask(weight))
        rows = np.empty((min(block_size, m), genotypes.bytes_per_variant), dtype=np.uint8)  # (reused)
        for start in range(0, m, block_size):
            index = variants[start : start + block_size]
            words = as_words(read_packed(genotypes, index, rows[: len(index)]))
            for a in atoms:
                counts = genotype_word_counts(words, or_words[a])
                for key, value in zip(keys, counts, strict=True):
                    atom_sums[a][key][start : start + len(value)] = value
    else:
        for start in range(0, m, block_size):
            calls = genotypes.read(samples, variants[start : start + block_size], dtype=np.int8, missing="raw")
            stop = start + calls.shape[1]
            for a in atoms:
                part = calls[in_atom[a]]
                atom_sums[a]["hom_a1"][start:stop] = (part == 2).sum(axis=0)
                atom_sums[a]["het"][start:stop] = (part == 1).sum(axis=0)
                atom_sums[a]["missing"][start:stop] = (part < 0).sum(axis=0)
    sums = {}
    for g, name in enumerate(names):
        members = [a for a in atoms if patterns[a, g]]
        sums[name] = {key: sum((atom_sums[a][key] for a in members), np.zeros(m)) for key in keys}
        sums[name]["a1"] = 2 * sums[name]["hom_a1"] + sums[name]["het"]
    return sums


def _dosage_group_sums(genotypes: GenotypeSource, samples: np.ndarray, variants: np.ndarray,
                       groups: dict[str, np.ndarray], block_size: int) -> dict[str, dict[str, np.ndarray]]:
    """:func:`_hard_call_group_sums` for dosage data: A1 counts from the dosages, the call counts
    from plink2's hard calls (a dosage within 0.1 of 0, 1 or 2; else missing). A dosage too uncertain
    for a hard call still counts in ``a1``, so the missing dosages are counted apart
    (``dosage_missing``, the frequencies' denominator)."""
    m = len(variants)
    keys = ("hom_a1", "het", "missing", "a1", "dosage_missing")
    sums = {name: {key: np.zeros(m) for key in keys} for name in groups}
    start = 0
    for block in genotypes.iter_blocks(block_size, samples=samples, variants=variants, dtype=np.float64,
                                       missing="nan"):
        dosage = block.dosage                                               # (n, b), NaN = missing
        stop = start + dosage.shape[1]
        nearest = np.rint(dosage)
        hard = np.where(np.abs(dosage - nearest) <= HARD_CALL_THRESHOLD, nearest, np.nan)
        for name, mask in groups.items():
            part, calls = dosage[mask], hard[mask]
            sums[name]["a1"][start:stop] = np.nansum(part, axis=0)
            sums[name]["dosage_missing"][start:stop] = np.isnan(part).sum(axis=0)
            sums[name]["hom_a1"][start:stop] = (calls == 2).sum(axis=0)
            sums[name]["het"][start:stop] = (calls == 1).sum(axis=0)
            sums[name]["missing"][start:stop] = np.isnan(calls).sum(axis=0)
        start = stop
    return sums


@dataclass
class VariantFilter:
    """plink2's variant filters of an analysis run (``--extract --exclude --chr --maf --geno --hwe``).

    ``--maf``, ``--geno`` and ``--hwe`` use :func:`filter_statistics` over the samples given to
    :meth:`apply` (plink2 uses every sample left after ``--keep``/``--remove``, phenotyped or not;
    the founders among them for ``--maf`` and ``--hwe``). ``--hwe`` tests chrX with plink2's exact
    test including males (Graffelman & Weir 2016) and leaves chrY and chrM variants in (plink2 does
    not test them).
    """

    extract: str | Path | None = None
    exclude: str | Path | None = None
    chromosomes: str | None = None
    maf: float | None = None
    geno: float | None = None
    hwe: float | None = None

    @property
    def active(self) -> bool:
        return any(value is not None for value in (self.extract, self.exclude, self.chromosomes, self.maf,
                                                   self.geno, self.hwe))

    def apply(self, genotypes: GenotypeSource, samples: np.ndarray,
              block_size: int = 4096) -> tuple[np.ndarray, dict[str, int]]:
        """Positions of the variants that pass, and how many each filter removed (in plink2's order:
        a variant counts under the first filter it fails)."""
        from deepprs.assoc.design import plink_chromosome

        _check_threshold(self.maf, "--maf", 0.5)
        _check_threshold(self.geno, "--geno")
        _check_threshold(self.hwe, "--hwe")
        removed: dict[str, int] = {}
        index = select_variants(genotypes, self.extract, self.exclude)
        removed["extract/exclude"] = genotypes.n_variants - len(index)
        if self.chromosomes is not None:
            wanted = parse_chromosomes(self.chromosomes)
            on = np.isin(plink_chromosome(genotypes.variant_table["chrom"].to_numpy()[index]), list(wanted))
            removed["chr"] = int((~on).sum())
            index = index[on]
        if len(index) and any(value is not None for value in (self.maf, self.geno, self.hwe)):
            stats = filter_statistics(genotypes, samples, index, block_size=block_size, hwe=self.hwe is not None)
            fail = np.zeros(len(index), dtype=bool)
            if self.geno is not None:
                mask = stats["MISSING_RATE"].to_numpy() > self.geno
                removed["geno"] = int(mask.sum())
                fail |= mask
            if self.hwe is not None:
                mask = ~fail & (stats["HWE_P"].to_numpy() < self.hwe)
                removed["hwe"] = int(mask.sum())
                fail |= mask
            if self.maf is not None:  # as plink2: a variant without founder calls (NaN) passes
                mask = ~fail & (stats["MINOR_FREQ"].to_numpy() < self.maf)
                removed["maf"] = int(mask.sum())
                fail |= mask
            index = index[~fail]
        if len(index) == 0:
            raise InputError(f"no variants left after the variant filters ({describe_removed(removed)})")
        return index, removed


def describe_removed(removed: dict[str, int]) -> str:
    """'3 by --geno, 120 by --maf' (filters that removed something)."""
    parts = [f"{count} by --{name}" for name, count in removed.items() if count]
    return ", ".join(parts) if parts else "none removed"
