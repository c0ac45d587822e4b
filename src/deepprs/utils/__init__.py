"""Shared plumbing: run logs, provenance, atomic output files, devices, progress bars."""

from deepprs.utils.runlog import RunLog, atomic_output, atomic_path, current_run, estimate_memory, track
from deepprs.utils.device import resolve_device

__all__ = ["RunLog", "atomic_output", "atomic_path", "current_run", "estimate_memory", "resolve_device", "track"]
