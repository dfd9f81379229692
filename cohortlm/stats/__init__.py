"""Statistics for comparing models: paired DeLong, AUC intervals, calibration, multiple testing.

The simulation of the gate (:mod:`cohortlm.stats.simulate`) is imported on demand.
"""

from __future__ import annotations

from cohortlm.stats.calibration import CalibrationResult, recalibration
from cohortlm.stats.delong import (
    ALTERNATIVES,
    AUCResult,
    DeLongResult,
    DeLongWarning,
    auc_ci,
    auc_interval,
    delong_covariance,
    delong_placements,
    delong_test,
    delong_test_unpaired,
)
from cohortlm.stats.multitest import (
    ADJUSTMENTS,
    adjust_pvalues,
    adjust_pvalues_rows,
    benjamini_hochberg,
    holm,
)

__all__ = [
    "ADJUSTMENTS",
    "ALTERNATIVES",
    "AUCResult",
    "CalibrationResult",
    "DeLongResult",
    "DeLongWarning",
    "adjust_pvalues",
    "adjust_pvalues_rows",
    "auc_ci",
    "auc_interval",
    "benjamini_hochberg",
    "delong_covariance",
    "delong_placements",
    "delong_test",
    "delong_test_unpaired",
    "holm",
    "recalibration",
]
