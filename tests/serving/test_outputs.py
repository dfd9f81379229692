"""One output schema (serving.outputs) from the spec: V1, V2 REST, gRPC and the metadata agree with it."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from serving_testlib import free_port, http_json, patient_instance

from serving.outputs import OutputSchema


def _v2_inputs(rows: list[dict], spec) -> list[dict]:
    inputs = []
    for f in spec.features:
        values = [r[f.name] for r in rows]
        if f.type == "categorical":
            inputs.append(
                {"name": f.name, "shape": [len(rows)], "datatype": "BYTES", "data": [v or "" for v in values]}
            )
        else:
            data = [None if v is None else float(v) for v in values]
            inputs.append({"name": f.name, "shape": [len(rows)], "datatype": "FP64", "data": data})
    return inputs


def test_the_schema_is_a_probability_then_a_decision_per_endpoint_of_the_spec(ra_spec):
    schema = OutputSchema.from_spec(ra_spec)
    expected = []
    for e in ra_spec.endpoint_names:
        expected += [
            {"name": e, "datatype": "FP64", "shape": [-1]},
            {"name": f"{e}_decision", "datatype": "BOOL", "shape": [-1]},
        ]
    assert schema.metadata() == expected
    proba = np.array([[0.25] * len(ra_spec.endpoint_names), [0.75] * len(ra_spec.endpoint_names)])
    body = schema.v1_rows(proba, proba >= 0.5)
    assert list(body) == ["predictions", "decisions"]
    assert body["predictions"][1] == dict.fromkeys(ra_spec.endpoint_names, 0.75)
    assert body["decisions"][0] == dict.fromkeys(ra_spec.endpoint_names, False)
    assert all(type(v) is float for v in body["predictions"][0].values())
    assert all(type(v) is bool for v in body["decisions"][0].values())
    outputs = schema.v2_outputs(proba, proba >= 0.5)
    assert [(o.name, o.datatype, o.shape) for o in outputs] == [
        (m["name"], m["datatype"], [2]) for m in expected
    ]
    assert outputs[0].data == [0.25, 0.75] and outputs[1].data == [False, True]


@pytest.mark.service
def test_v1_v2_rest_grpc_and_metadata_answer_the_schema(promoted, start_server, small_cohort, ra_spec):
    from kserve import InferenceGRPCClient
    from kserve.protocol.grpc.grpc_predict_v2_pb2 import ModelMetadataRequest
    from kserve.protocol.infer_type import InferInput, InferRequest

    schema = OutputSchema.from_spec(ra_spec)
    expected = [(t.name, t.datatype) for t in schema.tensors]
    grpc_port = free_port()
    server = start_server(promoted, "--watch-interval", "0", "--grpc-port", str(grpc_port))
    rows = [dict(patient_instance(small_cohort, ra_spec, i)) for i in range(3)]

    status, v1 = http_json(f"{server.url}/v1/models/ra_iorra:predict", {"instances": rows})
    assert status == 200, v1
    assert isinstance(v1, dict)
    for kind in ("predictions", "decisions"):
        assert [list(r) for r in v1[kind]] == [list(schema.endpoints)] * 3, kind

    status, v2 = http_json(f"{server.url}/v2/models/ra_iorra/infer", {"inputs": _v2_inputs(rows, ra_spec)})
    assert status == 200, v2
    assert isinstance(v2, dict)
    assert [(o["name"], o["datatype"]) for o in v2["outputs"]] == expected
    assert all(o["shape"] == [3] for o in v2["outputs"])

    status, meta = http_json(f"{server.url}/v2/models/ra_iorra")
    assert status == 200, meta
    assert isinstance(meta, dict)
    assert meta["outputs"] == schema.metadata()

    async def grpc_calls():
        client = InferenceGRPCClient(url=f"127.0.0.1:{grpc_port}", retries=2, timeout=20)
        try:
            inputs = []
            for f in ra_spec.features:
                values = [r[f.name] for r in rows]
                if f.type == "categorical":
                    arr = np.asarray([(v or "").encode() for v in values], dtype=np.object_)
                    inp = InferInput(f.name, [3], "BYTES")
                else:
                    arr = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
                    inp = InferInput(f.name, [3], "FP64")
                inp.set_data_from_numpy(arr, binary_data=True)
                inputs.append(inp)
            response = await client.infer(InferRequest("ra_iorra", infer_inputs=inputs))
            # kserve's client has no metadata call: its stub has (ModelMetadata, as Triton's clients use).
            metadata = await client._client_stub.ModelMetadata(ModelMetadataRequest(name="ra_iorra"))
        finally:
            await client.close()
        return response, metadata

    response, metadata = asyncio.run(grpc_calls())
    assert [(o.name, o.datatype) for o in response.outputs] == expected
    assert [(o.name, o.datatype) for o in metadata.outputs] == expected
    # The numbers agree across the protocols too.
    first = schema.endpoints[0]
    v1_first = [p[first] for p in v1["predictions"]]
    np.testing.assert_allclose(v2["outputs"][0]["data"], v1_first, rtol=0, atol=1e-12)
    np.testing.assert_allclose(response.outputs[0].as_numpy(), v1_first, rtol=0, atol=1e-12)
    assert v2["outputs"][1]["data"] == [d[first] for d in v1["decisions"]]
    server.stop()
