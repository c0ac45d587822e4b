"""`deepprs simulate` (traits with known truth) and `deepprs simulate-genotypes` (PLINK fileset)."""

from __future__ import annotations

from typing import Annotated

import typer

from deepprs.cli.common import Bfile, Bgen, Keep, Out, Pfile, Quiet, Remove, Sample, Seed, Threads, run_logged


def register(app: typer.Typer) -> None:
    """Add ``simulate`` and ``simulate-genotypes`` to the app."""

    @app.command("simulate")
    def simulate(
        out: Out,
        bfile: Bfile = None,
        pfile: Pfile = None,
        bgen: Bgen = None,
        sample_path: Sample = None,
        keep: Keep = None,
        remove: Remove = None,
        model: Annotated[str, typer.Option("--model",
                                           help="additive, yelmen, epistasis, joint-tagging or gxe")]
        = "additive",
        n_causal: Annotated[int, typer.Option("--n-causal", help="number of causal variants")] = 100,
        h2: Annotated[float | None, typer.Option("--h2", help="heritability in (0,1); ignored by yelmen")]
        = None,
        prevalence: Annotated[float | None, typer.Option("--prevalence",
                                                         help="case fraction: adds PHENO_BINARY")] = None,
        noise_factor: Annotated[float, typer.Option("--noise-factor",
                                                    help="yelmen: Var(e) = s * Var(g)")] = 1.0,
        order: Annotated[int, typer.Option("--order", help="epistasis: interaction order")] = 2,
        seed: Seed = 0,
        threads: Threads = None,
        quiet: Quiet = False,
    ) -> None:
        """Simulate a phenotype from genotypes; writes OUT.pheno, OUT.truth.tsv, OUT.gvalue.tsv."""
        parameters = {"bfile": bfile, "pfile": pfile, "bgen": bgen, "keep": keep, "remove": remove,
                      "model": model, "n_causal": n_causal, "h2": h2,
                      "prevalence": prevalence, "noise_factor": noise_factor, "order": order, "seed": seed}

        def body(log) -> None:
            from deepprs.io import open_genotypes
            from deepprs.io.cohort import genotype_path
            from deepprs.qc.filters import restrict_samples
            from deepprs.simulate import simulate_trait, write_simulated_trait

            path, file_format = genotype_path(bfile, pfile, bgen, sample_path)
            with open_genotypes(path, file_format=file_format, sample_path=sample_path) as full_source:
                source = restrict_samples(full_source, keep=keep, remove=remove)
                log.info(f"genotypes: {source.n_samples} samples x {source.n_variants} variants from {path}")
                with log.step("simulate trait"):
                    trait = simulate_trait(source, model=model, n_causal=n_causal, h2=h2,
                                           prevalence=prevalence, noise_factor=noise_factor, order=order,
                                           seed=seed)
            if model == "yelmen" and h2 is not None:
                log.warn("--h2 is ignored by --model yelmen; the noise variance is --noise-factor x Var(g)")
            if model != "yelmen" and noise_factor != 1.0:
                log.warn(f"--noise-factor is used only by --model yelmen; ignored for --model {model}")
            if model != "epistasis" and order != 2:
                log.warn(f"--order is used only by --model epistasis; ignored for --model {model}")
            log.info(f"realised h2 (Var(g)/Var(y)): {trait.realised_h2:.4f}")
            if trait.phenotype_binary is not None:
                log.info(f"cases: {int(trait.phenotype_binary.sum())} of {len(trait.phenotype_binary)}")
            if model == "joint-tagging":
                log.info(f"{len(trait.dropped_causal)} of {n_causal} causal variants have >= 2 tagging "
                         f"variants (r2 >= 0.5 within 500 kb): listed in {out}.dropped_causal.txt")
            for written in write_simulated_trait(trait, out):
                log.info(f"wrote {written}")

        run_logged(out, "simulate", body, quiet=quiet, threads=threads, parameters=parameters)

    @app.command("simulate-genotypes")
    def simulate_genotypes_command(
        out: Out,
        n_samples: Annotated[int, typer.Option("--n-samples", help="number of samples")] = 1000,
        n_variants: Annotated[int, typer.Option("--n-variants", help="number of variants")] = 10000,
        n_chromosomes: Annotated[int, typer.Option("--n-chromosomes", help="chromosomes 1..C")] = 2,
        block_size: Annotated[int, typer.Option("--block-size", help="variants per LD block")] = 100,
        ld_rho: Annotated[float, typer.Option("--ld-rho", help="AR(1) correlation within blocks")] = 0.95,
        maf_min: Annotated[float, typer.Option("--maf-min", help="lowest minor allele frequency")] = 0.05,
        maf_max: Annotated[float, typer.Option("--maf-max", help="highest minor allele frequency")] = 0.5,
        missing_rate: Annotated[float, typer.Option("--missing-rate", help="genotype missing rate")] = 0.0,
        method: Annotated[str, typer.Option("--method", help="ld-blocks or msprime (optional package)")]
        = "ld-blocks",
        seed: Seed = 0,
        quiet: Quiet = False,
    ) -> None:
        """Simulate genotypes with block LD and write OUT.bed/.bim/.fam."""
        parameters = {"n_samples": n_samples, "n_variants": n_variants, "n_chromosomes": n_chromosomes,
                      "block_size": block_size, "ld_rho": ld_rho, "maf_range": [maf_min, maf_max],
                      "missing_rate": missing_rate, "method": method, "seed": seed}

        def body(log) -> None:
            from deepprs.simulate import write_simulated_cohort

            with log.step("simulate genotypes"):
                write_simulated_cohort(out, n_samples, n_variants, n_chromosomes=n_chromosomes,
                                       block_size=block_size, ld_rho=ld_rho, maf_range=(maf_min, maf_max),
                                       missing_rate=missing_rate, method=method, seed=seed)
            log.info(f"wrote {out}.bed/.bim/.fam: {n_samples} samples x {n_variants} variants")

        run_logged(out, "simulate-genotypes", body, quiet=quiet, parameters=parameters)
