"""SHA-256 of files, read in chunks: model cache keys, bundle versions, promotion manifests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

CHUNK = 1 << 20  # 1 MiB: model weights are far larger than memory should hold at once


def update_with_file(digest: Any, path: Path) -> Any:
    """Feed a file's bytes into a hashlib ``digest`` (returned for chaining)."""
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of one file."""
    return str(update_with_file(hashlib.sha256(), Path(path)).hexdigest())
