"""``cohortlm outcomes add`` and ``cohortlm monitor``: the prediction log's commands.

They register on ``cohortlm``'s app from :mod:`serving.cli` (the ``cohortlm.commands``
entry point ``serving``); SQLAlchemy, the monitor and the KFP client are imported
inside the commands.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from cohortlm.cli._app import app, bounded
from cohortlm.errors import UsageError

outcomes_app = typer.Typer(help="Outcomes that arrive after the predictions (joined to the prediction log).")
app.add_typer(outcomes_app, name="outcomes")

DATE_COLUMNS = ("observation_date", "observed_on", "outcome_date")

PredictionLogUrl = Annotated[
    str, typer.Option("--prediction-log", envvar="COHORTLM_PREDICTION_LOG", help="The log's database URL.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _endpoint_values(spec: Any, table: Any) -> dict[str, Any]:
    """Endpoint -> 0/1/NaN values: the endpoint's own column, or the raw column the spec derives it from."""
    import numpy as np

    out = {}
    for ep in spec.endpoints:
        if ep.name in table.columns:
            raw = table[ep.name]
            values = np.asarray(
                raw.map(lambda v: float(v) if v is not None and v == v else math.nan), dtype=float
            )
            bad = ~np.isnan(values) & ~np.isin(values, (0.0, 1.0))
            if bad.any():
                raise UsageError(
                    f"--data column {ep.name} must hold 0/1 (or true/false); it holds other values"
                )
            out[ep.name] = values
        elif ep.column in table.columns:
            try:
                out[ep.name] = ep.label(table[ep.column].to_numpy(dtype=float))
            except (TypeError, ValueError):
                raise UsageError(
                    f"--data column {ep.column} must be numeric (it defines {ep.name})"
                ) from None
    if not out:
        names = ", ".join(f"{e.name} (or {e.column})" for e in spec.endpoints[:3])
        raise UsageError(f"--data has no endpoint column; give e.g. {names}")
    return out


@outcomes_app.command("add")
def outcomes_add(
    prediction_log: PredictionLogUrl,
    study: str = typer.Option("ra_iorra", "--study", help="Study name or YAML file (id column, endpoints)."),
    data: Path = typer.Option(
        ...,
        "--data",
        help="CSV or Parquet: the patient id, endpoint values (0/1) or the raw columns the spec derives them "
        "from, and an observation_date column (optional).",
    ),
    pseudonym_key_file: Path | None = typer.Option(
        None, "--pseudonym-key-file", envvar="COHORTLM_PSEUDONYM_KEY_FILE", help="The server's pseudonym key."
    ),
    as_json: AsJson = False,
) -> None:
    """Join outcomes to the logged predictions; re-adding the same file changes nothing.

    Patients the log has never seen are counted, never printed, and not stored.
    """
    import numpy as np

    from cohortlm.cohort.study import load_study
    from serving.monitor import read_table
    from serving.prediction_log import LogStore, pseudonym, read_pseudonym_key

    spec = load_study(study)
    key = read_pseudonym_key(pseudonym_key_file)
    table = read_table(data, "--data")
    if spec.id_column not in table.columns:
        raise UsageError(f"--data has no {spec.id_column} column (the study's id column)")
    values = _endpoint_values(spec, table)
    date_col = next((c for c in DATE_COLUMNS if c in table.columns), None)
    dates = (
        [str(d)[:10] if d is not None and d == d else None for d in table[date_col].tolist()]
        if date_col
        else [None] * len(table)
    )
    ids = table[spec.id_column].tolist()
    pseud = [pseudonym(key, i) if i is not None and i == i and str(i) != "" else None for i in ids]
    store = LogStore(prediction_log)
    try:
        known = store.known_pseudonyms(p for p in pseud if p is not None)
        rows = []
        unknown = 0
        for r, p in enumerate(pseud):
            if p is None or p not in known:
                unknown += 1
                continue
            for endpoint, v in values.items():
                if not np.isnan(v[r]):
                    rows.append(
                        {"pseudonym": p, "endpoint": endpoint, "value": int(v[r]), "observed_on": dates[r]}
                    )
        added, present = store.add_outcomes(rows)
    finally:
        store.close()
    result = {
        "patients_read": len(table),
        "outcomes_added": added,
        "outcomes_already_present": present,
        "patients_unknown": unknown,
        "endpoints": sorted(values),
    }
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(
            f"outcomes: {len(table)} patients read, {added} outcomes added, {present} already present, "
            f"{unknown} patients not in the prediction log (not stored)"
        )


@app.command()
def monitor(
    prediction_log: PredictionLogUrl,
    bundle: Path = typer.Option(
        ..., "--bundle", help="The served champion's bundle (or the store's champion pointer)."
    ),
    as_json: AsJson = False,
    window_days: float = typer.Option(
        0.0,
        "--window-days",
        callback=bounded(0, 3650),
        help="Predictions served in the last N days (0: all of this version).",
    ),
    reference: Path | None = typer.Option(
        None,
        "--reference",
        help="The featurised training cohort (CSV/Parquet): its bin counts become the drift reference "
        "of this version (kept in the log; later runs need not repeat it).",
    ),
    psi_threshold: float = typer.Option(
        0.2, "--psi-threshold", callback=bounded(0, 100), help="PSI above which a feature drifts."
    ),
    pushgateway: str | None = typer.Option(
        None, "--pushgateway", envvar="COHORTLM_PUSHGATEWAY_URL", help="Push the figures here (http(s) URL)."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Folder for index.html and monitor.json (default runs/monitor-<UTC time>)."
    ),
    kfp_host: str | None = typer.Option(
        None,
        "--kfp-host",
        envvar="COHORTLM_KFP_HOST",
        help="KFP API: submit a retraining run on degradation.",
    ),
    raw_data: str | None = typer.Option(
        None, "--raw-data", help="Raw data URI the retraining run reads (needed with --kfp-host)."
    ),
    namespace: str | None = typer.Option(None, "--namespace", help="Kubeflow profile namespace."),
    token: str | None = typer.Option(
        None, "--token", envvar="KFP_TOKEN", help="Bearer token for the KFP API."
    ),
    retrain_every_days: float = typer.Option(
        7.0,
        "--retrain-policy-days",
        callback=bounded(0, 3650),
        help="At most one retraining run per this many days.",
    ),
) -> None:
    """Live AUC, calibration and drift of the served champion; alerts' figures; retraining when degraded."""
    from serving.monitor import (
        default_report_dir,
        kfp_submitter,
        maybe_retrain,
        push_monitor_metrics,
        read_table,
        run_monitor,
        write_report,
    )
    from serving.prediction_log import LogStore

    if pushgateway and not pushgateway.startswith(("http://", "https://")):
        raise UsageError("--pushgateway must be an http(s) URL")
    if kfp_host and not raw_data:
        raise UsageError("--kfp-host needs --raw-data: the retraining run must know where the cohort is")
    ref_table = read_table(reference, "--reference") if reference is not None else None
    store = LogStore(prediction_log)
    try:
        result = run_monitor(
            store, bundle, window_days=window_days, reference=ref_table, psi_threshold=psi_threshold
        )
        submit = None
        if kfp_host:
            from cohortlm.run.steps import study_text
            from serving.monitor import bundle_identity

            _, spec, _ = bundle_identity(bundle)
            submit = kfp_submitter(
                kfp_host,
                raw_data=str(raw_data),
                study_text=study_text(spec),
                pushgateway=pushgateway,
                namespace=namespace,
                token=token,
            )
        maybe_retrain(store, result, submit=submit, policy_days=retrain_every_days)
    finally:
        store.close()
    page = write_report(report or default_report_dir(), result)
    if pushgateway:
        push_monitor_metrics(pushgateway, result)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"model {result['model_version']}: {result['n_predictions']} predictions")
    for name, r in result["endpoints"].items():
        auc = "–" if r["auc"] is None else f"{r['auc']:.3f} ({r['auc_ci_low']:.3f}-{r['auc_ci_high']:.3f})"
        typer.echo(
            f"  {name}: {r['n_outcomes']} outcomes, AUC {auc}, expected {r['expected_auc']}, "
            f"{'DEGRADED' if r['degraded'] else 'ok'}"
        )
    drifted = result["drifted_features"]
    typer.echo(f"  drift: {', '.join(drifted) if drifted else 'none'}")
    retrain = result["retraining"]
    if retrain["submitted"]:
        typer.echo(f"  retraining run {retrain['run_id']} submitted")
    elif retrain["needed"]:
        typer.echo(f"  retraining needed: {retrain['skipped']}")
    typer.echo(f"  report: {page}")
