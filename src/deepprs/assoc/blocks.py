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
# the 4 int8 dosages of a byte packed into one int32, so one gather decodes 4 samples
_BYTE_TO_INT32 = np.ascontiguousarray(BYTE_TO_ZERO_FILLED.numpy()).view(np.int32).ravel()
# byte -> (sum of dosages) + (sum of squared dosages) << 20 + (missing calls) << 40 of its 4 samples;
# one gather and one row sum give all three per-variant counts (fields cannot overflow below 2^20
# bytes per variant, i.e. 4 million samples)
_FIELD_SHIFT = 20
_FIELD_MASK = (1 << _FIELD_SHIFT) - 1
_BYTE_DOSAGE = _CODE_TO_ZERO_FILLED[(np.arange(256)[:, None] >> np.array([0, 2, 4, 6])) & 3].astype(np.int64)
BYTE_TO_COUNTS = (
    _BYTE_DOSAGE.sum(1)
    + ((_BYTE_DOSAGE**2).sum(1) << _FIELD_SHIFT)
    + (_BYTE_MISSING.sum(1).astype(np.int64) << (2 * _FIELD_SHIFT))
)


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
    packed : ndarray of uint8, shape (b, bytes), optional
        The raw ``.bed`` bytes of the block (``None`` for other sources); lets callers get
        per-variant counts with :func:`packed_counts` without touching the dosages.
    """

    variant_index: np.ndarray
    dosage: torch.Tensor
    missing_variant: np.ndarray
    missing_sample: np.ndarray
    packed: np.ndarray | None = None


def exclusion_mask(weight: np.ndarray) -> np.ndarray:
    """Per-byte OR mask that turns the ``.bed`` code of every zero-weight column into 11
    (homozygous A2: dosage 0, not missing), so byte lookups only count the used samples.

    Parameters
    ----------
    weight : ndarray, shape (4 * bytes,)
        Sample weights in dosage-column order (0 = not used, including padding columns).

    Returns
    -------
    ndarray of uint8, shape (bytes,)
    """
    excluded = (np.asarray(weight) == 0).reshape(-1, 4).astype(np.uint8)
    return (excluded * np.array([3, 12, 48, 192], dtype=np.uint8)).sum(axis=1).astype(np.uint8)


_BYTE_HOM_A1 = (((np.arange(256)[:, None] >> np.array([0, 2, 4, 6])) & 3) == 0).sum(axis=1).astype(np.uint8)


def hom_a1_counts(packed: np.ndarray, or_mask: np.ndarray) -> np.ndarray:
    """Per-variant number of homozygous-A1 calls (dosage 2) among the samples that ``or_mask``
    (from :func:`exclusion_mask`) keeps, from ``.bed`` bytes.

    Parameters
    ----------
    packed : ndarray of uint8, shape (b, bytes)
    or_mask : ndarray of uint8, shape (bytes,)

    Returns
    -------
    ndarray of int64, shape (b,)
    """
    masked = packed | or_mask if or_mask.any() else packed
    return _BYTE_HOM_A1[masked].sum(axis=1, dtype=np.int64)


def packed_counts(packed: np.ndarray, or_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-variant sum of dosages, sum of squared dosages and number of missing calls over the
    samples that ``or_mask`` (from :func:`exclusion_mask`) keeps, straight from ``.bed`` bytes.

    Parameters
    ----------
    packed : ndarray of uint8, shape (b, bytes)
    or_mask : ndarray of uint8, shape (bytes,)

    Returns
    -------
    dosage_sum, dosage_sq_sum, n_missing : ndarray of int64, shape (b,)
    """
    masked = packed | or_mask if or_mask.any() else packed
    total = BYTE_TO_COUNTS[masked].sum(axis=1)
    return total & _FIELD_MASK, (total >> _FIELD_SHIFT) & _FIELD_MASK, total >> (2 * _FIELD_SHIFT)


def n_columns(source: GenotypeSource) -> int:
    """Number of dosage columns :func:`iter_dosage_blocks` yields for ``source``."""
    from deepprs.io.bed import BedReader

    if isinstance(source, BedReader):
        return source.bytes_per_variant * 4
    return source.n_samples


# byte -> number of missing fields, and the position of its j-th missing field (j < count)
_BYTE_MISSING_COUNT = _BYTE_MISSING.sum(axis=1).astype(np.int64)
_BYTE_MISSING_FIELDS = np.zeros((256, 4), dtype=np.int64)
for _byte in range(256):
    _fields = np.flatnonzero(_BYTE_MISSING[_byte])
    _BYTE_MISSING_FIELDS[_byte, : len(_fields)] = _fields


def missing_calls(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variant row and sample column of every missing call (code 01) in ``.bed`` bytes, grouped by
    row and ascending within a row.

    Parameters
    ----------
    packed : ndarray of uint8, shape (b, bytes)

    Returns
    -------
    missing_variant, missing_sample : ndarray of int64, shape (n_missing,)
    """
    missing_bits = packed & ~(packed >> 1) & 0x55  # low bit set, high bit clear
    flat = np.flatnonzero(missing_bits != 0)  # bytes holding a missing call
    byte_values = packed.reshape(-1)[flat]
    per_byte = _BYTE_MISSING_COUNT[byte_values]
    if len(per_byte) and per_byte.max() > 1:
        # a byte with several missing calls yields one entry per call
        first = np.repeat(np.cumsum(per_byte) - per_byte, per_byte)
        rank = np.arange(len(first)) - first
        flat = np.repeat(flat, per_byte)
        byte_values = np.repeat(byte_values, per_byte)
        field = _BYTE_MISSING_FIELDS[byte_values, rank]
    else:
        field = _BYTE_MISSING_FIELDS[byte_values, 0]
    rows, byte_cols = np.divmod(flat, packed.shape[1])
    return rows.astype(np.int64), byte_cols * 4 + field


def iter_dosage_blocks(source: GenotypeSource, variant_index: np.ndarray, block_size: int) -> Iterator[DosageBlock]:
    """Yield :class:`DosageBlock` objects covering ``variant_index`` in order."""
    from deepprs.io.bed import BedReader

    is_bed = isinstance(source, BedReader)
    for start in range(0, len(variant_index), block_size):
        block_index = variant_index[start : start + block_size]
        if is_bed:
            packed = source.packed_variant_major(block_index)  # (b, bytes)
            dosage = torch.from_numpy(_BYTE_TO_INT32[packed].view(np.int8))  # (b, 4 * bytes)
            # the missing code 01: low bit set, high bit clear
            missing_variant, missing_sample = missing_calls(packed)
        else:
            packed = None
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
            packed=packed,
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
    b = dosage.shape[0]
    if dosage.device.type == "cpu" and b >= 1:
        try:
            partial = torch._int_mm(dosage, digits)
        except (RuntimeError, AttributeError, NotImplementedError):  # pragma: no cover - old torch, odd shapes
            partial = None
        if partial is not None:
            # recombine the base-128 digits exactly in int64 (|sum| < 2^49), then one conversion
            per_digit = partial.numpy().reshape(b, N_DIGITS, matrix.padded_cols)[:, :, : matrix.n_cols]
            combined = per_digit[:, N_DIGITS - 1].astype(np.int64)
            for t in range(N_DIGITS - 2, -1, -1):
                combined <<= 7  # DIGIT_BASE = 2^7
                combined += per_digit[:, t]
            return torch.from_numpy(combined.astype(np.float64) * matrix.scale.numpy())
    partial = (dosage.double() @ digits.double()).reshape(b, N_DIGITS, matrix.padded_cols)
    weights = torch.tensor([float(DIGIT_BASE**t) for t in range(N_DIGITS)], dtype=torch.float64, device=partial.device)
    combined = torch.einsum("btc,t->bc", partial, weights)[:, : matrix.n_cols]
    return combined * matrix.scale.to(partial.device)
