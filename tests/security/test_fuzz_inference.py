"""Property-based fuzz of V1 and V2 bodies against the real server on 127.0.0.1.

Hypothesis builds bodies around the protocol's shape (right and wrong keys, values of
every JSON type, feature names mixed with planted ones) and plain arbitrary JSON. For
every body: no 5xx, an ``{"error": ...}`` on every 4xx, and no planted marker in the
answer. Bounded: a fixed number of examples per protocol, no shrinking past a deadline,
one server for the module.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from security_markers import PLANT_ID, PLANT_VALUE, leaks

pytestmark = pytest.mark.service

TOKEN = "s3cr3t-token-for-tests-0123456789"
EXAMPLES = 150
FEATURES = ["age", "sex", "esr", "tjc28", "methotrexate", "patient_id", "crp_mg_l", "smoking"]
DATATYPES = ["FP64", "FP32", "INT64", "BOOL", "BYTES", "FP16", "UINT8", PLANT_ID]

planted_text = st.sampled_from([PLANT_ID, f"{PLANT_ID}-x", PLANT_VALUE, f"id {PLANT_ID}"])
planted_number = st.sampled_from([float(PLANT_VALUE), -float(PLANT_VALUE), 987654321, 987654.3211])
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    planted_text,
    planted_number,
    st.sampled_from(["female", "male", "never", "", "1"]),
)
json_value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(planted_text, st.sampled_from(FEATURES)), inner, max_size=4),
    ),
    max_leaves=12,
)
key = st.one_of(st.sampled_from(FEATURES), planted_text)

v1_body = st.one_of(
    st.fixed_dictionaries({"instances": st.lists(st.dictionaries(key, json_value, max_size=8), max_size=4)}),
    st.fixed_dictionaries({"instances": json_value}),
    st.dictionaries(key, json_value, max_size=3),
    json_value,
)
tensor = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.sampled_from(FEATURES), planted_text, scalar),
        "shape": st.one_of(st.lists(st.integers(min_value=-2, max_value=3), max_size=3), json_value),
        "datatype": st.one_of(st.sampled_from(DATATYPES), scalar),
        "data": st.one_of(st.lists(scalar, max_size=4), json_value),
        "parameters": st.one_of(st.dictionaries(planted_text, scalar, max_size=2), json_value),
        PLANT_ID: scalar,
    },
)
v2_body = st.one_of(
    st.fixed_dictionaries(
        {"inputs": st.lists(tensor, max_size=4)},
        optional={"id": st.sampled_from(["1", "req"]), "parameters": json_value, "outputs": json_value},
    ),
    st.fixed_dictionaries({"inputs": json_value}),
    st.dictionaries(st.one_of(st.sampled_from(["inputs", "id", "parameters"]), planted_text), json_value),
    json_value,
)


class Client:
    """One keep-alive connection to the server; reconnects when the server closed it."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.sent = 0

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
        for attempt in range(2):
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                resp = self.conn.getresponse()
                self.sent += 1
                return resp.status, resp.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def client(locked_server):
    c = Client(locked_server.port)
    yield c
    c.conn.close()


def _check(client: Client, path: str, body: Any) -> None:
    raw = json.dumps(body).encode()
    status, answer = client.post(path, raw)
    assert status < 500, (status, answer, raw)
    assert not leaks(answer), (answer, raw)
    if status >= 400:
        assert isinstance(json.loads(answer).get("error"), str), answer


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(body=v1_body)
def test_v1_bodies(client, body):
    _check(client, "/v1/models/ra_iorra:predict", body)


@FUZZ
@given(body=v2_body)
def test_v2_bodies(client, body):
    _check(client, "/v2/models/ra_iorra/infer", body)


def test_fuzzing_left_the_log_clean(client, locked_server):
    start = time.monotonic()
    assert client.sent >= EXAMPLES, client.sent  # the properties ran their examples
    log = locked_server.log()
    assert not leaks(log) and "Traceback" not in log
    assert time.monotonic() - start < 5
