"""`deepprs fit`: fit one PRS model on all analysed samples and write a model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepprs.cli.common import (
    Bfile,
    Bgen,
    Covar,
    CovarName,
    Device,
    Keep,
    Pfile,
    Pheno,
    PhenoName,
    Quiet,
    Remove,
    Sample,
    Seed,
    Threads,
    run_logged,
    split_names,
)


def fit_to_bundle(
    genotypes: str,
    *,
    file_format: str | None,
    sample_path: str | None = None,
    pheno: str,
    pheno_name: str | None,
    model_name: str,
    out_dir: str | Path,
    covar: str | None = None,
    covar_names: list[str] | None = None,
    keep: str | None = None,
    remove: str | None = None,
    config: str | None = None,
    resume: bool = False,
    seed: int = 0,
    device: str = "auto",
    score_weights: list[str] | None = None,
    cvblup_feature: bool = False,
) -> Path:
    """Python API behind ``deepprs fit``: load, fit ``model_name`` and save the bundle in ``out_dir``.

    ``score_weights`` (plink2 ``--score`` files) and ``cvblup_feature`` add extra inputs after the
    covariates (:func:`deepprs.evaluate.features.training_features`); the bundle keeps their weights,
    so ``deepprs predict`` rebuilds them for new samples.
    """
    import time

    import numpy as np

    from deepprs.evaluate.data import build_model, load_prs_data, params_for, read_model_config
    from deepprs.evaluate.features import format_score_report, read_score_weights_files, training_features
    from deepprs.models.base import accepts_variant_table
    from deepprs.models.bundle import save_model
    from deepprs.utils.runlog import current_run

    run = current_run()
    data = load_prs_data(
        genotypes,
        file_format=file_format,
        sample_path=sample_path,
        pheno=pheno,
        pheno_name=pheno_name,
        covar=covar,
        covar_names=covar_names,
        keep=keep,
        remove=remove,
    )
    if run is not None:
        run.info(
            f"samples: {data.report}; {data.genotypes.n_variants} variants; "
            f"{len(data.covariate_names)} covariate columns"
        )
    weights = read_score_weights_files(score_weights)
    extra, features, reports = training_features(
        data.genotypes,
        data.variant_table,
        data.phenotype,
        data.covariates,
        score_weights=weights,
        cvblup=cvblup_feature,
    )
    covariates = data.covariates
    if extra is not None:
        covariates = extra if covariates is None else np.column_stack([covariates, extra])
    if run is not None:
        for name, report in zip(weights, reports, strict=True):
            run.info(format_score_report(f"model input {name}", report))
        if cvblup_feature:
            run.info("model input cvblup: leave-one-out cvBLUP of every training sample")
    params = params_for(model_name, read_model_config(config))
    model = build_model(
        model_name,
        params,
        seed=seed,
        device=device,
        checkpoint_dir=Path(out_dir) / "checkpoints",
        resume=resume,
    )
    t0 = time.time()
    fit_kwargs = {"variant_table": data.variant_table} if accepts_variant_table(model) else {}
    model.fit(data.genotypes, data.phenotype, covariates=covariates, **fit_kwargs)
    seconds = time.time() - t0
    if run is not None:
        run.info(f"fitted {model!r} in {seconds:.1f} s")
    info = {
        "genotypes": str(genotypes),
        "phenotype_file": str(pheno),
        "phenotype": data.phenotype_name,
        "covariates": data.covariate_names,
        "extra_inputs": [feature.name for feature in features],
        "n_samples": int(len(data.phenotype)),
        "n_variants": int(data.genotypes.n_variants),
        "seed": seed,
        "fit_seconds": round(seconds, 3),
    }
    directory = save_model(model, out_dir, variant_table=data.variant_table, training_info=info, features=features)
    if hasattr(model, "pip_"):
        # BayesR: posterior inclusion probability of every variant, effect allele named
        from deepprs.utils.runlog import atomic_output

        order = np.argsort(-np.asarray(model.pip_), kind="stable")
        with atomic_output(Path(out_dir) / "pip.tsv") as handle:
            handle.write("ID\tCHROM\tPOS\tA1\tPIP\tBETA\n")
            table = data.variant_table
            for j in order:
                handle.write(
                    f"{table['id'].iat[j]}\t{table['chrom'].iat[j]}\t{table['pos'].iat[j]}\t"
                    f"{table['a1'].iat[j]}\t{model.pip_[j]:.6g}\t{model.coef_[j]:.6g}\n"
                )
    return directory


def register(app: typer.Typer) -> None:
    @app.command("fit")
    def fit_command(
        out: Annotated[str, typer.Option("--out", help="output directory for the model bundle")],
        model: Annotated[str, typer.Option("--model", help="model name: ct, ridge, enet, lasso, bayesr, mlp, ...")],
        pheno: Pheno = None,
        pheno_name: PhenoName = None,
        bfile: Bfile = None,
        pfile: Pfile = None,
        bgen: Bgen = None,
        sample_path: Sample = None,
        covar: Covar = None,
        covar_name: CovarName = None,
        keep: Keep = None,
        remove: Remove = None,
        config: Annotated[str | None, typer.Option("--config", help="JSON file of model parameters")] = None,
        resume: Annotated[bool, typer.Option("--resume", help="continue neural training from checkpoints")] = False,
        score_weights: Annotated[
            list[str] | None,
            typer.Option("--score-weights", help="external PRS weights files (ID A1 BETA) as extra inputs"),
        ] = None,
        cvblup_feature: Annotated[
            bool, typer.Option("--cvblup-feature", help="add the leave-one-out cvBLUP as an input")
        ] = False,
        seed: Seed = 0,
        device: Device = "auto",
        threads: Threads = None,
        quiet: Quiet = False,
    ) -> None:
        """Fit a PRS model on all samples with a phenotype; write a bundle (model.safetensors, model.json,
        variants.tsv; pip.tsv for bayesr) to --out DIR, plus DIR/fit.log."""
        from deepprs.errors import InputError
        from deepprs.io.cohort import genotype_path

        path, file_format = genotype_path(bfile, pfile, bgen, sample_path)
        if pheno is None:
            raise InputError("--pheno is required")
        names = split_names(pheno_name)
        if names and len(names) > 1:
            raise InputError("--pheno-name: fit takes one phenotype")
        Path(out).mkdir(parents=True, exist_ok=True)

        def body(log) -> None:
            directory = fit_to_bundle(
                path,
                file_format=file_format,
                sample_path=sample_path,
                pheno=pheno,
                pheno_name=names[0] if names else None,
                model_name=model,
                out_dir=out,
                covar=covar,
                covar_names=split_names(covar_name),
                keep=keep,
                remove=remove,
                config=config,
                resume=resume,
                seed=seed,
                device=device,
                score_weights=split_names(score_weights),
                cvblup_feature=cvblup_feature,
            )
            log.info(f"model bundle written to {directory}")

        run_logged(
            str(Path(out) / "fit"),
            "fit",
            body,
            quiet=quiet,
            threads=threads,
            parameters={
                "model": model,
                "out": out,
                "config": config,
                "seed": seed,
                "resume": resume,
                "score_weights": score_weights,
                "cvblup_feature": cvblup_feature,
            },
        )
