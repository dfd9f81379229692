"""The prediction log's writer process seen from the server's side, in process: a hung writer."""

from __future__ import annotations

import os
import signal
import time

from serving_testlib import patient_instance

from serving.log_writer import PredictionLog
from serving.metrics import PREDICTION_LOG_DROPPED, PREDICTION_LOG_WRITTEN
from serving.model import load_served_bundle

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
