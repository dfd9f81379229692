"""The prediction log: pseudonyms only, bins not values, off the request path, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
import sqlalchemy as sa
from monitor_testlib import instances

from cohortlm.errors import UsageError
from serving.log_writer import PredictionLog
from serving.metrics import PREDICTION_LOG_DROPPED
from serving.model import load_served_bundle
from serving.prediction_log import LogStore, engine_for, pseudonym, read_pseudonym_key

KEY = b"k" * 32


def _dropped(reason: str) -> float:
    return PREDICTION_LOG_DROPPED.labels(reason=reason)._value.get()


def _feed(log, served, rows, ids):
    cols = served.schema.columns_from_instances(rows)
    proba = served.predictor.predict_columns(cols)
    log.record(served.version, served.schema.spec, served.endpoints, ids, proba, proba >= 0.5, cols)
    return proba


def test_pseudonym_is_keyed_and_stable():
    assert pseudonym(KEY, "P000001") == pseudonym(KEY, "P000001")
    assert pseudonym(KEY, "P000001") != pseudonym(b"x" * 32, "P000001")
    assert "P000001" not in pseudonym(KEY, "P000001") and len(pseudonym(KEY, 1)) == 64


def test_the_key_file_must_exist_and_be_long_enough(tmp_path, monkeypatch):
    monkeypatch.delenv("COHORTLM_PSEUDONYM_KEY_FILE", raising=False)
    with pytest.raises(UsageError, match="--pseudonym-key-file"):
        read_pseudonym_key(None)
    short = tmp_path / "k"
    short.write_text("secret")
    with pytest.raises(UsageError, match="fewer than 16 bytes") as err:
        read_pseudonym_key(short)
    assert "secret" not in str(err.value)


def test_unsupported_or_malformed_urls_are_usage_errors():
    with pytest.raises(UsageError, match="unsupported database"):
        engine_for("mysql://u:pw@h/db")
    with pytest.raises(UsageError, match="sqlite:///"):
        engine_for("not a url")


def test_predictions_are_logged_with_pseudonyms_and_bin_counts_only(log_url, baseline_bundle, small_cohort):
    served = load_served_bundle(baseline_bundle, require_manifest=False)
    table = small_cohort.iloc[:40].copy()
    # planted values: an id and a feature value no bin edge or statistic can produce
    table.loc[table.index[0], "patient_id"] = "PLANTED-ID-7391"
    table.loc[table.index[0], "bmi"] = 31.4159
    log = PredictionLog(log_url, KEY, flush_interval=0.05)
    try:
        _feed(log, served, instances(table, served.schema.spec), list(table["patient_id"]))
        assert log.flush(30)
    finally:
        log.close()
    store = LogStore(log_url)
    try:
        with store.engine.connect() as conn:
            query = "SELECT pseudonym, model_version, probabilities FROM predictions"
            rows = conn.execute(sa.text(query)).all()
            assert len(rows) == 40 and {r[1] for r in rows} == {served.version}
            first = np.frombuffer(bytes(rows[0][2]), dtype="<f8")
            assert first.shape == (len(served.endpoints),) and ((first >= 0) & (first <= 1)).all()
            assert {r[0] for r in rows} == {pseudonym(KEY, i) for i in table["patient_id"]}
            dump = []
            for t in ("predictions", "feature_bins", "outcomes", "reference_bins", "retraining_runs"):
                dump += [str(v) for r in conn.execute(sa.text(f"SELECT * FROM {t}")).all() for v in r]
        text = " ".join(dump)
        assert "PLANTED-ID-7391" not in text and "31.4159" not in text
        assert not any(str(i) in text for i in table["patient_id"])
        bins = store.served_bins(served.version, "0000-00-00", "9999-99-99")
        assert sum(bins["age"].values()) == 40 and set(bins) == set(served.schema.feature_names)
    finally:
        store.close()


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path, baseline_bundle, small_cohort):
    served = load_served_bundle(baseline_bundle, require_manifest=False)
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", KEY, max_queue=2)
    os.kill(log.writer.pid, signal.SIGSTOP)  # the writer stalls (a slow database)
    try:
        rows = instances(small_cohort.iloc[:5], served.schema.spec)
        before = _dropped("queue_full")
        start = time.perf_counter()
        for _ in range(10):
            _feed(log, served, rows, None)
        assert time.perf_counter() - start < 2.0  # never waits for the database
        assert _dropped("queue_full") - before >= 5 * 5
    finally:
        os.kill(log.writer.pid, signal.SIGCONT)
    assert log.flush(30)
    log.close()


def test_a_database_that_refuses_writes_drops_and_counts(tmp_path, baseline_bundle, small_cohort):
    served = load_served_bundle(baseline_bundle, require_manifest=False)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    log = PredictionLog(url, KEY, flush_interval=0.05)
    engine = engine_for(url)
    with engine.begin() as conn:  # the table the writer inserts into no longer takes its rows
        conn.execute(sa.text("DROP TABLE predictions"))
        conn.execute(sa.text("CREATE TABLE predictions (x INTEGER)"))
    engine.dispose()
    before = _dropped("write_failed")
    proba = _feed(log, served, instances(small_cohort.iloc[:7], served.schema.spec), None)
    assert np.isfinite(proba).all()
    deadline = time.monotonic() + 10
    while _dropped("write_failed") - before < 7 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _dropped("write_failed") - before == 7
    log.close(timeout=5)


def test_the_shipped_secret_placeholders_are_refused_naming_the_secret(tmp_path):
    key = tmp_path / "pseudonym.key"
    key.write_text("REPLACE_ME-see-docs-platform-md-secrets")
    with pytest.raises(UsageError, match="cohortlm-pseudonym-key"):
        read_pseudonym_key(key)
    url = tmp_path / "url"
    url.write_text("REPLACE_ME-see-docs-platform-md-secrets")
    with pytest.raises(UsageError, match="cohortlm-prediction-log"):
        engine_for(f"@{url}")
    url.write_text(f"sqlite:///{tmp_path / 'log.db'}\n")  # the mounted Secret's file holds the URL
    LogStore(f"@{url}").close()
    assert (tmp_path / "log.db").is_file()


def test_a_log_whose_database_is_down_at_start_still_serves_and_counts(baseline_bundle, small_cohort):
    from services import free_port

    served = load_served_bundle(baseline_bundle, require_manifest=False)
    log = PredictionLog(f"postgresql://cohortlm@127.0.0.1:{free_port()}/log", KEY, flush_interval=0.05)
    before = _dropped("write_failed")
    proba = _feed(log, served, instances(small_cohort.iloc[:3], served.schema.spec), None)
    assert np.isfinite(proba).all()
    deadline = time.monotonic() + 20
    while _dropped("write_failed") - before < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _dropped("write_failed") - before == 3
    log.close(timeout=5)
