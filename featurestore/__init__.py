"""The Feast side of cohortlm (the core ``cohortlm`` package never imports Feast).

See :mod:`featurestore.store`.
"""

from featurestore.store import (
    DEFAULT_REPO,
    DEFAULT_SERVICE,
    ApplySummary,
    apply,
    definition_drift,
    get_online_features_for,
    get_training_table,
    install_offline_data,
    load_config,
    materialize,
    open_store,
    registry_drift,
    repo_objects,
)

__all__ = [
    "DEFAULT_REPO",
    "DEFAULT_SERVICE",
    "ApplySummary",
    "apply",
    "definition_drift",
    "get_online_features_for",
    "get_training_table",
    "install_offline_data",
    "load_config",
    "materialize",
    "open_store",
    "registry_drift",
    "repo_objects",
]
