"""The InferenceService on a cluster: build it with the kserve SDK, roll it out as a canary, roll back.

The object matches ``manifests/base/inferenceservice.yaml`` (the kustomize base
that platform engineers apply): a custom predictor container running
``cohortlm serve --bundle /mnt/models`` on port 8080 (V2 gRPC on 8081), the bundle fetched by
KServe's storage initializer from ``STORAGE_URI``, restricted pod security,
requests and limits, and no ``logger`` (KServe's payload logger would copy
every request, i.e. patient features, to a sink).

Rollout, as the pipeline's promote step runs it::

    isvc = build_inference_service("cohortlm-ra", storage_uri="pvc://cohortlm-models/ra_iorra/versions/abc",
                                   canary_traffic_percent=10)
    create_or_patch(isvc, client=KServeClient())      # the new revision takes 10% of traffic
    promote_after_smoke_test("cohortlm-ra", namespace="cohortlm",
                             smoke_test=lambda: smoke_test(url, "ra_iorra", row))
    # passes -> canaryTrafficPercent 100 (full rollout); fails -> 0 (the previous revision keeps serving)

``rollback`` sets ``canaryTrafficPercent`` to 0: KServe sends all traffic back
to the last revision that was rolled out fully.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from kubernetes.client import (
    V1Capabilities,
    V1Container,
    V1ContainerPort,
    V1EmptyDirVolumeSource,
    V1EnvVar,
    V1HTTPGetAction,
    V1ObjectMeta,
    V1PodSecurityContext,
    V1Probe,
    V1ResourceRequirements,
    V1SeccompProfile,
    V1SecretVolumeSource,
    V1SecurityContext,
    V1Volume,
    V1VolumeMount,
)

from cohortlm.contracts import SERVING_IMAGE
from cohortlm.errors import DataError, UsageError

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
DEFAULT_IMAGE = SERVING_IMAGE
DEFAULT_NAMESPACE = "cohortlm"
MODEL_MOUNT = "/mnt/models"
HTTP_PORT = 8080
GRPC_PORT = 8081
RUN_AS = 10001
VERIFY_KEY_SECRET = "cohortlm-bundle-verify-key"
VERIFY_KEY_MOUNT = "/var/run/secrets/cohortlm/bundle-verify-key"
#: The prediction log's pseudonym key and database URL (manifests/base/monitoring.yaml): the
#: canary a promotion deploys logs its predictions like the base InferenceService does.
PSEUDONYM_KEY_SECRET = "cohortlm-pseudonym-key"
PSEUDONYM_KEY_MOUNT = "/var/run/secrets/cohortlm/pseudonym-key"
PREDICTION_LOG_SECRET = "cohortlm-prediction-log"
PREDICTION_LOG_MOUNT = "/var/run/secrets/cohortlm/prediction-log"
#: The PersistentVolumeClaim holding the model store (manifests/base/volumes.yaml).
MODEL_STORE_CLAIM = "cohortlm-models"


def store_uri(study: str, version: str | None = None, *, claim: str = MODEL_STORE_CLAIM) -> str:
    """The ``STORAGE_URI`` of a study's champion, or of one promoted version, on the store claim.

    The path below the claim is the model store layout of :mod:`cohortlm.store.registry`
    (``<study>/champion``, ``<study>/versions/<version>``), so the predictor mounts
    exactly what the promote step wrote.
    """
    from cohortlm.store.registry import CHAMPION, VERSIONS

    return f"pvc://{claim}/{study}/{CHAMPION if version is None else f'{VERSIONS}/{version}'}"


class IsvcClient(Protocol):
    """The part of ``kserve.KServeClient`` used here (a test can pass its own)."""

    def get(self, name: str | None = None, namespace: str | None = None, **kwargs: Any) -> Any: ...

    def create(self, inferenceservice: Any, namespace: str | None = None, **kwargs: Any) -> Any: ...

    def patch(self, name: str, inferenceservice: Any, namespace: str | None = None, **kwargs: Any) -> Any: ...


def build_inference_service(
    name: str,
    *,
    storage_uri: str,
    namespace: str = DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    canary_traffic_percent: int | None = 10,
    service_account: str = "cohortlm-predictor",
    min_replicas: int = 2,
    max_replicas: int = 2,
    cpu: tuple[str, str] = ("1", "2"),
    memory: tuple[str, str] = ("2Gi", "4Gi"),
    feature_server_url: str | None = "http://cohortlm-feature-server:6566",
    labels: Mapping[str, str] | None = None,
    verify_key_secret: str = VERIFY_KEY_SECRET,
) -> Any:
    """The V1beta1InferenceService for a promoted bundle.

    Args:
        name: the InferenceService name (DNS-1035: lower case, digits, '-').
        storage_uri: where KServe's storage initializer fetches the bundle
            (``pvc://``, ``s3://``, ``gs://``...); it lands in ``/mnt/models``.
        namespace: the namespace.
        image: the serving image.
        canary_traffic_percent: share of traffic (0-100) for the new revision; None
            rolls out at once.
        service_account: the predictor's ServiceAccount (no token mounted).
        min_replicas: minimum replicas.
        max_replicas: maximum replicas.
        cpu: (request, limit).
        memory: (request, limit).
        feature_server_url: Feast feature server for patient_id-only requests, or None.
        labels: extra metadata labels.
        verify_key_secret: the Secret holding ``verify-key.pem``, the public key the bundle's
            signature is checked with (the server refuses an unsigned or re-signed bundle).

    Raises:
        UsageError: a name or percentage is out of range.
    """
    from kserve import V1beta1InferenceService, V1beta1InferenceServiceSpec

    _check_service_args(name, canary_traffic_percent, storage_uri)
    container = _predictor_container(
        image, _predictor_env(storage_uri, feature_server_url), cpu=cpu, memory=memory
    )
    predictor = _predictor_spec(
        container,
        service_account=service_account,
        replicas=(min_replicas, max_replicas),
        canary_traffic_percent=canary_traffic_percent,
        verify_key_secret=verify_key_secret,
    )
    meta_labels = {
        "app.kubernetes.io/name": "cohortlm",
        "app.kubernetes.io/component": "predictor",
        "app.kubernetes.io/managed-by": "cohortlm",
        **dict(labels or {}),
    }
    return V1beta1InferenceService(
        api_version=API_VERSION,
        kind=KIND,
        metadata=V1ObjectMeta(
            name=name,
            namespace=namespace,
            labels=meta_labels,
            # The canary revision gets its own URL (latest-<name>-predictor...) for the smoke test.
            annotations={"serving.kserve.io/enable-tag-routing": "true"},
        ),
        spec=V1beta1InferenceServiceSpec(predictor=predictor),
    )


def _check_service_args(name: str, canary_traffic_percent: int | None, storage_uri: str) -> None:
    """Refuse a name that is no DNS-1035 label, a percentage outside 0-100, a storage path that is no URI."""
    import re

    if not re.match(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", name):
        raise UsageError(f"InferenceService name {name!r} must be a DNS-1035 label (lower case, digits, '-')")
    if canary_traffic_percent is not None and not 0 <= canary_traffic_percent <= 100:
        raise UsageError("canary_traffic_percent must lie between 0 and 100")
    if not storage_uri or "://" not in storage_uri:
        raise UsageError(f"storage_uri must be a URI such as pvc://claim/path, got {storage_uri!r}")


def _predictor_env(storage_uri: str, feature_server_url: str | None) -> list[V1EnvVar]:
    """The server's environment: the bundle's URI, the feature server if any, Hugging Face offline."""
    env = [V1EnvVar(name="STORAGE_URI", value=storage_uri)]
    if feature_server_url:
        env.append(V1EnvVar(name="COHORTLM_FEATURE_SERVER_URL", value=feature_server_url))
    env += [
        V1EnvVar(name="HF_HUB_OFFLINE", value="1"),
        V1EnvVar(name="TRANSFORMERS_OFFLINE", value="1"),
        V1EnvVar(name="HOME", value="/tmp"),
    ]
    return env


def _predictor_container(
    image: str, env: list[V1EnvVar], *, cpu: tuple[str, str], memory: tuple[str, str]
) -> V1Container:
    """The kserve-container: ``serve`` on the mounted bundle, probes, resources, a locked-down context."""
    probe_path = {"live": "/v2/health/live", "ready": "/v2/health/ready"}
    return V1Container(
        name="kserve-container",
        image=image,
        image_pull_policy="Always",
        args=[
            "serve",
            "--bundle",
            MODEL_MOUNT,
            "--http-port",
            str(HTTP_PORT),
            # The server binds 127.0.0.1 unless told; probes and the mesh reach the pod IP.
            "--host",
            "0.0.0.0",
            # V2 gRPC for Service cohortlm-ra-grpc (Knative routes only the one port, http1).
            "--grpc-port",
            str(GRPC_PORT),
            "--verify-key",
            f"{VERIFY_KEY_MOUNT}/verify-key.pem",
            "--prediction-log",
            f"@{PREDICTION_LOG_MOUNT}/url",
            "--pseudonym-key-file",
            f"{PSEUDONYM_KEY_MOUNT}/pseudonym.key",
        ],
        env=env,
        ports=[V1ContainerPort(name="http1", container_port=HTTP_PORT, protocol="TCP")],
        liveness_probe=V1Probe(
            http_get=V1HTTPGetAction(path=probe_path["live"], port=HTTP_PORT),
            period_seconds=10,
            timeout_seconds=2,
            failure_threshold=3,
        ),
        readiness_probe=V1Probe(
            http_get=V1HTTPGetAction(path=probe_path["ready"], port=HTTP_PORT),
            period_seconds=5,
            timeout_seconds=2,
            failure_threshold=3,
        ),
        resources=V1ResourceRequirements(
            requests={"cpu": cpu[0], "memory": memory[0]}, limits={"cpu": cpu[1], "memory": memory[1]}
        ),
        security_context=V1SecurityContext(
            run_as_non_root=True,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=V1Capabilities(drop=["ALL"]),
            seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
        ),
        volume_mounts=[
            V1VolumeMount(name="tmp", mount_path="/tmp"),
            V1VolumeMount(name="bundle-verify-key", mount_path=VERIFY_KEY_MOUNT, read_only=True),
            V1VolumeMount(name="pseudonym-key", mount_path=PSEUDONYM_KEY_MOUNT, read_only=True),
            V1VolumeMount(name="prediction-log", mount_path=PREDICTION_LOG_MOUNT, read_only=True),
        ],
    )


def _predictor_spec(
    container: V1Container,
    *,
    service_account: str,
    replicas: tuple[int, int],
    canary_traffic_percent: int | None,
    verify_key_secret: str,
) -> Any:
    """The predictor: the container, (min, max) replicas, canary share, pod security, volumes, no token."""
    from kserve import V1beta1PredictorSpec

    return V1beta1PredictorSpec(
        service_account_name=service_account,
        automount_service_account_token=False,
        min_replicas=replicas[0],
        max_replicas=replicas[1],
        canary_traffic_percent=canary_traffic_percent,
        security_context=V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=RUN_AS,
            run_as_group=RUN_AS,
            fs_group=RUN_AS,
            seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
        ),
        containers=[container],
        volumes=[
            V1Volume(name="tmp", empty_dir=V1EmptyDirVolumeSource(size_limit="1Gi")),
            V1Volume(
                name="bundle-verify-key",
                secret=V1SecretVolumeSource(secret_name=verify_key_secret, default_mode=0o440),
            ),
            V1Volume(
                name="pseudonym-key",
                secret=V1SecretVolumeSource(secret_name=PSEUDONYM_KEY_SECRET, default_mode=0o440),
            ),
            V1Volume(
                name="prediction-log",
                secret=V1SecretVolumeSource(secret_name=PREDICTION_LOG_SECRET, default_mode=0o440),
            ),
        ],
        # No `logger`: payload logging stays off (privacy); never set it here.
    )


def to_dict(isvc: Any) -> dict[str, Any]:
    """The object as the API server receives it (camelCase keys, no None fields)."""
    from kserve import ApiClient

    out: dict[str, Any] = ApiClient().sanitize_for_serialization(isvc)
    return out


def _traffic_patch(name: str, namespace: str, percent: int) -> Any:
    from kserve import V1beta1InferenceService, V1beta1InferenceServiceSpec, V1beta1PredictorSpec

    return V1beta1InferenceService(
        api_version=API_VERSION,
        kind=KIND,
        metadata=V1ObjectMeta(name=name, namespace=namespace),
        spec=V1beta1InferenceServiceSpec(predictor=V1beta1PredictorSpec(canary_traffic_percent=percent)),
    )


def _default_client() -> IsvcClient:
    from kserve import KServeClient

    client: IsvcClient = KServeClient()
    return client


def _is_not_found(exc: Exception) -> bool:
    status = getattr(exc, "status", None)
    return status == 404 or "Not Found" in str(exc) or "(404)" in str(exc)


def create_or_patch(isvc: Any, *, client: IsvcClient | None = None) -> str:
    """Create the InferenceService, or patch it when it exists (a new revision, as a canary).

    Returns:
        ``"created"`` or ``"patched"``.
    """
    client = client or _default_client()
    name, namespace = isvc.metadata.name, isvc.metadata.namespace
    try:
        client.get(name, namespace=namespace)
    except Exception as exc:
        if not _is_not_found(exc):
            raise
        client.create(isvc, namespace=namespace)
        return "created"
    client.patch(name, isvc, namespace=namespace)
    return "patched"


def set_traffic(
    name: str, *, namespace: str = DEFAULT_NAMESPACE, percent: int, client: IsvcClient | None = None
) -> None:
    """Set the canary's share of traffic (100: full rollout; 0: back to the previous revision)."""
    if not 0 <= percent <= 100:
        raise UsageError("percent must lie between 0 and 100")
    (client or _default_client()).patch(name, _traffic_patch(name, namespace, percent), namespace=namespace)


def rollback(name: str, *, namespace: str = DEFAULT_NAMESPACE, client: IsvcClient | None = None) -> None:
    """Send all traffic back to the last fully rolled-out revision."""
    set_traffic(name, namespace=namespace, percent=0, client=client)


def promote_after_smoke_test(
    name: str,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    smoke_test: Callable[[], object],
    client: IsvcClient | None = None,
) -> bool:
    """Roll the canary out fully if the smoke test passes; roll back if it raises.

    Returns:
        True when rolled out, False when rolled back (the smoke test's error is re-raised
        as :class:`DataError` after the rollback).
    """
    client = client or _default_client()
    try:
        smoke_test()
    except Exception as exc:
        rollback(name, namespace=namespace, client=client)
        raise DataError(
            f"smoke test of {namespace}/{name} failed ({exc}); rolled back to the previous revision"
        ) from None
    set_traffic(name, namespace=namespace, percent=100, client=client)
    return True


def smoke_test(
    base_url: str, model_name: str, instance: Mapping[str, Any], *, timeout: float = 10.0
) -> dict[str, Any]:
    """POST one synthetic instance (V1) and check the answer has a probability per endpoint.

    Args:
        base_url: e.g. ``http://cohortlm-ra-predictor.cohortlm.svc`` or a canary URL.
        model_name: the served name.
        instance: a valid synthetic row (``RequestSchema.example_row()``), never a patient's.
        timeout: seconds.

    Raises:
        DataError: no answer, a non-200 answer, or probabilities missing or outside [0, 1].
    """
    url = f"{base_url.rstrip('/')}/v1/models/{model_name}:predict"
    body = json.dumps({"instances": [dict(instance)]}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise DataError(f"smoke test: {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"smoke test: {url} did not answer ({type(exc).__name__})") from None
    preds = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(preds, list) or len(preds) != 1 or not isinstance(preds[0], dict) or not preds[0]:
        raise DataError("smoke test: the answer has no predictions")
    if not all(isinstance(p, (int, float)) and 0.0 <= p <= 1.0 for p in preds[0].values()):
        raise DataError("smoke test: a probability is missing or outside [0, 1]")
    return answer


def rollout_champion(
    model_version: str,
    *,
    model_store: str | Path,
    namespace: str = DEFAULT_NAMESPACE,
    name: str = "cohortlm-ra",
    claim: str = MODEL_STORE_CLAIM,
    canary_traffic_percent: int = 10,
    smoke_url: str | None = None,
    ready_timeout: int = 600,
    client: IsvcClient | None = None,
) -> bool:
    """Serve a promoted version on the cluster: canary, smoke test, then full rollout or rollback.

    The model store is the PVC ``claim`` mounted at ``model_store`` (the pipeline
    pod's view); the InferenceService fetches ``pvc://<claim>/<study>/versions/<version>``.

    Args:
        model_version: the promoted version (a folder under ``<store>/<study>/versions/``).
        model_store: the store folder (the PVC's mount point).
        namespace: the InferenceService's namespace.
        name: the InferenceService name.
        claim: the PersistentVolumeClaim that holds the store.
        canary_traffic_percent: the new revision's share until the smoke test passes.
        smoke_url: where to send the smoke request; by default the canary's tag URL
            (``latest-<name>-predictor``, tag routing is on), or the service URL on first creation.
        ready_timeout: seconds to wait for the new revision to become ready.
        client: a ``KServeClient`` (default: one from the pod's service account).

    Returns:
        True when the new version serves all traffic.

    Raises:
        UsageError: the version is not in the store.
        DataError: the smoke test failed (after rolling back).
    """
    store = Path(model_store)
    matches = sorted(store.glob(f"*/versions/{model_version}"))
    if not matches:
        raise UsageError(f"version {model_version} is not in the model store {store}; promote it first")
    folder = matches[0]
    study = folder.parent.parent.name
    from cohortlm.models.bundle import bundle_spec, read_bundle_metadata
    from serving.validation import RequestSchema

    instance = RequestSchema(bundle_spec(read_bundle_metadata(folder), path=folder)).example_row()
    client = client or _default_client()
    isvc = build_inference_service(
        name,
        storage_uri=store_uri(study, model_version, claim=claim),
        namespace=namespace,
        canary_traffic_percent=canary_traffic_percent,
    )
    action = create_or_patch(isvc, client=client)
    wait = getattr(client, "wait_isvc_ready", None)
    if wait is not None:
        wait(name, namespace=namespace, timeout_seconds=ready_timeout)
    host = f"{name}-predictor.{namespace}.svc.cluster.local"
    url = smoke_url or (f"http://latest-{host}" if action == "patched" else f"http://{host}")
    return promote_after_smoke_test(
        name, namespace=namespace, smoke_test=lambda: smoke_test(url, study, instance), client=client
    )
