"""Statistics for comparing models: fast paired DeLong, AUC intervals, multiple-testing adjustment."""

from __future__ import annotations

from cohortlm.stats.delong import (
    ALTERNATIVES,
    AUCResult,
    DeLongResult,
    DeLongWarning,
    auc_ci,
    delong_covariance,
    delong_placements,
    delong_test,
    delong_test_unpaired,
)
from cohortlm.stats.multitest import ADJUSTMENTS, adjust_pvalues, benjamini_hochberg, holm

__all__ = [
    "ADJUSTMENTS",
    "ALTERNATIVES",
    "AUCResult",
    "DeLongResult",
    "DeLongWarning",
    "adjust_pvalues",
    "auc_ci",
    "benjamini_hochberg",
    "delong_covariance",
    "delong_placements",
    "delong_test",
    "delong_test_unpaired",
    "holm",
]
