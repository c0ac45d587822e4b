"""Bit-parallel kernels on PLINK 1 ``.bed`` bytes, and a background scan that runs them while
the rest of the program starts.

Everything here needs numpy only (no torch, no pandas), so :func:`start_bed_scan` can begin
reading a ``.bed`` before ``import torch`` (1.5-2 s) has finished: numpy releases the GIL inside
its kernels, so on two cores the scan runs alongside the imports and the table reading. The scan
finds every missing call and counts the homozygous-A1 calls of each variant; the association
code then takes those results per block (:func:`scanned_block`) instead of computing them.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_LOW_BITS = np.uint64(0x5555555555555555)  # bit 0 of every 2-bit field of a 64-bit word
_ONE = np.uint64(1)


def as_words(packed: np.ndarray, or_mask: np.ndarray | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
    """``.bed`` bytes (``| or_mask``) as little-endian 64-bit words, 32 two-bit fields each.

    Rows are padded to a multiple of 8 bytes with ``0xFF`` (code 11: dosage 0, not missing,
    not homozygous A1), so the padding never counts. ``out`` (uint8, at least (b, width)) is a
    reusable buffer for the padded copy.

    Returns
    -------
    ndarray of uint64, shape (b, ceil(bytes / 8))
    """
    packed = np.asarray(packed, dtype=np.uint8)
    b, n_bytes = packed.shape
    width = -(-n_bytes // 8) * 8
    masked = or_mask is not None and bool(or_mask.any())
    if width == n_bytes and packed.flags.c_contiguous and not masked:
        return packed.view("<u8")
    if out is not None and out.shape[0] >= b and out.shape[1] == width:
        padded = out[:b]
    else:
        padded = np.empty((b, width), dtype=np.uint8)
    padded[:, n_bytes:] = 0xFF
    if masked:
        np.bitwise_or(packed, or_mask, out=padded[:, :n_bytes])
    else:
        padded[:, :n_bytes] = packed
    return padded.view("<u8")


def read_rows(fd: int, first: int, out: np.ndarray) -> np.ndarray:
    """Read ``len(out)`` consecutive variant rows of a ``.bed`` (file descriptor ``fd``), starting
    at variant ``first``, into ``out`` (uint8, (b, bytes), C-contiguous) with ``pread``.

    Unlike slicing a memory map, this leaves no file pages mapped in the process (its resident
    memory stays the working set) and fills a reusable buffer.
    """
    view = memoryview(out).cast("B")
    offset, done = 3 + first * out.shape[1], 0
    while done < len(view):
        count = os.preadv(fd, [view[done:]], offset + done)
        if count <= 0:
            raise OSError(f"unexpected end of the .bed file at byte {offset + done}")
        done += count
    return out


def mask_words(or_mask: np.ndarray) -> np.ndarray | None:
    """An :func:`exclusion_mask` as 64-bit words matching :func:`as_words` rows; ``None`` when it
    excludes nothing.

    Returns
    -------
    ndarray of uint64, shape (ceil(bytes / 8),), or None
    """
    or_mask = np.asarray(or_mask, dtype=np.uint8)
    if not or_mask.any():
        return None
    padded = np.zeros(-(-len(or_mask) // 8) * 8, dtype=np.uint8)
    padded[: len(or_mask)] = or_mask
    return padded.view("<u8")


def hom_a1_word_counts(
    words: np.ndarray, or_words: np.ndarray | None = None, *, scratch: np.ndarray | None = None
) -> np.ndarray:
    """:func:`deepprs.assoc.blocks.hom_a1_counts` on 64-bit words from :func:`as_words` -> (b,) int64.

    ``or_words`` (from :func:`mask_words`) excludes samples; ``scratch`` (uint64, at least the
    shape of ``words``) is a reusable work buffer.
    """
    fields = _scratch(words, scratch)
    np.right_shift(words, _ONE, out=fields)
    np.bitwise_or(fields, words, out=fields)
    if or_words is not None:  # an excluded field is 11 after the OR: its low bit is set
        np.bitwise_or(fields, or_words, out=fields)
    np.bitwise_and(fields, _LOW_BITS, out=fields)
    np.bitwise_xor(fields, _LOW_BITS, out=fields)  # 1 where both bits are clear: code 00
    return np.bitwise_count(fields).sum(axis=1, dtype=np.int64)


def _scratch(words: np.ndarray, scratch: np.ndarray | None) -> np.ndarray:
    if scratch is not None and scratch.shape[0] >= words.shape[0] and scratch.shape[1:] == words.shape[1:]:
        return scratch[: words.shape[0]]
    return np.empty_like(words)


def missing_word_calls(
    words: np.ndarray, dtype: type = np.int64, *, scratch: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`deepprs.assoc.blocks.missing_calls` on 64-bit words from :func:`as_words` -> (missing_variant,
    missing_sample), both of integer type ``dtype``; ``scratch`` as in :func:`hom_a1_word_counts`."""
    b, words_per_row = words.shape
    flags = _scratch(words, scratch)
    np.right_shift(words, _ONE, out=flags)
    np.invert(flags, out=flags)
    np.bitwise_and(flags, words, out=flags)
    np.bitwise_and(flags, _LOW_BITS, out=flags)
    per_word = np.bitwise_count(flags)  # (b, words) uint8
    per_row = per_word.sum(axis=1, dtype=np.int64)
    flat = flags.reshape(-1)
    word_index = np.flatnonzero(flat != 0)
    value = flat[word_index]
    count = per_word.reshape(-1)[word_index].astype(np.int64)
    slot = np.cumsum(count) - count  # first output slot of each word
    missing_sample = np.empty(int(per_row.sum()), dtype=dtype)
    first_sample = (word_index % words_per_row) * 32
    while len(value):
        lowest = value & (~value + _ONE)  # lowest set bit
        field = np.bitwise_count(lowest - _ONE).astype(np.int64) >> 1
        missing_sample[slot] = first_sample + field
        value ^= lowest
        left = np.flatnonzero(value != 0)
        value, slot, first_sample = value[left], slot[left] + 1, first_sample[left]
    return np.repeat(np.arange(b, dtype=dtype), per_row), missing_sample


@dataclass(frozen=True)
class ScannedBlock:
    """Results of the background scan for variants ``start:stop`` of a ``.bed``.

    Attributes
    ----------
    missing_per_variant : ndarray of int64, shape (b,)
        Missing calls of each variant (the rows of :func:`missing_word_calls`, run-length coded).
    missing_sample : ndarray of int32, shape (n_missing,)
        As :func:`missing_word_calls`.
    hom_a1_all : ndarray of int64, shape (b,)
        Homozygous-A1 calls over all samples of the file (padding columns excluded).
    """

    start: int
    stop: int
    missing_per_variant: np.ndarray
    missing_sample: np.ndarray
    hom_a1_all: np.ndarray

    @property
    def missing_variant(self) -> np.ndarray:
        """Block-local variant row of every missing call -> (n_missing,) int32."""
        return np.repeat(np.arange(self.stop - self.start, dtype=np.int32), self.missing_per_variant)


def padding_mask(n_samples: int) -> np.ndarray:
    """OR mask (see :func:`deepprs.assoc.blocks.exclusion_mask`) that excludes only the padding
    fields of the last byte of a ``.bed`` row of ``n_samples`` samples -> (ceil(n / 4),) uint8."""
    n_bytes = (n_samples + 3) // 4
    mask = np.zeros(n_bytes, dtype=np.uint8)
    for field in range(n_samples - 4 * (n_bytes - 1), 4):
        mask[-1] |= np.uint8(3 << (2 * field))
    return mask


class BedScan:
    """Scan a ``.bed`` in blocks of ``block_size`` variants in a daemon thread.

    Parameters
    ----------
    bed_path
        The ``.bed`` file (variant-major, validated magic bytes).
    n_samples, n_variants
        From the ``.fam`` line count and the file size.
    block_size
        Variants per block; results are kept only for blocks requested with exactly these bounds.
    max_ahead
        Blocks whose results may wait to be taken (bounds the memory: ~6.5 MB per block of 4,096
        variants at 10,000 samples and 2% missing calls); the scan pauses at the limit.
    """

    def __init__(self, bed_path: str | Path, n_samples: int, n_variants: int, block_size: int,
                 *, max_ahead: int = 32) -> None:
        self.path = Path(bed_path).resolve()
        self.n_samples, self.n_variants, self.block_size = n_samples, n_variants, block_size
        self._bytes = (n_samples + 3) // 4
        self._results: dict[int, ScannedBlock] = {}
        self.error: Exception | None = None
        self._n_blocks = -(-n_variants // block_size)
        self._claimed: set[int] = set()  # blocks a reader decodes itself
        self._overtaken = 0  # the scan skips blocks below the furthest block a reader claimed
        self._done = False
        self._stop = threading.Event()
        self._room = threading.Condition()
        self._max_ahead = max(1, max_ahead)
        self._thread = threading.Thread(target=self._run, name="deepprs-bed-scan", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            # background work: yield the CPU to the foreground threads (and to other programs)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):  # pragma: no cover - not Linux
            pass
        fd = None
        try:
            fd = os.open(self.path, os.O_RDONLY)
            rows = np.empty((self.block_size, self._bytes), dtype=np.uint8)
            or_words = mask_words(padding_mask(self.n_samples))
            width = -(-self._bytes // 8) * 8
            padded = np.full((self.block_size, width), 0xFF, dtype=np.uint8)  # reused: no fresh pages
            scratch = np.empty((self.block_size, width // 8), dtype=np.uint64)
            for number, start in enumerate(range(0, self.n_variants, self.block_size)):
                with self._room:
                    self._room.wait_for(lambda: self._stop.is_set() or len(self._results) < self._max_ahead)
                    if self._stop.is_set():
                        break
                    if number in self._claimed or number < self._overtaken:
                        continue  # the reader got there first and decodes this block itself
                stop = min(start + self.block_size, self.n_variants)
                padded[: stop - start, : self._bytes] = read_rows(fd, start, rows[: stop - start])
                words = padded[: stop - start].view("<u8")
                missing_variant, missing_sample = missing_word_calls(words, dtype=np.int32, scratch=scratch)
                per_variant = np.bincount(missing_variant, minlength=stop - start)
                hom = hom_a1_word_counts(words, or_words, scratch=scratch)
                with self._room:
                    if number not in self._claimed:  # else a reader did it meanwhile
                        self._results[number] = ScannedBlock(start, stop, per_variant, missing_sample, hom)
                    self._room.notify_all()
        except Exception as exc:  # noqa: BLE001 - the blocks not scanned are computed by the caller
            self.error = exc
        finally:  # never leave a reader waiting: a block without results is computed by the caller
            if fd is not None:
                os.close(fd)
            with self._room:
                self._done = True
                self._room.notify_all()
        self._preload()

    def _preload(self) -> None:
        """Import the scipy modules the association step needs next (sparse missing-call sums,
        Student t P-values) while the foreground threads run numpy/torch kernels without the GIL:
        their ~0.2 s first import then overlaps the regression instead of lengthening it."""
        if self._stop.is_set():
            return
        try:
            import scipy.sparse  # noqa: F401
            import scipy.special  # noqa: F401
        except Exception:  # noqa: BLE001 # pragma: no cover - the foreground import reports any problem
            pass

    def take(self, bed_path: str | Path, block_index: np.ndarray) -> ScannedBlock | None:
        """The scan's results for ``block_index`` of ``bed_path``, or None when the scan does not
        cover exactly these variants or has not reached them yet (the caller then decodes the
        block itself and the scan skips or drops it). Never waits. Each block is handed out once
        (its memory is then released)."""
        if len(block_index) == 0 or Path(bed_path).resolve() != self.path:
            return None
        start = int(block_index[0])
        number = start // self.block_size
        if start % self.block_size:
            self._passed(number)
            return None
        stop = min(start + self.block_size, self.n_variants)
        if number >= self._n_blocks or len(block_index) != stop - start or int(block_index[-1]) != stop - 1:
            return None
        if not np.array_equal(block_index, np.arange(start, stop)):
            self._passed(number)
            return None
        with self._room:  # never waits: the scan thread runs at low priority
            result = self._results.pop(number, None)
            if result is None and not self._done:
                self._claimed.add(number)
                self._overtaken = max(self._overtaken, number)
            self._room.notify_all()
        return result

    def _passed(self, number: int) -> None:
        """A reader went past block ``number`` without using the scan: skip the blocks before it and
        drop their results (allowing for readers a couple of blocks out of order)."""
        with self._room:
            self._overtaken = max(self._overtaken, number)
            for old in [key for key in self._results if key < number - 2]:
                del self._results[old]
            self._room.notify_all()

    def close(self) -> None:
        """Stop scanning (after the current block) and drop the results not taken."""
        with self._room:
            self._stop.set()
            self._results.clear()
            self._room.notify_all()


_ACTIVE: list[BedScan] = []


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``; 10 ms resolution), or None elsewhere."""
    try:
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def start_bed_scan(prefix: str | Path, block_size: int) -> BedScan | None:
    """Start scanning ``PREFIX.bed`` in the background (see :class:`BedScan`) and register the
    scan for :func:`scanned_block`. Returns None, without raising, when the fileset does not look
    like a valid variant-major ``.bed``: the normal reader then reports the problem.
    """
    prefix = Path(prefix)
    if prefix.suffix == ".bed":
        prefix = prefix.with_suffix("")
    bed, fam = Path(f"{prefix}.bed"), Path(f"{prefix}.fam")
    try:
        with open(bed, "rb") as handle:
            if handle.read(3) != bytes([0x6C, 0x1B, 0x01]):
                return None
        with open(fam, "rb") as handle:
            n_samples = sum(1 for line in handle if line.strip())
        n_bytes = (n_samples + 3) // 4
        size = os.path.getsize(bed) - 3
    except OSError:
        return None
    if n_samples == 0 or block_size < 1 or size <= 0 or size % n_bytes:
        return None
    stop_bed_scan()
    scan = BedScan(bed, n_samples, size // n_bytes, block_size)
    _ACTIVE.append(scan)
    return scan


def stop_bed_scan() -> None:
    """Stop and unregister the active scan, if any."""
    while _ACTIVE:
        _ACTIVE.pop().close()


def scanned_block(bed_path: str | Path, block_index: np.ndarray) -> ScannedBlock | None:
    """Results of the active scan for these variants, or None (no scan, or not covered)."""
    return _ACTIVE[0].take(bed_path, block_index) if _ACTIVE else None
