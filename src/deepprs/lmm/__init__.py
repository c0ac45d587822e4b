"""Linear mixed models: GRM, REML, BLUP, cvBLUP, LOCO, pleiotropy, and a matrix-free path for large N.

Functional core: :func:`grm`, :class:`EigenGRM`, :func:`fit_reml`, :func:`blup_cvblup`,
:func:`fit_matrix_free`; estimator: :class:`CvBLUP`; file drivers: :func:`run_cvblup`,
:func:`run_pleiotropy`.
"""

from deepprs.lmm.commands import run_cvblup, run_pleiotropy
from deepprs.lmm.cvblup import CvBLUP, SnpWeights, TraitFit, fit_traits, snp_weights_exact
from deepprs.lmm.grm import grm, grm_by_chromosome, grm_cross_product, standardize_dosage
from deepprs.lmm.matrix_free import GenotypeOperator, conjugate_gradient, fit_matrix_free
from deepprs.lmm.pleiotropy import benjamini_yekutieli, correlation_test, pleiotropy_matrix, pleiotropy_table
from deepprs.lmm.reml import BlupResult, EigenGRM, RemlFit, blup_cvblup, fit_reml, reml_loglik

__all__ = [
    "BlupResult",
    "CvBLUP",
    "EigenGRM",
    "GenotypeOperator",
    "RemlFit",
    "SnpWeights",
    "TraitFit",
    "benjamini_yekutieli",
    "blup_cvblup",
    "conjugate_gradient",
    "correlation_test",
    "fit_matrix_free",
    "fit_reml",
    "fit_traits",
    "grm",
    "grm_by_chromosome",
    "grm_cross_product",
    "pleiotropy_matrix",
    "pleiotropy_table",
    "reml_loglik",
    "run_cvblup",
    "run_pleiotropy",
    "snp_weights_exact",
    "standardize_dosage",
]
