"""Checks of one input against another, run before a command does any work (exit 2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cohortlm.errors import SpecError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cohortlm.cohort.study import StudySpec
    from cohortlm.evaluation.gate import GatePolicy


def check_policy_endpoints(
    policy: GatePolicy, study: StudySpec | Sequence[str], *, policy_name: str, study_name: str | None = None
) -> None:
    """Refuse a policy whose ``primary`` or ``margins`` name an endpoint the study does not have.

    Such a policy used to be accepted: every simulated promotion rate was 0.000,
    and ``run --policy`` trained for minutes before the gate step failed.

    Raises:
        SpecError: naming the policy, the unknown endpoints and the study's endpoints.
    """
    if isinstance(study, (list, tuple)):
        names, label = list(study), study_name or "the study"
    else:
        names = study.endpoint_names  # type: ignore[union-attr]
        label = f"study '{study.name}'"  # type: ignore[union-attr]
    unknown = sorted((set(policy.primary or ()) | set(policy.margins)) - set(names))
    if unknown:
        keys = [
            k
            for k, named in (("primary", policy.primary or ()), ("margins", policy.margins))
            if set(named) & set(unknown)
        ]
        raise SpecError(
            f"--policy {policy_name}: {' and '.join(keys)} name endpoint(s) {label} does not have: "
            f"{', '.join(unknown)}; its endpoints are {', '.join(names)}"
        )
