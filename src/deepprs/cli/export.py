"""`deepprs export`: a linear bundle's weights as a PGS Catalog or plink2 --score file."""

from __future__ import annotations

from typing import Annotated

import typer

from deepprs.cli.common import Quiet, run_logged


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_command(
        model: Annotated[str, typer.Option("--model", help="model bundle directory from 'deepprs fit'")],
        out: Annotated[str, typer.Option("--out", help="output file (.gz = gzip for pgs-catalog)")],
        file_format: Annotated[str, typer.Option("--format", help="pgs-catalog or plink-score")] = "plink-score",
        trait: Annotated[str | None, typer.Option("--trait", help="trait_reported for the PGS header")] = None,
        genome_build: Annotated[str, typer.Option("--genome-build", help="GRCh37, GRCh38 or NR")] = "NR",
        include_zero: Annotated[bool, typer.Option("--include-zero", help="also write zero weights")] = False,
        quiet: Quiet = False,
    ) -> None:
        """Export per-allele weights (effect allele = A1). plink-score: 'ID A1 BETA' for
        plink2 --score FILE 1 2 3 header-read cols=+scoresums."""
        from deepprs.models.bundle import export_weights

        def body(log) -> None:
            n = export_weights(
                model,
                out,
                file_format=file_format,
                trait=trait,
                genome_build=genome_build,
                include_zero=include_zero,
            )
            log.info(f"{n} variant weights written to {out} ({file_format})")

        prefix = out[:-3] if out.endswith(".gz") else out
        run_logged(
            prefix,
            "export",
            body,
            quiet=quiet,
            parameters={"model": model, "format": file_format, "out": out},
        )
