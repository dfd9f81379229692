"""Patient row -> prompt text. Training, scoring and serving all call these functions.

A prompt has two parts, so that the patient text can be encoded once and
reused for every endpoint (see :mod:`cohortlm.models.llm.scoring`):

* the **patient text** (:func:`patient_text`): one line per feature group, each
  feature as ``description: value unit``; binary values as yes/no; missing
  values as ``unknown``. It never contains the patient identifier, the
  timestamp or any endpoint source column, only the spec's features;
* one **question** per endpoint (:func:`question_text`): the endpoint's
  ``question`` when the spec gives one, otherwise
  ``Will this patient have <description>?``, followed by ``Answer:``. The model
  answers with the next token, `` Yes`` or `` No`` (:data:`ANSWERS`).

Example (RA study, abridged)::

    Patient at the baseline visit.
    Demographics: age at baseline: 51.9 years; sex: female; ...
    Treatment: methotrexate: yes; methotrexate weekly dose: 10 mg/week; ...
    Question: Will this patient have high disease activity by DAS28-ESR (> 5.1) at two years?
    Answer: Yes

Any change to the wording changes what a fine-tuned model has learnt, so the
text is versioned (:data:`PROMPT_VERSION`, recorded in LLM bundles) and pinned
by golden tests.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from cohortlm.cohort.study import Endpoint, Feature, StudySpec

PROMPT_VERSION = "1"
HEADER = "Patient at the baseline visit."
ANSWERS = (" Yes", " No")  # the positive answer first
MISSING = "unknown"


def _format_number(value: float, feature: Feature) -> str:
    if feature.type == "integer":
        return str(round(value))
    # four significant digits: laboratory precision, and few tokens
    return f"{value:.4g}"


def format_value(feature: Feature, value: Any) -> str:
    """One feature value as text: numbers with their unit, binary as yes/no, missing as ``unknown``."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return MISSING
    if feature.type == "categorical":
        return str(value)
    if feature.type == "binary":
        return "yes" if float(value) >= 0.5 else "no"
    text = _format_number(float(value), feature)
    return f"{text} {feature.unit}" if feature.unit else text


def _group_title(group: str) -> str:
    return group.replace("_", " ").capitalize()


_GLOSS_RE = re.compile(r"\s*\([^)]*\)")


def feature_label(feature: Feature) -> str:
    """What a feature is called in the text: its description, else its name in words.

    A parenthetical gloss in the description (``"(0-100 mm VAS)"``, a list of
    drug names) is dropped: the unit already says it, and it would cost tokens
    for every patient.
    """
    if feature.description:
        label = _GLOSS_RE.sub("", feature.description).strip()
        if label:
            return label
    return feature.name.replace("_", " ")


def patient_text(row: Mapping[str, Any] | pd.Series, spec: StudySpec) -> str:
    """The patient part of the prompt (ends with a newline), from the spec's features only.

    Args:
        row: one patient's values by column name; other columns are ignored.
        spec: the study; its feature order, groups, units and descriptions shape the text.
    """
    groups: dict[str, list[str]] = {}
    for f in spec.features:
        groups.setdefault(f.group, []).append(f"{feature_label(f)}: {format_value(f, row.get(f.name))}")
    lines = [HEADER]
    lines += [f"{_group_title(g)}: {'; '.join(items)}." for g, items in groups.items()]
    return "\n".join(lines) + "\n"


def question_text(endpoint: Endpoint) -> str:
    """The question for one endpoint, ending in ``Answer:`` (the answer token follows)."""
    if endpoint.question:
        question = endpoint.question.strip()
    elif endpoint.description:
        question = f"Will this patient have {endpoint.description.strip()}?"
    else:
        question = f"Will this patient have {endpoint.rule_text}?"
    return f"Question: {question}\nAnswer:"


def questions(spec: StudySpec) -> list[str]:
    """The question text of every endpoint, in spec order."""
    return [question_text(e) for e in spec.endpoints]


def patient_texts(df: pd.DataFrame, spec: StudySpec) -> list[str]:
    """:func:`patient_text` for every row of ``df``, in row order."""
    cols = [c for c in spec.feature_names if c in df.columns]
    records = df[cols].astype(object).where(df[cols].notna(), None).to_dict("records")
    return [patient_text(r, spec) for r in records]


def full_prompt(row: Mapping[str, Any] | pd.Series, spec: StudySpec, endpoint: Endpoint) -> str:
    """The whole prompt for one endpoint: patient text then question (what a naive scorer feeds)."""
    return patient_text(row, spec) + question_text(endpoint)
