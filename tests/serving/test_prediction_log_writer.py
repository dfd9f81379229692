"""The prediction log's writer process seen from the server's side, in process: a hung writer, and the
feature columns it rebuilds from V1 instances."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
from serving_testlib import patient_instance

from serving.log_writer import PredictionLog, _decode, _encode
from serving.metrics import PREDICTION_LOG_DROPPED, PREDICTION_LOG_WRITTEN
from serving.model import load_served_bundle
from serving.prediction_log import _Item, pack, with_columns
from serving.validation import RequestSchema

KEY = b"k" * 32
REASONS = ("queue_full", "write_failed", "writer_died")


def _counts() -> tuple[float, float]:
    dropped = sum(PREDICTION_LOG_DROPPED.labels(reason=r)._value.get() for r in REASONS)
    return PREDICTION_LOG_WRITTEN._value.get(), dropped


def test_closing_with_a_hung_writer_returns_and_accounts_for_every_prediction(
    tmp_path, baseline_bundle, small_cohort, ra_spec
):
    served = load_served_bundle(baseline_bundle, require_manifest=False)
    rows = [patient_instance(small_cohort, ra_spec, i) for i in range(4)]
    cols = served.schema.columns_from_instances(rows)
    proba = served.predictor.predict_columns(cols)
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}", KEY, flush_interval=0.05)
    written0, dropped0 = _counts()
    os.kill(log.writer.pid, signal.SIGSTOP)  # hung: the socket to it fills, then the queue
    try:
        for _ in range(5000):
            log.record(served.version, ra_spec, served.endpoints, None, proba, proba >= 0.5, cols)
        time.sleep(1.0)
        start = time.monotonic()
        log.close(timeout=2)
        assert time.monotonic() - start < 15
    finally:
        if log.writer.process.poll() is None:
            os.kill(log.writer.pid, signal.SIGCONT)
    written, dropped = _counts()
    assert dropped - dropped0 > 0
    assert (written - written0) + (dropped - dropped0) == 5000 * 4


def test_the_writer_rebuilds_the_columns_the_server_checked_from_v1_instances(small_cohort, ra_spec):
    schema = RequestSchema(ra_spec)
    rows = [patient_instance(small_cohort, ra_spec, i) for i in range(40)]
    numeric = [f for f in ra_spec.features if f.type != "categorical"]
    text = [f for f in ra_spec.features if f.type == "categorical"]
    for i, row in enumerate(rows):  # the spellings a check accepts: ints, booleans, NaN, absent, None
        f = numeric[i % len(numeric)]
        if row[f.name] is not None and f.type in ("integer", "binary"):
            row[f.name] = bool(row[f.name]) if f.type == "binary" else int(row[f.name])
        nullable = [g for g in ra_spec.features if g.max_missing > 0]
        if nullable:
            g = nullable[i % len(nullable)]
            if i % 3 == 0:
                row.pop(g.name)
            elif i % 3 == 1:
                row[g.name] = None
            else:
                row[g.name] = float("nan")
        row[ra_spec.id_column] = f"P{i:06d}"
    checked = schema.columns_from_instances(rows)
    segment = pack([_Item("v", ra_spec, (), 0.0, None, np.zeros((40, 1)), np.zeros((40, 1)), {}, rows)])[0]
    rebuilt = with_columns(segment, schema).columns
    assert list(rebuilt) == list(checked) and text
    for name, column in checked.items():
        assert rebuilt[name].dtype == column.dtype, name
        if column.dtype == object:
            assert rebuilt[name].tolist() == column.tolist(), name
        else:
            np.testing.assert_array_equal(rebuilt[name], column, err_msg=name)


def test_a_request_reaches_the_writer_as_it_was_recorded(baseline_bundle, small_cohort, ra_spec):
    served = load_served_bundle(baseline_bundle, require_manifest=False)
    rows = [patient_instance(small_cohort, ra_spec, i) for i in range(3)]
    columns = served.schema.columns_from_instances(rows)
    columns["bmi"][1] = np.nan
    proba = served.predictor.predict_columns(columns)
    for ids, instances in ((["P1", None, ""], None), (None, rows)):
        blob = _encode(12.5, served.version, ids, proba, proba >= 0.5, columns, instances)
        item = _decode(blob, {served.version: ra_spec})
        assert (item.version, item.spec, item.ts, item.ids) == (served.version, ra_spec, 12.5, ids)
        np.testing.assert_array_equal(item.proba, proba)
        np.testing.assert_array_equal(item.decisions, proba >= 0.5)
        assert item.instances == instances
        if instances is None:
            assert list(item.columns) == list(columns)
            for name, column in columns.items():
                assert item.columns[name].dtype == column.dtype
                np.testing.assert_array_equal(item.columns[name], column, err_msg=name)  # NaN == NaN
        else:
            assert item.columns == {}
