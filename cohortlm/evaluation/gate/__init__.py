"""The promotion gate: a :class:`GatePolicy`, the rule that applies it, and the :class:`Decision` it yields.

One concern per module: :mod:`~cohortlm.evaluation.gate.policy` (the policy and its
table of constraints), :mod:`~cohortlm.evaluation.gate.stats` (the statistics per
endpoint), :mod:`~cohortlm.evaluation.gate.rule` (the rule, a pure function of those),
:mod:`~cohortlm.evaluation.gate.record` (the decision record and its schema),
:mod:`~cohortlm.evaluation.gate.prose` (the reasons in words) and
:mod:`~cohortlm.evaluation.gate.decide` (one run, from scores to record).

The candidate model is compared with the champion (the model now serving, or the
logistic regression of the same run) on the same patients of the gating split,
per endpoint. With ``Δ = AUC_candidate − AUC_champion`` (paired DeLong,
:mod:`cohortlm.evaluation.stats.delong`, equal to R's pROC) a policy pre-specifies three
families of one-sided tests, each with its level stated and tied to ``alpha``:

1. **superiority** on the *primary* endpoints (``primary``; all endpoints when
   unset): one-sided ``p(Δ > 0)`` adjusted across the primary endpoints
   (``adjustment``, Holm by default: family-wise error ≤ the look's level). The
   look's level is ``alpha`` spent across the looks at one test split
   (``alpha_spending``, below); at least ``min_superior`` must be significant;
2. **safety: not significantly worse** on every endpoint: one-sided ``p(Δ < 0)``
   adjusted across all assessed endpoints at ``alpha`` (Holm);
3. **safety: non-inferior** on every endpoint: the one-sided ``1 − ni_alpha``
   lower bound of Δ (``ni_alpha`` defaults to ``alpha``) is ≥ −margin. Requiring
   every endpoint to pass is an intersection–union test, so no adjustment is
   needed for the family's error to stay at ``ni_alpha``. The margin is either
   ``absolute`` (``margin`` in AUC units) or scaled to the endpoint's case count,
   ``cases``: ``margin × √(margin_cases / n_eff)`` with ``n_eff = cases·controls /
   (cases + controls)`` (:func:`endpoint_margins`), capped at ``margin_max``, so
   that a rare endpoint, whose ΔAUC cannot be measured to ±0.02, is held to a
   margin its data can show; ``margins`` overrides it per endpoint;
4. **calibration as a test** on every assessed endpoint (``calibration: test``):
   logistic recalibration of the candidate's probabilities
   (:mod:`cohortlm.evaluation.stats.calibration`); the gate fails when the data show that
   calibration-in-the-large lies beyond ±``citl_tolerance`` or the calibration
   slope outside ``slope_range`` (the two-sided interval at Bonferroni level
   ``calibration_alpha / (2 × endpoints)`` lies wholly outside the tolerance).
   ``calibration: brier_margin`` keeps the old point rule (Brier may exceed the
   champion's by ``brier_margin``); both models' calibration is recorded either way.
5. **no subgroup shown worse** (``subgroups: test``), when the study declares
   subgroups (:mod:`cohortlm.cohort.subgroups`): per endpoint and level, the
   one-sided paired DeLong ``p(Δ < 0)`` on the level's patients, adjusted
   (``adjustment``) over every endpoint and level tested, at ``subgroup_alpha``
   (``alpha`` when unset); a level with fewer than ``min_cases`` cases or
   controls is not tested and is recorded as such. A candidate better on
   average but shown worse among, say, men is not promoted.

**Small samples.** An endpoint with fewer than ``min_cases`` cases or controls in
the gating split gets the verdict ``insufficient evidence``: it is never
significantly better or worse, and with ``insufficient: exclude`` (the default)
it is left out of every family and named in the reasons; ``insufficient: block``
makes it block promotion instead.

**Repeated looks at one test split.** Every decision is a look at the split; the
model store's ledger (:mod:`cohortlm.store.registry`) counts them by the split's hash.
Look ``k`` gets superiority level ``α_k``: ``inverse_square`` spends
``α·k⁻²/Σ_{j≤K} j⁻²`` (K = ``max_looks``; the levels of K looks sum to α, and the
first look gets 63 % of it), ``bonferroni`` spends ``α/K`` per look, ``none`` gives
every look the full α. After ``max_looks`` looks the gate refuses to promote on
that split and says how to get a fresh one. Since a false promotion needs a false
superiority claim at some look, the chance of any false promotion over the K
looks is at most ``Σ α_k ≤ α``.

The default policy (``cohortlm/policies/default.yaml``) and its measured
operating characteristics are in the README (section "The gate") and
``benchmarks/results/gate.md``; :func:`operating_characteristics` measures a
policy by simulation, with the same rule (:func:`apply_policy`) that decides a run.

The :class:`Decision` holds the policy, n, AUCs with (logit) CIs, Δ with CI and
its non-inferiority bound and margin, z, raw and adjusted p-values, both models'
calibration, the look and the level it spent, the verdict per endpoint and the
reasons in words. It serialises to JSON (NaN as ``null``) and reads back equal.
"""

from cohortlm.evaluation.gate.decide import decide
from cohortlm.evaluation.gate.policy import (
    ALPHA_SPENDING,
    CALIBRATION_RULES,
    MARGIN_RULES,
    GatePolicy,
    PolicyError,
    default_policy_path,
    legacy_policy_path,
    load_policy,
)
from cohortlm.evaluation.gate.record import (
    DECISION_SCHEMA_VERSION,
    Decision,
    EndpointVerdict,
    SubgroupVerdict,
)
from cohortlm.evaluation.gate.rule import (
    OperatingCharacteristics,
    RuleResult,
    alpha_for_look,
    apply_policy,
    endpoint_margins,
    operating_characteristics,
)
from cohortlm.evaluation.gate.stats import EndpointStats, RuleInputs

__all__ = [
    "ALPHA_SPENDING",
    "CALIBRATION_RULES",
    "DECISION_SCHEMA_VERSION",
    "MARGIN_RULES",
    "Decision",
    "EndpointStats",
    "EndpointVerdict",
    "GatePolicy",
    "OperatingCharacteristics",
    "PolicyError",
    "RuleInputs",
    "RuleResult",
    "SubgroupVerdict",
    "alpha_for_look",
    "apply_policy",
    "decide",
    "default_policy_path",
    "endpoint_margins",
    "legacy_policy_path",
    "load_policy",
    "operating_characteristics",
]
