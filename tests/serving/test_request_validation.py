"""Request checks: every rule gives 400-worthy errors naming field and rule, never the value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from serving_testlib import patient_instance

from serving.validation import RequestError, RequestSchema


@pytest.fixture(scope="module")
def schema(ra_spec):
    return RequestSchema(ra_spec, max_batch=8)


@pytest.fixture(scope="module")
def instance(small_cohort, ra_spec):
    return patient_instance(small_cohort, ra_spec, 0)


def test_valid_instances_become_rows(schema, instance, ra_spec):
    rows = schema.rows_from_instances([instance, instance])
    assert list(rows.columns) == ra_spec.feature_names
    assert len(rows) == 2
    assert rows["sex"].tolist() == [instance["sex"]] * 2


@pytest.mark.parametrize(
    ("field", "value", "rule", "text"),
    [
        ("age", "61.4321", "type", "must be a number"),
        ("age", 173.25, "range", "must lie in [16, 100]"),
        ("tjc28", 3.5, "type", "must be an integer"),
        ("methotrexate", 7, "type", "must be 0 or 1"),
        ("sex", "unknown-sex-97", "categories", "must be one of female, male"),
        ("sex", 7315, "type", "must be text"),
        ("age", True, "type", "not true/false"),
        ("tjc28", None, "missing", "is required"),
    ],
)
def test_each_rule_names_field_and_rule_not_value(schema, instance, field, value, rule, text):
    bad = dict(instance, **{field: value})
    with pytest.raises(RequestError) as err:
        schema.rows_from_instances([instance, bad])
    message = str(err.value)
    assert message.startswith(f"instances[1].{field}: ")
    assert f"(rule: {rule})" in message
    assert text in message
    if value is not None and not isinstance(value, bool):
        assert str(value) not in message


def test_missing_allowed_where_the_spec_allows_it(schema, instance):
    rows = schema.rows_from_instances([dict(instance, bmi=None, acpa_positive=None)])
    assert math.isnan(rows["bmi"].iloc[0])


def test_absent_required_field_and_unknown_field(schema, instance):
    row = dict(instance)
    del row["esr"]
    with pytest.raises(RequestError, match=r"instances\[0\].esr: is required \(rule: missing\)"):
        schema.rows_from_instances([row])
    # The key is never named (a key can be a value): its object and position are.
    with pytest.raises(
        RequestError, match=r"instances\[0\]: has an unknown field \(field 30 of 30\).*\(rule: unknown\)"
    ):
        schema.rows_from_instances([dict(instance, favourite_colour="blue")])
    with pytest.raises(RequestError) as err:
        schema.rows_from_instances([dict(instance, ZZPHI4242=1)])
    assert "ZZPHI4242" not in str(err.value)
    with pytest.raises(RequestError) as err:
        schema.rows_from_instances([dict(instance, **{"Jane Doe, 1970-01-01": 1})])
    assert "Jane" not in str(err.value)


def test_batch_limits(schema, instance):
    with pytest.raises(RequestError, match="rule: type"):
        schema.rows_from_instances([])
    with pytest.raises(RequestError, match="rule: batch"):
        schema.rows_from_instances([instance] * 9)
    with pytest.raises(RequestError, match="rule: type"):
        schema.rows_from_instances({"age": 1})


def test_patient_id_only_uses_the_lookup(schema, instance):
    calls = []

    def lookup(ids):
        calls.append(list(ids))
        return [instance if pid == "P1" else None for pid in ids]

    rows = schema.rows_from_instances([{"patient_id": "P1"}, instance], lookup=lookup)
    assert calls == [["P1"]]
    assert rows.iloc[0].equals(rows.iloc[1])
    with pytest.raises(RequestError, match=r"instances\[0\].patient_id: has no stored features") as err:
        schema.rows_from_instances([{"patient_id": "P-SECRET-9"}], lookup=lookup)
    assert "P-SECRET-9" not in str(err.value)
    with pytest.raises(RequestError, match="rule: lookup"):
        schema.rows_from_instances([{"patient_id": "P1"}])


def _tensors(instance, spec, n=3):
    tensors, types = {}, {}
    for f in spec.features:
        v = instance[f.name]
        if f.type == "categorical":
            arr = np.array([(v or "").encode()] * n, dtype=object)
            types[f.name] = "BYTES"
        elif f.type == "integer":
            arr = np.array([v] * n, dtype=np.int64)
            types[f.name] = "INT64"
        else:
            arr = np.array([np.nan if v is None else v] * n, dtype=np.float64)
            types[f.name] = "FP64"
        tensors[f.name] = lambda a=arr: a
    return tensors, types


def test_v2_tensors_become_rows(schema, instance, ra_spec):
    tensors, types = _tensors(instance, ra_spec)
    rows = schema.rows_from_tensors(tensors, types)
    expect = schema.rows_from_instances([instance] * 3)
    assert rows.equals(expect)


def test_v2_rules(schema, instance, ra_spec):
    tensors, types = _tensors(instance, ra_spec)
    bad = dict(tensors, age=lambda: np.array([30.0, 250.0, 40.0]))
    with pytest.raises(RequestError, match=r"inputs\[age\]: values must lie in \[16, 100\] \(rule: range\)"):
        schema.rows_from_tensors(bad, types)
    with pytest.raises(RequestError, match=r"inputs\[sex\]: must be a BYTES tensor"):
        schema.rows_from_tensors(dict(tensors, sex=lambda: np.zeros(3)), dict(types, sex="FP64"))

    def undecodable():
        return np.array(["sixty", "1", "2"], dtype=np.float64)

    with pytest.raises(
        RequestError, match=r"inputs\[age\]: could not be decoded as FP64 \(rule: type\)"
    ) as err:
        schema.rows_from_tensors(dict(tensors, age=undecodable), types)
    assert "sixty" not in str(err.value)
    short = dict(tensors, age=lambda: np.array([30.0]))
    with pytest.raises(RequestError, match="rule: shape"):
        schema.rows_from_tensors(short, types)
    del tensors["esr"]
    with pytest.raises(RequestError, match=r"inputs\[esr\]: is required"):
        schema.rows_from_tensors(tensors, types)


def test_example_row_is_valid(schema):
    rows = schema.rows_from_instances([schema.example_row()])
    assert len(rows) == 1
