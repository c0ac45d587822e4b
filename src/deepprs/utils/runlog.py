"""Run logs, provenance and atomic outputs.

Every command writes ``<out>.log`` (full command, version, timings, peak memory) and
``<out>.provenance.json``.  Output files are written under a temporary name and renamed
when complete; if the run fails, every output it created is removed and only the log stays.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_CURRENT: list[RunLog] = []


def current_run() -> RunLog | None:
    """The innermost active :class:`RunLog`, or ``None`` (API calls outside the CLI)."""
    return _CURRENT[-1] if _CURRENT else None


def peak_memory_mb() -> float:
    """Peak resident set size of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: str = "w", **open_kwargs: Any) -> Iterator[Any]:
    """Open ``path`` for writing under a temporary name; rename into place on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    The final path is registered with the active :class:`RunLog` (if any) so that a
    later failure in the same run removes it too.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode, **open_kwargs) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    run = current_run()
    if run is not None:
        run.register_output(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path for writers that take a file name (savefig, safetensors)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    run = current_run()
    if run is not None:
        run.register_output(path)


class RunLog:
    """Context manager for one command run.

    Parameters
    ----------
    out_prefix
        Output prefix; the log goes to ``<out_prefix>.log`` and provenance to
        ``<out_prefix>.provenance.json``.
    command
        Name of the command (``"gwas"``, ``"simulate"`` …).
    argv
        Full command line; defaults to ``sys.argv``.
    quiet
        Suppress console messages (the log file still gets everything).
    """

    def __init__(self, out_prefix: str | os.PathLike[str], command: str, *,
                 argv: list[str] | None = None, quiet: bool = False,
                 parameters: dict[str, Any] | None = None) -> None:
        self.out_prefix = str(out_prefix)
        self.command = command
        self.argv = list(sys.argv if argv is None else argv)
        self.quiet = quiet
        self.parameters = dict(parameters or {})
        self.outputs: list[Path] = []
        self.steps: list[dict[str, Any]] = []
        self._lines: list[str] = []
        self._t0 = time.time()
        self.log_path = Path(f"{self.out_prefix}.log")
        self.provenance_path = Path(f"{self.out_prefix}.provenance.json")

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> RunLog:
        from deepprs import __version__

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.info(f"deepprs {__version__} {self.command}")
        self.info("command: " + shlex.join(self.argv))
        self.info(f"python {platform.python_version()} on {platform.platform()}")
        self.info(f"start: {time.strftime('%Y-%m-%d %H:%M:%S')}")
        _CURRENT.append(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        _CURRENT.remove(self)
        elapsed = time.time() - self._t0
        if exc is not None:
            for path in self.outputs:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            self.info(f"error: {exc}")
            self.info("no output files were kept")
        self.info(f"elapsed: {elapsed:.2f} s; peak memory: {peak_memory_mb():.0f} MiB")
        self.info(f"end: {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self._flush_log()
        if exc is None:
            self._write_provenance(elapsed)

    # -- recording ---------------------------------------------------------------
    def info(self, message: str) -> None:
        """Record a line in the log (and print it unless quiet)."""
        self._lines.append(message)
        if not self.quiet:
            from rich.console import Console

            Console(stderr=True, highlight=False).print(message, markup=False)

    def warn(self, message: str) -> None:
        self.info(f"warning: {message}")

    def register_output(self, path: str | os.PathLike[str]) -> None:
        self.outputs.append(Path(path))

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time a named step; recorded in the log and provenance."""
        t0 = time.time()
        yield
        dt = time.time() - t0
        self.steps.append({"step": name, "seconds": round(dt, 3)})
        self.info(f"{name}: {dt:.2f} s")

    def _flush_log(self) -> None:
        tmp = self.log_path.with_name(f".{self.log_path.name}.tmp{os.getpid()}")
        tmp.write_text("\n".join(self._lines) + "\n")
        os.replace(tmp, self.log_path)

    def _write_provenance(self, elapsed: float) -> None:
        from deepprs import __version__

        record = {
            "software": "deepprs",
            "version": __version__,
            "command": self.command,
            "argv": self.argv,
            "parameters": {k: _jsonable(v) for k, v in self.parameters.items()},
            "outputs": [str(p) for p in self.outputs],
            "steps": self.steps,
            "elapsed_seconds": round(elapsed, 3),
            "peak_memory_mib": round(peak_memory_mb(), 1),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        tmp = self.provenance_path.with_name(f".{self.provenance_path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.replace(tmp, self.provenance_path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def track(iterable, description: str, total: int | None = None, *, disable: bool | None = None):
    """Iterate with a rich progress bar (hidden when quiet or when stderr is not a terminal)."""
    run = current_run()
    if disable is None:
        disable = (run is not None and run.quiet) or not sys.stderr.isatty()
    if disable:  # no bar: skip importing rich's progress machinery (~0.03 s of start-up)
        yield from iterable
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=total)
        for item in iterable:
            yield item
            bar.advance(task)


def estimate_memory(description: str, n_bytes: float) -> None:
    """Print a memory estimate before a large step (``--quiet`` hides it; the log keeps it)."""
    run = current_run()
    message = f"memory estimate for {description}: {n_bytes / 2**20:.0f} MiB"
    if run is not None:
        run.info(message)
