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
text is versioned (:data:`PROMPT_VERSIONS`; the version a model was trained with
is recorded in its LLM bundle and scored with again) and pinned by golden tests.

Version ``"1"`` is the wording above (the seed's: ~290 tokens of patient text
and ~27 per question on the RA study with the default tokenizer, ~510 per
patient). Version ``"2"`` is the compact one (:func:`patient_text` with
``version="2"``): the same facts in about half the tokens, ~170 + 8 x 9:

    age at baseline 51.9; sex female; ...; DAS28-ESR 3.21; J-HAQ disability index 1.12.
    Yes: rheumatoid factor positive, methotrexate, oral glucocorticoid.
    Unknown: body-mass index.
    Question: das28 esr high?
    Answer: Yes

No header line, no group titles and no units (the label says what is
measured), numbers to three significant digits, binary features listed by
name when true (absent when false), missing values listed by name, and the
endpoint's name in words as the question. Every token of it runs through the
whole frozen trunk, so tokens are the trunk's cost (``benchmarks/bench_trunk.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from cohortlm.cohort.study import StudySpec
from cohortlm.cohort.variables import Endpoint, Feature

#: The default prompt version (the seed's wording); profiles choose theirs (``qlora.prompt_version``).
PROMPT_VERSION = "1"
#: Every version a bundle may record; the text of each is pinned by golden tests.
PROMPT_VERSIONS = ("1", "2")
HEADER = "Patient at the baseline visit."
ANSWERS = (" Yes", " No")  # the positive answer first
MISSING = "unknown"


def check_version(version: str) -> str:
    """``version`` if it is a known prompt version.

    Raises:
        ValueError: naming the version and the known ones.
    """
    if version not in PROMPT_VERSIONS:
        raise ValueError(f"unknown prompt version {version!r}; known: {', '.join(PROMPT_VERSIONS)}")
    return version


def _format_number(value: float, feature: Feature, digits: int = 4) -> str:
    if feature.type == "integer":
        return str(round(value))
    # four significant digits: laboratory precision, and few tokens (three in the compact text)
    return f"{value:.{digits}g}"


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def format_value(feature: Feature, value: Any) -> str:
    """One feature value as text: numbers with their unit, binary as yes/no, missing as ``unknown``."""
    if _is_missing(value):
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


def _compact_patient_text(row: Mapping[str, Any] | pd.Series, spec: StudySpec) -> str:
    values: list[str] = []
    true: list[str] = []
    unknown: list[str] = []
    for f in spec.features:
        value: Any = row.get(f.name)
        label = feature_label(f)
        if _is_missing(value):
            unknown.append(label)
        elif f.type == "binary":
            if float(value) >= 0.5:
                true.append(label)
        elif f.type == "categorical":
            values.append(f"{label} {value}")
        else:
            values.append(f"{label} {_format_number(float(value), f, digits=3)}")
    lines = [f"{'; '.join(values)}."] if values else []
    if true:
        lines.append(f"Yes: {', '.join(true)}.")
    if unknown:
        lines.append(f"Unknown: {', '.join(unknown)}.")
    return "\n".join(lines) + "\n"


def patient_text(
    row: Mapping[str, Any] | pd.Series, spec: StudySpec, *, version: str = PROMPT_VERSION
) -> str:
    """The patient part of the prompt (ends with a newline), from the spec's features only.

    Args:
        row: one patient's values by column name; other columns are ignored.
        spec: the study; its feature order, groups, units and descriptions shape the text.
        version: the prompt version (:data:`PROMPT_VERSIONS`).
    """
    if check_version(version) == "2":
        return _compact_patient_text(row, spec)
    groups: dict[str, list[str]] = {}
    for f in spec.features:
        groups.setdefault(f.group, []).append(f"{feature_label(f)}: {format_value(f, row.get(f.name))}")
    lines = [HEADER]
    lines += [f"{_group_title(g)}: {'; '.join(items)}." for g, items in groups.items()]
    return "\n".join(lines) + "\n"


def question_text(endpoint: Endpoint, *, version: str = PROMPT_VERSION) -> str:
    """The question for one endpoint, ending in ``Answer:`` (the answer token follows)."""
    if check_version(version) == "2":
        return f"Question: {endpoint.name.replace('_', ' ')}?\nAnswer:"
    if endpoint.question:
        question = endpoint.question.strip()
    elif endpoint.description:
        question = f"Will this patient have {endpoint.description.strip()}?"
    else:
        question = f"Will this patient have {endpoint.rule_text}?"
    return f"Question: {question}\nAnswer:"


def questions(spec: StudySpec, *, version: str = PROMPT_VERSION) -> list[str]:
    """The question text of every endpoint, in spec order."""
    return [question_text(e, version=version) for e in spec.endpoints]


def patient_texts(df: pd.DataFrame, spec: StudySpec, *, version: str = PROMPT_VERSION) -> list[str]:
    """:func:`patient_text` for every row of ``df``, in row order."""
    check_version(version)
    cols = [c for c in spec.feature_names if c in df.columns]
    records = df[cols].astype(object).where(df[cols].notna(), None).to_dict("records")
    return [patient_text(r, spec, version=version) for r in records]


def full_prompt(
    row: Mapping[str, Any] | pd.Series, spec: StudySpec, endpoint: Endpoint, *, version: str = PROMPT_VERSION
) -> str:
    """The whole prompt for one endpoint: patient text then question (what a naive scorer feeds)."""
    return patient_text(row, spec, version=version) + question_text(endpoint, version=version)
