"""Association testing (GWAS) with plink2 ``--glm`` semantics and output formats."""

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
