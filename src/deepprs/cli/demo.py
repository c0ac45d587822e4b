"""`deepprs demo`: the whole pipeline on a simulated cohort, ending in OUT/report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepprs.cli.common import Quiet, Seed, Threads, run_logged


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to the app."""

    @app.command("demo")
    def demo(
        out: Annotated[str, typer.Option("--out", help="output folder")],
        n_samples: Annotated[int, typer.Option("--n-samples", help="simulated samples")] = 2000,
        n_variants: Annotated[int, typer.Option("--n-variants", help="simulated variants")] = 10_000,
        seed: Seed = 1,
        threads: Threads = None,
        quiet: Quiet = False,
    ) -> None:
        """Simulate a cohort, then QC, PCA, GWAS, cvBLUP and a PRS benchmark; writes OUT/report.html.

        Each step writes OUT/<step>/ with its own log and provenance; the demo's own log is OUT/demo.log.
        """
        from deepprs.demo import run_demo

        def body(log) -> None:
            report = run_demo(out, n_samples=n_samples, n_variants=n_variants, seed=seed, quiet=quiet)
            log.info(f"report: {report}")

        Path(out).mkdir(parents=True, exist_ok=True)
        run_logged(
            str(Path(out) / "demo"),
            "demo",
            body,
            quiet=quiet,
            threads=threads,
            parameters={"n_samples": n_samples, "n_variants": n_variants, "seed": seed},
        )
