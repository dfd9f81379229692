"""Least privilege: restricted pods, narrow RBAC, no API token where none is needed,
default-deny networking, no payload logging, no secret values in the manifests."""

from __future__ import annotations

import manifest_checks as mc
import pytest


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_every_pod_is_restricted(overlay):
    docs = mc.render(overlay)
    problems = mc.all_restricted_violations(docs)
    assert not problems, "\n".join(problems)
    # The check must have seen every workload, the InferenceService predictor included.
    seen = {where for d in docs for where, _ in mc.pod_specs(d)}
    assert seen >= {
        "InferenceService/cohortlm-ra predictor",
        "Deployment/cohortlm-feature-server",
        "StatefulSet/cohortlm-redis",
    }


def _pod(docs, kind):
    doc = next(d for d in docs if d["kind"] == kind)
    return doc, (doc["spec"]["predictor"] if kind == "InferenceService" else doc["spec"]["template"]["spec"])


@pytest.mark.parametrize("kind", ["InferenceService", "Deployment", "StatefulSet"])
@pytest.mark.parametrize(
    "breach",
    [
        lambda pod: pod["securityContext"].pop("runAsNonRoot"),
        lambda pod: pod["securityContext"].pop("seccompProfile"),
        lambda pod: pod["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
        lambda pod: pod["containers"][0]["securityContext"].pop("capabilities"),
        lambda pod: pod["containers"][0]["securityContext"].pop("readOnlyRootFilesystem"),
        lambda pod: pod["containers"][0]["resources"].pop("limits"),
        lambda pod: pod["containers"][0]["securityContext"].__setitem__("privileged", True),
        lambda pod: pod.__setitem__("hostNetwork", True),
        lambda pod: pod.setdefault("volumes", []).append({"name": "h", "hostPath": {"path": "/"}}),
    ],
    ids=[
        "runAsNonRoot",
        "seccomp",
        "allowPrivilegeEscalation",
        "capabilities",
        "readOnlyRootFilesystem",
        "limits",
        "privileged",
        "hostNetwork",
        "hostPath",
    ],
)
def test_removing_a_guard_is_caught(kind, breach):
    docs = mc.render("gpu-cluster")
    doc, pod = _pod(docs, kind)
    assert mc.all_restricted_violations([doc]) == []
    breach(pod)
    assert mc.all_restricted_violations([doc])


def test_unknown_workload_kind_fails_the_pod_check():
    doc = {"kind": "Rollout", "metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": []}}}}
    assert mc.all_restricted_violations([doc])


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_rbac_is_namespaced_and_narrow(overlay):
    docs = mc.render(overlay)
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, "nothing cluster-wide"
    roles = [d for d in docs if d["kind"] == "Role"]
    assert [r["metadata"]["name"] for r in roles] == ["cohortlm-pipeline-runner"]
    assert roles[0]["rules"] == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "verbs": ["create", "get", "list", "watch", "patch", "update"],
        }
    ]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    subjects = [s for b in bindings for s in b["subjects"]]
    runner = {"kind": "ServiceAccount", "name": "cohortlm-pipeline-runner", "namespace": "cohortlm"}
    assert subjects == [runner]


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_only_the_pipeline_runner_gets_an_api_token(overlay):
    docs = mc.render(overlay)
    for sa in (d for d in docs if d["kind"] == "ServiceAccount"):
        if sa["metadata"]["name"] != "cohortlm-pipeline-runner":
            assert sa.get("automountServiceAccountToken") is False, mc.resource_name(sa)
    for doc in docs:
        for where, spec in mc.pod_specs(doc):
            assert spec.get("automountServiceAccountToken") is False, where
            assert spec.get("serviceAccountName", "default") != "default", where
    predictor = next(d for d in docs if d["kind"] == "InferenceService")["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "cohortlm-predictor"


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_inference_service_contract(overlay):
    isvc = next(d for d in mc.render(overlay) if d["kind"] == "InferenceService")
    assert isvc["metadata"]["name"] == "cohortlm-ra"
    predictor = isvc["spec"]["predictor"]
    assert "logger" not in predictor, "payload logging would copy patient features to a sink"
    assert 0 <= predictor["canaryTrafficPercent"] <= 100
    container = predictor["containers"][0]
    assert container["name"] == "kserve-container"
    # docs/platform.md's rollback command patches env[0]; keep STORAGE_URI first.
    assert container["env"][0]["name"] == "STORAGE_URI"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STORAGE_URI"].startswith(("pvc://", "s3://", "gs://"))
    assert container["args"][:5] == ["serve", "--bundle", "/mnt/models", "--http-port", "8080"]
    # The server binds 127.0.0.1 unless told: the pod says so explicitly, and verifies signatures.
    args = container["args"]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    key = args[args.index("--verify-key") + 1]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in predictor["volumes"]}
    mount = mounts["bundle-verify-key"]
    assert key.startswith(mount["mountPath"] + "/") and mount["readOnly"] is True
    assert volumes["bundle-verify-key"]["secret"]["secretName"] == "cohortlm-bundle-verify-key"


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_network_is_deny_by_default(overlay):
    policies = {d["metadata"]["name"]: d for d in mc.render(overlay) if d["kind"] == "NetworkPolicy"}
    deny = policies["default-deny-all"]["spec"]
    assert deny["podSelector"] == {} and sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny and "egress" not in deny
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            assert rule.get("from") or rule.get("to"), f"{name} has a rule open to every peer"
    redis_in = policies["online-store-ingress"]["spec"]["ingress"][0]
    feature_server = {"matchLabels": {"app.kubernetes.io/component": "feature-server"}}
    assert redis_in["from"] == [{"podSelector": feature_server}]


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_no_secret_values_in_the_manifests(overlay):
    docs = mc.render(overlay)
    # Shipped Secrets are placeholders the user fills (docs/platform.md#secrets), never values.
    import base64

    for d in docs:
        if d["kind"] == "Secret":
            for key, value in d.get("data", {}).items():
                assert base64.b64decode(value).startswith(b"REPLACE_ME"), (d["metadata"]["name"], key)
            assert "stringData" not in d, d["metadata"]["name"]
    text = mc.render_text(overlay)
    assert "requirepass" not in text.replace("requirepass %s", "")
    assert "secretKeyRef" not in text, "secrets are mounted as files, not put into the environment"


def test_namespace_enforces_restricted():
    ns = next(d for d in mc.render("local") if d["kind"] == "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
