"""Broken genotype/table input: every case raises InputError with a message naming the file and what
to do, and a CLI run on it exits with status 2 leaving only its log."""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer

import deepprs.cli.main as cli_main
from deepprs.cli.common import Bfile, Out, Pfile, Quiet, run_logged
from deepprs.errors import InputError
from deepprs.io import BedReader, load_cohort, open_genotypes
from deepprs.io.cohort import genotype_path
from deepprs.io.pgen import PgenReader
from deepprs.utils.runlog import atomic_output

DATA = Path(__file__).parent / "data" / "io"


ALL_SUFFIXES = (".bed", ".bim", ".fam", ".pgen", ".pvar", ".psam")


def _copy_fixture(directory: Path, suffixes: tuple[str, ...] = ALL_SUFFIXES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for suffix in suffixes:
        shutil.copy(DATA / f"eur60{suffix}", directory / f"g{suffix}")
    return directory / "g"


def _edit_lines(path: Path, edit: Callable[[list[str]], list[str]]) -> None:
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")


def _set_row(index: int, transform: Callable[[list[str]], list[str]], sep: str = "\t"):
    def edit(lines: list[str]) -> list[str]:
        lines[index] = sep.join(transform(lines[index].split()))
        return lines
    return edit


def _rename_variants(path: Path, id_column: int, rows: tuple[int, ...]) -> None:
    """Give the variants on ``rows`` (0-based file lines) the same ID ``rsDUP``."""
    for row in rows:
        _edit_lines(path, _set_row(row, lambda f: f[:id_column] + ["rsDUP"] + f[id_column + 1:]))


# (name, how to break the fileset, expected message regex)
BED_CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("missing_bed", lambda p: Path(f"{p}.bed").unlink(), r"no genotype files found for prefix .*g"),
    ("missing_bim", lambda p: Path(f"{p}.bim").unlink(), r"missing file .*g\.bim; a \.bed needs its \.bim"),
    ("missing_fam", lambda p: Path(f"{p}.fam").unlink(), r"missing file .*g\.fam; a \.bed needs its \.fam"),
    ("sample_major_magic", lambda p: _patch_bytes(Path(f"{p}.bed"), 0, b"\x6c\x1b\x00"),
     r"g\.bed is not a PLINK 1 variant-major \.bed \(magic bytes 6c1b00 instead of 6c1b01\)"),
    ("wrong_magic", lambda p: _patch_bytes(Path(f"{p}.bed"), 0, b"PK\x03"),
     r"g\.bed is not a PLINK 1 .*magic bytes 504b03"),
    ("truncated_bed", lambda p: _truncate(Path(f"{p}.bed"), 1000),
     r"g\.bed has 2003 bytes but 200 variants \(\.bim\) x 60 samples \(\.fam\) need 3003; "
     r"the \.bed is truncated"),
    ("extra_fam_row", lambda p: _edit_lines(Path(f"{p}.fam"), lambda rows: rows + ["999 NEW 0 0 1 -9"]),
     r"has 3003 bytes but 200 variants \(\.bim\) x 61 samples \(\.fam\) need 3203"),
    ("fewer_bim_rows", lambda p: _edit_lines(Path(f"{p}.bim"), lambda rows: rows[:-1]),
     r"199 variants \(\.bim\) x 60 samples \(\.fam\) need 2988; .*does not belong to this \.bim/\.fam"),
    ("bim_5_columns", lambda p: _edit_lines(Path(f"{p}.bim"), _set_row(4, lambda f: f[:5])),
     r"g\.bim line 5: expected 6 columns"),
    ("bim_7_columns", lambda p: _edit_lines(Path(f"{p}.bim"), _set_row(4, lambda f: f + ["x"])),
     r"g\.bim line 5: expected 6 columns \(chrom id cM pos A1 A2\), found 7"),
    ("bim_bad_position",
     lambda p: _edit_lines(Path(f"{p}.bim"), _set_row(2, lambda f: f[:3] + ["12a"] + f[4:])),
     r"g\.bim line 3: position '12a' is not an integer"),
    ("bim_fractional_position",
     lambda p: _edit_lines(Path(f"{p}.bim"), _set_row(6, lambda f: f[:3] + ["1205.5"] + f[4:])),
     r"g\.bim line 7: position '1205\.5' is not an integer"),
    ("fam_5_columns", lambda p: _edit_lines(Path(f"{p}.fam"), _set_row(6, lambda f: f[:5], " ")),
     r"g\.fam line 7: expected 6 columns \(FID IID father mother sex pheno\), found 5"),
    ("empty_fam", lambda p: Path(f"{p}.fam").write_text(""), r"g\.fam has no samples"),
    ("duplicate_sample",
     lambda p: _edit_lines(Path(f"{p}.fam"), _set_row(5, lambda f: _row_of(".fam", 0)[:2] + f[2:], " ")),
     r"2 rows share a duplicate FID IID \(first: \['12 HG00110', '12 HG00110'\]\); "
     r"sample IDs must be unique"),
    ("duplicate_variant", lambda p: _rename_variants(Path(f"{p}.bim"), 1, (9, 3)),
     r"2 variants share a duplicate ID \(first: \['rsDUP'\]\); rename them .*--allow-duplicate-ids"),
]

PGEN_CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("missing_pvar", lambda p: Path(f"{p}.pvar").unlink(),
     r"missing file .*g\.pvar; a \.pgen needs its \.pvar"),
    ("missing_psam", lambda p: Path(f"{p}.psam").unlink(),
     r"missing file .*g\.psam; a \.pgen needs its \.psam"),
    ("wrong_magic", lambda p: _patch_bytes(Path(f"{p}.pgen"), 0, b"\x1f\x8b"),
     r"g\.pgen is not a \.pgen file"),
    ("truncated_pgen", lambda p: _truncate(Path(f"{p}.pgen"), 400), r"g\.pgen cannot be read .*truncated"),
    ("extra_psam_row", lambda p: _edit_lines(Path(f"{p}.psam"), lambda rows: rows + ["999\tNEW\t1\t1"]),
     r"cannot be read with 61 samples \(\.psam\) x 200 variants.*contains 60 samples"),
    ("psam_short_row", lambda p: _edit_lines(Path(f"{p}.psam"), _set_row(3, lambda f: f[:2])),
     r"g\.psam line 4: expected 4 columns \(FID IID SEX PHENO1\), found 2"),
    ("pvar_short_row", lambda p: _edit_lines(Path(f"{p}.pvar"), _set_row(3, lambda f: f[:4])),
     r"g\.pvar line 4: expected 6 columns \(CHROM POS ID REF ALT CM\)"),
    ("pvar_long_row", lambda p: _edit_lines(Path(f"{p}.pvar"), _set_row(5, lambda f: f + ["x"])),
     r"g\.pvar line 6: expected 6 columns \(CHROM POS ID REF ALT CM\), found 7"),
    ("pvar_bad_header",
     lambda p: _edit_lines(Path(f"{p}.pvar"), _set_row(0, lambda f: ["#CHROM", "BP"] + f[2:])),
     r"g\.pvar: header line lacks column\(s\) POS"),
    ("psam_bad_header", lambda p: _edit_lines(Path(f"{p}.psam"), _set_row(0, lambda f: ["#ID"] + f[1:])),
     r"g\.psam: the header must start with '#FID IID' or '#IID'"),
    ("duplicate_variant", lambda p: _rename_variants(Path(f"{p}.pvar"), 2, (8, 2)),
     r"2 variants share a duplicate ID \(first: \['rsDUP'\]\)"),
]


def _patch_bytes(path: Path, offset: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset:offset + len(data)] = data
    path.write_bytes(bytes(raw))


def _truncate(path: Path, n_bytes: int) -> None:
    """Cut the last ``n_bytes`` bytes off a file."""
    path.write_bytes(path.read_bytes()[:-n_bytes])


def _row_of(suffix: str, index: int) -> list[str]:
    return (DATA / f"eur60{suffix}").read_text().splitlines()[index].split()


@pytest.mark.parametrize(("name", "breaker", "message"), BED_CASES, ids=[c[0] for c in BED_CASES])
def test_bad_bed_fileset(tmp_path, name, breaker, message):
    prefix = _copy_fixture(tmp_path / "in", (".bed", ".bim", ".fam"))
    breaker(prefix)
    with pytest.raises(InputError, match=message):
        open_genotypes(prefix)
    with pytest.raises(InputError, match=message):
        load_cohort(prefix)


@pytest.mark.parametrize(("name", "breaker", "message"), PGEN_CASES, ids=[c[0] for c in PGEN_CASES])
def test_bad_pgen_fileset(tmp_path, name, breaker, message):
    prefix = _copy_fixture(tmp_path / "in", (".pgen", ".pvar", ".psam"))
    breaker(prefix)
    with pytest.raises(InputError, match=message):
        open_genotypes(prefix, file_format="pgen")


def test_truncated_bed_message_counts():
    """The expected sizes in BED_CASES are the closed form 3 + ceil(N / 4) * M."""
    assert 3 + (60 + 3) // 4 * 200 == 3003 and 3 + (61 + 3) // 4 * 200 == 3203 and 3 + 15 * 199 == 2988


def test_duplicate_variant_ids_allowed_when_asked(tmp_path):
    prefix = _copy_fixture(tmp_path / "in")
    for suffix, column in ((".bim", 1), (".pvar", 2)):
        def rename(fields: list[str], column: int = column) -> list[str]:
            return fields[:column] + ["rsDUP"] + fields[column + 1:]
        _edit_lines(Path(f"{prefix}{suffix}"), _set_row(3, rename))
        _edit_lines(Path(f"{prefix}{suffix}"), _set_row(7, rename))
    reference = BedReader(DATA / "eur60").read()
    for reader in (BedReader, PgenReader):
        with pytest.raises(InputError, match="duplicate ID"):
            reader(prefix)
        source = reader(prefix, allow_duplicate_variant_ids=True)
        assert (source.variant_table["id"] == "rsDUP").sum() == 2
        np.testing.assert_array_equal(source.read(), reference)
    cohort = load_cohort(prefix, allow_duplicate_variant_ids=True)
    assert cohort.genotypes.n_variants == 200


def test_missing_dot_ids_are_not_duplicates(tmp_path):
    prefix = _copy_fixture(tmp_path / "in", (".bed", ".bim", ".fam"))
    _edit_lines(Path(f"{prefix}.bim"), lambda rows: [_replace_id(r, ".") for r in rows])
    assert BedReader(prefix).n_variants == 200


def _replace_id(row: str, new_id: str) -> str:
    fields = row.split()
    return "\t".join(fields[:1] + [new_id] + fields[2:])


def test_bad_open_arguments(tmp_path):
    with pytest.raises(InputError, match="no genotype files found for prefix"):
        open_genotypes(tmp_path / "none")
    with pytest.raises(InputError, match="unknown genotype format 'vcf'"):
        open_genotypes(DATA / "eur60", file_format="vcf")
    with pytest.raises(InputError, match=r"missing file .*none\.bgen"):
        open_genotypes(tmp_path / "none.bgen")
    with pytest.raises(InputError, match="give exactly one of --bfile, --pfile or --bgen"):
        genotype_path(bfile="a", pfile="b")
    source = BedReader(DATA / "eur60")
    with pytest.raises(InputError, match="missing must be one of"):
        source.read(missing="zero")
    with pytest.raises(InputError, match=r"sample index out of range \(0..59\)"):
        source.read(samples=[60])
    with pytest.raises(InputError, match="variant mask has length 3, expected 200"):
        source.read(variants=np.array([True, False, True]))
    with pytest.raises(InputError, match="block_size must be >= 1"):
        next(source.iter_blocks(0))


# --------------------------------------------------------------------------- through the CLI

def _tiny_cli() -> typer.Typer:
    """A one-command app following the CLI conventions: one output before reading, then read."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """test app"""

    @app.command("freqcheck")
    def freqcheck(bfile: Bfile = None, pfile: Pfile = None, out: Out = "out", quiet: Quiet = False) -> None:
        def body(log) -> None:
            with atomic_output(f"{out}.started.txt") as handle:   # an output finished before the failure
                handle.write("partial\n")
            path, file_format = genotype_path(bfile, pfile)
            source = open_genotypes(path, file_format=file_format)
            frequency = np.nanmean(source.read(), axis=0) / 2
            with atomic_output(f"{out}.afreq") as handle:
                handle.write("\n".join(f"{f:.6f}" for f in frequency) + "\n")

        run_logged(out, "freqcheck", body, quiet=quiet)

    return app


CLI_CASES = [(c[0], "bed", c[1], c[2]) for c in BED_CASES if c[0] in
             ("missing_fam", "wrong_magic", "truncated_bed", "fewer_bim_rows", "bim_7_columns",
              "fam_5_columns", "duplicate_sample", "duplicate_variant")] + \
            [(c[0], "pgen", c[1], c[2]) for c in PGEN_CASES if c[0] in ("missing_psam", "truncated_pgen")]


@pytest.mark.parametrize(("name", "file_format", "breaker", "message"), CLI_CASES,
                         ids=[f"{c[1]}-{c[0]}" for c in CLI_CASES])
def test_cli_exits_2_and_leaves_only_the_log(tmp_path, monkeypatch, capsys, name, file_format, breaker,
                                             message):
    monkeypatch.setattr(cli_main, "app", _tiny_cli())
    prefix = _copy_fixture(tmp_path / "in")
    breaker(prefix)
    out = tmp_path / "out" / "run"
    flag = "--bfile" if file_format == "bed" else "--pfile"
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["freqcheck", flag, str(prefix), "--out", str(out), "--quiet"])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("Error: ") and len(stderr.strip().splitlines()) == 1
    assert re.search(message, stderr)
    assert sorted(p.name for p in out.parent.iterdir()) == ["run.log"]
    log = (out.parent / "run.log").read_text()
    assert "error: " in log and "no output files were kept" in log


def test_cli_success_writes_outputs_and_provenance(tmp_path, monkeypatch):
    monkeypatch.setattr(cli_main, "app", _tiny_cli())
    out = tmp_path / "out" / "run"
    cli_main.main(["freqcheck", "--pfile", str(DATA / "eur60"), "--out", str(out), "--quiet"])
    assert sorted(p.name for p in out.parent.iterdir()) == ["run.afreq", "run.log", "run.provenance.json",
                                                             "run.started.txt"]
    import pandas as pd

    truth = pd.read_csv(DATA / "eur60_pgen.afreq", sep="\t")["ALT_FREQS"].to_numpy()
    np.testing.assert_allclose(np.loadtxt(out.parent / "run.afreq"), truth, atol=1e-6)


@pytest.mark.parametrize("layout", ["tabs", "spaces", "integer_cm"])
def test_bim_reader_paths_agree_and_keep_na_like_ids(tmp_path, monkeypatch, layout):
    """The three .bim paths give the same table: pyarrow's CSV reader (tab-separated files, when
    pyarrow is installed), pandas' C reader with integer positions, and the validating path. IDs
    and alleles that pandas would read as missing ("NA", "nan") stay text; centimorgans keep
    pandas' numeric type (int64 when all are integers)."""
    from deepprs.io import bed as bed_module

    rows = (DATA / "eur60.bim").read_text().splitlines()
    if layout == "integer_cm":
        rows = ["\t".join([*row.split()[:2], str(number % 3), *row.split()[3:]]) for number, row in enumerate(rows)]
    else:
        rows[1] = "\t".join(["17", "NA", "0", "123", "A", "G"])
        rows[2] = "\t".join(["17", "nan", "0.5", "124", "NA", "T"])
    if layout == "spaces":
        rows = [" ".join(row.split()) for row in rows]
    path = tmp_path / "x.bim"
    path.write_text("\n".join(rows) + "\n")
    tables = {}
    if importlib.util.find_spec("pyarrow") is not None:
        arrow = bed_module._read_bim_arrow(path)
        assert (arrow is None) == (layout == "spaces")  # pyarrow reads only tab-separated files
        if arrow is not None:
            tables["arrow"] = arrow
    with monkeypatch.context() as patch:
        patch.setattr(bed_module, "_read_bim_arrow", lambda path: None)
        tables["pandas"] = bed_module.read_bim(path)
        patch.setattr(bed_module, "_read_bim_fast", lambda path: None)
        tables["validating"] = bed_module.read_bim(path)
    fast = tables["pandas"]
    for name, table in tables.items():
        pd.testing.assert_frame_equal(table, fast, obj=name)
    if layout != "integer_cm":
        assert fast.loc[1, "id"] == "NA" and fast.loc[2, "id"] == "nan" and fast.loc[2, "alt"] == "NA"
        assert fast.loc[2, "cm"] == 0.5
    else:
        assert fast["cm"].dtype == np.int64
    assert fast["pos"].dtype == np.int64
    assert len(fast) == len(rows)
    assert fast["a1"].tolist() == [row.split()[4] for row in rows]
    assert fast["ref"].tolist() == [row.split()[5] for row in rows]
    assert fast["pos"].tolist() == [int(row.split()[3]) for row in rows]


@pytest.mark.parametrize("position", ["NA", "", "0x20", "nan", "12.5"])
def test_tab_separated_positions_that_are_not_integers_are_errors_on_every_path(tmp_path, position):
    """pyarrow reads "NA" / "" as null and "0x20" as 32 in an integer column: the fast reader must
    hand such files to the pandas paths, which report the bad line."""
    from deepprs.io.arrowtext import read_tab_separated
    from deepprs.io.bed import read_bim
    from deepprs.io.pgen import read_pvar

    bim = tmp_path / "x.bim"
    bim.write_text(f"1\trs1\t0\t100\tA\tG\n1\trs2\t0\t{position}\tC\tT\n")
    assert read_tab_separated(bim, ["chrom", "id", "cm", "pos", "a1", "a2"], integer=["pos"]) is None
    with pytest.raises(InputError, match="line 2"):
        read_bim(bim)
    pvar = tmp_path / "x.pvar"
    pvar.write_text(f"#CHROM\tPOS\tID\tREF\tALT\n1\t100\trs1\tA\tG\n1\t{position}\trs2\tC\tT\n")
    with pytest.raises(InputError):
        read_pvar(pvar)


@pytest.mark.parametrize("extra_columns", [False, True])
def test_pvar_reader_paths_agree(tmp_path, monkeypatch, extra_columns):
    """The fast .pvar paths (pyarrow's reader when installed, pandas' C reader with integer
    positions) and the validating path give the same table, with or without QUAL/FILTER/INFO/CM columns; the
    validating path still reports malformed files."""
    from deepprs.io import pgen as pgen_module

    header = "#CHROM\tPOS\tID\tREF\tALT" + ("\tQUAL\tFILTER\tINFO\tCM" if extra_columns else "")
    rows = []
    for j in range(50):
        fields = ["17", str(1000 + j), "NA" if j == 3 else f"rs{j}", "A", "nan" if j == 4 else "G"]
        if extra_columns:
            fields += [".", "PASS", f"AF={j / 100:.2f};R2=0.9", str(j * 0.25)]
        rows.append("\t".join(fields))
    path = tmp_path / "x.pvar"
    path.write_text('##fileformat=PVARv1.0\n##INFO=<ID=PR,Number=0,Type=Flag,Description="Provisional reference '
                    'allele, may not be based on real reference genome">\n' + header + "\n" + "\n".join(rows) + "\n")
    fast = pgen_module.read_pvar(path)
    if importlib.util.find_spec("pyarrow") is not None:  # the pyarrow reader took it; pandas' C path too
        from deepprs.io import arrowtext

        assert arrowtext.read_tab_separated(path, header.lstrip("#").split(), skip_rows=3) is not None
        with monkeypatch.context() as patch:
            patch.setattr(arrowtext, "read_tab_separated", lambda *args, **kwargs: None)
            pd.testing.assert_frame_equal(pgen_module.read_pvar(path), fast)
    monkeypatch.setattr(pgen_module, "_read_pvar_fast", lambda *args: None)
    slow = pgen_module.read_pvar(path)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast.loc[3, "id"] == "NA" and fast.loc[4, "alt"] == "nan" and fast["pos"].dtype == np.int64
    assert fast.loc[10, "cm"] == (2.5 if extra_columns else 0.0)
    monkeypatch.undo()
    for bad, message in ((rows[7].replace("1007", "10.5"), "not an integer"), (rows[7] + "\tEXTRA", "columns"),
                         (rows[7].replace("\tG", "\tG,T", 1), "multi-allelic")):
        broken = rows.copy()
        broken[7] = bad
        path.write_text(header + "\n" + "\n".join(broken) + "\n")
        with pytest.raises(InputError, match=message):
            pgen_module.read_pvar(path)


def test_quote_characters_are_text_in_every_table(tmp_path):
    """plink2 reads a double quote as an ordinary character; so must every whitespace table (a C
    parser with default quoting would swallow tabs and newlines up to the next quote)."""
    from deepprs.io.bed import read_bim
    from deepprs.io.pgen import read_psam, read_pvar
    from deepprs.io.tables import read_phenotypes

    (tmp_path / "q.psam").write_text('#FID\tIID\tSEX\nF1\t"I1\t1\nF2\tI2"\t2\nF3\tI3\t1\n')
    psam = read_psam(tmp_path / "q.psam")
    assert psam["iid"].tolist() == ['"I1', 'I2"', "I3"] and psam["sex"].tolist() == [1, 2, 1]
    (tmp_path / "q.bim").write_text('1\t"rs1\t0\t10\tA\tG\n1\trs2"\t0\t11\tC\tT\n1\trs3\t0\t12\tG\tA\n')
    assert read_bim(tmp_path / "q.bim")["id"].tolist() == ['"rs1', 'rs2"', "rs3"]
    (tmp_path / "q.pvar").write_text('#CHROM\tPOS\tID\tREF\tALT\n'
                                     '1\t10\t"rs1\tA\tG\n1\t11\trs2"\tC\tT\n1\t12\trs3\tG\tA\n')
    assert read_pvar(tmp_path / "q.pvar")["id"].tolist() == ['"rs1', 'rs2"', "rs3"]
    (tmp_path / "q.pheno").write_text('FID\tIID\tY\nF1\t"I1\t1.5\nF2\tI2"\t2.5\nF3\tI3\t3.5\n')
    phenotypes = read_phenotypes(tmp_path / "q.pheno")
    assert len(phenotypes) == 3 and phenotypes["Y"].tolist() == [1.5, 2.5, 3.5]
