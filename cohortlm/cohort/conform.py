"""A cohort file as its owner exported it -> the featurised table the rest of cohortlm reads.

The study spec says how each column looks in the file (see :mod:`cohortlm.cohort.study`):

* ``column:`` the file's header for a feature -> the column is renamed to the feature's name;
* ``categories: {1: male, 2: female}`` (or ``[1, 2, 3]``) -> codes become labels;
* ``true_values``/``false_values`` on a binary feature -> 1/0; true/false always become 1/0;
* an outcome column of true/false -> 1/0, and one of text -> 1/0 as its endpoint's
  ``true_values``/``false_values`` declare (``Yes``/``No``).

:func:`conform_table` is idempotent: a table it already conformed comes back
unchanged, so ``cohortlm validate`` can take either the file as exported or the
output of ``cohortlm featurise``. Values it cannot map are left as they are, so
that validation counts them (``in_set``, ``binary``); the notes it returns say
how many rows and whether the fix is in the data or in the spec. Neither notes
nor errors carry a value from the file (a code can be a patient's value), only
column names and counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cohortlm.cohort.values import declared_keys, value_key
from cohortlm.errors import DataError

if TYPE_CHECKING:
    from cohortlm.cohort.study import StudySpec
    from cohortlm.cohort.variables import Feature


@dataclass
class ConformResult:
    """The conformed table and what a person should know about it."""

    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)


def _map_unique(series: pd.Series, mapping: dict[Any, Any]) -> tuple[pd.Series, int]:
    """Map each distinct value through ``mapping`` (key -> new value); unmapped values stay.

    Returns the new series and the number of non-missing rows left unmapped.
    """
    uniques = pd.unique(series.dropna())
    lookup: dict[Any, Any] = {}
    unmapped_values = []
    for u in uniques:
        key = value_key(u)
        if key in mapping:
            lookup[u] = mapping[key]
        else:
            lookup[u] = u
            if key is not None:
                unmapped_values.append(u)
    if not lookup:
        return series, 0
    out = series.map(lookup)
    unmapped = int(series.isin(unmapped_values).sum()) if unmapped_values else 0
    return out, unmapped


def _conform_categorical(series: pd.Series, f: Feature) -> tuple[pd.Series, str | None]:
    labels = f.categories or ()
    mapping: dict[Any, Any] = {("s", lab.strip().casefold()): lab for lab in labels}
    for code, label in zip(f.category_codes or (), labels, strict=True):
        key = value_key(code)
        if key is not None:
            mapping[key] = label
    out, unmapped = _map_unique(series, mapping)
    out = out.astype(object).where(out.notna(), None)
    note = None
    if unmapped:
        what = "codes" if f.category_codes else "values"
        note = (
            f"{f.name}: {unmapped:,} row(s) hold {what} that are not among its {len(labels)} categories; "
            "if they are errors the fix is in the data, if they are real categories add them to the spec"
        )
    return out, note


def _conform_binary(series: pd.Series, f: Feature) -> tuple[pd.Series, str | None]:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("int64"), None
    if f.true_values is None and pd.api.types.is_numeric_dtype(series.dtype):
        return series, None
    mapping: dict[Any, Any] = {("b", True): 1, ("b", False): 0, ("n", 1.0): 1, ("n", 0.0): 0}
    if f.true_values is not None and f.false_values is not None:
        mapping.update(dict.fromkeys(declared_keys(f.true_values), 1))
        mapping.update(dict.fromkeys(declared_keys(f.false_values), 0))
    out, unmapped = _map_unique(series, mapping)
    note = None
    if unmapped:
        if f.true_values is None:
            note = (
                f"{f.name}: {unmapped:,} row(s) hold something other than 0/1 or true/false; if the column "
                "codes yes and no otherwise (yes/no, 1/2), declare true_values and false_values in the spec"
            )
        else:
            note = (
                f"{f.name}: {unmapped:,} row(s) hold a value in neither true_values nor false_values; "
                "the fix is in the data (or add the value to one of the two lists)"
            )
    else:
        out = pd.to_numeric(out, errors="coerce")
    return out, note


def _conform_outcome(
    series: pd.Series, column: str, true_values: Iterable[Any] | None, false_values: Iterable[Any] | None
) -> tuple[pd.Series, str | None]:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("int64"), None
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series, None
    present = series.dropna()
    if len(present) and all(isinstance(v, (bool, np.bool_)) for v in pd.unique(present)):
        return series.map({True: 1.0, False: 0.0}).astype(float), None
    if true_values is None or false_values is None:
        return series, (
            f"outcome column {column} holds text; an outcome must be numbers or true/false. The fix is "
            "in the data, or, when the column holds one word for a case and one for a non-case, the "
            "endpoint declares them: true_values: [Yes], false_values: [No]"
        )
    mapping: dict[Any, Any] = {("b", True): 1.0, ("b", False): 0.0, ("n", 1.0): 1.0, ("n", 0.0): 0.0}
    mapping.update(dict.fromkeys(declared_keys(true_values), 1.0))
    mapping.update(dict.fromkeys(declared_keys(false_values), 0.0))
    out, unmapped = _map_unique(series, mapping)
    if unmapped:
        return out, (
            f"outcome column {column}: {unmapped:,} row(s) hold a value in neither true_values nor "
            "false_values; the fix is in the data (or add the value to one of the two lists)"
        )
    return pd.to_numeric(out, errors="coerce").astype(float), None


def conform_table(table: pd.DataFrame, spec: StudySpec, *, what: str = "the data") -> ConformResult:
    """Rename mapped columns and turn codes into labels and 0/1, as the spec declares.

    Args:
        table: the cohort as read from its file (one row per patient), or a table
            already conformed (then it comes back unchanged).
        spec: the study.
        what: how to name the table in messages.

    Raises:
        DataError: a mapped column and a column with the feature's name are both
            present (which one is meant cannot be told).
    """
    renames: dict[str, str] = {}
    for f in spec.features:
        if f.column is None or f.column == f.name or f.column not in table.columns:
            continue
        if f.name in table.columns:
            raise DataError(
                f"{what} has both column '{f.column}' (features[{f.name}].column) and a column named "
                f"{f.name}; drop or rename one in the data"
            )
        renames[f.column] = f.name
    out = table.rename(columns=renames) if renames else table.copy(deep=False)
    notes: list[str] = []
    for f in spec.features:
        if f.name not in out.columns:
            continue
        note = None
        if f.type == "categorical" and f.category_codes is not None:
            out[f.name], note = _conform_categorical(out[f.name], f)
        elif f.type == "categorical" and pd.api.types.is_numeric_dtype(out[f.name].dtype):
            note = (
                f"{f.name} holds numbers but its categories are labels; if the numbers are codes, "
                "say so in the spec: categories: {1: label, 2: label, ...} (or a list of the codes)"
            )
        elif f.type == "binary":
            out[f.name], note = _conform_binary(out[f.name], f)
        if note:
            notes.append(note)
    for column in spec.endpoint_columns:
        if column in out.columns:
            declared = next((e for e in spec.endpoints if e.column == column and e.true_values), None)
            out[column], note = _conform_outcome(
                out[column],
                column,
                declared.true_values if declared else None,
                declared.false_values if declared else None,
            )
            if note:
                notes.append(note)
    return ConformResult(table=out, notes=notes, renamed=renames)
