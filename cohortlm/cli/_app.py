"""The typer application and the error policy every command shares.

Exit codes: 0 success, 1 the data failed a check, 2 a usage or spec error.
Errors print one or two lines on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import os

import typer

app = typer.Typer(
    name="cohortlm",
    help="Clinical cohort -> validated features -> LLM vs logistic regression -> DeLong gate -> KServe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

STATE = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    """cohortlm: turn a clinical cohort into a served, monitored prediction model."""
    STATE["debug"] = debug
    # No command may reach a model hub: weights come from local files or packages.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
