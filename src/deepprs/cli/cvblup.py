"""`deepprs cvblup`: REML h², BLUP, cvBLUP, SNP weights and LOCO cvBLUPs for one trait."""

from __future__ import annotations

from typing import Annotated

import typer

from deepprs.cli.common import (
    Bfile,
    Bgen,
    Covar,
    CovarName,
    Device,
    Keep,
    Out,
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

Loco = Annotated[
    bool, typer.Option("--loco", help="also write OUT.cvblup.loco.tsv (one column per left-out chromosome)")
]
ExactMaxN = Annotated[
    int, typer.Option("--exact-max-n", help="above this many samples use the matrix-free path")
]
Method = Annotated[
    str, typer.Option("--method", help="auto, exact (REML on the GRM) or matrix-free (HE + CG)")
]
Probes = Annotated[int, typer.Option("--probes", help="Hutchinson probes on the matrix-free path")]
BlockSize = Annotated[int, typer.Option("--block-size", help="variants per streamed genotype block")]


def register(app: typer.Typer) -> None:
    """Add ``deepprs cvblup`` to the app."""

    @app.command("cvblup")
    def cvblup_command(
        out: Out,
        bfile: Bfile = None,
        pfile: Pfile = None,
        bgen: Bgen = None,
        sample_path: Sample = None,
        pheno: Pheno = None,
        pheno_name: PhenoName = None,
        covar: Covar = None,
        covar_name: CovarName = None,
        keep: Keep = None,
        remove: Remove = None,
        loco: Loco = False,
        method: Method = "auto",
        exact_max_n: ExactMaxN = 20_000,
        probes: Probes = 100,
        block_size: BlockSize = 2000,
        device: Device = "cpu",
        seed: Seed = 0,
        threads: Threads = None,
        quiet: Quiet = False,
    ) -> None:
        """REML h², BLUP and leave-one-out cvBLUP (Mefford et al. 2020); writes OUT.h2.json, OUT.cvblup.tsv,
        OUT.snp_weights.tsv (ID A1 BETA for plink2 --score) and, with --loco, OUT.cvblup.loco.tsv."""
        from deepprs.errors import InputError
        from deepprs.io.cohort import genotype_path
        from deepprs.lmm.commands import run_cvblup

        path, file_format = genotype_path(bfile, pfile, bgen, sample_path)
        names = split_names(pheno_name)
        if names and len(names) > 1:
            raise InputError(
                "deepprs cvblup fits one trait: give a single --pheno-name "
                "(use deepprs pleiotropy for several)"
            )

        def body(log) -> None:
            run_cvblup(
                path,
                out=out,
                pheno=pheno,
                pheno_name=names[0] if names else None,
                file_format=file_format,
                sample_path=sample_path,
                covar=covar,
                covar_names=split_names(covar_name),
                keep=keep,
                remove=remove,
                loco=loco,
                method=method,
                exact_max_n=exact_max_n,
                n_probes=probes,
                block_size=block_size,
                device=device,
                seed=seed,
            )

        run_logged(
            out,
            "cvblup",
            body,
            quiet=quiet,
            threads=threads,
            parameters={
                "loco": loco,
                "method": method,
                "exact_max_n": exact_max_n,
                "probes": probes,
                "pheno_name": names,
                "covar_name": split_names(covar_name),
            },
        )
