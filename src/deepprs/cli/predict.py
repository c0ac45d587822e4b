"""`deepprs predict`: score genotypes with a model bundle (OUT.sscore)."""

from __future__ import annotations

from typing import Annotated

import typer

from deepprs.cli.common import (
    Bfile,
    Bgen,
    Covar,
    CovarName,
    Keep,
    Out,
    Pfile,
    Quiet,
    Remove,
    Sample,
    Threads,
    run_logged,
    split_names,
)


def predict_to_sscore(
    model_dir: str,
    genotypes: str,
    *,
    file_format: str | None,
    sample_path: str | None = None,
    out: str,
    covar: str | None = None,
    covar_names: list[str] | None = None,
    keep: str | None = None,
    remove: str | None = None,
    keep_ambiguous: bool = False,
) -> str:
    """Python API behind ``deepprs predict``; writes ``out.sscore`` and returns its path."""
    import numpy as np

    from deepprs.io.cohort import load_cohort
    from deepprs.models.bundle import predict_from_bundle, write_sscore

    cohort = load_cohort(
        genotypes, file_format=file_format, sample_path=sample_path, covar=covar, covar_names=covar_names,
        keep=keep, remove=remove,
    )
    covariates = None
    if cohort.covariates is not None and cohort.covariates.shape[1]:
        covariates = cohort.covariates.to_numpy(dtype=np.float64)
    table = predict_from_bundle(
        model_dir,
        cohort.genotypes,
        covariates=covariates,
        samples=np.asarray(cohort.sample_index),
        keep_ambiguous=keep_ambiguous,
    )
    path = f"{out}.sscore"
    write_sscore(table, path)
    return path


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_command(
        model: Annotated[str, typer.Option("--model", help="model bundle directory from 'deepprs fit'")],
        out: Out,
        bfile: Bfile = None,
        pfile: Pfile = None,
        bgen: Bgen = None,
        sample_path: Sample = None,
        covar: Covar = None,
        covar_name: CovarName = None,
        keep: Keep = None,
        remove: Remove = None,
        keep_ambiguous: Annotated[
            bool,
            typer.Option(
                "--keep-ambiguous",
                help="keep A/T and C/G variants whose alleles match in the same orientation",
            ),
        ] = False,
        threads: Threads = None,
        quiet: Quiet = False,
    ) -> None:
        """Score samples: OUT.sscore with '#FID IID SCORE' (effect alleles matched by ID; flips handled;
        strand-ambiguous, absent and mismatched variants dropped and counted in OUT.log)."""
        from deepprs.io.cohort import genotype_path

        path, file_format = genotype_path(bfile, pfile, bgen, sample_path)

        def body(log) -> None:
            written = predict_to_sscore(
                model,
                path,
                file_format=file_format,
                sample_path=sample_path,
                out=out,
                covar=covar,
                covar_names=split_names(covar_name),
                keep=keep,
                remove=remove,
                keep_ambiguous=keep_ambiguous,
            )
            log.info(f"scores written to {written}")

        run_logged(out, "predict", body, quiet=quiet, threads=threads, parameters={"model": model})
