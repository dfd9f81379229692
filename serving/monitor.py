"""The monitor: live performance and input drift of the served champion, alerts and retraining.

:func:`run_monitor` reads one model version's window of the prediction log
(:mod:`serving.prediction_log`), computes per endpoint the live figures against
the gate's (:mod:`cohortlm.monitoring.performance`) and per feature the drift
from the training reference (:mod:`cohortlm.monitoring.drift`), and returns one
JSON-ready object. :func:`push_monitor_metrics` sends it to the Pushgateway (the
alert rules read it), :func:`write_report` writes the report page, and
:func:`maybe_retrain` submits a retraining run through the KFP API when the
champion degraded or its inputs drifted, at most once per policy window, and
records why in the log's ``retraining_runs`` table.

False alarms: a window holds 3 tests per endpoint (AUC drop, calibration
intercept and slope) and one per feature. Half the family level (5 %) goes to
the endpoints' tests, half to the features', each Bonferroni-split, so a window
of an unchanged population raises any alarm with probability at most 5 %.

Nothing here reads or writes a patient's identifier or values: the log holds
pseudonyms and probabilities, the drift reads aggregated bin counts, and every
output holds only figures per endpoint and per feature name.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Gauge

from cohortlm.cohort.study import StudySpec
from cohortlm.contracts import DECISION_FILE
from cohortlm.errors import UsageError
from cohortlm.models.bundle import bundle_spec, read_bundle_metadata
from cohortlm.monitoring.bins import spec_bins
from cohortlm.monitoring.drift import MIN_COUNT, PSI_THRESHOLD, feature_drift, privacy_merge
from cohortlm.monitoring.performance import endpoint_report, gate_figures
from serving.prediction_log import LogStore

FAMILY_ALPHA = 0.05
MONITOR_JOB = "cohortlm-monitor"
ASSUMPTIONS = (
    "expected_auc (CBPE) assumes the champion's probabilities are calibrated on the served "
    "population and P(outcome | features) is unchanged; it moves with a covariate shift, not with a "
    "concept shift, which only the outcomes show."
)


def bundle_identity(bundle: str | Path) -> tuple[str, StudySpec, dict[str, Any]]:
    """The bundle's version, spec and gate decision record (``{}`` when it has none)."""
    folder = Path(bundle).resolve()
    meta = read_bundle_metadata(folder)
    spec = bundle_spec(meta, path=folder)
    decision: dict[str, Any] = {}
    path = folder / DECISION_FILE
    if path.is_file():
        try:
            decision = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise UsageError(f"{path} is not valid JSON; the bundle's decision record is damaged") from None
    return str(meta["model_version"]), spec, decision


def reference_counts(spec: StudySpec, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Counts per feature bin of the training reference (a featurised cohort table)."""
    missing = [f.name for f in spec.features if f.name not in table.columns]
    if missing:
        raise UsageError(
            f"--reference lacks the feature column(s) {', '.join(missing[:5])}; "
            "give the featurised training cohort (cohortlm featurise)"
        )
    out = {}
    for name, b in spec_bins(spec).items():
        col = table[name]
        values = col.astype(object).where(col.notna(), None).to_numpy() if b.type == "categorical" else col
        out[name] = b.counts(np.asarray(values, dtype=object if b.type == "categorical" else float))
    return out


def read_table(path: str | Path, option: str) -> pd.DataFrame:
    """A CSV or Parquet file, or a clear error naming the option."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{option} {file} does not exist")
    try:
        if file.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(file)
        return pd.read_csv(file)
    except Exception as exc:
        raise UsageError(
            f"{option} {file} could not be read as CSV or Parquet ({type(exc).__name__})"
        ) from None


def _dense(counts: Mapping[int, int], size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.int64)
    for b, c in counts.items():
        if 0 <= b < size:
            out[b] += c
    return out


def long_frame(
    endpoints: list[str], served: Mapping[str, np.ndarray], outcomes: list[tuple[str, str, int]]
) -> pd.DataFrame:
    """One row per prediction and endpoint, with the outcome where it arrived (NaN otherwise)."""
    n, k = served["probabilities"].shape
    frame = pd.DataFrame(
        {
            "pseudonym": np.repeat(served["pseudonym"], k),
            "endpoint": np.tile(np.array(endpoints, dtype=object), n),
            "probability": served["probabilities"].reshape(-1),
            "served_at": np.repeat(served["served_at"], k),
        }
    )
    if not outcomes:
        frame["outcome"] = np.nan
        return frame
    known = pd.DataFrame(outcomes, columns=["pseudonym", "endpoint", "outcome"]).astype({"outcome": float})
    return frame.merge(known, on=["pseudonym", "endpoint"], how="left")


def run_monitor(
    store: LogStore,
    bundle: str | Path,
    *,
    window_days: float = 0.0,
    now: float | None = None,
    reference: pd.DataFrame | None = None,
    psi_threshold: float = PSI_THRESHOLD,
) -> dict[str, Any]:
    """Live performance and drift of the bundle's version over the window (0 days: everything logged)."""
    version, spec, decision = bundle_identity(bundle)
    now = time.time() if now is None else now
    since = now - window_days * 86400 if window_days > 0 else 0.0
    if reference is not None:
        store.set_reference(version, reference_counts(spec, reference))
    served = long_frame(
        spec.endpoint_names,
        store.served(version, since, now + 1, len(spec.endpoint_names)),
        store.outcomes_of(version, since, now + 1),
    )
    bins = spec_bins(spec)
    first_day = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d")
    last_day = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")
    served_bins = {
        name: _dense(counts, bins[name].size)
        for name, counts in store.served_bins(version, first_day, last_day).items()
        if name in bins
    }
    ref_bins = {
        name: _dense(counts, bins[name].size)
        for name, counts in store.reference(version).items()
        if name in bins
    }
    result = assess(spec, decision, served, served_bins, ref_bins, psi_threshold=psi_threshold)
    window = {
        "from": datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds"),
        "to": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
    }
    return {"study": spec.name, "model_version": version, "window": window, **result}


def assess(
    spec: StudySpec,
    decision: Mapping[str, Any],
    served: pd.DataFrame,
    served_bins: Mapping[str, np.ndarray],
    reference_bins: Mapping[str, np.ndarray],
    *,
    psi_threshold: float = PSI_THRESHOLD,
) -> dict[str, Any]:
    """The monitor's figures from one window's data (no database: the simulations call it too).

    Args:
        spec: the served model's study.
        decision: the gate's decision record at promotion (``{}``: nothing to compare with).
        served: one row per logged prediction and endpoint: ``pseudonym``, ``endpoint``,
            ``probability``, ``served_at``, ``outcome`` (NaN until it arrives).
        served_bins: feature -> served counts per bin (:mod:`cohortlm.monitoring.bins`).
        reference_bins: feature -> the training reference's counts per bin.
        psi_threshold: PSI above which a feature may count as drifted.
    """
    gate, tolerance = gate_figures(decision)
    endpoints = spec.endpoint_names
    alpha_endpoint = FAMILY_ALPHA / 2 / (3 * max(len(endpoints), 1))
    frame = served
    groups = dict(iter(frame.groupby("endpoint", sort=False))) if len(frame) else {}
    out_endpoints: dict[str, Any] = {}
    for endpoint in endpoints:
        rows = groups.get(endpoint, frame.iloc[:0])
        probs = rows["probability"].to_numpy(dtype=float) if len(rows) else np.array([])
        linked = rows[rows["pseudonym"].notna() & rows["outcome"].notna()] if len(rows) else rows
        if len(linked):
            # a patient served twice counts once, with the latest prediction
            linked = linked.sort_values("served_at").drop_duplicates("pseudonym", keep="last")
        rep = endpoint_report(
            endpoint,
            probs,
            linked["outcome"].to_numpy(dtype=float) if len(linked) else np.array([]),
            linked["probability"].to_numpy(dtype=float) if len(linked) else np.array([]),
            gate=gate.get(endpoint),
            tolerance=tolerance,
            alpha=alpha_endpoint,
        )
        out_endpoints[endpoint] = rep.to_dict()
    bins = spec_bins(spec)
    alpha_feature = FAMILY_ALPHA / 2 / max(len(bins), 1)
    out_features: dict[str, Any] = {}
    for name, b in bins.items():
        cur = np.asarray(served_bins.get(name, np.zeros(b.size, dtype=np.int64)))
        if name not in reference_bins:
            out_features[name] = {
                "psi": None,
                "p_value": None,
                "drifted": False,
                "n_groups": 0,
                "n_served": int(cur.sum()),
                "n_reference": 0,
                "served_counts": privacy_merge(cur, MIN_COUNT),
            }
            continue
        d = feature_drift(
            name,
            reference_bins[name],
            cur,
            min_count=MIN_COUNT,
            psi_threshold=psi_threshold,
            alpha=alpha_feature,
        )
        entry = d.to_dict()
        entry["served_counts"] = privacy_merge(cur, MIN_COUNT)  # no group under 10 patients
        out_features[name] = entry
    degraded = sorted(e for e, r in out_endpoints.items() if r["degraded"])
    drifted = sorted(f for f, r in out_features.items() if r["drifted"])
    n_predictions = int(len(frame) // max(len(endpoints), 1)) if len(frame) else 0
    return {
        "n_predictions": n_predictions,
        "endpoints": out_endpoints,
        "features": out_features,
        "degraded": bool(degraded),
        "drifted": bool(drifted),
        "degraded_endpoints": degraded,
        "drifted_features": drifted,
        "has_gate_figures": bool(gate),
        "has_reference": bool(reference_bins),
        "levels": {
            "family": FAMILY_ALPHA,
            "per_endpoint_test": alpha_endpoint,
            "per_feature_test": alpha_feature,
        },
        "tolerance": {
            "citl": tolerance.citl,
            "slope_range": [tolerance.slope_low, tolerance.slope_high],
            "psi_threshold": psi_threshold,
        },
        "assumptions": ASSUMPTIONS,
    }


def reasons(result: Mapping[str, Any]) -> list[str]:
    """Why the champion should be retrained, in words (figures per endpoint and feature only)."""
    out = []
    for name in result["degraded_endpoints"]:
        r = result["endpoints"][name]
        if r["auc_drop_significant"]:
            out.append(
                f"{name}: AUC {r['auc']:.3f} ({r['auc_ci_low']:.3f}-{r['auc_ci_high']:.3f}) against "
                f"{r['gate']['auc']:.3f} at promotion (one-sided p = {r['auc_drop_p']:.2g})"
            )
        if r["calibration_off"]:
            out.append(
                f"{name}: calibration outside the gate's tolerance (intercept {r['citl']:.2f}, "
                f"slope {r['slope']:.2f}, O/E {r['oe_ratio']:.2f})"
            )
    for name in result["drifted_features"]:
        out.append(f"{name}: input drift, PSI {result['features'][name]['psi']:.2f}")
    return out


def maybe_retrain(
    store: LogStore,
    result: dict[str, Any],
    *,
    submit: Any,
    policy_days: float = 7.0,
    now: float | None = None,
) -> dict[str, Any]:
    """Submit one retraining run when the result calls for it and none was submitted within the window.

    Args:
        store: the log (its ``retraining_runs`` table is the memory of the policy window).
        result: :func:`run_monitor`'s result.
        submit: ``submit(reasons) -> run_id``; None: only say what would be done.
        policy_days: at most one submission per this many days.

    Returns:
        ``{"needed", "submitted", "run_id", "reasons", "skipped"}``, also stored in ``result["retraining"]``.
    """
    now = time.time() if now is None else now
    why = reasons(result)
    info: dict[str, Any] = {
        "needed": bool(why),
        "submitted": False,
        "run_id": None,
        "reasons": why,
        "skipped": None,
    }
    if why:
        last = store.last_retraining()
        if last is not None and now - last[0] < policy_days * 86400:
            when = datetime.fromtimestamp(last[0], UTC).isoformat(timespec="seconds")
            info["skipped"] = (
                f"run {last[1]} was submitted at {when}, within the {policy_days:g}-day policy window"
            )
        elif submit is None:
            info["skipped"] = "no KFP host given (--kfp-host): nothing submitted"
        else:
            run_id = submit(why)
            store.record_retraining(result["model_version"], run_id, "\n".join(why), now)
            info.update(submitted=True, run_id=run_id)
    result["retraining"] = info
    return info


#: Where the retraining submitter registers: the pipelines package (the pipeline image)
#: provides it, so the server image, which ships no pipeline, needs no KFP SDK.
RETRAIN_ENTRY_POINTS = "cohortlm.retrain"


class RetrainRequest(TypedDict):
    """What a retraining run is submitted with, besides the KFP host: every submitter's keyword arguments."""

    raw_data: str
    study_text: str
    pushgateway: str | None
    namespace: str | None
    token: str | None


def kfp_submitter(host: str, **request: Unpack[RetrainRequest]) -> Any:
    """A ``submit(reasons) -> run_id`` that starts the training pipeline through the KFP API.

    The submitter lives with the pipeline it submits (``pipelines.retrain``) and is found
    through the ``cohortlm.retrain`` entry point; where the pipelines are not installed
    (the serving image) asking for a retraining run is a usage error that says so.
    """
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=RETRAIN_ENTRY_POINTS) if ep.name == "kfp"]
    if not found:
        raise UsageError(
            "--kfp-host: submitting a retraining run needs the pipelines (the pipeline image, or "
            "pip install 'cohortlm[pipeline]'); run the monitor there, or leave out --kfp-host"
        )
    factory = found[0].load()
    return factory(host, **request)


def build_monitor_registry(
    result: Mapping[str, Any], *, finished_at: float | None = None
) -> CollectorRegistry:
    """The monitor's figures as Prometheus gauges (labels: endpoint, feature, model_version)."""
    registry = CollectorRegistry()
    version = str(result.get("model_version", "none"))

    def gauge(name: str, text: str, label: str) -> Gauge:
        return Gauge(name, text, [label, "model_version"], registry=registry)

    per_endpoint = {
        "auc": gauge("cohortlm_monitor_auc", "Live AUC on patients with outcomes", "endpoint"),
        "auc_ci_low": gauge(
            "cohortlm_monitor_auc_ci_low", "Lower 95 % DeLong bound of the live AUC", "endpoint"
        ),
        "auc_ci_high": gauge(
            "cohortlm_monitor_auc_ci_high", "Upper 95 % DeLong bound of the live AUC", "endpoint"
        ),
        "citl": gauge("cohortlm_monitor_citl", "Live calibration-in-the-large (log-odds)", "endpoint"),
        "slope": gauge("cohortlm_monitor_calibration_slope", "Live calibration slope", "endpoint"),
        "oe_ratio": gauge("cohortlm_monitor_oe_ratio", "Observed over expected events", "endpoint"),
        "expected_auc": gauge(
            "cohortlm_monitor_expected_auc", "Expected AUC before outcomes (CBPE)", "endpoint"
        ),
        "n_outcomes": gauge("cohortlm_monitor_outcomes", "Served patients with an outcome", "endpoint"),
        "n_predictions": gauge("cohortlm_monitor_predictions", "Predictions in the window", "endpoint"),
    }
    gate_auc = gauge("cohortlm_monitor_gate_auc", "AUC the gate recorded at promotion", "endpoint")
    flags = {
        "auc_drop_significant": gauge(
            "cohortlm_monitor_auc_drop_significant",
            "1: the AUC dropped significantly below the gate's",
            "endpoint",
        ),
        "calibration_off": gauge(
            "cohortlm_monitor_calibration_off", "1: calibration outside the gate's tolerance", "endpoint"
        ),
        "degraded": gauge("cohortlm_monitor_degraded", "1: the endpoint degraded", "endpoint"),
    }
    for endpoint, r in result.get("endpoints", {}).items():
        for key, g in per_endpoint.items():
            value = r.get(key)
            if value is not None:
                g.labels(endpoint=endpoint, model_version=version).set(float(value))
        if r.get("gate", {}).get("auc") is not None:
            gate_auc.labels(endpoint=endpoint, model_version=version).set(float(r["gate"]["auc"]))
        for key, g in flags.items():
            g.labels(endpoint=endpoint, model_version=version).set(1.0 if r.get(key) else 0.0)
    psi_g = gauge("cohortlm_monitor_feature_psi", "Population stability index, training vs served", "feature")
    drift_g = gauge(
        "cohortlm_monitor_feature_drifted", "1: PSI past the threshold and the test rejects", "feature"
    )
    for feature, r in result.get("features", {}).items():
        if r.get("psi") is not None:
            psi_g.labels(feature=feature, model_version=version).set(float(r["psi"]))
        drift_g.labels(feature=feature, model_version=version).set(1.0 if r.get("drifted") else 0.0)
    retrain = result.get("retraining") or {}
    Gauge(
        "cohortlm_monitor_retraining_submitted",
        "1 when this monitor run submitted a retraining run",
        registry=registry,
    ).set(1.0 if retrain.get("submitted") else 0.0)
    Gauge(
        "cohortlm_monitor_last_run_timestamp_seconds", "Unix time the monitor last ran", registry=registry
    ).set(time.time() if finished_at is None else float(finished_at))
    return registry


def push_monitor_metrics(gateway_url: str, result: Mapping[str, Any], *, timeout: float = 10.0) -> None:
    """Push the monitor's gauges (job ``cohortlm-monitor``, grouped by study)."""
    from cohortlm.run.metrics import _push

    _push(
        gateway_url,
        job=MONITOR_JOB,
        study=str(result["study"]),
        registry=build_monitor_registry(result),
        add=False,
        timeout=timeout,
    )


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def write_report(folder: str | Path, result: Mapping[str, Any]) -> Path:
    """``monitor.json`` and ``index.html`` in ``folder``: figures per endpoint and feature only."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "monitor.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(name)}</td><td>{r['n_predictions']}</td><td>{r['n_outcomes']}</td>"
        f"<td>{_fmt(r['auc'])} ({_fmt(r['auc_ci_low'])}–{_fmt(r['auc_ci_high'])})</td>"
        f"<td>{_fmt(r['gate']['auc'])}</td><td>{_fmt(r['auc_drop_p'], '.2g')}</td>"
        f"<td>{_fmt(r['citl'], '.2f')}</td><td>{_fmt(r['slope'], '.2f')}</td>"
        f"<td>{_fmt(r['oe_ratio'], '.2f')}</td>"
        f"<td>{_fmt(r['brier'])}</td><td>{_fmt(r['expected_auc'])}</td>"
        f"<td>{'<b>degraded</b>' if r['degraded'] else 'ok'}</td></tr>"
        for name, r in result["endpoints"].items()
    )
    frows = "".join(
        f"<tr><td>{e(name)}</td><td>{_fmt(r['psi'])}</td><td>{_fmt(r['p_value'], '.2g')}</td>"
        f"<td>{r['n_groups']}</td><td>{'<b>drifted</b>' if r['drifted'] else 'ok'}</td></tr>"
        for name, r in result["features"].items()
    )
    retrain = result.get("retraining") or {}
    why = "".join(f"<li>{e(r)}</li>" for r in retrain.get("reasons", []))
    if retrain.get("submitted"):
        action = f"retraining run {e(str(retrain.get('run_id')))} submitted"
    else:
        action = e(str(retrain.get("skipped") or "no retraining needed"))
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>cohortlm monitor: {e(result["study"])} {e(result["model_version"])}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} td:first-child{{text-align:left}}</style>
</head><body>
<h1>Monitor: {e(result["study"])}, model {e(result["model_version"])}</h1>
<p>Window {e(result["window"]["from"])} to {e(result["window"]["to"])};
{result["n_predictions"]} predictions.</p>
<h2>Performance per endpoint</h2>
<table><tr><th>endpoint</th><th>predictions</th><th>outcomes</th><th>AUC (95 % CI)</th>
<th>AUC at promotion</th><th>drop p</th><th>intercept</th><th>slope</th><th>O/E</th>
<th>Brier</th><th>expected AUC</th>
<th></th></tr>{rows}</table>
<p>{e(result["assumptions"])}</p>
<h2>Input drift per feature</h2>
<table><tr><th>feature</th><th>PSI</th><th>p</th><th>groups (≥ 10 patients each)</th>
<th></th></tr>{frows}</table>
<h2>Retraining</h2><p>{action}</p><ul>{why}</ul>
</body></html>
"""
    (out / "index.html").write_text(page, encoding="utf-8")
    return out / "index.html"


def default_report_dir(now: float | None = None) -> Path:
    """``runs/monitor-<UTC time>/``, beside the run folders."""
    t = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return Path("runs") / f"monitor-{t.strftime('%Y%m%d-%H%M%S')}"


__all__ = [
    "RetrainRequest",
    "assess",
    "build_monitor_registry",
    "default_report_dir",
    "kfp_submitter",
    "maybe_retrain",
    "push_monitor_metrics",
    "reasons",
    "run_monitor",
    "write_report",
]
