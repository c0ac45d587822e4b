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
    except Exception as exc:  # usage errors (missing or bad options), Ctrl-C
        usage, abort = _usage_error_types()
        if isinstance(exc, usage):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, abort):
            sys.exit(1)
        raise


def _usage_error_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """The exception types of a bad command line and of an aborted one: click's, and those of the
    click copy that typer >= 0.20 ships as ``typer._click`` (its errors are not click's)."""
    usage: list[type] = []
    abort: list[type] = [typer.Abort] if hasattr(typer, "Abort") else []
    for module_name in ("click.exceptions", "typer._click.exceptions"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        usage += [module.ClickException] if hasattr(module, "ClickException") else []
        abort += [module.Abort] if hasattr(module, "Abort") else []
    return tuple(usage), tuple(abort)


def entry() -> None:
    """The ``deepprs`` executable: :func:`main`, then a quick exit.

    After the command has finished (its outputs written and closed, its log flushed), the
    atexit handlers run and the process ends with ``os._exit``: the interpreter's own shut-down
    (tearing down torch's, pandas' and numpy's modules object by object) would add 0.1-0.15 s to
    every run, which is 5 % of a GWAS of 100,000 variants. Uncaught exceptions take the normal
    route (traceback, ordinary shut-down).
    """
    import atexit
    import os

    from deepprs.cli.common import defer_collection

    defer_collection()  # until the command's imports are done (run_logged resumes it)
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be written anyway
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
