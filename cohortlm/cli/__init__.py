"""The ``cohortlm`` command.

One module per command group registers its commands on the shared app:
data (synth, featurise, split, studies, init-study), validation (validate,
features), stats (delong, report, gate-power), models (train-baseline,
train-llm, score), runs (runs list, runs compare), store (signing-key,
promote, champion). The modules import only typer and rich at the top; each
command imports what it needs when it runs, so that ``cohortlm --help`` and
``cohortlm delong`` start without pandas or torch.

The commands that need kfp or kserve are not here: the domain core never
imports them. ``pipelines/cli.py`` (run, compile, submit), ``pipelines/schedule.py``
(schedule) and ``serving/cli.py`` (serve, rollback) register on the same app
through the ``cohortlm.commands`` entry points of ``pyproject.toml``. An image
that does not ship a plugin's package (the serving image has no ``pipelines/``)
simply lacks its commands.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from importlib.metadata import entry_points
from types import ModuleType

from cohortlm.cli import data, models, runs, stats, store, validation  # noqa: F401  (register)
from cohortlm.cli._app import STATE, app
from cohortlm.errors import CohortlmError

__all__ = ["COMMAND_PLUGINS", "app", "main"]

#: The entry-point group through which packages outside the core add commands.
COMMAND_PLUGINS = "cohortlm.commands"


def _register_plugins() -> list[str]:
    """Import every installed ``cohortlm.commands`` plugin whose package is present.

    A plugin registers its commands on :data:`cohortlm.cli._app.app` when its
    module is imported. One whose top-level package is absent (an image that
    does not ship it) is skipped; one that is present but fails to import is a
    bug and raises.
    """
    loaded = []
    for ep in sorted(entry_points(group=COMMAND_PLUGINS), key=lambda e: e.name):
        if importlib.util.find_spec(ep.module.partition(".")[0]) is None:
            continue
        importlib.import_module(ep.module)
        loaded.append(ep.module)
    return loaded


PLUGINS = _register_plugins()


def _click_modules() -> list[ModuleType]:
    """The click exception modules in play: typer >= 0.29 vendors its own click as ``typer._click``.

    Its exceptions are not click's, so catching ``click.ClickException`` misses
    every usage error typer raises; both are caught, whichever exist.
    """
    found: list[ModuleType] = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(__import__(name, fromlist=["ClickException"]))
        except ImportError:
            continue
    return found


_CLICK = _click_modules()
_CLICK_ERRORS = tuple(m.ClickException for m in _CLICK)
_CLICK_EXITS = tuple(m.Exit for m in _CLICK if hasattr(m, "Exit"))
_CLICK_ABORTS = tuple(m.Abort for m in _CLICK if hasattr(m, "Abort"))


def _exits() -> tuple[type[BaseException], ...]:
    import typer

    return (typer.Exit, *_CLICK_EXITS)


def _aborts() -> tuple[type[BaseException], ...]:
    import typer

    return (typer.Abort, *_CLICK_ABORTS)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map errors to exit codes (1 data, 2 usage/spec) without tracebacks.

    A usage error (unknown option, missing option, bad value, no command) is
    shown as click shows it, usage line, the option named and click's
    suggestion included, and exits 2.
    """
    args = sys.argv[1:] if argv is None else argv
    STATE["debug"] = "--debug" in args
    try:
        app(args=args, standalone_mode=False, prog_name="cohortlm")
    except CohortlmError as exc:
        if STATE["debug"]:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except _exits() as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except _CLICK_ERRORS as exc:
        exc.show()
        return int(getattr(exc, "exit_code", 2))
    except _aborts():
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
