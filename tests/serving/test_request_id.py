"""The V2 request id comes back in every answer: an id that is a patient's identifier is refused."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest
from serving_testlib import patient_instance

from serving.model import CohortModel
from serving.validation import MAX_REQUEST_ID

PATIENT = "P-4711-SECRET"


def _request(rows, spec, request_id, *, patient_ids=None) -> InferRequest:
    n = len(rows)
    inputs = []
    for f in spec.features:
        values = [r[f.name] for r in rows]
        if f.type == "categorical":
            inputs.append(InferInput(f.name, [n], "BYTES", [v or "" for v in values]))
        else:
            inputs.append(InferInput(f.name, [n], "FP64", [np.nan if v is None else v for v in values]))
    if patient_ids is not None:
        inputs.append(InferInput(spec.id_column, [n], "BYTES", patient_ids))
    return InferRequest(model_name="ra_iorra", infer_inputs=inputs, request_id=request_id)


@pytest.fixture()
def model(promoted):
    m = CohortModel("ra_iorra", promoted, watch_interval=0)
    m.load()
    return m


def _answer(model, request):
    return asyncio.run(model(request))[0]


def test_an_opaque_id_is_echoed(model, small_cohort, ra_spec):
    rows = [patient_instance(small_cohort, ra_spec, i) for i in range(2)]
    rid = str(uuid.uuid4())
    assert _answer(model, _request(rows, ra_spec, rid, patient_ids=["a-1", "b-2"])).id == rid


@pytest.mark.parametrize("given", [PATIENT, f" {PATIENT} "])
def test_an_id_equal_to_a_patient_id_of_the_request_is_refused(model, small_cohort, ra_spec, given):
    rows = [patient_instance(small_cohort, ra_spec, i) for i in range(2)]
    with pytest.raises(InvalidInput) as caught:
        _answer(model, _request(rows, ra_spec, given, patient_ids=["other-1", PATIENT]))
    message = str(caught.value)
    assert message.startswith("id: must not be a patient identifier") and "(rule: identifier)" in message
    assert PATIENT not in message


def test_an_overlong_id_is_refused(model, small_cohort, ra_spec):
    rows = [patient_instance(small_cohort, ra_spec, 0)]
    with pytest.raises(InvalidInput, match=r"id: must be at most 128 characters"):
        _answer(model, _request(rows, ra_spec, "x" * (MAX_REQUEST_ID + 1)))
    assert _answer(model, _request(rows, ra_spec, "x" * MAX_REQUEST_ID)).id == "x" * MAX_REQUEST_ID
