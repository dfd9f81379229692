"""The monitor's KFP component runs the same monitor on the model store's champion."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from monitor_testlib import instances

from cohortlm.errors import UsageError
from components.monitor.component import monitor
from serving.log_writer import PredictionLog
from serving.model import load_served_bundle


def test_the_component_reports_and_pushes(promoted, small_cohort, tmp_path, gateway):
    served = load_served_bundle(promoted)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = PredictionLog(url, b"k" * 32, flush_interval=0.05)
    rows = instances(small_cohort.iloc[:60], served.schema.spec)
    cols = served.schema.columns_from_instances(rows)
    proba = served.predictor.predict_columns(cols)
    log.record(served.version, served.schema.spec, served.endpoints, None, proba, proba >= 0.5, cols)
    log.close()
    report, result = (
        SimpleNamespace(path=str(tmp_path / "r.html")),
        SimpleNamespace(path=str(tmp_path / "r.json")),
    )
    store = promoted.parent.parent
    alarm = monitor.python_func(
        prediction_log=url, model_store=str(store), study="ra_iorra", report=report, result=result,
        pushgateway=gateway.url,
    )  # fmt: skip
    figures = json.loads((tmp_path / "r.json").read_text())
    assert alarm is False and figures["n_predictions"] == 60 and figures["model_version"] == served.version
    assert "<h1>Monitor: ra_iorra" in (tmp_path / "r.html").read_text()
    assert "cohortlm_monitor_last_run_timestamp_seconds" in gateway.only().body
    with pytest.raises(UsageError, match="no champion of study other"):
        monitor.python_func(
            prediction_log=url, model_store=str(store), study="other", report=report, result=result
        )
