"""`deepprs benchmark`: cross-validated comparison of PRS models (linear baselines and networks)."""

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


def benchmark_from_files(
    genotypes: str,
    *,
    file_format: str | None,
    sample_path: str | None = None,
    pheno: str,
    pheno_name: str | None,
    models: list[str],
    out_dir: str,
    covar: str | None = None,
    covar_names: list[str] | None = None,
    keep: str | None = None,
    remove: str | None = None,
    n_folds: int | None = 5,
    group_by: str | None = None,
    folds_file: str | None = None,
    n_boot: int = 1000,
    joint_tagging_check: bool = False,
    config: str | None = None,
    prevalence: float | None = None,
    seed: int = 0,
    device: str = "auto",
    score_weights: list[str] | None = None,
    cvblup_feature: bool = False,
):
    """Python API behind ``deepprs benchmark``: load files, make folds, run, write DIR/*.

    ``score_weights``: plink2 ``--score`` files (``ID A1 BETA``) whose scores become covariate
    columns named after the files; ``cvblup_feature``: the in-fold cvBLUP as a covariate column.
    """
    from deepprs.errors import InputError
    from deepprs.evaluate.benchmark import run_benchmark, write_benchmark
    from deepprs.evaluate.data import load_prs_data, read_model_config
    from deepprs.evaluate.features import read_score_weights_files
    from deepprs.train.cv import make_folds, read_folds_file
    from deepprs.utils.runlog import current_run

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
    run = current_run()
    if run is not None:
        run.info(f"samples: {data.report}; {data.genotypes.n_variants} variants")
    if folds_file is not None:
        if group_by is not None:
            raise InputError("--group-by cannot be combined with --folds-file (the file fixes the folds)")
        folds = read_folds_file(folds_file, data.sample_ids)
    else:
        folds = make_folds(data.sample_ids, n_folds or 5, seed, group_by=group_by)
    weights = read_score_weights_files(score_weights)
    result = run_benchmark(
        data.genotypes,
        data.phenotype,
        models=models,
        folds=folds,
        covariates=data.covariates,
        sample_ids=data.sample_ids,
        variant_table=data.variant_table,
        config=read_model_config(config),
        n_boot=n_boot,
        seed=seed,
        prevalence=prevalence,
        joint_tagging_check=joint_tagging_check,
        device=device,
        score_weights=weights,
        cvblup_feature=cvblup_feature,
    )
    result.settings.update(
        {
            "genotypes": str(genotypes),
            "phenotype_file": str(pheno),
            "phenotype": data.phenotype_name,
            "covariates": data.covariate_names,
            "folds_file": folds_file,
            "group_by": group_by,
        }
    )
    write_benchmark(result, out_dir)
    if run is not None:
        for row in result.summary.itertuples():
            run.info(f"{row.model}: pooled r2 {row.pooled_r2:.4f} [{row.r2_ci_lower:.4f}, {row.r2_ci_upper:.4f}]")
    return result


def register(app: typer.Typer) -> None:
    @app.command("benchmark")
    def benchmark_command(
        out: Annotated[str, typer.Option("--out", help="output directory")],
        models: Annotated[list[str], typer.Option("--models", help="models, comma-separated (ct,ridge,enet,mlp)")],
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
        folds: Annotated[int | None, typer.Option("--folds", help="number of CV folds")] = None,
        group_by: Annotated[str | None, typer.Option("--group-by", help="keep groups together (FID)")] = None,
        folds_file: Annotated[str | None, typer.Option("--folds-file", help="FID IID FOLD file")] = None,
        n_boot: Annotated[int, typer.Option("--n-boot", help="bootstrap replicates for CIs")] = 1000,
        joint_tagging_check: Annotated[
            bool, typer.Option("--joint-tagging-check", help="also run on LD-clumped inputs (@clumped)")
        ] = False,
        config: Annotated[str | None, typer.Option("--config", help="JSON {model: {params}}")] = None,
        prevalence: Annotated[
            float | None, typer.Option("--prevalence", help="population prevalence (liability R2)")
        ] = None,
        score_weights: Annotated[
            list[str] | None,
            typer.Option("--score-weights", help="external PRS weights files (ID A1 BETA), comma-separated"),
        ] = None,
        cvblup_feature: Annotated[
            bool, typer.Option("--cvblup-feature", help="add the cvBLUP (fitted inside each training fold) as an input")
        ] = False,
        seed: Seed = 0,
        device: Device = "auto",
        threads: Threads = None,
        quiet: Quiet = False,
    ) -> None:
        """Cross-validate PRS models: DIR/results.tsv, predictions.tsv, summary.tsv, benchmark.json,
        benchmark_r2.png, calibration.png (networks also get their linear twin, '<name>-linear')."""
        from deepprs.errors import InputError
        from deepprs.io.cohort import genotype_path

        path, file_format = genotype_path(bfile, pfile, bgen, sample_path)
        if pheno is None:
            raise InputError("--pheno is required")
        if folds is not None and folds_file is not None:
            raise InputError("give either --folds K or --folds-file FILE, not both")
        names = split_names(pheno_name)
        if names and len(names) > 1:
            raise InputError("--pheno-name: benchmark takes one phenotype")
        model_names = split_names(models) or []
        Path(out).mkdir(parents=True, exist_ok=True)

        def body(log) -> None:
            benchmark_from_files(
                path,
                file_format=file_format,
                sample_path=sample_path,
                pheno=pheno,
                pheno_name=names[0] if names else None,
                models=model_names,
                out_dir=out,
                covar=covar,
                covar_names=split_names(covar_name),
                keep=keep,
                remove=remove,
                n_folds=folds if folds_file is None else None,
                group_by=group_by,
                folds_file=folds_file,
                n_boot=n_boot,
                joint_tagging_check=joint_tagging_check,
                config=config,
                prevalence=prevalence,
                seed=seed,
                device=device,
                score_weights=split_names(score_weights),
                cvblup_feature=cvblup_feature,
            )

        run_logged(
            str(Path(out) / "benchmark"),
            "benchmark",
            body,
            quiet=quiet,
            threads=threads,
            parameters={
                "models": model_names,
                "folds": folds,
                "folds_file": folds_file,
                "n_boot": n_boot,
                "seed": seed,
                "joint_tagging_check": joint_tagging_check,
                "score_weights": score_weights,
                "cvblup_feature": cvblup_feature,
            },
        )
