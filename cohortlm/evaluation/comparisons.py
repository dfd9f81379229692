"""Seed 000's comparison families: base vs base, fine-tuned vs its base, fine-tuned vs the baseline.

Every comparison is a paired DeLong test on the same patients (the evaluation
split). P-values are adjusted within a family, over every pair and endpoint in
it (Holm by default), never across families, as the seed reports them:

``base_vs_base``
    each pair of zero-shot base models (domain pre-training: Meditron vs
    Llama-2), two-sided.
``fine_tuned_vs_base``
    each fine-tuned model against its own zero-shot base (did QLoRA help?),
    one-sided, fine-tuned better.
``fine_tuned_vs_baseline``
    each fine-tuned model against this run's logistic regression, two-sided.

Which models are an LLM's zero-shot and fine-tuned forms is read from their
names: ``<base>`` and ``<base>+qlora`` (:mod:`cohortlm.models.llm.bases`), or the
older single-base names ``zero_shot`` and ``fine_tuned``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cohortlm.models.llm.bases import FINE_TUNED_SUFFIX

__all__ = [
    "BASELINE",
    "FAMILIES",
    "FAMILY_ALPHA",
    "comparison_families",
    "family_records",
    "llm_pairs",
    "paired_comparison",
]

#: the logistic regression's name in a run
BASELINE = "baseline"
#: single-base runs before base models had names
LEGACY_PAIR = ("zero_shot", "fine_tuned")
FAMILY_ALPHA = 0.05
#: family -> (title, what is tested, alternative)
FAMILIES: dict[str, tuple[str, str, str]] = {
    "base_vs_base": (
        "Base vs base (zero-shot)",
        "Does one base model's pre-training serve the task better? Paired DeLong, two-sided",
        "two-sided",
    ),
    "fine_tuned_vs_base": (
        "Fine-tuned vs its own zero-shot base",
        "Did fine-tuning help? Paired DeLong, one-sided (fine-tuned better)",
        "greater",
    ),
    "fine_tuned_vs_baseline": (
        "Fine-tuned vs logistic regression (this run)",
        "Paired DeLong, two-sided",
        "two-sided",
    ),
}


def llm_pairs(models: Sequence[str]) -> list[tuple[str, str]]:
    """``(zero-shot, fine-tuned)`` model names, in the order the models are given."""
    names = list(models)
    cut = len(FINE_TUNED_SUFFIX)
    pairs = [(m[:-cut], m) for m in names if m.endswith(FINE_TUNED_SUFFIX) and m[:-cut] in names]
    if all(n in names for n in LEGACY_PAIR):
        pairs.insert(0, LEGACY_PAIR)
    return pairs


def paired_comparison(
    labels: pd.DataFrame,
    scores_a: pd.DataFrame,
    scores_b: pd.DataFrame,
    *,
    rows: pd.Index | None = None,
    endpoints: Sequence[str] | None = None,
    alternative: str = "greater",
    adjustment: str = "holm",
    alpha: float = FAMILY_ALPHA,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Model a against model b on every endpoint: paired DeLong, p-values adjusted across endpoints.

    Args:
        labels: 0/1/NaN per endpoint, indexed by patient id.
        scores_a: model a's probabilities, same ids and columns.
        scores_b: model b's.
        rows: patient ids to compare on (e.g. the test split); all when None.
        endpoints: which endpoints, in order; default the label columns.
        alternative: ``greater`` (AUC_a > AUC_b), ``less`` or ``two-sided``.
        adjustment: ``holm``, ``bh`` or ``none``, across the endpoints.
        alpha: level for the ``significant`` column (adjusted p < alpha).
        conf_level: level of the two-sided ΔAUC interval.

    Returns:
        One row per endpoint: ``endpoint, n, n_cases, auc_a, auc_b, delta,
        ci_low, ci_high, z, p, p_adjusted, significant``. An endpoint with one
        class has NaN statistics and is never significant.
    """
    from cohortlm.evaluation.evaluate import endpoint_arrays
    from cohortlm.evaluation.stats.delong import DeLongWarning, delong_test

    eps = list(endpoints) if endpoints is not None else [str(c) for c in labels.columns]
    out = []
    for ep in eps:
        y, a = endpoint_arrays(labels, scores_a, ep, model="a", rows=rows)
        _, b = endpoint_arrays(labels, scores_b, ep, model="b", rows=rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeLongWarning)
            r = delong_test(y, a, b, alternative=alternative, conf_level=conf_level)
        out.append(
            {
                "endpoint": ep, "n": len(y), "n_cases": int(y.sum()), "auc_a": r.auc_a,
                "auc_b": r.auc_b, "delta": r.delta, "ci_low": r.ci_delta[0], "ci_high": r.ci_delta[1],
                "z": r.z, "p": r.p_value,
            }
        )  # fmt: skip
    return _adjust(pd.DataFrame(out), adjustment, alpha)


def _adjust(table: pd.DataFrame, adjustment: str, alpha: float) -> pd.DataFrame:
    """``p_adjusted`` and ``significant`` over every row of ``table`` (NaN p: never significant)."""
    from cohortlm.evaluation.stats.multitest import adjust_pvalues

    p = table["p"].to_numpy(dtype=float)
    finite = np.isfinite(p)
    adjusted = p.copy()
    if finite.any() and adjustment != "none":
        adjusted[finite] = adjust_pvalues(p[finite], method=adjustment)
    table["p_adjusted"] = adjusted
    table["significant"] = np.where(finite, adjusted < alpha, False).astype(bool)
    return table


def comparison_families(
    labels: pd.DataFrame,
    scores: Mapping[str, pd.DataFrame],
    *,
    rows: pd.Index | None = None,
    endpoints: Sequence[str] | None = None,
    baseline: str = BASELINE,
    adjustment: str = "holm",
    alpha: float = FAMILY_ALPHA,
) -> dict[str, pd.DataFrame]:
    """The three families (module docstring) for the models in ``scores``.

    Returns:
        ``{family: table}`` for each family with at least one pair; a table has
        :func:`paired_comparison`'s columns plus ``family``, ``model_a``,
        ``model_b`` and ``alternative``, its p-values adjusted over all its rows.
    """
    pairs = llm_pairs(list(scores))
    zero_shots = [z for z, _ in pairs]
    planned: dict[str, list[tuple[str, str]]] = {
        "base_vs_base": [(a, b) for i, a in enumerate(zero_shots) for b in zero_shots[i + 1 :]],
        "fine_tuned_vs_base": [(f, z) for z, f in pairs],
        "fine_tuned_vs_baseline": [(f, baseline) for _, f in pairs] if baseline in scores else [],
    }
    out: dict[str, pd.DataFrame] = {}
    for family, comparisons in planned.items():
        if not comparisons:
            continue
        alternative = FAMILIES[family][2]
        parts = []
        for a, b in comparisons:
            t = paired_comparison(
                labels, scores[a], scores[b], rows=rows, endpoints=endpoints,
                alternative=alternative, adjustment="none", alpha=alpha,
            )  # fmt: skip
            t.insert(0, "model_b", b)
            t.insert(0, "model_a", a)
            t.insert(0, "family", family)
            t["alternative"] = alternative
            parts.append(t)
        out[family] = _adjust(pd.concat(parts, ignore_index=True), adjustment, alpha)
    return out


def family_records(families: Mapping[str, pd.DataFrame]) -> dict[str, list[dict[str, Any]]]:
    """The families as JSON-ready records (NaN as None), for the decision record and metrics.json."""
    out = {}
    for family, table in families.items():
        rows = table.astype(object).where(table.notna(), None).to_dict(orient="records")
        out[family] = [
            {k: (bool(v) if isinstance(v, (bool, np.bool_)) else v) for k, v in r.items()} for r in rows
        ]
    return out
