"""The kserve.Model in process, on real bundles: load checks, V1/V2 answers, champion reload."""

from __future__ import annotations

import asyncio
import json
import shutil

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest
from serving_testlib import patient_instance

from cohortlm.errors import DataError, SpecError
from cohortlm.models.bundle import BundleIntegrityError
from cohortlm.models.loaders import load_bundle
from cohortlm.store import registry
from serving.fastpath import CompiledBaseline, compile_baseline
from serving.model import CohortModel, load_served_bundle


def _run(model, body):
    return asyncio.run(model(body))[0]


def test_load_verifies_and_self_checks(promoted):
    model = CohortModel("ra_iorra", promoted, watch_interval=0)
    assert not model.ready
    assert model.load()
    model.start()
    assert model.ready
    assert model.version == json.loads((promoted / "bundle.json").read_text())["model_version"]
    assert isinstance(model.served.predictor, CompiledBaseline)


def test_v1_answer_has_probabilities_decisions_and_version(promoted, small_cohort, ra_spec):
    model = CohortModel("ra_iorra", promoted, watch_interval=0)
    model.load()
    instances = [patient_instance(small_cohort, ra_spec, i) for i in range(3)]
    out = _run(model, {"instances": instances})
    assert len(out["predictions"]) == 3
    assert set(out["predictions"][0]) == set(ra_spec.endpoint_names)
    reference = load_bundle(promoted).predict_proba(model.served.schema.rows_from_instances(instances))
    got = np.array([[p[e] for e in ra_spec.endpoint_names] for p in out["predictions"]])
    np.testing.assert_allclose(got, reference.to_numpy(), rtol=0, atol=1e-12)
    assert out["threshold_source"] == "default"
    assert out["decisions"][0] == {e: out["predictions"][0][e] >= 0.5 for e in ra_spec.endpoint_names}
    assert out["model_version"] == model.version


def test_bad_request_is_invalid_input(promoted, small_cohort, ra_spec):
    model = CohortModel("ra_iorra", promoted, watch_interval=0)
    model.load()
    bad = dict(patient_instance(small_cohort, ra_spec, 0), esr="high")
    with pytest.raises(InvalidInput, match=r"instances\[0\].esr: must be a number \(rule: type\)"):
        _run(model, {"instances": [bad]})


def test_v2_request(promoted, small_cohort, ra_spec):
    model = CohortModel("ra_iorra", promoted, watch_interval=0)
    model.load()
    rows = [patient_instance(small_cohort, ra_spec, i) for i in range(4)]
    inputs = []
    for f in ra_spec.features:
        values = [r[f.name] for r in rows]
        if f.type == "categorical":
            inputs.append(InferInput(f.name, [4], "BYTES", [v or "" for v in values]))
        else:
            inputs.append(InferInput(f.name, [4], "FP64", [np.nan if v is None else v for v in values]))
    response = _run(model, InferRequest(model_name="ra_iorra", infer_inputs=inputs, request_id="r1"))
    assert response.model_version == model.version
    names = [o.name for o in response.outputs]
    assert names[:2] == [ra_spec.endpoint_names[0], f"{ra_spec.endpoint_names[0]}_decision"]
    v1 = _run(model, {"instances": rows})
    got = response.outputs[0].data
    assert got == pytest.approx([p[ra_spec.endpoint_names[0]] for p in v1["predictions"]], abs=1e-12)


def test_thresholds_from_the_bundle(baseline_bundle, tmp_path, ra_spec, small_cohort):
    bundle = tmp_path / "b"
    shutil.copytree(baseline_bundle, bundle)
    thresholds = {e: 0.2 for e in ra_spec.endpoint_names}
    (bundle / "thresholds.json").write_text(json.dumps(thresholds))
    registry.promote(bundle, tmp_path / "store")
    model = CohortModel("ra_iorra", tmp_path / "store" / "ra_iorra" / "champion", watch_interval=0)
    model.load()
    out = _run(model, {"instances": [patient_instance(small_cohort, ra_spec, 0)]})
    assert out["threshold_source"] == "validation"
    assert out["thresholds"] == thresholds
    p = out["predictions"][0]
    assert out["decisions"][0] == {e: p[e] >= 0.2 for e in ra_spec.endpoint_names}


def test_bad_thresholds_refused(baseline_bundle, tmp_path, ra_spec):
    bundle = tmp_path / "b"
    shutil.copytree(baseline_bundle, bundle)
    (bundle / "thresholds.json").write_text(json.dumps({"das28_esr_high": 1.5}))
    with pytest.raises(SpecError, match="thresholds"):
        load_served_bundle(bundle, require_manifest=False)


def test_changed_byte_refused_at_load(promoted):
    target = promoted.resolve()
    data = bytearray((target / "model.skops").read_bytes())
    data[100] ^= 0xFF
    (target / "model.skops").write_bytes(bytes(data))
    model = CohortModel("ra_iorra", promoted, watch_interval=0)
    with pytest.raises(BundleIntegrityError, match="modified after promotion"):
        model.load()
    assert not model.ready


def test_unpromoted_refused_unless_allowed(baseline_bundle):
    with pytest.raises(BundleIntegrityError, match="only promoted bundles"):
        CohortModel("ra_iorra", baseline_bundle, watch_interval=0).load()
    assert CohortModel("ra_iorra", baseline_bundle, watch_interval=0, require_manifest=False).load()


def test_new_champion_is_picked_up_and_bad_one_is_not(baseline_bundle, second_bundle, store):
    registry.promote(baseline_bundle, store)
    pointer = store / "ra_iorra" / "champion"
    model = CohortModel("ra_iorra", pointer, watch_interval=0)
    model.load()
    v1 = model.version
    assert model.follows_pointer
    assert not model.check_for_new_champion()
    v2 = registry.promote(second_bundle, store)
    assert model.check_for_new_champion()
    assert model.version == v2 != v1
    # A champion that was tampered with is refused; the running version keeps serving.
    registry.rollback(store, "ra_iorra")
    (registry.champion(store, "ra_iorra") / "study.yaml").write_text("tampered: true\n")
    assert not model.check_for_new_champion()
    assert model.version == v2


def test_self_check_failure_is_refused(promoted, monkeypatch):
    from serving import model as model_module

    class Broken:
        def __init__(self, inner):
            self.spec, self.kind, self.version, self.path, self.name = (
                inner.spec,
                inner.kind,
                inner.version,
                inner.path,
                inner.name,
            )

        def predict_proba(self, rows):
            raise ValueError("weights are garbage")

    monkeypatch.setattr(model_module, "compile_baseline", lambda p: Broken(p))
    with pytest.raises(DataError, match="self-check failed"):
        load_served_bundle(promoted)


def test_fast_path_equals_scikit_learn_on_cohort_rows(baseline_bundle, small_cohort, ra_spec):
    predictor = load_bundle(baseline_bundle)
    fast = compile_baseline(predictor)
    assert isinstance(fast, CompiledBaseline)
    rows = small_cohort[ra_spec.feature_names].copy()
    rows.loc[rows.index[:20], "bmi"] = np.nan
    rows.loc[rows.index[:10], "sex"] = None
    want = predictor.predict_proba(rows).to_numpy()
    got = fast.predict_proba(rows).to_numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_partial_thresholds_fall_back_per_endpoint(baseline_bundle, tmp_path, ra_spec):
    bundle = tmp_path / "b"
    shutil.copytree(baseline_bundle, bundle)
    (bundle / "thresholds.json").write_text(json.dumps({"das28_esr_high": 0.3}))
    served = load_served_bundle(bundle, require_manifest=False)
    assert served.threshold_source == "mixed"
    assert served.thresholds["das28_esr_high"] == 0.3
    assert served.thresholds["jhaq_low"] == 0.5
