"""A request with only patient_id is filled from the Feast online store (SQLite, real Feast)."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
from kserve.errors import InvalidInput
from serving_testlib import patient_instance

from serving.features import feast_lookup
from serving.model import CohortModel

ROOT = Path(__file__).resolve().parents[2]
try:
    import featurestore  # noqa: F401
except ModuleNotFoundError:  # a checkout whose install predates the featurestore package
    sys.path.insert(0, str(ROOT))


@pytest.fixture()
def online_repo(tmp_path, small_cohort) -> Path:
    import featurestore as fs

    repo = tmp_path / "feature_repo"
    repo.mkdir()
    for f in (ROOT / "feature_repo").iterdir():
        if f.is_file() and f.suffix in (".py", ".yaml"):
            shutil.copy(f, repo / f.name)
    (repo / "data").mkdir()
    small_cohort.to_parquet(repo / "data" / "cohort.parquet", index=False)
    store = fs.open_store(repo)
    fs.apply(repo, store=store)
    fs.materialize(repo, store=store)
    return repo


@pytest.mark.slow
def test_patient_id_only_is_filled_from_the_online_store(online_repo, promoted, small_cohort, ra_spec):
    model = CohortModel("ra_iorra", promoted, lookup=feast_lookup(online_repo, promoted), watch_interval=0)
    model.load()
    ids = small_cohort[ra_spec.id_column].astype(str).tolist()
    by_id = asyncio.run(model({"instances": [{"patient_id": ids[0]}, {"patient_id": ids[5]}]}))[0]
    by_features = asyncio.run(
        model(
            {
                "instances": [
                    patient_instance(small_cohort, ra_spec, 0),
                    patient_instance(small_cohort, ra_spec, 5),
                ]
            }
        )
    )[0]
    for got, want in zip(by_id["predictions"], by_features["predictions"], strict=True):
        assert got == pytest.approx(want, abs=1e-12)
    with pytest.raises(InvalidInput, match=r"instances\[0\]\.patient_id: has no stored features") as err:
        asyncio.run(model({"instances": [{"patient_id": "NOT-A-PATIENT-42"}]}))
    assert "NOT-A-PATIENT-42" not in str(err.value)
