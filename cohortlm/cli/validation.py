"""CLI commands: validation and features (see cohortlm.cli)."""

from __future__ import annotations

from cohortlm.cli._app import app  # noqa: F401
