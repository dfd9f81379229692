"""Data validation with Great Expectations, generated from the study spec.

The suite is built from the :class:`~cohortlm.cohort.study.StudySpec`: every column
the spec names exists and has the right type, numbers lie in their range,
categories and binaries take allowed values, whole-number features are whole,
ids are unique and present, null rates stay under each feature's
``max_missing``, the timestamp column holds dates, endpoint source columns are
numeric. Each of the study's ``rules`` (cross-column checks from
:mod:`cohortlm.cohort.rules`) becomes an expectation too: the rule is computed
as a derived boolean column and GX expects it to be ``False`` everywhere, so
the report names the rule and the number of rows that break it.

The report keeps one outcome per column and check; GX runs them as far fewer
expectations (all presence checks as one, columns with the same check and
dtype concatenated into one), and a failing column is checked on its own, so
its outcome is the one a per-column expectation gives
(:mod:`cohortlm.cohort.validation_gx`).

Privacy: GX runs in an ephemeral context with analytics off and with
``partial_unexpected_count=0`` (no lists of unexpected values or indices).
:class:`ValidationResult` keeps only names, counts and dtypes, and the reports
are written from it, never from GX's own result objects, so no patient value
or identifier can reach a report, a log line or an exit message.
"""

from __future__ import annotations

import functools
import html
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cohortlm.cohort.rules import RULES
from cohortlm.cohort.study import StudySpec
from cohortlm.cohort.validation_gx import RESULT_FORMAT, Check, CheckResult, run_checks
from cohortlm.cohort.variables import Feature
from cohortlm.errors import UsageError

#: Prefix of the derived columns that carry rule and shape checks into GX.
DERIVED_PREFIX = "__cohortlm_check__"

_NUMERIC_DTYPES = [
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "Float32",
    "Float64",
]
_BINARY_DTYPES = [*_NUMERIC_DTYPES, "bool", "boolean"]
_TEXT_DTYPES = ["object", "str", "string", "category"]


@dataclass(frozen=True)
class ExpectationOutcome:
    """The outcome of one expectation, with counts only.

    Attributes:
        name: stable name used in reports and messages, e.g. ``in_range(age)``
            or a rule name such as ``das28_esr_consistent``.
        kind: exists, type, in_range, in_set, binary, whole_numbers, not_null,
            unique, date or rule.
        column: the column checked (None for rules).
        description: what is expected, in words.
        gx_type: the Great Expectations expectation type (snake case).
        success: whether the data met the expectation.
        unexpected_count: rows that broke it (None where rows are not counted,
            e.g. a missing column or a column type).
        element_count: rows looked at (None where not applicable).
        note: why an expectation could not be evaluated, if it could not.
    """

    name: str
    kind: str
    column: str | None
    description: str
    gx_type: str
    success: bool
    unexpected_count: int | None = None
    element_count: int | None = None
    note: str | None = None

    @property
    def summary(self) -> str:
        """``name (N rows)`` or ``name (note)``: no values, only counts."""
        if self.note:
            return f"{self.name} ({self.note})"
        if self.unexpected_count is not None:
            return f"{self.name} ({self.unexpected_count:,} row{'s' if self.unexpected_count != 1 else ''})"
        return self.name


@dataclass(frozen=True)
class ValidationResult:
    """Everything a report shows: per-expectation outcomes and run facts.

    Attributes:
        study: the study name.
        spec_hash: the study spec's content hash.
        n_rows: rows in the table.
        n_columns: columns in the table.
        outcomes: one entry per expectation, in suite order.
        seconds: wall time of the GX validation (suite build and run).
        gx_version: the Great Expectations version used.
        data_name: how reports name the data.
        gx_expectations: the expectations GX ran: fewer than ``outcomes``, since
            checks of many columns run as one (:mod:`cohortlm.cohort.validation_gx`).
    """

    study: str
    spec_hash: str
    n_rows: int
    n_columns: int
    outcomes: tuple[ExpectationOutcome, ...]
    seconds: float
    gx_version: str
    data_name: str = field(default="<memory>")
    gx_expectations: int = 0

    @property
    def success(self) -> bool:
        """True when every expectation passed."""
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        """The expectations that failed, in suite order."""
        return [o for o in self.outcomes if not o.success]

    def outcome(self, name: str) -> ExpectationOutcome:
        """The outcome called ``name``."""
        for o in self.outcomes:
            if o.name == name:
                return o
        raise KeyError(name)

    def summary(self) -> str:
        """One line: passed, or the failed expectations with their row counts."""
        n = len(self.outcomes)
        if self.success:
            return f"validation passed: {n} expectations on {self.n_rows:,} rows ({self.seconds:.2f} s)"
        shown = "; ".join(o.summary for o in self.failed)
        return f"validation failed: {len(self.failed)} of {n} expectations on {self.n_rows:,} rows: {shown}"

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data (what ``validation.json`` holds)."""
        return {
            "study": self.study,
            "spec_hash": self.spec_hash,
            "data": self.data_name,
            "success": self.success,
            "n_rows": self.n_rows,
            "n_columns": self.n_columns,
            "n_expectations": len(self.outcomes),
            "n_failed": len(self.failed),
            "gx_expectations_run": self.gx_expectations,
            "seconds": round(self.seconds, 4),
            "great_expectations": self.gx_version,
            "result_format": RESULT_FORMAT,
            "expectations": [asdict(o) for o in self.outcomes],
        }


@dataclass
class _Planned:
    """A check for GX to run, or an outcome already known without GX."""

    name: str
    kind: str
    column: str | None
    description: str
    check: Check | None = None
    outcome: ExpectationOutcome | None = None


# ---------------------------------------------------------------------------- suite


def _dtype_name(series: pd.Series) -> str:
    return str(series.dtype)


_TYPE_CHECK_GX = "expect_column_values_to_be_in_type_list"
_CATEGORY_NOTE = "pandas category: its dtype name checked by cohortlm"


@functools.cache
def _gx_type_names(allowed: tuple[str, ...]) -> tuple[str, ...]:
    """``allowed`` plus the class name GX matches for each pandas extension dtype in it.

    GX resolves a type name through numpy, then ``pandas.<name>``: ``Int64``, ``string``
    or ``boolean`` resolve to neither, ``Int64Dtype``, ``StringDtype`` and ``BooleanDtype`` do.
    """
    names = list(allowed)
    for name in allowed:
        try:
            dtype = pd.api.types.pandas_dtype(name)
        except TypeError:
            continue
        if isinstance(dtype, pd.api.extensions.ExtensionDtype) and not isinstance(dtype, pd.CategoricalDtype):
            names.append(type(dtype).__name__)
    return tuple(dict.fromkeys(names))


def _is_numeric(series: pd.Series) -> bool:
    return _dtype_name(series) in _NUMERIC_DTYPES


def _derived(derived: dict[str, np.ndarray], key: str, broken: np.ndarray) -> str:
    col = f"{DERIVED_PREFIX}{key}"
    derived[col] = np.asarray(broken, dtype=bool)
    return col


class _Planner:
    """Collects the planned expectations for one table and the derived columns they read."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df
        self.plans: list[_Planned] = []
        self.derived: dict[str, np.ndarray] = {}

    def add(self, name: str, kind: str, column: str | None, description: str, check: Check) -> None:
        """Plan ``check`` for GX to run, reported as ``name``."""
        self.plans.append(_Planned(name, kind, column, description, check))

    def decided(
        self,
        name: str,
        kind: str,
        column: str | None,
        description: str,
        gx_type: str,
        success: bool,
        note: str | None = None,
        unexpected: int | None = None,
    ) -> None:
        """Record an outcome known without running GX."""
        self.plans.append(
            _Planned(
                name,
                kind,
                column,
                description,
                outcome=ExpectationOutcome(
                    name, kind, column, description, gx_type, success, unexpected, len(self.df), note
                ),
            )
        )

    def exists(self, column: str, role: str) -> bool:
        """Plan that ``column`` exists; whether it does."""
        self.add(
            f"exists({column})",
            "exists",
            column,
            f"{role} column {column} is present",
            Check("ExpectColumnToExist", column),
        )
        return column in self.df.columns

    def type_check(self, column: str, allowed: list[str], words: str) -> bool:
        """Plan that ``column`` has one of the ``allowed`` dtypes; whether it has."""
        name, description = f"type({column})", f"{column} is {words}"
        series = self.df[column]
        ok = _dtype_name(series) in allowed
        if isinstance(series.dtype, pd.CategoricalDtype):
            # GX compares a categorical dtype with its type names by equality, which a
            # dtype with categories never meets: its name decides, here.
            self.decided(name, "type", column, description, _TYPE_CHECK_GX, ok, note=_CATEGORY_NOTE)
            return ok
        type_list = list(_gx_type_names(tuple(allowed)))
        self.add(
            name,
            "type",
            column,
            description,
            Check("ExpectColumnValuesToBeInTypeList", column, {"type_list": type_list}),
        )
        return ok

    def never_broken(
        self, name: str, kind: str, column: str | None, description: str, key: str, broken: Any
    ) -> None:
        """Plan that the derived column ``key`` (True where a row breaks a check) is False everywhere."""
        col = _derived(self.derived, key, broken)
        self.add(
            name,
            kind,
            column,
            description,
            Check("ExpectColumnValuesToBeInSet", col, {"value_set": [False]}),
        )


def _plan(spec: StudySpec, df: pd.DataFrame) -> tuple[list[_Planned], dict[str, np.ndarray]]:
    """The expectations for ``spec`` on ``df`` and the derived columns they read.

    Expectations that cannot be evaluated (a missing column, a wrong type) are
    decided here; range and set checks on a column of the wrong type are left
    out, since the type failure already names the column.
    """
    planner = _Planner(df)
    _plan_id(planner, spec.id_column)
    if spec.timestamp_column is not None:
        _plan_timestamp(planner, spec.timestamp_column)
    for f in spec.features:
        _plan_feature(planner, f)
    for col_name in spec.endpoint_columns:
        if planner.exists(col_name, "endpoint source"):
            planner.type_check(col_name, _NUMERIC_DTYPES, "numeric")
    _plan_rules(planner, spec.rules)
    return planner.plans, planner.derived


def _plan_id(planner: _Planner, idc: str) -> None:
    """The id: present, never missing, unique."""
    if planner.exists(idc, "id"):
        planner.add(
            f"not_null({idc})",
            "not_null",
            idc,
            f"every row has a {idc}",
            Check("ExpectColumnValuesToNotBeNull", idc),
        )
        planner.add(
            f"unique({idc})",
            "unique",
            idc,
            f"{idc} is unique (one row per patient)",
            Check("ExpectColumnValuesToBeUnique", idc),
        )


def _plan_timestamp(planner: _Planner, tsc: str) -> None:
    """The timestamp: present, never missing, dates."""
    if not planner.exists(tsc, "timestamp"):
        return
    planner.add(
        f"not_null({tsc})",
        "not_null",
        tsc,
        f"every row has a {tsc}",
        Check("ExpectColumnValuesToNotBeNull", tsc),
    )
    values = planner.df[tsc]
    if pd.api.types.is_datetime64_any_dtype(values):
        bad = np.zeros(len(planner.df), dtype=bool)
    else:
        # CSV has no date type: a date is text that parses as one.
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        bad = (parsed.isna() & values.notna()).to_numpy()
    planner.never_broken(f"date({tsc})", "date", tsc, f"{tsc} holds dates", f"date__{tsc}", bad)


def _plan_feature(planner: _Planner, f: Feature) -> None:
    """One feature: present, of its type, in its range or set, under its missing-value limit."""
    c = f.name
    if not planner.exists(c, "feature"):
        return
    if f.type in ("numeric", "integer"):
        _plan_number(planner, f)
    elif f.type == "binary":
        if planner.type_check(c, _BINARY_DTYPES, "0/1 (numeric or boolean)"):
            planner.add(
                f"binary({c})",
                "binary",
                c,
                f"{c} is 0 or 1",
                Check("ExpectColumnValuesToBeInSet", c, {"value_set": [0, 1]}),
            )
    else:
        if planner.type_check(c, _TEXT_DTYPES, "text (categorical)"):
            cats = list(f.categories or ())
            planner.add(
                f"in_set({c})",
                "in_set",
                c,
                f"{c} is one of {', '.join(cats)}",
                Check("ExpectColumnValuesToBeInSet", c, {"value_set": cats}),
            )
    limit = f"at most {f.max_missing:.0%} missing" if f.max_missing > 0 else "never missing"
    planner.add(
        f"not_null({c})",
        "not_null",
        c,
        f"{c} is {limit}",
        Check("ExpectColumnValuesToNotBeNull", c, {"mostly": 1.0 - f.max_missing}),
    )


def _plan_number(planner: _Planner, f: Feature) -> None:
    """A numeric or integer feature: numeric, in its range, whole where it must be."""
    c = f.name
    ok = planner.type_check(c, _NUMERIC_DTYPES, "numeric")
    if ok and (f.min is not None or f.max is not None):
        lo = "-inf" if f.min is None else f"{f.min:g}"
        hi = "inf" if f.max is None else f"{f.max:g}"
        planner.add(
            f"in_range({c})",
            "in_range",
            c,
            f"{c} lies between {lo} and {hi}",
            Check("ExpectColumnValuesToBeBetween", c, {"min_value": f.min, "max_value": f.max}),
        )
    if ok and f.type == "integer":
        v = planner.df[c].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = ~np.isnan(v) & (np.floor(v) != v)
        planner.never_broken(
            f"whole_numbers({c})", "whole_numbers", c, f"{c} holds whole numbers", f"whole__{c}", bad
        )


def _plan_rules(planner: _Planner, rule_names: Iterable[str]) -> None:
    """Each cross-column rule: decided as failed when its columns are missing or not numeric."""
    df = planner.df
    for rule_name in rule_names:
        rule = RULES[rule_name]
        missing = [c for c in rule.columns if c not in df.columns]
        wrong = [] if missing else [c for c in rule.columns if not _is_numeric(df[c])]
        gx_type = "expect_column_values_to_be_in_set"
        if missing or wrong:
            problem = f"missing: {', '.join(missing)}" if missing else f"not numeric: {', '.join(wrong)}"
            planner.decided(
                rule.name,
                "rule",
                None,
                rule.description,
                gx_type,
                False,
                note=f"not checked: column(s) {problem}",
            )
            continue
        planner.never_broken(rule.name, "rule", None, rule.description, f"rule__{rule.name}", rule.broken(df))


def validate_table(
    df: pd.DataFrame,
    spec: StudySpec,
    *,
    data_name: str = "<memory>",
    clock: Callable[[], float] = time.perf_counter,
) -> ValidationResult:
    """Validate a featurised table against the GX suite generated from ``spec``.

    A pure function: ``df`` is not modified (derived check columns go into a
    copy) and nothing is written anywhere.

    Args:
        df: one row per patient, as :func:`cohortlm.cohort.io.read_table` reads it.
        spec: the study whose features, endpoints and rules define the suite.
        data_name: how reports name the data (a file name, not its content).
        clock: a timer, replaceable in tests.

    Returns:
        A :class:`ValidationResult` with one outcome per expectation.
    """
    start = clock()
    import great_expectations as gx

    plans, derived = _plan(spec, df)
    # The caller's frame plus the derived check columns, in one concat (inserting
    # thousands of columns one by one copies the frame each time).
    work = pd.concat([df, pd.DataFrame(derived, index=df.index)], axis=1) if derived else df
    to_run = [p for p in plans if p.check is not None]
    results, n_run = run_checks(spec.name, [p.check for p in to_run if p.check is not None], work)
    by_plan = {id(p): r for p, r in zip(to_run, results, strict=True)}
    outcomes = [p.outcome if p.outcome is not None else _gx_outcome(p, by_plan[id(p)]) for p in plans]
    return ValidationResult(
        study=spec.name,
        spec_hash=spec.spec_hash,
        n_rows=len(df),
        n_columns=df.shape[1],
        outcomes=tuple(outcomes),
        seconds=clock() - start,
        gx_version=gx.__version__,
        data_name=data_name,
        gx_expectations=n_run,
    )


def _gx_outcome(p: _Planned, r: CheckResult) -> ExpectationOutcome:
    """The outcome of planned check ``p`` from GX's verdict ``r``."""
    return ExpectationOutcome(
        p.name,
        p.kind,
        p.column,
        p.description,
        r.gx_type,
        r.success,
        r.unexpected_count,
        r.element_count,
        note="Great Expectations could not evaluate it" if r.raised else None,
    )


# ---------------------------------------------------------------------------- reports


def write_report(result: ValidationResult, report_dir: str | Path) -> dict[str, Path]:
    """Write ``validation.json`` and ``validation.html`` to ``report_dir``.

    Both are rendered from ``result`` alone (names, counts, dtypes), so they
    cannot contain a patient's value or identifier.

    Returns:
        The paths written, by format (``json``, ``html``).
    """
    out = Path(report_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--report {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "validation.json"
    html_path = out / "validation.html"
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(json_path)
    tmp = html_path.with_name(html_path.name + ".tmp")
    tmp.write_text(render_html(result), encoding="utf-8")
    tmp.replace(html_path)
    return {"json": json_path, "html": html_path}


def render_html(result: ValidationResult) -> str:
    """A self-contained HTML page: a verdict and one table row per expectation."""
    e = html.escape
    verdict = "passed" if result.success else "failed"
    rows = []
    for o in result.outcomes:
        count = "" if o.unexpected_count is None else f"{o.unexpected_count:,}"
        rows.append(
            f"<tr class='{'ok' if o.success else 'bad'}'><td>{'✓' if o.success else '✗'}</td>"
            f"<td><code>{e(o.name)}</code></td><td>{e(o.description)}</td>"
            f"<td class='n'>{count}</td><td>{e(o.note or '')}</td><td><code>{e(o.gx_type)}</code></td></tr>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Validation {e(result.study)}: {verdict}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .25rem .5rem; }}
tr.bad {{ background: #fde8e8; }} td.n {{ text-align: right; }}
</style></head><body>
<h1>Validation of {e(result.data_name)}: {verdict}</h1>
<p>Study <code>{e(result.study)}</code> (spec {e(result.spec_hash[:12])}),
{result.n_rows:,} rows, {result.n_columns} columns,
{len(result.outcomes)} expectations ({result.gx_expectations} run by Great Expectations,
columns with the same check together), {len(result.failed)} failed,
{result.seconds:.2f} s, Great Expectations {e(result.gx_version)}.
Counts only: the report never lists values or identifiers.</p>
<table><thead><tr><th></th><th>expectation</th><th>expects</th><th>rows breaking it</th>
<th>note</th><th>GX type</th></tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
