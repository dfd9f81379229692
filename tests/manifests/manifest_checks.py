"""Offline checks of the rendered Kubernetes manifests (manifests/overlays/*).

Everything here works without a cluster: ``kubectl kustomize`` renders an overlay,
kubernetes-validate checks core kinds against the OpenAPI schema of a pinned
Kubernetes release, and custom resources are checked against the openAPIV3Schema of
their CRDs, vendored under manifests/crds/ with their source version. A resource of a
kind with neither schema is an error, never a silent pass.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
CRD_DIR = MANIFESTS / "crds"
OVERLAYS = ("local", "gpu-cluster")
NAMESPACE = "cohortlm"

# The Kubernetes release the core kinds are validated against. kubernetes-validate
# 1.37.0 ships schemas for 1.25 to 1.37; 1.32 is the oldest minor the major managed
# services (GKE, EKS, AKS) still support, so whatever passes here applies there.
KUBERNETES_VERSION = "1.32.0"

# Kinds whose pod template the restricted-pod check knows how to find.
_WORKLOAD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}
# InferenceService components are pod specs inlined into the component spec.
_ISVC_COMPONENTS = ("predictor", "transformer", "explainer")

# Volume types Pod Security Standards `restricted` allows.
_RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


class ManifestError(AssertionError):
    """A rendered manifest broke a rule; the message names the resource and the rule."""


def kustomize(target: Path) -> str:
    """Renders a kustomization folder with ``kubectl kustomize`` and returns the YAML."""
    proc = subprocess.run(
        ["kubectl", "kustomize", str(target)], capture_output=True, text=True, check=False, timeout=120
    )
    if proc.returncode != 0:
        raise ManifestError(f"kubectl kustomize {target} failed:\n{proc.stderr.strip()}")
    return proc.stdout


@functools.cache
def _render_cached(overlay: str) -> str:
    return kustomize(MANIFESTS / "overlays" / overlay)


def render(overlay: str) -> list[dict[str, Any]]:
    """The resources of one overlay, as fresh dicts (callers may mutate them)."""
    return [doc for doc in yaml.safe_load_all(_render_cached(overlay)) if doc]


def render_text(overlay: str) -> str:
    """The rendered YAML of one overlay, as kubectl printed it."""
    return _render_cached(overlay)


def resource_name(doc: dict[str, Any]) -> str:
    """``Kind/name`` of a resource, for messages."""
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


# --- custom resources: vendored CRD schemas ------------------------------------------------


def _crd_node_to_json_schema(node: Any) -> Any:
    """Turns one node of a CRD structural schema into strict JSON Schema.

    The API server prunes unknown fields silently unless the schema says
    ``x-kubernetes-preserve-unknown-fields``; a manifest that relies on a field the CRD
    does not know is a bug (a typo, or a field of another version), so here every
    object with ``properties`` rejects extra keys. ``x-kubernetes-*`` markers, formats
    and defaults are kept as they are: jsonschema ignores keywords it does not know.
    CEL rules (``x-kubernetes-validations``) are not evaluated.
    """
    if isinstance(node, list):
        return [_crd_node_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _crd_node_to_json_schema(value) for key, value in node.items()}
    if node.get("nullable") is True and "type" in node:
        out["type"] = [node["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in node and "additionalProperties" not in node and not preserve:
        out["additionalProperties"] = False
    return out


@functools.lru_cache(maxsize=1)
def crd_schemas() -> dict[tuple[str, str], tuple[dict[str, Any], str]]:
    """Vendored CRD schemas by (apiVersion, kind), with the file they came from."""
    schemas: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if crd.get("kind") != "CustomResourceDefinition":
            raise ManifestError(f"{path} is not a CustomResourceDefinition")
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _crd_node_to_json_schema(version["schema"]["openAPIV3Schema"])
            schemas[(f"{group}/{version['name']}", kind)] = (schema, path.name)
    return schemas


_METADATA_KEYS = {"name", "namespace", "labels", "annotations"}


def validate_custom_resource(doc: dict[str, Any]) -> list[str]:
    """Errors of a custom resource against its vendored CRD schema.

    Raises:
        KeyError: no vendored CRD schema for the resource's apiVersion and kind.
    """
    schema, source = crd_schemas()[(doc.get("apiVersion", ""), doc.get("kind", ""))]
    errors = []
    # The CRD says only `metadata: {type: object}`; the API server checks ObjectMeta.
    # A rendered manifest needs no more than these keys, and anything else is suspect.
    extra_meta = set(doc.get("metadata", {})) - _METADATA_KEYS
    if extra_meta:
        errors.append(f"{resource_name(doc)}: unexpected metadata keys {sorted(extra_meta)}")
    if "status" in doc:
        errors.append(f"{resource_name(doc)}: a manifest must not carry status")
    validator = jsonschema.Draft7Validator(schema)
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in err.absolute_path) or "<root>"
        message = err.message
        if err.validator == "additionalProperties":
            message += (
                f" (not in the CRD schema {source}: a typo, a field of another version, or a field"
                " pruned from the vendored copy that must be copied from the same source first)"
            )
        errors.append(f"{resource_name(doc)}: {where}: {message}")
    return errors


# --- core kinds: kubernetes-validate -----------------------------------------------------------


def validate_resource(doc: dict[str, Any]) -> list[str]:
    """Errors of one rendered resource: core kinds strictly, custom kinds by their CRD.

    A kind that neither kubernetes-validate nor a vendored CRD knows is an error.
    """
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        return []
    except kv_utils.ValidationError as err:
        where = ".".join(str(p) for p in err.path) or "<root>"
        return [f"{resource_name(doc)}: {where}: {err.message} (Kubernetes {KUBERNETES_VERSION}, strict)"]
    except kv_utils.SchemaNotFoundError:
        pass
    try:
        return validate_custom_resource(doc)
    except KeyError:
        return [
            f"{resource_name(doc)}: no schema for apiVersion {doc.get('apiVersion')} kind "
            f"{doc.get('kind')}: not a core kind of Kubernetes {KUBERNETES_VERSION} and no CRD "
            f"vendored under manifests/crds/"
        ]


# --- restricted pods --------------------------------------------------------------------------


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = doc
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def pod_specs(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every pod spec inside a resource, with where it was found.

    Raises:
        ManifestError: a resource of a kind this check does not know carries
            containers, so its pods could not be checked.
    """
    kind = doc.get("kind", "")
    name = resource_name(doc)
    if kind in _WORKLOAD_TEMPLATE_PATHS:
        spec = _get(doc, _WORKLOAD_TEMPLATE_PATHS[kind])
        return [(name, spec)] if isinstance(spec, dict) else []
    if kind == "InferenceService":
        specs = []
        for component in _ISVC_COMPONENTS:
            spec = _get(doc, ("spec", component))
            if isinstance(spec, dict):
                specs.append((f"{name} {component}", spec))
        return specs
    if _mentions_containers(doc):
        raise ManifestError(f"{name}: holds containers but the restricted-pod check does not know {kind}")
    return []


def _mentions_containers(node: Any) -> bool:
    if isinstance(node, dict):
        return any(k in ("containers", "initContainers") or _mentions_containers(v) for k, v in node.items())
    if isinstance(node, list):
        return any(_mentions_containers(item) for item in node)
    return False


def restricted_violations(where: str, spec: dict[str, Any]) -> list[str]:
    """How a pod spec falls short of PSS `restricted` and of this project's pod rules.

    PSS restricted: non-root, no privilege escalation, all capabilities dropped,
    seccomp RuntimeDefault (or Localhost), no host namespaces, ports or paths, only the
    allowed volume types. This project also asks for runAsNonRoot and seccomp at pod
    level, a read-only root filesystem, and CPU and memory requests and limits on every
    container.
    """
    problems: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"{where}: {flag} is set")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUME_TYPES:
            problems.append(f"{where}: volume {volume.get('name')} uses {sorted(kinds)}")
    if pod_sc.get("runAsUser") == 0:
        problems.append(f"{where}: pod runAsUser is 0")
    # Stricter than PSS, which also accepts these per container: stated once for the
    # pod, they cover the containers KServe and Knative inject (storage initializer,
    # queue-proxy), and one line in the manifest decides, not a pod/container mix.
    if pod_sc.get("runAsNonRoot") is not True:
        problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
    if (pod_sc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append(f"{where}: pod securityContext.seccompProfile.type is not RuntimeDefault")
    containers = [
        (group, c)
        for group in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(group) or []
    ]
    if not containers:
        problems.append(f"{where}: no containers")
    for group, container in containers:
        cname = f"{where} {group}[{container.get('name')}]"
        sc = container.get("securityContext") or {}
        if sc.get("runAsNonRoot") is False:
            problems.append(f"{cname}: runAsNonRoot is false")
        if sc.get("runAsUser") == 0:
            problems.append(f"{cname}: runAsUser is 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{cname}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{cname}: privileged")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{cname}: capabilities.drop does not contain ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{cname}: adds capabilities {caps.get('add')}")
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            problems.append(f"{cname}: seccompProfile is Unconfined")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{cname}: readOnlyRootFilesystem is not true")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{cname}: hostPort {port['hostPort']}")
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(section) or {}):
                    problems.append(f"{cname}: no {resource} in resources.{section}")
    return problems


def all_restricted_violations(docs: list[dict[str, Any]]) -> list[str]:
    """Restricted-pod problems of every pod spec in a list of resources."""
    problems: list[str] = []
    for doc in docs:
        try:
            specs = pod_specs(doc)
        except ManifestError as err:
            problems.append(str(err))
            continue
        for where, spec in specs:
            problems.extend(restricted_violations(where, spec))
    return problems
