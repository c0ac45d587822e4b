"""Device selection: the same torch code runs on CPU and CUDA."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from deepprs.errors import InputError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return a torch device; ``None`` or ``"auto"`` picks CUDA when available.

    Raises
    ------
    InputError
        If CUDA is requested but not available, a GPU number that does not exist, or a string that
        is not a device.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"--device {device!r} is not a device (use cpu, cuda or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was requested but no CUDA GPU is available; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                         f"numbered from 0")
    return device


# thread-count variables of the BLAS / OpenMP libraries numpy, scipy and scikit-learn may load later
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS")


def set_threads(threads: int | None, *, blas: int | None = None) -> None:
    """Limit every CPU thread pool to ``threads`` (``--threads``, as plink2's): torch's intra-op
    threads, the BLAS / OpenMP pools already loaded (numpy's and scipy's OpenBLAS, through
    threadpoolctl), and, through the environment, those loaded later. Without a limit a numpy
    or scipy product would start one thread per core of a shared cluster node.

    ``blas``: a lower limit for the OpenBLAS / BLIS pools of numpy and scipy, for commands whose
    heavy maths runs in torch's own pool (an idle OpenBLAS worker spins ~0.1 s after each call,
    taking a core from torch's threads)."""
    threads = int(threads) if threads is not None and threads > 0 else None
    blas = max(1, int(blas)) if blas is not None and (threads is None or blas < threads) else None
    if threads is None and blas is None:
        return
    import os

    from threadpoolctl import ThreadpoolController, threadpool_limits

    if threads is not None:
        torch.set_num_threads(threads)
        for name in _THREAD_VARIABLES + _BLAS_VARIABLES:
            os.environ[name] = str(threads)
        if blas is None:
            threadpool_limits(limits=threads)
        else:  # not OpenBLAS: raising its count starts a worker that then spins ~0.1 s
            ThreadpoolController().select(internal_api=["mkl", "openmp", "flexiblas"]).limit(limits=threads)
    if blas is not None:  # (also without --threads)
        for name in _BLAS_VARIABLES:
            os.environ[name] = str(blas)
        ThreadpoolController().select(internal_api=["openblas", "blis"]).limit(limits=blas)


@contextmanager
def blas_threads(threads: int) -> Iterator[None]:
    """Limit the BLAS pools already loaded (numpy's and scipy's OpenBLAS) to ``threads`` inside the
    block, for work that already keeps every core busy with its own threads: a two-thread BLAS call
    made beside two busy worker threads waits for a core (a 10,000 × 11 QR then takes 90 ms instead
    of 1-2 ms)."""
    from threadpoolctl import ThreadpoolController

    with ThreadpoolController().limit(limits=threads, user_api="blas"):
        yield


@contextmanager
def switch_interval(seconds: float) -> Iterator[None]:
    """Let the interpreter hand the GIL between threads every ``seconds`` inside the block.

    For pipelines whose worker threads run numpy / torch kernels between short stretches of Python
    while another thread runs Python: each time a worker needs the GIL back it waits up to the
    switch interval (5 ms by default), so a worker decoding a genotype block in 40 kernel calls
    could wait 0.1-0.2 s behind a main thread that builds designs.
    """
    import sys

    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        if sys.getswitchinterval() == seconds:  # (not if something else changed it meanwhile)
            sys.setswitchinterval(previous)
