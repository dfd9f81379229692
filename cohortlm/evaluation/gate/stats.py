"""The statistics the gate decides on: per endpoint of a run, and as arrays for the rule.

:func:`endpoint_stats` measures one endpoint of a run (paired DeLong, AUC intervals,
Brier, both models' calibration) into an :class:`EndpointStats`;
:class:`RuleInputs` holds the numbers the rule reads, as arrays of shape ``(R, E)``
(one row per data set: a run, or a simulated replicate), built from a run's
:class:`EndpointStats` or from simulated statistics.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from cohortlm.errors import DataError
from cohortlm.evaluation.evaluate import endpoint_arrays
from cohortlm.evaluation.stats.calibration import CalibrationResult, recalibration
from cohortlm.evaluation.stats.delong import DeLongResult, DeLongWarning, auc_interval, delong_test

__all__ = ["EndpointStats", "ModelStats", "RuleInputs", "endpoint_stats"]


@dataclass(frozen=True)
class ModelStats:
    """One model's own figures on an endpoint (the paired test compares two of them).

    Attributes:
        ci_auc: Logit interval of its AUC.
        brier: Its Brier score (NaN when its scores are no probabilities).
        calibration: Its logistic recalibration.
    """

    ci_auc: tuple[float, float]
    brier: float
    calibration: CalibrationResult


@dataclass(frozen=True)
class EndpointStats:
    """One endpoint of a run, candidate against champion on the same patients.

    Attributes:
        endpoint: The endpoint's name.
        test: The paired one-sided DeLong test (``a`` the candidate, ``b`` the champion).
        why_undefined: Why the test is undefined (DeLong's warning), or "".
        candidate: The candidate's own figures.
        champion: The champion's own figures.
    """

    endpoint: str
    test: DeLongResult
    why_undefined: str
    candidate: ModelStats
    champion: ModelStats

    @property
    def brier_delta(self) -> float:
        """Brier score of the candidate minus the champion's."""
        return self.candidate.brier - self.champion.brier


@dataclass(frozen=True)
class RuleInputs:
    """What the rule reads, arrays of shape ``(R, E)``: one row per data set, one column per endpoint.

    The calibration arrays are the candidate's and are needed only with
    ``calibration: test``; the Brier arrays only with ``calibration: brier_margin``.
    """

    n_cases: NDArray[np.float64]
    n_controls: NDArray[np.float64]
    auc_candidate: NDArray[np.float64]
    auc_champion: NDArray[np.float64]
    var_delta: NDArray[np.float64]
    brier_candidate: NDArray[np.float64] | None = None
    brier_champion: NDArray[np.float64] | None = None
    citl: NDArray[np.float64] | None = None
    se_citl: NDArray[np.float64] | None = None
    slope: NDArray[np.float64] | None = None
    se_slope: NDArray[np.float64] | None = None

    @classmethod
    def from_endpoints(cls, stats: Sequence[EndpointStats]) -> RuleInputs:
        """One row: a run's endpoints in order."""

        def row(values: list[float]) -> NDArray[np.float64]:
            return np.array([values], dtype=np.float64)

        return cls(
            n_cases=row([s.test.n_cases for s in stats]),
            n_controls=row([s.test.n_controls for s in stats]),
            auc_candidate=row([s.test.auc_a for s in stats]),
            auc_champion=row([s.test.auc_b for s in stats]),
            var_delta=row([s.test.var_delta for s in stats]),
            brier_candidate=row([s.candidate.brier for s in stats]),
            brier_champion=row([s.champion.brier for s in stats]),
            citl=row([s.candidate.calibration.citl for s in stats]),
            se_citl=row([s.candidate.calibration.se_citl for s in stats]),
            slope=row([s.candidate.calibration.slope for s in stats]),
            se_slope=row([s.candidate.calibration.se_slope for s in stats]),
        )

    def rows(self, start: int, stop: int) -> RuleInputs:
        """Rows ``start:stop`` of every array."""

        def cut(a: NDArray[np.float64] | None) -> NDArray[np.float64] | None:
            return None if a is None else a[start:stop]

        return RuleInputs(
            n_cases=self.n_cases[start:stop],
            n_controls=self.n_controls[start:stop],
            auc_candidate=self.auc_candidate[start:stop],
            auc_champion=self.auc_champion[start:stop],
            var_delta=self.var_delta[start:stop],
            brier_candidate=cut(self.brier_candidate),
            brier_champion=cut(self.brier_champion),
            citl=cut(self.citl),
            se_citl=cut(self.se_citl),
            slope=cut(self.slope),
            se_slope=cut(self.se_slope),
        )


def _brier(y: NDArray[np.int8], s: NDArray[np.float64]) -> float:
    if y.size == 0 or ((s < 0) | (s > 1)).any():
        return math.nan
    return float(np.mean((s - y) ** 2))


def _calibration(y: NDArray[np.int8], s: NDArray[np.float64], conf_level: float) -> CalibrationResult:
    if y.size == 0 or ((s < 0) | (s > 1)).any() or y.min() == y.max():
        return CalibrationResult.undefined(conf_level)
    return recalibration(y, s, conf_level=conf_level)


def endpoint_stats(
    labels: pd.DataFrame,
    candidate_scores: pd.DataFrame,
    champion_scores: pd.DataFrame,
    endpoint: str,
    *,
    rows: pd.Index | None,
    conf_level: float,
    names: tuple[str, str],
) -> EndpointStats:
    """Measure one endpoint: both models on the labelled patients of ``rows``.

    Raises:
        DataError: If the endpoint or a labelled patient's score is missing.
    """
    y, s_candidate = endpoint_arrays(labels, candidate_scores, endpoint, model=names[0], rows=rows)
    y_champion, s_champion = endpoint_arrays(labels, champion_scores, endpoint, model=names[1], rows=rows)
    # Both score sets were aligned to the same labelled rows, so the labels are identical.
    if not np.array_equal(y, y_champion):  # pragma: no cover - guarded by endpoint_arrays
        raise DataError(f"labels for endpoint '{endpoint}' differ between the two models")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeLongWarning)
        t = delong_test(y, s_candidate, s_champion, alternative="greater", conf_level=conf_level)

    def own(s: NDArray[np.float64], auc: float, var_auc: float) -> ModelStats:
        return ModelStats(
            ci_auc=auc_interval(auc, var_auc, conf_level=conf_level, m=t.n_cases, n=t.n_controls),
            brier=_brier(y, s),
            calibration=_calibration(y, s, conf_level),
        )

    return EndpointStats(
        endpoint=endpoint,
        test=t,
        why_undefined=str(caught[0].message) if caught else "",
        candidate=own(s_candidate, t.auc_a, t.var_auc_a),
        champion=own(s_champion, t.auc_b, t.var_auc_b),
    )
