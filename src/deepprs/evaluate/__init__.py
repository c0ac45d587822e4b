"""deepprs.evaluate: PRS metrics (:mod:`.metrics`) and the cross-validated benchmark (:mod:`.benchmark`)."""

from deepprs.evaluate.metrics import (
    auc,
    bootstrap_ci,
    calibration_slope,
    liability_r2,
    liability_r2_from_observed,
    paired_bootstrap,
    r2,
    r2_sse,
)

__all__ = [
    "auc",
    "bootstrap_ci",
    "calibration_slope",
    "liability_r2",
    "liability_r2_from_observed",
    "paired_bootstrap",
    "r2",
    "r2_sse",
]
