"""`deepprs report`: one self-contained HTML page for an analysis folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepprs.cli.common import Quiet, run_logged


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to the app."""

    @app.command("report")
    def report(
        analysis_dir: Annotated[str, typer.Option("--in", help="analysis folder (searched recursively)")],
        out: Annotated[str, typer.Option("--out", help="HTML file to write, e.g. report.html")],
        title: Annotated[str | None, typer.Option("--title", help="page title")] = None,
        quiet: Quiet = False,
    ) -> None:
        """Build one self-contained HTML report (inline CSS, embedded plots, no scripts).

        Writes OUT and, beside it, the run's log and provenance (report.html: report.log,
        report.provenance.json).
        """
        from deepprs.report import build_report

        out_path = Path(out)
        prefix = str(out_path.with_suffix("")) if out_path.suffix.lower() in (".html", ".htm") else out

        def body(log) -> None:
            path = build_report(analysis_dir, out_path, title=title)
            log.info(f"report written to {path}")

        run_logged(
            prefix, "report", body, quiet=quiet, parameters={"in": analysis_dir, "out": out, "title": title}
        )
