"""The ``validate`` component (``components/validate/component.py``) on real kfp.dsl artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from componentlib import ds
from kfp.dsl import HTML, Artifact, Metrics

from cohortlm.errors import DataError
from components.validate.component import validate


def test_validate_logs_metrics_and_copies_the_report(chain, tmp_path):
    report, details, metrics = (
        HTML(uri=str(tmp_path / "report.html")),
        Artifact(uri=str(tmp_path / "details")),
        Metrics(uri=str(tmp_path / "m")),
    )
    validate.python_func(
        cohort=chain.cohort, study=chain.study, pushgateway="", run_id="", job_id="job-1",
        report=report, details=details, metrics=metrics,
    )  # fmt: skip
    assert metrics.metadata["failed"] == 0 and metrics.metadata["rows"] == 300
    assert metrics.metadata["expectations"] > 0
    assert details.metadata == metrics.metadata  # the same summary, seconds included
    assert Path(report.path).read_text() == (Path(details.path) / "validation.html").read_text()
    assert json.loads((Path(details.path) / "validation.json").read_text())["success"] is True


def test_validate_pushes_the_failing_rows_before_it_fails(chain, tmp_path, gateway):
    bad = pd.read_parquet(chain.cohort.path)
    bad.loc[:2, "ef"] = 99  # the study allows 5-80
    bad.to_parquet(tmp_path / "bad.parquet", index=False)
    report, details, metrics = (
        HTML(uri=str(tmp_path / "report.html")),
        Artifact(uri=str(tmp_path / "details")),
        Metrics(uri=str(tmp_path / "m")),
    )
    with pytest.raises(DataError, match=r"ef.*\(3 rows\)"):
        validate.python_func(
            cohort=ds(tmp_path / "bad.parquet"), study=chain.study, pushgateway=gateway.url, run_id="",
            job_id="job-2", report=report, details=details, metrics=metrics,
        )  # fmt: skip
    assert Path(report.path).is_file()  # the failed run still shows its report
    assert metrics.metadata == {} and details.metadata == {}
    push = gateway.only()
    assert push.path == "/metrics/job/cohortlm-validation/study/hf_readmission"
    assert push.value("cohortlm_run_info", run_id="job-2") == 1
    failing = {
        dict(k[1])["rule"]: v
        for k, v in push.samples().items()
        if k[0] == "cohortlm_validation_failures_total" and v
    }
    assert list(failing.values()) == [3] and "ef" in next(iter(failing))
