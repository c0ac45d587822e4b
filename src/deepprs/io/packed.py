"""Packed 2-bit genotypes for training: N × ceil(M/4) bytes, sample-major.

Networks see batches of *samples*, so the training form packs each sample's variants into
bytes (4 genotypes a byte; codes 0/1/2 = dosage of the counted allele, 3 = missing) and
unpacks any batch to float on the CPU or GPU in torch.  100k × 100k genotypes take 2.5 GB
instead of 40 GB as float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepprs.errors import InputError
from deepprs.io.genotypes import GenotypeSource, IndexLike, as_index

MISSING_CODE = 3
_SHIFTS = (0, 2, 4, 6)


def pack_dosage(dosage_i8: np.ndarray) -> np.ndarray:
    """Pack an int8 samples × variants matrix (-1 missing) into uint8 (samples × ceil(M/4))."""
    dosage_i8 = np.ascontiguousarray(dosage_i8, dtype=np.int8)
    n, m = dosage_i8.shape
    codes = np.empty((n, ((m + 3) // 4) * 4), dtype=np.uint8)
    # -1 is 0xFF as uint8, so "& 3" maps missing to code 3 and keeps 0/1/2
    np.bitwise_and(dosage_i8.view(np.uint8), 3, out=codes[:, :m])
    codes[:, m:] = MISSING_CODE
    # Four consecutive codes c0..c3 (2 bits each, one per byte) read as one little-endian uint32
    # w = c0 | c1 << 8 | c2 << 16 | c3 << 24. Then w | w >> 6 puts c0 | c1 << 2 in bits 0-3 and
    # c2 | c3 << 2 in bits 16-19 (bits 4-7 and 12-15 stay 0); OR-ing that with itself >> 12 brings
    # bits 16-19 down to 4-7, so the low byte is the packed byte. Four vector ops, no strided reads.
    words = codes.view("<u4")
    shifted = np.empty_like(words)
    np.right_shift(words, 6, out=shifted)
    np.bitwise_or(words, shifted, out=words)
    np.right_shift(words, 12, out=shifted)
    np.bitwise_or(words, shifted, out=words)
    return words.astype(np.uint8)        # keeps the low byte


@dataclass
class PackedGenotypes:
    """Sample-major 2-bit genotypes.

    Attributes
    ----------
    packed : ndarray of uint8, shape (n_samples, ceil(n_variants / 4))
    n_variants : int
    """

    packed: np.ndarray
    n_variants: int

    @property
    def n_samples(self) -> int:
        return int(self.packed.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.packed.nbytes)

    @classmethod
    def from_source(cls, source: GenotypeSource, *, samples: IndexLike = None, variants: IndexLike = None,
                    block_size: int = 4096) -> PackedGenotypes:
        """Stream a genotype file into packed form (memory: the packed matrix + one block)."""
        sample_index = as_index(samples, source.n_samples, "sample")
        variant_index = as_index(variants, source.n_variants, "variant")
        block_size = max(4, block_size - block_size % 4)
        m = len(variant_index)
        packed = np.empty((len(sample_index), (m + 3) // 4), dtype=np.uint8)
        from deepprs.io.bed import BedReader, transcode_bed_block

        if isinstance(source, BedReader):
            # .bed bytes go straight to the 2-bit sample-major layout (no int8 expansion)
            all_samples = len(sample_index) == source.n_samples and np.array_equal(
                sample_index, np.arange(source.n_samples))
            for start in range(0, m, block_size):
                block_index = variant_index[start:start + block_size]
                codes = transcode_bed_block(source.packed_variant_major(block_index), source.n_samples)
                columns = slice(start // 4, start // 4 + codes.shape[1])
                packed[:, columns] = codes if all_samples else codes[sample_index]
            return cls(packed=packed, n_variants=m)
        blocks = source.iter_blocks(block_size, samples=sample_index, variants=variant_index,
                                    dtype=np.int8, missing="raw")
        for number, block in enumerate(blocks):
            start = number * block_size // 4
            packed[:, start: start + (block.dosage.shape[1] + 3) // 4] = pack_dosage(block.dosage)
        return cls(packed=packed, n_variants=m)

    @classmethod
    def from_dosage(cls, dosage: np.ndarray) -> PackedGenotypes:
        """Pack a dense dosage matrix (NaN or negative = missing)."""
        dosage = np.asarray(dosage)
        if dosage.dtype.kind == "f":
            dosage_i8 = np.where(np.isfinite(dosage), np.rint(np.nan_to_num(dosage)), -1).astype(np.int8)
        else:
            dosage_i8 = dosage.astype(np.int8)
        if ((dosage_i8 > 2) | (dosage_i8 < -1)).any():
            raise InputError("packed genotypes hold hard calls 0/1/2 only")
        return cls(packed=pack_dosage(dosage_i8), n_variants=dosage.shape[1])

    def subset_samples(self, sample_index: IndexLike) -> PackedGenotypes:
        return PackedGenotypes(self.packed[as_index(sample_index, self.n_samples, "sample")], self.n_variants)

    def unpack_codes(self, sample_index: IndexLike = None, *, device: str | torch.device = "cpu",
                     packed_tensor: torch.Tensor | None = None) -> torch.Tensor:
        """Unpack to uint8 codes (0/1/2, 3 = missing), shape (batch, n_variants), on ``device``."""
        sample_index = as_index(sample_index, self.n_samples, "sample")
        source = packed_tensor if packed_tensor is not None else torch.from_numpy(self.packed)
        index = torch.as_tensor(sample_index, device=source.device)
        batch = source.index_select(0, index).to(device, non_blocking=True)
        shifts = torch.tensor(_SHIFTS, dtype=torch.uint8, device=batch.device)
        codes = (batch.unsqueeze(-1) >> shifts) & 3
        return codes.reshape(batch.shape[0], -1)[:, : self.n_variants]

    def unpack(self, sample_index: IndexLike = None, *, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32, center: torch.Tensor | None = None,
               scale: torch.Tensor | None = None, packed_tensor: torch.Tensor | None = None) -> torch.Tensor:
        """Unpack a batch of samples to float.

        Parameters
        ----------
        sample_index
            Samples to unpack (rows of ``packed``).
        center, scale : Tensor, shape (n_variants,), optional
            When given, returns ``(dosage - center) / scale`` with missing genotypes set to 0
            (i.e. imputed at the centre). Without them missing genotypes are NaN.
        packed_tensor
            The packed matrix already on the device (``torch.from_numpy(packed).to(device)``)
            so that only indices travel per batch.

        Returns
        -------
        Tensor, shape (batch, n_variants)
        """
        codes = self.unpack_codes(sample_index, device=device, packed_tensor=packed_tensor)
        missing = codes == MISSING_CODE
        values = codes.to(dtype)
        if center is not None:
            values = values - center.to(values.device, dtype)
            if scale is not None:
                values = values / scale.to(values.device, dtype)
            return values.masked_fill(missing, 0.0)
        return values.masked_fill(missing, float("nan"))

    def variant_stats(self, sample_index: IndexLike = None, *,
                      batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Per-variant mean and standard deviation of the dosage over non-missing calls.

        Computed over ``sample_index`` only, so that standardisation uses training samples alone.
        Monomorphic variants get sd = 1 (they then contribute 0 after centring).

        Returns
        -------
        mean, sd : ndarray, shape (n_variants,)
        """
        sample_index = as_index(sample_index, self.n_samples, "sample")
        total = np.zeros(self.n_variants)
        total_sq = np.zeros(self.n_variants)
        count = np.zeros(self.n_variants)
        for start in range(0, len(sample_index), batch_size):
            codes = self.unpack_codes(sample_index[start:start + batch_size]).numpy()
            observed = codes != MISSING_CODE
            values = np.where(observed, codes, 0).astype(np.float64)
            total += values.sum(0)
            total_sq += (values**2).sum(0)
            count += observed.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, total / count, 0.0)
            var = np.where(count > 1, (total_sq - count * mean**2) / np.maximum(count - 1, 1), 0.0)
        sd = np.sqrt(np.clip(var, 0, None))
        sd[sd < 1e-8] = 1.0
        return mean, sd

