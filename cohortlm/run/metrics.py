"""Prometheus metrics of a pipeline run, pushed to a Pushgateway when one is configured.

A run is a batch job: nothing scrapes it while it runs, so its results are
pushed once at the end (``push_run_metrics``) and the Pushgateway keeps them
for Prometheus. The group is ``job`` + ``study``, so each run of a study
replaces the previous run's values instead of piling up series; the run id is
kept as the label of an info gauge.

Metric names (dashboards and alert rules use exactly these):

==========================================  =====  =============================================
``cohortlm_run_auc{endpoint,model}``         gauge  test-split AUC per endpoint and model
``cohortlm_gate_promoted``                   gauge  1 when the gate promoted the candidate, else 0
``cohortlm_validation_failures_total{rule}`` count  rows failing each data-validation rule
``cohortlm_training_tokens_per_second``      gauge  fine-tuning throughput (absent when no LLM trained)
``cohortlm_run_last_success_timestamp_seconds`` gauge  Unix time the run finished
``cohortlm_run_info{run_id}``                gauge  1; carries the run id
``cohortlm_run_failed``                      gauge  1 when the last run failed, 0 when it succeeded
``cohortlm_run_last_finish_timestamp_seconds`` gauge  Unix time the last run ended, either way
``cohortlm_validation_last_timestamp_seconds`` gauge  Unix time the last validation ran
==========================================  =====  =============================================

Three groups per study, so that no push erases another's metrics:
``job="cohortlm"`` (the results, pushed by the export step when the run got
that far), ``job="cohortlm-validation"`` (pushed by the validate step before
it passes or fails, so a failed validation is visible although nothing after
it runs) and ``job="cohortlm-run"`` (pushed by the exit handler after every
run; POSTed, so that a failed run keeps the last success time).

Each ``push_*`` function returns False, building and pushing nothing, when no
gateway is configured, and True once pushed. They raise ``UsageError`` when a
name is not an identifier and ``MetricsPushError`` when the gateway could not
be reached or refused the push.

Label values are restricted to short identifiers (endpoint, model and rule
names): no patient identifier or feature value can become a label.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway, pushadd_to_gateway

from cohortlm.errors import CohortlmError, UsageError

PUSHGATEWAY_ENV = "COHORTLM_PUSHGATEWAY_URL"
# Identifiers only: letters, digits and . _ - : + (model names such as "SmolLM2-135M+lora").
_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:+-]{0,99}$")
# Run ids may start with a digit: local ids are UTC times, KFP's are UUIDs.
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,99}$")
VALIDATION_JOB = "cohortlm-validation"
OUTCOME_JOB = "cohortlm-run"


class MetricsPushError(CohortlmError):
    """The Pushgateway could not be reached or refused the metrics (exit code 1)."""

    exit_code = 1


def _label(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _LABEL_RE.match(value):
        raise UsageError(
            f"{kind} names used as metric labels must be identifiers (letters, digits, . _ - : +, "
            f"at most 100 characters); got one that is not"
        )
    return value


def _run_id(value: str) -> str:
    if not isinstance(value, str) or not _RUN_ID_RE.match(value):
        raise UsageError(
            "run ids used as metric labels must be identifiers (letters, digits, . _ - : +, "
            "at most 100 characters); got one that is not"
        )
    return value


def _run_info(registry: CollectorRegistry, run_id: str) -> None:
    """``cohortlm_run_info{run_id}`` = 1: which run a pushed group came from."""
    Gauge(
        "cohortlm_run_info", "The pipeline run these metrics came from", ["run_id"], registry=registry
    ).labels(run_id=_run_id(run_id)).set(1)


def _timestamp(registry: CollectorRegistry, name: str, documentation: str, at: float | None) -> None:
    """A gauge holding a Unix time: ``at``, or now when None."""
    Gauge(name, documentation, registry=registry).set(time.time() if at is None else float(at))


def _last_success(registry: CollectorRegistry, at: float | None) -> None:
    """``cohortlm_run_last_success_timestamp_seconds``: written by a run's results and by its outcome."""
    _timestamp(
        registry,
        "cohortlm_run_last_success_timestamp_seconds",
        "Unix time the last successful run finished",
        at,
    )


def _validation_failures(registry: CollectorRegistry, failures: Mapping[str, int]) -> None:
    """``cohortlm_validation_failures{rule}``: failing rows per validation rule (0 for a rule that passed).

    Raises:
        UsageError: a rule name is not an identifier, or a count is negative.
    """
    counter = Counter(
        "cohortlm_validation_failures",
        "Rows failing each data-validation rule in the run",
        ["rule"],
        registry=registry,
    )
    for rule, count in failures.items():
        n = int(count)
        if n < 0:
            raise UsageError(f"validation failure count of rule {rule} must not be negative")
        counter.labels(rule=_label("rule", rule)).inc(n)


def build_run_registry(
    *,
    run_id: str,
    aucs: Mapping[str, Mapping[str, float]],
    decision_promoted: bool,
    tokens_per_second: float | None,
    validation_failures: Mapping[str, int],
    finished_at: float | None = None,
) -> CollectorRegistry:
    """A fresh registry holding one run's metrics (see the module docstring for the names).

    Args:
        run_id: the run's id (an identifier; kept as a label of ``cohortlm_run_info``).
        aucs: ``{model: {endpoint: auc}}``.
        decision_promoted: the gate verdict.
        tokens_per_second: fine-tuning throughput, or None when no LLM was trained.
        validation_failures: ``{rule: failing rows}``.
        finished_at: Unix time of success; now when omitted.

    Raises:
        UsageError: a name is not an identifier, or an AUC lies outside [0, 1].
    """
    registry = CollectorRegistry()
    _run_info(registry, run_id)
    auc = Gauge(
        "cohortlm_run_auc", "Test-split AUC per endpoint and model", ["endpoint", "model"], registry=registry
    )
    for model, per_endpoint in aucs.items():
        for endpoint, value in per_endpoint.items():
            v = float(value)
            if not 0.0 <= v <= 1.0:
                raise UsageError(f"AUC of {endpoint} for model {model} must lie in [0, 1]")
            auc.labels(endpoint=_label("endpoint", endpoint), model=_label("model", model)).set(v)
    Gauge(
        "cohortlm_gate_promoted",
        "1 when the gate promoted the candidate, 0 when it kept the champion",
        registry=registry,
    ).set(1.0 if decision_promoted else 0.0)
    _validation_failures(registry, validation_failures)
    if tokens_per_second is not None:
        Gauge(
            "cohortlm_training_tokens_per_second", "Fine-tuning throughput (tokens/s)", registry=registry
        ).set(float(tokens_per_second))
    _last_success(registry, finished_at)
    return registry


def push_run_metrics(
    gateway_url: str | None,
    *,
    run_id: str,
    study: str,
    aucs: Mapping[str, Mapping[str, float]],
    decision_promoted: bool,
    tokens_per_second: float | None,
    validation_failures: Mapping[str, int],
    job: str = "cohortlm",
    timeout: float = 10.0,
) -> bool:
    """Push a run's metrics to a Pushgateway, replacing the previous run of the same study.

    Args:
        gateway_url: ``host:port`` or ``http://host:port`` of the Pushgateway;
            None or empty means no gateway is configured and nothing is pushed.
        run_id: the run's id.
        study: the study name (the grouping key, with ``job``).
        aucs: ``{model: {endpoint: auc}}``.
        decision_promoted: the gate verdict.
        tokens_per_second: fine-tuning throughput, or None.
        validation_failures: ``{rule: failing rows}``.
        job: the Pushgateway job name.
        timeout: seconds to wait for the gateway.
    """
    return _push_if_configured(
        gateway_url,
        job=job,
        study=study,
        registry=lambda: build_run_registry(
            run_id=run_id,
            aucs=aucs,
            decision_promoted=decision_promoted,
            tokens_per_second=tokens_per_second,
            validation_failures=validation_failures,
        ),
        add=False,
        timeout=timeout,
    )


def _push_if_configured(
    gateway_url: str | None,
    *,
    job: str,
    study: str,
    registry: Callable[[], CollectorRegistry],
    add: bool,
    timeout: float,
) -> bool:
    """Build and push ``registry()`` when a gateway is configured; without one nothing is built."""
    if not gateway_url:
        return False
    _push(gateway_url, job=job, study=study, registry=registry(), add=add, timeout=timeout)
    return True


def _push(
    gateway_url: str, *, job: str, study: str, registry: CollectorRegistry, add: bool, timeout: float
) -> None:
    push = pushadd_to_gateway if add else push_to_gateway
    try:
        push(
            gateway_url,
            job=_label("job", job),
            grouping_key={"study": _label("study", study)},
            registry=registry,
            timeout=timeout,
        )
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise MetricsPushError(
            f"could not push run metrics to the Pushgateway at {gateway_url} ({type(exc).__name__}); "
            f"check that it runs, or unset {PUSHGATEWAY_ENV}"
        ) from None


def build_validation_registry(
    *, run_id: str, failures: Mapping[str, int], finished_at: float | None = None
) -> CollectorRegistry:
    """A registry with the failing rows per validation rule (0 for a rule that passed).

    Raises:
        UsageError: a rule name is not an identifier, or a count is negative.
    """
    registry = CollectorRegistry()
    _run_info(registry, run_id)
    _validation_failures(registry, failures)
    _timestamp(
        registry,
        "cohortlm_validation_last_timestamp_seconds",
        "Unix time the last data validation ran",
        finished_at,
    )
    return registry


def push_validation_metrics(
    gateway_url: str | None,
    *,
    run_id: str,
    study: str,
    failures: Mapping[str, int],
    timeout: float = 10.0,
) -> bool:
    """Push one run's validation counts, replacing the previous run's (group ``cohortlm-validation``)."""
    return _push_if_configured(
        gateway_url,
        job=VALIDATION_JOB,
        study=study,
        registry=lambda: build_validation_registry(run_id=run_id, failures=failures),
        add=False,
        timeout=timeout,
    )


def build_outcome_registry(
    *, run_id: str, succeeded: bool, finished_at: float | None = None
) -> CollectorRegistry:
    """A registry with a run's outcome: failed flag, finish time and, on success, the success time."""
    now = time.time() if finished_at is None else float(finished_at)
    registry = CollectorRegistry()
    _run_info(registry, run_id)
    Gauge(
        "cohortlm_run_failed", "1 when the last pipeline run failed, 0 when it succeeded", registry=registry
    ).set(0.0 if succeeded else 1.0)
    _timestamp(
        registry,
        "cohortlm_run_last_finish_timestamp_seconds",
        "Unix time the last pipeline run ended, succeeded or failed",
        now,
    )
    if succeeded:
        _last_success(registry, now)
    return registry


def push_run_outcome(
    gateway_url: str | None, *, run_id: str, study: str, succeeded: bool, timeout: float = 10.0
) -> bool:
    """Push a run's outcome (group ``cohortlm-run``), keeping the last success time on a failure.

    POST (``pushadd``) replaces only the metrics pushed here, so a failed run
    leaves ``cohortlm_run_last_success_timestamp_seconds`` of the last good one.
    """
    return _push_if_configured(
        gateway_url,
        job=OUTCOME_JOB,
        study=study,
        registry=lambda: build_outcome_registry(run_id=run_id, succeeded=succeeded),
        add=True,
        timeout=timeout,
    )
