"""Fixtures for the evaluation tests: a synthetic run folder (builder in tests/stats_run_folder.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stats_run_folder import make_run_folder


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fresh synthetic run folder in the layout cohortlm.evaluation.report reads."""
    return make_run_folder(tmp_path / "run")
