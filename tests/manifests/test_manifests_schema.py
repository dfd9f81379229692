"""Every rendered resource validates: core kinds against Kubernetes' OpenAPI schema (strict,
pinned release), custom resources against their vendored CRD schema; unknown kinds fail."""

from __future__ import annotations

import copy

import manifest_checks as mc
import pytest
import yaml


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_every_resource_validates(overlay):
    errors = [err for doc in mc.render(overlay) for err in mc.validate_resource(doc)]
    assert not errors, "\n".join(errors)


def test_kubernetes_version_is_supported_by_the_installed_validator():
    import kubernetes_validate.utils as kv_utils

    assert mc.KUBERNETES_VERSION in kv_utils.all_versions()


def test_every_custom_kind_in_use_has_a_vendored_schema_with_its_source():
    kinds = {(d["apiVersion"], d["kind"]) for o in mc.OVERLAYS for d in mc.render(o)}
    vendored = mc.crd_schemas()
    for key in (
        ("serving.kserve.io/v1beta1", "InferenceService"),
        (
            "monitoring.coreos.com/v1",
            "PodMonitor",
        ),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    ):
        assert key in kinds and key in vendored
    for path in mc.CRD_DIR.glob("*.yaml"):
        annotations = yaml.safe_load(path.read_text())["metadata"]["annotations"]
        assert "@" in annotations["cohortlm.io/vendored-from"], f"{path.name} does not name its source commit"


def test_unknown_kind_fails():
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "x"}}
    errors = mc.validate_resource(doc)
    assert errors and "no schema" in errors[0]


def _isvc(overlay="gpu-cluster"):
    return next(d for d in mc.render(overlay) if d["kind"] == "InferenceService")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["spec"]["predictor"].__setitem__("minReplica", 1),  # typo
        lambda d: d["spec"]["predictor"]["containers"][0].__setitem__("imagePullPolicyy", "Always"),
        lambda d: d["spec"]["predictor"]["containers"][0]["securityContext"].__setitem__("runAsUserX", 1),
        lambda d: d["spec"].__setitem__("predictorr", {}),
        lambda d: d["spec"]["predictor"].__setitem__("minReplicas", "two"),
        lambda d: d["spec"]["predictor"].__setitem__("scaleMetric", "gpu"),
        lambda d: d["spec"].pop("predictor"),
    ],
    ids=["typo", "container-field", "security-field", "spec-field", "type", "enum", "required"],
)
def test_inference_service_schema_rejects(mutate):
    doc = copy.deepcopy(_isvc())
    assert mc.validate_custom_resource(doc) == []
    mutate(doc)
    assert mc.validate_custom_resource(doc), "the mutated InferenceService passed"


def test_core_kind_strict_rejects_unknown_field():
    deployment = next(d for d in mc.render("local") if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    assert mc.validate_resource(deployment)


def test_prometheus_rule_schema_rejects_bad_duration():
    rule = next(d for d in mc.render("local") if d["kind"] == "PrometheusRule")
    rule["spec"]["groups"][1]["rules"][0]["for"] = "ten minutes"
    assert mc.validate_resource(rule)
