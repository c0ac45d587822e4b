"""Stream genotype blocks for association testing: int8 dosages with missing calls set to 0,
plus the list of missing calls.

For PLINK 1 ``.bed`` input the rows are read with ``pread`` into reusable buffers and the 2-bit
codes decoded straight from the packed bytes with a table lookup per pair of bytes (no NaN pass); the
missing calls and homozygous-A1 counts come from the bit-parallel kernels of
:mod:`deepprs.assoc.bedscan` (or from its background scan, when one ran). Other sources go through
:meth:`~deepprs.io.genotypes.GenotypeSource.read` with ``missing="raw"``. Columns are always the
genotype file's samples (padded to a multiple of 4 for ``.bed``), so callers select samples by
giving excluded samples zero weight instead of copying columns.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from deepprs.assoc.bedscan import (  # noqa: F401  (exclusion_mask: re-exported)
    as_words,
    exclusion_mask,
    hom_a1_word_counts,
    mask_words,
    missing_word_calls,
    negative_int8,
    read_rows,
    scanned_block,
)
from deepprs.io.genotypes import GenotypeSource

if TYPE_CHECKING:
    from deepprs.io.bed import BedReader

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


@dataclass
class BlockBuffers:
    """Reusable memory for decoding blocks of up to ``rows`` variants (fresh pages cost the kernel
    a zeroing pass each, ~30% of the decoding time).

    Attributes
    ----------
    decoded : ndarray of int32, shape (rows, bytes)
        ``.bed``: zero-filled dosages, 4 per int32.
    packed : ndarray of uint8, shape (rows, bytes)
        ``.bed``: the raw bytes.
    values : ndarray of float64, shape (rows, n_samples)
        Dosage data (BGEN): the zero-filled dosages.
    calls : ndarray of int8, shape (rows, n_samples)
        Hard calls of a ``.pgen`` (pgenlib's variant-major int8).
    negative : ndarray of bool, shape (rows, n_samples)
        Scratch for finding the missing calls among ``calls`` (made when first needed).
    """

    decoded: np.ndarray | None = None
    packed: np.ndarray | None = None
    values: np.ndarray | None = None
    calls: np.ndarray | None = None
    negative: np.ndarray | None = None

    @classmethod
    def fits(cls, buffers: BlockBuffers | None, rows: int, n_bytes: int) -> BlockBuffers:
        """``buffers`` if large enough for (rows, n_bytes) of ``.bed`` data, else new buffers."""
        if (buffers is not None and buffers.decoded is not None and buffers.decoded.shape[0] >= rows
                and buffers.decoded.shape[1] == n_bytes):
            return buffers
        return cls(np.empty((rows, n_bytes), dtype=np.int32), np.empty((rows, n_bytes), dtype=np.uint8))

    @classmethod
    def fits_values(cls, buffers: BlockBuffers | None, rows: int, n_samples: int) -> BlockBuffers:
        """``buffers`` if its ``values`` hold (rows, n_samples) dosages, else a new buffer."""
        if (buffers is not None and buffers.values is not None and buffers.values.shape[0] >= rows
                and buffers.values.shape[1] == n_samples):
            return buffers
        return cls(values=np.empty((rows, n_samples)))

    @classmethod
    def fits_calls(cls, buffers: BlockBuffers | None, rows: int, n_samples: int) -> BlockBuffers:
        """``buffers`` if its ``calls`` hold (rows, n_samples) int8 hard calls, else a new buffer."""
        if (buffers is not None and buffers.calls is not None and buffers.calls.shape[0] >= rows
                and buffers.calls.shape[1] == n_samples):
            return buffers
        return cls(calls=np.empty((rows, n_samples), dtype=np.int8))


@dataclass(frozen=True)
class DosageBlock:
    """One block of variants, variant-major.

    Attributes
    ----------
    variant_index : ndarray of int, shape (b,)
        Positions in the source's ``variant_table``.
    dosage : Tensor of int8 (float64 for dosage data, see :func:`uses_dosages`), shape (b, n_columns)
        Dosage of the counted allele; missing calls are 0. Column ``i`` is file sample ``i``
        (``n_columns >= n_samples``; padding columns hold arbitrary values and must get weight 0).
    missing_variant, missing_sample : ndarray of int64 (int32 from a background scan), shape (n_missing,)
        Block-local variant row and file sample column of every missing call.
    packed : ndarray of uint8, shape (b, bytes), optional
        The raw ``.bed`` bytes of the block (``None`` for other sources); lets callers get
        per-variant counts with :func:`packed_counts` without touching the dosages.
    words : ndarray of uint64, shape (b, ceil(bytes / 8)), optional
        ``packed`` as 64-bit words, rows padded with code 11 (see
        :func:`~deepprs.assoc.bedscan.hom_a1_word_counts`); None when a scan supplied the counts.
    buffer : BlockBuffers, optional
        The buffers ``dosage`` (and ``packed``) are views of (``.bed``, hard-call ``.pgen`` and
        BGEN input); reusable once the block is done.
    hom_a1_all : ndarray of int64, shape (b,), optional
        Homozygous-A1 calls over all samples of the file, when a background
        :mod:`~deepprs.assoc.bedscan` scan already counted them.
    missing_per_variant : ndarray of int, shape (b,), optional
        Missing calls of each variant (``missing_variant`` run-length coded), when the reader
        already has them (a background scan).
    """

    variant_index: np.ndarray
    dosage: torch.Tensor
    missing_variant: np.ndarray
    missing_sample: np.ndarray
    packed: np.ndarray | None = None
    words: np.ndarray | None = None
    buffer: BlockBuffers | None = None
    hom_a1_all: np.ndarray | None = None
    missing_per_variant: np.ndarray | None = None


def hom_a1_counts(packed: np.ndarray, or_mask: np.ndarray) -> np.ndarray:
    """Per-variant number of homozygous-A1 calls (dosage 2) among the samples that ``or_mask``
    (from :func:`exclusion_mask`) keeps, from ``.bed`` bytes.

    Bit-parallel: a field is 00 exactly when neither of its bits is set, so on 64-bit words
    ``~(w | w >> 1) & 0x55..55`` has one bit per homozygous-A1 call, and a popcount per row sums
    them (~10x faster than a byte table).

    Parameters
    ----------
    packed : ndarray of uint8, shape (b, bytes)
    or_mask : ndarray of uint8, shape (bytes,)

    Returns
    -------
    ndarray of int64, shape (b,)
    """
    return hom_a1_word_counts(as_words(packed), mask_words(or_mask))


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


def missing_calls(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variant row and sample column of every missing call (code 01) in ``.bed`` bytes, grouped by
    row and ascending within a row.

    Parameters
    ----------
    packed : ndarray of uint8, shape (b, bytes)

    Returns
    -------
    missing_variant, missing_sample : ndarray of int64, shape (n_missing,)

    Notes
    -----
    Bit-parallel on 64-bit words: ``w & ~(w >> 1) & 0x55..55`` keeps bit 2f of a word exactly
    when its field f is 01. Each word's calls go to consecutive output slots (an exclusive
    cumulative sum of the per-word popcounts), and pass t writes the t-th lowest set bit of every
    word that still has one, so the output comes out in (row, sample) order without a sort.
    """
    return missing_word_calls(as_words(packed))


_DECODE_BYTES = 1 << 19  # .bed bytes per table lookup: the intp index copy (4 MB) stays in cache
# two .bed bytes (a native-order uint16) -> their 8 zero-filled int8 dosages as one int64: half the
# lookups of a byte table, from a 512 KB table that stays in the L2 cache (~20% faster decoding)
_PAIR_BYTES = np.arange(65536, dtype=np.uint16).view(np.uint8).reshape(-1, 2)  # uint16 -> its 2 bytes
_PAIR_TO_INT64 = np.ascontiguousarray(
    np.concatenate([BYTE_TO_ZERO_FILLED.numpy()[_PAIR_BYTES[:, 0]], BYTE_TO_ZERO_FILLED.numpy()[_PAIR_BYTES[:, 1]]],
                   axis=1)
).view(np.int64).ravel()


def decode_bytes(packed: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Decode ``.bed`` bytes to zero-filled int8 dosages, 4 per int32: one table lookup per pair of
    bytes of the whole (contiguous) block, whatever the row width, plus one per byte for an odd
    last byte.

    ``np.take`` converts integer indices to a fresh intp array (8 bytes per index; for a whole
    block that is tens of MB of new pages for the kernel to zero, costing more than the lookup),
    so the bytes go through a small reused intp buffer instead.

    Parameters
    ----------
    packed : ndarray of uint8, shape (b, bytes)
    out : ndarray of int32, shape (b, bytes)
        Receives the dosages; ``out.view(np.int8)`` is (b, 4 * bytes).
    """
    if not (packed.flags.c_contiguous and out.flags.c_contiguous):
        np.take(_BYTE_TO_INT32, packed.astype(np.intp), out=out, mode="wrap")
        return out
    flat_packed, flat_out = packed.reshape(-1), out.reshape(-1)
    even = len(flat_packed) - len(flat_packed) % 2
    pairs, targets = flat_packed[:even].view(np.uint16), flat_out[:even].view(np.int64)
    index = np.empty(max(1, min(_DECODE_BYTES // 2, len(pairs))), dtype=np.intp)
    for start in range(0, len(pairs), len(index)):
        chunk = pairs[start : start + len(index)]
        np.copyto(index[: len(chunk)], chunk)
        np.take(_PAIR_TO_INT64, index[: len(chunk)], out=targets[start : start + len(chunk)], mode="wrap")
    if even < len(flat_packed):
        flat_out[even:] = _BYTE_TO_INT32[flat_packed[even:]]
    return out


def read_packed(source: BedReader, block_index: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The ``.bed`` bytes of the variants ``block_index`` -> (b, bytes) uint8, in ``out`` (uint8, (b, bytes),
    C-contiguous) where possible.

    Ascending variants that span at most twice their number (a block of a contiguous run, or of one
    with some variants filtered out) are read with ``pread`` (the span, then the wanted rows): no file
    pages are mapped into the process, whose resident memory stays its working set (a pass over a
    10,000 × 100,000 file through the memory map kept ~250 MB of it resident). Sparser selections
    are gathered from the memory map.
    """
    b = len(block_index)
    if b == 0 or source.closed:
        return source.packed_variant_major(block_index)  # (which raises on a closed reader)
    first, span = int(block_index[0]), int(block_index[-1]) - int(block_index[0]) + 1
    if (span < b or span > 2 * b or first < 0 or first + span > source.n_variants
            or (b > 1 and not (np.diff(block_index) > 0).all())):
        return source.packed_variant_major(block_index)  # (also what negative or too large indices mean)
    fd = os.open(source.path, os.O_RDONLY)
    try:
        if span == b:  # ascending with no gaps: consecutive variants
            return read_rows(fd, first, out)
        rows = read_rows(fd, first, np.empty((span, out.shape[1]), dtype=np.uint8))
    finally:
        os.close(fd)
    return np.take(rows, np.asarray(block_index) - first, axis=0, out=out)


def read_dosage_block(
    source: GenotypeSource, block_index: np.ndarray, *, buffer: BlockBuffers | None = None
) -> DosageBlock:
    """Read and decode the variants ``block_index`` of ``source`` into a :class:`DosageBlock`.

    For ``.bed`` input this only reads the file and runs numpy kernels that release the GIL, so
    several blocks can be decoded at once in threads (see :func:`concurrent_reads`).

    Parameters
    ----------
    buffer : BlockBuffers, optional
        Where to read and decode ``.bed`` blocks; the block's ``dosage`` and ``packed`` are then
        views of it. Reusing buffers saves zeroing fresh pages (~30% of the decoding time).
    """
    from deepprs.io.bed import BedReader

    missing_per_variant = None
    if isinstance(source, BedReader):
        b, n_bytes = len(block_index), source.bytes_per_variant
        buffer = BlockBuffers.fits(buffer, b, n_bytes)
        packed = read_packed(source, block_index, buffer.packed[:b])
        decoded = decode_bytes(packed, buffer.decoded[:b])
        dosage = torch.from_numpy(decoded.view(np.int8))  # (b, 4 * bytes)
        scanned = scanned_block(source.path, block_index)  # done during start-up, if a scan ran
        if scanned is not None:
            missing_per_variant = scanned.missing_per_variant
            words, hom_a1_all = None, scanned.hom_a1_all
            missing_variant, missing_sample = scanned.missing_variant, scanned.missing_sample
        else:
            words, hom_a1_all = as_words(packed), None
            missing_variant, missing_sample = missing_word_calls(words)
    elif uses_dosages(source):  # imputed data: the dosages themselves (plink2 --glm uses them)
        packed = words = hom_a1_all = None
        if hasattr(source, "read_dosage_calls"):  # BGEN: missing calls straight from the ploidy bytes
            buffer = BlockBuffers.fits_values(buffer, len(block_index), source.n_samples)
            values, missing_variant, missing_sample = source.read_dosage_calls(
                block_index, out=buffer.values[: len(block_index)])
        else:
            buffer = None
            values = source.read_variant_major_dosage(block_index)  # (b, n) float64, NaN = missing
            missing = np.isnan(values)
            missing_variant, missing_sample = np.nonzero(missing)
            values[missing] = 0.0
        dosage = torch.from_numpy(values)
    else:
        packed = words = hom_a1_all = None
        scanned = None
        if hasattr(source, "read_variant_major_i8"):  # .pgen: pgenlib's own variant-major layout
            buffer = BlockBuffers.fits_calls(buffer, len(block_index), source.n_samples)
            # (b, n), negative = missing; into a reused buffer (a fresh 40 MB block is 10,000 page faults)
            raw = source.read_variant_major_i8(block_index, out=buffer.calls[: len(block_index)])
            scanned = scanned_block(source.path, block_index)  # a start-up scan of the .pgen, if one ran
        else:
            buffer = None
            raw = np.ascontiguousarray(source.read(None, block_index, dtype=np.int8, missing="raw").T)
        if scanned is not None:
            missing_per_variant = scanned.missing_per_variant
            hom_a1_all = scanned.hom_a1_all
            missing_variant, missing_sample = scanned.missing_variant, scanned.missing_sample
        elif buffer is not None:
            if buffer.negative is None:
                buffer.negative = np.empty(buffer.calls.shape, dtype=np.bool_)
            missing_variant, missing_sample = negative_int8(raw, scratch=buffer.negative)
        else:
            missing_variant, missing_sample = negative_int8(raw)
        raw[missing_variant, missing_sample] = 0  # (faster than np.maximum over the whole block)
        dosage = torch.from_numpy(raw)
    return DosageBlock(
        variant_index=block_index,
        dosage=dosage,
        missing_variant=missing_variant,
        missing_sample=missing_sample,
        packed=packed,
        words=words,
        buffer=buffer,
        hom_a1_all=hom_a1_all,
        missing_per_variant=missing_per_variant,
    )


def uses_dosages(source: GenotypeSource) -> bool:
    """Whether association reads ``source``'s dosages (BGEN, .pgen files that may store dosages)
    rather than hard calls: :func:`read_dosage_block` then gives float64 blocks."""
    return bool(getattr(source, "may_have_dosages", False)) and hasattr(source, "read_variant_major_dosage")


def dosage_bytes(source: GenotypeSource) -> int:
    """Bytes per genotype of a :func:`read_dosage_block` block: 8 for dosages, 1 for hard calls."""
    return 8 if uses_dosages(source) else 1


def concurrent_reads(source: GenotypeSource) -> int:
    """How many :func:`read_dosage_block` calls may run at once on ``source``: 2 for a ``.bed``,
    a ``.pgen`` (one pgenlib reader per thread) and readers that declare ``thread_safe_reads``
    (BGEN), 1 for other readers (internal state)."""
    from deepprs.io.bed import BedReader

    safe = isinstance(source, BedReader) or hasattr(source, "read_variant_major_i8")
    return 2 if safe or getattr(source, "thread_safe_reads", False) else 1


def iter_dosage_blocks(source: GenotypeSource, variant_index: np.ndarray, block_size: int) -> Iterator[DosageBlock]:
    """Yield :class:`DosageBlock` objects covering ``variant_index`` in order."""
    for start in range(0, len(variant_index), block_size):
        yield read_dosage_block(source, variant_index[start : start + block_size])


# ---------------------------------------------------------------------------------------------
# exact products of small-integer dosages with real matrices
# ---------------------------------------------------------------------------------------------
DIGIT_BASE = 128
N_DIGITS = 5
_QUANT_BITS = 33


@dataclass(frozen=True)
class DigitMatrix:
    """A real matrix V (n × c) quantised to 34 bits per column and split into up to 5 signed
    base-128 digit matrices, so that ``dosage @ V`` is computed exactly with int8 × int8 -> int32
    products.

    Only the digits a column needs are stored: a column of 0/1 weights or a constant basis
    vector has one, a residual five (the int8 product then has 8 instead of 40 columns without
    covariates).

    Attributes
    ----------
    digits : Tensor of int8, shape (n, padded_cols)
        Digit t of the columns ``digit_columns[t]``, for t = 0, 1, ..., side by side (zero padding
        to a multiple of 8 columns).
    scale : Tensor of float64, shape (c,)
        Column ``j`` of V is ``scale[j] * sum_t 128**t * digit_t[:, j]``.
    digit_columns : tuple of ndarray of int
        ``digit_columns[t]``: the columns of V with a non-zero digit t.
    """

    digits: torch.Tensor
    scale: torch.Tensor
    n_cols: int
    padded_cols: int
    digit_columns: tuple[np.ndarray, ...] = ()
    values: torch.Tensor | None = None  # V itself (float64), for float dosage blocks


def _column_scale(values: np.ndarray) -> np.ndarray:
    """Each column's max |value| (1 for an all-zero or empty column): the unit that
    :func:`to_digits` and :func:`to_sum_digits` quantise to 2^-33 of (no n × c temporary)."""
    if not len(values):
        return np.ones(values.shape[1])
    col_max = np.maximum(values.max(axis=0), -values.min(axis=0))
    return np.where(col_max > 0, col_max, 1.0)


def to_digits(values: np.ndarray) -> DigitMatrix:
    """Quantise ``values`` (n × c, float64) column-wise to 2^-33 of the column's max |value|."""
    values = np.asarray(values, dtype=np.float64)
    n, c = values.shape
    col_max = _column_scale(values)
    integer = np.rint(values / col_max * 2.0**_QUANT_BITS).astype(np.int64)
    # a common factor of a column moves into its scale (exactly): 0/1 weights and constant
    # columns become 0/±1, one digit instead of five
    common = np.gcd.reduce(integer, axis=0) if n else np.ones(c, dtype=np.int64)
    common = np.where(common > 0, common, 1)
    integer //= common
    scale = col_max / 2.0**_QUANT_BITS * common
    planes = np.zeros((N_DIGITS, n, c), dtype=np.int8)
    for t in range(N_DIGITS):
        digit = ((integer + DIGIT_BASE // 2) % DIGIT_BASE) - DIGIT_BASE // 2
        planes[t] = digit
        integer = (integer - digit) // DIGIT_BASE
    used = planes.any(axis=1)  # (N_DIGITS, c)
    digit_columns = tuple(np.flatnonzero(used[t]) for t in range(N_DIGITS))
    width = sum(len(columns) for columns in digit_columns)
    padded = max(8, -(-width // 8) * 8)
    digits = np.zeros((n, padded), dtype=np.int8)
    start = 0
    for t, columns in enumerate(digit_columns):
        digits[:, start : start + len(columns)] = planes[t][:, columns]
        start += len(columns)
    return DigitMatrix(
        digits=torch.from_numpy(digits),
        scale=torch.from_numpy(scale),
        n_cols=c,
        padded_cols=padded,
        digit_columns=digit_columns,
        values=torch.from_numpy(np.ascontiguousarray(values)),
    )


def _recombine(partial, matrix: DigitMatrix, combined):
    """Horner over the digits: ``combined`` (b × c, zeros) <- sum_t 128**t * partial's digit-t block."""
    starts = np.cumsum([0] + [len(columns) for columns in matrix.digit_columns])
    for t in range(len(matrix.digit_columns) - 1, -1, -1):
        combined *= DIGIT_BASE
        columns = matrix.digit_columns[t]
        if len(columns):
            combined[:, columns] += partial[:, starts[t] : starts[t + 1]]
    return combined


def int8_matmul(device: torch.device) -> bool:
    """Whether :func:`exact_products` multiplies int8 × int8 -> int32 (``torch._int_mm``, CPU);
    elsewhere (CUDA) the digits are multiplied in float64, which is exact too (|sums| < 2^53).
    Tests switch it off to run the accelerator arithmetic on the CPU."""
    return device.type == "cpu"


def exact_products(dosage: torch.Tensor, matrix: DigitMatrix) -> torch.Tensor:
    """``dosage @ V`` in float64 for an int8 dosage block (b × n) and a :class:`DigitMatrix` V
    (exact, from int8 digit products; a float dosage block is multiplied by V in float64).

    Returns
    -------
    Tensor of float64, shape (b, c)
    """
    if dosage.is_floating_point():  # dosage data: a float64 product (plink2 computes in double too)
        return dosage.to(torch.float64) @ matrix.values.to(dosage.device)
    digits = matrix.digits.to(dosage.device)
    b = dosage.shape[0]
    if int8_matmul(dosage.device) and b >= 1:
        try:
            partial = torch._int_mm(dosage, digits)
        except (RuntimeError, AttributeError, NotImplementedError):  # pragma: no cover - old torch, odd shapes
            partial = None
        if partial is not None:
            # recombine the base-128 digits exactly in int64 (|sum| < 2^49), then one conversion
            combined = _recombine(partial.numpy(), matrix, np.zeros((b, matrix.n_cols), dtype=np.int64))
            return torch.from_numpy(combined.astype(np.float64) * matrix.scale.numpy())
    partial = dosage.double() @ digits.double()
    combined = torch.zeros(b, matrix.n_cols, dtype=torch.float64, device=partial.device)
    index = [torch.from_numpy(columns).to(partial.device) for columns in matrix.digit_columns]
    starts = np.cumsum([0] + [len(columns) for columns in matrix.digit_columns])
    for t in range(len(index) - 1, -1, -1):
        combined *= DIGIT_BASE
        if len(index[t]):
            combined[:, index[t]] += partial[:, int(starts[t]) : int(starts[t + 1])]
    return combined * matrix.scale.to(partial.device)


def squared_products(dosage: torch.Tensor, matrix: DigitMatrix, rows: int = 32) -> torch.Tensor:
    """``(dosage ** 2) @ V`` as :func:`exact_products` computes products, ``rows`` variants at a time
    into one small reused buffer (a whole float64 block squared is ~70 MB of fresh pages at N 10,000).

    Returns
    -------
    Tensor of float64, shape (b, c)
    """
    if dosage.shape[0] == 0:
        return torch.zeros(0, matrix.n_cols, dtype=torch.float64, device=dosage.device)
    scratch = torch.empty(min(rows, dosage.shape[0]), dosage.shape[1], dtype=dosage.dtype, device=dosage.device)
    parts = []
    for chunk in torch.split(dosage, rows):
        square = torch.mul(chunk, chunk, out=scratch[: len(chunk)])
        parts.append(exact_products(square, matrix))
    return torch.cat(parts)


# exact sums of real matrices' rows over each variant's missing calls
# ---------------------------------------------------------------------------------------------
BAG_CALLS = 256  # missing calls summed per float32 bag: 256 digits of |d| <= 2^16 stay below 2^24
_BAG_DIGIT_BITS = 17


@dataclass(frozen=True)
class SumDigits:
    """A real matrix V (n × c) quantised column-wise like :func:`to_digits` (2^-33 of the column's
    max |value|) and split into two signed base-2^17 digits stored as float32, so that sums of up
    to :data:`BAG_CALLS` rows add integers below 2^24 and are exact in float32 (in any order, on
    any device).

    Attributes
    ----------
    digits : Tensor of float32, shape (n, 2 * c)
        High digits of the c columns, then the low digits.
    scale : Tensor of float64, shape (c,)
        Column ``j`` of V is ``scale[j] * (2**17 * high[:, j] + low[:, j])``.
    """

    digits: torch.Tensor
    scale: torch.Tensor

    @property
    def n_cols(self) -> int:
        return len(self.scale)


def to_sum_digits(values: np.ndarray) -> SumDigits:
    """Quantise ``values`` (n × c, float64) for :func:`missing_call_sums`."""
    values = np.asarray(values, dtype=np.float64)
    n, c = values.shape
    col_max = _column_scale(values)
    digits = np.empty((n, 2 * c), dtype=np.float32)
    half = 1 << (_BAG_DIGIT_BITS - 1)
    # a few thousand rows at a time, in place: whole n × c temporaries would be thousands of
    # fresh pages each, and this runs while the first genotype block waits for it
    rows = max(1, min(n, (1 << 17) // max(c, 1)))
    scaled, integer, low = np.empty((rows, c)), np.empty((rows, c), dtype=np.int64), np.empty((rows, c), np.int64)
    for start in range(0, n, rows):
        m = min(rows, n - start)
        np.divide(values[start : start + m], col_max, out=scaled[:m])
        scaled[:m] *= 2.0**_QUANT_BITS
        np.copyto(integer[:m], np.rint(scaled[:m], out=scaled[:m]), casting="unsafe")  # |integer| <= 2^33
        np.add(integer[:m], half, out=low[:m])
        np.remainder(low[:m], 1 << _BAG_DIGIT_BITS, out=low[:m])
        low[:m] -= half                                      # in [-2^16, 2^16)
        integer[:m] -= low[:m]
        integer[:m] >>= _BAG_DIGIT_BITS                      # high digit, in [-2^16, 2^16]
        digits[start : start + m, :c] = integer[:m]
        digits[start : start + m, c:] = low[:m]
    return SumDigits(digits=torch.from_numpy(digits), scale=torch.from_numpy(col_max / 2.0**_QUANT_BITS))


def missing_call_sums(block: DosageBlock, matrix: SumDigits) -> np.ndarray:
    """Sum the rows of ``matrix`` (one per dosage column) over each variant's missing calls.

    ``torch.nn.functional.embedding_bag`` gathers and adds the float32 digit rows of each bag of at
    most :data:`BAG_CALLS` missing calls (FBGEMM's vectorised kernel on x86 CPUs: about twice as
    fast as a float64 sparse product); every partial sum is an integer below 2^24, so the bags are
    exact, and their digits recombine exactly in float64. The result is the exact sum of the
    quantised rows, rounded once by the column scale (for variants with fewer than 2^20 missing
    calls; beyond, the float64 sum over bags may round, by about one unit in the last place).

    Returns
    -------
    ndarray of float64, shape (b, c)
    """
    b, c = len(block.variant_index), matrix.n_cols
    if len(block.missing_sample) == 0:
        return np.zeros((b, c))
    if block.missing_per_variant is not None:  # rows in order, counted by the reader (a start-up scan)
        counts, samples = np.asarray(block.missing_per_variant, dtype=np.int64), block.missing_sample
    else:
        counts, samples = np.bincount(block.missing_variant, minlength=b), block.missing_sample
        if not np.all(np.diff(block.missing_variant) >= 0):  # pragma: no cover - all readers yield sorted rows
            samples = samples[np.argsort(block.missing_variant, kind="stable")]
    starts = np.cumsum(counts) - counts  # of each variant's calls
    split = counts.max() > BAG_CALLS
    if split:  # bags of at most BAG_CALLS calls: each variant's calls in consecutive bags
        bags = -(-counts // BAG_CALLS)
        first_bag = np.cumsum(bags) - bags
        starts = np.repeat(starts, bags) + (np.arange(bags.sum()) - np.repeat(first_bag, bags)) * BAG_CALLS
    index_type = torch.int32 if len(samples) < 2**31 else torch.int64
    bag_sums = torch.nn.functional.embedding_bag(
        torch.from_numpy(np.asarray(samples)).to(index_type), matrix.digits,
        torch.from_numpy(starts).to(index_type), mode="sum",
    )  # (bags, 2c), exact integers
    sums = bag_sums[:, :c].double().mul_(2.0**_BAG_DIGIT_BITS).add_(bag_sums[:, c:])
    if split:
        per_variant = torch.zeros(b, c, dtype=torch.float64)
        sums = per_variant.index_add_(0, torch.from_numpy(np.repeat(np.arange(b), bags)), sums)
    return sums.mul_(matrix.scale).numpy()
