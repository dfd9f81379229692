"""The InferenceService built with the kserve SDK: CRD schema offline, privacy, rollout calls."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from cohortlm.errors import DataError, UsageError
from serving import isvc as isvc_module
from serving.isvc import build_inference_service, create_or_patch, promote_after_smoke_test, rollback, to_dict

REPO = Path(__file__).resolve().parents[2]


def _strict(node):
    """CRD structural schema -> JSON Schema that rejects fields the CRD does not know."""
    if isinstance(node, list):
        return [_strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if node.get("nullable") is True and "type" in node:
        out["type"] = [node["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def isvc_schema():
    paths = sorted((REPO / "manifests" / "crds").glob("*inferenceservice*.yaml"))
    assert paths, "the KServe InferenceService CRD is vendored under manifests/crds/"
    crd = yaml.safe_load(paths[0].read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    return _strict(version["schema"]["openAPIV3Schema"])


def test_built_object_validates_against_the_crd(isvc_schema):
    doc = to_dict(
        build_inference_service("cohortlm-ra", storage_uri="pvc://cohortlm-models/ra_iorra/champion")
    )
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft7Validator(isvc_schema).iter_errors(doc)
    ]
    assert errors == []
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert doc["kind"] == "InferenceService"


def test_a_field_the_crd_does_not_know_is_caught(isvc_schema):
    doc = to_dict(build_inference_service("cohortlm-ra", storage_uri="pvc://m/x"))
    doc["spec"]["predictor"]["canaryTrafficPercentage"] = 10
    assert list(jsonschema.Draft7Validator(isvc_schema).iter_errors(doc))


def test_privacy_and_restricted_pod():
    doc = to_dict(
        build_inference_service("cohortlm-ra", storage_uri="s3://bucket/ra", canary_traffic_percent=25)
    )
    predictor = doc["spec"]["predictor"]
    assert "logger" not in predictor, "payload logging must stay off"
    assert predictor["canaryTrafficPercent"] == 25
    assert predictor["automountServiceAccountToken"] is False
    pod = predictor["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = predictor["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["readOnlyRootFilesystem"] is True
    assert container["image"] == "ghcr.io/cohortlm/cohortlm-serving:0.1.0"
    assert container["ports"][0]["containerPort"] == 8080
    assert {"name": "STORAGE_URI", "value": "s3://bucket/ra"} in container["env"]
    assert container["resources"]["limits"] and container["resources"]["requests"]


def test_matches_the_kustomize_base():
    base = yaml.safe_load((REPO / "manifests" / "base" / "inferenceservice.yaml").read_text())
    built = to_dict(
        build_inference_service(base["metadata"]["name"], storage_uri="pvc://cohortlm-models/champion")
    )
    want, got = base["spec"]["predictor"], built["spec"]["predictor"]
    for key in ("serviceAccountName", "automountServiceAccountToken", "securityContext", "volumes"):
        assert got[key] == want[key], key
    got_c, want_c = got["containers"][0], want["containers"][0]
    for key in ("image", "args", "ports", "resources", "livenessProbe", "readinessProbe"):
        assert got_c[key] == want_c[key], key
    # Ours may be stricter than the base, never looser.
    assert got_c["securityContext"].items() >= want_c["securityContext"].items()
    assert {e["name"] for e in got_c["env"]} == {e["name"] for e in want_c["env"]}


@pytest.mark.parametrize(
    "kwargs",
    [{"name": "Cohort_LM"}, {"canary_traffic_percent": 101}, {"storage_uri": "/local/path"}],
)
def test_bad_arguments(kwargs):
    args = {"name": "cohortlm-ra", "storage_uri": "pvc://m/x", **kwargs}
    with pytest.raises(UsageError):
        build_inference_service(args.pop("name"), **args)


class RecordingClient:
    """Stands in for the cluster's API (not for the model): records calls, knows which services exist."""

    def __init__(self, existing=()):
        self.existing = set(existing)
        self.calls = []

    def get(self, name=None, namespace=None, **kwargs):
        self.calls.append(("get", name))
        if name not in self.existing:
            raise RuntimeError("Exception when calling CustomObjectsApi: (404) Reason: Not Found")
        return {"metadata": {"name": name}}

    def create(self, inferenceservice, namespace=None, **kwargs):
        self.calls.append(("create", inferenceservice.metadata.name))
        self.existing.add(inferenceservice.metadata.name)

    def patch(self, name, inferenceservice, namespace=None, **kwargs):
        percent = inferenceservice.spec.predictor.canary_traffic_percent
        self.calls.append(("patch", name, percent))


def test_create_then_patch():
    client = RecordingClient()
    obj = build_inference_service("cohortlm-ra", storage_uri="pvc://m/v1", canary_traffic_percent=10)
    assert create_or_patch(obj, client=client) == "created"
    assert create_or_patch(obj, client=client) == "patched"
    assert client.calls[-1] == ("patch", "cohortlm-ra", 10)


def test_other_errors_are_not_taken_for_absence():
    class Forbidden(RecordingClient):
        def get(self, name=None, namespace=None, **kwargs):
            raise RuntimeError("(403) Forbidden")

    with pytest.raises(RuntimeError, match="403"):
        create_or_patch(build_inference_service("cohortlm-ra", storage_uri="pvc://m/v1"), client=Forbidden())


def test_smoke_test_decides_rollout_or_rollback():
    client = RecordingClient({"cohortlm-ra"})
    assert promote_after_smoke_test("cohortlm-ra", smoke_test=lambda: None, client=client)
    assert client.calls[-1] == ("patch", "cohortlm-ra", 100)

    def failing():
        raise DataError("answered HTTP 500")

    with pytest.raises(DataError, match="rolled back"):
        promote_after_smoke_test("cohortlm-ra", smoke_test=failing, client=client)
    assert client.calls[-1] == ("patch", "cohortlm-ra", 0)
    rollback("cohortlm-ra", client=client)
    assert client.calls[-1] == ("patch", "cohortlm-ra", 0)


def test_smoke_test_against_a_dead_url():
    from serving_testlib import free_port

    with pytest.raises(DataError, match="did not answer"):
        isvc_module.smoke_test(f"http://127.0.0.1:{free_port()}", "ra_iorra", {"age": 50}, timeout=2)


@pytest.mark.service
def test_rollout_champion_smoke_tests_a_real_server(promoted, start_server, second_bundle):
    """The smoke test runs against a real local server; the cluster API is the recording client."""
    from cohortlm.store import registry

    store = promoted.parent.parent
    version = registry.champion_version(store, "ra_iorra")
    server = start_server(promoted, "--watch-interval", "0")
    client = RecordingClient({"cohortlm-ra"})
    assert isvc_module.rollout_champion(version, model_store=store, smoke_url=server.url, client=client)
    assert client.calls[-2:] == [("patch", "cohortlm-ra", 10), ("patch", "cohortlm-ra", 100)]

    from serving_testlib import free_port

    v2 = registry.promote(second_bundle, store)
    with pytest.raises(DataError, match="rolled back"):
        isvc_module.rollout_champion(
            v2, model_store=store, smoke_url=f"http://127.0.0.1:{free_port()}", client=client
        )
    assert client.calls[-1] == ("patch", "cohortlm-ra", 0)
    with pytest.raises(UsageError, match="not in the model store"):
        isvc_module.rollout_champion("0000deadbeef", model_store=store, client=client)
