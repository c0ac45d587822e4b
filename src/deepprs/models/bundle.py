"""Model bundles: a fitted PRS model on disk, and scoring new genotypes with it.

A bundle is a directory::

    model.safetensors   fitted arrays (``model.state_dict()``)
    model.json          model name, hyper-parameters, fitted metadata, deepprs version,
                        effect-allele convention, training info
    variants.tsv        ID CHROM POS A1 REF ALT CENTER  (A1 = effect/counted allele;
                        CENTER = training mean dosage of A1, used for missing genotypes)
    provenance.json     what produced the bundle

Nothing is pickled.  Scoring matches the bundle's variants to the target genotypes by ID and
alleles (:func:`match_variants`): same alleles -> used as is; swapped -> dosage flipped
(2 - dosage); strand-ambiguous A/T or C/G pairs, absent IDs and allele mismatches -> dropped
(scored as missing, i.e. at the training mean, contributing 0 to a linear score).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource, open_genotypes
from deepprs.io.packed import PackedGenotypes
from deepprs.models.base import PRSModel, make_model
from deepprs.utils.runlog import atomic_output, atomic_path, current_run

BUNDLE_FORMAT = 1
EFFECT_ALLELE_CONVENTION = (
    "A1 in variants.tsv is the effect (counted) allele: the model's dosage counts "
    "copies of A1; REF is the other allele; coef_ is per copy of A1"
)
VARIANT_COLUMNS = ["ID", "CHROM", "POS", "A1", "REF", "ALT", "CENTER"]
_COMPLEMENT = {"A": "T", "T": "A", "C": "G", "G": "C"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def bundle_variant_table(variant_table: pd.DataFrame, center: np.ndarray | None) -> pd.DataFrame:
    """Bundle variant table (ID CHROM POS A1 REF ALT CENTER) from a genotype ``variant_table``."""
    table = pd.DataFrame(
        {
            "ID": variant_table["id"].astype(str).to_numpy(),
            "CHROM": variant_table["chrom"].astype(str).to_numpy(),
            "POS": variant_table["pos"].astype(np.int64).to_numpy(),
            "A1": variant_table["a1"].astype(str).to_numpy(),
            "REF": variant_table["ref"].astype(str).to_numpy(),
            "ALT": variant_table["alt"].astype(str).to_numpy(),
        }
    )
    table["CENTER"] = np.nan if center is None else np.asarray(center, dtype=np.float64)
    return table


def save_model(
    model: PRSModel,
    directory: str | Path,
    *,
    variant_table: pd.DataFrame,
    training_info: dict[str, Any] | None = None,
    features: list | None = None,
) -> Path:
    """Write a fitted model as a bundle directory (files appear atomically).

    Parameters
    ----------
    model
        Fitted :class:`PRSModel`.
    variant_table
        The training genotypes' variant table (``chrom pos id ref alt a1``), one row per model
        input variant, in model order; or an already formatted bundle table (``ID ... CENTER``).
    training_info
        JSON-serialisable facts about the fit (phenotype name, sample count, seed, ...).
    features
        Extra inputs the model was trained with after the user's covariates
        (:class:`deepprs.evaluate.features.FeatureScore`, in column order): each is saved as
        ``feature<i>.tsv`` (``ID A1 BETA``) so that :func:`predict_from_bundle` rebuilds it.
    """
    from safetensors.torch import save_file

    from deepprs import __version__

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if "ID" in variant_table.columns:
        table = variant_table[VARIANT_COLUMNS].copy()
    else:
        table = bundle_variant_table(variant_table, getattr(model, "center_", None))
    n_inputs = getattr(model, "n_features_in_", None)
    if n_inputs is not None and int(n_inputs) != len(table):
        raise InputError(f"model has {n_inputs} input variants but the variant table {len(table)} rows")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    record = {
        "bundle_format": BUNDLE_FORMAT,
        "model": model.name,
        "is_linear": bool(model.is_linear),
        "params": _jsonable(model.get_params()),
        "extra_metadata": _jsonable(model.extra_metadata()),
        "deepprs_version": __version__,
        "effect_allele": EFFECT_ALLELE_CONVENTION,
        "n_variants": int(len(table)),
        "training_info": _jsonable(training_info or {}),
        "features": [
            {"name": feature.name, "file": f"feature{i}.tsv", "offset": float(feature.offset)}
            for i, feature in enumerate(features or [])
        ],
    }
    for i, feature in enumerate(features or []):
        with atomic_output(directory / f"feature{i}.tsv") as handle:
            feature.weights[["ID", "A1", "BETA"]].to_csv(handle, sep="\t", index=False, float_format="%.12g")
    with atomic_output(directory / "model.json") as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    with atomic_output(directory / "variants.tsv") as handle:
        table.to_csv(handle, sep="\t", index=False, float_format="%.10g")
    provenance = {
        "software": "deepprs",
        "version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "model": model.name,
        "training_info": _jsonable(training_info or {}),
    }
    with atomic_output(directory / "provenance.json") as handle:
        json.dump(provenance, handle, indent=2)
        handle.write("\n")
    return directory


def read_bundle_record(directory: str | Path) -> dict[str, Any]:
    """The parsed ``model.json`` of a bundle (with a clear error when absent)."""
    path = Path(directory) / "model.json"
    if not path.exists():
        raise InputError(f"--model {directory}: no model.json there; give a directory written by 'deepprs fit'")
    return json.loads(path.read_text())


def load_model(directory: str | Path) -> tuple[PRSModel, pd.DataFrame]:
    """Load a bundle: ``make_model(name, **params).load_state_dict(...)``.

    Returns
    -------
    model, variant_table (ID CHROM POS A1 REF ALT CENTER)
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    record = read_bundle_record(directory)
    weights = directory / "model.safetensors"
    if not weights.exists():
        raise InputError(f"--model {directory}: model.safetensors is missing; the bundle is incomplete")
    model = make_model(record["model"], **record.get("params", {}))
    model.load_state_dict(load_file(str(weights)), record.get("extra_metadata", {}))
    table = pd.read_csv(
        directory / "variants.tsv",
        sep="\t",
        dtype={"ID": str, "CHROM": str, "A1": str, "REF": str, "ALT": str},
        keep_default_na=False,
        na_values={"CENTER": ["nan", "NaN", "NA"]},
    )
    return model, table


def load_features(directory: str | Path) -> list:
    """The extra inputs saved with a bundle (:class:`deepprs.evaluate.features.FeatureScore` list)."""
    from deepprs.evaluate.features import FeatureScore, read_score_weights

    directory = Path(directory)
    features = []
    for entry in read_bundle_record(directory).get("features", []):
        path = directory / entry["file"]
        if not path.exists():
            raise InputError(f"--model {directory}: {entry['file']} is missing; the bundle is incomplete")
        features.append(FeatureScore(entry["name"], read_score_weights(path), float(entry.get("offset", 0.0))))
    return features


def _is_ambiguous(a: str, b: str) -> bool:
    return _COMPLEMENT.get(a.upper()) == b.upper()


def match_variants(
    model_variants: pd.DataFrame, target_variant_table: pd.DataFrame, *, keep_ambiguous: bool = False
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Match bundle variants to a target genotype file by ID and alleles.

    Parameters
    ----------
    model_variants
        Bundle table with ``ID A1 REF`` (A1 = effect allele).
    target_variant_table
        Target genotype ``variant_table`` (``id a1 ref``; dosages count ``a1``).
    keep_ambiguous
        Keep strand-ambiguous (A/T, C/G) variants whose alleles match in the *same*
        orientation (safe when the target file comes from the same genotyping/strand as the
        training data); swapped ambiguous variants are always dropped.

    Returns
    -------
    target_index : ndarray of int, shape (n_model,)
        Row of the target variant table per model variant; -1 where dropped.
    flip_mask : ndarray of bool, shape (n_model,)
        True where the target counts the other allele (use ``2 - dosage``).
    report : dict
        Counts: ``n_model``, ``matched``, ``flipped``, ``ambiguous_dropped``, ``absent``,
        ``allele_mismatch``, ``duplicate_target_id``.
    """
    ids = model_variants["ID"].astype(str).to_numpy()
    a1 = model_variants["A1"].astype(str).str.upper().to_numpy()
    other = model_variants["REF"].astype(str).str.upper().to_numpy()
    target_ids = target_variant_table["id"].astype(str)
    duplicated = target_ids.duplicated(keep=False).to_numpy()
    position = pd.Series(np.arange(len(target_ids)), index=target_ids.to_numpy())
    position = position[~position.index.duplicated(keep="first")]
    found = position.reindex(ids)
    target_index = np.full(len(ids), -1, dtype=np.int64)
    flip_mask = np.zeros(len(ids), dtype=bool)
    report = {
        "n_model": int(len(ids)),
        "matched": 0,
        "flipped": 0,
        "ambiguous_dropped": 0,
        "absent": 0,
        "allele_mismatch": 0,
        "duplicate_target_id": 0,
    }
    t_a1 = target_variant_table["a1"].astype(str).str.upper().to_numpy()
    t_ref = target_variant_table["ref"].astype(str).str.upper().to_numpy()
    for i, row in enumerate(found.to_numpy()):
        if np.isnan(row):
            report["absent"] += 1
            continue
        row = int(row)
        if duplicated[row]:
            report["duplicate_target_id"] += 1
            continue
        if _is_ambiguous(a1[i], other[i]) and not (keep_ambiguous and t_a1[row] == a1[i] and t_ref[row] == other[i]):
            report["ambiguous_dropped"] += 1
            continue
        if t_a1[row] == a1[i] and t_ref[row] == other[i]:
            target_index[i] = row
        elif t_a1[row] == other[i] and t_ref[row] == a1[i]:
            target_index[i] = row
            flip_mask[i] = True
            report["flipped"] += 1
        else:
            report["allele_mismatch"] += 1
            continue
        report["matched"] += 1
    return target_index, flip_mask, report


def format_match_report(report: dict[str, int]) -> str:
    return (
        f"variant matching: {report['matched']} of {report['n_model']} model variants used "
        f"({report['flipped']} allele-flipped); dropped {report['ambiguous_dropped']} strand-ambiguous, "
        f"{report['absent']} absent, {report['allele_mismatch']} allele mismatch, "
        f"{report['duplicate_target_id']} duplicate target ID"
    )


def aligned_genotypes(
    source: GenotypeSource,
    target_index: np.ndarray,
    flip_mask: np.ndarray,
    *,
    samples: np.ndarray | None = None,
    block_size: int = 4096,
) -> PackedGenotypes:
    """Target genotypes re-ordered to the model's variants, effect allele counted, dropped = missing.

    Returns
    -------
    PackedGenotypes, shape (n_samples, n_model_variants)
    """
    sample_index = np.arange(source.n_samples) if samples is None else np.asarray(samples, dtype=np.int64)
    n, m = len(sample_index), len(target_index)
    packed = np.empty((n, (m + 3) // 4), dtype=np.uint8)
    from deepprs.io.packed import pack_dosage

    block_size = max(4, block_size - block_size % 4)
    for start in range(0, m, block_size):
        stop = min(start + block_size, m)
        block_rows = target_index[start:stop]
        dosage = np.full((n, stop - start), -1, dtype=np.int8)
        present = block_rows >= 0
        if present.any():
            values = source.read(sample_index, block_rows[present], dtype=np.int8, missing="raw")
            flips = flip_mask[start:stop][present]
            values = np.where((values >= 0) & flips[None, :], 2 - values, values).astype(np.int8)
            dosage[:, present] = values
        packed[:, start // 4 : start // 4 + (stop - start + 3) // 4] = pack_dosage(dosage)
    return PackedGenotypes(packed=packed, n_variants=m)


def predict_from_bundle(
    directory: str | Path,
    genotypes: str | Path | GenotypeSource,
    *,
    covariates: np.ndarray | None = None,
    samples: np.ndarray | None = None,
    keep_ambiguous: bool = False,
) -> pd.DataFrame:
    """Score target genotypes with a bundle.

    Parameters
    ----------
    directory
        Bundle directory written by :func:`save_model`.
    genotypes
        Genotype prefix/path or an open :class:`GenotypeSource`.
    covariates : ndarray, shape (n_samples, n_covariates), optional
        When given, the full prediction including covariate terms; otherwise SCORE is the
        genetic part plus the intercept (``(dosage - center_) @ coef_ + intercept_`` for
        linear models), as plink2 ``--score`` sums do up to a constant.
    samples
        Rows of the genotype file to score (default all).
    keep_ambiguous
        See :func:`match_variants`.

    Returns
    -------
    DataFrame with columns FID IID SCORE (log-odds for binary-trait models). The match report
    is in ``result.attrs["match_report"]``.
    """
    model, table = load_model(directory)
    source = genotypes if isinstance(genotypes, GenotypeSource) else open_genotypes(genotypes)
    target_index, flip_mask, report = match_variants(table, source.variant_table, keep_ambiguous=keep_ambiguous)
    run = current_run()
    if run is not None:
        run.info(format_match_report(report))
    if report["matched"] == 0:
        raise InputError(
            "no model variant matches the target genotypes by ID and alleles; "
            "check variant IDs (e.g. plink2 --set-all-var-ids) and the genome build"
        )
    sample_index = np.arange(source.n_samples) if samples is None else np.asarray(samples, dtype=np.int64)
    aligned = aligned_genotypes(source, target_index, flip_mask, samples=sample_index)
    features = load_features(directory)
    if features:
        from deepprs.evaluate.features import format_score_report

        columns = []
        for feature in features:
            score, feature_report = feature.score(source, source.variant_table, sample_index=sample_index)
            columns.append(score)
            if run is not None:
                run.info(format_score_report(f"model input {feature.name}", feature_report))
        extra = np.column_stack(columns)
        covariates = extra if covariates is None else np.column_stack([covariates, extra])
    if model.is_linear and covariates is None and hasattr(model, "genetic_score"):
        score = model.genetic_score(aligned) + float(getattr(model, "intercept_", 0.0))
    else:
        score = model.predict(aligned, covariates=covariates)
    ids = source.sample_table.iloc[sample_index]
    result = pd.DataFrame(
        {
            "FID": ids["fid"].astype(str).to_numpy(),
            "IID": ids["iid"].astype(str).to_numpy(),
            "SCORE": np.asarray(score, dtype=np.float64),
        }
    )
    result.attrs["match_report"] = report
    return result


def write_sscore(table: pd.DataFrame, path: str | Path) -> None:
    """Write ``#FID IID SCORE`` (tab-separated) atomically."""
    with atomic_output(path) as handle:
        handle.write("#FID\tIID\tSCORE\n")
        for fid, iid, score in zip(table["FID"], table["IID"], table["SCORE"], strict=True):
            handle.write(f"{fid}\t{iid}\t{score:.10g}\n")


# -- export ---------------------------------------------------------------------------------


def export_weights(
    directory: str | Path,
    out: str | Path,
    *,
    file_format: str = "plink-score",
    trait: str | None = None,
    genome_build: str = "NR",
    score_id: str | None = None,
    include_zero: bool = False,
) -> int:
    """Export a linear bundle's per-allele weights.

    ``plink-score``: ``ID A1 BETA`` (use ``plink2 --score FILE 1 2 3 header-read
    cols=+scoresums``); ``pgs-catalog``: PGS Catalog scoring file format 2.0 with the full
    header (gzipped when ``out`` ends in ``.gz``).  Variants with zero weight are left out
    unless ``include_zero``.

    Returns
    -------
    Number of variants written.
    """
    import gzip

    from deepprs import __version__

    record = read_bundle_record(directory)
    if not record.get("is_linear", False):
        raise InputError(
            f"--model {directory}: model {record.get('model')!r} is not linear; only linear models "
            "(ct, ridge, enet, lasso, bayesr) export per-allele weights; use 'deepprs predict'"
        )
    model, table = load_model(directory)
    coef = np.asarray(model.coef_, dtype=np.float64)
    keep = np.ones(len(coef), dtype=bool) if include_zero else coef != 0
    rows = table.loc[keep].reset_index(drop=True)
    weights = coef[keep]
    if file_format == "plink-score":
        with atomic_output(out) as handle:
            handle.write("ID\tA1\tBETA\n")
            for vid, allele, w in zip(rows["ID"], rows["A1"], weights, strict=True):
                handle.write(f"{vid}\t{allele}\t{w:.10g}\n")
        return int(keep.sum())
    if file_format != "pgs-catalog":
        raise InputError(f"--format {file_format!r}: choose pgs-catalog or plink-score")
    info = record.get("training_info", {})
    trait = trait or str(info.get("phenotype", "NR"))
    score_id = score_id or f"deepprs_{record['model']}_{trait}"
    weight_type = "log(OR)" if record.get("extra_metadata", {}).get("is_binary") else "beta"
    header = [
        "###PGS CATALOG SCORING FILE - see https://www.pgscatalog.org/downloads/#dl_ftp_scoring "
        "for additional information",
        "#format_version=2.0",
        "##POLYGENIC SCORE (PGS) INFORMATION",
        f"#pgs_id={score_id}",
        f"#pgs_name={score_id}",
        f"#trait_reported={trait}",
        "#trait_mapped=NR",
        "#trait_efo=NR",
        f"#genome_build={genome_build}",
        f"#variants_number={int(keep.sum())}",
        f"#weight_type={weight_type}",
        "##SOURCE INFORMATION",
        "#pgp_id=NR",
        f"#citation=deepprs {__version__} model {record['model']} (in-house score, not from the PGS Catalog)",
    ]
    columns = [
        "rsID",
        "chr_name",
        "chr_position",
        "effect_allele",
        "other_allele",
        "effect_weight",
        "allelefrequency_effect",
    ]
    frame = pd.DataFrame(
        {
            "rsID": rows["ID"],
            "chr_name": rows["CHROM"],
            "chr_position": rows["POS"],
            "effect_allele": rows["A1"],
            "other_allele": rows["REF"],
            "effect_weight": [f"{w:.10g}" for w in weights],
            "allelefrequency_effect": [f"{c / 2:.6g}" if np.isfinite(c) else "NA" for c in rows["CENTER"]],
        }
    )[columns]
    text = "\n".join(header) + "\n" + frame.to_csv(sep="\t", index=False)
    if str(out).endswith(".gz"):
        with atomic_path(out) as tmp:
            with gzip.open(tmp, "wt") as handle:
                handle.write(text)
    else:
        with atomic_output(out) as handle:
            handle.write(text)
    return int(keep.sum())
