"""Shared plumbing: run logs, provenance, atomic output files, devices, progress bars.

Imports are lazy so that ``deepprs --help`` does not pay for torch.
"""

from deepprs.utils.runlog import RunLog, atomic_output, atomic_path, current_run, estimate_memory, track

__all__ = ["RunLog", "atomic_output", "atomic_path", "current_run", "estimate_memory", "resolve_device", "track"]


def __getattr__(name: str):
    if name == "resolve_device":
        from deepprs.utils.device import resolve_device

        return resolve_device
    raise AttributeError(name)
