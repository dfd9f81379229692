"""The local model store: promoted bundles, their content manifests, and the champion pointer.

Layout::

    <store>/<study>/
      versions/<version>/     a promoted bundle (a copy), with MANIFEST.json
      champion -> versions/<version>     a relative symlink: the model now serving
      history.json            the champions in promotion order (the last is current)
      looks.json              the test-split ledger: every gate decision (look) at a test split
      .lock                   serialises promotions (and ledger writes) of one study

The store is ``$COHORTLM_MODEL_STORE`` or ``models/`` under the current folder.
A smoke run (a tiny random model, :mod:`cohortlm.run.profiles`) reads its champion
from and promotes into ``<store>/smoke-runs/`` (:func:`store_for_profile`), never
where real runs' champions live: a real run after a smoke run must not be gated
against the smoke run's model. ``smoke-runs`` cannot be a study's name (study
names are lower snake_case), so the namespace never collides with a study.

Promotions of one study are serialised by ``.lock`` (an ``flock``, released by the
kernel when its holder dies, even by ``kill -9``), and a run promotes only if the
champion is still the one its gate compared against (``promote(...,
expected_champion=...)``, a compare-and-swap on the pointer under the lock): two
runs that gated at the same time against the same champion cannot both replace
it; the second is refused with :class:`ChampionChangedError` and has to gate again,
against the first one's champion.

Promotion is crash safe: the bundle is copied into a temporary folder, its
manifest written there, and the folder renamed into ``versions/`` in one step;
only then does the champion pointer change, by writing a new symlink beside
the old one and renaming it over it (``os.replace`` is atomic on POSIX). A
crash at any point leaves either the old champion or the new one, never half
of either. A promotion killed before its rename leaves a ``versions/.incoming-*``
folder; it is removed the next time the store is opened for the study
(:func:`champion`) or promoted to, but only while nobody holds the lock (a
promotion in progress keeps its staging folder). A server that follows the
pointer sees the change and loads the new version fully, and self-checks it,
before it answers with it.

``MANIFEST.json`` records the SHA-256 and size of every file of the promoted
bundle. :func:`verify_manifest` refuses a bundle in which any byte changed, a
file went missing or a file appeared after promotion.

The **test-split ledger** (``looks.json``) records every look at a test split:
the split's hash (:func:`split_hash`, SHA-256 of its sorted patient ids, so no
id is stored), the candidate, the champion, the look number, the superiority
level it spent and whether it promoted. The gate asks :func:`next_look` before
deciding and spends its α across the looks (:mod:`cohortlm.evaluation.gate`): every model
gated on the same patients makes the next claim of superiority on them cheaper
to get by chance, so the ledger is what keeps the chance of a false promotion
over all looks at one split within α. :func:`record_look` appends under the
study's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cohortlm.checksums import file_sha256
from cohortlm.contracts import BUNDLE_FILE, DECISION_FILE, MANIFEST_FILE, SIGNATURE_FILE
from cohortlm.errors import CohortlmError, UsageError
from cohortlm.models.bundle import BundleIntegrityError

MANIFEST_FORMAT_VERSION = 1
CHAMPION = "champion"
HISTORY_FILE = "history.json"
LEDGER_FILE = "looks.json"
VERSIONS = "versions"
STORE_ENV = "COHORTLM_MODEL_STORE"
#: where smoke runs keep their champions, inside the store (a name no study can have)
SMOKE_NAMESPACE = "smoke-runs"
#: profiles whose models mean nothing (a random model): they never touch real champions
THROWAWAY_PROFILES = frozenset({"smoke"})
# Version folder names come from bundle.json; anything else could escape the store.
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class PromotionError(CohortlmError):
    """A promotion or rollback could not be done; the champion is unchanged (exit code 1)."""

    exit_code = 1


class ChampionChangedError(PromotionError):
    """The champion changed after the gate compared against it: nothing was promoted (exit code 1)."""


class _Unset:
    """No expectation about the champion (a plain promotion or a retry)."""


UNSET = _Unset()


# ---------------------------------------------------------------------------- manifest


def _bundle_files(folder: Path) -> list[str]:
    """Relative POSIX paths of all regular files under ``folder`` except the manifest."""
    out = []
    for p in folder.rglob("*"):
        if p.is_symlink():
            # A link could point anywhere; a promoted bundle holds only real files.
            raise BundleIntegrityError(
                f"{folder}: '{p.relative_to(folder).as_posix()}' is a symbolic link; "
                "a bundle must hold regular files only"
            )
        if p.is_file():
            rel = p.relative_to(folder).as_posix()
            if rel not in (MANIFEST_FILE, SIGNATURE_FILE):
                out.append(rel)
    return sorted(out)


def build_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a bundle folder: SHA-256 and size of each file (not written)."""
    root = Path(folder)
    files = {
        rel: {"sha256": file_sha256(root / rel), "size": (root / rel).stat().st_size}
        for rel in _bundle_files(root)
    }
    return {
        "format_version": MANIFEST_FORMAT_VERSION,
        "algorithm": "sha256",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": files,
    }


def write_manifest(folder: str | Path) -> dict[str, Any]:
    """Write ``MANIFEST.json`` into a bundle folder (atomically) and return it."""
    root = Path(folder)
    manifest = build_manifest(root)
    tmp = root / (MANIFEST_FILE + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, root / MANIFEST_FILE)
    return manifest


def verify_manifest(folder: str | Path) -> dict[str, Any]:
    """Check every file of a promoted bundle against its ``MANIFEST.json``.

    Returns:
        The manifest.

    Raises:
        BundleIntegrityError: the manifest is missing or unreadable, or a file
            changed, went missing or was added since promotion. The message
            names the files (never their content) and says what to do.
    """
    root = Path(folder)
    path = root / MANIFEST_FILE
    if not path.is_file():
        raise BundleIntegrityError(
            f"{root} has no {MANIFEST_FILE}: only promoted bundles are served. "
            "Promote it with `cohortlm promote --bundle DIR`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        recorded = manifest["files"]
        if manifest.get("algorithm") != "sha256" or not isinstance(recorded, dict):
            raise ValueError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BundleIntegrityError(
            f"{path} is damaged or of an unknown format; promote the bundle again"
        ) from None
    present = set(_bundle_files(root))
    missing = sorted(set(recorded) - present)
    added = sorted(present - set(recorded))
    changed = sorted(
        rel
        for rel in set(recorded) & present
        if (root / rel).stat().st_size != recorded[rel].get("size")
        or file_sha256(root / rel) != recorded[rel].get("sha256")
    )
    problems = []
    for what, names in (("changed", changed), ("missing", missing), ("added", added)):
        if names:
            shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
            problems.append(f"{what}: {shown}")
    if problems:
        raise BundleIntegrityError(
            f"bundle {root} was modified after promotion ({'; '.join(problems)}); refusing to load it. "
            "Promote a fresh copy of the bundle, or roll back to the previous champion"
        )
    return manifest


# ---------------------------------------------------------------------------- store


def default_store() -> Path:
    """The model store: ``$COHORTLM_MODEL_STORE`` or ``models/`` under the current folder."""
    return Path(os.environ.get(STORE_ENV) or "models")


def store_for_profile(store: str | Path | None, profile: str) -> Path:
    """The store a run of ``profile`` gates against and promotes into.

    Args:
        store: The model store the user named; default :func:`default_store`.
        profile: The run profile (``smoke``, ``quick``, ``paper``).

    Returns:
        ``<store>/smoke-runs`` for a smoke run (its random model never becomes a real
        run's champion, nor is gated against one); ``<store>`` for every other profile.
    """
    root = Path(store if store is not None else default_store())
    return root / SMOKE_NAMESPACE if profile in THROWAWAY_PROFILES else root


def _study_dir(store: str | Path | None, study: str) -> Path:
    if not re.match(r"^[a-z][a-z0-9_]*$", study):
        raise UsageError(f"study name must be lower snake_case, got {study!r}")
    return Path(store if store is not None else default_store()) / study


@contextlib.contextmanager
def _locked(study_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on a study's store so that promotions do not interleave."""
    study_dir.mkdir(parents=True, exist_ok=True)
    with (study_dir / ".lock").open("a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_incoming(study_dir: Path) -> list[str]:
    """Remove every ``versions/.incoming-*`` folder (the caller holds the lock: all are stale)."""
    removed = []
    for debris in sorted((study_dir / VERSIONS).glob(".incoming-*")):
        shutil.rmtree(debris, ignore_errors=True)
        removed.append(debris.name)
    return removed


def clean_stale_incoming(store: str | Path | None, study: str) -> list[str]:
    """Remove the staging folders of promotions that died before their rename.

    A staging folder belongs to a promotion in progress exactly while its owner holds the
    study's lock (the kernel drops the lock of a killed process), so the folders are removed
    only when the lock can be taken at once; otherwise nothing is touched. A store that cannot
    be written (a read-only mount) is left as it is.

    Returns:
        The names of the folders removed.
    """
    study_dir = _study_dir(store, study)
    if not any((study_dir / VERSIONS).glob(".incoming-*")):
        return []
    try:
        with (study_dir / ".lock").open("a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return []  # a promotion is in progress: its folder is not debris
            try:
                return _remove_incoming(study_dir)
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    except OSError:
        return []


def _read_history(study_dir: Path) -> list[str]:
    path = study_dir / HISTORY_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [str(v) for v in data["champions"]]
    except (ValueError, KeyError, TypeError):
        raise PromotionError(
            f"{path} is damaged; fix or remove it (the champion pointer is unchanged)"
        ) from None


def _write_history(study_dir: Path, champions: list[str]) -> None:
    path = study_dir / HISTORY_FILE
    tmp = study_dir / f".{HISTORY_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"champions": champions}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _point_champion(study_dir: Path, version: str) -> None:
    """Swap the champion symlink to ``versions/<version>`` in one atomic rename."""
    tmp = study_dir / f".{CHAMPION}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(f"{VERSIONS}/{version}", tmp)
    os.replace(tmp, study_dir / CHAMPION)
    # The rename must survive a power loss before callers act on it.
    fd = os.open(study_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def champion_version(store: str | Path | None, study: str) -> str | None:
    """The version the champion pointer names, or None when the study has no champion."""
    link = _study_dir(store, study) / CHAMPION
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).name


def champion(store: str | Path | None, study: str) -> Path | None:
    """The folder of the current champion of ``study``, or None when there is none.

    Opening the store this way also removes staging folders that killed promotions left
    (:func:`clean_stale_incoming`).
    """
    clean_stale_incoming(store, study)
    version = champion_version(store, study)
    if version is None:
        return None
    path = _study_dir(store, study) / VERSIONS / version
    return path if path.is_dir() else None


def versions(store: str | Path | None, study: str) -> list[str]:
    """The promoted versions of ``study`` present in the store (sorted by name)."""
    folder = _study_dir(store, study) / VERSIONS
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def history(store: str | Path | None, study: str) -> list[str]:
    """Champions of ``study`` in promotion order; the last one is current."""
    return _read_history(_study_dir(store, study))


def _read_bundle_identity(bundle: Path) -> tuple[str, str]:
    """(study name, model version) from a bundle's ``bundle.json``."""
    meta_path = bundle / BUNDLE_FILE
    if not bundle.is_dir() or not meta_path.is_file():
        raise UsageError(f"{bundle} is not a model bundle (no bundle.json)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        study = str(meta["study"]["name"])
        version = str(meta["model_version"])
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{meta_path} lacks study.name or model_version; is it a cohortlm bundle?") from None
    if not _VERSION_RE.match(version):
        raise UsageError(f"{meta_path}: model_version must be letters, digits, '.', '_' or '-'")
    return study, version


def promote(
    bundle_dir: str | Path,
    store: str | Path | None = None,
    *,
    decision: dict[str, Any] | str | Path | None = None,
    signing_key: str | Path | None = None,
    expected_champion: str | _Unset | None = UNSET,
) -> str:
    """Make a bundle the champion of its study, atomically.

    The bundle is copied to ``<store>/<study>/versions/<version>/`` with a
    ``MANIFEST.json``, then the ``champion`` pointer is swapped to it. Promoting
    a version that is already in the store (same content) only moves the pointer,
    so a retried promotion is harmless.

    With ``expected_champion`` (the version the gate compared against, None for "no
    champion"), the pointer moves only if it still names that version when the lock is
    held: a compare-and-swap, so that a run never replaces a champion it was not gated
    against (another run promoted in between). A retry of a promotion that already
    happened (the champion is this version) succeeds.

    Args:
        bundle_dir: the bundle folder (with ``bundle.json``).
        store: the model store; default :func:`default_store`.
        decision: the gate decision record (a dict or a JSON file) to keep as
            ``decision.json`` in the promoted copy; the bundle's own is kept otherwise.
        signing_key: private key (PEM) to sign the promoted copy with (``MANIFEST.sig``);
            default ``$COHORTLM_SIGNING_KEY``; unsigned when neither is set.
        expected_champion: the champion version the gate compared against (None: there
            was none); not given: promote whatever serves now.

    Returns:
        The promoted version.

    Raises:
        UsageError: not a bundle, or a different bundle already holds this version.
        ChampionChangedError: the champion is no longer ``expected_champion``; nothing changed.
        PromotionError: the store is damaged; the champion is unchanged.
    """
    source = Path(bundle_dir)
    study, version = _read_bundle_identity(source)
    study_dir = _study_dir(store, study)
    decision_data = _read_decision(decision)
    with _locked(study_dir):
        if not isinstance(expected_champion, _Unset):
            _check_champion(store, study, version, expected_champion)
        _store_version(source, study_dir, study, version, decision_data, signing_key)
        _move_champion(store, study_dir, study, version)
    return version


def _check_champion(store: str | Path | None, study: str, version: str, expected: str | None) -> None:
    """Refuse (under the lock) when the champion is not the one the gate compared against."""
    current = champion_version(store, study)
    if current in (expected, version):
        return
    gated = f"champion {expected}" if expected is not None else "no champion (a first champion)"
    raise ChampionChangedError(
        f"the champion of study '{study}' changed while this run was gating: the gate compared "
        f"{version} against {gated}, but {current or 'no champion'} serves now (another run or a "
        f"rollback changed it). Nothing was promoted; run again to gate against the champion "
        "now serving"
    )


def _read_decision(decision: dict[str, Any] | str | Path | None) -> dict[str, Any] | None:
    """The decision record as data: given as a dict, read from a JSON file, or None."""
    if decision is None or isinstance(decision, dict):
        return decision
    try:
        data: dict[str, Any] = json.loads(Path(decision).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(f"decision file {decision} is missing or not JSON") from None
    return data


def _store_version(
    source: Path,
    study_dir: Path,
    study: str,
    version: str,
    decision_data: dict[str, Any] | None,
    signing_key: str | Path | None,
) -> None:
    """Copy the bundle to ``versions/<version>`` through a staging folder and one rename (under the lock).

    Raises:
        UsageError: a different bundle already holds this version.
    """
    target = study_dir / VERSIONS / version
    (study_dir / VERSIONS).mkdir(parents=True, exist_ok=True)
    # Debris of a promotion that died before its rename (we hold the lock: nothing is in progress).
    _remove_incoming(study_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".incoming-{version}-{os.getpid()}-", dir=study_dir / VERSIONS))
    try:
        manifest = _stage_copy(source, staging, decision_data, signing_key)
        if target.exists():
            existing = verify_manifest(target)
            if existing["files"] != manifest["files"]:
                raise UsageError(
                    f"version {version} of study '{study}' is already in the store with other content; "
                    "re-train (a new model gets a new version) or remove the stale copy by hand"
                )
            shutil.rmtree(staging)
        else:
            os.chmod(staging, 0o755)
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _stage_copy(
    source: Path, staging: Path, decision_data: dict[str, Any] | None, signing_key: str | Path | None
) -> dict[str, Any]:
    """Fill ``staging``: the bundle, the decision record, a fresh manifest, the signature; the manifest."""
    shutil.copytree(
        source,
        staging,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(MANIFEST_FILE, SIGNATURE_FILE),
    )
    if decision_data is not None:
        (staging / DECISION_FILE).write_text(json.dumps(decision_data, indent=2) + "\n", encoding="utf-8")
    manifest = write_manifest(staging)
    signing_key = signing_key or os.environ.get("COHORTLM_SIGNING_KEY") or None
    if signing_key is not None:
        from cohortlm.models.bundle import sign_bundle

        sign_bundle(staging, signing_key)
    return manifest


def _move_champion(store: str | Path | None, study_dir: Path, study: str, version: str) -> None:
    """Point ``champion`` at ``version`` and record it in the history (nothing when it already is)."""
    champions = _read_history(study_dir)
    current = champion_version(store, study)
    if current == version:
        return
    _point_champion(study_dir, version)
    if current is not None and (not champions or champions[-1] != current):
        champions.append(current)  # a pointer set by an earlier crash-interrupted promotion
    champions.append(version)
    _write_history(study_dir, champions)


def rollback(store: str | Path | None, study: str) -> str:
    """Make the previous champion of ``study`` the champion again.

    Returns:
        The version now serving.

    Raises:
        PromotionError: there is no earlier champion to return to.
    """
    study_dir = _study_dir(store, study)
    with _locked(study_dir):
        champions = _read_history(study_dir)
        current = champion_version(store, study)
        if current is None:
            raise PromotionError(
                f"study '{study}' has no champion in {study_dir.parent}; nothing to roll back"
            )
        # Drop the current champion (and any trailing duplicates of it) from the stack.
        while champions and champions[-1] == current:
            champions.pop()
        while champions and not (study_dir / VERSIONS / champions[-1]).is_dir():
            champions.pop()
        if not champions:
            raise PromotionError(
                f"study '{study}' has no earlier champion than {current}; nothing to roll back to"
            )
        previous = champions[-1]
        verify_manifest(study_dir / VERSIONS / previous)
        _point_champion(study_dir, previous)
        _write_history(study_dir, champions)
    return previous


# ---------------------------------------------------------------------------- test-split ledger


def split_hash(patient_ids: Iterable[object]) -> str:
    """SHA-256 of a split's patient ids (sorted, as text): the same patients give the same hash."""
    digest = hashlib.sha256()
    for pid in sorted(str(i) for i in patient_ids):
        digest.update(pid.encode("utf-8") + b"\n")
    return digest.hexdigest()


def _read_ledger(study_dir: Path) -> list[dict[str, Any]]:
    path = study_dir / LEDGER_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["looks"]
        if not isinstance(entries, list):
            raise TypeError
        return [dict(e) for e in entries]
    except (ValueError, KeyError, TypeError):
        raise PromotionError(
            f"{path} is damaged; restore it from a backup (deleting it would forget every look at the "
            "test split and let the gate spend its α again)"
        ) from None


def looks(store: str | Path | None, study: str, split: str | None = None) -> list[dict[str, Any]]:
    """The ledger's entries for ``study`` (only those of the split with hash ``split`` when given)."""
    entries = _read_ledger(_study_dir(store, study))
    return [e for e in entries if split is None or e.get("split_hash") == split]


def next_look(store: str | Path | None, study: str, split: str) -> int:
    """The number the next look at the split with hash ``split`` will have (1 for a fresh split)."""
    return len(looks(store, study, split)) + 1


def record_look(
    store: str | Path | None,
    study: str,
    *,
    split: str,
    candidate: str,
    champion: str,
    promote: bool,
    look: int,
    alpha_look: float,
) -> int:
    """Append one look at a test split to the ledger (under the study's lock).

    Args:
        store: The model store.
        study: The study.
        split: The split's hash (:func:`split_hash`).
        candidate: The candidate's name.
        champion: The champion's name.
        promote: The gate's decision.
        look: The look number the decision used (from :func:`next_look`).
        alpha_look: The superiority level the decision spent.

    Returns:
        The number of looks at this split now recorded. It exceeds ``look`` only when
        another gate recorded a look at the same split in between.
    """
    study_dir = _study_dir(store, study)
    with _locked(study_dir):
        entries = _read_ledger(study_dir)
        entries.append(
            {
                "split_hash": split,
                "look": int(look),
                "candidate": candidate,
                "champion": champion,
                "promote": bool(promote),
                "alpha_look": float(alpha_look),
                "time": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        path = study_dir / LEDGER_FILE
        tmp = study_dir / f".{LEDGER_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"looks": entries}, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    return sum(1 for e in entries if e["split_hash"] == split)
