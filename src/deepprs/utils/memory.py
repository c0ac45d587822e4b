"""Process-wide memory-allocator settings for the heavy commands (numpy and the standard library only)."""

from __future__ import annotations

import functools
import os

# glibc reads these when the process starts: the environment as this module first sees it is the
# closest Python gets to that
_USER_TUNED = ("glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")
               or any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")))


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse (allocations up to 32 MB from the heap, up
    to 256 MB of free heap kept) instead of returning it to the kernel, which must zero fresh pages
    at the next allocation. The GWAS frees and allocates block-sized arrays again and again. By
    default a free at the top of the heap beyond ~2x the largest recent allocation went back to the
    kernel: the logistic GWAS's batched Newton steps took 8-9 million page faults on the benchmark
    (20,000 variants, N 10,000; 26-28 s, 16 s of it system time) and take 0.15 million with this
    (15.6 s); the linear GWAS 309,000 -> 169,000 (0.3 s less CPU). Peak memory: the same within
    ±25 MiB. Forked children (the start-up scan) inherit the setting. Applied once per process.

    Returns
    -------
    True when the setting is in force; False, changing nothing, where the C library is not glibc or
    the user tuned malloc (``GLIBC_TUNABLES`` with malloc settings, ``MALLOC_MMAP_THRESHOLD_`` or
    ``MALLOC_TRIM_THRESHOLD_``).
    """
    if _USER_TUNED:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 256 << 20))
    except (OSError, AttributeError):  # not glibc
        return False
