"""`deepprs qc`: per-variant/per-sample QC, plink2-style filters and LD pruning."""

from __future__ import annotations

from typing import Annotated

import typer

from deepprs.cli.common import Bfile, Bgen, Keep, Out, Pfile, Quiet, Remove, Sample, Threads, run_logged


def register(app: typer.Typer) -> None:
    """Add ``qc`` to the app."""

    @app.command("qc")
    def qc(
        out: Out,
        bfile: Bfile = None,
        pfile: Pfile = None,
        bgen: Bgen = None,
        sample_path: Sample = None,
        keep: Keep = None,
        remove: Remove = None,
        maf: Annotated[float | None, typer.Option("--maf", help="remove variants with MAF < this")] = None,
        geno: Annotated[float | None, typer.Option("--geno", help="remove variants missing > this")] = None,
        mind: Annotated[float | None, typer.Option("--mind", help="remove samples missing > this")] = None,
        hwe: Annotated[float | None, typer.Option("--hwe", help="remove variants with HWE exact P < this")]
        = None,
        hwe_midp: Annotated[bool, typer.Option("--hwe-midp", help="mid-p HWE test")] = False,
        indep_pairwise: Annotated[tuple[str, str, str] | None, typer.Option(
            "--indep-pairwise", help="LD pruning: window (variants or e.g. 500kb), step, r2")] = None,
        make_bed: Annotated[bool, typer.Option("--make-bed", help="write the filtered OUT.bed/.bim/.fam")]
        = False,
        threads: Threads = None,
        quiet: Quiet = False,
    ) -> None:
        """QC report (OUT.qc.variants.tsv, OUT.qc.samples.tsv, OUT.qc.json) and optional pruning."""
        parameters = {"bfile": bfile, "pfile": pfile, "bgen": bgen, "keep": keep, "remove": remove,
                      "maf": maf, "geno": geno, "mind": mind,
                      "hwe": hwe,
                      "hwe_midp": hwe_midp,
                      "indep_pairwise": list(indep_pairwise) if indep_pairwise else None,
                      "make_bed": make_bed}

        def body(log) -> None:
            from deepprs.io import open_genotypes
            from deepprs.io.cohort import genotype_path
            from deepprs.qc import parse_indep_pairwise, run_qc, write_filtered_bed, write_qc
            from deepprs.qc.filters import restrict_samples

            prune = parse_indep_pairwise(list(indep_pairwise)) if indep_pairwise else None
            path, file_format = genotype_path(bfile, pfile, bgen, sample_path)
            with open_genotypes(path, file_format=file_format, sample_path=sample_path) as full_source:
                source = restrict_samples(full_source, keep=keep, remove=remove)
                log.info(f"genotypes: {source.n_samples} samples x {source.n_variants} variants from {path}")
                with log.step("qc"):
                    result = run_qc(source, maf=maf, geno=geno, mind=mind, hwe=hwe, hwe_midp=hwe_midp,
                                    indep_pairwise=prune)
                summary = result.summary
                log.info(f"samples: {summary['n_samples_before']} -> {summary['n_samples_after']} "
                         f"(--mind removed {summary['samples_removed']['mind']})")
                removed = ", ".join(f"{k} {v}" for k, v in summary["variants_removed"].items())
                log.info(f"variants: {summary['n_variants_before']} -> {summary['n_variants_after']} "
                         f"(failing: {removed}; a variant can fail several)")
                if prune is not None:
                    log.info(f"LD pruning: {summary['indep_pairwise']['n_prune_in']} kept, "
                             f"{summary['indep_pairwise']['n_prune_out']} pruned")
                for written in write_qc(result, out):
                    log.info(f"wrote {written}")
                if make_bed:
                    with log.step("write filtered fileset"):
                        write_filtered_bed(source, result, out)
                    log.info(f"wrote {out}.bed/.bim/.fam (QC-passing samples and variants)")

        run_logged(out, "qc", body, quiet=quiet, threads=threads, parameters=parameters)
