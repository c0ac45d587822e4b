"""Run logs, provenance JSON and atomic outputs (deepprs.utils.runlog)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from deepprs import __version__
from deepprs.errors import InputError
from deepprs.utils.runlog import (
    RunLog,
    atomic_output,
    atomic_path,
    current_run,
    estimate_memory,
    peak_memory_mb,
    track,
)

ARGV = ["deepprs", "gwas", "--bfile", "data/my cohort", "--pheno-name", "BMI,Height", "--out", "res/run1"]


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_log_and_provenance_on_success(tmp_path):
    out = tmp_path / "res" / "run1"
    parameters = {"maf": 0.01, "names": ("a", "b"), "path": tmp_path, "n": np.int64(3)}
    with RunLog(out, "gwas", argv=ARGV, quiet=True, parameters=parameters) as log:
        assert current_run() is log
        with log.step("association"):
            with atomic_output(f"{out}.tsv") as handle:
                handle.write("ID\tBETA\n")
        with atomic_path(f"{out}.npy") as tmp:
            np.save(tmp, np.arange(3))
        estimate_memory("dosage block", 3 * 2**20)
        log.warn("5 samples dropped")
    assert current_run() is None
    assert _files(out.parent) == ["run1.log", "run1.npy", "run1.provenance.json", "run1.tsv"]
    text = (out.parent / "run1.log").read_text()
    assert f"deepprs {__version__} gwas" in text
    assert "command: " + shlex.join(ARGV) in text            # the full command, quoted so it can be re-run
    assert "command: deepprs gwas --bfile 'data/my cohort' --pheno-name BMI,Height --out res/run1" in text
    assert re.search(r"^association: \d+\.\d\d s$", text, re.M)
    assert "memory estimate for dosage block: 3 MiB" in text
    assert "warning: 5 samples dropped" in text
    elapsed = re.search(r"^elapsed: (\d+\.\d\d) s; peak memory: (\d+) MiB$", text, re.M)
    assert elapsed and float(elapsed.group(1)) >= 0 and int(elapsed.group(2)) > 10
    record = json.loads((out.parent / "run1.provenance.json").read_text())
    assert record["software"] == "deepprs" and record["version"] == __version__
    assert record["command"] == "gwas" and record["argv"] == ARGV
    assert record["parameters"] == {"maf": 0.01, "names": ["a", "b"], "path": str(tmp_path), "n": "3"}
    assert record["outputs"] == [f"{out}.tsv", f"{out}.npy"]
    assert [s["step"] for s in record["steps"]] == ["association"]
    assert record["elapsed_seconds"] >= 0 and record["peak_memory_mib"] > 10


def test_failed_run_removes_its_outputs_and_keeps_the_log(tmp_path):
    out = tmp_path / "run"
    (tmp_path / "unrelated.txt").write_text("not ours\n")
    with pytest.raises(InputError, match="bad phenotype"):
        with RunLog(out, "fit", argv=ARGV, quiet=True):
            with atomic_output(f"{out}.weights.tsv") as handle:
                handle.write("done\n")
            with atomic_path(f"{out}.model.safetensors") as tmp:
                tmp.write_bytes(b"\x00" * 10)
            assert (tmp_path / "run.weights.tsv").exists()
            raise InputError("bad phenotype")
    assert _files(tmp_path) == ["run.log", "unrelated.txt"]       # no provenance, no outputs
    text = (tmp_path / "run.log").read_text()
    assert "error: bad phenotype" in text and "no output files were kept" in text
    assert "elapsed: " in text and current_run() is None


def test_atomic_output_leaves_no_partial_file(tmp_path):
    target = tmp_path / "table.tsv"
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_output(target) as handle:
            handle.write("half a line")
            raise RuntimeError("disk full")
    assert _files(tmp_path) == []
    target.write_text("previous result\n")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as handle:
            handle.write("new")
            raise KeyboardInterrupt
    assert target.read_text() == "previous result\n" and _files(tmp_path) == ["table.tsv"]
    with pytest.raises(ValueError):
        with atomic_path(tmp_path / "plot.png") as tmp:
            tmp.write_bytes(b"partial")
            raise ValueError
    assert _files(tmp_path) == ["table.tsv"]


def test_atomic_output_binary_and_outside_a_run(tmp_path):
    assert current_run() is None
    with atomic_output(tmp_path / "sub" / "x.bin", "wb") as handle:
        handle.write(b"\x01\x02")
    assert (tmp_path / "sub" / "x.bin").read_bytes() == b"\x01\x02"


def test_nested_runs_register_with_the_innermost(tmp_path):
    with RunLog(tmp_path / "outer", "outer", argv=["a"], quiet=True) as outer:
        with RunLog(tmp_path / "inner", "inner", argv=["b"], quiet=True) as inner:
            with atomic_output(tmp_path / "inner.txt") as handle:
                handle.write("x")
            assert current_run() is inner
        assert current_run() is outer
    assert inner.outputs == [tmp_path / "inner.txt"] and outer.outputs == []


def test_console_output_unless_quiet(tmp_path, capsys):
    with RunLog(tmp_path / "loud", "qc", argv=["deepprs", "qc"]) as log:
        log.info("hello [bold]world[/bold]")
    err = capsys.readouterr().err
    assert "hello [bold]world[/bold]" in err          # markup is printed literally, not interpreted
    with RunLog(tmp_path / "quiet", "qc", argv=["deepprs", "qc"], quiet=True) as log:
        log.info("silent")
    assert capsys.readouterr().err == ""
    assert "silent" in (tmp_path / "quiet.log").read_text()


def test_track_yields_everything_and_peak_memory():
    assert list(track(range(5), "blocks")) == [0, 1, 2, 3, 4]
    assert list(track(iter("abc"), "letters", total=3, disable=False)) == ["a", "b", "c"]
    before = peak_memory_mb()
    block = np.ones(40 * 2**20 // 8)                  # 40 MiB touched
    assert peak_memory_mb() >= before and peak_memory_mb() >= block.nbytes / 2**20


def test_collection_deferred_by_the_executable_resumes_when_the_command_runs(tmp_path):
    """The ``deepprs`` executable starts with the garbage collector off (imports); every command's
    body must run with it back on, or a long training run would never free reference cycles."""
    import gc

    from deepprs.cli.common import COLLECTION_DEFERRED, defer_collection, run_logged

    states = []
    try:
        defer_collection()
        assert not gc.isenabled() and COLLECTION_DEFERRED[0]
        run_logged(str(tmp_path / "run"), "test", lambda log: states.append(gc.isenabled()), quiet=True)
    finally:
        COLLECTION_DEFERRED[0] = False
        gc.enable()
        gc.unfreeze()  # (resume_collection froze every object of the test session)
    assert states == [True]
    assert not COLLECTION_DEFERRED[0]


def test_executable_runs_a_command_with_the_collector_on(tmp_path):
    """End to end through the console entry point (a subprocess: it exits with os._exit)."""
    import subprocess
    import sys

    script = (
        "import gc, sys\n"
        "import deepprs.utils.runlog as runlog\n"
        "original = runlog.RunLog.__enter__\n"
        "def enter(self):\n"
        "    print('collector', gc.isenabled(), file=sys.stderr)\n"
        "    return original(self)\n"
        "runlog.RunLog.__enter__ = enter\n"
        "from deepprs.cli.main import entry\n"
        "sys.argv = ['deepprs', 'simulate-genotypes', '--n-samples', '20', '--n-variants', '30', '--quiet',\n"
        f"            '--out', {str(tmp_path / 'g')!r}]\n"
        "entry()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "collector True" in result.stderr
