"""Statistics for comparing models: paired DeLong, AUC intervals, calibration, multiple testing.

The names below are imported on first use (PEP 562), so that importing
:mod:`cohortlm.evaluation.stats.delong` (what ``cohortlm delong`` needs) does not also
import scipy for calibration. The simulation of the gate
(:mod:`cohortlm.evaluation.stats.simulate`) is imported on demand.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cohortlm.evaluation.stats.calibration import CalibrationResult, recalibration
    from cohortlm.evaluation.stats.delong import (
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
    from cohortlm.evaluation.stats.multitest import (
        ADJUSTMENTS,
        adjust_pvalues,
        adjust_pvalues_rows,
        benjamini_hochberg,
        holm,
    )

_WHERE = {
    "CalibrationResult": "calibration",
    "recalibration": "calibration",
    "ALTERNATIVES": "delong",
    "AUCResult": "delong",
    "DeLongResult": "delong",
    "DeLongWarning": "delong",
    "auc_ci": "delong",
    "auc_interval": "delong",
    "delong_covariance": "delong",
    "delong_placements": "delong",
    "delong_test": "delong",
    "delong_test_unpaired": "delong",
    "ADJUSTMENTS": "multitest",
    "adjust_pvalues": "multitest",
    "adjust_pvalues_rows": "multitest",
    "benjamini_hochberg": "multitest",
    "holm": "multitest",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cohortlm.evaluation.stats' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cohortlm.evaluation.stats.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
