"""DeLong's test for the area under ROC curves, with the fast algorithm of Sun & Xu.

DeLong, DeLong & Clarke-Pearson (1988, Biometrics 44:837) estimate the
variance of the empirical AUC, and the covariance of two AUCs measured on the
same patients, from the *structural components* (placements) of each case and
control. Computed directly these need every case compared with every control,
O(m·n). Sun & Xu (2014, IEEE Signal Processing Letters 21:1389) showed that
the placements follow from three mid-rankings, so the whole test costs
O(N log N) time and O(N) memory for N = m + n patients:

- ``Tz``: mid-ranks of each score among all N scores,
- ``Tx``: mid-ranks of each case's score among the m cases,
- ``Ty``: mid-ranks of each control's score among the n controls;
- case placement ``V10_i = (Tz_i − Tx_i) / n`` (share of controls it outranks),
  control placement ``V01_j = 1 − (Tz_j − Ty_j) / m``,
- ``AUC = mean(V10)``, ``S = cov(V10)/m + cov(V01)/n``.

All three mid-rankings come out of one sort of the combined scores per model
(tie groups and running counts of cases and controls), see ``_placements_one``.

Mid-ranks make ties exact: a case tied with a control counts one half, the
Mann–Whitney convention, so the AUC equals ``sklearn.metrics.roc_auc_score``
and the variances equal R's pROC (``roc.test(method = "delong")``,
``ci.auc(method = "delong")``), which is the reference the tests hold this
module to (1e-6, tests/evaluation/proc_reference.json).

Conventions (the same as pROC with ``direction = "<"``): a label of 1 is a case,
0 a control, and a higher score means more likely a case. ``delta`` is
``AUC_a − AUC_b``; ``alternative="greater"`` tests ``AUC_a > AUC_b``.
Confidence intervals: the paired test's intervals (``DeLongResult.ci_delta``,
``ci_auc_a``, ``ci_auc_b``) are pROC's Wald intervals ``estimate ± z·SE``, the
single-AUC ones clipped to [0, 1]; the interval for ΔAUC is not clipped and is
always two-sided, whatever ``alternative`` the p-value uses. For one AUC on its
own, :func:`auc_ci` uses by default the **logit-transformed** interval
``expit(logit(AUC) ± z·SE / (AUC·(1 − AUC)))`` (``method="logit"``) with the
variance the larger of DeLong's and Hanley & McNeil's: it stays inside (0, 1)
and covers with few cases where the Wald interval does not (measured at 5 %
prevalence and n = 102, 1,500 draws: Wald-DeLong 0.83 at AUC 0.75 and 0.74 at
0.90; logit-DeLong 0.87 and 0.85; this interval 0.98 and 0.99);
``method="wald"`` gives pROC's ``ci.auc(method = "delong")``. At an AUC of
exactly 0 or 1 the logit is undefined and the AUC is moved half a comparison
inwards (``1/(2mn)``) first.

Undefined results: when ``y_true`` holds only one class no AUC exists; the
functions return NaN for every number and emit :class:`DeLongWarning` rather
than raise, so that one rare endpoint cannot crash an evaluation across many.
With fewer than two cases or two controls the AUC exists but its variance does
not (the covariance needs two observations): variances, z, p and intervals are
NaN, again with a warning. When both curves are identical the ΔAUC variance is
0 and ``delta`` 0; z is then 0 (p = 1 two-sided, 0.5 one-sided) because the data
carry no evidence of a difference. NaN or infinite scores, labels other than
0/1, and arrays of different lengths are errors (``ValueError`` naming the
argument), because they signal a bug upstream rather than an undefined statistic.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray


class _StandardNormal:
    """The standard normal's cdf, sf and ppf from the standard library (math.erfc, NormalDist).

    scipy.stats takes ~0.3-2 s to import; ``cohortlm delong`` needs only these
    three functions, each as accurate as scipy's (erfc keeps the upper tail's
    relative precision; NormalDist.inv_cdf is Wichura's AS 241).
    """

    _ppf = NormalDist().inv_cdf

    @staticmethod
    def cdf(z: float) -> float:
        return 0.5 * math.erfc(-z / math.sqrt(2.0))

    @staticmethod
    def sf(z: float) -> float:
        return 0.5 * math.erfc(z / math.sqrt(2.0))

    @classmethod
    def ppf(cls, q: float) -> float:
        return cls._ppf(q)


norm = _StandardNormal()


def _student_t(df: float) -> Any:
    """Student's t with ``df`` degrees of freedom (scipy, imported only for the unpaired test)."""
    from scipy.stats import t as student_t

    return student_t(df)


__all__ = [
    "ALTERNATIVES",
    "AUC_CI_METHODS",
    "AUCResult",
    "DeLongResult",
    "DeLongWarning",
    "auc_ci",
    "auc_interval",
    "delong_covariance",
    "delong_placements",
    "delong_test",
    "delong_test_unpaired",
]

Alternative = Literal["two-sided", "greater", "less"]
ALTERNATIVES: tuple[str, ...] = ("two-sided", "greater", "less")
AUC_CI_METHODS: tuple[str, ...] = ("logit", "wald")


class DeLongWarning(UserWarning):
    """An AUC, a variance or a test statistic is undefined for the data given (the result is NaN)."""


@dataclass(frozen=True)
class AUCResult:
    """One AUC with its DeLong variance and confidence interval.

    Attributes:
        auc: Area under the empirical ROC curve (ties count one half).
        variance: DeLong variance of ``auc``.
        se: Standard error, ``sqrt(variance)``.
        ci: Two-sided Wald interval at ``conf_level``, clipped to [0, 1].
        conf_level: Confidence level of ``ci``.
        n_cases: Number of cases (label 1).
        n_controls: Number of controls (label 0).
    """

    auc: float
    variance: float
    se: float
    ci: tuple[float, float]
    conf_level: float
    n_cases: int
    n_controls: int

    @classmethod
    def undefined(cls, conf_level: float, n_cases: int = 0, n_controls: int = 0) -> AUCResult:
        """No AUC (one class only): NaN numbers."""
        nan = math.nan
        return cls(nan, nan, nan, (nan, nan), conf_level, n_cases, n_controls)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists for intervals) for JSON."""
        out = asdict(self)
        out["ci"] = list(self.ci)
        return out


@dataclass(frozen=True)
class DeLongResult:
    """The result of a DeLong test comparing the AUCs of scores ``a`` and ``b``.

    Attributes:
        auc_a: AUC of score ``a``.
        auc_b: AUC of score ``b``.
        delta: ``auc_a − auc_b``.
        var_delta: Variance of ``delta`` (covariance-corrected when paired).
        se_delta: Standard error of ``delta``.
        z: ``delta / se_delta`` (pROC's Z, or D for the unpaired test).
        p_value: p-value for ``alternative``.
        ci_delta: Two-sided Wald interval for ``delta`` at ``conf_level``.
        ci_auc_a: Two-sided interval for ``auc_a`` (clipped to [0, 1]).
        ci_auc_b: Two-sided interval for ``auc_b`` (clipped to [0, 1]).
        var_auc_a: DeLong variance of ``auc_a``.
        var_auc_b: DeLong variance of ``auc_b``.
        cov_ab: Covariance of the two AUCs (0 when unpaired).
        n_cases: Cases (label 1); for the unpaired test, of ``a`` then ``b`` summed.
        n_controls: Controls (label 0), counted the same way.
        alternative: ``"two-sided"``, ``"greater"`` (``auc_a > auc_b``) or ``"less"``.
        conf_level: Confidence level of the intervals.
        paired: Whether both scores were measured on the same patients.
        df: Degrees of freedom of the reference distribution: ``inf`` (standard
            normal) for the paired test, Welch–Satterthwaite for the unpaired one.
    """

    auc_a: float
    auc_b: float
    delta: float
    var_delta: float
    se_delta: float
    z: float
    p_value: float
    ci_delta: tuple[float, float]
    ci_auc_a: tuple[float, float]
    ci_auc_b: tuple[float, float]
    var_auc_a: float
    var_auc_b: float
    cov_ab: float
    n_cases: int
    n_controls: int
    alternative: str
    conf_level: float
    paired: bool
    df: float = math.inf

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists for intervals) for JSON; keys are the attribute names."""
        out = asdict(self)
        for key in ("ci_delta", "ci_auc_a", "ci_auc_b"):
            out[key] = list(out[key])
        return out


# ----------------------------------------------------------------------------- input checks


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")


def _check_conf_level(conf_level: float) -> float:
    try:
        level = float(conf_level)
    except (TypeError, ValueError):
        raise ValueError(f"conf_level must be a number in (0, 1), got {conf_level!r}") from None
    if not 0.0 < level < 1.0:
        raise ValueError(f"conf_level must be in (0, 1), got {conf_level!r}")
    return level


def _as_labels(y_true: ArrayLike, name: str) -> NDArray[np.bool_]:
    arr = np.asarray(y_true)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold 0/1 labels, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; drop unlabelled rows first")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        raise ValueError(f"{name} must hold only 0 and 1, found {int(bad.sum())} other value(s)")
    return arr == 1


def _as_scores(y_score: ArrayLike, name: str, n: int, labels_name: str = "y_true") -> NDArray[np.float64]:
    try:
        arr = np.asarray(y_score, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(
            f"{name} has {arr.shape[0]} values but {labels_name} has {n}; they must be the same length"
        )
    finite = np.isfinite(arr)
    if not finite.all():
        raise ValueError(f"{name} contains {int((~finite).sum())} NaN or infinite value(s)")
    return arr


# ----------------------------------------------------------------------------- core


def delong_placements(
    y_true: ArrayLike, *y_scores: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Sun & Xu's fast structural components for one or more scores on the same patients.

    Args:
        y_true: Labels, 1 = case, 0 = control (length N).
        *y_scores: One or more score arrays of length N; higher means more likely a case.

    Returns:
        ``(aucs, v10, v01)``: the AUC of each score (shape ``(k,)``), the case
        placements (``(k, m)``) and the control placements (``(k, n)``). Both
        classes must be present; callers that tolerate one class check first.

    Raises:
        ValueError: On malformed input (see the module docstring).
    """
    if not y_scores:
        raise ValueError("y_scores: give at least one score array")
    labels = _as_labels(y_true, "y_true")
    n_total = labels.shape[0]
    scores = [_as_scores(s, f"y_scores[{i}]", n_total) for i, s in enumerate(y_scores)]
    return _placements(labels, scores)


def _placements(
    labels: NDArray[np.bool_], scores: list[NDArray[np.float64]]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    m = int(labels.sum())
    n = labels.shape[0] - m
    if m == 0 or n == 0:
        raise ValueError("y_true must contain both classes")
    k = len(scores)
    v10 = np.empty((k, m))
    v01 = np.empty((k, n))
    aucs = np.empty(k)
    case_int = labels.astype(np.int64)
    if k > 1 and labels.shape[0] >= _THREADED_ROWS:
        # numpy sorts without the GIL: the models' placements run side by side on two cores.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(k, 2)) as pool:
            placed = list(pool.map(lambda s: _placements_one(case_int, s, m, n), scores))
    else:
        placed = [_placements_one(case_int, s, m, n) for s in scores]
    for r, (case_place, control_place) in enumerate(placed):
        v10[r], v01[r] = case_place, control_place
        aucs[r] = v10[r].mean()
    return aucs, v10, v01


#: From this many patients on, two models' placements are computed in two threads.
_THREADED_ROWS = 200_000


def _placements_one(
    case_int: NDArray[np.int64], s: NDArray[np.float64], m: int, n: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Placements of one score from a single sort.

    Sun & Xu's three mid-rankings (Tz over all, Tx over cases, Ty over controls)
    all follow from one sort of the combined scores: within a group of tied
    scores every member shares the mid-rank, so for a tie group g with c_g cases
    and d_g controls, preceded by C_g cases and D_g controls,
    ``Tz − Tx = D_g + d_g/2`` (for a case) and ``Tz − Ty = C_g + c_g/2`` (for a control).
    One O(N log N) sort instead of three, then O(N) work. The sort need not be
    stable (every member of a tie group gets the group's placement), so numpy's
    default sort runs, which is vectorised and ~2x faster than the stable one.
    """
    order = np.argsort(s)
    sorted_s = s[order]
    sorted_case = case_int[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_s[1:] != sorted_s[:-1])))
    sizes = np.diff(np.append(starts, s.shape[0]))
    cases = np.add.reduceat(sorted_case, starts)
    controls = sizes - cases
    cases_before = np.cumsum(cases) - cases
    controls_before = starts - cases_before
    # Per tie group: controls a case outranks (ties count half), cases a control is outranked by;
    # interleaved (control, case) so that one gather picks each row's value.
    place = np.empty((starts.shape[0], 2))
    place[:, 0] = 1.0 - (cases_before + cases / 2.0) / m
    place[:, 1] = (controls_before + controls / 2.0) / n
    group = np.repeat(np.arange(starts.shape[0]), sizes)
    per_row = place.ravel()[2 * group + sorted_case]
    placed = np.empty(s.shape[0])
    placed[order] = per_row
    # Back in input order, so that case i of score a pairs with case i of score b.
    mask = case_int.astype(bool)
    return placed[mask], placed[~mask]


def _covariance(v10: NDArray[np.float64], v01: NDArray[np.float64]) -> NDArray[np.float64]:
    m = v10.shape[1]
    n = v01.shape[1]
    if m < 2 or n < 2:
        return np.full((v10.shape[0], v10.shape[0]), np.nan)
    # ddof=1 as in DeLong (1988) and pROC; np.cov needs 2-D input for a (k, k) result.
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return s10 / m + s01 / n


def delong_covariance(
    y_true: ArrayLike, *y_scores: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """AUCs and their DeLong covariance matrix for scores measured on the same patients.

    Args:
        y_true: Labels, 1 = case, 0 = control.
        *y_scores: One or more score arrays, each as long as ``y_true``.

    Returns:
        ``(aucs, cov)`` with shapes ``(k,)`` and ``(k, k)``. With one class only,
        everything is NaN (and a :class:`DeLongWarning` is emitted); with fewer
        than two cases or controls, ``cov`` is NaN.

    Raises:
        ValueError: On malformed input.
    """
    if not y_scores:
        raise ValueError("y_scores: give at least one score array")
    labels = _as_labels(y_true, "y_true")
    scores = [_as_scores(s, f"y_scores[{i}]", labels.shape[0]) for i, s in enumerate(y_scores)]
    k = len(scores)
    m, n = _class_sizes(labels)
    if m == 0 or n == 0:
        return np.full(k, np.nan), np.full((k, k), np.nan)
    aucs, v10, v01 = _placements(labels, scores)
    return aucs, _covariance(v10, v01)


def _class_sizes(labels: NDArray[np.bool_]) -> tuple[int, int]:
    """Cases and controls of ``labels``.

    Emits a :class:`DeLongWarning`, attributed to the caller of the public function that
    called this one, when the AUC is undefined (one class) or its variance is (fewer than
    two cases or controls).
    """
    m = int(labels.sum())
    n = labels.shape[0] - m
    if m == 0 or n == 0:
        warnings.warn(_one_class_message(m, n), DeLongWarning, stacklevel=3)
    elif m < 2 or n < 2:
        warnings.warn(_few_message(m, n), DeLongWarning, stacklevel=3)
    return m, n


def _one_class_message(m: int, n: int) -> str:
    return f"y_true has {m} case(s) and {n} control(s); the AUC needs both classes, so the result is NaN"


def _few_message(m: int, n: int) -> str:
    return (
        f"y_true has {m} case(s) and {n} control(s); the DeLong variance needs at least two of each, "
        "so variances, z, p-values and intervals are NaN"
    )


def _z_crit(conf_level: float) -> float:
    return float(norm.ppf(0.5 + conf_level / 2.0))


def _auc_interval(auc: float, var: float, conf_level: float) -> tuple[float, float]:
    if not (math.isfinite(auc) and math.isfinite(var)):
        return (math.nan, math.nan)
    half = _z_crit(conf_level) * math.sqrt(max(var, 0.0))
    # pROC clips to the range an AUC can take; so do we, to agree with it.
    return (max(0.0, auc - half), min(1.0, auc + half))


def auc_interval(
    auc: float, var: float, *, conf_level: float = 0.95, method: str = "logit", m: int = 0, n: int = 0
) -> tuple[float, float]:
    """Two-sided interval for one AUC from its DeLong variance.

    Args:
        auc: The AUC.
        var: Its DeLong variance.
        conf_level: Level, in (0, 1).
        method: ``"logit"`` (logit-transformed, the default) or ``"wald"`` (pROC's, clipped).
        m: Cases, used to move an AUC of 0 or 1 half a comparison inwards (logit only).
        n: Controls, likewise.

    Returns:
        ``(low, high)``; NaN when ``auc`` or ``var`` is not finite.

    Raises:
        ValueError: If ``method`` is unknown.
    """
    if method not in AUC_CI_METHODS:
        raise ValueError(f"method must be 'logit' or 'wald', got {method!r}")
    if method == "wald":
        return _auc_interval(auc, var, conf_level)
    if not (math.isfinite(auc) and math.isfinite(var)):
        return (math.nan, math.nan)
    edge = 1.0 / (2.0 * m * n) if m > 0 and n > 0 else 1e-6
    a = min(max(auc, edge), 1.0 - edge)
    var = max(var, 0.0)
    if m > 0 and n > 0:
        # With few cases the DeLong variance is biased low (and 0 at a perfect separation);
        # Hanley & McNeil's (1982) variance at the same AUC is the floor.
        q1, q2 = a / (2.0 - a), 2.0 * a * a / (1.0 + a)
        var = max(var, (a * (1 - a) + (m - 1) * (q1 - a * a) + (n - 1) * (q2 - a * a)) / (m * n))
    se = math.sqrt(var)
    half = _z_crit(conf_level) * se / (a * (1.0 - a))
    lo, hi = math.log(a / (1 - a)) - half, math.log(a / (1 - a)) + half
    return (1.0 / (1.0 + math.exp(-lo)), 1.0 / (1.0 + math.exp(-hi)))


def _delta_interval(delta: float, var: float, conf_level: float, df: float = math.inf) -> tuple[float, float]:
    if not (math.isfinite(delta) and math.isfinite(var)) or math.isnan(df):
        return (math.nan, math.nan)
    crit = _z_crit(conf_level) if math.isinf(df) else float(_student_t(df).ppf(0.5 + conf_level / 2.0))
    half = crit * math.sqrt(max(var, 0.0))
    return (delta - half, delta + half)


def _z_and_p(delta: float, var: float, alternative: str, df: float = math.inf) -> tuple[float, float]:
    if not (math.isfinite(delta) and math.isfinite(var)) or math.isnan(df):
        return (math.nan, math.nan)
    # A quadratic form of a PSD matrix can come out a hair below 0 in floating point.
    var = max(var, 0.0)
    # Identical curves (0/0) carry no evidence of a difference: z = 0, as pROC sets it.
    # Any other zero-variance delta is certain: z = ±inf.
    with np.errstate(divide="ignore", invalid="ignore"):
        z = 0.0 if delta == 0.0 else float(np.float64(delta) / np.sqrt(var))
    # Paired: standard normal (df = inf); unpaired: Student t with Welch df, as pROC does.
    dist = norm if math.isinf(df) else _student_t(df)
    if alternative == "two-sided":
        p = 2.0 * float(dist.sf(abs(z)))
    elif alternative == "greater":
        p = float(dist.sf(z))
    else:
        p = float(dist.cdf(z))
    return z, min(p, 1.0)


def auc_ci(
    y_true: ArrayLike, y_score: ArrayLike, *, conf_level: float = 0.95, method: str = "logit"
) -> AUCResult:
    """The AUC with its DeLong variance and confidence interval.

    Args:
        y_true: Labels, 1 = case, 0 = control (bool or numeric 0/1).
        y_score: Scores; higher means more likely a case.
        conf_level: Level of the two-sided interval, in (0, 1).
        method: ``"logit"`` (logit-transformed DeLong interval, covers with few
            cases) or ``"wald"`` (pROC ``ci.auc(method = "delong")``, clipped to [0, 1]).

    Returns:
        An :class:`AUCResult`. NaN fields (with a :class:`DeLongWarning`) when the
        data hold one class only, or fewer than two of a class for the variance.

    Raises:
        ValueError: If an argument is malformed; the message names it.
    """
    level = _check_conf_level(conf_level)
    if method not in AUC_CI_METHODS:
        raise ValueError(f"method must be 'logit' or 'wald', got {method!r}")
    labels = _as_labels(y_true, "y_true")
    score = _as_scores(y_score, "y_score", labels.shape[0])
    m, n = _class_sizes(labels)
    if m == 0 or n == 0:
        return AUCResult.undefined(level, m, n)
    aucs, v10, v01 = _placements(labels, [score])
    var = float(_covariance(v10, v01)[0, 0])
    auc = float(aucs[0])
    se = math.sqrt(max(var, 0.0)) if math.isfinite(var) else math.nan
    return AUCResult(
        auc, var, se, auc_interval(auc, var, conf_level=level, method=method, m=m, n=n), level, m, n
    )


def delong_test(
    y_true: ArrayLike,
    y_score_a: ArrayLike,
    y_score_b: ArrayLike,
    *,
    alternative: Alternative | str = "two-sided",
    conf_level: float = 0.95,
) -> DeLongResult:
    """Paired DeLong test: do two scores measured on the same patients differ in AUC?

    Equivalent to pROC ``roc.test(roc(y, a, direction="<"), roc(y, b, direction="<"),
    method="delong", paired=TRUE)``, in O(N log N) time (Sun & Xu 2014).

    Args:
        y_true: Labels, 1 = case, 0 = control (bool or numeric 0/1).
        y_score_a: Scores of model a; higher means more likely a case.
        y_score_b: Scores of model b on the same patients, in the same order.
        alternative: ``"two-sided"``, ``"greater"`` (AUC_a > AUC_b) or ``"less"``.
        conf_level: Level of the (two-sided) intervals, in (0, 1).

    Returns:
        A :class:`DeLongResult` with ``paired=True``. NaN where undefined (see module docstring).

    Raises:
        ValueError: If an argument is malformed; the message names it.

    Example:
        >>> r = delong_test([0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9],
        ...                 [0.2, 0.3, 0.5, 0.6, 0.7, 0.4], alternative="greater")
        >>> round(r.auc_a, 4), round(r.auc_b, 4)
        (0.8889, 0.6667)
    """
    _check_alternative(alternative)
    level = _check_conf_level(conf_level)
    labels = _as_labels(y_true, "y_true")
    a = _as_scores(y_score_a, "y_score_a", labels.shape[0])
    b = _as_scores(y_score_b, "y_score_b", labels.shape[0])
    m, n = _class_sizes(labels)
    if m == 0 or n == 0:
        return _nan_result(m, n, alternative, level, paired=True)
    aucs, v10, v01 = _placements(labels, [a, b])
    cov = _covariance(v10, v01)
    var_a, var_b, cov_ab = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
    var_delta = var_a + var_b - 2.0 * cov_ab
    return _result(
        float(aucs[0]), float(aucs[1]), var_a, var_b, cov_ab, var_delta, m, n, alternative, level, True
    )


def delong_test_unpaired(
    y_true_a: ArrayLike,
    y_score_a: ArrayLike,
    y_true_b: ArrayLike,
    y_score_b: ArrayLike,
    *,
    alternative: Alternative | str = "two-sided",
    conf_level: float = 0.95,
) -> DeLongResult:
    """Unpaired DeLong test: two AUCs measured on different (independent) patients.

    The variance of ΔAUC is the sum of the two DeLong variances (no covariance
    term). As in pROC, the statistic ``D = ΔAUC / SE`` is referred to a Student t
    distribution with Welch–Satterthwaite degrees of freedom
    ``df = (S_a + S_b)² / (S_a²/(N_a − 1) + S_b²/(N_b − 1))`` (``N`` counts every
    patient of a sample); the interval for ΔAUC uses the same t quantile.

    Args:
        y_true_a: Labels for the patients scored by model a.
        y_score_a: Model a's scores, as long as ``y_true_a``.
        y_true_b: Labels for the patients scored by model b.
        y_score_b: Model b's scores, as long as ``y_true_b``.
        alternative: ``"two-sided"``, ``"greater"`` (AUC_a > AUC_b) or ``"less"``.
        conf_level: Level of the (two-sided) intervals, in (0, 1).

    Returns:
        A :class:`DeLongResult` with ``paired=False``; ``n_cases`` and ``n_controls``
        are summed over both samples.

    Raises:
        ValueError: If an argument is malformed; the message names it.
    """
    _check_alternative(alternative)
    level = _check_conf_level(conf_level)
    la = _as_labels(y_true_a, "y_true_a")
    lb = _as_labels(y_true_b, "y_true_b")
    a = _as_scores(y_score_a, "y_score_a", la.shape[0], "y_true_a")
    b = _as_scores(y_score_b, "y_score_b", lb.shape[0], "y_true_b")
    ma, mb = int(la.sum()), int(lb.sum())
    na, nb = la.shape[0] - ma, lb.shape[0] - mb
    m, n = ma + mb, na + nb
    if min(ma, na, mb, nb) == 0:
        warnings.warn(
            f"y_true_a has {ma} case(s) and {na} control(s), y_true_b has {mb} and {nb}; "
            "each AUC needs both classes, so the result is NaN",
            DeLongWarning,
            stacklevel=2,
        )
        return _nan_result(m, n, alternative, level, paired=False)
    auc_a_arr, v10a, v01a = _placements(la, [a])
    auc_b_arr, v10b, v01b = _placements(lb, [b])
    if min(ma, na, mb, nb) < 2:
        warnings.warn(_few_message(min(ma, mb), min(na, nb)), DeLongWarning, stacklevel=2)
    var_a = float(_covariance(v10a, v01a)[0, 0])
    var_b = float(_covariance(v10b, v01b)[0, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (var_a + var_b) ** 2 / (var_a**2 / (la.shape[0] - 1) + var_b**2 / (lb.shape[0] - 1))
    return _result(
        float(auc_a_arr[0]),
        float(auc_b_arr[0]),
        var_a,
        var_b,
        0.0,
        var_a + var_b,
        m,
        n,
        alternative,
        level,
        False,
        df=float(df),
    )


def _result(
    auc_a: float,
    auc_b: float,
    var_a: float,
    var_b: float,
    cov_ab: float,
    var_delta: float,
    m: int,
    n: int,
    alternative: str,
    level: float,
    paired: bool,
    *,
    df: float = math.inf,
) -> DeLongResult:
    delta = auc_a - auc_b
    z, p = _z_and_p(delta, var_delta, alternative, df)
    se = math.sqrt(max(var_delta, 0.0)) if math.isfinite(var_delta) else math.nan
    return DeLongResult(
        auc_a=auc_a,
        auc_b=auc_b,
        delta=delta,
        var_delta=var_delta,
        se_delta=se,
        z=z,
        p_value=p,
        ci_delta=_delta_interval(delta, var_delta, level, df),
        ci_auc_a=_auc_interval(auc_a, var_a, level),
        ci_auc_b=_auc_interval(auc_b, var_b, level),
        var_auc_a=var_a,
        var_auc_b=var_b,
        cov_ab=cov_ab,
        n_cases=m,
        n_controls=n,
        alternative=alternative,
        conf_level=level,
        paired=paired,
        df=df,
    )


def _nan_result(m: int, n: int, alternative: str, level: float, *, paired: bool) -> DeLongResult:
    # NaN AUCs and variances make every derived number NaN; df is the test's (NaN for the unpaired one).
    nan = math.nan
    return _result(
        nan, nan, nan, nan, nan, nan, m, n, alternative, level, paired, df=math.inf if paired else nan
    )
