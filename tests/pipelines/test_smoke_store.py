"""A smoke run never promotes into the model store real runs use (issue 17, item 6).

Measured before: `make run` after one smoke run gated against the smoke run's baseline as
champion. The end-to-end check is tests/pipelines/test_local_run.py (two smoke runs, then the
store a real run reads has no champion); these tests pin the rule and its namespace.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cohortlm.errors import UsageError
from cohortlm.store.registry import SMOKE_NAMESPACE, champion, promote, store_for_profile


def test_smoke_runs_use_their_own_namespace(tmp_path: Path) -> None:
    assert store_for_profile(tmp_path, "smoke") == tmp_path / SMOKE_NAMESPACE
    for profile in ("quick", "paper"):
        assert store_for_profile(tmp_path, profile) == tmp_path


def test_the_namespace_cannot_be_a_study(tmp_path: Path) -> None:
    # Study names are lower snake_case: no study's folder can be the smoke namespace.
    with pytest.raises(UsageError):
        champion(tmp_path, SMOKE_NAMESPACE)


def test_a_smoke_champion_is_not_a_real_runs_champion(tmp_path: Path, small_cohort, ra_spec) -> None:
    from cohortlm.models.baseline import train_baseline

    bundle = tmp_path / "bundle"
    train_baseline(small_cohort, ra_spec).save(bundle)
    version = promote(bundle, store_for_profile(tmp_path / "models", "smoke"))
    assert champion(store_for_profile(tmp_path / "models", "smoke"), ra_spec.name).name == version
    assert champion(store_for_profile(tmp_path / "models", "quick"), ra_spec.name) is None
