"""`deepprs pca`: genotype principal components scaled like plink2 --pca."""

from __future__ import annotations

from typing import Annotated

import typer

from deepprs.cli.common import Bfile, Bgen, Device, Keep, Out, Pfile, Quiet, Remove, Sample, Seed, Threads, run_logged


def register(app: typer.Typer) -> None:
    """Add ``pca`` to the app."""

    @app.command("pca")
    def pca(
        out: Out,
        bfile: Bfile = None,
        pfile: Pfile = None,
        bgen: Bgen = None,
        sample_path: Sample = None,
        n_components: Annotated[int, typer.Option("--pca", help="number of principal components")] = 10,
        extract: Annotated[str | None, typer.Option("--extract", help="use only these variant IDs "
                                                                      "(e.g. OUT.prune.in)")] = None,
        keep: Keep = None,
        remove: Remove = None,
        method: Annotated[str, typer.Option("--method", help="auto (exact GRM up to 1,000 samples), "
                                                              "randomized or exact")] = "auto",
        device: Device = "cpu",
        seed: Seed = 0,
        threads: Threads = None,
        quiet: Quiet = False,
    ) -> None:
        """Write OUT.eigenvec (#FID IID PC1..PCk) and OUT.eigenval like plink2."""
        parameters = {"bfile": bfile, "pfile": pfile, "bgen": bgen, "pca": n_components, "extract": extract,
                      "keep": keep,
                      "remove": remove, "method": method, "device": device, "seed": seed}

        def body(log) -> None:
            from deepprs.io import open_genotypes
            from deepprs.io.cohort import genotype_path
            from deepprs.qc import genotype_pca, write_pca
            from deepprs.qc.filters import select_samples, select_variants

            path, file_format = genotype_path(bfile, pfile, bgen, sample_path)
            with open_genotypes(path, file_format=file_format, sample_path=sample_path) as source:
                sample_index = select_samples(source, keep=keep, remove=remove)
                variant_index = select_variants(source, extract)
                log.info(f"genotypes: {len(sample_index)} of {source.n_samples} samples, "
                         f"{len(variant_index)} of {source.n_variants} variants from {path}")
                with log.step("pca"):
                    result = genotype_pca(source, n_components, samples=sample_index, variants=variant_index,
                                          method=method, device=device, seed=seed)
            log.info(f"{result.n_variants} polymorphic variants used; eigenvalues: "
                     + " ".join(f"{v:.4g}" for v in result.eigenvalues))
            for written in write_pca(result, out):
                log.info(f"wrote {written}")

        run_logged(out, "pca", body, quiet=quiet, threads=threads, parameters=parameters)
