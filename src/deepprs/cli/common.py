"""Option types and helpers shared by every command: the plink-style flag conventions.

Every command takes ``--out PREFIX`` and writes ``PREFIX.log`` + ``PREFIX.provenance.json``
through :func:`run_logged`; genotype input is one of ``--bfile/--pfile/--bgen``; lists such as
``--pheno-name`` accept repeats or commas (``--pheno-name A,B``).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from deepprs.utils.runlog import RunLog

T = TypeVar("T")

# The command line as the user gave it (set by cli.main.main), echoed into every log.
INVOCATION: list[str] = []

# Set by the ``deepprs`` executable (cli.main.entry), which starts with the cyclic garbage collector
# off; :func:`resume_collection` turns it back on once the command's imports are done.
COLLECTION_DEFERRED: list[bool] = [False]


def defer_collection() -> None:
    """Turn the cyclic garbage collector off until :func:`resume_collection` (the executable only).

    A command's first imports (torch, pandas, scipy: about a million objects) trigger hundreds of
    collections that find nothing to free and walk every object imported so far: 0.3 s of the
    1.3 s it takes to import the GWAS code.
    """
    COLLECTION_DEFERRED[0] = True
    gc.disable()


def resume_collection() -> None:
    """After :func:`defer_collection`: move everything imported so far to the collector's permanent
    generation (``gc.freeze``: later collections skip it) and turn the collector back on."""
    if COLLECTION_DEFERRED[0]:
        COLLECTION_DEFERRED[0] = False
        gc.freeze()
        gc.enable()

Bfile = Annotated[str | None, typer.Option("--bfile", help="PLINK 1 prefix (.bed/.bim/.fam)")]
Pfile = Annotated[str | None, typer.Option("--pfile", help="PLINK 2 prefix (.pgen/.pvar/.psam)")]
Bgen = Annotated[str | None, typer.Option(
    "--bgen", help="BGEN file (v1.1-1.3; the second allele is counted, as plink2 --bgen ... ref-first)")]
Sample = Annotated[str | None, typer.Option(
    "--sample", help="Oxford .sample file for --bgen (default: the .bgen's prefix + .sample if it exists, "
    "else the sample IDs stored in the BGEN)")]
Pheno = Annotated[str | None, typer.Option("--pheno", help="phenotype table with FID IID header")]
PhenoName = Annotated[list[str] | None,
                      typer.Option("--pheno-name", help="phenotype column(s); repeat or comma-separate")]
Covar = Annotated[str | None, typer.Option("--covar", help="covariate table with FID IID header")]
CovarName = Annotated[list[str] | None,
                      typer.Option("--covar-name", help="covariate column(s); repeat or comma-separate")]
Keep = Annotated[str | None, typer.Option("--keep", help="keep only these samples (FID IID per line)")]
Remove = Annotated[str | None, typer.Option("--remove", help="remove these samples (FID IID per line)")]
Out = Annotated[str, typer.Option("--out", help="output prefix")]
Threads = Annotated[int | None, typer.Option("--threads", help="CPU threads (torch, BLAS and OpenMP pools)")]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda or auto")]
Seed = Annotated[int, typer.Option("--seed", help="random seed")]
Quiet = Annotated[bool, typer.Option("--quiet", help="no console output (the log still gets it)")]


def split_names(values: list[str] | None) -> list[str] | None:
    """Flatten repeated/comma-separated list options; ``None`` when empty."""
    if not values:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None


def run_logged(out: str, command: str, body: Callable[[RunLog], T], *, quiet: bool = False,
               threads: int | None = None, parameters: dict[str, Any] | None = None,
               argv: list[str] | None = None, blas_threads: int | None = None) -> T:
    """Run ``body(log)`` inside a :class:`RunLog` for ``out`` (log, provenance, cleanup on error);
    ``threads`` / ``blas_threads``: see :func:`deepprs.utils.device.set_threads`."""
    from deepprs.utils.device import set_threads

    resume_collection()
    set_threads(threads, blas=blas_threads)
    argv = argv if argv is not None else (list(INVOCATION) or None)
    with RunLog(out, command, argv=argv, quiet=quiet, parameters=parameters) as log:
        return body(log)
