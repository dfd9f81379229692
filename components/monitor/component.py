"""The monitor as a KFP step: live performance and drift of the champion, alerts' figures, retraining.

The same as ``cohortlm monitor`` (serving/monitor.py); the cluster runs it daily as the
CronJob ``cohortlm-monitor`` (manifests/base/monitoring.yaml), and a pipeline can run it
as this step (e.g. after a promotion, or on demand from the KFP UI).
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def monitor(
    prediction_log: str,
    model_store: str,
    study: str,
    report: Output[HTML],
    result: Output[Artifact],
    pushgateway: str = "",
    kfp_host: str = "",
    raw_data: str = "",
    retrain_policy_days: float = 7.0,
    window_days: float = 0.0,
) -> bool:
    """Run the monitor on the study's champion; True when it found degradation or drift.

    Args:
        prediction_log: the log's database URL, or ``@FILE`` (the mounted Secret).
        model_store: the model store (the champion's bundle and its gate record).
        study: the study whose champion is monitored.
        report: the report page (HTML).
        result: the monitor's JSON (figures per endpoint and feature; no patient data).
        pushgateway: where to push the figures (empty: not pushed).
        kfp_host: the KFP API to submit a retraining run to (empty: none submitted).
        raw_data: the raw data the retraining run reads (needed with ``kfp_host``).
        retrain_policy_days: at most one retraining run per this many days.
        window_days: predictions served in the last N days (0: all of the champion's).
    """
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from cohortlm.errors import UsageError
    from cohortlm.run.steps import study_text
    from serving.monitor import (
        bundle_identity,
        kfp_submitter,
        maybe_retrain,
        push_monitor_metrics,
        run_monitor,
        write_report,
    )
    from serving.prediction_log import LogStore

    bundle = Path(model_store) / study / "champion"
    if not bundle.exists():
        raise UsageError(f"{model_store} has no champion of study {study}: nothing to monitor")
    if kfp_host and not raw_data:
        raise UsageError("kfp_host needs raw_data: the retraining run must know where the cohort is")
    store = LogStore(prediction_log)
    try:
        figures = run_monitor(store, bundle, window_days=window_days)
        submit = None
        if kfp_host:
            _, spec, _ = bundle_identity(bundle)
            submit = kfp_submitter(
                kfp_host,
                raw_data=raw_data,
                study_text=study_text(spec),
                pushgateway=pushgateway or None,
                namespace=None,
                token=None,
            )
        maybe_retrain(store, figures, submit=submit, policy_days=retrain_policy_days)
    finally:
        store.close()
    with tempfile.TemporaryDirectory() as tmp:
        page = write_report(tmp, figures)
        shutil.copyfile(page, report.path)
    Path(result.path).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    if pushgateway:
        push_monitor_metrics(pushgateway, figures)
    return bool(figures["degraded"] or figures["drifted"])
