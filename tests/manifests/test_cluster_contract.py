"""Volumes, Secrets and ConfigMaps as one contract between the pipeline, the server and manifests/.

The compiled pipeline (the IR YAML `cohortlm compile` writes) and the
InferenceService refer to cluster objects by name; kustomize ships them. Both
directions are checked on every overlay: whatever is referred to is shipped, and
whatever is shipped is referred to by something (no orphan claim that documents a
volume nobody mounts). The model store layout, the default ``STORAGE_URI`` and
``serving/isvc.py`` are checked against a real promotion into a scratch store.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import manifest_checks as mc
import pytest
import yaml

#: Shipped objects that no pod spec mounts but a command reads by name (with the reader).
READ_BY_NAME = {
    ("ConfigMap", "cohortlm-study-ra-iorra"): "people and GitOps (the study spec as deployed)",
    ("ConfigMap", "cohortlm-pipeline-gpu-placement"): "cohortlm submit (gpu-cluster placement)",
    ("ConfigMap", "cohortlm-grafana-dashboard"): "the Grafana sidecar (label grafana_dashboard)",
}


@functools.cache
def _ir() -> tuple[dict, dict]:
    out = Path(sys.modules[__name__].__file__).parent / ".ir-contract.yaml"
    exe = Path(sys.executable).with_name("cohortlm")
    res = subprocess.run(
        [str(exe), "compile", "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    try:
        spec, platform = list(yaml.safe_load_all(out.read_text()))
    finally:
        out.unlink(missing_ok=True)
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _param_default(spec: dict, name: str) -> str:
    return spec["root"]["inputDefinitions"]["parameters"][name]["defaultValue"]


def _name(ref: dict, spec: dict, constant_key: str) -> str:
    """A name in the kfp-kubernetes platform spec: a constant, or a pipeline parameter's default."""
    if ref.get(constant_key):
        return ref[constant_key]
    param = ref.get(f"{constant_key}Parameter", ref)
    if "runtimeValue" in param:
        return param["runtimeValue"]["constant"]
    channel = param["componentInputParameter"]
    return _param_default(spec, channel.removeprefix("pipelinechannel--"))


def pipeline_references() -> set[tuple[str, str]]:
    """(kind, name) of every PVC, Secret and ConfigMap the compiled pipeline mounts, with defaults."""
    spec, executors = _ir()
    refs: set[tuple[str, str]] = set()
    for ex in executors.values():
        for m in ex.get("pvcMount", []):
            refs.add(("PersistentVolumeClaim", _name(m, spec, "pvcName")))
        for key in ("secretAsVolume", "secretAsEnv"):
            for m in ex.get(key, []):
                refs.add(("Secret", _name(m, spec, "secretName")))
        for key in ("configMapAsVolume", "configMapAsEnv"):
            for m in ex.get(key, []):
                refs.add(("ConfigMap", _name(m, spec, "configMapName")))
    # The Kubeflow Trainer TrainJob (use_trainer=True) mounts the model cache as well.
    from components.trainer import SHARED_VOLUME

    refs.add(("PersistentVolumeClaim", SHARED_VOLUME))
    return refs


def _pod_spec_references(pod: dict) -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    for vol in pod.get("volumes", []):
        if "secret" in vol:
            refs.add(("Secret", vol["secret"]["secretName"]))
        if "configMap" in vol:
            refs.add(("ConfigMap", vol["configMap"]["name"]))
        if "persistentVolumeClaim" in vol:
            refs.add(("PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"]))
    for c in pod.get("containers", []):
        for env in c.get("env", []):
            src = env.get("valueFrom", {})
            if "secretKeyRef" in src:
                refs.add(("Secret", src["secretKeyRef"]["name"]))
            if "configMapKeyRef" in src:
                refs.add(("ConfigMap", src["configMapKeyRef"]["name"]))
            if env["name"] == "STORAGE_URI" and env.get("value", "").startswith("pvc://"):
                refs.add(("PersistentVolumeClaim", env["value"].removeprefix("pvc://").split("/")[0]))
    return refs


def workload_references(docs: list[dict]) -> set[tuple[str, str]]:
    """(kind, name) referred to by the rendered workloads and the InferenceService."""
    refs: set[tuple[str, str]] = set()
    for doc in docs:
        path = mc._WORKLOAD_TEMPLATE_PATHS.get(doc["kind"])
        if path is not None:
            pod = doc
            for key in path:
                pod = pod[key]
            refs |= _pod_spec_references(pod)
        if doc["kind"] == "InferenceService":
            refs |= _pod_spec_references(doc["spec"]["predictor"])
    return refs


def shipped(docs: list[dict]) -> set[tuple[str, str]]:
    kinds = {"PersistentVolumeClaim", "Secret", "ConfigMap"}
    return {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in kinds}


def test_the_pipeline_mounts_the_volumes_secrets_and_config_it_needs():
    refs = pipeline_references()
    assert {
        ("PersistentVolumeClaim", "cohortlm-models"),
        ("PersistentVolumeClaim", "cohortlm-model-cache"),
        ("Secret", "cohortlm-bundle-signing-key"),
        ("Secret", "cohortlm-redis"),
        ("Secret", "cohortlm-feast-registry"),
        ("ConfigMap", "cohortlm-feature-store"),
    } <= refs, refs


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_everything_referred_to_is_shipped(overlay):
    docs = mc.render(overlay)
    have = shipped(docs)
    from serving.isvc import build_inference_service, store_uri, to_dict

    built = to_dict(build_inference_service("cohortlm-ra", storage_uri=store_uri("ra_iorra")))
    wanted = {
        "the compiled pipeline": pipeline_references(),
        "the rendered workloads": workload_references(docs),
        "serving/isvc.py": workload_references([built]),
    }
    for who, refs in wanted.items():
        missing = sorted(refs - have)
        assert not missing, (
            f"{overlay}: {who} refers to {missing}, which `kubectl kustomize manifests/overlays/{overlay}` "
            "does not ship; add it to manifests/base (or fix the name)"
        )


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_everything_shipped_is_referred_to(overlay):
    docs = mc.render(overlay)
    used = pipeline_references() | workload_references(docs) | set(READ_BY_NAME)
    orphans = sorted(shipped(docs) - used)
    assert not orphans, f"{overlay} ships {orphans}, which nothing mounts or reads; remove them or wire them"


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_claims_have_a_class_and_size_per_overlay(overlay):
    claims = {
        d["metadata"]["name"]: d["spec"] for d in mc.render(overlay) if d["kind"] == "PersistentVolumeClaim"
    }
    assert set(claims) == {"cohortlm-models", "cohortlm-model-cache"}
    for spec in claims.values():
        assert spec["resources"]["requests"]["storage"].endswith("Gi")
    if overlay == "gpu-cluster":
        assert all(
            s["accessModes"] == ["ReadWriteMany"] and s.get("storageClassName") for s in claims.values()
        )
        assert claims["cohortlm-model-cache"]["resources"]["requests"]["storage"] == "500Gi"
    else:
        assert all(s["accessModes"] == ["ReadWriteOnce"] for s in claims.values())


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_secrets_are_placeholders_every_consumer_refuses(overlay):
    import base64

    for doc in mc.render(overlay):
        if doc["kind"] != "Secret":
            continue
        for key, value in doc["data"].items():
            assert base64.b64decode(value).decode().startswith("REPLACE_ME"), (doc["metadata"]["name"], key)
    text = mc.render_text(overlay)
    # The Redis and feature-server start scripts refuse the placeholder, naming the Secret.
    assert text.count("still holds the shipped placeholder") >= 2


@pytest.mark.slow
def test_storage_uri_and_isvc_follow_the_model_store_layout(tmp_path):
    """A real promotion into a scratch store: the default STORAGE_URI and isvc.store_uri resolve in it."""
    from cohortlm.store.registry import champion, promote
    from pipelines.train_evaluate_promote import MODEL_STORE_PVC
    from serving.isvc import MODEL_STORE_CLAIM, store_uri

    assert MODEL_STORE_CLAIM == MODEL_STORE_PVC == "cohortlm-models"
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text(
        '{"kind": "baseline", "study": {"name": "ra_iorra"}, "model_version": "v1"}'
    )
    (bundle / "weights.bin").write_bytes(b"\0" * 16)
    store = tmp_path / "store"
    version = promote(bundle, store)
    current = champion(store, "ra_iorra")
    assert current is not None

    def resolve(uri: str) -> Path:
        assert uri.startswith(f"pvc://{MODEL_STORE_CLAIM}/"), uri
        return (store / uri.removeprefix(f"pvc://{MODEL_STORE_CLAIM}/")).resolve()

    for overlay in mc.OVERLAYS:
        isvc = next(d for d in mc.render(overlay) if d["kind"] == "InferenceService")
        env = {e["name"]: e.get("value") for e in isvc["spec"]["predictor"]["containers"][0]["env"]}
        assert env["STORAGE_URI"] == store_uri("ra_iorra")
        assert resolve(env["STORAGE_URI"]) == current.resolve()
    assert resolve(store_uri("ra_iorra", version)) == current.resolve()
    assert (resolve(store_uri("ra_iorra", version)) / "MANIFEST.json").is_file()
