"""CLI conventions: every kind of usage error exits 2 naming the option, --version, --json, --quiet.

The usage errors are typer's own (typer >= 0.29 vendors click as ``typer._click``):
each is shown as click shows it, with the usage line and the suggestion, never as
"unexpected NoSuchOption".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cohortlm import __version__
from cohortlm.cli import main

USAGE_ERRORS = [
    # (argv, what stderr must say)
    (["run", "--studdy", "x"], ["No such option: --studdy", "--study", "Usage: cohortlm run"]),
    (["validate"], ["Missing option '--data'", "Usage: cohortlm validate"]),
    (["delong", "--csv", "x.csv", "--label", "y", "--score-a", "a"], ["Missing option '--score-b'"]),
    (["synth", "--out", "o", "--n", "ten"], ["Invalid value for '--n'"]),
    (["synth", "--out", "o", "--n", "3"], ["Invalid value for '--n'", "10"]),
    (["train-llm", "--max-steps", "0"], ["Invalid value for '--max-steps'"]),
    (["report"], ["Missing argument 'run_dir'"]),
    (["runs", "compare", "only-one"], ["Missing argument 'run_b'"]),
    (["no-such-command"], ["No such command 'no-such-command'"]),
    (["valdate", "--data", "x"], ["No such command 'valdate'", "validate"]),
    (["run", "--cache", "yes"], ["Got unexpected extra argument"]),
]


@pytest.mark.parametrize(("argv", "needles"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_error_exits_2_naming_the_option(argv, needles, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    for needle in needles:
        assert needle in err, err
    assert "unexpected" not in err.lower().replace("unexpected extra argument", "")
    assert "Traceback" not in err
    assert out == ""


def test_bare_command_shows_help_and_exits_2(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    shown = out + err
    assert "Usage: cohortlm" in shown and "validate" in shown and "delong" in shown
    assert "unexpected" not in shown


def test_bare_group_shows_its_help(capsys):
    assert main(["runs"]) == 2
    shown = "".join(capsys.readouterr())
    assert "list" in shown and "compare" in shown


def test_help_exits_0(capsys):
    assert main(["run", "--help"]) == 0
    assert "--studdy" not in capsys.readouterr().out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cohortlm {__version__}"


def test_the_installed_command_exits_2_on_a_usage_error():
    """The console script, as a user runs it: exit status 2 reaches the shell."""
    exe = Path(sys.executable).with_name("cohortlm")
    proc = subprocess.run([str(exe), "validate"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Missing option '--data'" in proc.stderr


@pytest.fixture
def scores_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    path = tmp_path / "scores.csv"
    rows = [f"{t},{rng.normal() + t:.4f},{rng.normal() + 0.3 * t:.4f}" for t in y]
    path.write_text("y,a,b\n" + "\n".join(rows) + "\n,0.1,0.2\n")
    return path


def test_quiet_keeps_notes_off_stderr(scores_csv, capsys):
    args = ["delong", "--csv", str(scores_csv), "--label", "y", "--score-a", "a", "--score-b", "b"]
    assert main(args) == 0
    assert "1 row(s)" in capsys.readouterr().err
    assert main(["--quiet", *args]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "ΔAUC" in out


def test_quiet_still_shows_errors(capsys):
    args = ["delong", "--csv", "none.csv", "--label", "y", "--score-a", "a", "--score-b", "b"]
    assert main(["--quiet", *args]) == 2
    assert "file not found" in capsys.readouterr().err


def test_json_outputs_are_one_object(scores_csv, capsys):
    args = ["delong", "--csv", str(scores_csv), "--label", "y", "--score-a", "a", "--score-b", "b", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_cases"] + out["n_controls"] == 300


def test_every_result_command_has_json():
    from typer.main import get_command

    from cohortlm.cli._app import app

    root = get_command(app)
    ctx_commands = root.commands  # type: ignore[attr-defined]
    wanted = {
        ("run",): ctx_commands["run"],
        ("validate",): ctx_commands["validate"],
        ("score",): ctx_commands["score"],
        ("delong",): ctx_commands["delong"],
        ("report",): ctx_commands["report"],
        ("runs", "list"): ctx_commands["runs"].commands["list"],
        ("runs", "compare"): ctx_commands["runs"].commands["compare"],
    }
    for name, command in wanted.items():
        flags = {opt for p in command.params for opt in getattr(p, "opts", [])}
        assert "--json" in flags, name


def test_an_output_file_that_exists_is_overwritten(tmp_path, capsys):
    """check_output_file took an existing file for its own folder ("is a file, not a folder")."""
    from cohortlm.cli.paths import check_output_file
    from cohortlm.errors import UsageError

    existing = tmp_path / "table.csv"
    existing.write_text("x\n")
    check_output_file(existing, "--out")  # no error
    with pytest.raises(UsageError, match="is a folder"):
        check_output_file(tmp_path, "--out")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        check_output_file(existing / "inside.csv", "--out")
