"""The server's argument parser extends kserve's model-server parser; kserve takes none of our options.

kserve parses ``sys.argv`` when ``kserve.model_server`` is imported, so nothing hides the command
line from it: these tests show that it reads every option of ``python -m serving.server`` and of
``cohortlm serve`` as unknown, and that kserve's own options mean the same to both parsers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from serving.server import KSERVE_OPTIONS, SHARED_OPTIONS, build_parser, parse_args

REPO = Path(__file__).resolve().parents[2]


def _kserve_parser():
    import kserve.model_server as model_server

    return model_server.parser


def _with_values(options: list[tuple[str, bool]]) -> list[str]:
    argv = ["serve"]
    for option, is_flag in options:
        argv += [option] if is_flag else [option, "1"]
    return argv


def _our_server_options() -> list[tuple[str, bool]]:
    kserve = {s for a in _kserve_parser()._actions for s in a.option_strings}
    return [
        (a.option_strings[0], a.nargs == 0)
        for a in build_parser()._actions
        if a.option_strings and not set(a.option_strings) & (kserve | {"-h", "--help"})
    ]


def _cli_serve_options() -> list[tuple[str, bool]]:
    from cohortlm.cli._app import app

    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    return [(p.opts[0], bool(p.is_flag)) for p in command.params if p.opts and p.opts[0].startswith("--")]


@pytest.mark.parametrize("source", [_our_server_options, _cli_serve_options])
def test_kserve_takes_none_of_our_options(source):
    options = source()
    assert len(options) >= 12, options
    defaults = vars(_kserve_parser().parse_args([]))
    taken, rest = _kserve_parser().parse_known_args(_with_values(options))
    assert vars(taken) == defaults
    assert rest == _with_values(options)


def test_the_parser_has_ours_and_kserves_options_with_our_defaults():
    args = parse_args(["--bundle", "b"])
    assert args.grpc_port is None and args.model_name is None and args.http_port == 8080
    assert {o: getattr(args, o) for o in KSERVE_OPTIONS} == {
        o: getattr(_kserve_parser().parse_args([]), o) for o in KSERVE_OPTIONS
    }
    kserve_spelled = [
        "--max_threads",
        "8",
        "--timeout-keep-alive",
        "7",
        "--grpc_port",
        "9001",
        "--model_name",
        "ra",
    ]
    args = parse_args(["--bundle", "b", *kserve_spelled])
    assert (args.max_threads, args.timeout_keep_alive, args.grpc_port, args.model_name) == (8, 7, 9001, "ra")
    assert set(SHARED_OPTIONS) <= set(vars(_kserve_parser().parse_args([])))


@pytest.mark.parametrize(
    "argv", [["--workers", "2"], ["--enable_grpc", "false"], ["--ssl_certfile", "c.pem"]]
)
def test_a_kserve_option_the_server_does_not_use_is_refused(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--bundle", "b", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"{argv[0]}: kserve option(s) this server does not use" in err and "--max_threads" in err


@pytest.mark.slow
def test_the_server_module_lists_both_and_refuses_before_loading(tmp_path):
    help_text = subprocess.run(
        [sys.executable, "-m", "serving.server", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert (
        help_text.returncode == 0 and "--max_threads" in help_text.stdout and "--bundle" in help_text.stdout
    )
    proc = subprocess.run(
        [sys.executable, "-m", "serving.server", "--bundle", str(tmp_path), "--workers", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 2 and "--workers: kserve option(s)" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
