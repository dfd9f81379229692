"""Running the planned column checks with Great Expectations, at a cost that suits wide tables.

GX spends 1 to 5 ms of Python per expectation (it rebuilds each expectation's
configuration dozens of times while it resolves metrics), far more than the
metric itself costs on a few thousand rows: 20,000 per-column expectations
take about 90 s however they are batched. So this module runs fewer, larger
expectations and keeps every per-column verdict:

* **Columns present**: one ``ExpectTableColumnsToMatchSet`` (``exact_match``
  off) for all of them; the columns GX reports missing fail.
* **Stacks**: the checks whose verdict is a count over single values (range,
  set, not null, value types) are grouped by expectation, arguments and
  column dtype; each group's columns are concatenated into one column of the
  same dtype (a *stack*) and GX runs the expectation once on it, without
  ``mostly``. Passing means no value of any member breaks the check, so each
  member passes with 0 rows, whatever its own ``mostly``. The concatenation
  keeps the dtype (groups whose concatenation would not, e.g. categoricals
  with different categories, are not stacked), so GX takes the same path for
  the stack as for each member column.
* **Per column**: the members of a stack that failed or raised, and the
  checks that cannot be stacked (uniqueness), run as before, one expectation
  per column, so a failing column gets GX's own count and verdict.

The result of each check is the one the per-column expectation would give:
same success, row count and element count.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: What GX returns per expectation: counts only. BASIC computes no index lists
#: (SUMMARY does, and costs a third more per expectation); partial_unexpected_count=0
#: keeps unexpected values out of the result; no rows.
RESULT_FORMAT: dict[str, Any] = {
    "result_format": "BASIC",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}

#: Columns per GX batch. GX's column metrics look up their column among all the
#: batch's columns (and its type checks read every column's dtype), so one batch
#: of a wide table costs expectations x columns; batches of a few columns each
#: keep the cost linear in the number of features.
CHUNK_COLUMNS = 32

#: Most member columns in one stack: a failing stack costs one expectation per
#: member, a passing one a single expectation.
STACK_COLUMNS = 64

#: Most values in one stack, and in one batch of stacks, so that the copies
#: stacking makes stay small on long tables.
STACK_CELLS = 1_000_000
BATCH_CELLS = 4_000_000

#: The expectations whose verdict is a count over single values, each judged alone:
#: the count on a concatenation is the sum of the members' counts.
_STACKABLE = frozenset(
    {
        "ExpectColumnValuesToBeBetween",
        "ExpectColumnValuesToBeInSet",
        "ExpectColumnValuesToNotBeNull",
        "ExpectColumnValuesToBeInTypeList",
    }
)
_EXISTS = "ExpectColumnToExist"


@dataclass(frozen=True)
class Check:
    """One GX expectation on one column, as planned.

    Attributes:
        expectation: the class name in ``great_expectations.expectations``.
        column: the column it reads.
        kwargs: its other arguments (``mostly``, ``min_value``, ``value_set``, ...).
    """

    expectation: str
    column: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    """GX's verdict on one :class:`Check`, counts only.

    Attributes:
        gx_type: the GX expectation type (snake case) that gave the verdict.
        success: whether the column met the check.
        unexpected_count: rows that broke it (None where GX counts no rows).
        element_count: rows looked at (None where GX reports none).
        raised: GX could not evaluate the check.
    """

    gx_type: str
    success: bool
    unexpected_count: int | None = None
    element_count: int | None = None
    raised: bool = False


@dataclass(frozen=True)
class _Stack:
    """Checks of one group (same expectation, arguments and dtype) to run as one."""

    members: list[int]
    dtype: Any
    length: int


@dataclass
class _Runner:
    """The table and checks, where GX batches come from, the results so far and how many GX ran."""

    table: pd.DataFrame
    checks: Sequence[Check]
    batch_definition: Any
    results: dict[int, CheckResult] = field(default_factory=dict)
    n_run: int = 0

    def validate(self, frame: pd.DataFrame, expectations: list[Any]) -> list[Any]:
        """GX's results for ``expectations`` on ``frame``, in their order (None where GX gave none)."""
        import great_expectations as gx

        for i, e in enumerate(expectations):
            e.meta = {"cohortlm_index": i}
        # Given at construction: add_expectation compares each new expectation
        # with every one already in the suite (quadratic); these are distinct.
        suite = gx.ExpectationSuite(name=f"part{self.n_run}", expectations=expectations)
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        self.n_run += len(expectations)
        found: list[Any] = [None] * len(expectations)
        for r in batch.validate(suite, result_format=RESULT_FORMAT).results:
            found[int((r.expectation_config.meta or {})["cohortlm_index"])] = r
        return found


def run_checks(name: str, checks: Sequence[Check], table: pd.DataFrame) -> tuple[list[CheckResult], int]:
    """Run ``checks`` on ``table`` with GX in an ephemeral context, GX's logging quiet.

    Returns:
        One result per check, in order, and how many expectations GX ran.
    """
    gx_logger = logging.getLogger("great_expectations")
    level = gx_logger.level
    gx_logger.setLevel(logging.ERROR)
    try:
        context = _ephemeral_context()
        asset = context.data_sources.add_pandas(f"cohortlm_{name}").add_dataframe_asset(name="table")
        runner = _Runner(table, checks, asset.add_batch_definition_whole_dataframe("whole_table"))
        _run_exists(runner)
        single = _run_stacks(runner)
        _run_per_column(runner, single)
        return [runner.results[i] for i in range(len(checks))], runner.n_run
    finally:
        gx_logger.setLevel(level)


def _ephemeral_context() -> Any:
    """An in-memory GX context: nothing on disk, no analytics, no progress bars."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _expectation(check: Check, column: str, *, strict: bool = False) -> Any:
    """The GX expectation for ``check`` on ``column``; ``strict`` drops ``mostly``."""
    import great_expectations.expectations as gxe

    kwargs = {k: v for k, v in check.kwargs.items() if not (strict and k == "mostly")}
    return getattr(gxe, check.expectation)(column=column, **kwargs)


def _outcome(r: Any, gx_type: str, n_rows: int) -> CheckResult:
    """A :class:`CheckResult` from GX's result ``r`` on ``n_rows`` rows (None when GX gave none)."""
    # The exception text may quote data: keep only that it failed.
    if r is None or bool((r.exception_info or {}).get("raised_exception")):
        return CheckResult(gx_type, False, None, n_rows, raised=True)
    res = r.result or {}
    unexpected = res.get("unexpected_count")
    element = res.get("element_count")
    return CheckResult(
        gx_type,
        bool(r.success),
        None if unexpected is None else int(unexpected),
        None if element is None else int(element),
    )


def _run_exists(runner: _Runner) -> None:
    """Every presence check at once: one expectation that the table's columns include them all."""
    import great_expectations.expectations as gxe

    wanted = [i for i, c in enumerate(runner.checks) if c.expectation == _EXISTS]
    if not wanted:
        return
    columns = sorted({runner.checks[i].column for i in wanted})
    expectation = gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=False)
    # Only the columns' names are read: the batch needs no rows.
    (r,) = runner.validate(runner.table.iloc[:0], [expectation])
    gx_type = expectation.expectation_type
    if r is None or bool((r.exception_info or {}).get("raised_exception")):
        for i in wanted:
            runner.results[i] = CheckResult(gx_type, False, None, len(runner.table), raised=True)
        return
    details = (r.result or {}).get("details") or {}
    missing = set() if r.success else set((details.get("mismatched") or {}).get("missing") or columns)
    for i in wanted:
        runner.results[i] = CheckResult(gx_type, runner.checks[i].column not in missing)


def _stack_key(check: Check, dtypes: pd.Series) -> tuple[str, str, Any] | None:
    """What the checks of one stack share: expectation, arguments bar ``mostly``, dtype (None: no stack)."""
    if check.expectation not in _STACKABLE or check.column not in dtypes.index:
        return None
    args = repr(sorted((k, v) for k, v in check.kwargs.items() if k != "mostly"))
    return check.expectation, args, dtypes[check.column]


def _stacks(runner: _Runner) -> tuple[list[_Stack], list[int]]:
    """The stacks to run, and the checks to run per column from the start."""
    table, n_rows = runner.table, len(runner.table)
    # A stack is one column of the batch: with duplicate names a column is not one column.
    dtypes = table.dtypes if n_rows and table.columns.is_unique else None
    groups: dict[tuple[str, str, Any], list[int]] = {}
    single: list[int] = []
    for i, check in enumerate(runner.checks):
        if i in runner.results:
            continue
        key = None if dtypes is None else _stack_key(check, dtypes)
        if key is None:
            single.append(i)
        else:
            groups.setdefault(key, []).append(i)
    size = max(1, min(STACK_COLUMNS, STACK_CELLS // max(n_rows, 1)))
    stacks: list[_Stack] = []
    for (_, _, dtype), members in groups.items():
        for start in range(0, len(members), size):
            part = members[start : start + size]
            if len(part) == 1:
                single.extend(part)
            else:
                stacks.append(_Stack(part, dtype, len(part) * n_rows))
    return stacks, single


def _in_batches(stacks: list[_Stack]) -> Iterator[list[_Stack]]:
    """The stacks in batches of equal length (a frame each), within ``CHUNK_COLUMNS`` and ``BATCH_CELLS``."""
    by_length: dict[int, list[_Stack]] = {}
    for s in stacks:
        by_length.setdefault(s.length, []).append(s)
    for length, same in by_length.items():
        per_batch = max(1, min(CHUNK_COLUMNS, BATCH_CELLS // length))
        for start in range(0, len(same), per_batch):
            yield same[start : start + per_batch]


def _stacked_frame(runner: _Runner, batch: list[_Stack]) -> tuple[pd.DataFrame, list[_Stack], list[int]]:
    """One column per stack: its members' values, concatenated.

    Returns:
        The frame, the stacks it holds, and the members of stacks left out
        because concatenating changed their dtype (categoricals with different
        categories become ``object``), which GX would then check another way.
    """
    columns: dict[str, pd.Series] = {}
    kept: list[_Stack] = []
    left: list[int] = []
    for s in batch:
        values = pd.concat([runner.table[runner.checks[i].column] for i in s.members], ignore_index=True)
        if values.dtype != s.dtype:
            left.extend(s.members)
            continue
        columns[f"__cohortlm_stack_{len(kept)}"] = values
        kept.append(s)
    return pd.DataFrame(columns), kept, left


def _run_stacks(runner: _Runner) -> list[int]:
    """Run every stack; record its members' results where it passed.

    Returns:
        The checks still to run per column: members of stacks that failed or
        raised, and the checks that were not stacked.
    """
    stacks, single = _stacks(runner)
    n_rows = len(runner.table)
    for batch in _in_batches(stacks):
        frame, kept, left = _stacked_frame(runner, batch)
        single.extend(left)
        if not kept:
            continue
        expectations = [
            _expectation(runner.checks[s.members[0]], str(name), strict=True)
            for s, name in zip(kept, frame.columns, strict=True)
        ]
        results = runner.validate(frame, expectations)
        for s, e, r in zip(kept, expectations, results, strict=True):
            stacked = _outcome(r, e.expectation_type, s.length)
            if stacked.raised or not stacked.success or stacked.unexpected_count not in (None, 0):
                single.extend(s.members)
                continue
            # No value broke it: each member passes with 0 rows, counted as GX counts one column.
            for i in s.members:
                runner.results[i] = CheckResult(
                    stacked.gx_type,
                    True,
                    None if stacked.unexpected_count is None else 0,
                    None if stacked.element_count is None else n_rows,
                )
    return sorted(single)


def _run_per_column(runner: _Runner, todo: list[int]) -> None:
    """One expectation per check, batched ``CHUNK_COLUMNS`` columns at a time."""
    by_column: dict[str, list[int]] = {}
    for i in todo:
        by_column.setdefault(runner.checks[i].column, []).append(i)
    names = list(by_column)
    columns = runner.table.columns
    for start in range(0, len(names), CHUNK_COLUMNS):
        part = names[start : start + CHUNK_COLUMNS]
        indices = [i for c in part for i in by_column[c]]
        expectations = [_expectation(runner.checks[i], runner.checks[i].column) for i in indices]
        frame = runner.table[[c for c in part if c in columns]]
        results = runner.validate(frame, expectations)
        for i, e, r in zip(indices, expectations, results, strict=True):
            runner.results[i] = _outcome(r, e.expectation_type, len(runner.table))
