"""BGEN genotypes (optional extra ``pip install deepprs[bgen]``, backed by ``bgen-reader``).

**Counted allele.** The dosage is the expected count of the **second** allele listed in each BGEN
variant (``E[count] = P(het) + 2 P(hom second)``), and the variant table reports it as
``alt = a1`` with the first allele as ``ref``. This matches ``plink2 --bgen ... ref-first`` and
REGENIE (``ALLELE1`` = second allele). Files written by ``plink2 --export bgen-1.2 ref-first``
therefore give the same dosages as the ``.bed``/``.pgen`` they came from.

Float reads (``read``/``iter_blocks`` with ``missing="nan"`` or ``"mean"``) return the expected
dosage; ``missing="raw"`` (int8) and :class:`~deepprs.io.packed.PackedGenotypes` use hard calls
(the dosage rounded to 0/1/2). Only unphased or phased biallelic diploid data is read; other
variants raise :class:`~deepprs.errors.InputError`.

Samples come from the ``.sample`` file beside the ``.bgen`` (``ID_1 ID_2 missing sex`` header,
then a type line; ``ID_1`` = FID, ``ID_2`` = IID) when present, otherwise from the IDs stored in the
BGEN (FID = IID).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from deepprs.errors import InputError
from deepprs.io.genotypes import (
    VARIANT_COLUMNS,
    GenotypeSource,
    check_unique_ids,
    finish_missing,
)
from deepprs.io.pgen import finish_float_dosage

BGEN_EXTRA_HINT = ("reading .bgen needs the optional bgen-reader package: pip install deepprs[bgen] "
                   "(or pip install bgen-reader)")


def _import_open_bgen():
    try:
        from bgen_reader import open_bgen
    except ImportError as exc:
        raise InputError(BGEN_EXTRA_HINT) from exc
    return open_bgen


def read_sample_file(path: str | Path) -> pd.DataFrame:
    """Read an Oxford ``.sample`` file into the sample table (``fid iid father mother sex``)."""
    path = Path(path)
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < 3:
        raise InputError(f"{path}: a .sample file needs a header line, a type line and at least one sample")
    header = [name.upper() for name in lines[0]]
    if header[:2] != ["ID_1", "ID_2"]:
        raise InputError(f"{path}: the header must start with 'ID_1 ID_2' (found {' '.join(lines[0][:3])!r})")
    rows = lines[2:]
    short = [number for number, row in enumerate(rows, start=3) if len(row) != len(header)]
    if short:
        raise InputError(f"{path} line {short[0]}: expected {len(header)} columns ({' '.join(lines[0])})")
    table = pd.DataFrame(rows, columns=header)
    n = len(table)
    sex = (pd.to_numeric(table["SEX"], errors="coerce").fillna(0).astype(int)
           if "SEX" in table else pd.Series(np.zeros(n, dtype=int)))
    return pd.DataFrame({
        "fid": table["ID_1"].to_numpy(), "iid": table["ID_2"].to_numpy(),
        "father": np.full(n, "0", dtype=object), "mother": np.full(n, "0", dtype=object),
        "sex": np.where(np.isin(sex, [1, 2]), sex, 0),
    })


class BgenReader(GenotypeSource):
    """BGEN reader giving the expected dosage of the second allele (``a1 = alt``).

    Parameters
    ----------
    path
        ``file.bgen`` or its prefix.
    sample_path
        Oxford ``.sample`` file; default ``<prefix>.sample`` if it exists.
    metadata_path
        Where bgen-reader caches its variant index (default: beside the ``.bgen``).
    allow_duplicate_variant_ids
        Accept repeated variant IDs (otherwise an :class:`InputError`).
    """

    def __init__(self, path: str | Path, *, sample_path: str | Path | None = None,
                 metadata_path: str | Path | None = None, allow_duplicate_variant_ids: bool = False) -> None:
        path = Path(path)
        if path.suffix.lower() != ".bgen":
            path = Path(f"{path}.bgen")
        self.path = path
        if not path.exists():
            raise InputError(f"missing file {path}")
        with open(path, "rb") as handle:
            head = handle.read(20)
        if len(head) < 20 or head[16:20] not in (b"bgen", b"\x00\x00\x00\x00"):
            raise InputError(f"{path} is not a BGEN file (magic bytes {head[16:20].hex()} instead of 'bgen')")
        open_bgen = _import_open_bgen()
        try:
            self._bgen = open_bgen(path, metadata_filepath=metadata_path, verbose=False)
        except Exception as exc:  # bgen-reader raises assorted errors on corrupt files
            raise InputError(f"{path} cannot be read as BGEN: {exc}") from exc
        sample_path = Path(sample_path) if sample_path is not None else path.with_suffix(".sample")
        if sample_path.exists():
            self.sample_table = read_sample_file(sample_path)
            if len(self.sample_table) != self._bgen.nsamples:
                raise InputError(f"{sample_path} lists {len(self.sample_table)} samples but {path} holds "
                                 f"{self._bgen.nsamples}")
        else:
            iid = np.asarray(self._bgen.samples).astype(str)
            self.sample_table = pd.DataFrame({"fid": iid, "iid": iid, "father": "0", "mother": "0", "sex": 0})
        nalleles = np.asarray(self._bgen.nalleles)
        if (nalleles != 2).any():
            bad = int(np.flatnonzero(nalleles != 2)[0])
            raise InputError(f"{path}: {int((nalleles != 2).sum())} variant(s) are not biallelic (first: "
                             f"{self._bgen.rsids[bad]}); split or drop them (plink2 --max-alleles 2)")
        alleles = pd.Series(np.asarray(self._bgen.allele_ids)).str.split(",", n=1, expand=True)
        rsids = np.asarray(self._bgen.rsids).astype(str)
        ids = np.where(rsids != "", rsids, np.asarray(self._bgen.ids).astype(str))
        self.variant_table = pd.DataFrame({
            "chrom": np.asarray(self._bgen.chromosomes).astype(str),
            "pos": np.asarray(self._bgen.positions).astype(np.int64),
            "id": ids, "ref": alleles[0].to_numpy(), "alt": alleles[1].to_numpy(),
            "a1": alleles[1].to_numpy(), "cm": 0.0,
        })[VARIANT_COLUMNS]
        check_unique_ids(self.sample_table, self.variant_table, str(path),
                         allow_duplicate_variant_ids=allow_duplicate_variant_ids)
        self.may_have_dosages = True  # genotype probabilities: association uses the dosages

    def read_variant_major_dosage(self, variant_index: np.ndarray) -> np.ndarray:
        """Dosages of all samples, variant-major: (len(variant_index), n_samples) float64, NaN =
        missing. Probabilities are read in Fortran order, so the variant-major dosages come out
        contiguous without a transpose (2x faster than reading samples x variants)."""
        variant_index = np.asarray(variant_index, dtype=np.int64)
        return self._dosage(np.arange(self.n_samples), variant_index, order="F").T

    def read_dosage(self, sample_index: np.ndarray, variant_index: np.ndarray) -> np.ndarray:
        """Expected second-allele dosage, float64 (samples × variants), NaN = missing."""
        return self._dosage(sample_index, variant_index, order="C")

    def _dosage(self, sample_index: np.ndarray, variant_index: np.ndarray, *, order: str) -> np.ndarray:
        """(samples × variants) dosages; with ``order="F"`` their transpose is C-contiguous."""
        if self._bgen is None:
            raise InputError(f"{self.path} is closed")
        if len(sample_index) == 0 or len(variant_index) == 0:
            return np.empty((len(sample_index), len(variant_index)), order=order)
        probs = self._bgen.read((sample_index, variant_index), dtype=np.float64, order=order,
                                max_combinations=None)
        if probs.shape[-1] == 3:                 # unphased diploid: P(AA), P(AB), P(BB)
            dosage = np.multiply(probs[..., 2], 2.0, order=order)
            dosage += probs[..., 1]
        elif probs.shape[-1] == 4:               # phased diploid: per haplotype P(A), P(B)
            dosage = np.add(probs[..., 1], probs[..., 3], order=order)
        else:
            raise InputError(f"{self.path}: only diploid biallelic genotypes are supported")
        return dosage

    def _read_i8(self, sample_index: np.ndarray, variant_index: np.ndarray) -> np.ndarray:
        dosage = self.read_dosage(sample_index, variant_index)
        return np.where(np.isnan(dosage), -1, np.rint(np.nan_to_num(dosage))).astype(np.int8)

    def _finish(self, sample_index: np.ndarray, variant_index: np.ndarray, dtype, missing: str) -> np.ndarray:
        if missing == "raw":
            return finish_missing(self._read_i8(sample_index, variant_index), dtype, missing)
        return finish_float_dosage(self.read_dosage(sample_index, variant_index), dtype, missing)

    def close(self) -> None:
        bgen = getattr(self, "_bgen", None)
        if bgen is not None:
            bgen.close()
        self._bgen = None
