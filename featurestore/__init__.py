"""The Feast side of cohortlm (the core ``cohortlm`` package never imports Feast).

See :mod:`featurestore.store`.
"""

import importlib
from typing import Any

# The names below load featurestore.store (and, when used, Feast) on first use, so that
# importing featurestore.cli (a ``cohortlm features`` plugin) keeps ``cohortlm --help`` fast.
_STORE_NAMES = frozenset(
    {
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
    }
)


def __getattr__(name: str) -> Any:
    if name in _STORE_NAMES:
        return getattr(importlib.import_module("featurestore.store"), name)
    raise AttributeError(f"module 'featurestore' has no attribute {name!r}")


__all__ = sorted(_STORE_NAMES)  # the lazy names are the public ones
