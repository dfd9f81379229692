"""The ``report_run_outcome`` component (``components/report_run_outcome/component.py``)
on real kfp.dsl artifacts.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from flat_cohort import hf_study

from components.report_run_outcome.component import report_run_outcome


@dataclass
class _Status:
    """What KFP hands an exit handler (dsl.PipelineTaskFinalStatus); the component reads ``state``."""

    state: str
    pipeline_job_resource_name: str = "projects/p/locations/l/pipelineJobs/job-4"
    pipeline_task_name: str = "cohortlm"
    error_code: int | None = None
    error_message: str | None = None


def test_report_run_outcome(gateway):
    text = yaml.safe_dump(hf_study())
    assert (
        report_run_outcome.python_func(
            status=_Status("SUCCEEDED"), study_yaml=text, pushgateway="", run_id="r", job_id=""
        )
        == "skipped SUCCEEDED"
    )
    got = report_run_outcome.python_func(
        status=_Status("FAILED"), study_yaml=text, pushgateway=gateway.url, run_id="", job_id="job-4"
    )
    assert got == "pushed FAILED"
    push = gateway.only()
    assert push.method == "POST" and push.path == "/metrics/job/cohortlm-run/study/hf_readmission"
    assert push.value("cohortlm_run_failed") == 1 and push.value("cohortlm_run_info", run_id="job-4") == 1
