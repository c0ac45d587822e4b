"""`deepprs pleiotropy`: cvBLUP for every trait and the asymmetric corr(cvBLUP_t, y_u) matrix."""

from __future__ import annotations

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
from deepprs.cli.cvblup import BlockSize, ExactMaxN, Method, Probes


def register(app) -> None:
    """Add ``deepprs pleiotropy`` to the app."""

    @app.command("pleiotropy")
    def pleiotropy_command(
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
        method: Method = "auto",
        exact_max_n: ExactMaxN = 20_000,
        probes: Probes = 100,
        block_size: BlockSize = 2000,
        device: Device = "cpu",
        seed: Seed = 0,
        threads: Threads = None,
        quiet: Quiet = False,
    ) -> None:
        """cvBLUP of every trait and the asymmetric corr(cvBLUP_t, y_u) matrix.

        Writes OUT.pleiotropy.tsv (PRS_TRAIT PHENO_TRAIT R P FDR N, Benjamini–Yekutieli FDR),
        OUT.pleiotropy.matrix.tsv and OUT.pleiotropy.png.
        """
        from deepprs.io.cohort import genotype_path
        from deepprs.lmm.commands import run_pleiotropy

        path, file_format = genotype_path(bfile, pfile, bgen, sample_path)

        def body(log) -> None:
            run_pleiotropy(
                path,
                out=out,
                pheno=pheno,
                pheno_names=split_names(pheno_name),
                file_format=file_format,
                sample_path=sample_path,
                covar=covar,
                covar_names=split_names(covar_name),
                keep=keep,
                remove=remove,
                method=method,
                exact_max_n=exact_max_n,
                n_probes=probes,
                block_size=block_size,
                device=device,
                seed=seed,
            )

        run_logged(
            out,
            "pleiotropy",
            body,
            quiet=quiet,
            threads=threads,
            parameters={
                "method": method,
                "exact_max_n": exact_max_n,
                "pheno_name": split_names(pheno_name),
                "covar_name": split_names(covar_name),
            },
        )
