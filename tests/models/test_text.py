"""Prompt text: golden strings, no identifiers, one question per endpoint."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from cohortlm.cohort.study import study_from_dict
from cohortlm.models import text

SPEC = study_from_dict(
    {
        "name": "golden",
        "id_column": "pid",
        "features": [
            {"name": "age", "type": "numeric", "unit": "years", "group": "demographics",
             "description": "age"},
            {"name": "sex", "type": "categorical", "categories": ["female", "male"], "group": "demographics"},
            {"name": "mtx", "type": "binary", "group": "treatment", "description": "methotrexate"},
            {"name": "tjc28", "type": "integer", "unit": "joints", "group": "activity",
             "description": "tender joint count (28 joints)"},
            {"name": "crp", "type": "numeric", "unit": "mg/L", "group": "activity", "max_missing": 0.5},
        ],
        "endpoints": [
            {"name": "high", "column": "das_2y", "operator": ">", "threshold": 5.1,
             "description": "high disease activity at two years"},
            {"name": "remission", "column": "das_2y", "operator": "<", "threshold": 2.6,
             "question": "Will the disease be in remission in two years?"},
            {"name": "bare", "column": "das_2y", "operator": "<=", "threshold": 3.2},
        ],
        "split": {"sizes": {"train": 0.5, "validation": 0.25, "test": 0.25}, "seed": 0},
    }
)  # fmt: skip

ROW = {"pid": "SECRET-ID-42", "age": 63.25, "sex": "female", "mtx": 1, "tjc28": 4.0, "crp": float("nan")}

GOLDEN_PATIENT = (
    "Patient at the baseline visit.\n"
    "Demographics: age: 63.25 years; sex: female.\n"
    "Treatment: methotrexate: yes.\n"
    "Activity: tender joint count: 4 joints; crp: unknown.\n"
)
GOLDEN_QUESTIONS = [
    "Question: Will this patient have high disease activity at two years?\nAnswer:",
    "Question: Will the disease be in remission in two years?\nAnswer:",
    "Question: Will this patient have das_2y <= 3.2?\nAnswer:",
]


def test_prompt_version_is_pinned():
    # Changing the text invalidates fine-tuned models: bump PROMPT_VERSION and these goldens together.
    assert text.PROMPT_VERSION == "1"


def test_golden_patient_text():
    assert text.patient_text(ROW, SPEC) == GOLDEN_PATIENT


def test_golden_questions():
    assert text.questions(SPEC) == GOLDEN_QUESTIONS
    assert text.full_prompt(ROW, SPEC, SPEC.endpoints[0]) == GOLDEN_PATIENT + GOLDEN_QUESTIONS[0]


def test_no_identifier_and_no_outcome_in_text():
    row = {**ROW, "das_2y": 6.789}
    out = text.patient_text(row, SPEC)
    assert "SECRET-ID-42" not in out and "6.789" not in out


def test_patient_texts_match_row_function_and_handle_missing():
    df = pd.DataFrame([ROW, {**ROW, "sex": None, "mtx": 0, "age": math.nan}])
    texts = text.patient_texts(df, SPEC)
    assert texts[0] == GOLDEN_PATIENT
    assert "age: unknown" in texts[1] and "sex: unknown" in texts[1] and "methotrexate: no" in texts[1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.875, "0.875"), (10.0, "10"), (123.456, "123.5"), (1e-5, "1e-05")],
)
def test_number_format(value, expected):
    feature = SPEC.feature("crp")
    assert text.format_value(feature, value) == f"{expected} mg/L"


def test_ra_study_text_names_every_feature_group(ra_spec, small_cohort):
    texts = text.patient_texts(small_cohort.head(5), ra_spec)
    for t, pid in zip(texts, small_cohort[ra_spec.id_column].head(5), strict=True):
        assert str(pid) not in t
        assert t.startswith(text.HEADER)
        for group in ("Demographics:", "Treatment:", "Comorbidity:", "Disease activity:"):
            assert group in t
    assert len(text.questions(ra_spec)) == len(ra_spec.endpoints)


# The compact text (version 2): the same facts in about half the tokens.
GOLDEN_PATIENT_V2 = "age 63.2; sex female; tender joint count 4.\nYes: methotrexate.\nUnknown: crp.\n"
GOLDEN_QUESTIONS_V2 = [
    "Question: high?\nAnswer:",
    "Question: remission?\nAnswer:",
    "Question: bare?\nAnswer:",
]


def test_golden_compact_text():
    assert text.PROMPT_VERSIONS == ("1", "2")
    assert text.patient_text(ROW, SPEC, version="2") == GOLDEN_PATIENT_V2
    assert text.questions(SPEC, version="2") == GOLDEN_QUESTIONS_V2
    prompt = text.full_prompt(ROW, SPEC, SPEC.endpoints[1], version="2")
    assert prompt == GOLDEN_PATIENT_V2 + GOLDEN_QUESTIONS_V2[1]
    # version 1 stays the default and unchanged
    assert text.patient_text(ROW, SPEC) == GOLDEN_PATIENT


def test_compact_text_lists_true_binaries_and_missing_values_by_name():
    df = pd.DataFrame([ROW, {**ROW, "sex": None, "mtx": 0, "age": math.nan, "das_2y": 6.789}])
    texts = text.patient_texts(df, SPEC, version="2")
    assert texts[0] == GOLDEN_PATIENT_V2
    assert texts[1] == "tender joint count 4.\nUnknown: age, sex, crp.\n"  # a false binary is left out
    assert all("SECRET-ID-42" not in t and "6.789" not in t for t in texts)


def test_unknown_prompt_version_is_refused():
    with pytest.raises(ValueError, match="unknown prompt version '3'; known: 1, 2"):
        text.patient_text(ROW, SPEC, version="3")
    from cohortlm.models.llm.recipe import QLoRAConfig

    with pytest.raises(ValueError, match="prompt_version"):
        QLoRAConfig(prompt_version="3")


def test_compact_ra_text_is_about_half_as_long(ra_spec, small_cohort):
    rows = small_cohort.head(20)
    old = text.patient_texts(rows, ra_spec)
    new = text.patient_texts(rows, ra_spec, version="2")
    assert sum(map(len, new)) < 0.6 * sum(map(len, old))
    assert len(text.questions(ra_spec, version="2")) == len(ra_spec.endpoints)
