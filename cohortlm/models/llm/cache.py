"""Where converted models, cached frozen trunks and the dtype probe live on disk.

One folder, ``$COHORTLM_CACHE`` (default ``~/.cache/cohortlm``): ``models/`` (GGUF
conversions, tiny random models), ``trunk/`` (frozen-trunk states per patient) and
``dtype_probe.json``. In a cluster it is the ``cohortlm-model-cache`` volume.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """The cache folder: ``$COHORTLM_CACHE`` or ``~/.cache/cohortlm``."""
    base = os.environ.get("COHORTLM_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "cohortlm"


def cache_root() -> Path:
    """The model cache folder: ``$COHORTLM_CACHE/models`` or ``~/.cache/cohortlm/models``."""
    return cache_home() / "models"
