"""What the promote step records on its ``Model`` artifact: the promoted version and why."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cohortlm.run.outcome import GateOutcome


def promoted_record(model_store: str | Path, outcome: GateOutcome, version: str) -> dict[str, Any]:
    """Version, study, manifest digest, ``STORAGE_URI``, the model and the gate's verdict of a promotion.

    Args:
        model_store: the store the version was promoted into.
        outcome: the gate's outcome.
        version: the promoted version.

    Raises:
        FileNotFoundError: the version is not in the store (promotion did not happen).
    """
    from cohortlm.store.registry import MANIFEST_FILE, SIGNATURE_FILE, VERSIONS
    from serving.isvc import store_uri

    matches = sorted(Path(model_store).glob(f"*/{VERSIONS}/{version}/{MANIFEST_FILE}"))
    if not matches:
        raise FileNotFoundError(f"version {version} has no {MANIFEST_FILE} in the model store {model_store}")
    manifest = matches[0]
    study = manifest.parents[2].name
    record: dict[str, Any] = {
        "model_version": version,
        "study": study,
        "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
        "signed": (manifest.parent / SIGNATURE_FILE).is_file(),
        "storage_uri": store_uri(study, version),
        # which model became champion (the gate's verdict is about the candidate)
        "model": outcome.promoted_model,
        "promote": outcome.promote,
        "candidate": outcome.candidate,
        "champion": outcome.champion,
        "reasons": list(outcome.decision.reasons),
    }
    return record
