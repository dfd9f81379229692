"""Each overlay renders with `kubectl kustomize`, and what it renders is consistent."""

from __future__ import annotations

import manifest_checks as mc
import pytest

COMPONENTS = {"predictor", "feature-server", "online-store", "pipeline", "monitor"}


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_overlay_renders(overlay):
    docs = mc.render(overlay)
    kinds = {d["kind"] for d in docs}
    for kind in ("Namespace", "InferenceService", "NetworkPolicy", "PodMonitor", "PrometheusRule"):
        assert kind in kinds, f"{overlay} renders no {kind}"


def test_base_renders():
    assert "kind: InferenceService" in mc.kustomize(mc.MANIFESTS / "base")


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_everything_in_the_namespace_and_labelled(overlay):
    for doc in mc.render(overlay):
        meta = doc["metadata"]
        if doc["kind"] != "Namespace":
            assert meta.get("namespace") == mc.NAMESPACE, f"{mc.resource_name(doc)} is not in {mc.NAMESPACE}"
        if doc["kind"] == "Namespace":
            continue
        labels = meta.get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "cohortlm", mc.resource_name(doc)
        assert labels.get("app.kubernetes.io/part-of") == "cohortlm", mc.resource_name(doc)
        namespace_wide = doc["kind"] == "NetworkPolicy" and doc["spec"]["podSelector"] == {}
        if not namespace_wide:
            component = labels.get("app.kubernetes.io/component")
            assert component in COMPONENTS, f"{mc.resource_name(doc)}: component label {component!r}"


def _by_kind_name(docs):
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_overlays_differ_where_they_should():
    local = _by_kind_name(mc.render("local"))
    gpu = _by_kind_name(mc.render("gpu-cluster"))
    isvc_local = local[("InferenceService", "cohortlm-ra")]["spec"]["predictor"]
    isvc_gpu = gpu[("InferenceService", "cohortlm-ra")]["spec"]["predictor"]
    assert isvc_local["minReplicas"] == isvc_local["maxReplicas"] == 1
    assert "nvidia.com/gpu" not in isvc_local["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in isvc_local and "tolerations" not in isvc_local
    assert isvc_gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert isvc_gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in isvc_gpu["tolerations"]
    assert isvc_gpu["maxReplicas"] > isvc_gpu["minReplicas"] >= 2
    assert isvc_gpu["scaleMetric"] == "concurrency"
    assert ("HorizontalPodAutoscaler", "cohortlm-feature-server") in gpu
    assert ("HorizontalPodAutoscaler", "cohortlm-feature-server") not in local
    # The JSON patches keep everything else of the container: image, probes, security.
    for isvc in (isvc_local, isvc_gpu):
        container = isvc["containers"][0]
        assert container["image"].startswith("ghcr.io/cohortlm/cohortlm-serving:0.1.0")
        assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert isvc_local["containers"][0]["image"].endswith(":0.1.0")
    assert isvc_gpu["containers"][0]["image"].endswith(":0.1.0-cuda")
    placement = gpu[("ConfigMap", "cohortlm-pipeline-gpu-placement")]["data"]
    assert placement["tolerationKey"] == "nvidia.com/gpu"


@pytest.mark.parametrize("overlay", ["local", "gpu-cluster"])
def test_grpc_port_is_served_and_reachable(overlay):
    """gRPC on in every overlay: the server's --grpc-port, the h2c Service on it, the policy admitting it.

    Knative allows one container port per revision: the InferenceService keeps exactly http1 8080.
    """
    docs = _by_kind_name(mc.render(overlay))
    predictor = docs[("InferenceService", "cohortlm-ra")]["spec"]["predictor"]
    (container,) = predictor["containers"]
    args = container["args"]
    assert "--grpc-port" in args
    grpc_port = int(args[args.index("--grpc-port") + 1])
    assert grpc_port != int(args[args.index("--http-port") + 1])
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http1", 8080)]
    service = docs[("Service", "cohortlm-ra-grpc")]["spec"]
    (port,) = service["ports"]
    assert port["targetPort"] == grpc_port and port["name"] == "h2c"
    assert port["appProtocol"] == "kubernetes.io/h2c"
    assert service["selector"]["serving.kserve.io/inferenceservice"] == "cohortlm-ra"
    policy = docs[("NetworkPolicy", "predictor-ingress")]["spec"]
    admitted = {p["port"] for rule in policy["ingress"] for p in rule.get("ports", [])}
    assert grpc_port in admitted
