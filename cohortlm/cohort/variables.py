"""A study's variables: the features it reads and the endpoints (outcomes) it predicts.

Each is a frozen dataclass, built from its entry in the spec's ``features:`` or
``endpoints:`` list by :func:`parse_feature` or :func:`parse_endpoint`, which
check every key (:mod:`cohortlm.cohort.study` assembles the whole spec).

Real cohorts rarely arrive in the featurised shape; a feature can say how its column looks::

      - {name: sex, type: categorical, column: "Sex (1=M, 2=F)", categories: {1: male, 2: female}}
      - {name: grade, type: categorical, categories: [1, 2, 3]}        # codes that are the labels
      - {name: smoker, type: binary, true_values: ["yes"], false_values: ["no"]}
      - {name: diabetes, type: binary, true_values: [1], false_values: [2]}
    endpoints:
      - {name: died_1y, column: death_within_1y}   # a 0/1 or true/false column is the outcome itself

``column`` names the column in the data file (any header text), ``categories``
may map integer (or text) codes to labels, and ``true_values``/``false_values``
list what a binary column holds for yes and no (YAML reads an unquoted ``yes``
as true: both match yes/true/on). :func:`cohortlm.cohort.conform.conform_table`
turns such a file into the featurised table (columns named by feature, labels,
0/1). These keys are optional and left out of
:attr:`cohortlm.cohort.study.StudySpec.spec_hash` when unset, so existing specs
keep their hash.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from cohortlm.cohort.spec_checks import check_keys, check_name, check_number, shown, spec_error
from cohortlm.cohort.values import declared_keys

FeatureType = Literal["numeric", "integer", "binary", "categorical"]
FEATURE_TYPES: tuple[str, ...] = ("numeric", "integer", "binary", "categorical")
OPERATORS: dict[str, Any] = {
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
}

_FEATURE_KEYS = {
    "name",
    "type",
    "unit",
    "min",
    "max",
    "categories",
    "description",
    "group",
    "max_missing",
    "column",
    "true_values",
    "false_values",
}
_ENDPOINT_KEYS = {"name", "column", "operator", "threshold", "description", "question", "decision_threshold"}
#: An outcome column of text declares what it holds for a case and for a non-case.
_ENDPOINT_KEYS = _ENDPOINT_KEYS | {"true_values", "false_values"}


@dataclass(frozen=True)
class Feature:
    """One input column of the study.

    Attributes:
        name: column name (lower snake case).
        type: numeric, integer, binary (0/1) or categorical.
        unit: unit shown in prompts and reports (``"years"``, ``"mg/L"``).
        min: smallest valid value (numeric and integer).
        max: largest valid value (numeric and integer).
        categories: allowed values (categorical).
        description: what the column means, in words.
        group: feature group used by the feature store (``demographics``...).
        max_missing: largest allowed fraction of missing values, 0 to 1.
        column: the column's name in the data file when it differs from ``name``.
        category_codes: the code each category has in the data file, in the order of
            ``categories`` (integer-coded categories); None when the file holds the labels.
        true_values: what the data file holds for 1 (binary), besides 1 and true.
        false_values: what the data file holds for 0 (binary), besides 0 and false.
    """

    name: str
    type: FeatureType
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    description: str | None = None
    group: str = "features"
    max_missing: float = 0.0
    column: str | None = None
    category_codes: tuple[int | str, ...] | None = None
    true_values: tuple[bool | int | float | str, ...] | None = None
    false_values: tuple[bool | int | float | str, ...] | None = None

    @property
    def source_column(self) -> str:
        """The column holding this feature in the data file."""
        return self.column or self.name

    def categories_as_written(self) -> list[str] | list[int | str] | dict[int | str, str] | None:
        """``categories`` in the form the spec gave: labels, codes, or a code -> label mapping."""
        if self.categories is None:
            return None
        if self.category_codes is None:
            return list(self.categories)
        if all(str(c) == label for c, label in zip(self.category_codes, self.categories, strict=True)):
            return list(self.category_codes)
        return dict(zip(self.category_codes, self.categories, strict=True))


@dataclass(frozen=True)
class Endpoint:
    """A binary outcome: ``column operator threshold`` is a case.

    Attributes:
        name: endpoint name (lower snake case), used in scores and reports.
        column: the source column in the featurised table.
        operator: one of ``>``, ``>=``, ``<``, ``<=``.
        threshold: the cut-off applied to ``column``.
        description: what a case means, in words.
        question: the yes/no question asked of the LLM (derived from the
            description when omitted).
        decision_threshold: optional clinical decision threshold, a risk in (0, 1): a
            patient whose predicted risk is at least this is treated as a case (Table 1's
            operating point for every model, marked on the decision curve). When unset,
            each model's threshold is chosen on data (docs/cohorts.md).
    """

    name: str
    column: str
    operator: str
    threshold: float
    description: str | None = None
    question: str | None = None
    #: what the outcome column holds for a case (``Yes``) besides 1 and true; with false_values
    true_values: tuple[bool | int | float | str, ...] | None = None
    #: what the outcome column holds for a non-case (``No``) besides 0 and false
    false_values: tuple[bool | int | float | str, ...] | None = None
    decision_threshold: float | None = None

    def label(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """Binary labels (1 = case) for source values; NaN stays NaN."""
        arr = np.asarray(values, dtype=float)
        out = OPERATORS[self.operator](arr, self.threshold).astype(float)
        out[np.isnan(arr)] = np.nan
        return out

    @property
    def rule_text(self) -> str:
        """The definition as text, e.g. ``das28_esr_2y > 5.1``."""
        return f"{self.column} {self.operator} {self.threshold:g}"


def parse_feature(source: str, i: int, raw: Any) -> Feature:
    """The feature that item ``i`` of the spec's ``features:`` declares, every key checked."""
    key = f"features[{i}]"
    if not isinstance(raw, Mapping):
        raise spec_error(source, key, "must be a mapping with name and type")
    check_keys(source, f"{key}.", raw, _FEATURE_KEYS)
    if "name" not in raw:
        raise spec_error(source, f"{key}.name", "is required")
    name = check_name(source, f"{key}.name", raw["name"])
    key = f"features[{name}]"
    ftype = raw.get("type")
    if not isinstance(ftype, str) or ftype not in FEATURE_TYPES:
        raise spec_error(
            source, f"{key}.type", f"must be one of {', '.join(FEATURE_TYPES)}, got {shown(ftype)}"
        )
    lo = check_number(source, f"{key}.min", raw["min"]) if raw.get("min") is not None else None
    hi = check_number(source, f"{key}.max", raw["max"]) if raw.get("max") is not None else None
    if ftype in ("binary", "categorical") and (lo is not None or hi is not None):
        raise spec_error(source, f"{key}.min", f"min/max apply to numeric and integer features, not {ftype}")
    if lo is not None and hi is not None and lo > hi:
        raise spec_error(source, f"{key}.min", "must not exceed max")
    cats = raw.get("categories")
    codes: tuple[int | str, ...] | None = None
    if ftype == "categorical":
        categories, codes = _parse_categories(source, f"{key}.categories", cats)
    elif cats is not None:
        raise spec_error(source, f"{key}.categories", "only categorical features have categories")
    else:
        categories = None
    true_values = _parse_values(source, f"{key}.true_values", raw.get("true_values"), ftype)
    false_values = _parse_values(source, f"{key}.false_values", raw.get("false_values"), ftype)
    if (true_values is None) != (false_values is None):
        given, other = ("true_values", "false_values")
        if true_values is None:
            given, other = other, given
        raise spec_error(
            source, f"{key}.{other}", f"give {other} too: with {given} alone, the rest is ambiguous"
        )
    if true_values is not None and false_values is not None:
        _check_binary_values(source, key, true_values, false_values)
    column = raw.get("column")
    if column is not None:
        column = _column_name(source, f"{key}.column", column)
    max_missing = check_number(source, f"{key}.max_missing", raw.get("max_missing", 0.0))
    if not 0.0 <= max_missing <= 1.0:
        raise spec_error(source, f"{key}.max_missing", "must lie between 0 and 1")
    group = raw.get("group", "features")
    check_name(source, f"{key}.group", group)
    for text_key in ("unit", "description"):
        if raw.get(text_key) is not None and not isinstance(raw[text_key], str):
            raise spec_error(source, f"{key}.{text_key}", "must be a string")
    return Feature(
        name=name,
        type=cast(FeatureType, ftype),
        unit=raw.get("unit"),
        min=lo,
        max=hi,
        categories=categories,
        description=raw.get("description"),
        group=group,
        max_missing=max_missing,
        column=column,
        category_codes=codes,
        true_values=true_values,
        false_values=false_values,
    )


_MAX_COLUMN_CHARS = 200


def _column_name(source: str, key: str, value: Any) -> str:
    """A data file's column name: any header text, without control characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_COLUMN_CHARS:
        raise spec_error(
            source, key, f"must be the column's header text (1 to {_MAX_COLUMN_CHARS} characters)"
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise spec_error(source, key, "must not hold control characters (tabs, line breaks)")
    return value


def _code(value: Any) -> int | str | None:
    """A category code as given: an integer (1, or 1.0) or a non-empty string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def _parse_categories(
    source: str, key: str, cats: Any
) -> tuple[tuple[str, ...], tuple[int | str, ...] | None]:
    """Labels and codes from a list of labels, a list of integer codes, or a code -> label mapping."""
    hint = "give a list of labels ([female, male]), of codes ([1, 2, 3]) or a mapping ({1: male, 2: female})"
    if isinstance(cats, Mapping):
        if not cats:
            raise spec_error(source, key, f"a categorical feature needs categories; {hint}")
        codes = [_code(c) for c in cats]
        if any(c is None for c in codes):
            raise spec_error(source, key, "each code must be a whole number or a non-empty string")
        if len({type(c) for c in codes}) > 1:
            raise spec_error(source, key, "codes must be all numbers or all strings")
        labels = list(cats.values())
        if not all(isinstance(v, str) and v.strip() for v in labels):
            raise spec_error(source, key, "each code maps to a label, a non-empty string such as 'male'")
        if len(set(labels)) != len(labels):
            raise spec_error(source, key, "two codes map to the same label; merge the codes in the data")
        # A label that is also another category's code would make the featurised table ambiguous.
        code_text = {str(c): str(label) for c, label in zip(codes, labels, strict=True)}
        clash = [lab for lab in labels if lab in code_text and code_text[lab] != lab]
        if clash:
            raise spec_error(source, key, "a label must not be another category's code")
        return tuple(labels), tuple(c for c in codes if c is not None)
    if not isinstance(cats, list) or not cats:
        raise spec_error(source, key, f"a categorical feature needs categories; {hint}")
    if all(isinstance(c, str) for c in cats):
        if len(set(cats)) != len(cats):
            raise spec_error(source, key, "categories must be distinct")
        return tuple(cats), None
    codes = [_code(c) for c in cats]
    if any(c is None or isinstance(c, str) for c in codes):
        raise spec_error(source, key, f"mix of numbers and text; {hint}")
    if len(set(codes)) != len(codes):
        raise spec_error(source, key, "categories must be distinct")
    ints = tuple(c for c in codes if c is not None)
    return tuple(str(c) for c in ints), ints


def _parse_values(
    source: str, key: str, values: Any, ftype: str
) -> tuple[bool | int | float | str, ...] | None:
    if values is None:
        return None
    if ftype != "binary":
        raise spec_error(source, key, f"only binary features have true_values/false_values, not {ftype}")
    if not isinstance(values, list) or not values:
        raise spec_error(source, key, "must be a non-empty list such as [yes, 'Y'] or [1]")
    out: list[bool | int | float | str] = []
    for v in values:
        if isinstance(v, bool) or (isinstance(v, str) and v.strip()):
            out.append(v)
        elif isinstance(v, (int, float)) and math.isfinite(v):
            out.append(int(v) if float(v).is_integer() else float(v))
        else:
            raise spec_error(source, key, "each value must be a number, true/false or a non-empty string")
    return tuple(out)


def _binary_keys(values: Iterable[Any]) -> set[tuple[str, Any]]:
    """The data values a list of true/false values matches (see :func:`cohortlm.cohort.values.value_key`)."""
    return declared_keys(values)


def _check_binary_values(
    source: str, key: str, true_values: tuple[Any, ...], false_values: tuple[Any, ...]
) -> None:
    yes, no = _binary_keys(true_values), _binary_keys(false_values)
    if yes & no:
        raise spec_error(source, f"{key}.true_values", "a value is both in true_values and in false_values")
    # The featurised table holds 0/1: 1 meaning "no" (or 0 "yes") could not be told apart from it.
    if no & _binary_keys([1, True]):
        raise spec_error(
            source,
            f"{key}.false_values",
            "1 (or true) cannot mean no: the featurised table writes yes as 1. "
            "The fix is in the data: recode the column so that 1 means yes (e.g. 1 -> 0, 2 -> 1)",
        )
    if yes & _binary_keys([0, False]):
        raise spec_error(
            source,
            f"{key}.true_values",
            "0 (or false) cannot mean yes: the featurised table writes no as 0. "
            "The fix is in the data: recode the column so that 0 means no",
        )


def parse_endpoint(source: str, i: int, raw: Any) -> Endpoint:
    """The endpoint that item ``i`` of the spec's ``endpoints:`` declares, every key checked.

    Without ``operator`` and ``threshold`` the column is the outcome itself: 1 (or true) is a case.
    """
    key = f"endpoints[{i}]"
    if not isinstance(raw, Mapping):
        raise spec_error(source, key, "must be a mapping with name, column, operator and threshold")
    check_keys(source, f"{key}.", raw, _ENDPOINT_KEYS)
    for req in ("name", "column"):
        if req not in raw:
            raise spec_error(source, f"{key}.{req}", "is required")
    name = check_name(source, f"{key}.name", raw["name"])
    key = f"endpoints[{name}]"
    column = _column_name(source, f"{key}.column", raw["column"])
    if ("operator" in raw) != ("threshold" in raw):
        missing = "threshold" if "operator" in raw else "operator"
        raise spec_error(
            source,
            f"{key}.{missing}",
            "give operator and threshold together, or neither when the column is the outcome "
            "(0/1, true/false)",
        )
    # Neither: the column is the outcome itself, 1 or true a case.
    op = raw.get("operator", ">=")
    if not isinstance(op, str) or op not in OPERATORS:
        raise spec_error(source, f"{key}.operator", f"must be one of {', '.join(OPERATORS)}, got {shown(op)}")
    threshold = check_number(source, f"{key}.threshold", raw.get("threshold", 1))
    true_values, false_values = _endpoint_values(source, key, raw)
    for text_key in ("description", "question"):
        if raw.get(text_key) is not None and not isinstance(raw[text_key], str):
            raise spec_error(source, f"{key}.{text_key}", "must be a string")
    decision = raw.get("decision_threshold")
    if decision is not None:
        decision = check_number(source, f"{key}.decision_threshold", decision)
        if not 0.0 < decision < 1.0:
            raise spec_error(
                source,
                f"{key}.decision_threshold",
                f"must be a risk strictly between 0 and 1 (e.g. 0.10 to treat above 10 %), got {decision:g}",
            )
    return Endpoint(
        name=name,
        column=column,
        operator=op,
        threshold=threshold,
        description=raw.get("description"),
        question=raw.get("question"),
        true_values=true_values,
        false_values=false_values,
        decision_threshold=decision,
    )


def _endpoint_values(
    source: str, key: str, raw: Mapping[str, Any]
) -> tuple[tuple[bool | int | float | str, ...] | None, tuple[bool | int | float | str, ...] | None]:
    """An outcome column's declared yes/no values (``true_values: [Yes], false_values: [No]``), or None."""
    true_values = _parse_values(source, f"{key}.true_values", raw.get("true_values"), "binary")
    false_values = _parse_values(source, f"{key}.false_values", raw.get("false_values"), "binary")
    if (true_values is None) != (false_values is None):
        given, other = (
            ("true_values", "false_values") if false_values is None else ("false_values", "true_values")
        )
        raise spec_error(
            source, f"{key}.{other}", f"give {other} too: with {given} alone, the rest is ambiguous"
        )
    if true_values is None or false_values is None:
        return None, None
    # The column is the outcome itself (1 = a case): any other cut-off would mean something else.
    if raw.get("operator", ">=") != ">=" or raw.get("threshold", 1) != 1:
        raise spec_error(
            source,
            f"{key}.true_values",
            "true_values/false_values make the column the outcome itself: leave out operator and threshold",
        )
    _check_binary_values(source, key, true_values, false_values)
    return true_values, false_values
