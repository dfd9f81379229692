"""serving.rest: framework validation errors as safe 400s, and the rate-limited rejection log."""

from __future__ import annotations

import logging

from serving.rest import RejectionLog, describe_validation_errors


def test_v2_validation_errors_name_the_path_and_never_the_value():
    errors = [
        {
            "loc": ("body", "InferenceRequest", "inputs", 0, "datatype"),
            "type": "missing",
            "input": "ZZPHI4242",
        },
        {"loc": ("body", "bytes"), "type": "bytes_type", "input": "ZZPHI4242"},
    ]
    assert describe_validation_errors(errors) == "inputs[0].datatype: required (rule: required)"
    unknown = [
        {"loc": ("body", "InferenceRequest", "parameters", "ZZPHI4242", "float"), "type": "float_type"}
    ]
    text = describe_validation_errors(unknown)
    assert text.startswith("parameters: has a field that is not valid") and "ZZPHI4242" not in text
    assert describe_validation_errors([{"loc": ("body", 0), "type": "json_invalid"}]) == (
        "body: is not valid JSON (rule: json)"
    )
    assert "inputs[0].shape[0]: must be an integer" in describe_validation_errors(
        [{"loc": ("body", "InferenceRequest", "inputs", 0, "shape", 0), "type": "int_parsing"}]
    )


def test_rejection_log_is_rate_limited_and_counts_what_it_left_out(caplog):
    now = [0.0]
    log = RejectionLog(logging.getLogger("t"), per_second=2, burst=3, clock=lambda: now[0])
    caplog.set_level(logging.WARNING)
    written = [log.record(400, "v1 predict", "x: bad (rule: type)") for _ in range(10)]
    assert written == [True] * 3 + [False] * 7
    now[0] += 1.0
    assert log.record(400, "v1 predict", "x: bad (rule: type)")
    assert "(7 more rejected requests not logged)" in caplog.records[-1].getMessage()
    assert len(caplog.records) == 4
