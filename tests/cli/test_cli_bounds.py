"""Every numeric option of every command is bounded: a value outside its range exits 2 before any work.

The options are found by walking the CLI (the plugins' commands included), so
a new numeric option without bounds fails here. Out-of-range values used to
run: ``gate-power --n 1000000000`` ended in "unexpected MemoryError" (exit 1)
and ``--reps 1000000000`` ran for as long as it was let.
"""

from __future__ import annotations

import math
import typing

import pytest
import typer

from cohortlm.cli import main
from cohortlm.cli._app import app


def _numeric_options() -> list[tuple[list[str], str, type, tuple[float, float] | None]]:
    """(command path, option, int or float, bounds) for every numeric option; bounds None when unbounded."""
    found = []

    def walk(group, path):
        for name, sub in group.commands.items():
            if hasattr(sub, "commands"):
                walk(sub, [*path, name])
                continue
            for p in sub.params:
                args = [a for a in typing.get_args(p.type_descriptor.annotation) if a is not type(None)]
                kind = args[0] if args else p.type_descriptor.annotation
                if kind not in (int, float):
                    continue
                bounds = getattr(p.callback, "bounds", None)
                if bounds is None and p.min is not None and p.max is not None:
                    bounds = (p.min, p.max)
                found.append(([*path, name], p.opts[0], kind, bounds))

    walk(typer.main.get_command(app), [])
    return found


OPTIONS = _numeric_options()
IDS = [f"{' '.join(c)} {o}" for c, o, _, _ in OPTIONS]


def test_the_walk_finds_the_options_the_issue_names():
    names = {(" ".join(c), o) for c, o, _, _ in OPTIONS}
    assert {
        ("gate-power", "--n"),
        ("gate-power", "--reps"),
        ("synth", "--n"),
        ("delong", "--conf-level"),
    } <= names


@pytest.mark.parametrize(("command", "option", "kind", "bounds"), OPTIONS, ids=IDS)
def test_every_numeric_option_has_a_minimum_and_a_maximum(command, option, kind, bounds):
    assert bounds is not None, f"cohortlm {' '.join(command)} {option} has no range"
    lo, hi = bounds
    assert math.isfinite(lo) and math.isfinite(hi) and lo < hi


@pytest.mark.parametrize(("command", "option", "kind", "bounds"), OPTIONS, ids=IDS)
def test_a_value_above_the_range_exits_2_naming_the_option(
    command, option, kind, bounds, capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    if bounds is None:
        pytest.fail(f"{option} has no range")
    value = str(int(bounds[1]) * 1000 + 1)
    assert main([*command, option, value]) == 2
    err = capsys.readouterr().err
    assert f"'{option}'" in err
    assert value in err or "less than or equal" in err


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["gate-power", "--n", "1000000000"], ["'--n'", "between 20 and 1,000,000", "1000000000"]),
        (["gate-power", "--reps", "1000000000"], ["'--reps'", "between 1 and 100,000", "1000000000"]),
        (["gate-power", "--n", "1000000", "--reps", "1000"], ["--n x --reps", "1,000,000,000"]),
        (["gate-power", "--processes", "0"], ["'--processes'", "between 1 and 64"]),
        (["delong", "--conf-level", "1", "--csv", "x.csv"], ["'--conf-level'", "strictly between 0 and 1"]),
        (["delong", "--conf-level", "nan", "--csv", "x.csv"], ["'--conf-level'", "got nan"]),
        (["synth", "--out", "o", "--seed", "-1"], ["'--seed'", "between 0 and 4,294,967,295", "-1"]),
        (["monitor", "--window-days", "inf"], ["'--window-days'", "got inf"]),
    ],
)
def test_out_of_range_values_the_issue_reported(argv, needles, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unexpected" not in err
    for needle in needles:
        assert needle in err
