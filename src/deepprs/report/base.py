"""The section registry: each report section is one small class in :mod:`deepprs.report.sections`.

A section says which files it reads (``detect``) and turns them into an HTML fragment
(``render``).  Adding a section to the report = adding one module under
``deepprs/report/sections/`` that defines a :class:`Section` subclass decorated with
:func:`register_section`; modules there are discovered automatically.

Examples
--------
>>> from deepprs.report.base import Section, register_section
>>> @register_section
... class LociSection(Section):                                   # doctest: +SKIP
...     id, title, order = "loci", "Discovered loci", 55
...     patterns = ("*.loci.tsv",)
...     def render(self, files, context):
...         return "".join(table_html(read_table(path)) for path in files)
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pandas as pd

from deepprs.errors import InputError

SECTIONS: list[Section] = []


@dataclass
class ReportContext:
    """What a section may need besides its files.

    Attributes
    ----------
    analysis_dir
        Root folder of the analysis (paths in the page are shown relative to it).
    out_html
        Where the report will be written (links to logs are relative to its folder).
    notes
        Warnings collected while rendering (shown in the log of ``deepprs report``).
    """

    analysis_dir: Path
    out_html: Path
    notes: list[str] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        """``path`` relative to the analysis folder (for display)."""
        try:
            return str(Path(path).resolve().relative_to(self.analysis_dir.resolve()))
        except ValueError:
            return str(path)

    def href(self, path: Path) -> str:
        """``path`` relative to the report's folder (for links)."""
        return Path(os.path.relpath(Path(path).resolve(), self.out_html.resolve().parent)).as_posix()


class Section:
    """One report section.

    Subclasses set ``id`` (the HTML element id becomes ``section-<id>``), ``title``, ``order``
    (sections are sorted by it) and ``patterns`` (glob patterns searched recursively), and
    implement :meth:`render`.  Override :meth:`detect` for anything a glob cannot express.
    """

    id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    order: ClassVar[int] = 100
    patterns: ClassVar[tuple[str, ...]] = ()

    def detect(self, analysis_dir: Path) -> list[Path]:
        """Files of this section under ``analysis_dir`` (recursive); empty -> section absent."""
        return find_files(analysis_dir, self.patterns)

    def render(self, files: list[Path], context: ReportContext) -> str:  # pragma: no cover - abstract
        """HTML fragment (without the enclosing ``<section>``) built from ``files``."""
        raise NotImplementedError

    @property
    def element_id(self) -> str:
        return f"section-{self.id}"


def register_section(cls: type[Section]) -> type[Section]:
    """Class decorator: add one instance of ``cls`` to :data:`SECTIONS` (kept sorted by ``order``)."""
    if not cls.id or not cls.title:
        raise TypeError(f"{cls.__name__} needs an id and a title")
    SECTIONS[:] = [section for section in SECTIONS if section.id != cls.id]
    SECTIONS.append(cls())
    SECTIONS.sort(key=lambda section: (section.order, section.id))
    return cls


def find_files(root: Path, patterns: tuple[str, ...] | list[str]) -> list[Path]:
    """Files under ``root`` matching any glob pattern, recursively, sorted, without hidden files.

    Hidden names are skipped so that half-written temporary outputs (``.name.tmpPID``) never
    reach the report.
    """
    root = Path(root)
    found: set[Path] = set()
    for pattern in patterns:
        for path in root.rglob(pattern):
            relative_parts = path.relative_to(root).parts
            if path.is_file() and not any(part.startswith(".") for part in relative_parts):
                found.add(path)
    return sorted(found)


def read_table(path: Path, *, header: bool = True) -> pd.DataFrame:
    """Read a tab- or whitespace-separated text table (``.gz`` allowed); a leading ``#`` is dropped.

    Raises
    ------
    InputError
        If the file cannot be parsed as a table.
    """
    path = Path(path)
    try:
        raw = gzip.open(path, "rt") if path.suffix == ".gz" else open(path)
        with raw as handle:
            text = handle.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc})") from exc
    first_line = text.split("\n", 1)[0]
    separator = "\t" if "\t" in first_line else r"\s+"
    try:
        table = pd.read_csv(
            io.StringIO(text),
            sep=separator,
            header=0 if header else None,
            na_values=["NA", "nan", "NaN", "."],
            keep_default_na=True,
            engine="python" if separator != "\t" else "c",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(f"{path}: not a readable table ({exc})") from exc
    if header and len(table.columns):
        first = str(table.columns[0])
        if first.startswith("#"):
            table = table.rename(columns={table.columns[0]: first.lstrip("#")})
    return table


def find_column(table: pd.DataFrame, *candidates: str) -> str | None:
    """First column of ``table`` whose name equals one of ``candidates`` (case-insensitive)."""
    by_lower = {str(column).lower(): str(column) for column in table.columns}
    for name in candidates:
        if name.lower() in by_lower:
            return by_lower[name.lower()]
    return None
