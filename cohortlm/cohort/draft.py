"""Draft a study spec from a cohort file: what ``cohortlm init-study --data F`` writes for a person to edit.

Every column but the id and the outcomes becomes a feature whose type, range,
categories and allowed share of missing values are guessed from the data; each
guess a person should check carries a comment. Headers that are not lower
snake case get a snake-case name and ``column:`` with the header.

The draft is written for the data's owner, but it still holds as little of the
data as a spec needs: ranges lie strictly outside the data's on a coarse grid
(never one patient's exact value), categories are listed only when each holds
at least :data:`MIN_CATEGORY_ROWS` rows, and text columns with many distinct
values (free text, names, identifiers) are left out with a comment. Nothing from the
file is printed.

A range is drafted from the bulk of a column, not from a single extreme value:
values farther than :data:`FAR_IQR` interquartile ranges beyond the quartiles
(a planted 1,000,000 among ages) are left outside it, the line says so, and
:attr:`Draft.warnings` names the column (never the value) for the command to
print; validation then counts those rows until the data or the range is fixed.

An outcome column of text with two values becomes an endpoint with
``true_values``/``false_values``: common pairs (yes/no, y/n, true/false,
positive/negative, present/absent, 1/0, in any case) are recognised; any other
two values are drafted with the rarer one as a case and a comment to check it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cohortlm.errors import DataError, UsageError

MIN_CATEGORY_ROWS = 5
MAX_CATEGORIES = 20
FEW_CODES = 10
_ID_NAME = re.compile(r"(^|_)(id|patient|subject|mrn|record|case)(_|$)")
_YES_WORDS = {"yes", "y", "true", "t"}
_NO_WORDS = {"no", "n", "false", "f"}
#: Values this many interquartile ranges beyond the quartiles are far outside the rest.
FAR_IQR = 10.0
#: Outcome words for a case and for a non-case (case-folded), recognised in pairs.
OUTCOME_PAIRS: tuple[tuple[str, str], ...] = (
    ("yes", "no"),
    ("y", "n"),
    ("true", "false"),
    ("t", "f"),
    ("positive", "negative"),
    ("pos", "neg"),
    ("present", "absent"),
    ("1", "0"),
)


@dataclass
class Draft:
    """The drafted spec text and what was decided, for the summary a person reads."""

    text: str
    id_column: str
    kinds: dict[str, int] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)
    endpoints: int = 0
    #: lines for the person to read (column names and counts only, never a value)
    warnings: list[str] = field(default_factory=list)


def snake_name(header: str) -> str:
    """A lower snake_case name for a header (``"LVEF %"`` -> ``lvef``, ``"1st visit"`` -> ``x1st_visit``)."""
    text = re.sub(r"[^0-9a-zA-Z]+", "_", str(header)).strip("_").lower()
    text = re.sub(r"_+", "_", text) or "column"
    return text if text[0].isalpha() else f"x{text}"


def _range(lo: float, hi: float, *, whole: bool) -> tuple[float, float]:
    """A min/max strictly outside the data's, on a grid of half the range's order of magnitude.

    The bounds never equal a patient's value (a 15 becomes 10, a 69 becomes 70
    for a range of 54), and non-negative data keep a lower bound of 0 at most.
    """
    spread = hi - lo if hi > lo else max(abs(hi), 1.0)
    step = 10 ** math.floor(math.log10(spread)) / 2
    a, b = lo / step, hi / step
    low = (math.floor(a) - (1 if float(a).is_integer() else 0)) * step
    high = (math.ceil(b) + (1 if float(b).is_integer() else 0)) * step
    if lo >= 0 > low:
        low = 0.0
    if whole:
        low, high = math.floor(low), math.ceil(high)
    return float(round(low, 10)), float(round(high, 10))


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else float(x)


def _missing_share(series: pd.Series) -> float:
    share = float(series.isna().mean())
    return 0.0 if share == 0 else min(1.0, math.ceil(share * 100) / 100)


def _flow(entry: dict[str, Any]) -> str:
    return yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=10_000).strip()


def _is_bool_column(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values.dtype):
        return True
    return bool(len(values)) and all(isinstance(v, (bool, np.bool_)) for v in pd.unique(values))


def _far_outside(values: np.ndarray) -> np.ndarray:
    """Which values lie more than :data:`FAR_IQR` interquartile ranges beyond the quartiles."""
    q1, q3 = np.quantile(values, [0.25, 0.75])
    spread = q3 - q1
    if spread <= 0:
        return np.zeros(len(values), dtype=bool)
    return (values < q1 - FAR_IQR * spread) | (values > q3 + FAR_IQR * spread)


def _feature(name: str, header: str, series: pd.Series) -> tuple[dict[str, Any] | None, str, int]:
    """A feature entry, a comment and the count of far-out values for one column.

    (None, why, 0) when the column is left out.
    """
    entry, comment, far = _feature_entry(name, series)
    if entry is None:
        return None, comment, 0
    if header != name:
        entry["column"] = header
    missing = _missing_share(series)
    if missing:
        entry["max_missing"] = missing
        comment = "; ".join(c for c in (comment, f"{missing:.0%} missing here") if c)
    return entry, comment, far


def _feature_entry(name: str, series: pd.Series) -> tuple[dict[str, Any] | None, str, int]:
    values = series.dropna()
    entry: dict[str, Any] = {"name": name}
    comment = ""
    far_count = 0
    if values.empty:
        return None, "every value is missing", 0
    if _is_bool_column(values):
        entry["type"] = "binary"
    elif pd.api.types.is_numeric_dtype(values.dtype):
        uniques = set(pd.unique(values).tolist())
        whole = bool(np.all(np.floor(values.to_numpy(dtype=float)) == values.to_numpy(dtype=float)))
        if uniques <= {0, 1}:
            entry["type"] = "binary"
        elif uniques == {1, 2}:
            entry.update(type="binary", true_values=[1], false_values=[2])
            comment = (
                "check: does 1 mean yes? (1 = no must be recoded in the data); if 1 and 2 are two "
                "categories, make it type: categorical, categories: {1: label, 2: label}"
            )
        else:
            entry["type"] = "integer" if whole else "numeric"
            numbers = values.to_numpy(dtype=float)
            far = _far_outside(numbers)
            bulk = numbers[~far]
            far_count = int(far.sum())
            low, high = _range(float(bulk.min()), float(bulk.max()), whole=whole)
            entry["min"], entry["max"] = _number(low), _number(high)
            if far_count:
                comment = (
                    f"check: {far_count} value(s) lie far outside the rest and outside this range "
                    "(validate counts them): fix them in the data, or widen min/max if they are real"
                )
            if whole and len(uniques) <= FEW_CODES:
                comment = (
                    f"{len(uniques)} distinct values: if they are codes, make it "
                    "type: categorical, categories: {1: label, 2: label, ...}"
                )
    else:
        text = values.astype(str).str.strip()
        words = set(text.str.casefold())
        counts = text.value_counts()
        if words <= (_YES_WORDS | _NO_WORDS) and words & _YES_WORDS and words & _NO_WORDS:
            # Matching is case-blind: one spelling of each word is enough.
            yes = sorted(w for w in words if w in _YES_WORDS)
            no = sorted(w for w in words if w in _NO_WORDS)
            entry.update(type="binary", true_values=yes, false_values=no)
        elif _looks_like_dates(text):
            return None, "dates (a timestamp_column, or a feature derived from it, is up to you)", 0
        elif len(counts) <= MAX_CATEGORIES and int(counts.min()) >= MIN_CATEGORY_ROWS:
            entry.update(type="categorical", categories=sorted(counts.index.tolist()))
        else:
            return (
                None,
                (
                    f"text with {len(counts):,} distinct values (free text or identifiers); "
                    "a categorical feature lists its categories"
                ),
                0,
            )
    return entry, comment, far_count


def _looks_like_dates(text: pd.Series) -> bool:
    sample = text.head(200)
    if not sample.str.contains(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}", regex=True).all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() > 0.9)


def _id_column(table: pd.DataFrame, given: str | None) -> str:
    if given is not None:
        if given not in table.columns:
            raise UsageError(f"--id-column: no column '{given}' in the data ({table.shape[1]} columns)")
        return given

    def unique(c: Any) -> bool:
        return bool(table[c].notna().all() and table[c].is_unique)

    named = [c for c in table.columns if _ID_NAME.search(snake_name(c)) and unique(c)]
    candidates = named or [c for c in table.columns if unique(c) and not _is_numeric_float(table[c])]
    if not candidates:
        raise DataError(
            "no column has a unique value in every row; a cohort file needs one row per patient "
            "with an id column (the fix is in the data), or name it with --id-column"
        )
    return str(candidates[0])


def _is_numeric_float(series: pd.Series) -> bool:
    return pd.api.types.is_float_dtype(series.dtype)


def _endpoint(header: str, series: pd.Series, taken: set[str]) -> tuple[dict[str, Any], str]:
    values = series.dropna()
    name = _unique_name(snake_name(header), taken)
    if values.empty:
        raise DataError(f"--outcome {header}: every value is missing")
    if _is_bool_column(values) or (
        pd.api.types.is_numeric_dtype(values.dtype) and set(pd.unique(values).tolist()) <= {0, 1}
    ):
        return {"name": name, "column": header}, "1 or true is a case"
    if not pd.api.types.is_numeric_dtype(values.dtype):
        return _text_endpoint(header, name, values)
    cut = _number(_range(float(values.median()), float(values.median()), whole=False)[1])
    entry = {"name": f"{name}_high", "column": header, "operator": ">", "threshold": cut}
    return entry, "choose the threshold that defines a case (this one is about the median)"


def _text_endpoint(header: str, name: str, values: pd.Series) -> tuple[dict[str, Any], str]:
    """An endpoint for a text outcome of two values (Yes/No): the column is the outcome, as declared."""
    text = values.astype(str).str.strip()
    spellings: dict[str, list[str]] = {}
    for v in sorted(pd.unique(text)):
        spellings.setdefault(v.casefold(), []).append(v)
    if len(spellings) != 2:
        raise DataError(
            f"--outcome {header}: the column holds text with {len(spellings):,} distinct values; an outcome "
            "must be numbers, true/false, or two values (yes/no). The fix is in the data"
        )
    words = set(spellings)
    pair = next(((yes, no) for yes, no in OUTCOME_PAIRS if words == {yes, no}), None)
    if pair is not None:
        yes, no = pair
        comment = f"{', '.join(spellings[yes])} is a case"
    else:
        counts = text.str.casefold().value_counts()
        yes, no = counts.index[-1], counts.index[0]  # the rarer value as a case
        if counts.iloc[0] == counts.iloc[-1]:
            yes, no = sorted(words)
        comment = (
            f"check: two values, {', '.join(spellings[yes])} drafted as a case; "
            "swap true_values and false_values if the other one is"
        )
    entry = {"name": name, "column": header, "true_values": spellings[yes], "false_values": spellings[no]}
    return entry, comment


def _unique_name(name: str, taken: set[str]) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}_{i}", i + 1
    taken.add(out)
    return out


def draft_study(
    table: pd.DataFrame,
    *,
    name: str,
    source: str,
    outcomes: list[str] | None = None,
    id_column: str | None = None,
) -> Draft:
    """A study spec drafted from ``table`` (see the module docstring).

    Args:
        table: the cohort file's contents, one row per patient.
        name: the study's name (lower snake case).
        source: the file's name, for the header comment.
        outcomes: columns that hold (or define) the outcomes; they become endpoints.
        id_column: the patient id column; guessed when None.

    Raises:
        UsageError: an outcome or the id column is not in the table.
        DataError: no id column can be found, or an outcome is text.
    """
    outcomes = list(outcomes or [])
    for col in outcomes:
        if col not in table.columns:
            raise UsageError(f"--outcome: no column '{col}' in the data ({table.shape[1]} columns)")
    idc = _id_column(table, id_column)
    id_name = snake_name(idc)
    taken = {id_name}
    lines = [
        f"# Drafted by `cohortlm init-study` from {source} ({len(table):,} rows, {table.shape[1]} columns)"
        f" on {date.today().isoformat()}.",
        "# Every type, range and category below is a guess from the data: check each line, then run",
        "#   cohortlm validate --study THIS_FILE --data THE_DATA",
        f"name: {name}",
        "version: 1",
        f"id_column: {id_name}",
    ]
    if id_name != idc:
        lines.insert(3, f"# the id column is '{idc}' in the file: rename it to {id_name} there")
    draft = Draft(text="", id_column=idc)
    lines.append("features:")
    for col in table.columns:
        if col == idc or col in outcomes:
            continue
        fname = _unique_name(snake_name(col), taken)
        entry, comment, far = _feature(fname, str(col), table[col])
        if far:
            draft.warnings.append(
                f"column {col}: {far} value(s) lie far outside the rest; the drafted range leaves them "
                "out, so validate will count them: check them in the data (or widen min/max if real)"
            )
        if entry is None:
            draft.left_out.append(str(col))
            lines.append(f"  # left out: {_flow({'column': str(col)})[1:-1]}: {comment}")
            continue
        draft.kinds[entry["type"]] = draft.kinds.get(entry["type"], 0) + 1
        lines.append(f"  - {_flow(entry)}" + (f"  # {comment}" if comment else ""))
    lines.append("endpoints:")
    if not outcomes:
        lines.append(
            "  # add at least one: - {name: died_1y, column: death_1y}  (a 0/1 or true/false column)"
        )
        lines.append('  #                  - {name: high_ef, column: ef_1y, operator: ">", threshold: 50}')
        lines.append("  []")
    for col in outcomes:
        entry, comment = _endpoint(str(col), table[col], taken)
        lines.append(f"  - {_flow(entry)}  # {comment}")
        draft.endpoints += 1
    lines.append("split: {sizes: {train: 0.6, validation: 0.2, test: 0.2}, seed: 0}")
    if idc != id_name:
        draft.id_column = idc
    draft.text = "\n".join(lines) + "\n"
    return draft
