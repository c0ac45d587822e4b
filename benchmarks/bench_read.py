"""Read benchmark: one full pass over a PLINK 1 .bed with deepprs vs ``plink2 --freq``.

Makes an N x M .bed with ``plink2 --dummy N M 0.02 --make-bed`` (2% missing genotypes) in
``--workdir`` (not in git), then times on the same file, in the same run:

* ``plink2 --bfile X --freq --threads T`` (wall clock of the process);
* deepprs ``BedReader.iter_blocks(dtype=int8, missing="raw")`` + :func:`allele_frequency` per block;
* deepprs ``iter_blocks`` to float32 with NaN for missing + ``nanmean`` (what float consumers pay);
* deepprs ``PackedGenotypes.from_source`` (the sample-major 2-bit training form);
* the same genotypes as ``.pgen`` (``plink2 --make-pgen``): ``plink2 --pfile --freq`` vs
  ``PgenReader.iter_blocks`` int8 + :func:`allele_frequency`.

"x plink2" is relative to ``plink2 --bfile --freq`` (the .pgen rows too).

The deepprs frequencies are checked against plink2's ``ALT_FREQS`` before anything is reported.
Each timing is the best of ``--repeats`` runs on a warm page cache.

Usage::

    python3 benchmarks/bench_read.py                                   # 10,000 x 100,000
    python3 benchmarks/bench_read.py --n-samples 2000 --n-variants 5000 --workdir /tmp/br --no-write
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from deepprs.io import BedReader, PackedGenotypes
from deepprs.io.pgen import PgenReader
from deepprs.io.standardize import allele_frequency
from deepprs.utils.runlog import peak_memory_mb

RESULTS = Path(__file__).parent / "RESULTS_read.md"


def make_bed(workdir: Path, n_samples: int, n_variants: int, missing: float, threads: int) -> Path:
    """Create ``workdir/dummy.{bed,bim,fam}`` with plink2 --dummy unless a file of that size is there."""
    prefix = workdir / "dummy"
    expected = 3 + (n_samples + 3) // 4 * n_variants
    bed = Path(f"{prefix}.bed")
    if bed.exists() and bed.stat().st_size == expected:
        return prefix
    workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["plink2", "--dummy", str(n_samples), str(n_variants), str(missing), "--make-bed",
                    "--threads", str(threads), "--seed", "1", "--out", str(prefix)],
                   check=True, stdout=subprocess.DEVNULL)
    return prefix


def time_best(function, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def make_pgen(prefix: Path, threads: int) -> Path:
    """The same genotypes as ``prefix.pgen`` (``plink2 --make-pgen``), unless already there."""
    pgen = Path(f"{prefix}_pgen")
    target = Path(f"{pgen}.pgen")
    if not target.exists() or target.stat().st_mtime < Path(f"{prefix}.bed").stat().st_mtime:
        subprocess.run(["plink2", "--bfile", str(prefix), "--make-pgen", "--threads", str(threads),
                        "--out", str(pgen)], check=True, stdout=subprocess.DEVNULL)
    return pgen


def plink2_freq(prefix: Path, out: Path, threads: int, flag: str = "--bfile") -> pd.DataFrame:
    subprocess.run(["plink2", flag, str(prefix), "--freq", "--threads", str(threads), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    return pd.read_csv(f"{out}.afreq", sep="\t")


def deepprs_freq_int8(prefix: Path, block_size: int, reader: type = BedReader) -> np.ndarray:
    with reader(prefix) as source:
        parts = [allele_frequency(block.dosage)
                 for block in source.iter_blocks(block_size, dtype=np.int8, missing="raw")]
    return np.concatenate(parts)


def deepprs_freq_float(prefix: Path, block_size: int) -> np.ndarray:
    with BedReader(prefix) as bed:
        parts = [allele_frequency(block.dosage) for block in bed.iter_blocks(block_size)]
    return np.concatenate(parts)


def deepprs_packed(prefix: Path, block_size: int) -> PackedGenotypes:
    with BedReader(prefix) as bed:
        return PackedGenotypes.from_source(bed, block_size=block_size)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--n-variants", type=int, default=100_000)
    parser.add_argument("--missing", type=float, default=0.02,
                        help="missing genotype rate for plink2 --dummy")
    parser.add_argument("--workdir", type=Path, default=Path("bench_out/read"))
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2, help="plink2 --threads and torch threads")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    parser.add_argument("--cleanup", action="store_true", help="delete the generated .bed afterwards")
    args = parser.parse_args(argv)
    if shutil.which("plink2") is None:
        sys.exit("plink2 is not on PATH")
    torch.set_num_threads(args.threads)
    n, m = args.n_samples, args.n_variants
    load_before = os.getloadavg()
    prefix = make_bed(args.workdir, n, m, args.missing, args.threads)

    seconds_plink2, afreq = time_best(lambda: plink2_freq(prefix, args.workdir / "plink2", args.threads),
                                      args.repeats)
    seconds_int8, freq_int8 = time_best(lambda: deepprs_freq_int8(prefix, args.block_size), args.repeats)
    seconds_float, freq_float = time_best(lambda: deepprs_freq_float(prefix, args.block_size), args.repeats)
    seconds_packed, packed = time_best(lambda: deepprs_packed(prefix, args.block_size), args.repeats)
    pgen = make_pgen(prefix, args.threads)
    seconds_plink2_pgen, _ = time_best(
        lambda: plink2_freq(pgen, args.workdir / "plink2_pgen", args.threads, "--pfile"), args.repeats)
    seconds_pgen, freq_pgen = time_best(lambda: deepprs_freq_int8(pgen, args.block_size, PgenReader),
                                        args.repeats)
    load_after = os.getloadavg()

    # correctness before speed: plink2 prints 6 significant digits, and counts ALT = .bim column 5 = a1
    truth = afreq["ALT_FREQS"].to_numpy()
    for name, freq in (("int8", freq_int8), ("float", freq_float), ("pgen", freq_pgen)):
        worst = float(np.nanmax(np.abs(freq - truth)))
        if worst > 5e-6:
            sys.exit(f"deepprs {name} frequencies differ from plink2 --freq by up to {worst:.2e}")
    check = packed.unpack(np.arange(min(n, 64))).numpy()
    with BedReader(prefix) as bed:
        direct = bed.read(samples=np.arange(min(n, 64)))
    if not np.array_equal(check, direct, equal_nan=True):
        sys.exit("PackedGenotypes.unpack differs from BedReader.read")

    genotypes = n * m
    rows = [(f"plink2 --freq --threads {args.threads}", seconds_plink2),
            ("deepprs iter_blocks int8 + allele_frequency", seconds_int8),
            ("deepprs iter_blocks float32/NaN + allele_frequency", seconds_float),
            ("deepprs PackedGenotypes.from_source", seconds_packed),
            (f"plink2 --pfile --freq --threads {args.threads} (.pgen)", seconds_plink2_pgen),
            ("deepprs PgenReader iter_blocks int8 + allele_frequency", seconds_pgen)]
    header = f"{'method':<56} {'seconds':>8} {'Mgeno/s':>9} {'x plink2':>9}"
    lines = [header, "-" * len(header)]
    for name, seconds in rows:
        rate = genotypes / seconds / 1e6
        lines.append(f"{name:<56} {seconds:8.2f} {rate:9.0f} {seconds / seconds_plink2:9.1f}")
    print("\n".join(lines))
    print(f"peak memory {peak_memory_mb():.0f} MiB; load average before/after {load_before[0]:.1f}/"
          f"{load_after[0]:.1f} on {os.cpu_count()} CPUs")

    if not args.no_write:
        command = "python3 benchmarks/bench_read.py " + " ".join(argv if argv is not None else sys.argv[1:])
        table = ["| method | seconds | M genotypes/s | time / plink2 |", "|---|---:|---:|---:|"]
        table += [f"| {name} | {seconds:.2f} | {genotypes / seconds / 1e6:.0f} | "
                  f"{seconds / seconds_plink2:.1f} |" for name, seconds in rows]
        text = "\n".join([
            "## Genotype read pass (benchmarks/bench_read.py)",
            "",
            f"{n:,} samples x {m:,} variants PLINK 1 .bed from `plink2 --dummy {n} {m} {args.missing}` "
            f"({(3 + (n + 3) // 4 * m) / 2**20:.0f} MiB), block size {args.block_size}, "
            f"best of {args.repeats} warm-cache runs each. Frequencies checked equal to plink2's "
            "`ALT_FREQS` (|diff| <= 5e-6) and packed genotypes checked equal to the direct read "
            "before timing is reported.",
            "",
            *table,
            "",
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs shared with "
            "other jobs "
            f"(load average {load_before[0]:.1f} before, {load_after[0]:.1f} after); torch threads "
            f"{args.threads}; plink2 `{_plink2_version()}`; peak memory {peak_memory_mb():.0f} MiB.",
            "",
            f"Reproduce: `{command.strip()}`",
            "",
        ])
        RESULTS.write_text(text)
        print(f"wrote {RESULTS}")
    if args.cleanup:
        shutil.rmtree(args.workdir, ignore_errors=True)


def _plink2_version() -> str:
    result = subprocess.run(["plink2", "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip()


if __name__ == "__main__":
    main()
