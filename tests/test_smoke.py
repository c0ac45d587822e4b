import pytest

from deepprs.cli.main import app


def test_app_has_name():
    assert app.info.name == "deepprs"


def test_executable_exits_quickly_with_the_commands_status(tmp_path):
    """`deepprs` (deepprs.cli.main:entry) ends with os._exit after the command: the exit status,
    the messages and the files written must be those of an ordinary exit."""
    import subprocess
    import sys
    from pathlib import Path

    data = Path(__file__).parent / "data" / "gwas"
    command = [sys.executable, "-m", "deepprs.cli.main"]
    version = subprocess.run([*command, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("deepprs ")
    bad = subprocess.run([*command, "gwas", "--bfile", str(tmp_path / "absent"), "--pheno", str(data / "eur.pheno"),
                          "--out", str(tmp_path / "bad")], capture_output=True, text=True)
    assert bad.returncode == 2 and "Error:" in bad.stderr
    assert not list(tmp_path.glob("bad*.glm.*"))
    out = tmp_path / "ok"
    good = subprocess.run([*command, "gwas", "--bfile", str(data / "eur"), "--pheno", str(data / "eur.pheno"),
                           "--pheno-name", "PHENO", "--no-plots", "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    log = Path(f"{out}.log").read_text()
    assert log.rstrip().splitlines()[-1].startswith("end: ")  # the log was flushed and closed
    rows = Path(f"{out}.PHENO.glm.linear").read_text().splitlines()
    assert rows[0].startswith("#CHROM") and len(rows) == 1 + len((data / "eur.bim").read_text().splitlines())
    assert Path(f"{out}.provenance.json").read_text().rstrip().endswith("}")


def test_bad_command_lines_print_a_usage_error_not_a_traceback(capsys):
    """Missing or unknown options (typer >= 0.20 raises its own copy of click's errors) exit 2 with
    click's usage message."""
    import pytest

    from deepprs.cli.main import main

    for argv, message in ((["demo"], "Missing option '--out'"), (["gwas", "--out", "x", "--nope"], "No such option")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


@pytest.mark.parametrize(("threads", "blas"), [(1, None), (2, 1), (None, 1)])
def test_set_threads_limits_torch_and_the_blas_pools(threads, blas):
    """--threads caps every pool, as plink2's does: torch, the BLAS libraries numpy and scipy
    loaded (threadpoolctl) and, through the environment, those loaded later (a subprocess: the
    limits are process-wide). ``blas`` caps numpy's / scipy's OpenBLAS lower (gwas: 1), the
    library scipy loads afterwards included, also without --threads."""
    import json
    import subprocess
    import sys

    script = (
        "import json, os, numpy, torch\n"
        "from threadpoolctl import threadpool_info\n"
        "from deepprs.utils.device import set_threads\n"
        f"set_threads({threads}, blas={blas})\n"
        "import scipy.linalg\n"
        "openblas = [pool['num_threads'] for pool in threadpool_info() if pool['internal_api'] == 'openblas']\n"
        "print(json.dumps([torch.get_num_threads(), openblas, os.environ['OPENBLAS_NUM_THREADS'],\n"
        "                  os.environ.get('OMP_NUM_THREADS')]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    torch_threads, openblas_threads, variable, omp = json.loads(result.stdout.strip().splitlines()[-1])
    expected_blas = threads if blas is None else blas
    assert variable == str(expected_blas)
    assert openblas_threads and all(count == expected_blas for count in openblas_threads)
    if threads is not None:
        assert torch_threads == threads and omp == str(threads)
