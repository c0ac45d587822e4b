"""The ``deepprs`` command line: a thin typer shell over the Python API.

Each command lives in its own module under :mod:`deepprs.cli` and registers itself on ``app``.
Errors that are the user's to fix (:class:`deepprs.errors.DeepPRSError`) print one line and
exit with status 2, without a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from deepprs import __version__
from deepprs.errors import DeepPRSError

app = typer.Typer(
    name="deepprs",
    help="Deep learning for statistical genetics: PRS with honest linear baselines, GWAS, cvBLUP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = [
    "simulate", "qc", "pca", "gwas", "cvblup", "pleiotropy", "fit", "predict", "export", "benchmark",
    "report", "demo",
]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"deepprs {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                       help="print the version and exit")) -> None:
    """deepprs command line."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"deepprs.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Console entry point; turns user errors into a one-line message and exit code 2."""
    from deepprs.cli import common

    common.INVOCATION[:] = ["deepprs", *(sys.argv[1:] if argv is None else argv)]
    try:
        app(args=argv, standalone_mode=False)
    except DeepPRSError as exc:
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
