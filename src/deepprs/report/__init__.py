"""Self-contained HTML reports of an analysis folder.

:func:`build_report` scans a folder for the outputs of ``deepprs`` commands (and of plink2)
and writes one HTML file: inline CSS, plots embedded as base64 PNGs, no scripts.  Sections are
registered in :mod:`deepprs.report.sections` (see :mod:`deepprs.report.base`).
"""

from deepprs.report.base import SECTIONS, ReportContext, Section, find_files, read_table, register_section
from deepprs.report.build import build_report, load_sections, render_report

__all__ = [
    "SECTIONS",
    "ReportContext",
    "Section",
    "build_report",
    "find_files",
    "load_sections",
    "read_table",
    "register_section",
    "render_report",
]
