"""`deepprs gwas`: plink2-style association testing (linear / logistic with Firth fallback)."""

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
    Threads,
    run_logged,
    split_names,
)


def register(app: typer.Typer) -> None:
    """Add ``deepprs gwas`` to the app."""

    @app.command("gwas")
    def gwas(
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
        threads: Threads = None,
        device: Device = "cpu",
        block_size: Annotated[int, typer.Option("--block-size", help="variants per block")] = 4096,
        cvblup_covar: Annotated[
            str | None,
            typer.Option(
                "--cvblup-covar",
                help="PREFIX of PREFIX.cvblup.loco.tsv: add the LOCO cvBLUP of each variant's "
                "chromosome as a covariate",
            ),
        ] = None,
        gz: Annotated[bool, typer.Option("--gz", help="gzip the result files")] = False,
        linear_only: Annotated[
            bool, typer.Option("--linear-only", help="treat 0/1 and 1/2 phenotypes as quantitative too")
        ] = False,
        no_plots: Annotated[bool, typer.Option("--no-plots", help="skip the Manhattan and QQ PNGs")] = False,
        vif: Annotated[
            float,
            typer.Option("--vif", help="max variance inflation factor of any predictor (plink2 --vif); "
                         "variants above get VIF_TOO_HIGH, covariates above stop the run"),
        ] = 50.0,
        max_corr: Annotated[
            float,
            typer.Option("--max-corr", help="max |correlation| between predictors (plink2 --max-corr); "
                         "variants above get CORR_TOO_HIGH, covariate pairs above stop the run"),
        ] = 0.999,
        extract: Annotated[str | None, typer.Option("--extract", help="test only the variant IDs listed "
                                                    "(first column)")] = None,
        exclude: Annotated[str | None, typer.Option("--exclude", help="skip the variant IDs listed")] = None,
        chromosomes: Annotated[str | None, typer.Option("--chr", help="test only these chromosomes "
                                                        "(plink2 syntax, e.g. 1-22,X)")] = None,
        maf: Annotated[float | None, typer.Option("--maf", help="skip variants with minor allele frequency "
                                                  "below this (over the --keep/--remove samples, as plink2)")] = None,
        geno: Annotated[float | None, typer.Option("--geno", help="skip variants with a missing call rate "
                                                   "above this")] = None,
        hwe: Annotated[float | None, typer.Option("--hwe", help="skip variants with Hardy-Weinberg exact "
                                                  "P below this (founders, as plink2; chrX: the test "
                                                  "including males; chrY/chrM are not tested)")] = None,
        quiet: Quiet = False,
    ) -> None:
        """GWAS like plink2 --glm: OUT.<pheno>.glm.linear or .glm.logistic.hybrid (+ Manhattan/QQ PNGs).

        Binary traits (all values 1/2: 1 = control, 2 = case; or 0/1: 0 = control) get logistic
        regression with Firth fallback; others linear regression. A1 is the counted allele (.bim
        column 5 / ALT; BGEN: the second allele). Sex chromosomes as plink2: chrX gets a SEX
        covariate (unknown sex dropped when both sexes are present), chrY is tested in males only,
        chrY/chrM count haploid copies.
        """
        import gc
        import importlib
        import os
        import threading
        import time

        # numpy's and scipy's OpenBLAS only see k × k and n × k problems here (the heavy maths is
        # torch's): one thread, set before numpy loads it. Otherwise its worker thread starts with
        # the pool at the first BLAS call and spins ~0.1 s beside torch's workers.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        # numpy asks for transparent huge pages for arrays >= 4 MB (the genotype block buffers). Where
        # the kernel compacts memory on demand for such requests (THP defrag "madvise", a common
        # default) a fault then waits for compaction once memory is fragmented, e.g. after another
        # large job: measured right after plink2 runs, the regression step took 0.97 s with them and
        # 0.75 s without (see benchmarks/RESULTS_gwas.md). Off unless the user set the variable.
        os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
        # The same for pyarrow (the table readers): its default allocator, mimalloc, takes huge pages,
        # ~25 per run here; about every other run, their faults added ~0.1 s of system time to reading
        # the .bim/.fam (tables step 0.17 -> 0.09 s, median of 10 alternating runs). glibc's malloc
        # instead, unless the user chose a pool.
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
        from deepprs.utils.memory import keep_freed_memory

        keep_freed_memory()  # (before the start-up scan forks: the child inherits it)
        from deepprs.assoc.bedscan import (
            process_age,
            start_bed_scan,
            start_pgen_scan,
            stop_bed_scan,
        )

        imports_start = time.perf_counter()

        # Start reading the .bed / .pgen (missing calls, homozygous-A1 counts; numpy only) in a background
        # process before the imports below, which take ~1 s (torch alone ~0.75 s) on one core.
        # (not with --threads 1: the scan takes a second core. With variant filters, LOCO chromosomes or
        # sex-chromosome segments the tested blocks are subsets of the scan's blocks, which it serves too.)
        filtered = any(value is not None for value in (extract, exclude, chromosomes, maf, geno, hwe))
        if threads != 1 and not bgen and bool(bfile) != bool(pfile):
            if bfile:
                start_bed_scan(bfile, block_size)
            else:
                start_pgen_scan(pfile, block_size)
        from deepprs.assoc.gwas import run_gwas
        from deepprs.assoc.loco import read_cvblup_loco
        from deepprs.errors import InputError
        from deepprs.io.cohort import genotype_path, load_cohort

        import_seconds = time.perf_counter() - imports_start
        parameters = dict(
            bfile=bfile,
            pfile=pfile,
            bgen=bgen,
            pheno=pheno,
            pheno_name=pheno_name,
            covar=covar,
            covar_name=covar_name,
            keep=keep,
            remove=remove,
            device=device,
            block_size=block_size,
            cvblup_covar=cvblup_covar,
            gz=gz,
            linear_only=linear_only,
            plots=not no_plots,
            max_vif=vif,
            max_corr=max_corr,
            extract=extract,
            exclude=exclude,
            chr=chromosomes,
            maf=maf,
            geno=geno,
            hwe=hwe,
        )

        def body(log) -> None:
            # Objects that live to the end of the process (torch's and pandas' modules, functions and
            # registries: several hundred thousand) go to the collector's permanent generation: the
            # run's collections, and above all the full collections the interpreter runs while it
            # shuts down (~0.6 s of exit time with torch loaded), no longer traverse them.
            gc.freeze()
            age = process_age()
            if age is not None:  # where the fixed cost goes (see benchmarks/RESULTS_gwas.md)
                log.info(f"start-up: {age:.2f} s since the process started, of which {import_seconds:.2f} s "
                         "importing the GWAS code (torch, pandas, numpy)")
            path, file_format = genotype_path(bfile, pfile, bgen, sample_path)
            if not pheno:
                raise InputError("--pheno FILE is required (a table with FID IID and one column per trait)")
            if block_size < 1:
                raise InputError("--block-size must be >= 1")
            with log.step("read genotype, phenotype and covariate tables"):
                cohort = load_cohort(
                    path,
                    file_format=file_format,
                    sample_path=sample_path,
                    pheno=pheno,
                    pheno_names=split_names(pheno_name),
                    covar=covar,
                    covar_names=split_names(covar_name),
                    keep=keep,
                    remove=remove,
                )
            log.info(f"{cohort.genotypes!r}; {cohort.alignment.report()}")
            variant_index = None
            if filtered:  # (qc.filters and its statistics cost ~0.2 s of imports: only when needed)
                from deepprs.qc.filters import VariantFilter, describe_removed, select_samples

                variant_filter = VariantFilter(extract=extract, exclude=exclude, chromosomes=chromosomes, maf=maf,
                                               geno=geno, hwe=hwe)
                with log.step("variant filters"):
                    samples = select_samples(cohort.genotypes, keep=keep, remove=remove)
                    variant_index, removed = variant_filter.apply(cohort.genotypes, samples)
                log.info(f"variant filters: {len(variant_index)} of {cohort.genotypes.n_variants} variants kept "
                         f"({describe_removed(removed)})")
            loco = read_cvblup_loco(cvblup_covar, cohort.sample_ids) if cvblup_covar else None
            # scipy (Student t P-values, λGC) is first needed after the regression: import it (~0.12 s,
            # most of it scipy's array-API layer) in the background, beside the regression's workers
            threading.Thread(target=importlib.import_module, args=("scipy.special",), daemon=True).start()
            run_gwas(
                cohort,
                variant_index=variant_index,
                out=out,
                loco_covariates=loco,
                linear_only=linear_only,
                block_size=block_size,
                device=device,
                gz=gz,
                plots=not no_plots,
                progress=not quiet,
                max_vif=vif,
                max_corr=max_corr,
            )
            gc.freeze()  # the results are written: nothing left for the exit-time collections to walk

        try:
            run_logged(out, "gwas", body, quiet=quiet, threads=threads, parameters=parameters, blas_threads=1)
        finally:
            stop_bed_scan()
