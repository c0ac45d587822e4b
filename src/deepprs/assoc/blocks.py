"""Stream genotype blocks for association testing: int8 dosages with missing calls set to 0,
plus the list of missing calls.

For PLINK 1 ``.bed`` input the 2-bit codes are decoded straight from the packed bytes with a
256-entry lookup table (no NaN pass); other sources go through
:meth:`~deepprs.io.genotypes.GenotypeSource.iter_blocks` with ``missing="raw"``. Columns are
always the genotype file's samples (padded to a multiple of 4 for ``.bed``), so callers select
samples by giving excluded samples zero weight instead of copying columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from deepprs.io.genotypes import GenotypeSource

# .bed 2-bit code -> dosage of A1 with missing (code 01) written as 0
_CODE_TO_ZERO_FILLED = np.array([2, 0, 1, 0], dtype=np.int8)
BYTE_TO_ZERO_FILLED = torch.from_numpy(
    _CODE_TO_ZERO_FILLED[(np.arange(256)[:, None] >> np.array([0, 2, 4, 6])) & 3].astype(np.int8)
)
# byte -> which of its 4 two-bit fields hold the missing code 01
_BYTE_MISSING = ((np.arange(256)[:, None] >> np.array([0, 2, 4, 6])) & 3) == 1
_BYTE_HAS_MISSING = _BYTE_MISSING.any(axis=1)
# the 4 int8 dosages of a byte packed into one int32, so one gather decodes 4 samples
_BYTE_TO_INT32 = np.ascontiguousarray(BYTE_TO_ZERO_FILLED.numpy()).view(np.int32).ravel()


@dataclass(frozen=True)
class DosageBlock:
    """One block of variants, variant-major.

    Attributes
    ----------
    variant_index : ndarray of int, shape (b,)
        Positions in the source's ``variant_table``.
    dosage : Tensor of int8, shape (b, n_columns)
        Dosage of the counted allele; missing calls are 0. Column ``i`` is file sample ``i``
        (``n_columns >= n_samples``; padding columns hold arbitrary values and must get weight 0).
    missing_variant, missing_sample : ndarray of int64, shape (n_missing,)
        Block-local variant row and file sample column of every missing call.
    """

    variant_index: np.ndarray
    dosage: torch.Tensor
    missing_variant: np.ndarray
    missing_sample: np.ndarray


def n_columns(source: GenotypeSource) -> int:
    """Number of dosage columns :func:`iter_dosage_blocks` yields for ``source``."""
    from deepprs.io.bed import BedReader

    if isinstance(source, BedReader):
        return source.bytes_per_variant * 4
    return source.n_samples


def iter_dosage_blocks(source: GenotypeSource, variant_index: np.ndarray, block_size: int) -> Iterator[DosageBlock]:
    """Yield :class:`DosageBlock` objects covering ``variant_index`` in order."""
    from deepprs.io.bed import BedReader

    is_bed = isinstance(source, BedReader)
    for start in range(0, len(variant_index), block_size):
        block_index = variant_index[start : start + block_size]
        if is_bed:
            packed = source.packed_variant_major(block_index)  # (b, bytes)
            dosage = torch.from_numpy(_BYTE_TO_INT32[packed].view(np.int8))  # (b, 4 * bytes)
            flat = np.flatnonzero(_BYTE_HAS_MISSING[packed])
            rows, byte_cols = np.divmod(flat, packed.shape[1])
            fields = _BYTE_MISSING[packed.reshape(-1)[flat]]  # (n_bytes, 4)
            hit_row, hit_field = np.nonzero(fields)
            missing_variant = rows[hit_row].astype(np.int64)
            missing_sample = (byte_cols[hit_row] * 4 + hit_field).astype(np.int64)
        else:
            raw = source.read(None, block_index, dtype=np.int8, missing="raw").T  # (b, n)
            missing_variant, missing_sample = np.nonzero(raw < 0)
            dosage = torch.from_numpy(np.ascontiguousarray(np.where(raw < 0, 0, raw).astype(np.int8)))
            missing_variant = missing_variant.astype(np.int64)
            missing_sample = missing_sample.astype(np.int64)
        yield DosageBlock(
            variant_index=block_index,
            dosage=dosage,
            missing_variant=missing_variant,
            missing_sample=missing_sample,
        )


# ---------------------------------------------------------------------------------------------
# exact products of small-integer dosages with real matrices
# ---------------------------------------------------------------------------------------------
DIGIT_BASE = 128
N_DIGITS = 5
_QUANT_BITS = 33


@dataclass(frozen=True)
class DigitMatrix:
    """A real matrix V (n × c) quantised to 34 bits per column and split into 5 signed base-128
    digit matrices, so that ``dosage @ V`` is computed exactly with int8 × int8 -> int32 products.

    Attributes
    ----------
    digits : Tensor of int8, shape (n, N_DIGITS * c_padded)
    scale : Tensor of float64, shape (c,)
        Column ``j`` of V is ``scale[j] * sum_t 128**t * digits_t[:, j]``.
    """

    digits: torch.Tensor
    scale: torch.Tensor
    n_cols: int
    padded_cols: int


def to_digits(values: np.ndarray) -> DigitMatrix:
    """Quantise ``values`` (n × c, float64) column-wise to 2^-33 of the column's max |value|."""
    values = np.asarray(values, dtype=np.float64)
    n, c = values.shape
    col_max = np.abs(values).max(axis=0) if n else np.zeros(c)
    col_max = np.where(col_max > 0, col_max, 1.0)
    integer = np.rint(values / col_max * 2.0**_QUANT_BITS).astype(np.int64)
    padded = max(8, -(-c // 8) * 8)
    digits = np.zeros((n, N_DIGITS, padded), dtype=np.int8)
    for t in range(N_DIGITS):
        digit = ((integer + DIGIT_BASE // 2) % DIGIT_BASE) - DIGIT_BASE // 2
        digits[:, t, :c] = digit
        integer = (integer - digit) // DIGIT_BASE
    return DigitMatrix(
        digits=torch.from_numpy(digits.reshape(n, -1)),
        scale=torch.from_numpy(col_max / 2.0**_QUANT_BITS),
        n_cols=c,
        padded_cols=padded,
    )


def exact_products(dosage: torch.Tensor, matrix: DigitMatrix) -> torch.Tensor:
    """``dosage @ V`` in float64 for an int8 dosage block (b × n) and a :class:`DigitMatrix` V.

    Returns
    -------
    Tensor of float64, shape (b, c)
    """
    digits = matrix.digits.to(dosage.device)
    if dosage.device.type == "cpu" and dosage.shape[0] >= 1:
        try:
            partial = torch._int_mm(dosage, digits)
        except (RuntimeError, AttributeError, NotImplementedError):  # pragma: no cover - old torch, odd shapes
            partial = dosage.double() @ digits.double()
        partial = partial.double()
    else:
        partial = dosage.double() @ digits.double()
    partial = partial.reshape(dosage.shape[0], N_DIGITS, matrix.padded_cols)
    weights = torch.tensor([float(DIGIT_BASE**t) for t in range(N_DIGITS)], dtype=torch.float64, device=partial.device)
    combined = torch.einsum("btc,t->bc", partial, weights)[:, : matrix.n_cols]
    return combined * matrix.scale.to(partial.device)
