"""The ``cohortlm`` command.

One module per command group registers its commands on the shared app:
data (synth, featurise, split, validate, features), stats (delong, report),
models (train-baseline, train-llm, score), pipeline (run, compile, submit),
serving (serve, rollback).
"""

from __future__ import annotations

import sys
import traceback

import click

from cohortlm.cli import data, models, pipeline, serving, stats, validation  # noqa: F401  (register)
from cohortlm.cli._app import STATE, app
from cohortlm.errors import CohortlmError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map errors to exit codes (1 data, 2 usage/spec) without tracebacks."""
    args = sys.argv[1:] if argv is None else argv
    STATE["debug"] = "--debug" in args
    try:
        app(args=args, standalone_mode=False)
    except CohortlmError as exc:
        if STATE["debug"]:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code or 0)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a path the user gave cannot be read or written: a usage error
        if STATE["debug"]:
            traceback.print_exc()
        if exc.filename:
            print(
                f"error: {exc.filename}: {exc.strerror or type(exc).__name__}; check the path",
                file=sys.stderr,
            )
        else:
            print(f"error: {exc.strerror or type(exc).__name__}", file=sys.stderr)
        return 2
    except Exception as exc:  # an unexpected failure: say what, and how to see more
        if STATE["debug"]:
            traceback.print_exc()
        else:
            print(
                f"error: unexpected {type(exc).__name__}; re-run with --debug for the traceback",
                file=sys.stderr,
            )
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
