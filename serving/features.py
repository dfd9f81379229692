"""Feature lookups for requests that carry only a patient id.

Two sources, both answering with the study's versioned feature service (so
serving reads exactly the features training read):

* :func:`feast_lookup`: a Feast repository folder (``--feature-repo``), read
  with the Feast SDK from its online store (SQLite locally, Redis on a cluster);
* :func:`feature_server_lookup`: Feast's HTTP feature server
  (``$COHORTLM_FEATURE_SERVER_URL``, as the InferenceService manifest sets it).

A lookup returns one feature dict per id, or None for an id the store does
not hold; the server then checks those values against the spec like any other
request. Ids and values are never logged.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cohortlm.cohort.features import feature_service_name
from cohortlm.cohort.study import StudySpec
from cohortlm.errors import UsageError
from serving.validation import FeatureLookup

FEATURE_SERVER_ENV = "COHORTLM_FEATURE_SERVER_URL"


def _bundle_spec(bundle: str | Path) -> StudySpec:
    from cohortlm.models.bundle import bundle_spec, read_bundle_metadata

    folder = Path(os.path.realpath(bundle))
    return bundle_spec(read_bundle_metadata(folder), path=folder)


def _rows(spec: StudySpec, columns: dict[str, list[Any]], n: int) -> list[dict[str, Any] | None]:
    """Per-id feature dicts from column lists (Feast names columns ``feature`` or ``view__feature``)."""
    by_name: dict[str, list[Any]] = {}
    for key, values in columns.items():
        by_name[key.split("__")[-1].split(":")[-1]] = values
    out: list[dict[str, Any] | None] = []
    for i in range(n):
        row = {f.name: by_name[f.name][i] if f.name in by_name else None for f in spec.features}
        out.append(None if all(v is None for v in row.values()) else row)
    return out


def _plain(value: Any) -> Any:
    """A JSON-like Python value: numpy scalars unwrapped, NaN and NA as None."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return value


def feast_lookup(feature_repo: str | Path, bundle: str | Path) -> FeatureLookup:
    """A lookup reading the Feast online store of a repository folder.

    Uses ``featurestore.get_online_features_for`` (the project's Feast layer,
    which opens the store once and reuses it), asking for the study's versioned
    feature service.

    Args:
        feature_repo: the folder with ``feature_store.yaml``.
        bundle: the served bundle (its study names the feature service).

    Raises:
        UsageError: the folder is not a Feast repository, or lacks the study's feature service.
    """
    repo = Path(feature_repo)
    if not (repo / "feature_store.yaml").is_file():
        raise UsageError(f"--feature-repo {repo} has no feature_store.yaml")
    spec = _bundle_spec(bundle)
    service = feature_service_name(spec)
    try:
        from featurestore import get_online_features_for, open_store
    except ModuleNotFoundError:
        raise UsageError(
            "--feature-repo needs the featurestore package of this checkout on the Python path"
        ) from None
    store = open_store(repo)
    try:
        store.get_feature_service(service)
    except Exception:
        raise UsageError(
            f"the feature store in {repo} has no feature service '{service}'; "
            "run `cohortlm features apply` there"
        ) from None

    def lookup(ids: Sequence[str]) -> list[dict[str, Any] | None]:
        table = get_online_features_for(repo, list(ids), service, store=store)
        out: list[dict[str, Any] | None] = []
        for record in table.to_dict("records"):
            row = {f.name: _plain(record.get(f.name)) for f in spec.features}
            out.append(None if all(v is None for v in row.values()) else row)
        return out

    return lookup


def feature_server_lookup(url: str, bundle: str | Path, *, timeout: float = 2.0) -> FeatureLookup:
    """A lookup asking Feast's HTTP feature server (``POST <url>/get-online-features``).

    Args:
        url: the feature server's base URL.
        bundle: the served bundle (its study names the feature service).
        timeout: seconds to wait for the feature server.
    """
    spec = _bundle_spec(bundle)
    endpoint = url.rstrip("/") + "/get-online-features"
    service_name = feature_service_name(spec)

    def lookup(ids: Sequence[str]) -> list[dict[str, Any] | None]:
        body = json.dumps({"feature_service": service_name, "entities": {spec.id_column: list(ids)}}).encode()
        req = urllib.request.Request(endpoint, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = json.loads(resp.read())
        names = data["metadata"]["feature_names"]
        columns = {name: list(res["values"]) for name, res in zip(names, data["results"], strict=True)}
        columns.pop(spec.id_column, None)
        return _rows(spec, columns, len(ids))

    return lookup


def lookup_from_env(bundle: str | Path) -> FeatureLookup | None:
    """The feature server lookup when ``$COHORTLM_FEATURE_SERVER_URL`` is set, else None."""
    url = os.environ.get(FEATURE_SERVER_ENV)
    return feature_server_lookup(url, bundle) if url else None
