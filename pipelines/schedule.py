"""``cohortlm schedule``: a Kubeflow Pipelines recurring run of the pipeline (the runs the alerts expect).

``CohortlmNoRecentSuccessfulRun`` expects a successful run at least weekly; this
creates the KFP ``RecurringRun`` that starts them (weekly by default), with the
Pushgateway set so that each run's outcome reaches Prometheus. kfp is imported
inside the command: ``cohortlm --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import typer

from cohortlm.cli._app import app, echo_json
from cohortlm.errors import UsageError
from pipelines.cli import CaBundle, Experiment, KfpHost, KfpToken, RawData, SentStudy, _parse_params

#: Mondays at 03:00 (the cluster's time zone; KFP's cron has a seconds field first).
DEFAULT_CRON = "0 0 3 * * 1"


def kfp_cron(expression: str) -> str:
    """A cron expression in KFP's six-field form (seconds first); five fields get ``0`` seconds.

    Raises:
        UsageError: not five or six fields.
    """
    fields = expression.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise UsageError(
            f"--cron must have 5 fields (minute hour day month weekday) or 6 (seconds first), "
            f"got {len(expression.split())}: e.g. '0 3 * * 1' for Mondays at 03:00"
        )
    return " ".join(fields)


def schedule_arguments(
    *,
    raw_data: str,
    study_yaml: str,
    profile: str,
    pushgateway: str,
    namespace: str,
    extra: dict[str, object],
) -> dict[str, object]:
    """The pipeline parameters of every scheduled run (what ``cohortlm submit`` passes, plus the gateway)."""
    from pipelines.train_evaluate_promote import MODEL_STORE_MOUNT

    if not pushgateway:
        raise UsageError(
            "--pushgateway must name the Pushgateway the run metrics go to: the alerts on scheduled runs "
            "read them (the default is the in-cluster one the NetworkPolicy allows)"
        )
    arguments: dict[str, object] = {
        "raw_data": raw_data,
        "study_yaml": study_yaml,
        "profile": profile,
        "model_store": MODEL_STORE_MOUNT,
        "isvc_namespace": namespace,
        "pushgateway": pushgateway,
    }
    arguments.update(extra)
    return arguments


@app.command()
def schedule(
    host: KfpHost,
    raw_data: RawData,
    study: SentStudy = "ra_iorra",
    cron: str = typer.Option(
        DEFAULT_CRON, "--cron", help="When to run (5 or 6 cron fields); weekly by default."
    ),
    name: str = typer.Option("cohortlm-weekly", "--name", help="Recurring run name."),
    experiment: Experiment = "cohortlm",
    profile: str = typer.Option("paper", "--profile", help="smoke, quick or paper."),
    pushgateway: str = typer.Option(
        "", "--pushgateway", help="Pushgateway URL for run metrics; default: the in-cluster one."
    ),
    param: list[str] = typer.Option([], "--param", help="Extra pipeline parameter key=value (repeatable)."),
    namespace: str = typer.Option("cohortlm", "--namespace", help="Kubeflow profile namespace."),
    service_account: str = typer.Option(
        "cohortlm-pipeline-runner", "--service-account", help="ServiceAccount the run's pods use."
    ),
    token: KfpToken = None,
    ssl_ca_cert: CaBundle = None,
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Create a recurring run of the pipeline on Kubeflow Pipelines (one run at a time, no catch-up)."""
    import kfp

    from cohortlm.cohort.study import load_study
    from cohortlm.run.steps import study_text
    from pipelines.train_evaluate_promote import DEFAULT_PUSHGATEWAY, compile_pipeline

    cron6 = kfp_cron(cron)
    arguments = schedule_arguments(
        raw_data=raw_data,
        study_yaml=study_text(load_study(study)),
        profile=profile,
        pushgateway=pushgateway or DEFAULT_PUSHGATEWAY,
        namespace=namespace,
        extra=_parse_params(param),
    )
    # kfp prints links on stdout; they go to stderr so that --json prints only the result.
    with contextlib.redirect_stdout(sys.stderr):
        client = kfp.Client(
            host=host,
            existing_token=token,
            namespace=namespace,
            ssl_ca_cert=str(ssl_ca_cert) if ssl_ca_cert else None,
        )
        exp = client.create_experiment(experiment, namespace=namespace)
        with tempfile.TemporaryDirectory(prefix="cohortlm-schedule-") as tmp:
            package = str(Path(tmp) / "pipeline.yaml")
            compile_pipeline(package)
            job = client.create_recurring_run(
                experiment_id=exp.experiment_id,
                job_name=name,
                cron_expression=cron6,
                max_concurrency=1,
                no_catchup=True,
                params=arguments,
                pipeline_package_path=package,
                enable_caching=True,
                service_account=service_account,
            )
    result = {"recurring_run_id": job.recurring_run_id, "name": name, "cron": cron6, "experiment": experiment}
    if as_json:
        echo_json(result)
    else:
        typer.echo(
            f"recurring run {job.recurring_run_id} ({name}, cron '{cron6}') created in {host.rstrip('/')}"
        )
