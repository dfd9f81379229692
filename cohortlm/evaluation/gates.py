"""The promotion gate's public names, kept at their old address (:mod:`cohortlm.evaluation.gate` holds them).

New code imports from :mod:`cohortlm.evaluation.gate`.
"""

from cohortlm.evaluation.gate import (
    ALPHA_SPENDING,
    CALIBRATION_RULES,
    DECISION_SCHEMA_VERSION,
    MARGIN_RULES,
    Decision,
    EndpointStats,
    EndpointVerdict,
    GatePolicy,
    OperatingCharacteristics,
    PolicyError,
    RuleInputs,
    RuleResult,
    alpha_for_look,
    apply_policy,
    decide,
    default_policy_path,
    endpoint_margins,
    legacy_policy_path,
    load_policy,
    operating_characteristics,
)

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
    "alpha_for_look",
    "apply_policy",
    "decide",
    "default_policy_path",
    "endpoint_margins",
    "legacy_policy_path",
    "load_policy",
    "operating_characteristics",
]
