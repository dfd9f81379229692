"""The bad-input corpus: each case plants a value and an id, expects a clear refusal, finds neither.

Four groups, one parametrised test each:

* V1 and V2 requests against the real server on 127.0.0.1 (signature checked, bearer
  token required, model control off): the status, one error naming a field path, and
  neither planted marker in the response (body and headers) nor in the server's log;
* CLI commands (in process, through ``cohortlm.cli.main``): the exit code, one line on
  stderr, and neither marker in stdout, stderr, the log records or any file written;
* bundles (changed, re-manifested, unsigned, signed by another key): refused at load
  with exit 1 (or 2 for a bad key option), without a marker in the output.

Every case runs in a few seconds at most; the server ones in milliseconds.
"""

from __future__ import annotations

import http.client
import json
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from security_markers import PLANT_ID, PLANT_VALUE, leaks
from serving_testlib import COHORTLM, free_port, patient_instance

pytestmark = pytest.mark.service

TOKEN = "s3cr3t-token-for-tests-0123456789"
V1 = "/v1/models/ra_iorra:predict"
V2 = "/v2/models/ra_iorra/infer"
PV = float(PLANT_VALUE)


# ---------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class HttpCase:
    name: str
    path: str
    body: Any  # dict/list -> JSON; bytes/str -> sent as they are; Callable(instance, tensors) -> either
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    auth: bool = True
    method: str = "POST"
    content_type: str = "application/json"
    expect: str = ""  # a piece the error message must hold (the field path or the rule)


def _v2(tensors: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"inputs": tensors, **extra}


def _with(tensors: list[dict[str, Any]], name: str, **change: Any) -> list[dict[str, Any]]:
    return [dict(t, **change) if t["name"] == name else t for t in tensors]


HTTP_CASES = [
    # ---- V1
    HttpCase(
        "v1 unknown key holding a value",
        V1,
        lambda i, t: {"instances": [dict(i, **{PLANT_ID: PV})]},
        400,
        expect="instances[0]: has an unknown field",
    ),
    HttpCase(
        "v1 a value as a key",
        V1,
        lambda i, t: {"instances": [dict(i, **{PLANT_VALUE: 1})]},
        400,
        expect="rule: unknown",
    ),
    HttpCase(
        "v1 an id where a number belongs",
        V1,
        lambda i, t: {"instances": [dict(i, esr=PLANT_ID)]},
        400,
        expect="instances[0].esr",
    ),
    HttpCase(
        "v1 a value out of range",
        V1,
        lambda i, t: {"instances": [dict(i, age=PV)]},
        400,
        expect="rule: range",
    ),
    HttpCase(
        "v1 patient id only, no feature store",
        V1,
        {"instances": [{"patient_id": PLANT_ID}]},
        400,
        expect="rule: lookup",
    ),
    HttpCase("v1 patient id as a number", V1, {"instances": [{"patient_id": PV}]}, 400, expect="patient_id"),
    HttpCase(
        "v1 invalid JSON",
        V1,
        f'{{"instances": [{{"age": {PLANT_VALUE}, "id": "{PLANT_ID}"',
        400,
        expect="rule: json",
    ),
    HttpCase("v1 a list as the body", V1, [PLANT_ID, PV], 400, expect="body"),
    HttpCase("v1 instances as text", V1, {"instances": PLANT_ID}, 400, expect="instances"),
    HttpCase("v1 an instance as text", V1, {"instances": [PLANT_ID]}, 400, expect="instances[0]"),
    HttpCase(
        "v1 a category not in the spec",
        V1,
        lambda i, t: {"instances": [dict(i, sex=PLANT_ID)]},
        400,
        expect="rule: categories",
    ),
    HttpCase(
        "v1 binary feature with a value",
        V1,
        lambda i, t: {"instances": [dict(i, methotrexate=PV)]},
        400,
        expect="methotrexate",
    ),
    HttpCase(
        "v1 an object as a value",
        V1,
        lambda i, t: {"instances": [dict(i, age={PLANT_ID: PV})]},
        400,
        expect="instances[0].age",
    ),
    HttpCase("v1 no instances, another key", V1, {PLANT_ID: [PV]}, 400, expect="instances"),
    HttpCase("v1 JSON null", V1, b"null", 400, expect="body"),
    HttpCase("v1 empty instances", V1, {"instances": [], "note": PLANT_ID}, 400, expect="instances"),
    HttpCase(
        "v1 model name from the URL",
        f"/v1/models/{PLANT_ID}:predict",
        {"instances": [{"age": PV}]},
        404,
        expect="no model of that name",
    ),
    HttpCase(
        "v1 query string",
        V1 + f"?patient={PLANT_ID}&v={PLANT_VALUE}",
        lambda i, t: {"instances": [dict(i, age=PV)]},
        400,
        expect="rule: range",
    ),
    HttpCase(
        "v1 text/plain body", V1, f"{PLANT_ID} {PLANT_VALUE}", 400, content_type="text/plain", expect="body"
    ),
    HttpCase(
        "v1 too many instances",
        V1,
        lambda i, t: {"instances": [dict(i, age=PV)] * 1025},
        400,
        expect="rule: batch",
    ),
    HttpCase(
        "v1 bytes that are not UTF-8",
        V1,
        b'{"instances": [{"x": "\xff\xfe' + PLANT_ID.encode() + b'"}]}',
        400,
        expect="body",
    ),
    HttpCase(
        "v1 NaN literal",
        V1,
        f'{{"instances": [{{"age": NaN, "{PLANT_ID}": {PLANT_VALUE}}}]}}',
        400,
        expect="rule: json",
    ),
    HttpCase(
        "v1 a header holding an id",
        V1,
        {"instances": [{"age": PV}]},
        400,
        headers=(("X-Patient", PLANT_ID),),
        expect="instances[0]",
    ),
    HttpCase(
        "v1 a second instance bad",
        V1,
        lambda i, t: {"instances": [i, dict(i, crp_mg_l=PLANT_ID)]},
        400,
        expect="instances[1].crp",
    ),
    HttpCase(
        "v1 without the bearer token",
        V1,
        lambda i, t: {"instances": [dict(i, age=PV)]},
        401,
        auth=False,
        expect="rule: auth",
    ),
    HttpCase(
        "v1 with a wrong bearer token",
        V1,
        {"instances": [{"age": PV}]},
        401,
        auth=False,
        headers=(("Authorization", f"Bearer {PLANT_ID}"),),
        expect="rule: auth",
    ),
    HttpCase(
        "v1 explain checks the request first",
        "/v1/models/ra_iorra:explain",
        {"instances": [{"age": PV}]},
        400,
        expect="rule: range",
    ),
    HttpCase(
        "v1 a body over the size limit",
        V1,
        b'{"instances": ["' + PLANT_ID.encode() * 200_000 + b'"]}',
        413,
        expect="rule: size",
    ),
    # ---- V2
    HttpCase(
        "v2 tensor without datatype (the issue's curl)",
        V2,
        {"inputs": [{"name": "patient_id", "shape": [1], "data": [PLANT_ID]}]},
        400,
        expect="inputs[0].datatype: required",
    ),
    HttpCase(
        "v2 no inputs", V2, {"id": "x", "parameters": {"note": PLANT_ID}}, 400, expect="inputs: required"
    ),
    HttpCase(
        "v2 tensor without shape",
        V2,
        {"inputs": [{"name": "age", "datatype": "FP64", "data": [PV]}]},
        400,
        expect="inputs[0].shape",
    ),
    HttpCase("v2 inputs as an object", V2, {"inputs": {PLANT_ID: PV}}, 400, expect="inputs: must be a list"),
    HttpCase("v2 a list as the body", V2, [{"name": PLANT_ID, "data": [PV]}], 400, expect="body"),
    HttpCase(
        "v2 invalid JSON",
        V2,
        f'{{"inputs": [{{"name": "{PLANT_ID}", "data": [{PLANT_VALUE}',
        400,
        expect="rule: json",
    ),
    HttpCase(
        "v2 unknown tensor name",
        V2,
        lambda i, t: _v2([*t, {"name": PLANT_ID, "shape": [1], "datatype": "FP64", "data": [PV]}]),
        400,
        expect="rule: unknown",
    ),
    HttpCase(
        "v2 datatype holding an id",
        V2,
        lambda i, t: _v2(_with(t, "age", datatype=PLANT_ID)),
        400,
        expect="inputs[age]",
    ),
    HttpCase(
        "v2 shape that does not fit the data",
        V2,
        lambda i, t: _v2(_with(t, "age", shape=[2], data=[PV])),
        400,
        expect="inputs[age]",
    ),
    HttpCase(
        "v2 a value out of range", V2, lambda i, t: _v2(_with(t, "age", data=[PV])), 400, expect="rule: range"
    ),
    HttpCase(
        "v2 BYTES for a number",
        V2,
        lambda i, t: _v2(_with(t, "age", datatype="BYTES", data=[PLANT_ID])),
        400,
        expect="inputs[age]",
    ),
    HttpCase(
        "v2 a category not in the spec",
        V2,
        lambda i, t: _v2(_with(t, "sex", data=[PLANT_ID])),
        400,
        expect="rule: categories",
    ),
    HttpCase(
        "v2 a tensor given twice",
        V2,
        lambda i, t: _v2([*t, dict(t[0], data=[PV])]),
        400,
        expect="rule: unique",
    ),
    HttpCase(
        "v2 parameters with an odd value",
        V2,
        lambda i, t: _v2(t, parameters={PLANT_ID: {"v": PV}}),
        400,
        expect="parameters",
    ),
    HttpCase(
        "v2 shape holding text",
        V2,
        {"inputs": [{"name": "age", "shape": [PLANT_ID], "datatype": "FP64", "data": [PV]}]},
        400,
        expect="inputs[0].shape[0]",
    ),
    HttpCase(
        "v2 data as text",
        V2,
        {"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": PLANT_ID}]},
        400,
        expect="inputs[0].data",
    ),
    HttpCase(
        "v2 name as a number",
        V2,
        {"inputs": [{"name": PV, "shape": [1], "datatype": "FP64", "data": [PV]}]},
        400,
        expect="inputs[0].name",
    ),
    HttpCase(
        "v2 an extra key in a tensor",
        V2,
        lambda i, t: _v2(_with(t, "age", **{PLANT_ID: PV}, data=[PV])),
        400,
        expect="rule: range",
    ),
    HttpCase(
        "v2 FP16 in JSON",
        V2,
        {"inputs": [{"name": PLANT_ID, "shape": [1], "datatype": "FP16", "data": [PV]}]},
        400,
        expect="rule: protocol",
    ),
    HttpCase(
        "v2 binary body with a bogus header",
        V2,
        PLANT_ID.encode() * 4,
        400,
        headers=(("inference-header-content-length", "7"),),
        content_type="application/octet-stream",
        expect="rule: json",
    ),
    HttpCase(
        "v2 patient id only, no feature store",
        V2,
        {"inputs": [{"name": "patient_id", "shape": [1], "datatype": "BYTES", "data": [PLANT_ID]}]},
        400,
        expect="rule: lookup",
    ),
    HttpCase(
        "v2 model name from the URL",
        f"/v2/models/{PLANT_ID}/infer",
        lambda i, t: _v2(t),
        404,
        expect="no model of that name",
    ),
    HttpCase(
        "v2 model version from the URL",
        f"/v2/models/ra_iorra/versions/{PLANT_ID}/infer",
        lambda i, t: _v2(t),
        501,
    ),
    HttpCase(
        "v2 a required tensor left out",
        V2,
        lambda i, t: _v2([x for x in t if x["name"] != "esr"], id=PLANT_ID),
        400,
        expect="inputs[esr]: is required",
    ),
    HttpCase(
        "v2 NaN where not allowed",
        V2,
        lambda i, t: _v2(_with(t, "esr", data=["NaN"]), id=PLANT_ID),
        400,
        expect="inputs[esr]",
    ),
    HttpCase(
        "v2 unload without credentials",
        f"/v2/repository/models/{PLANT_ID}/unload",
        {},
        404,
        auth=False,
        expect="Not Found",
    ),
    HttpCase(
        "v2 unload with the token (control off)",
        "/v2/repository/models/ra_iorra/unload",
        {},
        404,
        expect="Not Found",
    ),
    HttpCase(
        "v2 load with the token (control off)",
        "/v2/repository/models/ra_iorra/load",
        {},
        404,
        expect="Not Found",
    ),
    HttpCase(
        "v2 without the bearer token",
        V2,
        lambda i, t: _v2(_with(t, "age", data=[PV])),
        401,
        auth=False,
        expect="rule: auth",
    ),
    HttpCase(
        "v2 readiness of an unknown model",
        f"/v2/models/{PLANT_ID}/ready",
        None,
        404,
        method="GET",
        expect="no model of that name",
    ),
]


def _send(server: Any, case: HttpCase, body: bytes) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Content-Type": case.content_type, **dict(case.headers)}
    if case.auth:
        headers["Authorization"] = f"Bearer {TOKEN}"
    try:
        conn.request(case.method, case.path, body=body if case.method == "POST" else None, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        header_text = "\n".join(f"{k}: {v}" for k, v in resp.getheaders())
        return resp.status, header_text, raw
    finally:
        conn.close()


def _valid_tensors(instance: dict[str, Any], spec: Any) -> list[dict[str, Any]]:
    out = []
    for f in spec.features:
        v = instance[f.name]
        if f.type == "categorical":
            out.append({"name": f.name, "shape": [1], "datatype": "BYTES", "data": [v or ""]})
        else:
            out.append({"name": f.name, "shape": [1], "datatype": "FP64", "data": [v]})
    return out


@pytest.mark.parametrize("case", HTTP_CASES, ids=[c.name for c in HTTP_CASES])
def test_http_case(case, locked_server, small_cohort, ra_spec):
    instance = patient_instance(small_cohort, ra_spec, 1)
    # A complete synthetic row with no missing value (V2 JSON has no null for numbers).
    from serving.validation import RequestSchema

    instance = {
        **RequestSchema(ra_spec).example_row(),
        **{k: v for k, v in instance.items() if v is not None},
    }
    body = case.body(instance, _valid_tensors(instance, ra_spec)) if callable(case.body) else case.body
    raw = (
        body
        if isinstance(body, bytes)
        else body.encode()
        if isinstance(body, str)
        else json.dumps(body).encode()
    )
    before = len(locked_server.log())
    status, headers, answer = _send(locked_server, case, raw)
    assert status == case.status, answer
    error = json.loads(answer)["error"]
    assert case.expect in error, error
    assert not leaks(answer) and not leaks(headers), answer
    # The server's log: at most one line for this request, no traceback, no marker.
    time.sleep(0.05)
    new = locked_server.log()[before:]
    assert not leaks(new), new
    assert "Traceback" not in new
    assert len([line for line in new.splitlines() if line.strip()]) <= 1, new


def test_the_whole_server_log_is_clean(locked_server):
    # After every case above (the session-scoped server saw all of them), and its start-up lines.
    log = locked_server.log()
    assert "serving ra_iorra" in log and "signature verified" in log and "bearer token required" in log
    assert not leaks(log) and "Traceback" not in log


# ---------------------------------------------------------------------------- CLI


@dataclass(frozen=True)
class CliCase:
    name: str
    make: Callable[[Path, dict[str, Any]], list[str]]  # (tmp folder, context) -> argv
    code: int
    expect: str = ""
    quick: float = 20.0  # seconds the command may take at most


def _csv(folder: Path, text: str, name: str = "scores.csv") -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _rows(label: str, n: int = 6) -> str:
    return "".join(f"{PLANT_ID}{i},{label},0.{i}1,0.{i}2\n" for i in range(n))


def _delong(csv: str) -> list[str]:
    return ["delong", "--csv", csv, "--label", "y", "--score-a", "a", "--score-b", "b"]


def _yaml(folder: Path, text: str, name: str = "spec.yaml") -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _study_with(folder: Path, change: Callable[[str], str]) -> str:
    from importlib import resources

    text = (resources.files("cohortlm") / "studies" / "ra_iorra.yaml").read_text(encoding="utf-8")
    return _yaml(folder, change(text))


def _alias_bomb(folder: Path) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
    return _yaml(folder, "\n".join(lines) + "\nname: ra\nfeatures:\n  - {name: age, type: *a11}\n")


def _validate_data(folder: Path, ctx: dict[str, Any]) -> str:
    table = ctx["cohort"].head(50).copy()
    table.loc[table.index[0], "age"] = PV
    table.loc[table.index[1], "patient_id"] = PLANT_ID
    path = folder / "cohort.csv"
    table.to_csv(path, index=False)
    return str(path)


CLI_CASES = [
    CliCase(
        "delong CSV without a header row",
        lambda d, c: _delong(_csv(d, f"{PLANT_ID},1,{PLANT_VALUE},0.2\n" + _rows("0"))),
        2,
        expect="the first row must be the header row",
    ),
    CliCase(
        "delong every label 1",
        lambda d, c: _delong(_csv(d, "id,y,a,b\n" + _rows("1"))),
        1,
        expect="holds only cases",
    ),
    CliCase(
        "delong every label 0",
        lambda d, c: _delong(_csv(d, "id,y,a,b\n" + _rows("0"))),
        1,
        expect="holds only controls",
    ),
    CliCase(
        "delong header only", lambda d, c: _delong(_csv(d, "id,y,a,b\n")), 1, expect="no row has a label"
    ),
    CliCase(
        "delong rows all incomplete",
        lambda d, c: _delong(_csv(d, f"id,y,a,b\n{PLANT_ID},,,\n")),
        1,
        expect="no row has a label",
    ),
    CliCase(
        "delong a score holding an id",
        lambda d, c: _delong(_csv(d, f"id,y,a,b\nx,1,{PLANT_ID},0.1\n" + _rows("0"))),
        2,
        expect="non-numeric",
    ),
    CliCase(
        "delong a label holding a value",
        lambda d, c: _delong(_csv(d, f"id,y,a,b\nx,{PLANT_VALUE},0.1,0.1\n" + _rows("1"))),
        2,
        expect="must hold 0 or 1",
    ),
    CliCase("delong an empty file", lambda d, c: _delong(_csv(d, "")), 2, expect="cannot read"),
    CliCase(
        "delong an unknown column",
        lambda d, c: [
            *_delong(_csv(d, "id,y,a,b\n" + _rows("1")))[:3],
            "--label",
            "outcome",
            "--score-a",
            "a",
            "--score-b",
            "b",
        ],
        2,
        expect="no column",
    ),
    CliCase(
        "report threshold 2", lambda d, c: ["report", str(d), "--threshold", "2"], 2, expect="between 0 and 1"
    ),
    CliCase(
        "report threshold a planted value",
        lambda d, c: ["report", str(d), "--threshold", PLANT_VALUE],
        2,
        expect="--threshold",
    ),
    CliCase(
        "report a run folder that is a file",
        lambda d, c: ["report", _csv(d, f"{PLANT_ID}\n")],
        2,
        expect="not a folder",
    ),
    CliCase(
        "study: an alias bomb",
        lambda d, c: ["validate", "--study", _alias_bomb(d), "--data", "x.csv"],
        2,
        expect="aliases",
        quick=5.0,
    ),
    CliCase(
        "study: over 1 MB",
        lambda d, c: [
            "validate",
            "--study",
            _yaml(d, "name: ra\n" + "# padding\n" * 150_000),
            "--data",
            "x.csv",
        ],
        2,
        expect="larger than",
        quick=5.0,
    ),
    CliCase(
        "study: a duplicate key",
        lambda d, c: [
            "validate",
            "--study",
            _study_with(d, lambda t: t.replace("name: ra_iorra", "name: ra_iorra\nname: ra_other", 1)),
            "--data",
            "x.csv",
        ],
        2,
        expect="given twice",
    ),
    CliCase(
        "study: operator as a list",
        lambda d, c: [
            "validate",
            "--study",
            _study_with(d, lambda t: t.replace('operator: ">"', 'operator: [">"]', 1)),
            "--data",
            "x.csv",
        ],
        2,
        expect="operator: must be one of",
    ),
    CliCase(
        "study: type as a mapping",
        lambda d, c: [
            "validate",
            "--study",
            _study_with(d, lambda t: t.replace("type: numeric", "type: {a: 1}", 1)),
            "--data",
            "x.csv",
        ],
        2,
        expect="type: must be one of",
    ),
    CliCase(
        "study: a Python tag",
        lambda d, c: [
            "validate",
            "--study",
            _yaml(d, f"name: !!python/object:os.system {PLANT_ID}\n"),
            "--data",
            "x.csv",
        ],
        2,
        expect="not valid YAML",
    ),
    CliCase(
        "study: nested too deep",
        lambda d, c: ["validate", "--study", _yaml(d, "a: " + "[" * 500 + "]" * 500), "--data", "x.csv"],
        2,
        expect="nested deeper",
    ),
    CliCase(
        "validate: planted values in the data",
        lambda d, c: ["validate", "--data", _validate_data(d, c), "--report", str(d / "report")],
        1,
        expect="failed",
        quick=120.0,
    ),
    CliCase(
        "validate: --report is a file",
        lambda d, c: ["validate", "--data", "x.csv", "--report", _csv(d, PLANT_ID)],
        2,
        expect="is a file",
    ),
    CliCase(
        "featurise: --out under a file",
        lambda d, c: ["featurise", "--raw", str(d), "--out", _csv(d, PLANT_ID, "blocker") + "/out.parquet"],
        2,
        expect="is a file, not a folder",
    ),
    CliCase(
        "synth: --out not writable",
        lambda d, c: ["synth", "--out", "/proc/cohortlm-test/raw"],
        2,
        expect="not writable",
    ),
    CliCase(
        "split: --out is a folder",
        lambda d, c: ["split", "--data", "x.csv", "--out", str(d)],
        2,
        expect="is a folder",
    ),
    CliCase("compile: --out is a folder", lambda d, c: ["compile", "--out", str(d)], 2, expect="is a folder"),
    CliCase(
        "run: policy alpha 2 fails at once",
        lambda d, c: [
            "run",
            "--profile",
            "smoke",
            "--out",
            str(d / "run"),
            "--policy",
            _yaml(d, "alpha: 2\n", "policy.yaml"),
        ],
        2,
        expect="'alpha'",
        quick=30.0,
    ),
    CliCase(
        "run: policy with an alias",
        lambda d, c: ["run", "--policy", _yaml(d, "a: &x 0.05\nalpha: *x\n", "policy.yaml")],
        2,
        expect="aliases",
        quick=30.0,
    ),
    CliCase(
        "run: policy with a duplicate key",
        lambda d, c: ["run", "--policy", _yaml(d, "alpha: 0.05\nalpha: 0.5\n", "policy.yaml")],
        2,
        expect="given twice",
        quick=30.0,
    ),
    CliCase(
        "run: --out under a file",
        lambda d, c: ["run", "--out", _csv(d, PLANT_ID, "blocker") + "/run"],
        2,
        expect="is a file, not a folder",
        quick=30.0,
    ),
    CliCase(
        "serve: token file missing",
        lambda d, c: ["serve", "--bundle", str(c["champion"]), "--auth-token-file", str(d / "none")],
        2,
        expect="--auth-token-file",
    ),
    CliCase(
        "serve: token file too short",
        lambda d, c: [
            "serve",
            "--bundle",
            str(c["champion"]),
            "--auth-token-file",
            _csv(d, PLANT_ID[:5], "token"),
        ],
        2,
        expect="at least 16 characters",
    ),
    CliCase(
        "serve: model control without a token",
        lambda d, c: ["serve", "--bundle", str(c["champion"]), "--enable-model-control"],
        2,
        expect="needs --auth-token-file",
    ),
    CliCase(
        "serve: gRPC on the HTTP port",
        lambda d, c: ["serve", "--bundle", str(c["champion"]), "--http-port", "8080", "--grpc-port", "8080"],
        2,
        expect="give gRPC its own port",
    ),
    CliCase(
        "serve: a host that does not resolve",
        lambda d, c: ["serve", "--bundle", str(c["champion"]), "--host", "no-such-host.invalid"],
        2,
        expect="--host",
    ),
    CliCase(
        "serve: verify key missing",
        lambda d, c: ["serve", "--bundle", str(c["champion"]), "--verify-key", str(d / "none.pem")],
        2,
        expect="--verify-key",
    ),
    CliCase(
        "signing-key: --out is a file",
        lambda d, c: ["signing-key", "--out", _csv(d, PLANT_ID)],
        2,
        expect="is a file",
    ),
    CliCase("gate-power: --n 1e9", lambda d, c: ["gate-power", "--n", "1000000000"], 2, expect="'--n'"),
    CliCase(
        "gate-power: --reps 1e9", lambda d, c: ["gate-power", "--reps", "1000000000"], 2, expect="'--reps'"
    ),
    CliCase(
        "gate-power: policy names an endpoint the study lacks",
        lambda d, c: ["gate-power", "--reps", "5", "--policy", _yaml(d, "primary: [nope]\n")],
        2,
        expect="does not have",
    ),
    CliCase(
        "run: policy names an endpoint the study lacks",
        lambda d, c: ["run", "--profile", "smoke", "--policy", _yaml(d, "margins: {nope: 0.05}\n")],
        2,
        expect="does not have: nope",
        quick=30.0,
    ),
    CliCase(
        "run: the RA study with a flat CSV",
        lambda d, c: ["run", "--profile", "smoke", "--data", _csv(d, f"patient_id,age\n{PLANT_ID},{PV}\n")],
        2,
        expect="ra_visits",
        quick=30.0,
    ),
    CliCase(
        "run: --out equal to --data",
        lambda d, c: ["run", "--profile", "smoke", "--data", str(d), "--out", str(d)],
        2,
        expect="overlaps --data",
        quick=30.0,
    ),
    CliCase(
        "runs compare: truncated summary.json",
        lambda d, c: ["runs", "compare", str(_damaged_run(d, "a")), str(_damaged_run(d, "b")), "--json"],
        2,
        expect="summary.json",
    ),
]


def _damaged_run(folder: Path, name: str) -> Path:
    """A run folder whose summary.json was cut off mid-way."""
    run = folder / name
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"run_id": PLANT_ID, "study": "ra_iorra"})[:20])
    return run


def _files_text(folder: Path, skip: set[str]) -> str:
    parts = []
    for p in folder.rglob("*"):
        if p.is_file() and p.name not in skip and p.stat().st_size < 5_000_000:
            parts.append(p.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def cli_context(small_cohort, signed_champion) -> dict[str, Any]:
    return {"cohort": small_cohort, "champion": signed_champion}


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.name for c in CLI_CASES])
def test_cli_case(case, cli_context, tmp_path, capsys, caplog, monkeypatch):
    from cohortlm.cli import main

    monkeypatch.chdir(tmp_path)
    inputs = tmp_path / "in"
    inputs.mkdir()
    argv = case.make(inputs, cli_context)
    written_before = {p.name for p in inputs.rglob("*")}
    caplog.set_level(logging.DEBUG)
    start = time.monotonic()
    code = main(argv)
    took = time.monotonic() - start
    out, err = capsys.readouterr()
    assert code == case.code, (out, err)
    assert took < case.quick, f"took {took:.1f}s"
    assert case.expect in err, err
    assert "Traceback" not in err and "unexpected" not in err, err
    for text in (out, err, caplog.text):
        assert not leaks(text), text
    # Files the command wrote (reports, outputs); the planted inputs themselves are skipped.
    assert not leaks(_files_text(tmp_path, written_before)), "a written file holds a planted marker"


# ---------------------------------------------------------------------------- bundles


def _copy_champion(champion: Path, folder: Path) -> Path:
    target = folder / "bundle"
    shutil.copytree(champion.resolve(), target)
    return target


def _tamper(bundle: Path) -> None:
    data = bytearray((bundle / "model.skops").read_bytes())
    data[-10] ^= 0x01
    (bundle / "model.skops").write_bytes(bytes(data))


def _tamper_and_remanifest(bundle: Path) -> None:
    from cohortlm.store.registry import write_manifest

    _tamper(bundle)
    write_manifest(bundle)  # the project's own function, as the attacker in the issue did


def _remove_signature(bundle: Path) -> None:
    (bundle / "MANIFEST.sig").unlink()


def _resign_with_other_key(keys: dict[str, Path]) -> Callable[[Path], None]:
    def change(bundle: Path) -> None:
        from cohortlm.models.bundle import sign_bundle
        from cohortlm.store.registry import write_manifest

        _tamper(bundle)
        write_manifest(bundle)
        sign_bundle(bundle, keys["other_private"])

    return change


def _add_file(bundle: Path) -> None:
    (bundle / "notes.txt").write_text(f"{PLANT_ID} {PLANT_VALUE}\n", encoding="utf-8")


def _plant_in_thresholds(bundle: Path) -> None:
    from cohortlm.store.registry import write_manifest

    (bundle / "thresholds.json").write_text(json.dumps({PLANT_ID: PV}), encoding="utf-8")
    write_manifest(bundle)


BUNDLE_CASES = [
    ("a changed byte, manifest regenerated", _tamper_and_remanifest, "public", 1, "files differ"),
    ("a changed byte, manifest kept", _tamper, "public", 1, "modified after promotion"),
    ("the signature removed", _remove_signature, "public", 1, "has no MANIFEST.sig"),
    ("signed again with another key", "other", "public", 1, "signed with another key"),
    ("a file added", _add_file, "public", 1, "added: notes.txt"),
    ("thresholds planted, manifest regenerated", _plant_in_thresholds, "public", 1, "files differ"),
    ("verified with another public key", None, "other_public", 1, "signed with another key"),
    ("the public key is a private key", None, "private", 2, "not a public key"),
]


@pytest.mark.parametrize("name,change,key,code,expect", BUNDLE_CASES, ids=[c[0] for c in BUNDLE_CASES])
def test_bundle_case(name, change, key, code, expect, signed_champion, keys, tmp_path, capsys, caplog):
    from cohortlm.cli import main

    bundle = _copy_champion(signed_champion, tmp_path)
    if change == "other":
        _resign_with_other_key(keys)(bundle)
    elif change is not None:
        change(bundle)
    caplog.set_level(logging.DEBUG)
    port = str(free_port())
    result = main(["serve", "--bundle", str(bundle), "--http-port", port, "--verify-key", str(keys[key])])
    out, err = capsys.readouterr()
    assert result == code, err
    assert expect in err, err
    assert "Traceback" not in err
    for text in (out, err, caplog.text):
        assert not leaks(text), text


def test_a_signed_copy_serves_and_an_unsigned_promotion_is_refused(baseline_bundle, keys, tmp_path, capsys):
    from cohortlm.cli import main
    from cohortlm.store.registry import promote

    store = tmp_path / "models"
    promote(baseline_bundle, store)  # no key: unsigned
    champion = str(store / "ra_iorra" / "champion")
    result = main(
        ["serve", "--bundle", champion, "--http-port", str(free_port()), "--verify-key", str(keys["public"])]
    )
    assert result == 1
    assert "has no MANIFEST.sig" in capsys.readouterr().err


def test_promote_refuses_a_public_key_as_the_signing_key(baseline_bundle, keys, tmp_path, capsys):
    from cohortlm.cli import main

    result = main(
        [
            "promote",
            "--bundle",
            str(baseline_bundle),
            "--store",
            str(tmp_path / "m"),
            "--signing-key",
            str(keys["public"]),
        ]
    )
    assert result == 2
    assert "not an unencrypted elliptic-curve private key" in capsys.readouterr().err
    # Nothing was promoted.
    assert not (tmp_path / "m" / "ra_iorra" / "champion").exists()


# ---------------------------------------------------------------------------- the port


def test_a_port_in_use_exits_2_at_once(signed_champion):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        start = time.monotonic()
        proc = subprocess.run(
            [str(COHORTLM), "serve", "--bundle", str(signed_champion), "--http-port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    assert f"port {port} on 127.0.0.1 in use" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert took < 15, took


def test_corpus_size():
    n = len(HTTP_CASES) + len(CLI_CASES) + len(BUNDLE_CASES) + 3
    assert n >= 60, n


def test_unloading_takes_readiness_away_and_needs_the_token(signed_champion, token_file, tmp_path):
    from serving_testlib import ServerProcess

    server = ServerProcess(
        signed_champion,
        tmp_path / "control.log",
        "--watch-interval",
        "0",
        "--auth-token-file",
        str(token_file),
        "--enable-model-control",
    )
    try:
        server.wait_ready()
        assert "on 127.0.0.1:" in server.log()  # the default listen address
        unload = HttpCase("unload", "/v2/repository/models/ra_iorra/unload", {}, 200, auth=False)
        assert _send(server, unload, b"{}")[0] == 401
        assert _send(server, HttpCase("unload", unload.path, {}, 200), b"{}")[0] == 200
        ready = HttpCase("ready", "/v2/health/ready", None, 503, method="GET", auth=False)
        status, _, answer = _send(server, ready, b"")
        assert status == 503 and b"not ready" in answer
    finally:
        server.stop()
