"""Model bundles: a folder that holds a trained model and everything needed to trust it.

A bundle is what training writes, what the gate promotes and what the server
loads. Layout (format version 1)::

    <bundle>/
      bundle.json     metadata (below)
      study.yaml      a copy of the study spec the model was trained for
      model.skops     kind "baseline": one sklearn Pipeline per endpoint (skops, not pickle)
      adapter/        kind "llm": the PEFT LoRA adapter
      base_model.json kind "llm": the base model reference and its content hash
      thresholds.json optional, written later: {endpoint: threshold}
      decision.json   optional, written later: the gate decision
      model_card.json optional, written at promotion: the model card (cohortlm.models.model_card);
      model_card.md   the same for people; both covered by MANIFEST.json and MANIFEST.sig
      MANIFEST.json   optional, written later by cohortlm.store.registry: file hashes

``bundle.json`` holds ``format_version``, ``kind`` (``baseline`` or ``llm``),
``model_name``, ``model_version`` (the first 12 hex digits of a SHA-256 over
the model files, so the same weights always have the same version),
``study`` (``spec.to_dict()``), ``study_hash`` (``spec.spec_hash``),
``features``, ``endpoints``, ``created`` (ISO 8601, UTC), ``libraries``
(name -> version) and ``training`` (configuration and metrics).

:func:`load_bundle` returns a :class:`Predictor` whatever the kind, and refuses
a bundle whose study differs from the spec the caller holds: a model is never
applied to features or endpoints it was not trained for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import yaml

from cohortlm.checksums import update_with_file
from cohortlm.cohort.study import StudySpec, study_from_dict
from cohortlm.contracts import BUNDLE_FILE, SIGNATURE_FILE, STUDY_FILE
from cohortlm.errors import DataError, SpecError, UsageError


class BundleIntegrityError(DataError):
    """A promoted bundle's files differ from its MANIFEST.json (exit code 1)."""


BUNDLE_FORMAT_VERSION = 1
KINDS = ("baseline", "llm")
# Probabilities are kept strictly inside (0, 1) so that log-loss, logits and
# the serving contract never meet an exact 0 or 1.
PROBA_EPS = 1e-6


@runtime_checkable
class Predictor(Protocol):
    """A loaded model that turns feature rows into per-endpoint probabilities.

    Attributes:
        spec: the study the model was trained for.
        kind: ``"baseline"`` or ``"llm"``.
        version: the content-derived model version (12 hex digits).
        path: the bundle folder.
        name: the model name (e.g. ``logistic_regression``, ``SmolLM2-135M-Instruct+lora``).
    """

    spec: StudySpec
    kind: str
    version: str
    path: Path
    name: str

    def predict_proba(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Probabilities in (0, 1), one column per endpoint (spec order), same index as ``rows``."""
        ...


# ---------------------------------------------------------------------------- helpers


def library_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the named distributions (``"absent"`` when not installed)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def content_hash(paths: Iterable[Path], *, root: Path) -> str:
    """SHA-256 (hex) over files: their paths relative to ``root`` and their bytes, in sorted order.

    Folders are walked. The result depends on content only, not on times or
    the order the files were given in.
    """
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])
    digest = hashlib.sha256()
    for f in sorted(set(files), key=lambda q: q.relative_to(root).as_posix()):
        digest.update(f.relative_to(root).as_posix().encode() + b"\0")
        update_with_file(digest, f)
        digest.update(b"\0")
    return digest.hexdigest()


def check_feature_rows(rows: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """The spec's feature columns of ``rows``, in spec order, with numeric columns as float.

    Raises:
        DataError: a feature column is missing or a numeric column holds text
            (the message names the columns, never the values).
    """
    missing = [c for c in spec.feature_names if c not in rows.columns]
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        raise DataError(f"the rows lack {len(missing)} feature column(s) of study '{spec.name}': {shown}")
    out = pd.DataFrame(index=rows.index)
    bad = []
    for f in spec.features:
        col = rows[f.name]
        if f.type == "categorical":
            out[f.name] = col.astype(object).where(col.notna(), None)
        else:
            try:
                out[f.name] = pd.to_numeric(col, errors="raise").astype(float)
            except (ValueError, TypeError):
                bad.append(f.name)
    if bad:
        raise DataError(f"feature column(s) {', '.join(bad)} must be numeric (missing values may be empty)")
    return out


def clip_proba(p: np.ndarray) -> np.ndarray:
    """Probabilities clipped into the open interval (0, 1)."""
    return np.clip(np.asarray(p, dtype=float), PROBA_EPS, 1.0 - PROBA_EPS)


# ---------------------------------------------------------------------------- writing


def write_bundle_metadata(
    folder: str | Path,
    *,
    kind: str,
    model_name: str,
    spec: StudySpec,
    model_files: Iterable[str],
    training: dict[str, Any],
    libraries: Iterable[str],
) -> dict[str, Any]:
    """Write ``bundle.json`` and ``study.yaml`` into a folder that already holds the model files.

    Args:
        folder: the bundle folder.
        kind: ``"baseline"`` or ``"llm"``.
        model_name: a readable model name.
        spec: the study the model was trained for.
        model_files: names (relative to ``folder``) of the files/folders that
            define the model; ``model_version`` is derived from their content.
        training: configuration and metrics to record.
        libraries: distribution names whose versions to record.

    Returns:
        The metadata written to ``bundle.json``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    root = Path(folder)
    paths = [root / f for f in model_files]
    absent = [str(p) for p in paths if not p.exists()]
    if absent:
        raise ValueError(f"model files missing from the bundle: {absent}")
    meta: dict[str, Any] = {
        "format_version": BUNDLE_FORMAT_VERSION,
        "kind": kind,
        "model_name": model_name,
        "model_version": content_hash(paths, root=root)[:12],
        "study": spec.to_dict(),
        "study_hash": spec.spec_hash,
        "features": spec.feature_names,
        "endpoints": spec.endpoint_names,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "libraries": library_versions(libraries),
        "training": training,
    }
    (root / STUDY_FILE).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False), encoding="utf-8")
    tmp = root / (BUNDLE_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, default=_json_default) + "\n", encoding="utf-8")
    tmp.replace(root / BUNDLE_FILE)
    return meta


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ---------------------------------------------------------------------------- reading


def read_bundle_metadata(path: str | Path) -> dict[str, Any]:
    """The validated ``bundle.json`` of a bundle folder.

    Raises:
        UsageError: the folder or its ``bundle.json`` is missing.
        SpecError: the metadata is unreadable, of an unknown format version or kind.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise UsageError(f"bundle {folder} does not exist or is not a folder")
    meta_path = folder / BUNDLE_FILE
    if not meta_path.is_file():
        raise UsageError(f"{folder} is not a model bundle: it has no {BUNDLE_FILE}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SpecError(f"{meta_path} is not valid JSON; the bundle is damaged, train it again") from None
    if not isinstance(meta, dict):
        raise SpecError(f"{meta_path} must hold a JSON object")
    version = meta.get("format_version")
    if version != BUNDLE_FORMAT_VERSION:
        raise SpecError(
            f"{meta_path}: unknown bundle format_version {version!r}; this cohortlm reads "
            f"version {BUNDLE_FORMAT_VERSION}. Re-train, or use the cohortlm release that wrote it"
        )
    if meta.get("kind") not in KINDS:
        raise SpecError(f"{meta_path}: kind must be one of {', '.join(KINDS)}, got {meta.get('kind')!r}")
    for key in ("model_name", "model_version", "study", "study_hash"):
        if key not in meta:
            raise SpecError(f"{meta_path}: missing key '{key}'")
    return meta


def bundle_spec(meta: dict[str, Any], *, path: str | Path) -> StudySpec:
    """The study spec recorded in a bundle, checked against its recorded hash."""
    spec = study_from_dict(meta["study"], source=f"{path}/{BUNDLE_FILE}")
    if spec.spec_hash != meta["study_hash"]:
        raise SpecError(
            f"{path}: the study recorded in {BUNDLE_FILE} does not match its study_hash; "
            "the bundle was edited or damaged, train it again"
        )
    return spec


# ---------------------------------------------------------------------------- signatures

# A promoted bundle can carry MANIFEST.sig: an OpenSSF model-signing signature (a Sigstore
# bundle with a DSSE envelope over the SHA-256 of every file, MANIFEST.json included), made
# offline with an elliptic-curve private key (PEM) at promotion. The server verifies it with
# the public key before loading: a file changed after promotion, or a MANIFEST.json
# regenerated without the private key, does not verify.
SIGNING_KEY_ENV = "COHORTLM_SIGNING_KEY"
VERIFY_KEY_ENV = "COHORTLM_VERIFY_KEY"


def _hashing_config() -> Any:
    from model_signing import hashing

    # Git metadata is not part of a bundle; MANIFEST.json is hashed (and so signed) like any file.
    return hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE], ignore_git_paths=False)


def _key_file(path: str | Path, option: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{option} {p} does not exist or is not a file")
    return p


def sign_bundle(folder: str | Path, private_key: str | Path) -> Path:
    """Sign every file of a bundle folder (its MANIFEST.json included) into ``MANIFEST.sig``.

    Args:
        folder: the bundle folder, with its MANIFEST.json already written.
        private_key: an elliptic-curve private key (PEM, unencrypted), e.g. from
            ``cohortlm signing-key``.

    Returns:
        The signature file.

    Raises:
        UsageError: the key file is missing or is not an elliptic-curve private key.
    """
    from model_signing import signing

    root = Path(folder)
    key = _key_file(private_key, "--signing-key")
    out = root / SIGNATURE_FILE
    try:
        config = signing.Config().use_elliptic_key_signer(private_key=str(key))
        config.set_hashing_config(_hashing_config()).sign(root, out)
    except (ValueError, TypeError) as exc:
        raise UsageError(
            f"--signing-key {key} is not an unencrypted elliptic-curve private key in PEM "
            f"({type(exc).__name__}); make one with `cohortlm signing-key`"
        ) from None
    return out


def verify_bundle_signature(folder: str | Path, public_key: str | Path) -> None:
    """Check a bundle's ``MANIFEST.sig`` against the public key; raise unless it verifies.

    Raises:
        BundleIntegrityError: no signature, signed with another key, or a file differs from
            what was signed (the message says which of these, never a file's content).
        UsageError: the key file is missing or unreadable as a public key.
    """
    from model_signing import verifying

    root = Path(folder)
    key = _key_file(public_key, "--verify-key")
    signature = root / SIGNATURE_FILE
    if not signature.is_file():
        raise BundleIntegrityError(
            f"bundle {root} has no {SIGNATURE_FILE}: it was not signed at promotion; refusing to load it. "
            "Promote it with --signing-key (or $COHORTLM_SIGNING_KEY)"
        )
    try:
        config = verifying.Config().use_elliptic_key_verifier(public_key=str(key))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--verify-key {key} is not a public key in PEM ({type(exc).__name__})") from None
    try:
        config.set_hashing_config(_hashing_config()).verify(root, signature)
    except Exception as exc:
        text = str(exc)
        if "Key mismatch" in text:
            why = "it was signed with another key"
        elif "mismatch" in text or "files" in text.lower():
            why = "its files differ from what was signed (changed, added or missing)"
        else:
            why = f"the signature is damaged ({type(exc).__name__})"
        raise BundleIntegrityError(
            f"bundle {root}: the signature does not verify with {key}: {why}; refusing to load it. "
            "Promote a fresh copy with the signing key, or roll back to the previous champion"
        ) from None


def generate_signing_key(private_path: str | Path, public_path: str | Path) -> None:
    """Write a new P-256 key pair: the private key (mode 0600) and the public key, both PEM.

    Raises:
        UsageError: a target file exists already (keys are never overwritten).
    """
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private_path, public_path = Path(private_path), Path(public_path)
    for p in (private_path, public_path):
        if p.exists():
            raise UsageError(f"{p} exists already; keys are never overwritten")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
