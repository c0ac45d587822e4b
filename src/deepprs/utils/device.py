"""Device selection: the same torch code runs on CPU and CUDA."""

from __future__ import annotations

import torch

from deepprs.errors import InputError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return a torch device; ``None`` or ``"auto"`` picks CUDA when available.

    Raises
    ------
    InputError
        If CUDA is requested but not available.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was requested but no CUDA GPU is available; use --device cpu")
    return device


def set_threads(threads: int | None) -> None:
    """Limit torch's intra-op threads (``--threads``)."""
    if threads is not None and threads > 0:
        torch.set_num_threads(int(threads))
