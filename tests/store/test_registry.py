"""The model store: manifests, atomic promotion, rollback, crash safety."""

from __future__ import annotations

import json
import os

import pytest

from cohortlm.errors import UsageError
from cohortlm.models.bundle import BundleIntegrityError
from cohortlm.store import registry
from cohortlm.store.registry import PromotionError


def _version(bundle) -> str:
    return json.loads((bundle / "bundle.json").read_text())["model_version"]


def test_promote_copies_writes_manifest_and_points_champion(baseline_bundle, store):
    version = registry.promote(baseline_bundle, store)
    assert version == _version(baseline_bundle)
    target = registry.champion(store, "ra_iorra")
    assert target == store / "ra_iorra" / "versions" / version
    manifest = json.loads((target / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == {"bundle.json", "study.yaml", "model.skops"}
    assert all(len(v["sha256"]) == 64 for v in manifest["files"].values())
    registry.verify_manifest(target)
    assert os.readlink(store / "ra_iorra" / "champion") == f"versions/{version}"
    assert registry.history(store, "ra_iorra") == [version]
    assert not (baseline_bundle / "MANIFEST.json").exists(), "the source bundle is never modified"


def test_one_changed_byte_is_refused(baseline_bundle, store):
    registry.promote(baseline_bundle, store)
    target = registry.champion(store, "ra_iorra")
    model = target / "model.skops"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match=r"modified after promotion \(changed: model.skops\)"):
        registry.verify_manifest(target)


def test_added_and_missing_files_are_refused(baseline_bundle, store):
    registry.promote(baseline_bundle, store)
    target = registry.champion(store, "ra_iorra")
    (target / "thresholds.json").write_text("{}")
    with pytest.raises(BundleIntegrityError, match=r"added: thresholds\.json"):
        registry.verify_manifest(target)
    (target / "thresholds.json").unlink()
    (target / "study.yaml").unlink()
    with pytest.raises(BundleIntegrityError, match=r"missing: study\.yaml"):
        registry.verify_manifest(target)


def test_unpromoted_bundle_has_no_manifest(baseline_bundle):
    with pytest.raises(BundleIntegrityError, match="only promoted bundles are served"):
        registry.verify_manifest(baseline_bundle)


def test_promote_then_rollback(baseline_bundle, second_bundle, store):
    v1 = registry.promote(baseline_bundle, store)
    v2 = registry.promote(second_bundle, store, decision={"promote": True, "reasons": ["test"]})
    assert v1 != v2
    assert registry.champion_version(store, "ra_iorra") == v2
    assert json.loads((registry.champion(store, "ra_iorra") / "decision.json").read_text())["promote"] is True
    assert registry.history(store, "ra_iorra") == [v1, v2]
    assert registry.rollback(store, "ra_iorra") == v1
    assert registry.champion_version(store, "ra_iorra") == v1
    with pytest.raises(PromotionError, match="no earlier champion"):
        registry.rollback(store, "ra_iorra")
    assert registry.versions(store, "ra_iorra") == sorted([v1, v2])


def test_promoting_the_same_bundle_twice_is_harmless(baseline_bundle, store):
    v = registry.promote(baseline_bundle, store)
    assert registry.promote(baseline_bundle, store) == v
    assert registry.history(store, "ra_iorra") == [v]


def test_same_version_with_other_content_is_refused(baseline_bundle, store, tmp_path):
    registry.promote(baseline_bundle, store)
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(baseline_bundle, copy)
    (copy / "thresholds.json").write_text(json.dumps({"das28_esr_high": 0.3}))
    with pytest.raises(UsageError, match="already in the store with other content"):
        registry.promote(copy, store)


def test_crash_during_pointer_swap_keeps_the_old_champion(baseline_bundle, second_bundle, store, monkeypatch):
    v1 = registry.promote(baseline_bundle, store)
    real_replace = os.replace

    def crash_on_champion(src, dst, *a, **kw):
        if str(dst).endswith("/champion"):
            raise OSError("simulated crash before the rename")
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(registry.os, "replace", crash_on_champion)
    with pytest.raises(OSError, match="simulated crash"):
        registry.promote(second_bundle, store)
    monkeypatch.undo()
    assert registry.champion_version(store, "ra_iorra") == v1
    registry.verify_manifest(registry.champion(store, "ra_iorra"))
    assert registry.history(store, "ra_iorra") == [v1]
    # The next promotion completes and cleans up what the crash left.
    v2 = registry.promote(second_bundle, store)
    assert registry.champion_version(store, "ra_iorra") == v2
    assert registry.history(store, "ra_iorra") == [v1, v2]
    assert not [p for p in (store / "ra_iorra").iterdir() if p.name.startswith(".champion")]


def test_crash_while_copying_leaves_no_half_version(baseline_bundle, second_bundle, store, monkeypatch):
    v1 = registry.promote(baseline_bundle, store)

    def broken_copy(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(registry.shutil, "copytree", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        registry.promote(second_bundle, store)
    monkeypatch.undo()
    assert registry.champion_version(store, "ra_iorra") == v1
    assert registry.versions(store, "ra_iorra") == [v1]
    assert not [p for p in (store / "ra_iorra" / "versions").iterdir() if p.name.startswith(".incoming")]


def test_no_champion(store):
    assert registry.champion(store, "ra_iorra") is None
    with pytest.raises(PromotionError, match="no champion"):
        registry.rollback(store, "ra_iorra")


def test_store_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COHORTLM_MODEL_STORE", str(tmp_path / "elsewhere"))
    assert registry.default_store() == tmp_path / "elsewhere"


def test_not_a_bundle(tmp_path, store):
    with pytest.raises(UsageError, match="not a model bundle"):
        registry.promote(tmp_path, store)


def test_cohortlm_run_uses_the_store_of_the_environment(monkeypatch, tmp_path, capsys):
    """`cohortlm run` gates against and promotes into the store `promote`/`rollback` use."""
    from cohortlm.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("not a store")
    monkeypatch.setenv("COHORTLM_MODEL_STORE", str(blocker))
    # A missing base model stops a run that ignored the environment before any step runs.
    argv = ["run", "--profile", "smoke", "--out", str(tmp_path / "run")]
    argv += ["--base-model", str(tmp_path / "none")]
    assert main(argv) == 2
    assert f"--model-store {blocker}/smoke-runs" in capsys.readouterr().err
