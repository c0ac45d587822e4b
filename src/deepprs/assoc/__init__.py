"""Association testing (GWAS) with plink2 ``--glm`` semantics and output formats.

The public names are imported on first use (PEP 562 module ``__getattr__``), so importing one
submodule (e.g. :mod:`deepprs.assoc.gwas` for a linear GWAS) does not pay for the others
(logistic regression and its scipy imports).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_SOURCES = {
    "GwasResult": "deepprs.assoc.gwas",
    "run_gwas": "deepprs.assoc.gwas",
    "LINEAR_COLUMNS": "deepprs.assoc.linear",
    "gwas_linear": "deepprs.assoc.linear",
    "read_cvblup_loco": "deepprs.assoc.loco",
    "LOGISTIC_COLUMNS": "deepprs.assoc.logistic",
    "fit_logistic": "deepprs.assoc.logistic",
    "gwas_logistic": "deepprs.assoc.logistic",
    "binary_coding": "deepprs.assoc.output",
    "format_glm": "deepprs.assoc.output",
    "genomic_control": "deepprs.assoc.output",
    "read_glm": "deepprs.assoc.output",
    "to_case_control": "deepprs.assoc.output",
    "write_glm": "deepprs.assoc.output",
}

__all__ = [
    "GwasResult",
    "LINEAR_COLUMNS",
    "LOGISTIC_COLUMNS",
    "binary_coding",
    "fit_logistic",
    "format_glm",
    "genomic_control",
    "gwas_linear",
    "gwas_logistic",
    "read_cvblup_loco",
    "read_glm",
    "run_gwas",
    "to_case_control",
    "write_glm",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from deepprs.assoc.gwas import GwasResult, run_gwas
    from deepprs.assoc.linear import LINEAR_COLUMNS, gwas_linear
    from deepprs.assoc.loco import read_cvblup_loco
    from deepprs.assoc.logistic import LOGISTIC_COLUMNS, fit_logistic, gwas_logistic
    from deepprs.assoc.output import (
        binary_coding,
        format_glm,
        genomic_control,
        read_glm,
        to_case_control,
        write_glm,
    )


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'deepprs.assoc' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SOURCES})
