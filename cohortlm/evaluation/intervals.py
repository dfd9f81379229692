"""Confidence intervals for the threshold metrics of Table 1.

Proportions (sensitivity, specificity, PPV, NPV, precision, recall, accuracy) get
the Wilson score interval (Wilson 1927; recommended over the Wald interval by
Brown, Cai & DasGupta, Stat Sci 2001;16:101), computed by statsmodels'
``proportion_confint``. F1 has no closed form: its interval is the percentile
interval of a stratified bootstrap (cases and controls resampled apart, so every
replicate keeps the split's prevalence). Resampling the cases with replacement
makes the number of true positives among them Binomial(cases, sensitivity), and
likewise the false positives among the controls, so the bootstrap is drawn from
those two binomials instead of from patient rows: the same distribution, a
thousand replicates in microseconds.

Every function takes counts or arrays and returns plain numbers, so the report,
the gate and monitoring share them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from statsmodels.stats.proportion import proportion_confint

__all__ = [
    "PROPORTION_METRICS",
    "THRESHOLD_METRICS",
    "f1_bootstrap_interval",
    "threshold_metric_intervals",
    "wilson_interval",
]

#: metric -> (numerator, denominator) as functions of the confusion counts
PROPORTION_METRICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sensitivity": (("tp",), ("tp", "fn")),
    "specificity": (("tn",), ("tn", "fp")),
    "ppv": (("tp",), ("tp", "fp")),
    "npv": (("tn",), ("tn", "fn")),
    "precision": (("tp",), ("tp", "fp")),
    "recall": (("tp",), ("tp", "fn")),
    "accuracy": (("tp", "tn"), ("tp", "tn", "fp", "fn")),
}
#: every threshold metric that gets an interval, in Table 1's order
THRESHOLD_METRICS: tuple[str, ...] = (
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "precision",
    "recall",
    "f1",
    "accuracy",
)


def _check_level(conf_level: float) -> float:
    if not 0.0 < float(conf_level) < 1.0:
        raise ValueError(f"conf_level must be in (0, 1), got {conf_level!r}")
    return float(conf_level)


def wilson_interval(successes: int, total: int, *, conf_level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / total``.

    Args:
        successes: Count of successes, 0 to ``total``.
        total: Count of trials; 0 gives ``(nan, nan)``.
        conf_level: Two-sided level, in (0, 1).

    Returns:
        ``(low, high)`` within [0, 1].

    Raises:
        ValueError: If a count is negative, ``successes > total`` or the level is outside (0, 1).
    """
    level = _check_level(conf_level)
    k, n = int(successes), int(total)
    if k < 0 or n < 0 or k > n:
        raise ValueError(f"need 0 <= successes <= total, got {k} of {n}")
    if n == 0:
        return (math.nan, math.nan)
    low, high = proportion_confint(k, n, alpha=1.0 - level, method="wilson")
    return (float(low), float(high))


def f1_bootstrap_interval(
    tp: int,
    fp: int,
    tn: int,
    fn: int,
    *,
    conf_level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of F1 from a stratified bootstrap of the patients.

    Cases (``tp + fn``) and controls (``fp + tn``) are resampled apart; the true
    positives of a replicate are then Binomial(cases, tp / cases) and its false
    positives Binomial(controls, fp / controls) (module docstring).

    Args:
        tp, fp, tn, fn: The confusion counts at the threshold.
        conf_level: Two-sided level.
        n_boot: Replicates.
        seed: Seed of the generator (the interval is reproducible).

    Returns:
        ``(low, high)``; NaN when there are no cases (F1 undefined). Replicates
        with no predicted and no actual positive are left out.
    """
    level = _check_level(conf_level)
    cases, controls = int(tp) + int(fn), int(fp) + int(tn)
    if cases == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    tp_b = rng.binomial(cases, tp / cases, size=int(n_boot))
    fp_b = rng.binomial(controls, fp / controls, size=int(n_boot)) if controls else np.zeros(int(n_boot))
    fn_b = cases - tp_b
    den = 2 * tp_b + fp_b + fn_b
    f1 = 2 * tp_b[den > 0] / den[den > 0]
    if f1.size == 0:
        return (math.nan, math.nan)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(f1, [tail, 1.0 - tail])
    return (float(low), float(high))


def threshold_metric_intervals(
    counts: Mapping[str, int], *, conf_level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """An interval for every metric of :data:`THRESHOLD_METRICS` from the confusion counts.

    Args:
        counts: ``tp``, ``fp``, ``tn``, ``fn``.
        conf_level: Two-sided level.
        n_boot: Bootstrap replicates for F1.
        seed: Seed of F1's bootstrap.

    Returns:
        ``{metric: (low, high)}``: Wilson for the proportions, stratified bootstrap for F1;
        ``(nan, nan)`` where the metric's denominator is 0.
    """
    c = {k: int(counts[k]) for k in ("tp", "fp", "tn", "fn")}
    out: dict[str, tuple[float, float]] = {}
    for metric in THRESHOLD_METRICS:
        if metric == "f1":
            out[metric] = f1_bootstrap_interval(
                c["tp"], c["fp"], c["tn"], c["fn"], conf_level=conf_level, n_boot=n_boot, seed=seed
            )
            continue
        num, den = PROPORTION_METRICS[metric]
        out[metric] = wilson_interval(sum(c[k] for k in num), sum(c[k] for k in den), conf_level=conf_level)
    return out
