"""What the promote step records on its ``Model`` artifact: the promoted version and why."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def promoted_record(model_store: str | Path, decision_dir: str | Path, version: str) -> dict[str, Any]:
    """Version, study, manifest digest, ``STORAGE_URI`` and the gate's verdict of a promotion.

    Args:
        model_store: the store the version was promoted into.
        decision_dir: the gate's output folder (``decision.json``).
        version: the promoted version.

    Raises:
        FileNotFoundError: the version is not in the store (promotion did not happen).
    """
    from serving.isvc import store_uri

    matches = sorted(Path(model_store).glob(f"*/versions/{version}/MANIFEST.json"))
    if not matches:
        raise FileNotFoundError(f"version {version} has no MANIFEST.json in the model store {model_store}")
    manifest = matches[0]
    study = manifest.parents[2].name
    record: dict[str, Any] = {
        "model_version": version,
        "study": study,
        "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
        "signed": (manifest.parent / "MANIFEST.sig").is_file(),
        "storage_uri": store_uri(study, version),
    }
    decision_file = Path(decision_dir) / "decision.json"
    if decision_file.is_file():
        decision = json.loads(decision_file.read_text())
        record.update(
            {
                "promote": bool(decision.get("promote")),
                "candidate": str(decision.get("candidate", "")),
                "champion": str(decision.get("champion", "")),
                "reasons": [str(r) for r in decision.get("reasons", [])],
            }
        )
    return record
