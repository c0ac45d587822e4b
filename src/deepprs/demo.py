"""The built-in demo: a whole analysis on a simulated cohort, ending in an HTML report.

``run_demo`` simulates genotypes and an additive trait (h² = 0.5), then runs QC, PCA, GWAS,
cvBLUP and a PRS benchmark (C+T, ridge, an MLP and its linear twin), each step in
``OUT/<step>/`` with its own log and provenance, and writes ``OUT/report.html``.

Each step calls a ``deepprs`` command in-process (``deepprs.cli.main.main([...])``), so the demo
runs exactly what a user would type; the equivalent command line is in every step's log.  A
step whose command is not available in this installation is skipped with a note, so the demo
always finishes; steps whose inputs are missing are skipped too.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from deepprs.utils.runlog import atomic_output, current_run, estimate_memory

TRAIT_NAME = "PHENO"
# the benchmark adds the linear twin of every network itself ("mlp-linear")
BENCHMARK_MODELS = ("ct", "ridge", "mlp")
# keeps the network short enough for a demo: 2,000 in-fold screened inputs, early stopping
BENCHMARK_CONFIG = {"mlp": {"epochs": 40, "patience": 6, "top_k": 2000}}


@dataclass
class DemoState:
    """Paths produced so far (``None`` until the step that makes them has run)."""

    out_dir: Path
    n_samples: int
    n_variants: int
    seed: int
    quiet: bool
    genotypes: Path | None = None  # PLINK prefix used by the analysis steps
    phenotype: Path | None = None  # FID IID PHENO table
    covariates: Path | None = None  # PCs as covariates
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _note(state: DemoState, message: str) -> None:
    run = current_run()
    if run is not None:
        run.info(message)
    elif not state.quiet:
        print(message, file=sys.stderr)


def command_available(name: str) -> bool:
    """Whether ``deepprs <name>`` is registered (the module exists and defines the command)."""
    try:
        main_module = importlib.import_module("deepprs.cli.main")
    except ImportError:
        return False
    names = {
        info.name or getattr(info.callback, "__name__", "") for info in main_module.app.registered_commands
    }
    return name in names


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    """Make ``sys.argv`` the step's own command line while it runs (it goes into the provenance)."""
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


def run_command(state: DemoState, step: str, args: list[str]) -> bool:
    """Run ``deepprs <args> [--quiet]`` in-process; True on success (a failure is logged, not raised)."""
    from deepprs.cli.main import main

    if not command_available(args[0]):
        state.skipped.append(step)
        _note(state, f"[{step}] skipped: `deepprs {args[0]}` is not available in this installation")
        return False
    args = list(args) + (["--quiet"] if state.quiet else [])
    _note(state, f"[{step}] deepprs {shlex.join(args)}")
    t0 = time.time()
    code: int | str | None = 0
    with _argv(["deepprs", *args]):
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code
        except Exception as exc:  # a bug in one step must not stop the demo; the step log has the details
            code = f"{type(exc).__name__}: {exc}"
    if code not in (0, None):
        state.failed.append(step)
        _note(state, f"[{step}] failed ({code}); see {state.out_dir / step}")
        return False
    state.ran.append(step)
    state.seconds[step] = time.time() - t0
    _note(state, f"[{step}] done in {state.seconds[step]:.1f} s")
    return True


def _prefix(state: DemoState, step: str, name: str) -> Path:
    return state.out_dir / step / name


def _first(folder: Path, pattern: str) -> Path | None:
    found = sorted(p for p in folder.rglob(pattern) if not p.name.startswith("."))
    return found[0] if found else None


# ---------------------------------------------------------------------------- steps
# Each step is one deepprs command; the flags are those a user would type.


def step_genotypes(state: DemoState) -> None:
    """Simulate genotypes with block LD on 4 chromosomes -> genotypes/cohort.bed."""
    prefix = _prefix(state, "genotypes", "cohort")
    estimate_memory("simulated genotypes (int8 + packed)", state.n_samples * state.n_variants * 1.5)
    args = ["simulate-genotypes", "--out", str(prefix), "--n-samples", str(state.n_samples),
            "--n-variants", str(state.n_variants), "--n-chromosomes", "4", "--seed", str(state.seed)]
    if run_command(state, "genotypes", args):
        state.genotypes = prefix


def step_trait(state: DemoState) -> None:
    """Additive trait, h2 = 0.5, 1% of the variants causal -> trait/trait.pheno (+ the truth)."""
    if state.genotypes is None:
        return _skip_missing_input(state, "trait")
    prefix = _prefix(state, "trait", "trait")
    n_causal = max(10, state.n_variants // 100)
    args = ["simulate", "--bfile", str(state.genotypes), "--model", "additive", "--n-causal", str(n_causal),
            "--h2", "0.5", "--seed", str(state.seed), "--out", str(prefix)]
    if run_command(state, "trait", args):
        state.phenotype = Path(f"{prefix}.pheno")


def step_qc(state: DemoState) -> None:
    """Sample and variant QC -> qc/cohort.qc.json and the filtered fileset used from here on."""
    if state.genotypes is None:
        return _skip_missing_input(state, "qc")
    prefix = _prefix(state, "qc", "cohort")
    args = ["qc", "--bfile", str(state.genotypes), "--maf", "0.01", "--geno", "0.05", "--mind", "0.1",
            "--hwe", "1e-6", "--make-bed", "--out", str(prefix)]
    if run_command(state, "qc", args) and Path(f"{prefix}.bed").is_file():
        state.genotypes = prefix


def step_pca(state: DemoState) -> None:
    """Top 10 genetic PCs -> pca/cohort.eigenvec (GWAS covariates)."""
    if state.genotypes is None:
        return _skip_missing_input(state, "pca")
    prefix = _prefix(state, "pca", "cohort")
    estimate_memory("PCA (randomized, one genotype block at a time)", 8.0 * state.n_samples * 64)
    args = ["pca", "--bfile", str(state.genotypes), "--pca", "10", "--seed", str(state.seed),
            "--out", str(prefix)]
    if run_command(state, "pca", args):
        state.covariates = _first(state.out_dir / "pca", "*.eigenvec")


def step_gwas(state: DemoState) -> None:
    """Linear GWAS of the trait, PCs 1-5 as covariates -> gwas/cohort.PHENO.glm.linear."""
    if state.genotypes is None or state.phenotype is None:
        return _skip_missing_input(state, "gwas")
    prefix = _prefix(state, "gwas", "cohort")
    args = ["gwas", "--bfile", str(state.genotypes), "--pheno", str(state.phenotype),
            "--pheno-name", TRAIT_NAME, "--out", str(prefix)]
    if state.covariates is not None:
        args += ["--covar", str(state.covariates), "--covar-name", "PC1,PC2,PC3,PC4,PC5"]
    run_command(state, "gwas", args)


def step_cvblup(state: DemoState) -> None:
    """REML h2 and cvBLUP of the trait -> cvblup/trait.h2.json, cvblup/trait.cvblup.tsv."""
    if state.genotypes is None or state.phenotype is None:
        return _skip_missing_input(state, "cvblup")
    prefix = _prefix(state, "cvblup", "trait")
    estimate_memory("GRM + eigendecomposition", 3 * 8.0 * state.n_samples**2)
    args = ["cvblup", "--bfile", str(state.genotypes), "--pheno", str(state.phenotype),
            "--pheno-name", TRAIT_NAME, "--out", str(prefix)]
    run_command(state, "cvblup", args)


def step_benchmark(state: DemoState) -> None:
    """Cross-validated PRS: C+T, ridge, MLP (+ its linear twin), 3 folds -> benchmark/."""
    if state.genotypes is None or state.phenotype is None:
        return _skip_missing_input(state, "benchmark")
    estimate_memory("benchmark (packed genotypes + one dense training fold)",
                    state.n_samples * state.n_variants * (0.25 + 4.0))
    config = state.out_dir / "benchmark" / "models.json"
    with atomic_output(config) as handle:
        json.dump(BENCHMARK_CONFIG, handle, indent=2)
    args = ["benchmark", "--bfile", str(state.genotypes), "--pheno", str(state.phenotype), "--pheno-name",
            TRAIT_NAME, "--models", ",".join(BENCHMARK_MODELS), "--folds", "3", "--n-boot", "200",
            "--config", str(config), "--device", "cpu", "--seed", str(state.seed),
            "--out", str(state.out_dir / "benchmark")]
    run_command(state, "benchmark", args)


def step_report(state: DemoState) -> Path:
    """The HTML report of everything above -> ``OUT/report.html`` (log in ``report/``)."""
    from deepprs.report import build_report
    from deepprs.utils.runlog import RunLog

    report = state.out_dir / "report.html"
    prefix = _prefix(state, "report", "report")
    argv = ["deepprs", "report", "--in", str(state.out_dir), "--out", str(report)]
    with RunLog(
        prefix,
        "report",
        argv=argv,
        quiet=state.quiet,
        parameters={"in": str(state.out_dir), "out": str(report)},
    ):
        build_report(state.out_dir, report, title="deepprs demo: simulated cohort")
    state.ran.append("report")
    return report


def _skip_missing_input(state: DemoState, step: str) -> None:
    state.skipped.append(step)
    _note(state, f"[{step}] skipped: an earlier step it needs did not run")


def _summary_table(state: DemoState):
    """Rich table: one row per step with its status, time and output folder."""
    from rich.table import Table

    table = Table(title="deepprs demo", show_lines=False)
    for column in ("step", "status", "seconds", "outputs"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for step in [*state.ran, *state.failed, *state.skipped]:
        status = ("[green]ran[/]" if step in state.ran else "[red]failed[/]" if step in state.failed
                  else "[yellow]skipped[/]")
        seconds = f"{state.seconds[step]:.1f}" if step in state.seconds else ""
        folder = state.out_dir / step
        table.add_row(step, status, seconds, str(folder) if folder.is_dir() else "")
    return table


STEPS = (step_genotypes, step_trait, step_qc, step_pca, step_gwas, step_cvblup, step_benchmark)


def run_demo(
    out_dir: str | Path,
    *,
    n_samples: int = 2000,
    n_variants: int = 10_000,
    seed: int = 1,
    quiet: bool = False,
) -> Path:
    """Run the whole pipeline on a simulated cohort and return the path of ``OUT/report.html``.

    Steps (each in ``out_dir/<step>/`` with ``.log`` and ``.provenance.json``): genotypes,
    trait (additive, h² = 0.5), qc, pca, gwas, cvblup, benchmark, report.  Steps whose command
    is not installed, or whose inputs are missing, are skipped with a note.

    Parameters
    ----------
    out_dir
        Output folder (created).
    n_samples, n_variants
        Size of the simulated cohort.  Memory is dominated by the n_samples² GRM
        (2,000 samples: ~100 MiB) and one dense fold of the benchmark.
    seed
        Seed of every random step.
    quiet
        No console output (the logs still get everything).

    Examples
    --------
    >>> report = run_demo("demo_out", n_samples=300, n_variants=1000, quiet=True)  # doctest: +SKIP
    """
    from rich.console import Console

    from deepprs.errors import InputError

    if n_samples < 50 or n_variants < 100:
        raise InputError("the demo needs at least --n-samples 50 and --n-variants 100")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = DemoState(out_dir=out_dir, n_samples=n_samples, n_variants=n_variants, seed=seed, quiet=quiet)
    console = Console(stderr=True, quiet=quiet, highlight=False)
    total = len(STEPS) + 1
    t_start = time.time()
    for number, step in enumerate(STEPS, start=1):
        name = step.__name__.removeprefix("step_")
        console.rule(f"[bold]step {number}/{total}: {name}[/]", align="left")
        console.print((step.__doc__ or "").strip().replace("``", ""), style="dim", markup=False)
        step(state)
    console.rule(f"[bold]step {total}/{total}: report[/]", align="left")
    t_report = time.time()
    report = step_report(state)
    state.seconds["report"] = time.time() - t_report
    _note(state, f"steps run: {', '.join(state.ran)}")
    if state.skipped:
        _note(state, f"steps skipped: {', '.join(state.skipped)}")
    if state.failed:
        _note(state, f"steps failed: {', '.join(state.failed)} (see their logs)")
    console.print(_summary_table(state))
    console.print(f"[bold green]demo finished in {time.time() - t_start:.0f} s[/]; open {report}")
    return report
