"""Fixtures for the component tests: the pipeline's components called as Python functions
(``component.python_func``) on real kfp.dsl artifacts in tmp_path.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _unsigned(monkeypatch) -> None:
    """Promotions here are unsigned unless a test gives a key."""
    monkeypatch.delenv("COHORTLM_SIGNING_KEY", raising=False)
