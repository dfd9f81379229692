"""The typer application and the conventions every command shares.

Exit codes: 0 success, 1 the data failed a check, 2 a usage or spec error
(an unknown option, a missing one, a bad value: click's own message, naming
the option, with its suggestion). Errors print one or two lines on stderr;
``--debug`` adds the traceback. ``--quiet`` keeps progress, notes and tables
off stderr (errors and the result stay); ``--json`` on a command that
produces a result prints that result as one JSON object on stdout.

This module is imported by every ``cohortlm`` invocation, so it imports
nothing heavy (no pandas, numpy, torch): the commands import what they need.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import typer
from rich.console import Console

from cohortlm import __version__

app = typer.Typer(
    name="cohortlm",
    help="Clinical cohort -> validated features -> LLM vs logistic regression -> DeLong gate -> KServe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

STATE = {"debug": False, "quiet": False}

#: Progress, notes and tables for people: on stderr, silenced by ``--quiet``.
err_console = Console(stderr=True)

JSON_HELP = "Print the result as one JSON object on stdout instead of tables."

#: Bounds shared by numeric options (see :func:`bounded`).
MAX_SEED = 2**32 - 1  # numpy and scikit-learn take seeds below 2**32
MAX_PATIENTS = 10_000_000


def bounded(lo: float, hi: float, *, open_interval: bool = False) -> Any:
    """A typer callback that refuses a value outside ``lo`` to ``hi`` (NaN and inf included).

    Every numeric option of every command has one, so a value out of range
    exits 2 before any work starts, with a line naming the option, its range
    and the value: ``Invalid value for '--n': must be between 20 and
    1,000,000, got 1000000000``. ``open_interval`` leaves out the ends.
    """

    def check(value: Any) -> Any:
        if value is None:
            return value
        finite = not isinstance(value, float) or math.isfinite(value)
        inside = lo < value < hi if open_interval else lo <= value <= hi
        if not (finite and inside):
            words = "strictly between" if open_interval else "between"
            raise typer.BadParameter(f"must be {words} {lo:,} and {hi:,}, got {value}")
        return value

    check.bounds = (lo, hi)  # type: ignore[attr-defined]  # read by the tests
    return check


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"cohortlm {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print only results and errors (no progress, notes or tables)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """cohortlm: turn a clinical cohort into a served, monitored prediction model."""
    STATE["debug"] = debug
    STATE["quiet"] = quiet
    err_console.quiet = quiet
    # No command may reach a model hub: weights come from local files or packages.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def note(message: str) -> None:
    """A line for people on stderr (``note: ...``), unless ``--quiet``."""
    if not STATE["quiet"]:
        typer.echo(message, err=True)


def finite_or_none(value: Any) -> Any:
    """NaN/inf (an undefined result) as null, recursively, so the output stays standard JSON."""
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def echo_json(obj: Any) -> None:
    """One JSON object on stdout (NaN as null; paths and other objects as text)."""
    typer.echo(json.dumps(finite_or_none(obj), default=str, allow_nan=False))
