"""The one safe YAML loader: aliases, size, duplicate keys, depth, tags; and the spec's type checks."""

from __future__ import annotations

import time

import pytest

from cohortlm.cohort.study import load_study, study_from_dict
from cohortlm.errors import SpecError
from cohortlm.yamlsafe import MAX_YAML_BYTES, load_yaml_file, load_yaml_text


@pytest.mark.parametrize(
    "text,message",
    [
        ("a: 1\na: 2\n", "a: the key is given twice"),
        ("f:\n  - {name: x, name: y}\n", r"f\[0\]\.name: the key is given twice"),
        ("x: &a [1, 2]\ny: *a\n", "aliases"),
        ("a: " + "[" * 100 + "]" * 100, "nested deeper"),
        ("a: !!python/object:os.system ls\n", "not valid YAML"),
        ("a: [1,\n", "not valid YAML"),
    ],
)
def test_refused(text, message):
    with pytest.raises(SpecError, match=message):
        load_yaml_text(text, source="s.yaml")


def test_an_alias_bomb_is_refused_at_once():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    start = time.monotonic()
    with pytest.raises(SpecError, match="aliases"):
        load_yaml_text("\n".join(lines))
    assert time.monotonic() - start < 2


def test_size_limit_is_checked_before_reading(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" + "#" * (MAX_YAML_BYTES + 10), encoding="utf-8")
    start = time.monotonic()
    with pytest.raises(SpecError, match="larger than"):
        load_yaml_file(big)
    assert time.monotonic() - start < 1


def test_a_quoted_tag_is_not_repeated():
    with pytest.raises(SpecError) as err:
        load_yaml_text("a: !ZZPHI4242 x\n")
    assert "ZZPHI4242" not in str(err.value)


def test_plain_data_loads(tmp_path):
    p = tmp_path / "ok.yaml"
    p.write_text("a: [1, 2.5, true, null, text]\nb: {c: d}\n", encoding="utf-8")
    assert load_yaml_file(p) == {"a": [1, 2.5, True, None, "text"], "b": {"c": "d"}}
    assert load_yaml_text("") is None


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d["endpoints"][0].update(operator=[">"]), r"operator: must be one of .*got a list"),
        (lambda d: d["features"][0].update(type={"a": 1}), r"type: must be one of .*got a mapping"),
        (lambda d: d.update(featuriser=["ra_visits"]), r"featuriser: unknown featuriser a list"),
        (lambda d: d.update({1: "x"}), r"unknown key"),
    ],
)
def test_study_types_are_checked(change, message):
    data = load_study("ra_iorra").to_dict()
    change(data)
    with pytest.raises(SpecError, match=message):
        study_from_dict(data, source="s.yaml")


def test_a_multi_document_stream_is_read_with_the_same_refusals():
    from cohortlm.yamlsafe import load_yaml_documents

    assert load_yaml_documents("a: 1\n---\nb: [2]\n", source="ir.yaml") == [{"a": 1}, {"b": [2]}]
    with pytest.raises(SpecError, match=r"ir\.yaml"):
        load_yaml_documents("a: 1\n---\nb: &x [1]\nc: *x\n", source="ir.yaml")
    with pytest.raises(SpecError, match=r"ir\.yaml"):
        load_yaml_documents("a: 1\n---\nb: 1\nb: 2\n", source="ir.yaml")
