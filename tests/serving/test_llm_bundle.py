"""An LLM bundle (tiny random Llama + LoRA, built in code) behind the same server code as the baseline."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest
from serving_testlib import patient_instance

from cohortlm.models.loaders import load_bundle
from cohortlm.store import registry
from serving.model import CohortModel


@pytest.fixture(scope="module")
def llm_bundle(tmp_path_factory, small_cohort, ra_spec):
    from cohortlm.models.llm.qlora import train_qlora
    from cohortlm.run.profiles import get_profile

    smoke = get_profile("smoke")
    config = dataclasses.replace(smoke.qlora, max_steps=2, max_train_rows=8)
    out = tmp_path_factory.mktemp("llm") / "bundle"
    return train_qlora(
        small_cohort, ra_spec, config, out_dir=out, base_model=smoke.base_model, progress=False
    )


@pytest.mark.slow
def test_llm_bundle_is_served(llm_bundle, tmp_path, small_cohort, ra_spec):
    registry.promote(llm_bundle, tmp_path / "store")
    model = CohortModel("ra_iorra", tmp_path / "store" / "ra_iorra" / "champion", watch_interval=0)
    model.load()
    assert model.served.kind == "llm"
    instances = [patient_instance(small_cohort, ra_spec, i) for i in range(2)]
    out = asyncio.run(model({"instances": instances}))[0]
    assert out["model_kind"] == "llm"
    got = np.array([[p[e] for e in ra_spec.endpoint_names] for p in out["predictions"]])
    want = load_bundle(llm_bundle).predict_proba(model.served.schema.rows_from_instances(instances))
    np.testing.assert_allclose(got, want.to_numpy(), rtol=0, atol=1e-6)
